"""Reading a scoring request's JSON body: cheap refusals first, then pydantic.

FastAPI's own body handling parses and validates a whole body before any route code runs:
a 1 MiB list of 240,000 bad items cost seconds of event-loop time building 480,000 error
objects, before the handler could say "too many texts"; a body it cannot parse was answered
before the API key was checked; and a form content type (what `curl -d` sends) turned
valid JSON into a 422. So the scoring routes take their body through `read_body`, a
dependency that runs after authentication and:

1. answers 415 for a declared content type that is not JSON (none at all means JSON);
2. decodes strictly as UTF-8 (RFC 8259) and parses with the stdlib; anything that fails,
   nesting too deep included, is a 400 with the kind `malformed_json`;
3. refuses a list longer than the limit before a single item is validated, and a body
   with more JSON values than any acceptable one before it is even parsed: the stdlib
   parser holds the GIL, so parsing 500,000 ints would stall the loop for ~100 ms even
   from a worker thread;
4. validates with the pydantic model and reports the first error only.

Bodies larger than `_OFFLOAD_BYTES` are parsed and validated on a worker thread, so that
the loop keeps serving other requests (the GIL switches between them every few ms).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from email.message import Message
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic.json_schema import models_json_schema

from .errors import ApiError

__all__ = ["read_body", "field_name", "json_body_doc", "document_bodies"]

_OFFLOAD_BYTES = 16 * 1024
_TOP_LEVEL_COMMAS = 8
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included
_REF = "#/components/schemas/{model}"

Model = TypeVar("Model", bound=BaseModel)


async def read_body(request: Request, model: type[Model], list_field: str, max_items: int) -> Model:
    """The body of REQUEST as MODEL; ApiError (415, 400 or 422) naming the problem.

    Args:
        list_field: The model's list of texts or items, refused when over MAX_ITEMS entries.
    """
    _check_content_type(request.headers.get("content-type"))
    raw = await request.body()
    if len(raw) > _OFFLOAD_BYTES:
        return await asyncio.to_thread(parse_body, raw, model, list_field, max_items)
    return parse_body(raw, model, list_field, max_items)


def parse_body(raw: bytes, model: type[Model], list_field: str, max_items: int) -> Model:
    """RAW as MODEL (see `read_body`); pure, so it can run on any thread."""
    _check_value_count(raw, list_field, max_items)
    data = _parse_json(raw)
    entries = data.get(list_field) if isinstance(data, dict) else None
    if isinstance(entries, list) and len(entries) > max_items:
        message = f"{list_field} has {len(entries)} entries; the limit is {max_items}"
        raise ApiError(422, "too_many_texts", message, field=list_field)
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        field = field_name(first["loc"])
        raise ApiError(422, "validation", f"{field}: {first['msg']}", field=field) from None


def _check_value_count(raw: bytes, list_field: str, max_items: int) -> None:
    """422 when RAW has more commas outside strings than a body of MAX_ITEMS entries can.

    An entry of either model holds at most one comma (`{"text": ..., "group": ...}`), the
    list one between entries, and the top-level object a few more.
    """
    most = 2 * max_items + _TOP_LEVEL_COMMAS
    if raw.count(b",") <= most:  # the usual case, in microseconds
        return
    values = _STRING.sub(b'""', raw).count(b",") + 1
    if values > most + 1:
        message = f"the body holds {values} JSON values; {list_field} may have at most {max_items} entries"
        raise ApiError(422, "too_many_texts", message, field=list_field)


def field_name(loc: Sequence[str | int]) -> str:
    """("texts", 2) -> "texts[2]"; ("body", "items", 0, "text") -> "items[0].text"."""
    name = ""
    for part in loc[1:] if loc[:1] == ("body",) else loc:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "body"


def _check_content_type(value: str | None) -> None:
    """415 unless the declared type is JSON; a missing Content-Type is taken as JSON."""
    if value is None:
        return
    message = Message()
    message["content-type"] = value
    media = message.get_content_type()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(
            415, "unsupported_media_type",
            f"the body must be JSON sent as 'Content-Type: application/json', not {media!r}",
        )
    charset = message.get_param("charset")
    if isinstance(charset, str) and charset.lower().replace("_", "-") not in {"utf-8", "utf8"}:
        raise _malformed(f"JSON is UTF-8, but the Content-Type says charset={charset}")


def _parse_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte offset {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _malformed(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise _malformed("nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise _malformed(str(exc)) from None


def _malformed(reason: str) -> ApiError:
    return ApiError(400, "malformed_json", f"the body is not valid JSON: {reason}")


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` of a route whose body `read_body` reads as MODEL."""
    schema = {"$ref": _REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def document_bodies(app: FastAPI, models: Sequence[type[BaseModel]]) -> None:
    """Add MODELS to APP's OpenAPI components: FastAPI lists only the bodies it parses itself."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            _, definitions = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions["$defs"])
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
