"""`vigil bench`: the benchmarks of a vigil source checkout, run from the `vigil` command.

The benchmarks are scripts of the repository (benchmarks/), not part of the installed
package: they need torch, transformers, Optimum and matplotlib, which vigil itself never
does. So this command looks for them beside the installed code, which is where they are
after an editable install of a checkout (`pip install -e .`), and hands its arguments to
`benchmarks.run` unchanged; `vigil bench --help` shows that command's options. Installed
from a wheel, it says where to get them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vigil.cli.common import fails_cleanly

__all__ = ["bench"]

# cli/bench.py in a checkout; site-packages/vigil/cli/bench.py in a wheel install.
CHECKOUT = Path(__file__).resolve().parents[1]


def benchmarks_command(checkout: Path = CHECKOUT) -> click.Command:
    """The `benchmarks.run` command of CHECKOUT.

    Raises:
        click.ClickException: CHECKOUT has no benchmarks/ (vigil was installed from a wheel).
    """
    if not (checkout / "benchmarks" / "run.py").is_file():
        raise click.ClickException(
            f"vigil bench runs the benchmarks of a vigil source checkout, and {checkout} is not one "
            "(no benchmarks/run.py): clone the vigil repository, install it with "
            "`pip install -e '.[export,cpu,bench]'`, and run vigil bench from that install"
        )
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    from benchmarks.run import command

    return command


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,  # --help goes to the benchmark command, which has the options
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@fails_cleanly
def bench(args: tuple[str, ...]) -> None:
    """Speed and accuracy beside the model card's pipeline and peers (source checkouts; see --help)."""
    benchmarks_command().main(list(args), prog_name="vigil bench", standalone_mode=False)
