"""`vigil serve` parses options into the library's configs; the server itself is stubbed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vigil.cli.serve import serve
from vigil.runtime import BatcherConfig
from vigil.runtime.model import Replicas
from vigil.serve import ServeSettings

pytestmark = pytest.mark.filterwarnings("ignore:.*random-weight stand-in")


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the blocking server run with one that records what it was given."""
    calls: dict[str, Any] = {}

    def run(app: Any, **options: Any) -> None:
        calls.update(options, state=app.state.vigil)

    monkeypatch.setattr("vigil.serve.run", run)
    return calls


def test_options_reach_the_configs(
    tiny_artifact: Path, started: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_TEST_KEY", "k3y")
    result = CliRunner().invoke(serve, [
        str(tiny_artifact), "--port", "9001", "--provider", "cpu", "--variant", "fp32", "--max-batch-size", "16",
        "--max-wait-ms", "5", "--queue-size", "100", "--max-body-bytes", "2048", "--max-header-bytes", "4096",
        "--max-texts", "8", "--max-text-chars", "280", "--timeout-s", "2.5", "--api-key-env", "VIGIL_TEST_KEY",
    ])
    assert result.exit_code == 0, result.output
    state = started["state"]
    assert (started["host"], started["port"]) == ("127.0.0.1", 9001)  # loopback unless told otherwise
    assert state.batcher == BatcherConfig(max_batch_size=16, max_wait_s=0.005, queue_size=100)
    assert state.settings == ServeSettings(
        max_body_bytes=2048, max_header_bytes=4096, max_texts=8, max_text_chars=280, timeout_s=2.5, api_key="k3y"
    )
    assert state.classifier.variant == "fp32"


def test_replicas_and_threads_reach_the_model(tiny_artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models: list[Any] = []
    monkeypatch.setattr("vigil.serve.run", lambda app, **_: models.append(app.state.vigil.classifier.model))
    result = CliRunner().invoke(serve, [str(tiny_artifact), "--provider", "cpu", "--replicas", "2", "--threads", "3"])
    assert result.exit_code == 0, result.output
    (model,) = models
    assert isinstance(model, Replicas) and model.concurrency == 2
    assert [r.session.get_session_options().intra_op_num_threads for r in model.replicas] == [3, 3]


def test_unset_options_keep_the_library_defaults(tiny_artifact: Path, started: dict[str, Any]) -> None:
    result = CliRunner().invoke(serve, [str(tiny_artifact), "--provider", "cpu"])
    assert result.exit_code == 0, result.output
    assert started["state"].batcher == BatcherConfig()
    assert started["state"].settings == ServeSettings()


def test_help_quotes_the_library_defaults() -> None:
    """The help states defaults it does not set; this keeps the two from drifting apart."""
    help_text = " ".join(CliRunner().invoke(serve, ["--help"]).output.split())
    option_with_default = r"--([a-z-]+) \S+ RANGE [^[]*\[default: ([\d.]+)\]"
    quoted = {m.group(1): float(m.group(2)) for m in re.finditer(option_with_default, help_text)}
    batcher, settings = BatcherConfig(), ServeSettings()
    assert quoted == {
        "max-batch-size": batcher.max_batch_size,
        "max-wait-ms": batcher.max_wait_s * 1000,
        "queue-size": batcher.queue_size,
        "max-body-bytes": settings.max_body_bytes,
        "max-header-bytes": settings.max_header_bytes,
        "max-texts": settings.max_texts,
        "max-text-chars": settings.max_text_chars,
        "timeout-s": settings.timeout_s,
        "read-timeout-s": settings.read_timeout_s,
        "keep-alive-s": settings.keep_alive_s,
        "graceful-shutdown-s": settings.graceful_shutdown_s,
        "max-concurrency": settings.max_concurrency,
    }


def test_missing_key_variable_refuses_to_start(
    tiny_artifact: Path, started: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIGIL_TEST_KEY", raising=False)
    result = CliRunner().invoke(serve, [str(tiny_artifact), "--api-key-env", "VIGIL_TEST_KEY"])
    assert result.exit_code == 2
    assert "VIGIL_TEST_KEY is not set" in result.output
    assert not started


def test_a_key_read_with_a_trailing_newline_is_stripped(
    tiny_artifact: Path, started: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_TEST_KEY", "k3y\n")
    result = CliRunner().invoke(serve, [str(tiny_artifact), "--provider", "cpu", "--api-key-env", "VIGIL_TEST_KEY"])
    assert result.exit_code == 0, result.output
    assert started["state"].settings.api_key == "k3y"


def test_connection_options_reach_the_settings(tiny_artifact: Path, started: dict[str, Any]) -> None:
    result = CliRunner().invoke(serve, [
        str(tiny_artifact), "--provider", "cpu", "--read-timeout-s", "3", "--keep-alive-s", "2",
        "--graceful-shutdown-s", "9", "--max-concurrency", "50",
    ])
    assert result.exit_code == 0, result.output
    settings = started["state"].settings
    assert (settings.read_timeout_s, settings.keep_alive_s, settings.graceful_shutdown_s, settings.max_concurrency) == (
        3, 2, 9, 50
    )


def test_bad_artifact_is_one_line(tmp_path: Path, started: dict[str, Any]) -> None:
    result = CliRunner().invoke(serve, [str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "manifest.json" in result.output
    assert not started
