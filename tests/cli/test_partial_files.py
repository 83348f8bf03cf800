"""`vigil classify` leaves no `.partial` file behind: not on SIGTERM or Ctrl-C, nor after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from vigil.cli.main import main

WAIT_S = 60.0  # an upper bound for a condition, never a performance threshold


def _partials(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*.partial"))


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _sigint_as_at_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_removes_the_partial_file(tiny_artifact: Path, tmp_path: Path, signum: int) -> None:
    out = tmp_path / "out.csv"
    command = [sys.executable, "-m", "vigil.cli", "classify", str(tiny_artifact), "-", "-o", str(out), "-q",
               "--provider", "cpu"]
    # stdin stays open, so the command is mid-run (its partial file open) when the signal comes.
    # PYTHONFAULTHANDLER: should it hang after the signal, SIGABRT makes it print every thread's stack.
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    # A command started in the background by a non-interactive shell (as `bash .ci/run &`) inherits
    # SIGINT ignored, and Python keeps it so; a user's Ctrl-C reaches a command that has it.
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               preexec_fn=_sigint_as_at_a_terminal)
    try:
        assert process.stdin is not None
        process.stdin.write(b"a tweet\n" * 100)
        process.stdin.flush()
        _wait_for(lambda: _partials(out) or process.poll() is not None, "the partial file")
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        process.send_signal(signum)
        try:
            process.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            _, stderr = process.communicate(timeout=WAIT_S)
            pytest.fail(f"no exit {WAIT_S:g} s after signal {signum}; its threads:\n{stderr.decode()[-8000:]}")
    finally:
        process.kill()
    assert process.returncode != 0
    assert _partials(out) == []  # before: the SIGTERM run left its partial file
    assert not out.exists()


def test_stale_partials_of_dead_processes_are_removed_on_the_next_run(tiny_artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    dead = tmp_path / ".out.csv.999999999.k3j2h1.partial"  # above any pid_max: no such process
    alive = tmp_path / f".out.csv.{os.getpid()}.x9y8z7.partial"  # a run still writing
    other = tmp_path / ".other.csv.999999999.k3j2h1.partial"
    for path in (dead, alive, other):
        path.write_text("half a file")
    text = tmp_path / "in.txt"
    text.write_text("hello\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(main, ["classify", str(tiny_artifact), str(text), "-o", str(out), "-q",
                                           "--provider", "cpu"])
    assert result.exit_code == 0, result.output
    assert out.exists()
    assert (dead.exists(), alive.exists(), other.exists()) == (False, True, True)

