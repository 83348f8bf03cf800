"""What the contenders load, built once into the cache directory and reused.

Layout of the cache (default ~/.cache/vigil-bench):

    standin-full/, standin-tiny/      random-weight stand-ins (`vigil standin`)
    derived/<weights sha256[:16]>/    everything made from one checkpoint:
        artifact/                     `vigil export` (fp32, int8, fp16 variants)
        plain-fp32.onnx               the unfused export the ONNX Runtime baseline runs
        optimum/                      Optimum's own export
    optimum-venv/                     Optimum's virtual environment
    source/                           `vigil` links into this checkout, for that venv

Derived files are keyed by the checkpoint's weights, so a re-made stand-in never meets a
stale export. Stand-ins and artifacts are made by the `vigil` command in a child process:
exporting the full model peaks near 12 GB, which is then returned to the system before any
measurement starts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from vigil.runtime import ArtifactError, Manifest
from vigil.runtime.manifest import sha256_file

__all__ = ["Prepared", "prepare", "optimum_python", "OPTIMUM_VENV_LOG"]

WEIGHTS_FILE = "model.safetensors"
OPTIMUM_VENV_LOG = "optimum-venv.log"
_READY_MARKER = ".vigil-bench-requirements"


@dataclass(frozen=True)
class Prepared:
    """The checkpoint and artifact the run compares, and where derived exports go."""

    checkpoint: Path
    artifact: Path
    derived: Path
    random_weights: bool


def prepare(cache: Path, size: str, checkpoint: Path | None = None, artifact: Path | None = None) -> Prepared:
    """The checkpoint (a stand-in of SIZE unless given) and its artifact, made if missing.

    Raises:
        ArtifactError: ARTIFACT is unusable, or was not exported from CHECKPOINT.
    """
    checkpoint = (checkpoint or _standin(cache, size)).resolve()
    derived = cache / "derived" / sha256_file(checkpoint / WEIGHTS_FILE)[:16]
    artifact = (artifact or _artifact(checkpoint, derived / "artifact")).resolve()
    manifest = Manifest.load(artifact)
    if manifest.source.get("id") != str(checkpoint):
        raise ArtifactError(
            f"artifact {artifact} was exported from {manifest.source.get('id')}, not from {checkpoint}: "
            "its accuracy against this checkpoint would mean nothing"
        )
    return Prepared(checkpoint, artifact, derived, manifest.random_weights)


def _standin(cache: Path, size: str) -> Path:
    out = cache / f"standin-{size}"
    if not out.is_dir():
        _made_by_vigil(out, ["standin", "--size", size])
    return out


def _artifact(checkpoint: Path, out: Path) -> Path:
    if not out.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"exporting {checkpoint} to {out} (once; the full size takes a few minutes)", file=sys.stderr)
        _vigil(["export", str(checkpoint), str(out)])  # vigil export is atomic itself
    return out


def _made_by_vigil(out: Path, command: list[str]) -> None:
    """Run a `vigil` command that writes OUT into a partial folder, then move it into place."""
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    _vigil([command[0], str(partial), *command[1:]])
    partial.rename(out)


def _vigil(arguments: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "vigil.cli", *arguments], check=True)


def optimum_requirements() -> list[str]:
    """Optimum's environment: this torch (pinned: any other would download gigabytes),
    the newest Optimum ONNX, and the transformers it supports."""
    torch = metadata.version("torch").split("+")[0]
    return [f"torch=={torch}", "optimum-onnx", "onnxruntime", "transformers<4.58"]


def optimum_python(cache: Path) -> Path:
    """The Python of Optimum's virtual environment, built on first use.

    Raises:
        RuntimeError: The environment cannot be built; the message says why and where
            pip's log is.
    """
    venv = cache / "optimum-venv"
    python = venv / "bin" / "python"
    requirements = optimum_requirements()
    marker = venv / _READY_MARKER
    if python.is_file() and marker.is_file() and marker.read_text().split("\n") == requirements:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / OPTIMUM_VENV_LOG
    print(
        f"building Optimum's virtual environment in {venv} (once; minutes): {' '.join(requirements)}", file=sys.stderr
    )
    steps = {
        "python -m venv": [sys.executable, "-m", "venv", str(venv)],
        "pip install": [str(python), "-m", "pip", "install", *requirements],
    }
    with open(log, "w", encoding="utf-8") as out:
        for name, command in steps.items():
            try:
                code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=1800).returncode
                reason = f"exit status {code}"
            except (OSError, subprocess.TimeoutExpired) as exc:
                code, reason = -1, str(exc)
            if code != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise RuntimeError(
                    f"Optimum's virtual environment cannot be built: {name} failed ({reason}); see {log}"
                )
    marker.write_text("\n".join(requirements))
    return python
