"""ServeSettings validation, the one error-to-status mapping, and the package's public surface."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest

import vigil.serve
from vigil.runtime import errors
from vigil.serve import ServeSettings, error_status


@pytest.mark.parametrize(
    ("options", "exception"),
    [
        ({"max_body_bytes": 0}, ValueError),
        ({"max_header_bytes": 0}, ValueError),
        ({"max_texts": True}, TypeError),
        ({"max_text_chars": 1.5}, TypeError),
        ({"timeout_s": 0}, ValueError),
        ({"timeout_s": float("inf")}, ValueError),
        ({"timeout_s": "10"}, TypeError),
        ({"retry_after_s": -1}, ValueError),
        ({"api_key": ""}, ValueError),
        ({"api_key": b"bytes"}, TypeError),
        ({"api_key": "key\n"}, ValueError),
        ({"read_timeout_s": 0}, ValueError),
        ({"keep_alive_s": float("nan")}, ValueError),
        ({"graceful_shutdown_s": -1}, ValueError),
        ({"max_concurrency": 0}, ValueError),
    ],
)
def test_settings_refuse_bad_values_naming_them(options: dict, exception: type[Exception]) -> None:
    with pytest.raises(exception, match=next(iter(options))):
        ServeSettings(**options)


def test_settings_never_show_the_key() -> None:
    assert "hunter2" not in repr(ServeSettings(api_key="hunter2"))


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (errors.InputError("x"), 422, "invalid_input"),
        (errors.OverloadedError("x"), 503, "overloaded"),
        (errors.BatcherClosedError("x"), 503, "shutting_down"),
        (errors.BatcherError("x"), 500, "batcher_failed"),
        (errors.ArtifactError("x"), 500, "artifact"),
        (errors.ProviderError("x"), 500, "provider"),
        (errors.VigilError("x"), 500, "internal"),
    ],
)
def test_error_status(error: errors.VigilError, status: int, kind: str) -> None:
    assert error_status(error) == (status, kind)


def test_every_vigil_error_has_a_status() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        example = cls("pyarrow", "files") if cls is errors.MissingDependencyError else cls("x")
        assert error_status(example)[0] in {422, 500, 503}


def test_all_lists_the_public_names() -> None:
    names = vars(vigil.serve).items()
    public = {name for name, value in names if not name.startswith("_") and not isinstance(value, ModuleType)}
    assert sorted(vigil.serve.__all__) == sorted(public)


def test_serve_does_not_load_torch() -> None:
    code = "import sys, vigil.serve, vigil.cli.serve; assert not {'torch', 'transformers'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
