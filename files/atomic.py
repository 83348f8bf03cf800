"""Writes that land whole or not at all: a file or directory is built under a temporary
name next to its target and renamed into place only when it is complete.

The temporary name is `.NAME.PID.XXXX.partial`. It is removed on any error, on Ctrl-C and on
SIGTERM; one left by a killed run (SIGKILL, power loss) is removed by the next run writing
the same target, once the process named by its PID is gone.
"""

from __future__ import annotations

import _thread
import glob
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["renamed_on_success", "write_json_atomic", "move_into_place"]


@contextmanager
def renamed_on_success(target: Path, *, directory: bool = False) -> Iterator[Path]:
    """A new temporary file (or DIRECTORY) next to TARGET, moved onto TARGET when the block
    succeeds, replacing what was there, and removed when it fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    # Named before it exists, so that a signal at any point after creation finds the name to remove.
    partial = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(6)}.partial"
    try:
        with _sigterm_raises():
            if directory:
                partial.mkdir(mode=0o700)
            else:
                os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            yield partial
        partial.chmod(0o755 if directory else 0o644)  # private while written; results are shared
        move_into_place(partial, target)
    except BaseException:
        if directory:
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write DATA as JSON to PATH, so that a reader never sees half a file."""
    with renamed_on_success(path) as partial, open(partial, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")


def move_into_place(work: Path, target: Path) -> None:
    """Rename the finished WORK to TARGET, replacing an existing TARGET.

    A file is replaced in one rename. An old directory is renamed aside first and removed
    only after the swap, so a reader sees either the old directory or the new one, never a
    mix or nothing for long.
    """
    if not target.is_dir() or target.is_symlink():
        os.replace(work, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()
    target.rename(old)
    work.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Make SIGTERM raise SystemExit(143) for the block, as SIGINT raises KeyboardInterrupt,
    so that cleanup runs. Only where Python allows it (the main thread) and only over the
    default action: a handler someone installed is left alone.

    Python runs a signal handler at the next bytecode, which may lie inside a callback
    whose exceptions it ignores (a weakref callback: importlib's module locks have one).
    The exception is then only reported to `sys.unraisablehook` and the block runs on, so
    for the block that hook delivers a dropped Ctrl-C or SIGTERM again.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    reported = sys.unraisablehook

    def deliver_again(unraisable: Any) -> None:
        error = unraisable.exc_value
        if isinstance(error, KeyboardInterrupt):
            signum = signal.SIGINT
        elif isinstance(error, SystemExit) and error.code == 128 + signal.SIGTERM:
            signum = signal.SIGTERM
        else:
            return reported(unraisable)
        # From another thread, a moment later: raised inside this hook, it would be dropped
        # again. Should it land in such a callback once more, it comes back here.
        timer = threading.Timer(0.01, _thread.interrupt_main, (signum,))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, terminate)
    sys.unraisablehook = deliver_again
    try:
        yield
    finally:
        sys.unraisablehook = reported
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _remove_stale_partials(path: Path) -> None:
    """Remove the partial files and directories of PATH whose writing process is gone."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        pid = stale.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
