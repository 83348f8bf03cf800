"""The `vigil` command line.

Each subcommand only parses its arguments, calls the library and turns a `VigilError` into
one line on stderr with exit status 1; the group does the same for click's own errors (a bad
option, a missing argument), so every refusal reads `error: <message>` and exits 1. Heavy imports (torch for export) happen inside the
subcommand that needs them, so `vigil classify` starts fast on a lean install.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
from vigil.cli.bench import bench
from vigil.cli.classify import classify
from vigil.cli.common import fail, fails_cleanly, quiet_transformers, warn_if_standin
from vigil.cli.embed import embed
from vigil.cli.evaluate import calibrate_command, evaluate_command
from vigil.cli.serve import serve
from vigil.cli.triton import export_triton, triton_serve

__all__ = ["main"]


class _OneErrorFormat(click.Group):
    """The `vigil` group: click's errors, too, end as one `error: ` line and exit status 1.

    Click alone prints `Error: ...` and exits 2 for usage errors; scripts calling vigil
    should need to check one format and one status.
    """

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:  # the caller handles click's exceptions itself
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            exit_code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()  # a bare `vigil`: the help, not an error line
            sys.exit(1)
        except click.UsageError as exc:
            if exc.ctx is not None:
                click.echo(exc.ctx.get_usage(), err=True)
            fail(exc.format_message())
        except click.ClickException as exc:
            fail(exc.format_message())
        except click.Abort:
            fail("aborted")
        # Non-standalone click returns the code of an explicit exit (0 after --help);
        # vigil's commands return None.
        sys.exit(exit_code if isinstance(exit_code, int) else 0)


@click.group(cls=_OneErrorFormat)
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
def main(verbose: bool) -> None:
    """vigil: fast, exact inference for the m2im/smaller_labse_finetuned_twitter classifier."""
    # Our own progress goes to stderr; the chatter of ONNX Runtime's transformer tools
    # and of transformers (warnings about expected conversions) only with --verbose.
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(message)s", stream=sys.stderr)
    logging.getLogger("vigil").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("vigil.export").setLevel(logging.INFO)  # a full export runs for minutes


@main.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--size", type=click.Choice(["full", "tiny"]), default="full", show_default=True,
              help="full: the real model's 12x768 architecture; tiny: 2x32, for tests.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights.")
@click.option("--vocab", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="WordPiece vocabulary (default: the smaller-LaBSE vocab shipped with vigil).")
@fails_cleanly
def standin(out: Path, size: str, seed: int, vocab: Path | None) -> None:
    """Write a RANDOM-WEIGHT stand-in checkpoint with the real model's config and tokenizer."""
    from vigil.export.standin import FULL, TINY, write_standin

    quiet_transformers()
    try:
        write_standin(out, size=FULL if size == "full" else TINY, seed=seed, vocab_file=vocab)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote a RANDOM-WEIGHT stand-in checkpoint (seed {seed}) to {out}")


@main.command("export")
@click.argument("paths", nargs=-1, required=True, metavar="[SOURCE] OUT")
@click.option("--revision", help="Hub revision (branch, tag or commit) of SOURCE.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--sample", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Validate on these tweets (one per line) instead of the bundled sample.")
@click.option("--variants", default="fp16,fp32,int8", show_default=True,
              help="Comma-separated variants to write; fp16 is required (fp16-fused comes with it).")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Calibrate int8 on these tweets (one per line; default: the bundled calibration sample).")
@fails_cleanly
def export_command(
    paths: tuple[str, ...], revision: str | None, force: bool, sample: Path | None, variants: str,
    calibration: Path | None,
) -> None:
    """Export SOURCE (hub id or directory; default: the real model) to the artifact directory OUT."""
    from vigil.export.artifact import export_artifact, parse_variants
    from vigil.export.checkpoint import DEFAULT_SOURCE

    if len(paths) > 2:
        raise click.UsageError("expected [SOURCE] OUT")
    source, out = (DEFAULT_SOURCE, paths[0]) if len(paths) == 1 else paths
    wanted = parse_variants(variants)
    quiet_transformers()
    manifest = export_artifact(out, source, revision=revision, force=force, sample_file=sample,
                               variants=wanted, calibration_file=calibration)
    _print_export_summary(out, manifest)


def _print_export_summary(out: str, manifest: dict[str, Any]) -> None:
    warn_if_standin(manifest["source"]["random_weights"])
    if "int8_omitted" in manifest:
        click.echo(f"WARNING: no int8 variant: {manifest['int8_omitted']['reason']}; CPUs run fp32", err=True)
    for name, variant in manifest["variants"].items():
        if not variant["pooled_validation"]["passed"]:  # only int8's are kept (see vigil.export.validate)
            click.echo(f"WARNING: {name}'s embeddings miss their tolerance: it scores, and fp32 embeds", err=True)
    click.echo(f"exported {manifest['source']['id']} to {out} in {manifest['export_seconds']} s")
    for name, variant in manifest["variants"].items():
        v = variant["validation"]
        fusions = variant.get("fusions")
        quantization = variant.get("quantization")
        click.echo(
            f"  {name:<10} {variant['size_bytes'] / 2**20:7.1f} MiB  "
            f"max|dp| {v['max_abs_prob_diff']:.1e}  max|dlogit| {v['max_abs_logit_diff']:.1e}  "
            f"labels {v['label_agreement']:.2%} agree  "
            f"pooled max 1-cos {1 - variant['pooled_validation']['min_cosine']:.1e}"
            + (f"  fused {fusions}" if fusions else "")
            + (_int8_choice(quantization) if quantization else "")
        )


def _int8_choice(quantization: dict[str, Any]) -> str:
    """What int8's accuracy ladder settled on: its weight type and any layers left in fp32."""
    layers = quantization["steps"][-1]["fp32_layers"]
    return f"  {quantization['weights']} weights" + (f", fp32 {', '.join(layers)}" if layers else "")
for _command in (classify, embed, evaluate_command, calibrate_command, serve, export_triton, triton_serve, bench):
    main.add_command(_command)
