"""What every subcommand shares: one-line errors, install hints, the stand-in warning, quiet progress bars.

Kept apart from `main` so that subcommand modules can import it without importing the
group that registers them.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import click
from vigil.runtime.errors import InputError, MissingDependencyError, VigilError
from vigil.runtime.manifest import STANDIN_WARNING

if TYPE_CHECKING:
    from vigil.files.tables import Table

__all__ = ["EXTRAS", "fail", "fails_cleanly", "quiet_transformers", "refuse_overwriting", "warn_if_standin"]


def fail(message: str) -> NoReturn:
    """Print MESSAGE as the one `error: ` line on stderr and exit 1: every refusal reads the same."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


# The vigil extra that installs each optional top-level module (pyproject's optional-dependencies).
EXTRAS = {
    "torch": "export", "transformers": "export", "onnx": "export", "safetensors": "export",
    "pyarrow": "files",
    "fastapi": "serve", "uvicorn": "serve", "prometheus_client": "serve",
    "tritonclient": "triton", "grpc": "triton",
    "sklearn": "evaluate",
    "ray": "ray",
    "matplotlib": "bench",
    "onnxruntime": "cpu",
}


def fails_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print a VigilError, or a missing optional dependency, as one line and exit 1.

    Only a module some extra installs gets the install hint; any other missing module
    (`vigil.nonexistent`, say) is a bug, and keeps its traceback.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except VigilError as exc:
            fail(str(exc))
        except ModuleNotFoundError as exc:
            module = (exc.name or "").partition(".")[0]
            if module not in EXTRAS:
                raise
            fail(str(MissingDependencyError(module, EXTRAS[module])))

    return wrapper


def warn_if_standin(random_weights: bool) -> None:
    """One stderr line when an artifact's weights are a random stand-in: its scores mean nothing."""
    if random_weights:
        click.echo(f"WARNING: {STANDIN_WARNING}", err=True)


def refuse_overwriting(table: Table, new_columns: Iterable[str]) -> None:
    """An input column named like a score column would be silently replaced: refuse it up front.

    Shared by local classify and --ray, which must refuse the same inputs.
    """
    clash = [column for column in new_columns if column in (table.columns or ())]
    if clash:
        raise InputError(
            f"{table.name} already has the columns {', '.join(map(repr, clash))}, "
            "which the scores would overwrite; rename them"
        )


def quiet_transformers() -> None:
    """No per-file progress bars from transformers: vigil reports its own steps."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
