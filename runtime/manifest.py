"""`manifest.json`: the one contract between `vigil.export` and `vigil.runtime`.

An artifact directory holds ONNX variants of one checkpoint, its `tokenizer.json` and this
manifest. Export writes it; the runtime reads it and nothing else, so it never needs
transformers. Unknown keys are kept when a manifest is rewritten (calibration adds
thresholds to an exported artifact), and a newer schema version is refused outright rather
than half understood.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArtifactError

__all__ = [
    "SCHEMA_VERSION",
    "MANIFEST_FILE",
    "INPUT_NAMES",
    "STANDIN_WARNING",
    "Variant",
    "Manifest",
    "sha256_file",
]

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
# The graph inputs every variant takes, int64 [batch, sequence_length], in this order.
INPUT_NAMES = ("input_ids", "attention_mask")
# What vigil's commands and files say of an artifact whose `random_weights` is true. (The
# engine's Python warning says it in its own sentence, which filters match on.)
STANDIN_WARNING = "RANDOM-WEIGHT STAND-IN: its scores mean nothing"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks so that a 900 MB model costs no memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Variant:
    """One ONNX file of the artifact: its precision, graph form and intended providers."""

    name: str
    file: str
    precision: str  # "fp32", "fp16" or "int8"
    form: str  # "standard" (plain ONNX operators) or "fused" (ONNX Runtime contrib ops)
    providers: tuple[str, ...]
    size_bytes: int
    sha256: str
    validation: dict[str, Any] = field(default_factory=dict)
    # Export's figures for the pooled output (the embeddings) against PyTorch's.
    pooled_validation: dict[str, Any] = field(default_factory=dict)

    @property
    def embeddings_validated(self) -> bool:
        """Whether export found this variant's embeddings within their tolerance."""
        return bool(self.pooled_validation.get("passed", False))

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> Variant:
        try:
            return cls(
                name=name,
                file=str(data["file"]),
                precision=str(data["precision"]),
                form=str(data["form"]),
                providers=tuple(data["providers"]),
                size_bytes=int(data["size_bytes"]),
                sha256=str(data["sha256"]),
                validation=dict(data.get("validation", {})),
                pooled_validation=dict(data.get("pooled_validation", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"variant {name!r} of the manifest is malformed: {exc!r}") from exc


@dataclass(frozen=True)
class Manifest:
    """What the runtime needs to know about an artifact, read from `manifest.json`."""

    directory: Path
    labels: tuple[str, ...]
    sequence_length: int
    pad_id: int
    tokenizer_file: str
    tokenizer_sha256: str
    variants: dict[str, Variant]
    thresholds: dict[str, float]
    source: dict[str, Any]
    raw: dict[str, Any]
    # Padded lengths a graph with a symbolic sequence axis runs at, ascending, ending at
    # sequence_length; empty for an artifact exported before buckets (everything at 32).
    sequence_buckets: tuple[int, ...] = ()
    # The graph output holding the pooler output (the sentence embedding) and its width;
    # None for an artifact exported before vigil computed embeddings.
    pooled_output: str | None = None
    pooled_width: int | None = None

    @property
    def random_weights(self) -> bool:
        """True for a stand-in checkpoint: its scores mean nothing."""
        return bool(self.source.get("random_weights", False))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Manifest:
        """Read and check `DIRECTORY/manifest.json`; raise ArtifactError naming what is wrong."""
        directory = Path(directory)
        if not directory.is_dir():
            raise ArtifactError(f"artifact directory not found: {directory}")
        path = directory / MANIFEST_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactError(f"{path} is missing: not a vigil artifact directory") from None
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{path} cannot be read as JSON: {exc}") from exc
        return cls.from_dict(directory, raw)

    @classmethod
    def from_dict(cls, directory: Path, raw: dict[str, Any]) -> Manifest:
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ArtifactError(
                f"{directory / MANIFEST_FILE} has schema_version {version!r}; "
                f"this vigil reads version {SCHEMA_VERSION}"
            )
        try:
            labels = tuple(str(label) for label in raw["labels"])
            manifest = cls(
                directory=directory,
                labels=labels,
                sequence_length=int(raw["sequence_length"]),
                pad_id=int(raw["pad_id"]),
                tokenizer_file=str(raw["tokenizer"]["file"]),
                tokenizer_sha256=str(raw["tokenizer"]["sha256"]),
                variants={
                    name: Variant.from_dict(name, data) for name, data in raw["variants"].items()
                },
                thresholds={str(k): float(v) for k, v in raw.get("thresholds", {}).items()},
                source=dict(raw.get("source", {})),
                raw=raw,
                sequence_buckets=tuple(int(width) for width in raw.get("sequence_buckets", ())),
                **_pooled(raw.get("pooled")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"{directory / MANIFEST_FILE} is malformed: {exc!r}") from exc
        if not labels or len(set(labels)) != len(labels):
            raise ArtifactError(f"{directory / MANIFEST_FILE} needs distinct labels, got {labels}")
        unknown = set(manifest.thresholds) - set(labels)
        if unknown:
            raise ArtifactError(f"{directory / MANIFEST_FILE} has thresholds for unknown labels {sorted(unknown)}")
        _check_buckets(directory, manifest.sequence_buckets, manifest.sequence_length)
        return manifest

    def with_thresholds(self, thresholds: Mapping[str, float], calibration: Mapping[str, Any]) -> dict[str, Any]:
        """The manifest to write back: `raw` with new THRESHOLDS and the CALIBRATION record.

        Every other key stays as read, so a rewrite loses nothing a newer export added. The
        result is checked as `load` checks a file (a label the artifact lacks is refused)
        before anyone writes it.
        """
        raw = {
            **self.raw,
            "thresholds": {label: float(value) for label, value in thresholds.items()},
            "calibration": dict(calibration),
        }
        Manifest.from_dict(self.directory, raw)
        return raw

    def variant(self, name: str) -> Variant:
        """The named variant; ArtifactError lists the ones the artifact has."""
        try:
            return self.variants[name]
        except KeyError:
            raise ArtifactError(
                f"artifact {self.directory} has no variant {name!r}; it has {sorted(self.variants)}"
            ) from None

    def verified_path(self, variant: Variant) -> Path:
        """The variant's file, after checking that its size and sha256 match the manifest."""
        path = self.directory / variant.file
        if not path.is_file():
            raise ArtifactError(f"model file of variant {variant.name!r} is missing: {path}")
        if path.stat().st_size != variant.size_bytes or sha256_file(path) != variant.sha256:
            raise ArtifactError(
                f"model file {path} does not match the manifest's size and sha256: corrupt or replaced"
            )
        return path

    def verified_tokenizer_path(self) -> Path:
        """`tokenizer.json`, after checking its sha256: a swapped vocabulary changes every score."""
        path = self.directory / self.tokenizer_file
        if not path.is_file():
            raise ArtifactError(f"tokenizer file is missing: {path}")
        if sha256_file(path) != self.tokenizer_sha256:
            raise ArtifactError(f"tokenizer file {path} does not match the manifest's sha256: corrupt or replaced")
        return path

    def check_graph_shapes(
        self,
        path: Path,
        inputs: Mapping[str, Sequence[int | str | None]],
        outputs: Mapping[str, Sequence[int | str | None]],
    ) -> None:
        """Refuse a graph whose fixed sequence axis, label count or pooled output differs
        from the manifest's.

        A symbolic sequence axis is accepted only when the manifest has sequence buckets:
        they are what the runtime pads each batch to.

        Args:
            inputs: Shape of each graph input, as ONNX Runtime reports it ("batch" for a
                symbolic axis).
            outputs: Shape of each graph output, in graph order: the logits first, then,
                where the manifest names one, the pooled output [batch, pooled_width].
        """
        for name, shape in inputs.items():
            symbolic = len(shape) == 2 and not isinstance(shape[1], int) and bool(self.sequence_buckets)
            if len(shape) != 2 or (shape[1] != self.sequence_length and not symbolic):
                raise ArtifactError(
                    f"{path} takes {name} of shape {list(shape)}, but the manifest says sequence_length "
                    f"{self.sequence_length}"
                )
        logits = next(iter(outputs.values()), ())
        if len(logits) != 2 or logits[1] != len(self.labels):
            raise ArtifactError(
                f"{path} returns logits of shape {list(logits)}, but the manifest has {len(self.labels)} labels"
            )
        pooled = outputs.get(self.pooled_output or "", ())
        if self.pooled_output is not None and list(pooled)[1:] != [self.pooled_width]:
            raise ArtifactError(
                f"{path} must return {self.pooled_output!r} of shape [batch, {self.pooled_width}], as the manifest "
                f"says; it returns {dict(outputs)}"
            )


def _pooled(entry: Any) -> dict[str, Any]:
    """The manifest's `pooled` entry ({"name", "width"}) as Manifest fields; none for an old artifact."""
    if entry is None:
        return {}
    return {"pooled_output": str(entry["name"]), "pooled_width": int(entry["width"])}


def _check_buckets(directory: Path, buckets: tuple[int, ...], sequence_length: int) -> None:
    """Buckets must rise strictly to sequence_length: the runtime picks the first that fits."""
    if not buckets:
        return
    rising = all(0 < a < b for a, b in zip(buckets, buckets[1:])) and buckets[0] > 0
    if not rising or buckets[-1] != sequence_length:
        raise ArtifactError(
            f"{directory / MANIFEST_FILE} has sequence_buckets {list(buckets)}; they must rise strictly "
            f"from above 0 to sequence_length {sequence_length}"
        )
