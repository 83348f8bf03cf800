"""Fixtures of the server tests: the tiny stand-in classifier and live servers over it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")

from serve_harness import GatedClassifier, Live, live_server  # noqa: E402

from vigil.runtime import Classifier  # noqa: E402
from vigil.serve import ServeSettings  # noqa: E402


@pytest.fixture(scope="session")
def classifier(tiny_artifact: Path) -> Iterator[Classifier]:
    """The tiny stand-in on the CPU, shared by every server test (it is thread-safe).

    fp32, the exact variant (the tiny stand-in has no int8): the server batches texts from
    different requests together, and each must score as it does alone.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weight warning: known and intended here
        clf = Classifier.open(tiny_artifact, provider="cpu", variant="fp32")
    yield clf
    clf.close()


@pytest.fixture
def gated(classifier: Classifier) -> GatedClassifier:
    return GatedClassifier(classifier)


@pytest.fixture(scope="module")
def live(classifier: Classifier, request: pytest.FixtureRequest) -> Iterator[Live]:
    """A ready server shared by a module's tests: with the module's SETTINGS where it sets them."""
    with live_server(classifier, settings=getattr(request.module, "SETTINGS", ServeSettings())) as server:
        server.wait_ready()
        yield server


@pytest.fixture
def client(live: Live) -> Iterator[httpx.Client]:
    with live.client() as client:
        yield client
