"""A stand-in for m2im/smaller_labse_finetuned_twitter: its architecture, random weights.

No model hub is reachable from our machines, yet the whole pipeline (export, runtime,
benchmarks) must run on something with the real model's shapes, config and tokenizer. The
stand-in is exactly that, with seeded random weights, and it says so everywhere: the config
carries `vigil_random_weights`, the directory has a README, and every artifact exported from
it is marked random in its manifest, so that no score from it can pass for the real model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["FULL", "RANDOM_MARKER", "REAL_LABELS", "TINY", "StandinSize", "bundled_vocab", "write_standin"]

# The real checkpoint's id2label, copied so the stand-in's config matches it; everything
# downstream reads labels from a config or manifest, never from here.
REAL_LABELS = ("post7geo10", "post7geo30", "post7geo50", "pre7geo10", "pre7geo30", "pre7geo50")

RANDOM_MARKER = "vigil_random_weights"

_README = """\
# RANDOM STAND-IN — NOT THE REAL MODEL

This checkpoint has the architecture, config and tokenizer of
m2im/smaller_labse_finetuned_twitter but **seeded random weights** (seed {seed}).
Its scores are meaningless. It exists so that vigil can be built, tested and benchmarked
without network access. Export the real checkpoint for real use.
"""


@dataclass(frozen=True)
class StandinSize:
    """Transformer dimensions; FULL is the real model's, TINY keeps tests fast."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    # Weight init std. BERT's 0.02 leaves a random model's [CLS] state nearly the same for
    # every tweet (std ~0.002 on the tiny size, below fp16 rounding); 0.2 makes it move.
    initializer_range: float = 0.02
    # Target std of every label's logit over the bundled validation tweets, or None for a
    # wide random head (see `_spread_head`).
    logit_spread: float | None = None

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "heads", "intermediate"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if not self.initializer_range > 0 or not (self.logit_spread is None or self.logit_spread > 0):
            raise ValueError("initializer_range and logit_spread must be positive")


FULL = StandinSize(layers=12, hidden=768, heads=12, intermediate=3072)
# Tests' size: its scores spread across tweets and over both sides of 0.5 on every label,
# as a trained model's do, so that parity and validation checks can tell tweets apart.
TINY = StandinSize(layers=2, hidden=32, heads=4, intermediate=64, initializer_range=0.2, logit_spread=1.0)


def bundled_vocab() -> Path:
    """The smaller-LaBSE vocabulary shipped with vigil (see export/data/README.md)."""
    return Path(str(resources.files("vigil.export") / "data" / "smaller-labse-vocab.txt"))


def write_standin(
    out: str | Path,
    *,
    size: StandinSize = FULL,
    seed: int = 0,
    vocab_file: str | Path | None = None,
) -> Path:
    """Write a random-weight checkpoint with the real model's config and tokenizer to OUT."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    vocab = Path(vocab_file) if vocab_file else bundled_vocab()
    tokenizer = BertTokenizer(  # transformers 5: the fast, Rust-backed tokenizer
        vocab=str(vocab),
        do_lower_case=False,
        tokenize_chinese_chars=True,
        strip_accents=None,
        model_max_length=32,
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        intermediate_size=size.intermediate,
        max_position_embeddings=512,
        pad_token_id=0,
        num_labels=len(REAL_LABELS),
        id2label=dict(enumerate(REAL_LABELS)),
        label2id={label: i for i, label in enumerate(REAL_LABELS)},
        problem_type="multi_label_classification",
        initializer_range=size.initializer_range,
        architectures=["BertForSequenceClassification"],
    )
    setattr(config, RANDOM_MARKER, {"seed": seed})
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    if size.logit_spread is None:
        _spread_head(model, seed)
    else:
        _fit_head(model, tokenizer, size.logit_spread, seed)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text(_README.format(seed=seed), encoding="utf-8")
    return out


def _spread_head(model, seed: int) -> None:
    """Widen the random classifier head so that probabilities spread over (0, 1).

    With BERT's default init (std 0.02) every logit sits within ~0.05 of zero, so every
    probability is ~0.5 and label decisions would be coin flips at the threshold; a
    wider head gives validation and threshold tests decisions worth comparing.
    """
    import torch

    generator = torch.Generator().manual_seed(seed + 1)
    head = model.classifier
    with torch.no_grad():
        head.weight.normal_(0.0, 4.0 / head.in_features**0.5, generator=generator)
        head.bias.normal_(0.0, 1.0, generator=generator)


_COMPONENTS = 3


def _fit_head(model, tokenizer, spread: float, seed: int) -> None:
    """Seed the head from data: each label's logit spreads with std SPREAD around ~0.

    Each label reads the pooled output along its own random direction, rescaled and
    centred on the bundled validation tweets, so that every label's probabilities cover
    both sides of 0.5 and differ from tweet to tweet by more than any variant's tolerance.
    """
    import torch

    from .validate import load_sample

    batch = tokenizer(load_sample(), truncation=True, max_length=32, padding=True, return_tensors="pt")
    with torch.no_grad():
        pooled = model.bert(**batch).pooler_output.double()
        generator = torch.Generator().manual_seed(seed + 1)
        # Mixes of the top principal directions: they carry the most signal per unit of
        # fp16 and int8 rounding noise, which a wider, random direction would amplify.
        components = torch.linalg.svd(pooled - pooled.mean(dim=0), full_matrices=False).Vh[:_COMPONENTS]
        mix = torch.randn(_COMPONENTS, model.config.num_labels, generator=generator, dtype=torch.float64)
        directions = components.T @ mix
        projected = pooled @ directions
        scale = spread / projected.std(dim=0)
        offsets = torch.randn(model.config.num_labels, generator=generator, dtype=torch.float64) * 0.25 * spread
        model.classifier.weight.copy_((directions * scale).T)
        model.classifier.bias.copy_(offsets - projected.mean(dim=0) * scale)
