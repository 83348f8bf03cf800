"""The runtime stays lean: no torch or transformers, and a public API that exists."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import vigil.runtime

SCRIPT = """
import json, sys, warnings
warnings.simplefilter("ignore")
import vigil.runtime
with vigil.runtime.Classifier.open(sys.argv[1]) as classifier:
    probabilities = classifier.predict(["a tweet", "@someone"])
print(json.dumps({
    "shape": list(probabilities.shape),
    "heavy": sorted(m for m in ("torch", "transformers") if m in sys.modules),
}))
"""


def test_scoring_never_imports_torch_or_transformers(tiny_artifact: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_artifact)], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"shape": [2, 6], "heavy": []}


def test_every_name_in_all_exists() -> None:
    missing = [name for name in vigil.runtime.__all__ if not hasattr(vigil.runtime, name)]
    assert missing == []
    assert len(set(vigil.runtime.__all__)) == len(vigil.runtime.__all__)
    for name in ("Classifier", "Service", "aggregate", "GroupScores", "InputError", "ProviderError"):
        assert name in vigil.runtime.__all__


def test_every_runtime_module_declares_all() -> None:
    modules = [info.name for info in pkgutil.iter_modules(vigil.runtime.__path__)]
    assert {"model", "providers", "checks", "batcher", "engine"} <= set(modules)
    for module in modules:
        names = __import__(f"vigil.runtime.{module}", fromlist=["__all__"]).__all__
        assert all(hasattr(sys.modules[f"vigil.runtime.{module}"], n) for n in names), module
