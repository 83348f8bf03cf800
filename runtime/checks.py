"""Argument checks shared by every config and entry point of vigil.

They reject bools too (`True` is an int to Python but never a size or a limit to a user),
and return the checked value so that a caller can check and assign in one line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .errors import InputError

__all__ = ["require_int", "require_ints", "require_number", "require_seconds", "require_texts"]


def require_int(name: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """VALUE as an int in [MINIMUM, MAXIMUM]; TypeError or ValueError naming NAME otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return value


def require_ints(name: str, values: tuple[int, ...], minimum: int = 1) -> tuple[int, ...]:
    """One or more ints, each >= MINIMUM."""
    if not values:
        raise ValueError(f"{name} must hold at least one value, got {values!r}")
    for value in values:
        require_int(name, value, minimum)
    return values


def require_number(name: str, value: object, *, positive: bool = False, unit: str = "") -> float:
    """A finite number >= 0, or > 0 when POSITIVE; UNIT (say "seconds") goes into the message.

    Infinity is refused because threading waits overflow on it.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number{' of ' + unit if unit else ''}, got {value!r}")
    if not math.isfinite(value) or not (value > 0 if positive else value >= 0):
        raise ValueError(f"{name} must be a finite number {'>' if positive else '>='} 0, got {value!r}")
    return float(value)


def require_seconds(name: str, value: object, *, positive: bool = False) -> float:
    """A duration: >= 0, or > 0 when POSITIVE (a zero deadline would fail every request)."""
    return require_number(name, value, positive=positive, unit="seconds")


def require_texts(texts: Sequence[object], start: int = 0) -> None:
    """InputError naming the first item of TEXTS that is not a str, by its index plus START
    (the index of `texts[0]` in the caller's whole input)."""
    if not all(isinstance(text, str) for text in texts):
        index, item = next((i, t) for i, t in enumerate(texts) if not isinstance(t, str))
        raise InputError(f"text {start + index} is {type(item).__name__}, not str")
