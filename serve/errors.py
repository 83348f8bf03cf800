"""How failures become HTTP answers: one status, one `kind` and one JSON shape for all.

Every answer that is not a result has the body

    {"error": {"kind": "overloaded", "message": "...", "field": "texts[2]"}}

where `kind` is a stable token for programs, `message` a sentence for people and `field`
(validation errors only) the part of the request at fault. `error_status` is the one place
that maps vigil's exceptions to HTTP status codes; the HTTP layer raises `ApiError` for
what only HTTP knows about (authentication, body size, deadlines).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import JSONResponse

from vigil.runtime.errors import (
    ArtifactError,
    BatcherClosedError,
    BatcherError,
    InputError,
    OverloadedError,
    ProviderError,
    VigilError,
)

__all__ = ["ApiError", "error_status", "error_response"]

# Looked up along the exception's MRO, so the most specific class wins and a VigilError
# added later still maps to a 500 rather than escaping as an unhandled exception.
_STATUS: dict[type[VigilError], tuple[int, str]] = {
    InputError: (422, "invalid_input"),
    OverloadedError: (503, "overloaded"),
    BatcherClosedError: (503, "shutting_down"),
    BatcherError: (500, "batcher_failed"),
    ArtifactError: (500, "artifact"),
    ProviderError: (500, "provider"),
    VigilError: (500, "internal"),
}


def error_status(exc: VigilError) -> tuple[int, str]:
    """The HTTP status and error kind of a vigil exception."""
    return next(_STATUS[cls] for cls in type(exc).__mro__ if cls in _STATUS)


class ApiError(Exception):
    """An error answer: raised anywhere in a request, rendered by one exception handler.

    Args:
        status: HTTP status code.
        kind: Stable token naming the problem, e.g. "body_too_large".
        message: One sentence naming what was wrong and, for a limit, the limit.
        field: The request field at fault, as `texts[2]`, for validation errors.
        headers: Extra response headers, e.g. Retry-After or WWW-Authenticate.
    """

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


def error_response(error: ApiError) -> JSONResponse:
    """The JSON answer for an ApiError."""
    body: dict[str, str] = {"kind": error.kind, "message": error.message}
    if error.field is not None:
        body["field"] = error.field
    return JSONResponse({"error": body}, status_code=error.status, headers=error.headers)
