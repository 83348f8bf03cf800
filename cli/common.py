"""What every subcommand shares: one-line errors and quiet third-party progress bars.

Kept apart from `main` so that subcommand modules can import it without importing the
group that registers them.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from vigil.runtime.errors import VigilError

__all__ = ["fails_cleanly", "quiet_transformers"]


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
                click.echo(f"error: {exc}", err=True)
                sys.exit(1)
            except ModuleNotFoundError as exc:
                click.echo(f"error: {exc.name} is not installed: pip install 'vigil[{extra}]'", err=True)
                sys.exit(1)

        return wrapper

    return decorate


def quiet_transformers() -> None:
    """No per-file progress bars from transformers: vigil reports its own steps."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
