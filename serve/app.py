"""The ASGI app: FastAPI routes in front of the runtime's `Service` (the dynamic batcher).

Handlers are thin: they check the limits only HTTP has, submit every text of a request to
the Service at once (so its texts share batches with other requests'), await them under
the request's deadline, and shape the answer. Everything else is the runtime's.

Lifecycle, as /readyz reports it:

    starting  the server listens; the Service exists, a warm-up text is on its way
    ready     the warm-up text came back through the batcher: requests are served
    failed    the warm-up failed; the log says why, and requests get 503
    draining  shutdown began: requests still arriving get 503, accepted ones finish

`drain(app)` enters the last state; `vigil.serve.server.Server` calls it the moment
shutdown starts, before uvicorn stops listening and waits for open requests. The lifespan's
shutdown then closes the Service with `wait=True`, so nothing accepted goes unanswered.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from vigil.runtime import BatcherConfig, Classifier, Service, VigilError, aggregate
from vigil.runtime.service import Embedded, Scored

from .body_limit import ARRIVED, BodyLimitMiddleware
from .errors import ApiError, error_response, error_status
from .metrics import Metrics, MetricsMiddleware
from .request_body import document_bodies, field_name, json_body_doc, read_body
from .schemas import (
    AggregateRequest,
    AggregateResponse,
    ClassifyRequest,
    ClassifyResponse,
    EmbedRequest,
    EmbedResponse,
    ErrorResponse,
    GroupResult,
    ModelInfo,
    ProbeStatus,
    TextResult,
)
from .settings import ServeSettings

__all__ = ["Lifecycle", "create_app", "drain"]

_log = logging.getLogger(__name__)

_WARM_UP_TEXT = "RT @vigil: warming up the model before serving https://example.org"

_Answer = TypeVar("_Answer", Scored, Embedded)

# Documented in the OpenAPI schema of every scoring route.
_ERROR_ANSWERS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "The body is not valid JSON (or not UTF-8): kind `malformed_json`.",
        401: "The API key is missing or wrong (only when the server has one).",
        408: "The body did not arrive within the server's read timeout.",
        413: "The body is larger than the server's limit.",
        415: "The declared Content-Type is not JSON.",
        422: "A field has the wrong type, or a limit on texts is exceeded; `field` names it.",
        503: "Not ready, shutting down, or the queue is full; see Retry-After.",
        504: "The request's deadline passed; its unfinished texts were dropped.",
    }.items()
}


class Lifecycle(enum.Enum):
    """Where the app is between start and exit (see the module docstring)."""

    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    DRAINING = "draining"


@dataclass
class _AppState:
    """What the routes share; one per app, kept in `app.state.vigil`."""

    classifier: Classifier
    batcher: BatcherConfig
    settings: ServeSettings
    metrics: Metrics
    model_info: ModelInfo
    lifecycle: Lifecycle = Lifecycle.STARTING
    service: Service | None = None


def create_app(
    classifier: Classifier,
    batcher: BatcherConfig = BatcherConfig(),
    settings: ServeSettings = ServeSettings(),
) -> FastAPI:
    """Build the HTTP app that serves CLASSIFIER through a dynamic batcher.

    The app starts its `Service` in its lifespan and closes it at shutdown; the caller
    keeps owning the classifier and closes it after the server exits. Run the app with
    `vigil.serve.server.Server` so that /readyz turns 503 as soon as shutdown begins.

    Args:
        classifier: An open classifier; its labels, thresholds and variant shape answers.
        batcher: Batch size, batch wait and queue size of the Service.
        settings: Request limits, deadline and optional API key.
    """
    state = _AppState(
        classifier=classifier,
        batcher=batcher,
        settings=settings,
        metrics=Metrics(),
        model_info=ModelInfo(
            variant=classifier.variant, provider=classifier.provider, random_weights=classifier.random_weights
        ),
    )
    app = FastAPI(
        title="vigil",
        version=version("vigil"),
        description="Scores tweets with m2im/smaller_labse_finetuned_twitter (six sigmoid labels) "
        "and gives their sentence embeddings.",
        lifespan=_lifespan,
    )
    app.state.vigil = state
    guarded = [Depends(_require_api_key)] if settings.api_key is not None else []
    app.include_router(_probes)
    app.include_router(_scoring, dependencies=guarded)
    app.include_router(_metrics_route, dependencies=guarded)
    _install_error_handlers(app, state)
    document_bodies(app, [ClassifyRequest, AggregateRequest, EmbedRequest])
    # The last added is outermost: the timer also sees the 413s, which come before routing.
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, read_timeout_s=settings.read_timeout_s,
        on_reject=_count_error(state),
    )
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


def drain(app: FastAPI) -> None:
    """Start draining: /readyz answers 503 and new requests are refused; accepted ones finish."""
    _state_of(app).lifecycle = Lifecycle.DRAINING


def _state_of(app: FastAPI) -> _AppState:
    return app.state.vigil


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the Service and warm it up in the background, and close it at shutdown.

    Both run after the server starts listening, and the Service is built in a worker thread,
    so /healthz answers (and /readyz says 503) while a slow start or first batch runs.
    """
    state = _state_of(app)
    building = asyncio.get_running_loop().run_in_executor(None, _new_service, state)
    start = asyncio.create_task(_start(state, building), name="vigil-start")
    try:
        yield
    finally:
        state.lifecycle = Lifecycle.DRAINING
        start.cancel()
        await asyncio.gather(start, return_exceptions=True)
        (service,) = await asyncio.gather(building, return_exceptions=True)  # lands even now
        if isinstance(service, Service):
            # A thread, so the loop can still deliver answers for batches still in flight.
            await asyncio.to_thread(service.close, wait=True)


async def _start(state: _AppState, building: asyncio.Future[Service]) -> None:
    """Wait for the Service, then send one real text through it; serve only once it came back."""
    try:
        service = await asyncio.shield(building)  # a cancelled start leaves it to the lifespan
        state.service = service
        state.metrics.watch_queue_depth(lambda: service.queue_depth)
        await service.submit_async(_WARM_UP_TEXT)
    except Exception:
        _log.exception("starting the Service failed; the server stays unready")
        state.lifecycle = Lifecycle.FAILED
        return
    if state.lifecycle is Lifecycle.STARTING:
        state.lifecycle = Lifecycle.READY
        _log.info("ready: %s on %s", state.model_info.variant, state.model_info.provider)


def _new_service(state: _AppState) -> Service:
    """Built in a worker thread: opening a Service must never block the event loop."""
    return Service(state.classifier, state.batcher, observer=state.metrics.observe_batch)


# --- dependencies -----------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="The server's API key, when it has one.")

# Every dependency is `async def`, though none awaits: FastAPI runs a plain `def` dependency
# in its thread pool, a round trip through a worker thread per call and per request.


async def _app_state(request: Request) -> _AppState:
    return _state_of(request.app)


AppState = Annotated[_AppState, Depends(_app_state)]


async def _require_api_key(
    state: AppState, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """401 unless the request carries `Authorization: Bearer <the server's key>`."""
    key = state.settings.api_key
    if credentials is None:
        raise ApiError(
            401, "unauthorized", "this server needs an 'Authorization: Bearer <key>' header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Constant time, so that response timing does not reveal how much of a guess was right.
    if key is None or not hmac.compare_digest(credentials.credentials.encode(), key.encode()):
        raise ApiError(
            401, "unauthorized", "the API key is wrong",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


async def _ready_service(state: AppState) -> Service:
    """The Service, or 503 while the app is not ready to score."""
    if state.lifecycle is Lifecycle.READY and state.service is not None:
        return state.service
    if state.lifecycle is Lifecycle.DRAINING:
        raise ApiError(503, "shutting_down", "the server is shutting down", headers=_retry_after(state.settings))
    message = f"the model is not ready to serve ({state.lifecycle.value})"
    raise ApiError(503, "not_ready", message, headers=_retry_after(state.settings))


ReadyService = Annotated[Service, Depends(_ready_service)]


async def _classify_body(request: Request, state: AppState) -> ClassifyRequest:
    """The body, read after the API key is checked and refused early when too big (see request_body)."""
    return await read_body(request, ClassifyRequest, "texts", state.settings.max_texts)


async def _seconds_left(request: Request, state: AppState) -> float:
    """What is left of the request's deadline, which counts from its arrival at the server."""
    arrived = getattr(request.state, ARRIVED, time.monotonic())
    return state.settings.timeout_s - (time.monotonic() - arrived)


SecondsLeft = Annotated[float, Depends(_seconds_left)]


async def _aggregate_body(request: Request, state: AppState) -> AggregateRequest:
    return await read_body(request, AggregateRequest, "items", state.settings.max_texts)


async def _embed_body(request: Request, state: AppState) -> EmbedRequest:
    return await read_body(request, EmbedRequest, "texts", state.settings.max_texts)


# --- routes -----------------------------------------------------------------------------

_probes = APIRouter(tags=["probes"])
_scoring = APIRouter(prefix="/v1", tags=["scoring"], responses=_ERROR_ANSWERS)
_metrics_route = APIRouter(tags=["metrics"])


@_probes.get("/healthz", response_model=ProbeStatus, summary="Liveness: 200 while the process serves.")
async def healthz() -> ProbeStatus:
    """Always 200 while the process answers; never needs the API key."""
    return ProbeStatus(status="alive")


@_probes.get(
    "/readyz",
    response_model=ProbeStatus,
    summary="Readiness: 200 once warmed up, 503 before and while shutting down.",
    responses={503: {"model": ProbeStatus, "description": "Starting, failed or draining."}},
)
async def readyz(state: AppState) -> Any:
    """200 only after a warm-up text went through the batcher; never needs the API key."""
    status = ProbeStatus(status=state.lifecycle.value)
    if state.lifecycle is Lifecycle.READY:
        return status
    return JSONResponse(status.model_dump(), status_code=503, headers=_retry_after(state.settings))


# Probes answer HEAD too (load balancers use it); the schema lists GET only.
for _probe in (healthz, readyz):
    _probes.add_api_route(f"/{_probe.__name__}", _probe, methods=["HEAD"], include_in_schema=False)


@_scoring.post(
    "/classify", response_model=ClassifyResponse, summary="Score one or several tweets.",
    openapi_extra=json_body_doc(ClassifyRequest),
)
async def classify(
    body: Annotated[ClassifyRequest, Depends(_classify_body)], state: AppState, service: ReadyService,
    seconds_left: SecondsLeft, response: Response,
) -> ClassifyResponse:
    """Per text, the probability of every label and the labels at or above threshold."""
    texts = body.all_texts()
    _check_lengths(state.settings, texts, "text" if body.text is not None else "texts[{i}]")
    scored = await _timed(service.score_async(texts), seconds_left, state.settings.timeout_s, response)
    probabilities = scored.probabilities
    labels = state.classifier.labels
    decisions = state.classifier.decide(probabilities)
    return ClassifyResponse(
        model=state.model_info,
        results=[
            TextResult(scores=_by_label(labels, row), labels=_named(labels, flags))
            for row, flags in zip(probabilities, decisions)
        ],
    )


@_scoring.post(
    "/aggregate", response_model=AggregateResponse, summary="Mean scores per group of tweets.",
    openapi_extra=json_body_doc(AggregateRequest),
)
async def aggregate_groups(
    body: Annotated[AggregateRequest, Depends(_aggregate_body)], state: AppState, service: ReadyService,
    seconds_left: SecondsLeft, response: Response,
) -> AggregateResponse:
    """Per group, the mean probability of every label and the labels whose mean is at or
    above threshold: how the model's authors judge a place rather than a single tweet."""
    texts = [item.text for item in body.items]
    _check_lengths(state.settings, texts, "items[{i}].text")
    scored = await _timed(service.score_async(texts), seconds_left, state.settings.timeout_s, response)
    clf = state.classifier
    scores = aggregate(scored.probabilities, [item.group for item in body.items], clf.labels, clf.thresholds)
    return AggregateResponse(
        model=state.model_info,
        groups=[
            GroupResult(
                group=group, count=int(count), means=_by_label(clf.labels, means), flags=_named(clf.labels, flags)
            )
            for group, count, means, flags in zip(scores.groups, scores.counts, scores.means, scores.flags)
        ],
    )


@_scoring.post(
    "/embed", response_model=EmbedResponse, summary="Sentence embeddings of one or several tweets.",
    openapi_extra=json_body_doc(EmbedRequest),
    responses={501: {"model": ErrorResponse, "description": "This server's model cannot embed; the message says why."}},
)
async def embed(
    body: Annotated[EmbedRequest, Depends(_embed_body)], state: AppState, service: ReadyService,
    seconds_left: SecondsLeft, response: Response,
) -> EmbedResponse:
    """Per text, its sentence embedding: smaller-LaBSE's pooler output from the same model pass
    that scores the text, L2-normalised unless `normalize` is false."""
    problem = state.classifier.embedding_problem
    if problem is not None:
        raise ApiError(501, "embeddings_unavailable", f"this server cannot embed: {problem}")
    texts = body.all_texts()
    _check_lengths(state.settings, texts, "text" if body.text is not None else "texts[{i}]")
    work = service.embed_async(texts, normalize=body.normalize)
    embedded = await _timed(work, seconds_left, state.settings.timeout_s, response)
    return EmbedResponse(model=state.model_info, normalized=body.normalize, embeddings=embedded.embeddings.tolist())


@_metrics_route.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics.",
    responses={
        200: {"content": {Metrics.content_type: {}}, "description": "Prometheus text format."},
        401: _ERROR_ANSWERS[401],
    },
)
async def metrics(state: AppState) -> Response:
    """Request latency, batch size and tokens, queue depth and wait, inference time and errors."""
    return Response(state.metrics.render(), media_type=Metrics.content_type)


# --- helpers ----------------------------------------------------------------------------


def _check_lengths(settings: ServeSettings, texts: Sequence[str], text_field: str) -> None:
    """422 naming the field of the first text over the length limit.

    `read_body` has already refused lists with too many entries, before validating them.

    Args:
        text_field: The field of text i, with "{i}" for its index, e.g. "texts[{i}]".
    """
    for i, text in enumerate(texts):
        if len(text) > settings.max_text_chars:
            name = text_field.format(i=i)
            raise ApiError(
                422, "text_too_long", f"{name} has {len(text)} characters; the limit is {settings.max_text_chars}",
                field=name,
            )


async def _timed(work: Awaitable[_Answer], seconds_left: float, timeout_s: float, response: Response) -> _Answer:
    """The Service's answer to WORK (`score_async` or `embed_async` of a request's texts).

    SECONDS_LEFT is what remains of the request's deadline of TIMEOUT_S.

    The Service submits every text before awaiting any, so one request's texts share batches
    with each other's and other requests'; a large request is queued off the event loop, and
    every text is tokenized with its batch, on the Service's threads.
    When the deadline passes or one text fails, every unfinished text is cancelled, which
    drops it from the queue before it costs compute. Sets the timing headers, in
    milliseconds as TEI does: `x-queue-time`, `x-tokenization-time` and `x-inference-time`
    (the longest of its texts') and `x-total-time`.
    """
    started = time.perf_counter()
    try:
        answer = await asyncio.wait_for(work, max(seconds_left, 0.0))
    except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
        raise ApiError(
            504, "deadline_exceeded", f"the request did not finish within its {timeout_s:g} s deadline"
        ) from None
    response.headers["x-queue-time"] = _milliseconds(answer.queue_s)
    response.headers["x-tokenization-time"] = _milliseconds(answer.tokenization_s)
    response.headers["x-inference-time"] = _milliseconds(answer.inference_s)
    response.headers["x-total-time"] = _milliseconds(time.perf_counter() - started)
    return answer


def _milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def _by_label(labels: Sequence[str], values: np.ndarray) -> dict[str, float]:
    return {label: float(value) for label, value in zip(labels, values)}


def _named(labels: Sequence[str], flags: np.ndarray) -> list[str]:
    return [label for label, flag in zip(labels, flags) if flag]


def _retry_after(settings: ServeSettings) -> dict[str, str]:
    return {"Retry-After": str(settings.retry_after_s)}


# --- errors -----------------------------------------------------------------------------


def _count_error(state: _AppState) -> Callable[[ApiError], None]:
    """Count an error answer by kind in the app's metrics."""
    return lambda error: state.metrics.count_error(error.kind)


def _install_error_handlers(app: FastAPI, state: _AppState) -> None:
    """Every failure, whoever raises it, becomes an ApiError answered as JSON and counted."""
    count = _count_error(state)

    def answer(error: ApiError) -> JSONResponse:
        count(error)
        return error_response(error)

    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return answer(exc)

    async def on_vigil_error(request: Request, exc: VigilError) -> JSONResponse:
        status, kind = error_status(exc)
        headers = _retry_after(state.settings) if status == 503 else None
        return answer(ApiError(status, kind, str(exc), headers=headers))

    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return answer(_validation_error(exc))

    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        """The router's own refusals, 404 and 405."""
        detail = str(exc.detail)
        kind = detail.lower().replace(" ", "_")  # "Not Found" -> "not_found"
        return answer(ApiError(exc.status_code, kind, detail, headers=exc.headers))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this answer, so the server logs it.
        return answer(ApiError(500, "internal", "internal server error; the server log has details"))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(VigilError, on_vigil_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


def _validation_error(exc: RequestValidationError) -> ApiError:
    """400 for a body that is not JSON, else 422 naming the first offending field."""
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        reason = first.get("ctx", {}).get("error", first["msg"])
        return ApiError(400, "malformed_json", f"the body is not valid JSON: {reason}")
    field = field_name(first["loc"])
    return ApiError(422, "validation", f"{field}: {first['msg']}", field=field)
