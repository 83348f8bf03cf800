"""`vigil serve`, with the model held after its warm-up until a line arrives on stdin.

Run as a script by the SIGTERM test (test_shutdown.py): uvicorn handles signals only on the
main thread of its own process, so the hold lives in that process and stdin is the test's
hand on it. The command line is `vigil serve`'s.
"""

from __future__ import annotations

import itertools
import sys
import threading

import numpy as np

from vigil.cli.serve import serve
from vigil.runtime import Classifier

_opened = threading.Event()
_calls = itertools.count()
_score = Classifier.score


def _held_score(self: Classifier, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if next(_calls) > 0:  # the warm-up goes through, so the server becomes ready
        _opened.wait()
    return _score(self, ids, mask)


def _open_on_a_line() -> None:
    sys.stdin.readline()
    _opened.set()


if __name__ == "__main__":
    Classifier.score = _held_score  # type: ignore[method-assign]
    threading.Thread(target=_open_on_a_line, name="gate", daemon=True).start()
    serve()
