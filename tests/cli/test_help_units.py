"""Every option of a duration says its unit in its help, matching its name's suffix."""

from __future__ import annotations

import click
import pytest

from vigil.cli.main import main

UNITS = {"-ms": "millisecond", "-us": "microsecond", "-s": "second"}


def _duration_options() -> list[tuple[str, str, str]]:
    """(command, option, unit) for every option whose name ends in a unit suffix."""
    found = []
    for name, command in main.commands.items():
        for param in command.params:
            for opt in getattr(param, "opts", ()):
                unit = next((u for suffix, u in UNITS.items() if opt.endswith(suffix)), None)
                if unit and isinstance(param, click.Option):
                    found.append((name, opt, unit))
    return found


def test_the_duration_options_are_found() -> None:
    assert {("serve", "--max-wait-ms"), ("serve", "--timeout-s"), ("export-triton", "--max-queue-delay-us")} <= {
        (name, opt) for name, opt, _ in _duration_options()
    }


@pytest.mark.parametrize(("name", "opt", "unit"), _duration_options())
def test_help_names_the_unit(name: str, opt: str, unit: str) -> None:
    option = next(p for p in main.commands[name].params if opt in getattr(p, "opts", ()))
    assert unit in (option.help or "").lower(), f"vigil {name} {opt}: {option.help!r}"
