"""vigil.serve.request_body without a server: the body checks, each at its boundary.

The HTTP tests (test_limits.py, test_hostile_clients.py) show the answers; these pin the
limits themselves, so that an off-by-one or a swapped branch fails here.
"""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("fastapi")

from starlette.requests import Request  # noqa: E402

from vigil.serve.errors import ApiError  # noqa: E402
from vigil.serve.request_body import field_name, parse_body, read_body  # noqa: E402
from vigil.serve.schemas import ClassifyRequest  # noqa: E402

MAX_ITEMS = 3
MOST_COMMAS = 2 * MAX_ITEMS + 8  # what _check_value_count allows outside strings


def texts_body(texts: list[object]) -> bytes:
    return json.dumps({"texts": texts}, separators=(",", ":")).encode()


def refused(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_body(raw, ClassifyRequest, "texts", MAX_ITEMS)
    return caught.value


def test_a_body_within_the_limits_is_parsed() -> None:
    assert parse_body(texts_body(["a", "b", "c"]), ClassifyRequest, "texts", MAX_ITEMS).texts == ["a", "b", "c"]


def test_the_value_count_refuses_one_comma_past_its_bound() -> None:
    over = refused(texts_body(["x"] * (MOST_COMMAS + 2)))  # MOST_COMMAS + 1 commas
    assert (over.status, over.kind, over.field) == (422, "too_many_texts", "texts")
    assert over.message == f"the body holds {MOST_COMMAS + 2} JSON values; texts may have at most 3 entries"


def test_at_the_value_count_bound_the_entries_are_counted_after_parsing() -> None:
    at = refused(texts_body(["x"] * (MOST_COMMAS + 1)))  # MOST_COMMAS commas: passes the count
    assert (at.status, at.kind) == (422, "too_many_texts")
    assert at.message == f"texts has {MOST_COMMAS + 1} entries; the limit is 3"


def test_commas_inside_strings_are_not_values() -> None:
    text = 'say "hi", ' + "," * (2 * MOST_COMMAS)  # escaped quotes do not end the string
    body = texts_body([text, "b"])
    assert body.count(b",") > MOST_COMMAS
    assert parse_body(body, ClassifyRequest, "texts", MAX_ITEMS).texts == [text, "b"]


def test_the_exact_count_decides_when_strings_hold_commas() -> None:
    """Past the quick comma count, values outside strings are counted: at the bound, not refused."""
    at_bound = texts_body(["a,b"] + ["x"] * MOST_COMMAS)  # MOST_COMMAS commas outside strings
    assert at_bound.count(b",") > MOST_COMMAS
    assert refused(at_bound).message == f"texts has {MOST_COMMAS + 1} entries; the limit is 3"
    over = refused(texts_body(["a,b"] + ["x"] * (MOST_COMMAS + 1)))
    assert over.message == f"the body holds {MOST_COMMAS + 2} JSON values; texts may have at most 3 entries"


def test_a_body_that_is_not_an_object_is_a_validation_error() -> None:
    error = refused(b'["a", "b"]')
    assert (error.status, error.kind, error.field) == (422, "validation", "body")


def test_one_entry_past_max_items_is_refused() -> None:
    over = refused(texts_body(["a", "b", "c", "d"]))
    assert over.message == "texts has 4 entries; the limit is 3"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"texts": ["\xff"]}', ": not valid UTF-8 (byte 0xff at byte offset 12)"),
        (b'{"texts": [', ": Expecting value at line 1 column 12"),
        (b"[" * 100_000 + b"]" * 100_000, ": nested too deeply"),
        (b'{"text": ' + b"9" * 5000 + b"}", "to increase the limit"),  # Python's int digit limit
    ],
)
def test_malformed_json_is_400_naming_why(raw: bytes, message: str) -> None:
    error = refused(raw)
    assert (error.status, error.kind) == (400, "malformed_json")
    assert error.message.startswith("the body is not valid JSON: ") and error.message.endswith(message)


def test_validation_errors_name_the_field() -> None:
    error = refused(texts_body(["a", 7]))
    assert (error.status, error.kind, error.field) == (422, "validation", "texts[1]")
    assert error.message.startswith("texts[1]: ")


@pytest.mark.parametrize(
    ("loc", "name"),
    [(("body", "items", 0, "text"), "items[0].text"), (("texts", 2), "texts[2]"), (("body",), "body"), ((), "body")],
)
def test_field_names(loc: tuple[str | int, ...], name: str) -> None:
    assert field_name(loc) == name


def read(raw: bytes, content_type: str | None) -> ClassifyRequest:
    headers = [] if content_type is None else [(b"content-type", content_type.encode())]

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": raw, "more_body": False}

    return asyncio.run(read_body(Request({"type": "http", "headers": headers}, receive), ClassifyRequest, "texts", 8))


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "Application/JSON; charset=UTF-8", "application/json; charset=utf_8",
     "application/json; charset=utf8", "application/vnd.api+json"],
)
def test_json_content_types_are_read(content_type: str | None) -> None:
    assert read(texts_body(["a"]), content_type).texts == ["a"]


def test_a_large_body_parsed_off_the_loop_gives_the_same_model_and_limits() -> None:
    long = "x" * 20_000  # over the 16 KiB that send parsing to a thread
    assert read(texts_body([long, "b"]), "application/json").texts == [long, "b"]
    with pytest.raises(ApiError, match="^texts has 9 entries; the limit is 8$"):
        read(texts_body([long] + ["b"] * 8), "application/json")


def test_a_body_that_is_not_json_is_415() -> None:
    with pytest.raises(ApiError) as caught:
        read(b"a,b", "text/csv")
    assert (caught.value.status, caught.value.kind) == (415, "unsupported_media_type")
    assert caught.value.message.endswith("not 'text/csv'")


def test_a_charset_other_than_utf8_is_400() -> None:
    with pytest.raises(ApiError) as caught:
        read(texts_body(["a"]), "application/json; charset=latin-1")
    assert (caught.value.status, caught.value.kind) == (400, "malformed_json")
    assert caught.value.message.endswith("but the Content-Type says charset=latin-1")
