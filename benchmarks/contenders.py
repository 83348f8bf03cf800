"""The contenders: every way of scoring tweets that the benchmark puts side by side.

Each one does the whole job a user needs, end to end: the model card's `clean_tweet`,
tokenization (truncated to 32 tokens), the model, a sigmoid per label. They differ only in
how:

- `CardPipeline`: the model card's quick start, `pipeline("text-classification",
  model=ckpt, tokenizer=ckpt, truncation=True, top_k=None)` on cleaned text.
- `PyTorchEager`: the transformers model called directly on tokenized batches
  (`torch.inference_mode`, threads = physical cores; fp16 on a GPU in `benchmarks/gpu.py`).
- `PlainOnnx`: ONNX Runtime, default session options, on the plain (unfused) fp32
  TorchScript export that `vigil.export.graphs.export_fp32` makes.
- `Optimum`: Hugging Face Optimum's `ORTModelForSequenceClassification`, exported by
  Optimum itself and called directly on tokenized batches. It runs in its own virtual
  environment (Optimum pins transformers < 4.58).
- `Vigil`: `vigil.runtime.Classifier` on one variant and provider.

The baselines tokenize with the checkpoint's transformers tokenizer and pad each batch to
its longest tweet, as their users would; the plain ONNX graph has a static sequence axis,
so it pads to 32 like vigil.

This module imports only the standard library and numpy at the top; each contender imports
its own libraries in `load`, because each runs in its own process and environment.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .machine import physical_cores

__all__ = ["KINDS", "CardPipeline", "Contender", "Optimum", "PlainOnnx", "PyTorchEager", "Scored", "Vigil"]

SEQUENCE_LENGTH = 32


@dataclass(frozen=True)
class Scored:
    """Probabilities for a stream of texts, and how long the model alone took.

    Attributes:
        probabilities: float32 [n, n_labels].
        model_seconds: Time spent inside the model on already tokenized batches, or None
            where tokenization overlaps the model (vigil) or cannot be told apart from it
            (the transformers pipeline).
    """

    probabilities: np.ndarray
    model_seconds: float | None


def _quiet_transformers() -> None:
    """No "Loading weights" progress bars in the middle of the benchmark's own."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _cleaner() -> Callable[[str], str]:
    """The model card's `clean_tweet`, from vigil: every contender cleans exactly alike.

    vigil is imported late, here and below, because benchmarks/gpu.py imports this module
    before it has put the checkout on sys.path where vigil is not installed.
    """
    from vigil.runtime.preprocess import clean_tweet

    return clean_tweet


def _probabilities(logits: Any) -> np.ndarray:
    """vigil's own sigmoid, computed in float64: every contender turns logits alike."""
    from vigil.runtime.engine import sigmoid

    return sigmoid(np.asarray(logits, dtype=np.float64))


class Contender:
    """A way to score tweets end to end.

    Subclasses build any cached file in `prepare`, load their model in `load`, and either
    implement `encode` (clean and tokenize one batch) and `infer` (one encoded batch to
    probabilities), which the default `predict` runs one after the other, or override
    `predict`. One whose `predict` cannot time the model alone overrides `time_model`.
    """

    packages: tuple[str, ...] = ()

    def prepare(self) -> None:
        """Build, once, what `load` reads (an export into the cache); nothing by default."""

    def load(self) -> None:
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        from vigil.runtime.versions import installed_versions

        return installed_versions(self.packages)

    def encode(self, texts: Sequence[str]) -> Any:
        raise NotImplementedError

    def infer(self, inputs: Any) -> np.ndarray:
        raise NotImplementedError

    def predict(self, texts: Sequence[str], batch_size: int) -> Scored:
        """Score TEXTS in batches of BATCH_SIZE: encode, then infer, batch after batch."""
        parts, model_seconds = [], 0.0
        for start in range(0, len(texts), batch_size):
            inputs = self.encode(texts[start : start + batch_size])
            started = time.perf_counter()
            parts.append(self.infer(inputs))
            model_seconds += time.perf_counter() - started
        return Scored(np.concatenate(parts), model_seconds)

    def time_model(self, texts: Sequence[str], batch_size: int) -> float | None:
        """Seconds the model alone takes on TEXTS in batches of BATCH_SIZE; None where
        `predict` times it (`Scored.model_seconds`) or nothing can."""
        return None


class CardPipeline(Contender):
    """The model card's quick start: a transformers text-classification pipeline, fp32, CPU."""

    packages = ("torch", "transformers", "tokenizers")

    def __init__(self, checkpoint: str) -> None:
        self.checkpoint = checkpoint

    def load(self) -> None:
        from transformers import pipeline

        _quiet_transformers()
        self.clean = _cleaner()
        self.pipe = pipeline(
            "text-classification", model=self.checkpoint, tokenizer=self.checkpoint, truncation=True, top_k=None
        )
        config = self.pipe.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]

    def predict(self, texts: Sequence[str], batch_size: int) -> Scored:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "use a dataset for efficiency", batching on a CPU
            rows = self.pipe([self.clean(text) for text in texts], batch_size=batch_size)
        scores = [{item["label"]: item["score"] for item in row} for row in rows]
        return Scored(np.array([[row[label] for label in self.labels] for row in scores], dtype=np.float32), None)


class PyTorchEager(Contender):
    """The transformers model called directly, under `torch.inference_mode`."""

    packages = ("torch", "transformers", "tokenizers")

    def __init__(self, checkpoint: str, device: str = "cpu", half: bool = False, padding: str = "longest") -> None:
        self.checkpoint = checkpoint
        self.device = device
        self.half = half
        self.padding = padding

    def load(self) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        _quiet_transformers()
        torch.set_num_threads(physical_cores())
        self.torch = torch
        self.clean = _cleaner()
        self.tokenizer = AutoTokenizer.from_pretrained(self.checkpoint)
        model = AutoModelForSequenceClassification.from_pretrained(self.checkpoint, dtype=torch.float32)
        self.model = (model.half() if self.half else model).to(self.device).eval()

    def encode(self, texts: Sequence[str]) -> Any:
        return self.tokenizer(
            [self.clean(text) for text in texts],
            padding=self.padding,
            truncation=True,
            max_length=SEQUENCE_LENGTH,
            return_tensors="pt",
        )

    def infer(self, inputs: Any) -> np.ndarray:
        with self.torch.inference_mode():
            logits = self.model(**{name: tensor.to(self.device) for name, tensor in inputs.items()}).logits
            return self.torch.sigmoid(logits.float()).cpu().numpy()


class PlainOnnx(Contender):
    """ONNX Runtime with default session options on the unfused fp32 TorchScript export."""

    packages = ("onnxruntime", "transformers", "tokenizers")

    def __init__(self, checkpoint: str, onnx_path: str) -> None:
        self.checkpoint = checkpoint
        self.path = Path(onnx_path)

    def prepare(self) -> None:
        if self.path.is_file():
            return
        from vigil.export.checkpoint import load_checkpoint
        from vigil.export.graphs import export_fp32

        partial = self.path.with_name(f".{self.path.name}.partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        export_fp32(load_checkpoint(self.checkpoint).model, partial, SEQUENCE_LENGTH)
        partial.replace(self.path)

    def load(self) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.clean = _cleaner()
        self.tokenizer = AutoTokenizer.from_pretrained(self.checkpoint)
        self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str]) -> Any:
        encoded = self.tokenizer(
            [self.clean(text) for text in texts],
            padding="max_length",  # the graph's sequence axis is static
            truncation=True,
            max_length=SEQUENCE_LENGTH,
            return_tensors="np",
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def infer(self, inputs: Any) -> np.ndarray:
        return _probabilities(self.session.run(None, inputs)[0])


class Optimum(Contender):
    """Hugging Face Optimum's ORTModelForSequenceClassification, exported by Optimum."""

    packages = ("optimum", "optimum-onnx", "onnxruntime", "transformers", "tokenizers", "torch")

    def __init__(self, checkpoint: str, export_dir: str) -> None:
        self.checkpoint = checkpoint
        self.export_dir = Path(export_dir)

    def prepare(self) -> None:
        if (self.export_dir / "model.onnx").is_file():
            return
        from optimum.onnxruntime import ORTModelForSequenceClassification

        partial = self.export_dir.with_name(f".{self.export_dir.name}.partial")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings of the export
            ORTModelForSequenceClassification.from_pretrained(self.checkpoint, export=True).save_pretrained(partial)
        partial.replace(self.export_dir)

    def load(self) -> None:
        from optimum.onnxruntime import ORTModelForSequenceClassification
        from transformers import AutoTokenizer

        self.clean = _cleaner()
        self.tokenizer = AutoTokenizer.from_pretrained(self.checkpoint)
        self.model = ORTModelForSequenceClassification.from_pretrained(self.export_dir)

    def encode(self, texts: Sequence[str]) -> Any:
        return self.tokenizer(
            [self.clean(text) for text in texts],
            padding="longest",
            truncation=True,
            max_length=SEQUENCE_LENGTH,
            return_tensors="np",
        )

    def infer(self, inputs: Any) -> np.ndarray:
        return _probabilities(self.model(**inputs).logits)


class Vigil(Contender):
    """`vigil.runtime.Classifier`: its own pipelined `predict`, its `encode` and `score`.

    Args:
        artifact: Artifact directory.
        provider: "cpu", "cuda" or "tensorrt".
        variant: Manifest variant; None for the provider's natural one.
        cuda_graphs: With provider "cuda", insist on (True) or refuse (False) CUDA graphs;
            `Classifier.open` takes the first plan that works, so it is bypassed here.
        max_batch_size: Largest batch a GPU session is bound for.
        sequence_buckets: As `Classifier.open`'s: None for its default (on the CPU, not on a
            GPU), True or False to measure both side by side.
        replicas: As `Classifier.open`'s: sessions, for that many batches in flight in a Service.
    """

    packages = ("vigil", "onnxruntime", "tokenizers", "numpy")

    def __init__(
        self,
        artifact: str,
        provider: str = "cpu",
        variant: str | None = None,
        cuda_graphs: bool | None = None,
        max_batch_size: int = 256,
        sequence_buckets: bool | None = None,
        replicas: int = 1,
    ) -> None:
        self.artifact = artifact
        self.provider = provider
        self.variant = variant
        self.cuda_graphs = cuda_graphs
        self.max_batch_size = max_batch_size
        self.sequence_buckets = sequence_buckets
        self.replicas = replicas

    def load(self) -> None:
        from vigil.runtime import Classifier

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the random stand-in warning: the report says it once
            if self.cuda_graphs is None:
                self.classifier = Classifier.open(
                    self.artifact,
                    provider=self.provider,
                    variant=self.variant,
                    max_batch_size=self.max_batch_size,
                    sequence_buckets=self.sequence_buckets,
                    replicas=self.replicas,
                )
            else:
                self.classifier = self._open_cuda(self.cuda_graphs)

    def _open_cuda(self, graphs: bool) -> Any:
        """A CUDA classifier with CUDA graphs on or off, and nothing else."""
        import onnxruntime as ort
        from vigil.runtime import Classifier, Manifest
        from vigil.runtime.model import open_model
        from vigil.runtime.providers import plan_sessions
        from vigil.runtime.tokenizer import SharedTokenizer

        manifest = Manifest.load(self.artifact)
        plans = plan_sessions(
            manifest, "cuda", self.variant, ort.get_available_providers(), max_batch_size=self.max_batch_size
        )
        tokenizer = SharedTokenizer(
            manifest.directory / manifest.tokenizer_file, manifest.sequence_length, manifest.pad_id
        )
        chosen = [plan for plan in plans if plan.cuda_graphs == graphs]
        model = open_model(
            manifest, chosen, filler=tokenizer.encode([""]), sequence_buckets=self.sequence_buckets,
            replicas=self.replicas,
        )
        return Classifier(manifest, model, tokenizer=tokenizer)

    def versions(self) -> dict[str, str]:
        found = super().versions()
        found.setdefault("vigil", "source checkout")
        found["provider"] = self.classifier.provider
        found["variant"] = self.classifier.variant
        return found

    def predict(self, texts: Sequence[str], batch_size: int) -> Scored:
        return Scored(self.classifier.predict(texts, batch_size=batch_size), None)

    def time_model(self, texts: Sequence[str], batch_size: int) -> float:
        """`predict` on TEXTS with cleaning and tokenizing taken out, and nothing else changed.

        An untimed pass, with the model left out, records what `Classifier.encode` returns
        for each batch (by its start index); the timed pass looks it up. So the model runs
        the very batches, sequence buckets and prefetch pipeline that it runs end to end,
        and the ratio of the two passes is what cleaning and tokenizing cost.
        """
        classifier, encoded = self.classifier, {}
        encode, width = classifier.encode, len(classifier.labels)

        def record(batch: Sequence[str], *, start: int = 0) -> Any:
            encoded[start] = encode(batch, start=start)
            return encoded[start]

        try:
            classifier.encode, classifier.score = record, lambda ids, mask: np.zeros((len(ids), width), np.float32)
            classifier.predict(texts, batch_size=batch_size)
            del classifier.score
            classifier.encode = lambda batch, *, start=0: encoded[start]
            started = time.perf_counter()
            classifier.predict(texts, batch_size=batch_size)
            return time.perf_counter() - started
        finally:
            for name in ("encode", "score"):  # back to the class's methods
                vars(classifier).pop(name, None)


KINDS: dict[str, type[Contender]] = {
    "pipeline": CardPipeline,
    "pytorch": PyTorchEager,
    "onnxruntime": PlainOnnx,
    "optimum": Optimum,
    "vigil": Vigil,
}
