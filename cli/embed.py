"""`vigil embed`: the sentence embedding of every tweet of a file, streaming, into .npy or Parquet.

It reads as `vigil classify` does (any input format, `tables.open_table`, a progress bar) and
runs the same model pass (`Classifier.iter_batches(..., embeddings=True)`), whose embeddings
come back in input order. A `.npy` file holds the float32 [n, width] matrix alone, row i for
input row i; Parquet keeps every input column and adds `embedding`, a fixed-size list of
float32. Either is written under a temporary name and renamed into place only when complete.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click

from vigil.cli.common import fails_cleanly, refuse_overwriting
from vigil.cli.streaming import (
    Scored,
    artifact_and_input,
    in_existing_directory,
    open_classifier,
    scored_records,
    with_progress,
)
from vigil.files import tables
from vigil.files.npy import open_npy_writer
from vigil.files.tables import Table
from vigil.runtime.providers import PROVIDER_CHOICES

__all__ = ["COLUMN", "embed"]

COLUMN = "embedding"  # the Parquet output's added column
_SUFFIXES = (".npy", ".parquet")


def _output(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """A path ending in .npy or .parquet, in a directory that exists."""
    if value.suffix.lower() not in _SUFFIXES:
        raise click.BadParameter(f"{value}: the extension must be one of {', '.join(_SUFFIXES)}")
    return in_existing_directory(value)


@click.command()
@artifact_and_input
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), callback=_output,
              help="Where to write: .npy (the float32 [n, width] matrix, row i for input row i) or .parquet "
                   f"(every input column, then {COLUMN!r}), written in full or not at all.")
@click.option("--format", "input_format", type=click.Choice(tables.INPUT_FORMATS),
              help="Format of INPUT.  [default: by extension; stdin and other extensions: txt, one tweet a line]")
@click.option("--text-column", default="text", show_default=True, help="Column holding the tweets.")
@click.option("--raw", is_flag=True, help="Write the raw pooler output instead of L2-normalised embeddings.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default="auto", show_default=True)
@click.option("--variant", help="Artifact variant to run (int8, fp32, fp16, fp16-fused).  [default: the provider's]")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@fails_cleanly
def embed(
    artifact: Path,
    input_path: str,
    output: Path,
    input_format: str | None,
    text_column: str,
    raw: bool,
    batch_size: int,
    provider: str,
    variant: str | None,
    quiet: bool,
) -> None:
    """Write the sentence embedding of every tweet of INPUT, made with the artifact directory ARTIFACT.

    INPUT is a text file (one tweet a line; "-" for stdin), CSV, JSONL or Parquet. The
    embedding is smaller-LaBSE's pooler output, L2-normalised, from the pass that scores the tweet.
    """
    if Path(input_path).is_dir():
        raise click.UsageError(f"{input_path} is a directory; give one file")
    fmt = input_format or tables.format_of(input_path) or "txt"
    with tables.open_table(input_path, fmt, text_column) as table:
        table.require(text_column)
        with open_classifier(artifact, provider, variant, embeddings=True) as clf:
            width = clf.embedding_width  # an artifact without embeddings fails here, before any output
            embedded = scored_records(clf, table, text_column, batch_size, embeddings=True, normalize=not raw)
            rows = with_progress(embedded, table.total, quiet)
            if output.suffix.lower() == ".npy":
                _write_npy(rows, output, width)
            else:
                _write_parquet(table, rows, output, width)


def _write_npy(embedded: Iterator[Scored], output: Path, width: int) -> None:
    with open_npy_writer(output, width) as writer:
        for _, embeddings in embedded:
            writer.write(embeddings)


def _write_parquet(table: Table, embedded: Iterator[Scored], output: Path, width: int) -> None:
    """One output row per input row: its columns, then its embedding."""
    refuse_overwriting(table, [COLUMN])
    types = {COLUMN: f"float32[{width}]"}
    with tables.open_writer(output, [*(table.columns or ()), COLUMN], types, table.arrow_schema) as writer:
        for records, embeddings in embedded:
            writer.write([{**row, COLUMN: vector} for (_, row), vector in zip(records, embeddings)])
