"""`from vigil import ...`: the face re-exports the runtime's public names, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest
import vigil.runtime

import vigil


def test_the_face_is_the_runtime_s_objects() -> None:
    from vigil import BatcherConfig, Classifier, Service, aggregate

    assert (Classifier, Service, BatcherConfig, aggregate) == (
        vigil.runtime.Classifier, vigil.runtime.Service, vigil.runtime.BatcherConfig, vigil.runtime.aggregate,
    )
    assert all(getattr(vigil, name) is getattr(vigil.runtime, name) for name in vigil.__all__)
    assert set(vigil.__all__) <= set(dir(vigil))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Clasifier'"):
        vigil.Clasifier  # noqa: B018


def test_import_vigil_alone_loads_no_onnxruntime() -> None:
    code = "import sys, vigil; print('onnxruntime' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
