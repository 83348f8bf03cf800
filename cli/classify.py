"""`vigil classify`: score every tweet of a file with an artifact, streaming, into a table.

The command is thin: it parses options, opens the input (`tables.open_table`) and the
classifier, pairs each batch of `Classifier.iter_batches` probabilities with the rows it
scored by the batch's start index (`vigil.cli.streaming`), and hands rows to a writer
(`tables.open_writer`).
Reading, scoring and writing all stream, so memory stays bounded whatever the size of the
input; with `--group-by`, only one running sum per group is kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import click
import numpy as np

from vigil.files import tables
from vigil.cli.common import fails_cleanly, refuse_overwriting
from vigil.cli.streaming import (
    Scored,
    Thresholds,
    artifact_and_input,
    in_existing_directory,
    open_classifier,
    scored_records,
    with_progress,
)
from vigil.files.tables import Table
from vigil.runtime import Classifier, GroupAccumulator, GroupScores
from vigil.runtime.providers import PROVIDER_CHOICES

__all__ = ["classify"]


def _thresholds(ctx: click.Context, param: click.Parameter, value: str | None) -> Thresholds:
    """Parse `0.4` (every label) or `label=0.3,label=0.7` (those labels).

    Only the syntax is checked here; the classifier refuses unknown labels and values
    outside [0, 1] with an InputError that names them.
    """
    if value is None:
        return None
    try:
        if "=" not in value:
            return float(value)
        pairs = [item.split("=") for item in value.split(",")]
        thresholds = {label.strip(): float(number) for label, number in pairs}
    except ValueError:
        raise click.BadParameter(f"expected a number or label=number,label=number; got {value!r}") from None
    if len(thresholds) != len(pairs):
        raise click.BadParameter(f"a label is given twice in {value!r}")
    return thresholds


def _output(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """None for stdout; otherwise a path whose extension names an output format (any directory with --ray)."""
    if value is None or str(value) == tables.STDIO:
        return None
    on_ray = ctx.params.get("ray_address") is not None  # --ray is eager: parsed before -o
    if not on_ray and tables.format_of(value) not in tables.OUTPUT_FORMATS:
        raise click.BadParameter(f"{value}: the extension must be one of .csv, .jsonl, .parquet")
    return in_existing_directory(value)


@click.command()
@artifact_and_input
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), callback=_output,
              help="Where to write: .csv, .jsonl or .parquet, written in full or not at all. "
                   "[default: CSV on stdout]")
@click.option("--format", "input_format", type=click.Choice(tables.INPUT_FORMATS),
              help="Format of INPUT.  [default: by extension; stdin and other extensions: txt, one tweet a line]")
@click.option("--text-column", default="text", show_default=True,
              help="Column holding the tweets (for txt input: the name of the output's text column).")
@click.option("--group-by", metavar="COLUMN",
              help="Write one row per value of COLUMN (count, mean score and flag per label) instead of one per tweet.")
@click.option("--labels", "with_labels", is_flag=True,
              help="Add a 0/1 column <label>_pred per label: the score is at or above its threshold.")
@click.option("--thresholds", callback=_thresholds, metavar="T|LABEL=T,...",
              help="Decision thresholds in [0, 1]: one for every label, or per label.  [default: the artifact's]")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default="auto", show_default=True)
@click.option("--variant", help="Artifact variant to run (int8, fp32, fp16, fp16-fused).  [default: the provider's]")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", is_eager=True, metavar="[ADDRESS]",
              help="Score on a Ray cluster: join ADDRESS, or start a local one without. INPUT is a Parquet "
                   "file or directory of them; OUTPUT a new Parquet directory.")
@fails_cleanly
def classify(
    artifact: Path,
    input_path: str,
    output: Path | None,
    input_format: str | None,
    text_column: str,
    group_by: str | None,
    with_labels: bool,
    thresholds: Thresholds,
    batch_size: int,
    provider: str,
    variant: str | None,
    quiet: bool,
    ray_address: str | None,
) -> None:
    """Score every tweet of INPUT with the artifact directory ARTIFACT.

    INPUT is a text file (one tweet a line; "-" for stdin), CSV, JSONL or Parquet. Each output
    row is an input row, every column kept, followed by one score per label in label order.
    """
    if group_by and with_labels:
        raise click.UsageError("--labels adds columns per tweet; with --group-by, each group gets <label>_flag columns")
    if ray_address is not None:
        _classify_on_ray(ray_address, artifact, input_path, output, input_format, text_column, group_by,
                         with_labels, thresholds, batch_size, provider, variant, quiet)
        return
    if Path(input_path).is_dir():
        raise click.UsageError(f"{input_path} is a directory; a directory of Parquet files needs --ray")
    fmt = input_format or tables.format_of(input_path) or "txt"
    with tables.open_table(input_path, fmt, text_column) as table:
        table.require(text_column, *([group_by] if group_by else []))
        with open_classifier(artifact, provider, variant, thresholds) as clf:
            scored = with_progress(scored_records(clf, table, text_column, batch_size), table.total, quiet)
            if group_by:
                _write_groups(clf, table, scored, group_by, output)
            else:
                _write_scores(clf, table, scored, with_labels, output)


def _classify_on_ray(
    address: str, artifact: Path, input_path: str, output: Path | None, input_format: str | None,
    text_column: str, group_by: str | None, with_labels: bool, thresholds: Thresholds,
    batch_size: int, provider: str, variant: str | None, quiet: bool,
) -> None:
    """`--ray`: check what only the driver can, then hand over to `vigil.cli.on_ray`.

    The driver's own classifier (CPU: the driver may have no GPU) checks the artifact and the
    thresholds and gives the labels; the actors open theirs on PROVIDER.
    """
    from vigil.cli.on_ray import classify_on_ray, require_ray

    require_ray()
    if output is None:
        raise click.UsageError("--ray writes a Parquet directory: give it with -o")
    if input_format not in (None, "parquet") or input_path == tables.STDIO:
        raise click.UsageError("--ray reads Parquet files only")
    with open_classifier(artifact, "cpu", None, thresholds) as clf:
        classify_on_ray(address, artifact, input_path, output, text_column=text_column, group_by=group_by,
                        with_labels=with_labels, thresholds=thresholds, batch_size=batch_size,
                        provider=provider, variant=variant, quiet=quiet, clf=clf)


def _write_scores(
    clf: Classifier, table: Table, scored: Iterator[Scored], with_labels: bool, output: Path | None
) -> None:
    """One output row per input row: its columns, then the score columns."""
    types = dict.fromkeys(clf.labels, "float32")
    if with_labels:
        types |= dict.fromkeys(_prediction_columns(clf), "int8")
    refuse_overwriting(table, types)
    with tables.open_writer(output, [*(table.columns or ()), *types], types, table.arrow_schema) as writer:
        for records, probs in scored:
            scores = _score_columns(clf, probs, with_labels)
            writer.write([{**row, **row_scores} for (_, row), row_scores in zip(records, scores)])


def _score_columns(clf: Classifier, probs: np.ndarray, with_labels: bool) -> list[dict[str, float | int]]:
    """Per row, a score per label and, with --labels, a 0/1 decision per label."""
    columns = [dict(zip(clf.labels, scores)) for scores in _shortest(probs).tolist()]
    if with_labels:
        for row, decisions in zip(columns, clf.decide(probs).astype(int).tolist()):
            row.update(zip(_prediction_columns(clf), decisions))
    return columns


def _prediction_columns(clf: Classifier) -> list[str]:
    return [f"{label}_pred" for label in clf.labels]


def _shortest(probs: np.ndarray) -> np.ndarray:
    """PROBS as the float64 values of their shortest float32 decimals.

    Written out, a score reads "0.73105854" rather than "0.7310585379600525", and reading it
    back as float32 gives exactly the score the model produced.
    """
    return np.asarray(probs, dtype=np.float32).astype(str).astype(np.float64)


def _write_groups(clf: Classifier, table: Table, scored: Iterator[Scored], group_by: str, output: Path | None) -> None:
    """One output row per group, in order of first appearance: see `aggregate`."""
    accumulator = GroupAccumulator(clf.labels)
    for records, probs in scored:
        accumulator.add([table.key(line, row, group_by) for line, row in records], probs)
    _write_group_scores(accumulator.result(clf.thresholds), clf.labels, output)


def _write_group_scores(scores: GroupScores, labels: Sequence[str], output: Path | None) -> None:
    """Group, count, then the mean and flag of each label, one row per group."""
    types = {"count": "int64"}
    for label in labels:
        types |= {label: "float32", f"{label}_flag": "bool"}
    with tables.open_writer(output, ["group", *types], types) as writer:
        writer.write(scores.to_rows())

