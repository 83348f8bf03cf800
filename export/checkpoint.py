"""Load a BERT multi-label classifier from a hub id or a local directory, or say why not.

Export is only as good as what it starts from, so loading refuses anything it would have to
guess about: a model that is not `BertForSequenceClassification`, a head that is not
multi-label (sigmoid), weights that transformers would silently initialise at random, or a
tokenizer without a fast (Rust) backend, which the lean runtime needs as `tokenizer.json`.

A hub id is first checked against the hub's reachability: offline, `huggingface_hub` would
retry each file for about half a minute, printing every retry, before failing. Unreachable,
the checkpoint loads from the local cache only, and a missing one fails at once, in one line.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ExportError
from .standin import RANDOM_MARKER

__all__ = ["DEFAULT_SOURCE", "Checkpoint", "load_checkpoint"]

DEFAULT_SOURCE = "m2im/smaller_labse_finetuned_twitter"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class Checkpoint:
    """A loaded checkpoint: fp32 eager-attention model, fast tokenizer and what it is."""

    model: Any  # transformers.BertForSequenceClassification in eval mode, or None (weights=False)
    config: Any  # transformers.BertConfig
    tokenizer: Any  # transformers.PreTrainedTokenizerFast
    source: str
    revision: str | None
    labels: tuple[str, ...]
    random_weights: dict[str, Any] | None
    cached_only: bool = False  # a hub id read from the local cache: the Hub did not answer


def load_checkpoint(
    source: str = DEFAULT_SOURCE, revision: str | None = None, *, weights: bool = True, cached_only: bool | None = None
) -> Checkpoint:
    """Load SOURCE (hub id or directory); raise ExportError with one line saying what is wrong.

    WEIGHTS=False loads and checks all but the model, for a process that leaves the
    PyTorch work to another. CACHED_ONLY None asks the Hub whether it answers (for a hub
    id); that other process passes on the first one's `Checkpoint.cached_only` instead.
    """
    local = _is_local(source)
    if cached_only is None:
        cached_only = not local and not _hub_reachable()
    config = _load_config(source, revision, local, cached_only)
    labels = _check_classifier(config, source)
    model = _load_model(source, revision, config, cached_only) if weights else None
    tokenizer = _load_tokenizer(source, revision, cached_only)
    return Checkpoint(
        model=model,
        config=config,
        tokenizer=tokenizer,
        source=str(Path(source).resolve()) if local else source,
        revision=None if local else getattr(config, "_commit_hash", None) or revision,
        labels=labels,
        random_weights=getattr(config, RANDOM_MARKER, None),
        cached_only=cached_only,
    )


def _is_local(source: str) -> bool:
    """A source is a directory unless it does not exist and reads as `owner/name`."""
    if Path(source).exists():
        if not Path(source).is_dir():
            raise ExportError(f"checkpoint {source} is a file, not a directory")
        return True
    if _HUB_ID.match(source) and not source.startswith((".", "~")):
        return False
    raise ExportError(f"checkpoint directory not found: {source}")


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face Hub (HF_ENDPOINT) accepts a connection, unless HF_HUB_OFFLINE."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlsplit(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout_s).close()
    except OSError:  # no DNS, refused, no route, timed out
        return False
    return True


def _load_config(source: str, revision: str | None, local: bool, cached_only: bool):
    from transformers import AutoConfig

    if local and not (Path(source) / "config.json").is_file():
        raise ExportError(f"{source} is not a checkpoint directory: it has no config.json")
    try:
        return AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=False, local_files_only=cached_only)
    except Exception as exc:  # transformers raises OSError, ValueError or JSON errors here
        reason = _first_line(exc)
        if local:
            raise ExportError(f"{source} has an unreadable config.json: {reason}") from exc
        if cached_only:
            raise ExportError(
                f"cannot load {source!r}: the Hugging Face Hub is not reachable from here and it is not "
                "in the local cache; pass a local checkpoint directory instead"
            ) from exc
        raise ExportError(
            f"cannot load {source!r} from the Hugging Face Hub ({reason}); "
            "offline or unknown id? pass a local checkpoint directory instead"
        ) from exc


def _check_classifier(config, source: str) -> tuple[str, ...]:
    """The labels in id order, after checking this is a multi-label BERT classifier."""
    architectures = list(getattr(config, "architectures", None) or [])
    if config.model_type != "bert" or "BertForSequenceClassification" not in architectures:
        raise ExportError(
            f"{source} is not a BERT sequence classifier "
            f"(model_type={config.model_type!r}, architectures={architectures})"
        )
    if config.problem_type != "multi_label_classification":
        raise ExportError(
            f"{source} has problem_type={config.problem_type!r}; vigil scores multi-label "
            "classifiers (one sigmoid per label), problem_type='multi_label_classification'"
        )
    return tuple(config.id2label[i] for i in range(config.num_labels))


def _load_model(source: str, revision: str | None, config, cached_only: bool):
    import torch
    from transformers import BertForSequenceClassification

    # Eager attention: with sdpa the TorchScript graph hides the pattern that ONNX
    # Runtime's Attention fusion looks for.
    config._attn_implementation = "eager"
    try:
        model, info = BertForSequenceClassification.from_pretrained(
            source,
            revision=revision,
            config=config,
            dtype=torch.float32,
            trust_remote_code=False,
            output_loading_info=True,
            local_files_only=cached_only,
        )
    except Exception as exc:  # corrupt safetensors, missing weights file, ...
        raise ExportError(f"cannot load the weights of {source}: {_first_line(exc)}") from exc
    missing = sorted(info.get("missing_keys", []))
    if missing:
        raise ExportError(
            f"{source} lacks weights for {missing[:4]}{'...' if len(missing) > 4 else ''}: "
            "transformers would fill them with random values"
        )
    return model.eval()


def _load_tokenizer(source: str, revision: str | None, cached_only: bool):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, revision=revision, trust_remote_code=False, local_files_only=cached_only
        )
    except Exception as exc:
        raise ExportError(f"cannot load the tokenizer of {source}: {_first_line(exc)}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError(f"the tokenizer of {source} has no fast backend to save as tokenizer.json")
    return tokenizer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
