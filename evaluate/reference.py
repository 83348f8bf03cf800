"""The PyTorch fp32 checkpoint's probabilities: what an artifact's figures are held to.

An exported variant is only as good as its agreement with the checkpoint it came from.
`reference_probabilities` scores texts the way the artifact sees them, with the model card's
`clean_tweet`, and the checkpoint's own tokenizer truncating and padding to the artifact's
sequence length, using export's loader (which refuses anything but a multi-label BERT
classifier) and export's fp32 reference forward pass.

torch and transformers (the `export` extra) are imported only when it is called.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from vigil.runtime.engine import sigmoid
from vigil.runtime.errors import InputError
from vigil.runtime.preprocess import clean_tweet

__all__ = ["reference_probabilities"]


def reference_probabilities(
    checkpoint: str | os.PathLike[str],
    texts: Sequence[str],
    labels: Sequence[str],
    sequence_length: int,
    *,
    batch_size: int = 256,
) -> np.ndarray:
    """float32 [len(texts), n_labels] probabilities of the PyTorch fp32 model in CHECKPOINT.

    Raises:
        ExportError: CHECKPOINT cannot be loaded as a multi-label BERT classifier.
        InputError: Its labels are not LABELS, in the same order.
    """
    from vigil.export.checkpoint import load_checkpoint
    from vigil.export.validate import reference_logits

    loaded = load_checkpoint(str(checkpoint))
    if loaded.labels != tuple(labels):
        raise InputError(
            f"reference checkpoint {checkpoint} has the labels {list(loaded.labels)}, "
            f"but the artifact has {list(labels)}"
        )
    cleaned = [clean_tweet(text) for text in texts]
    logits = []
    for start in range(0, len(cleaned), batch_size):
        encoded = loaded.tokenizer(
            cleaned[start : start + batch_size],
            truncation=True,
            max_length=sequence_length,
            padding="max_length",
            return_tensors="np",
        )
        logits.append(reference_logits(loaded.model, encoded["input_ids"], encoded["attention_mask"]))
    return sigmoid(np.concatenate(logits))
