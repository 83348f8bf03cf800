"""What records say made them: installed versions, and the onnxruntime that actually ran."""

from __future__ import annotations

import sys
import types
from importlib import metadata

import pytest

from vigil.runtime.versions import installed_versions


def test_distributions_are_read_from_their_metadata_and_missing_ones_left_out() -> None:
    assert installed_versions(["numpy", "no-such-distribution-here"]) == {"numpy": metadata.version("numpy")}


def test_onnxruntime_is_the_imported_module_whatever_distribution_brought_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # onnxruntime-gpu installs the `onnxruntime` module under another distribution name; a
    # CPU `onnxruntime` distribution beside it must not be reported for what ran.
    monkeypatch.setitem(sys.modules, "onnxruntime", types.SimpleNamespace(__version__="9.8.7"))
    assert installed_versions(["onnxruntime", "numpy"])["onnxruntime"] == "9.8.7"
