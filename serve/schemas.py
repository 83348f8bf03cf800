"""The JSON the server reads and writes, as pydantic models that also document the API.

FastAPI turns these into the OpenAPI schema, so every field says what it means and carries
an example. Types are checked here (a number where a text belongs is a 422 naming its
index); the limits that depend on `ServeSettings` are checked by the handlers.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ClassifyRequest",
    "AggregateItem",
    "AggregateRequest",
    "ModelInfo",
    "TextResult",
    "ClassifyResponse",
    "GroupResult",
    "AggregateResponse",
    "EmbedRequest",
    "EmbedResponse",
    "ProbeStatus",
    "ErrorDetail",
    "ErrorResponse",
]

_TWEET = "Protesters gather outside the parliament as police close the square"
_LABELS = ["post7geo10", "post7geo30", "post7geo50", "pre7geo10", "pre7geo30", "pre7geo50"]
_SCORES = dict(zip(_LABELS, [0.91, 0.42, 0.12, 0.67, 0.08, 0.03]))
_ONE_OF_TEXT_OR_TEXTS = [{"required": ["text"]}, {"required": ["texts"]}]  # the rule `_exactly_one` checks


class ClassifyRequest(BaseModel):
    """Tweets to score: `text` for one, `texts` for several (exactly one of the two)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"text": _TWEET}, {"texts": [_TWEET, "Lovely sunny day at the beach"]}],
            "oneOf": _ONE_OF_TEXT_OR_TEXTS,
        },
    )

    text: str | None = Field(default=None, description="One tweet.", examples=[_TWEET])
    texts: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Several tweets, answered in the same order. They are batched with other "
        "requests' tweets, so one request with many texts costs little more than one text.",
        examples=[[_TWEET, "Lovely sunny day at the beach"]],
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ClassifyRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' and 'texts'")
        return self

    def all_texts(self) -> list[str]:
        """The texts to score, one or many."""
        return [self.text] if self.text is not None else list(self.texts or [])


class AggregateItem(BaseModel):
    """One tweet and the group it counts towards."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The tweet.", examples=[_TWEET])
    group: str = Field(
        description="Any key to average over, e.g. a place and day.", examples=["nairobi/2024-06-25"]
    )


class AggregateRequest(BaseModel):
    """Tweets with their groups; each tweet is paired with its group, so lengths always match."""

    model_config = ConfigDict(extra="forbid")

    items: list[AggregateItem] = Field(
        min_length=1,
        description="The tweets to score and average per group.",
        examples=[
            [
                {"text": _TWEET, "group": "nairobi/2024-06-25"},
                {"text": "Traffic is calm this morning", "group": "mombasa/2024-06-25"},
            ]
        ],
    )


class EmbedRequest(ClassifyRequest):
    """Tweets to embed: `text` for one, `texts` for several (exactly one of the two)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"text": _TWEET}, {"texts": [_TWEET, "Lovely sunny day at the beach"], "normalize": False}],
            "oneOf": _ONE_OF_TEXT_OR_TEXTS,
        },
    )

    normalize: bool = Field(
        default=True,
        description="L2-normalise each embedding (smaller-LaBSE's documented sentence embedding); "
        "false gives the raw pooler output.",
    )


class ModelInfo(BaseModel):
    """Which model answered, so that a score can be traced to what produced it."""

    variant: str = Field(description="The artifact variant scoring requests.", examples=["int8"])
    provider: str = Field(description="The ONNX Runtime execution provider.", examples=["CPUExecutionProvider"])
    random_weights: bool = Field(
        description="True for a random-weight stand-in model: its scores mean nothing.", examples=[False]
    )


class TextResult(BaseModel):
    """The scores of one tweet."""

    scores: dict[str, float] = Field(
        description="Probability per label, in the model's label order.", examples=[_SCORES]
    )
    labels: list[str] = Field(
        description="The labels whose probability is at or above their threshold.",
        examples=[["post7geo10", "pre7geo10"]],
    )


class ClassifyResponse(BaseModel):
    """One result per text, in request order."""

    model: ModelInfo
    results: list[TextResult]


class GroupResult(BaseModel):
    """The mean scores of one group."""

    group: str = Field(description="The group key, as given.", examples=["nairobi/2024-06-25"])
    count: int = Field(description="How many tweets the group has.", examples=[412])
    means: dict[str, float] = Field(
        description="Mean probability per label over the group's tweets, in label order.", examples=[_SCORES]
    )
    flags: list[str] = Field(
        description="The labels whose mean is at or above their threshold.", examples=[["post7geo10", "pre7geo10"]]
    )


class AggregateResponse(BaseModel):
    """One result per group, in order of first appearance."""

    model: ModelInfo
    groups: list[GroupResult]


class EmbedResponse(BaseModel):
    """One embedding per text, in request order: the model's pooler output, from the same
    pass that scores the text."""

    model: ModelInfo
    normalized: bool = Field(description="Whether each embedding has unit length.", examples=[True])
    embeddings: list[list[float]] = Field(
        description="Per text, the embedding: as many numbers as the model is wide (768 for smaller-LaBSE).",
        examples=[[[0.031, -0.042, 0.018]]],
    )


class ProbeStatus(BaseModel):
    """The answer of /healthz and /readyz."""

    status: str = Field(
        description="alive (healthz); ready, starting, failed or draining (readyz).", examples=["ready"]
    )


class ErrorDetail(BaseModel):
    """What went wrong."""

    kind: str = Field(description="Stable token naming the problem.", examples=["body_too_large"])
    message: str = Field(description="A sentence naming the problem and any limit.")
    field: str | None = Field(default=None, description="The request field at fault.", examples=["texts[2]"])


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: ErrorDetail
