"""Writes land whole or not at all: the partial is named for its target and removed on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from vigil.files.atomic import renamed_on_success


@pytest.mark.parametrize("directory", [False, True])
def test_success_renames_the_private_partial_onto_the_target(tmp_path: Path, directory: bool) -> None:
    target = tmp_path / "out.csv"
    with renamed_on_success(target, directory=directory) as partial:
        assert partial.name.startswith(f".out.csv.{os.getpid()}.") and partial.name.endswith(".partial")
        assert partial.is_dir() is directory and partial.stat().st_mode & 0o077 == 0  # private while written
        (partial / "x" if directory else partial).write_text("whole")
    assert not partial.exists() and target.exists()
    assert target.stat().st_mode & 0o777 == (0o755 if directory else 0o644)


@pytest.mark.parametrize("directory", [False, True])
@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_a_failure_removes_the_partial_and_leaves_the_target_alone(tmp_path: Path, directory: bool, failure) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(failure), renamed_on_success(target, directory=directory) as partial:
        (partial / "x" if directory else partial).write_text("half")
        raise failure
    assert list(tmp_path.iterdir()) == [target] and target.read_text() == "old"


def test_a_sigterm_that_lands_in_a_callback_whose_errors_are_ignored_still_ends_the_block(tmp_path: Path) -> None:
    # Python runs a signal handler at whatever bytecode comes next, which may be inside a
    # weakref callback (importlib's module locks have one): the SystemExit raised there is
    # printed as "Exception ignored" and dropped, and the run went on as if never signalled.
    import signal
    import weakref

    class Anything:
        pass

    def signalled_inside(_: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # the handler runs here, inside the callback

    target = tmp_path / "out.csv"
    installed = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # e.g. Ray's, from an earlier test
    try:
        with pytest.raises(SystemExit) as ended, renamed_on_success(target):
            doomed = Anything()
            ref = weakref.ref(doomed, signalled_inside)
            del doomed  # the callback runs, and swallows what the handler raised in it
            for _ in range(10_000_000):  # the signal must still end the block, here
                pass
    finally:
        signal.signal(signal.SIGTERM, installed)
    assert ended.value.code == 143 and ref() is None
    assert list(tmp_path.iterdir()) == []
