"""`vigil bench` hands everything to the checkout's benchmarks, or says why it cannot."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from vigil.cli.bench import bench, benchmarks_command


def test_help_is_the_benchmark_commands() -> None:
    result = CliRunner().invoke(bench, ["--help"])
    assert result.exit_code == 0
    assert "Usage: vigil bench" in result.output and "--quick" in result.output


def test_a_bad_option_is_a_usage_error() -> None:
    result = CliRunner().invoke(bench, ["--contenders", "nope"])
    assert result.exit_code == 2
    assert "unknown contenders ['nope']" in result.output


def test_without_a_checkout_it_says_where_to_get_the_benchmarks(tmp_path: Path) -> None:
    with pytest.raises(click.ClickException, match="not a vigil source checkout|is not one"):
        benchmarks_command(tmp_path)
