"""The one argument check both Triton settings classes need, in the project's wording."""

from __future__ import annotations

__all__ = ["check_int"]


def check_int(what: str, value: object, low: int, high: int | None = None) -> None:
    """TypeError for a non-int (bools too: True is no port), ValueError outside [LOW, HIGH]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{what} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{what} must be <= {high}, got {value!r}")
