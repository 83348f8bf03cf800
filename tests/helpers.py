"""Helpers shared by test folders (tests/ is on sys.path through its conftest.py)."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

WAIT_S = 20.0  # an upper bound for waiting on a condition, never a performance threshold


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Poll CONDITION until true; fail naming WHAT if it never becomes true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """ROWS in the format PATH's extension names: .txt (the "text" column), .csv, .jsonl, else Parquet."""
    if path.suffix == ".txt":
        path.write_text("".join(row["text"] + "\n" for row in rows), encoding="utf-8")
    elif path.suffix == ".csv":
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    else:
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def without_pooled(artifact: Path, copy: Path) -> Path:
    """ARTIFACT as vigil exported it before embeddings, at COPY: no `pooled` graph output in
    any variant, no `pooled` entries in the manifest (each file's size and sha256 updated).

    The pooled output feeds the head, so the graphs compute exactly what they did before.
    """
    onnx = pytest.importorskip("onnx")
    shutil.copytree(artifact, copy)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    name = manifest.pop("pooled")["name"]
    for variant in manifest["variants"].values():
        del variant["pooled_validation"]
        path = copy / variant["file"]
        model = onnx.load(path)
        kept = [output for output in model.graph.output if output.name != name]
        del model.graph.output[:]
        model.graph.output.extend(kept)
        onnx.save(model, path)
        variant["size_bytes"] = path.stat().st_size
        variant["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return copy
