"""Every `vigil` refusal, click's own included, is one `error: ` line on stderr and exit status 1."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from vigil.cli.common import fails_cleanly, warn_if_standin
from vigil.cli.main import main


def invoke(*argv: str | Path) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in argv], prog_name="vigil", catch_exceptions=False)


def the_error_line(result: Result) -> str:
    """The one `error: ` line, which is the last line of stderr."""
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith(("error: ", "Error: "))] == lines[-1:], result.stderr
    return lines[-1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope"], "error: No such command 'nope'."),
        (["classify"], "error: Missing argument 'ARTIFACT'."),
        (["classify", "x", "-", "--bogus"], "error: No such option '--bogus'."),
        (["serve", "x", "--port", "many"], "error: Invalid value for '--port': 'many'"),
        (["evaluate"], "error: Missing argument"),
        (["export-triton", "a", "r", "--max-batch-size", "0"], "error: Invalid value for '--max-batch-size'"),
    ],
)
def test_usage_errors_are_one_error_line_and_exit_1(argv: list[str], message: str) -> None:
    result = invoke(*argv)
    assert result.exit_code == 1
    assert the_error_line(result).startswith(message)
    assert result.stderr.startswith("Usage: vigil")  # the usage line stays, above the error


def test_a_click_exception_of_a_command_is_one_error_line(tiny_checkpoint: Path) -> None:
    result = invoke("standin", tiny_checkpoint, "--size", "tiny")  # the directory exists
    assert result.exit_code == 1
    assert the_error_line(result).startswith("error: ") and str(tiny_checkpoint) in result.stderr


def test_help_still_exits_0() -> None:
    result = invoke("classify", "--help")
    assert result.exit_code == 0
    assert "Usage: vigil classify" in result.stdout and not result.stderr


@fails_cleanly
def importing(module: str) -> None:
    importlib.import_module(module)


@pytest.mark.parametrize(("module", "hint"), [
    ("torch.nn", "error: torch is not installed: pip install 'vigil[export]'"),
    ("sklearn", "error: sklearn is not installed: pip install 'vigil[evaluate]'"),
])
def test_a_missing_extra_gets_its_install_hint(
    module: str, hint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # its import raises ModuleNotFoundError
    with pytest.raises(SystemExit) as exited:
        importing(module)
    assert exited.value.code == 1
    assert capsys.readouterr().err == hint + "\n"


@pytest.mark.parametrize("module", ["vigil.nonexistent", "no_such_module_of_any_extra"])
def test_any_other_missing_module_is_not_hidden(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ModuleNotFoundError, match=module):
        importing(module)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("random_weights", [True, False])
def test_the_standin_warning_is_one_line_of_the_one_text(random_weights: bool, capsys: pytest.CaptureFixture[str]) -> None:
    warn_if_standin(random_weights)
    assert capsys.readouterr().err == ("WARNING: RANDOM-WEIGHT STAND-IN: its scores mean nothing\n" if random_weights else "")
