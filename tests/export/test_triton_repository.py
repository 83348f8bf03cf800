"""vigil.export.triton and `vigil export-triton`: the model repository, file by file.

config.pbtxt is parsed back with Triton's own protobuf schema and each field is checked.
Where .venv-triton exists, the tritonserver that PyTriton ships also reads the repository:
it has no ONNX Runtime backend and no GPU here, so it can only parse and complete the
config, then fail to find the backend; that much is checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc", reason="export-triton needs tritonclient[grpc] for Triton's config schema")

from click.testing import CliRunner
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from vigil.cli import triton as cli_triton
from vigil.export import triton as repository
from vigil.export.errors import ExportError
from vigil.export.triton import TritonRepoConfig, export_triton_repository
from vigil.runtime.errors import ArtifactError
from vigil.runtime.manifest import Manifest
from vigil.runtime.tokenizer import SharedTokenizer

TRITON_PYTHON = Path(__file__).resolve().parents[2] / ".venv-triton" / "bin" / "python"


def read_config(model_dir: Path) -> mc.ModelConfig:
    return text_format.Parse((model_dir / "config.pbtxt").read_text(encoding="utf-8"), mc.ModelConfig())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def small_artifact(tiny_artifact: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny artifact with only what export-triton reads."""
    out = tmp_path / "artifact"
    out.mkdir()
    for name in ("manifest.json", "tokenizer.json", "model-fp16.onnx"):
        shutil.copyfile(tiny_artifact / name, out / name)
    return out


def test_all_is_complete() -> None:
    for module in (repository, cli_triton):
        public = {name for name in vars(module) if not name.startswith("_")}
        assert set(module.__all__) <= public


def test_default_config_round_trips_field_by_field(tiny_artifact: Path, tmp_path: Path) -> None:
    manifest = Manifest.load(tiny_artifact)
    model_dir = export_triton_repository(tiny_artifact, tmp_path / "repo")
    config = read_config(model_dir)

    assert config.name == "vigil"
    assert (config.platform, config.backend) == ("onnxruntime_onnx", "onnxruntime")
    assert config.max_batch_size == 256
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("input_ids", mc.TYPE_INT64, [32]),
        ("attention_mask", mc.TYPE_INT64, [32]),
    ]
    assert [(o.name, o.data_type, list(o.dims), o.label_filename) for o in config.output] == [
        ("logits", mc.TYPE_FP32, [len(manifest.labels)], "labels.txt"),
        ("pooled", mc.TYPE_FP32, [manifest.pooled_width], ""),
    ]
    assert manifest.pooled_width == 32  # the tiny stand-in's hidden size
    assert list(config.dynamic_batching.preferred_batch_size) == []
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert [(g.kind, g.count) for g in config.instance_group] == [(mc.ModelInstanceGroup.KIND_GPU, 1)]
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    cache = str(model_dir.resolve() / "trt-cache" / f"{manifest.variant('fp16').sha256[:16]}-b256x32")
    assert dict(accelerator.parameters) == {
        "precision_mode": "FP16",
        "max_workspace_size_bytes": str(4 << 30),
        "trt_engine_cache_enable": "true",
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": "true",
        "trt_timing_cache_path": cache,
        "trt_profile_min_shapes": "input_ids:1x32,attention_mask:1x32",
        "trt_profile_opt_shapes": "input_ids:256x32,attention_mask:256x32",
        "trt_profile_max_shapes": "input_ids:256x32,attention_mask:256x32",
    }
    assert not config.optimization.execution_accelerators.cpu_execution_accelerator
    assert_warmup(config, model_dir, manifest, [1, 256])
    # Nothing else is set: Triton fills every other field with its defaults.
    assert {field.name for field, _ in config.ListFields()} == {
        "name", "platform", "backend", "max_batch_size", "input", "output",
        "dynamic_batching", "instance_group", "optimization", "model_warmup",
    }


def test_an_artifact_without_embeddings_declares_the_logits_only(old_artifact: Path, tmp_path: Path) -> None:
    config = read_config(export_triton_repository(old_artifact, tmp_path / "repo"))
    assert [o.name for o in config.output] == ["logits"]


def assert_warmup(config: mc.ModelConfig, model_dir: Path, manifest: Manifest, batches: list[int]) -> None:
    """One warm-up per batch size, each reading one real row (the empty text) per input."""
    assert [(w.name, w.batch_size) for w in config.model_warmup] == [(f"batch-{b}", b) for b in batches]
    tokenizer = SharedTokenizer(manifest.directory / manifest.tokenizer_file, manifest.sequence_length, manifest.pad_id)
    expected = dict(zip(("input_ids", "attention_mask"), tokenizer.encode([""])))
    for warmup in config.model_warmup:
        assert set(warmup.inputs) == set(expected)
        for name, spec in warmup.inputs.items():
            assert (spec.data_type, list(spec.dims), spec.input_data_file) == (mc.TYPE_INT64, [32], name)
            row = np.fromfile(model_dir / "warmup" / name, dtype="<i8")
            np.testing.assert_array_equal(row, expected[name][0])
    assert expected["attention_mask"][0].sum() >= 2  # [CLS] [SEP]: never a fully masked row


def test_trt_cache_dir_must_be_absolute_and_reaches_the_config(tiny_artifact: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="absolute path"):
        TritonRepoConfig(trt_cache_dir="relative/cache")
    options = TritonRepoConfig(max_batch_size=64, trt_cache_dir="/models/cache")
    config = read_config(export_triton_repository(tiny_artifact, tmp_path / "repo", options))
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    parameters = accelerator.parameters
    assert parameters["trt_engine_cache_path"].startswith("/models/cache/")
    assert parameters["trt_engine_cache_path"].endswith("-b64x32")
    assert parameters["trt_profile_max_shapes"] == "input_ids:64x32,attention_mask:64x32"
    assert [w.batch_size for w in config.model_warmup] == [1, 64]


def test_options_reach_the_config(tiny_artifact: Path, tmp_path: Path) -> None:
    options = TritonRepoConfig(
        name="tweets-2", max_batch_size=64, max_queue_delay_us=0,
        preferred_batch_sizes=(32, 8, 32), instances=3, tensorrt=False,
    )
    model_dir = export_triton_repository(tiny_artifact, tmp_path / "repo", options)
    config = read_config(model_dir)

    assert model_dir == tmp_path / "repo" / "tweets-2"
    assert (config.name, config.max_batch_size) == ("tweets-2", 64)
    assert list(config.dynamic_batching.preferred_batch_size) == [8, 32]
    assert config.dynamic_batching.max_queue_delay_microseconds == 0
    assert [(g.kind, g.count) for g in config.instance_group] == [(mc.ModelInstanceGroup.KIND_GPU, 3)]
    assert not config.HasField("optimization")
    assert [w.batch_size for w in config.model_warmup] == [1, 64]  # the CUDA provider warms up too


def test_files_beside_the_config(tiny_artifact: Path, tmp_path: Path) -> None:
    manifest = Manifest.load(tiny_artifact)
    repo = tmp_path / "repo"
    model_dir = export_triton_repository(tiny_artifact, repo)

    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*")) == [
        "vigil", "vigil/1", "vigil/1/model.onnx", "vigil/config.pbtxt",
        "vigil/labels.txt", "vigil/manifest.json", "vigil/tokenizer.json",
        "vigil/warmup", "vigil/warmup/attention_mask", "vigil/warmup/input_ids",
    ]  # and no hidden staging directory left behind
    assert sha256(model_dir / "1" / "model.onnx") == manifest.variant("fp16").sha256
    assert (model_dir / "labels.txt").read_text(encoding="utf-8").splitlines() == list(manifest.labels)
    for name in ("tokenizer.json", "manifest.json"):
        assert (model_dir / name).read_bytes() == (tiny_artifact / name).read_bytes()
    assert (model_dir.stat().st_mode & 0o777) == 0o755
    assert "RANDOM-WEIGHT STAND-IN" in (model_dir / "config.pbtxt").read_text(encoding="utf-8")


def test_refuses_an_existing_model_unless_forced(tiny_artifact: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    model_dir = export_triton_repository(tiny_artifact, repo)
    (model_dir / "old-marker").touch()

    with pytest.raises(ExportError, match="already exists; pass --force"):
        export_triton_repository(tiny_artifact, repo, TritonRepoConfig(max_batch_size=8))
    assert (model_dir / "old-marker").exists() and read_config(model_dir).max_batch_size == 256

    export_triton_repository(tiny_artifact, repo, TritonRepoConfig(max_batch_size=8), force=True)
    assert not (model_dir / "old-marker").exists() and read_config(model_dir).max_batch_size == 8
    assert [p.name for p in repo.iterdir()] == ["vigil"]


def test_corrupt_model_writes_nothing(small_artifact: Path, tmp_path: Path) -> None:
    with open(small_artifact / "model-fp16.onnx", "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    repo = tmp_path / "repo"

    with pytest.raises(ArtifactError, match="sha256"):
        export_triton_repository(small_artifact, repo)
    assert not repo.exists() or not any(repo.iterdir())


def test_refuses_a_fused_fp16_variant(small_artifact: Path, tmp_path: Path) -> None:
    path = small_artifact / "manifest.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["variants"]["fp16"]["form"] = "fused"
    path.write_text(json.dumps(raw), encoding="utf-8")

    with pytest.raises(ArtifactError, match="standard ONNX operators"):
        export_triton_repository(small_artifact, tmp_path / "repo")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_batch_size": 0}, ValueError, "max_batch_size must be >= 1, got 0"),
        ({"max_batch_size": "8"}, TypeError, "max_batch_size must be an int, got '8'"),
        ({"instances": True}, TypeError, "instances must be an int, got True"),
        ({"max_queue_delay_us": -1}, ValueError, "max_queue_delay_us must be >= 0, got -1"),
        ({"preferred_batch_sizes": (8, 512)}, ValueError, "<= max_batch_size 256, got 512"),
        ({"preferred_batch_sizes": (0,)}, ValueError, "each preferred batch size must be >= 1, got 0"),
        ({"name": "../elsewhere"}, ValueError, "got '../elsewhere'"),
        ({"name": ""}, ValueError, "got ''"),
        ({"name": 7}, TypeError, "name must be a str, got 7"),
    ],
)
def test_config_checks(kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(".", r"\.")):
        TritonRepoConfig(**kwargs)


def test_pytritons_tritonserver_accepts_the_config(tiny_artifact: Path, tmp_path: Path) -> None:
    if not TRITON_PYTHON.exists():
        pytest.skip(f"{TRITON_PYTHON} is absent: no tritonserver binary to try the repository with")
    repo = tmp_path / "repo"
    export_triton_repository(tiny_artifact, repo)
    where = "import pytriton, pathlib; from pytriton.utils.distribution import get_libs_path as g; " \
        "print(pathlib.Path(pytriton.__file__).parent / 'tritonserver'); print(g())"
    server_dir, libs = subprocess.run([TRITON_PYTHON, "-c", where], capture_output=True, text=True, check=True).stdout.split()

    done = subprocess.run(
        [f"{server_dir}/bin/tritonserver", f"--model-repository={repo}", f"--backend-directory={server_dir}/backends",
         "--allow-http=false", "--allow-grpc=false", "--allow-metrics=false", "--log-verbose=1"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "LD_LIBRARY_PATH": libs},
    )

    log = done.stdout + done.stderr
    assert "Server side auto-completed config" in log, log
    failures = [line for line in log.splitlines() if "failed to load 'vigil' version 1" in line]
    assert len(failures) == 1 and "unable to find backend library for backend 'onnxruntime'" in failures[0], log


# --- the command ----------------------------------------------------------------------


def test_cli_writes_the_repository(tiny_artifact: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    result = CliRunner().invoke(
        cli_triton.export_triton,
        [str(tiny_artifact), str(repo), "--name", "m", "--max-batch-size", "32", "--max-queue-delay-us", "500",
         "--preferred-batch-sizes", "4,16", "--instances", "2", "--no-tensorrt"],
    )

    assert result.exit_code == 0, result.output
    assert f"serve it with: tritonserver --model-repository {repo}" in result.stdout
    assert "RANDOM-WEIGHT STAND-IN" in result.stderr
    config = read_config(repo / "m")
    assert (config.max_batch_size, config.dynamic_batching.max_queue_delay_microseconds) == (32, 500)
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 16]
    assert config.instance_group[0].count == 2 and not config.HasField("optimization")


def test_cli_refuses_an_existing_model(tiny_artifact: Path, tmp_path: Path) -> None:
    args = [str(tiny_artifact), str(tmp_path / "repo")]
    assert CliRunner().invoke(cli_triton.export_triton, args).exit_code == 0

    result = CliRunner().invoke(cli_triton.export_triton, args)
    assert result.exit_code == 1
    assert "already exists; pass --force" in result.stderr
    assert CliRunner().invoke(cli_triton.export_triton, [*args, "--force"]).exit_code == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--preferred-batch-sizes", "8,x"], "expected integers separated by commas"),
        (["--preferred-batch-sizes", "8,300"], "<= max_batch_size 256, got 300"),
        (["--max-batch-size", "0"], "0 is not in the range x>=1"),
        (["--name", "a/b"], "got 'a/b'"),
    ],
)
def test_cli_rejects_bad_options(tiny_artifact: Path, tmp_path: Path, options: list[str], message: str) -> None:
    result = CliRunner().invoke(cli_triton.export_triton, [str(tiny_artifact), str(tmp_path / "repo"), *options])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "repo").exists()


def test_cli_names_a_broken_artifact(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_triton.export_triton, [str(tmp_path), str(tmp_path / "repo")])
    assert result.exit_code == 1
    assert "manifest.json is missing" in result.stderr
