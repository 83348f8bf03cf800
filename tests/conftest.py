"""Shared fixtures: tiny stand-in checkpoints and artifacts, built locally, never downloaded.

Exporting even a tiny model takes seconds, so each is built once per test session.
Tests that need torch/transformers skip cleanly where the export extra is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TWEETS = Path(__file__).resolve().parents[1] / "data" / "tweets"  # vendored with the repo


def _build_root(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """Where a session builds NAME: a fresh temporary folder, or $VIGIL_TEST_CACHE/NAME.

    The mutation script (scripts/mutation.sh) sets VIGIL_TEST_CACHE so that its many short
    pytest runs build the stand-in once; it empties that folder before each campaign.
    """
    cache = os.environ.get("VIGIL_TEST_CACHE")
    return Path(cache) / name if cache else tmp_path_factory.mktemp(name)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight stand-in with the real config and tokenizer, 2 layers of width 32."""
    standin = pytest.importorskip("vigil.export.standin")
    out = _build_root(tmp_path_factory, "ckpt") / "tiny"
    if not out.is_dir():
        standin.write_standin(out, size=standin.TINY, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_artifact(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny stand-in exported with every variant; treat it as read-only."""
    artifact = pytest.importorskip("vigil.export.artifact")
    out = _build_root(tmp_path_factory, "artifact") / "tiny"
    if not out.is_dir():
        artifact.export_artifact(out, str(tiny_checkpoint))
    return out


@pytest.fixture(scope="session")
def shared_tweets() -> dict[str, list[str]]:
    """The 24,240 real tweets of data/tweets, by language."""
    return {
        # "\n" only: str.splitlines() would also split inside tweets at U+2028 and kin.
        path.stem: path.read_text(encoding="utf-8").rstrip("\n").split("\n")
        for path in sorted(TWEETS.glob("*.txt"))
    }
