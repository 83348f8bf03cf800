"""What every subcommand shares: one-line errors and quiet third-party progress bars.

Kept apart from `main` so that subcommand modules can import it without importing the
group that registers them.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from vigil.runtime.errors import VigilError

__all__ = ["fail", "fails_cleanly", "quiet_transformers"]


def fail(message: str) -> NoReturn:
    """Print MESSAGE as the one `error: ` line on stderr and exit 1: every refusal reads the same."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def fails_cleanly(extra: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Print a VigilError, or a missing optional dependency, as one line and exit 1.

    EXTRA names the install extra that brings the command's optional dependencies, so the
    hint says exactly what to install.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except VigilError as exc:
                fail(str(exc))
            except ModuleNotFoundError as exc:
                fail(f"{exc.name} is not installed: pip install 'vigil[{extra}]'")

        return wrapper

    return decorate


def quiet_transformers() -> None:
    """No per-file progress bars from transformers: vigil reports its own steps."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
