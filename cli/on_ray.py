"""`vigil classify --ray`: the same command over a Ray cluster, Parquet in and a Parquet directory out.

Everything that can be wrong with the input is checked on the driver from Parquet footers
and the text column before the cluster is asked to score anything, with the messages of local
`vigil classify`; the scores are then computed by `vigil.distributed` and written by Ray into a
temporary directory next to OUTPUT, renamed to OUTPUT only once every row is written.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vigil.cli.common import refuse_overwriting
from vigil.files import tables
from vigil.files.atomic import renamed_on_success
from vigil.runtime import Classifier
from vigil.runtime.errors import InputError, MissingDependencyError, VigilError

__all__ = ["classify_on_ray", "parquet_files", "require_ray"]

_CONNECT_SECONDS = 5.0  # Ray itself waits on an unreachable address for minutes


def require_ray() -> None:
    """A one-line error with the install hint where Ray Data is not installed."""
    try:
        import ray.data  # noqa: F401
    except ModuleNotFoundError:
        raise MissingDependencyError("Ray Data", "ray", "--ray") from None


def parquet_files(source: str) -> list[Path]:
    """SOURCE itself, or the *.parquet files under the directory SOURCE, in path order."""
    path = Path(source)
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.rglob("*.parquet") if p.is_file() and not p.name.startswith((".", "_")))
    if not files:
        raise InputError(f"{source}: the directory holds no Parquet files (*.parquet)")
    return files


def check_parquet(path: Path, text_column: str, group_by: str | None, new_columns: list[str]) -> None:
    """Fail as local classify would on PATH: unreadable, a missing column, a value that is not a text."""
    with tables.open_table(str(path), "parquet", text_column) as table:
        table.require(text_column, *([group_by] if group_by else []))
        refuse_overwriting(table, new_columns)
        row, value = _first_non_text(path, text_column)
        if row is not None:
            table.text(row, {text_column: value}, text_column)  # raises the local command's error


def _first_non_text(path: Path, column: str) -> tuple[int | None, Any]:
    """The 1-based row and value of the first null or non-string in COLUMN, or (None, None).

    Row groups whose footer statistics count no nulls in a string column are not read.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    index = parquet.schema_arrow.get_field_index(column)
    field_type = parquet.schema_arrow.field(index).type
    is_text = pa.types.is_string(field_type) or pa.types.is_large_string(field_type)
    start = 0
    for group in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(group).num_rows
        stats = parquet.metadata.row_group(group).column(_leaf_index(parquet, column)).statistics
        if rows and not (is_text and stats is not None and stats.null_count == 0):
            values = parquet.read_row_group(group, columns=[column]).column(0)
            bad = pc.is_null(values) if is_text else pa.array([True] * len(values))
            first = pc.index(bad, True).as_py()
            if first >= 0:
                return start + first + 1, values[first].as_py()
        start += rows
    return None, None


def _leaf_index(parquet: Any, column: str) -> int:
    """Index of COLUMN among the Parquet leaf columns, where its statistics are."""
    schema = parquet.metadata.schema
    return [schema.column(i).path for i in range(len(schema))].index(column)


def classify_on_ray(
    address: str,
    artifact: Path,
    input_path: str,
    output: Path,
    *,
    text_column: str,
    group_by: str | None,
    with_labels: bool,
    thresholds: Any,
    batch_size: int,
    provider: str,
    variant: str | None,
    quiet: bool,
    clf: Classifier,
) -> None:
    """Score INPUT_PATH on the Ray cluster at ADDRESS ("" for a new local one) into the directory OUTPUT.

    CLF, opened on the driver, gives the labels and thresholds and has already checked the
    artifact and the options; every actor opens its own.
    """
    from vigil.cli.classify import _prediction_columns, _write_group_scores
    from vigil.distributed import group_scores, score_dataset

    if output.exists():
        raise InputError(f"{output} already exists; --ray writes a new directory")
    files = parquet_files(input_path)
    new_columns = [*clf.labels, *(_prediction_columns(clf) if with_labels else ())]
    for path in files:
        check_parquet(path, text_column, group_by, new_columns)
    with _connected(address, quiet) as ray, renamed_on_success(output, directory=True) as partial:
        # No hive partitioning: the columns are those of the files, as checked above and as locally.
        ds = ray.data.read_parquet([str(path) for path in files], partitioning=None)
        scored = score_dataset(
            ds, artifact.resolve(), text_column=text_column, model_batch_size=batch_size,
            **_pool(ray), provider=provider, variant=variant, thresholds=thresholds, labels=with_labels,
        )
        try:
            if group_by:
                scores = group_scores(scored, group_by, clf.labels, clf.thresholds)
                _write_group_scores(scores, clf.labels, partial / "groups.parquet")
            else:
                scored.write_parquet(str(partial))
        except ray.exceptions.RayError as exc:
            raise _unwrapped(exc) from None


def _pool(ray: Any) -> dict[str, Any]:
    """One actor per GPU where the cluster has GPUs, else one single-threaded actor per CPU.

    A CPU actor reserves half a logical CPU: actors holding every CPU would leave none for
    Ray's read and write tasks, and the job would wait for ever.
    """
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return {"actors": gpus, "gpus_per_actor": 1}
    return {"actors": max(1, int(resources.get("CPU", 1))), "threads": 1, "cpus_per_actor": 0.5}


def _unwrapped(exc: BaseException) -> VigilError:
    """The VigilError inside a Ray error if there is one, else a VigilError with Ray's first line."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, VigilError):
            return cause
        cause = cause.__cause__
    lines = str(exc).strip().splitlines()
    return VigilError(f"the Ray job failed: {lines[-1] if lines else type(exc).__name__}")


@contextmanager
def _connected(address: str, quiet: bool) -> Iterator[Any]:
    """Ray, connected to ADDRESS or to a new local cluster ("") for the block; a connection made
    before (a test's, a notebook's) is used as it is and left open."""
    import ray

    if address:
        _require_reachable(address)
    if ray.is_initialized():
        yield _configured(ray, quiet)
        return
    try:
        ray.init(address=address or None, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=not quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise VigilError(f"cannot join the Ray cluster at {address or 'a new local cluster'}: {exc}") from None
    try:
        yield _configured(ray, quiet)
    finally:
        ray.shutdown()


def _configured(ray: Any, quiet: bool) -> Any:
    """Ray with rows kept in input order and progress bars unless QUIET."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = not quiet
    return ray


def _require_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when nothing listens at ADDRESS (host:port or ray://host:port)."""
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise VigilError(f"--ray {address}: expected HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((parts.hostname, port), timeout=_CONNECT_SECONDS).close()
    except OSError as exc:
        raise VigilError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None
