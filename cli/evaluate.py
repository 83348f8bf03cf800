"""`vigil evaluate` and `vigil calibrate`: an artifact's figures on labelled tweets, and
decision thresholds chosen on them.

Both are thin: they read the labelled file (`vigil.evaluate.read_labelled`) before the
possibly slow classifier is opened, call `vigil.evaluate` and print. That package needs
scikit-learn (the `evaluate` extra), so it is imported only when one of these commands runs:
the other commands start as fast as before, and a lean install gets a one-line hint.

They share the provider and threshold options of `classify`.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

# main first: it imports classify at its end, and classify imports main.
from vigil.cli.common import fails_cleanly, quiet_transformers
from vigil.cli.classify import _thresholds
from vigil.runtime.providers import PROVIDER_CHOICES
from vigil.runtime.errors import MissingDependencyError
from vigil.runtime.manifest import STANDIN_WARNING
from vigil.files.atomic import write_json_atomic

if TYPE_CHECKING:
    from tqdm import tqdm

    from vigil.evaluate import Calibration, Evaluation, LabelledData, Metrics, Scores

__all__ = ["evaluate_command", "calibrate_command"]

_STDOUT = "-"

_artifact = click.argument("artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))
_data = click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
_variant = click.option("--variant",
                        help="Artifact variant to run (int8, fp32, fp16, fp16-fused).  [default: the provider's]")
_provider = click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default="auto", show_default=True)
_text_column = click.option("--text-column", default="text", show_default=True, help="Column holding the tweets.")
_batch_size = click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
_quiet = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")


@click.command("evaluate")
@_artifact
@_data
@_variant
@_provider
@click.option("--thresholds", callback=_thresholds, metavar="T|LABEL=T,...",
              help="Decision thresholds in [0, 1]: one for every label, or per label.  [default: the artifact's]")
@_text_column
@click.option("--group-by", metavar="COLUMN",
              help="Also measure per group of COLUMN (e.g. a place): its mean scores against its labels, "
                   "which all its rows must share.")
@click.option("--reference", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="CHECKPOINT",
              help="Also score DATA with this PyTorch checkpoint (fp32; needs the export extra) "
                   "and show the differences.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Write every figure as JSON to this file, or to stdout (instead of the table) with '-'.")
@_batch_size
@_quiet
@fails_cleanly
def evaluate_command(
    artifact: Path,
    data: Path,
    variant: str | None,
    provider: str,
    thresholds: float | dict[str, float] | None,
    text_column: str,
    group_by: str | None,
    reference: Path | None,
    json_path: Path | None,
    batch_size: int,
    quiet: bool,
) -> None:
    """Measure the artifact ARTIFACT on DATA, tweets with their true labels.

    DATA is CSV, JSONL or Parquet with a text column and a 0/1 column per label, named
    <label> or <label>_true. Prints ROC-AUC, F1, precision, recall and support per label and
    averaged (micro, macro), at the artifact's thresholds; warns about every label with
    fewer than 5,000 positives or negatives, too few for the model card to trust.
    """
    _require_scikit_learn()
    from vigil.evaluate import evaluate, read_labelled
    from vigil.runtime import Classifier, Manifest

    labelled = read_labelled(data, Manifest.load(artifact).labels, text_column=text_column, group_by=group_by)
    if reference is not None:
        quiet_transformers()
    with Classifier.open(artifact, provider=provider, variant=variant, thresholds=thresholds) as clf:
        with _progress(labelled, quiet) as bar:
            result = evaluate(clf, labelled, reference=reference, batch_size=batch_size, progress=bar.update)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if json_path is None or str(json_path) != _STDOUT:
        click.echo(_evaluation_table(result))
    if json_path is not None:
        _write_json(json_path, result.to_dict())


@click.command("calibrate")
@_artifact
@_data
@click.option("--metric", default="f1", show_default=True,
              help="What each label's threshold maximizes: f1, f0.5 (leaning to precision) or f2 (to recall).")
@_variant
@_provider
@click.option("--min-threshold", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Lowest threshold to choose.")
@click.option("--max-threshold", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Highest threshold to choose.")
@_text_column
@_batch_size
@_quiet
@fails_cleanly
def calibrate_command(
    artifact: Path,
    data: Path,
    metric: str,
    variant: str | None,
    provider: str,
    min_threshold: float,
    max_threshold: float,
    text_column: str,
    batch_size: int,
    quiet: bool,
) -> None:
    """Choose each label's threshold on DATA and write them into ARTIFACT's manifest.

    DATA is labelled as for `vigil evaluate`. The thresholds, and a record of how they were
    chosen, replace the manifest's; `vigil classify` and the runtime then use them unless
    told otherwise. They fit the variant scored here: calibrate the one you will run.
    """
    _require_scikit_learn()
    from vigil.evaluate import CALIBRATION_METRICS, calibrate, read_labelled, write_calibration
    from vigil.runtime import Classifier, Manifest

    if metric not in CALIBRATION_METRICS:
        raise click.BadParameter(f"expected one of {', '.join(CALIBRATION_METRICS)}, got {metric!r}",
                                 param_hint="'--metric'")
    if min_threshold > max_threshold:
        raise click.BadParameter(f"{min_threshold} is above --max-threshold {max_threshold}",
                                 param_hint="'--min-threshold'")
    labelled = read_labelled(data, Manifest.load(artifact).labels, text_column=text_column)
    with Classifier.open(artifact, provider=provider, variant=variant) as clf:
        with _progress(labelled, quiet) as bar:
            result = calibrate(clf, labelled, metric=metric, lo=min_threshold, hi=max_threshold,
                               batch_size=batch_size, progress=bar.update)
        write_calibration(result, clf.manifest)
        header = _header(str(artifact), clf.variant, clf.provider, clf.random_weights, labelled)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo("\n".join([header, "", *_calibration_lines(result)]))
    click.echo(f"\nwrote the thresholds into {artifact / 'manifest.json'}; classify uses them by default")


def _require_scikit_learn() -> None:
    """A one-line error with the install hint, rather than a traceback, without scikit-learn."""
    if importlib.util.find_spec("sklearn") is None:
        raise MissingDependencyError("scikit-learn", "evaluate", "this command")


def _progress(data: LabelledData, quiet: bool) -> tqdm:
    """A stderr progress bar over DATA's tweets (none with --quiet or off a terminal)."""
    from tqdm import tqdm

    return tqdm(total=len(data.texts), unit=" tweets", file=sys.stderr, disable=True if quiet else None)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    if str(path) == _STDOUT:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    try:
        write_json_atomic(path, data)
    except OSError as exc:
        raise click.FileError(str(path), hint=exc.strerror) from None


# ---------------------------------------------------------------------------------------
# Tables


def _header(artifact: str, variant: str, provider: str, random_weights: bool, data: LabelledData) -> str:
    standin = f"  {STANDIN_WARNING}" if random_weights else ""
    return f"{artifact}: variant {variant} on {provider}{standin}\n{data.path}: {len(data.texts):,} tweets"


def _evaluation_table(result: Evaluation) -> str:
    """Per level (tweets, groups): a line per label and average; then the reference's differences."""
    lines = [_header(result.artifact, result.variant, result.provider, result.random_weights, result.data)]
    for metrics in (result.tweets, result.groups):
        if metrics is not None:
            lines += ["", *_metrics_lines(metrics)]
    ref = result.reference
    if ref is not None:
        decisions = result.tweets.count * len(result.tweets.labels)
        lines += [
            "",
            f"reference {ref.checkpoint} (PyTorch fp32): max |probability difference| {ref.max_abs_prob_diff:.2g}, "
            f"{ref.decision_flips:,} of {decisions:,} tweet decisions differ",
        ]
        for mine, theirs in ((result.tweets, ref.tweets), (result.groups, ref.groups)):
            if mine is not None and theirs is not None:
                lines += _difference_lines(mine, theirs)
    return "\n".join(lines)


# The label column, then threshold, positives and negatives: the scores start after _LEAD.
_LEAD = 14 + 10 + 11 + 11
_SCORES_HEADER = f"{'ROC-AUC':>9}{'F1':>9}{'precision':>10}{'recall':>9}"


def _metrics_lines(metrics: Metrics) -> list[str]:
    title = f"{metrics.count:,} {metrics.unit}"
    lines = [f"{title:<14}{'threshold':>10}{'positives':>11}{'negatives':>11}{_SCORES_HEADER}"]
    for name, m in metrics.labels.items():
        lines.append(f"{name:<14}{m.threshold:>10.7g}{m.positives:>11,}{m.negatives:>11,}{_score_cells(m.scores)}")
    lines += [f"{'micro':<{_LEAD}}{_score_cells(metrics.micro)}", f"{'macro':<{_LEAD}}{_score_cells(metrics.macro)}"]
    return lines + [f"note: {note}" for note in metrics.notes]


def _difference_lines(mine: Metrics, theirs: Metrics) -> list[str]:
    lines = [f"{f'{mine.unit}: artifact - reference':<{_LEAD}}{_SCORES_HEADER}"]
    for name, m in mine.labels.items():
        lines.append(f"{name:<{_LEAD}}{_score_cells(m.scores.minus(theirs.labels[name].scores), signed=True)}")
    lines.append(f"{'micro':<{_LEAD}}{_score_cells(mine.micro.minus(theirs.micro), signed=True)}")
    lines.append(f"{'macro':<{_LEAD}}{_score_cells(mine.macro.minus(theirs.macro), signed=True)}")
    return lines


def _score_cells(scores: Scores, signed: bool = False) -> str:
    number = "{:+.4f}" if signed else "{:.4f}"
    cells = ["n/a" if value is None else number.format(value)
             for value in (scores.roc_auc, scores.f1, scores.precision, scores.recall)]
    return f"{cells[0]:>9}{cells[1]:>9}{cells[2]:>10}{cells[3]:>9}"


def _calibration_lines(result: Calibration) -> list[str]:
    metric = result.metric.upper()
    lines = [f"{'label':<14}{'positives':>11}{'negatives':>11}{'threshold':>11}{'new':>11}{metric:>9}{'new':>9}"]
    for name, c in result.labels.items():
        lines.append(
            f"{name:<14}{c.positives:>11,}{c.negatives:>11,}{c.threshold_before:>11.7g}{c.threshold_after:>11.7g}"
            f"{c.before:>9.4f}{c.after:>9.4f}" + (f"  {c.note}" if c.note else "")
        )
    return lines
