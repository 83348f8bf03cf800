"""The last encoder layer computed at the first position only: the same scores for less work.

The classifier reads one vector per text: the pooler's dense layer on the last layer's output
at position 0 ([CLS]). The last layer's other positions feed nothing. Its keys and values
still need every position, since position 0 attends to all of them, but its query, attention
output, residual, layer norms and feed-forward network need position 0 alone. That skips
about 10/12 of the last layer's MatMul work: with 24 tokens, 6.7 % of the model's.

The arithmetic of position 0 is unchanged, so the scores are the same (full-size stand-in,
plain fp32 graph: max |d logit| 2.5e-7) and export validates every variant against the
unmodified PyTorch model as before. ONNX Runtime's attention fusion does not recognise the
sliced query, so the last layer keeps standard attention operators; its other fusions
(skip layer norm, bias GELU) still apply.

The layer masks padded keys with the model's own [batch, sequence] attention mask, not the
[batch, 1, sequence, sequence] one transformers builds for every layer: the fused attentions
read the 2-D mask, so the 4-D one's subgraph (Range, comparisons, Expand: about 130 nodes,
each a kernel in a CUDA graph) drops out of the fused graphs instead of staying for one layer.

Only the export's trace sees this: `first_token_last_layer` swaps the layer in for the trace
and puts the model's own back afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["first_token_last_layer"]

log = logging.getLogger(__name__)


@contextmanager
def first_token_last_layer(model: Any) -> Iterator[bool]:
    """MODEL (BertForSequenceClassification) with its last encoder layer computing position 0
    only, for the duration; yields whether it could (absolute position embeddings only: a
    relative attention score needs the positions this layer skips)."""
    layers = model.bert.encoder.layer
    if getattr(model.config, "position_embedding_type", "absolute") != "absolute":
        log.info("last layer kept whole: %s position embeddings", model.config.position_embedding_type)
        yield False
        return
    own = layers[-1]
    layers[-1] = first = _first_token_layer(own)
    hook = model.bert.register_forward_pre_hook(first.read_mask, with_kwargs=True)
    try:
        yield True
    finally:
        hook.remove()
        layers[-1] = own


def _first_token_layer(layer: Any) -> Any:
    """LAYER's weights in a module that computes its output at position 0 alone,
    [batch, 1, hidden]. Defined here, as `graphs._with_pooled` does, so that importing
    this module does not import torch (the export's parent process never does).

    The module keeps the layer's submodule names, so the traced graph's node names (and
    int8's layer units, `vigil.export.int8.layer_units`) read as the original layer's.
    """
    import torch

    class FirstTokenLayer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = layer.attention
            self.intermediate = layer.intermediate
            self.output = layer.output
            self.mask = None

        def read_mask(self, bert: Any, args: tuple, kwargs: dict) -> None:
            """BertModel's forward pre-hook: keep the call's [batch, sequence] attention mask
            (None: every position counts, as transformers reads it)."""
            self.mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)

        def forward(self, hidden, *args: Any, **kwargs: Any):
            """HIDDEN [batch, sequence, hidden]; the encoder's own mask and options are not read."""
            own = self.attention.self
            batch, length, width = hidden.shape
            heads, size = own.num_attention_heads, own.attention_head_size
            first = hidden[:, :1]
            query = own.query(first).view(batch, 1, heads, size).transpose(1, 2)
            key = own.key(hidden).view(batch, length, heads, size).transpose(1, 2)
            value = own.value(hidden).view(batch, length, heads, size).transpose(1, 2)
            scores = torch.matmul(query, key.transpose(2, 3)) * size**-0.5
            if self.mask is not None:
                padded = (self.mask == 0)[:, None, None, :]
                scores = scores.masked_fill(padded, torch.finfo(scores.dtype).min)
            context = torch.matmul(scores.softmax(dim=-1), value).transpose(1, 2).reshape(batch, 1, width)
            attended = self.attention.output(context, first)
            return self.output(self.intermediate(attended), attended)

    return FirstTokenLayer()
