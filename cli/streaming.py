"""What `vigil classify` and `vigil embed` share: their arguments, the classifier, input
records paired with their batches, and the progress bar.

`scored_records` pairs each batch of `Classifier.iter_batches` with the input records it
came from by the batch's start index, so reading, scoring and writing all stream and memory
stays bounded whatever the size of the input.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import numpy as np

from vigil.cli.common import warn_if_standin
from vigil.files.tables import Record, Table
from vigil.runtime import Classifier

__all__ = [
    "Scored",
    "Thresholds",
    "artifact_and_input",
    "in_existing_directory",
    "open_classifier",
    "scored_records",
    "with_progress",
]

Thresholds = float | dict[str, float] | None
Scored = tuple[list[Record], np.ndarray]
"""A batch of input records and their rows: probabilities, or embeddings."""


def artifact_and_input(command: Callable[..., Any]) -> Callable[..., Any]:
    """The arguments ARTIFACT (a directory) and INPUT (a file, or "-" for stdin), in that order."""
    command = click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, allow_dash=True))(command)
    return click.argument("artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))(command)


def in_existing_directory(output: Path) -> Path:
    """OUTPUT, if its directory exists: a usage error now beats a failure after scoring."""
    if not output.parent.is_dir():
        raise click.BadParameter(f"{output}: directory {output.parent} does not exist")
    return output


def open_classifier(
    artifact: Path, provider: str, variant: str | None, thresholds: Thresholds = None, *, embeddings: bool = False
) -> Classifier:
    """The classifier (for EMBEDDINGS: see `Classifier.open`), with one clear stderr line if
    its weights are a random stand-in.

    The engine's own Python warning about a stand-in (two lines with a source line) is
    silenced in favour of that line.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*random-weight stand-in", category=UserWarning)
        clf = Classifier.open(artifact, provider=provider, variant=variant, thresholds=thresholds, embeddings=embeddings)
    warn_if_standin(clf.random_weights)
    return clf


def scored_records(
    clf: Classifier, table: Table, text_column: str, batch_size: int, *, embeddings: bool = False, normalize: bool = True
) -> Iterator[Scored]:
    """Each batch of probabilities (with EMBEDDINGS: of embeddings) with the records it
    scores, in input order.

    `iter_batches` pulls texts as it needs them and says where each batch starts, so `read`
    holds only the records read ahead of the batch being scored, each under its index.
    """
    read: dict[int, Record] = {}

    def texts() -> Iterator[str]:
        for index, (line, row) in enumerate(table.records):
            text = table.text(line, row, text_column)
            read[index] = (line, row)
            yield text

    for batch in clf.iter_batches(texts(), batch_size=batch_size, embeddings=embeddings, normalize=normalize):
        records = [read.pop(index) for index in range(batch.start, batch.start + len(batch.probabilities))]
        yield records, batch.embeddings if embeddings else batch.probabilities


def with_progress(scored: Iterator[Scored], total: int | None, quiet: bool) -> Iterator[Scored]:
    """SCORED, counting tweets on a stderr progress bar (none with --quiet or off a terminal)."""
    from tqdm import tqdm

    with tqdm(total=total, unit=" tweets", file=sys.stderr, disable=True if quiet else None) as bar:
        for records, rows in scored:
            yield records, rows
            bar.update(len(records))
