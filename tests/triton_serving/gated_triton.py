"""`vigil triton-serve` whose infer function can be held, driven over stdin.

Run with .venv-triton's python by test_pytriton.py: the infer function runs in this process,
so the hold lives here. A line "hold" on stdin makes the next batches wait (each prints
"held N" first, N its requests), "open" lets them go. The command line is `vigil`'s.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from vigil.cli.main import main
from vigil.serve.triton import pytriton_app

_open = threading.Event()
_open.set()
_make_infer = pytriton_app.make_infer


def _held_make_infer(clf: Any) -> Callable[[list[Any]], Any]:
    infer = _make_infer(clf)

    def held(requests: list[Any]) -> Any:
        if not _open.is_set():
            print(f"held {len(requests)}", flush=True)
            _open.wait()
        return infer(requests)

    return held


def _follow_stdin() -> None:
    for line in sys.stdin:
        {"hold": _open.clear, "open": _open.set}[line.strip()]()


if __name__ == "__main__":
    pytriton_app.make_infer = _held_make_infer
    threading.Thread(target=_follow_stdin, name="gate", daemon=True).start()
    main()
