"""vigil.files.npy: .npy files streamed a batch at a time, row count written last."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from vigil.files.npy import open_npy_writer


@pytest.mark.parametrize("batches", [[], [0], [1], [3, 64, 0, 1000]])
def test_the_file_is_an_ordinary_npy_of_every_row_written(tmp_path: Path, batches: list[int]) -> None:
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 5)).astype(np.float32) for n in batches]
    path = tmp_path / "out.npy"
    with open_npy_writer(path, 5) as writer:
        for part in parts:
            writer.write(part)
    expected = np.concatenate(parts) if parts else np.empty((0, 5), np.float32)
    for loaded in (np.load(path), np.load(path, mmap_mode="r")):
        assert loaded.dtype == np.float32 and loaded.shape == expected.shape
        np.testing.assert_array_equal(loaded, expected)
    assert path.stat().st_size == 128 + expected.nbytes  # one header, then the rows


def test_rows_of_another_width_are_refused_and_nothing_is_left(tmp_path: Path) -> None:
    path = tmp_path / "out.npy"
    with pytest.raises(ValueError, match=r"shape \[n, 5\], got \(2, 4\)"), open_npy_writer(path, 5) as writer:
        writer.write(np.zeros((2, 4), np.float32))
    assert os.listdir(tmp_path) == []


def test_float64_rows_are_stored_as_float32(tmp_path: Path) -> None:
    path = tmp_path / "out.npy"
    with open_npy_writer(path, 2) as writer:
        writer.write(np.array([[0.5, 1.0 / 3.0]]))
    np.testing.assert_array_equal(np.load(path), np.array([[0.5, 1.0 / 3.0]], dtype=np.float32))
