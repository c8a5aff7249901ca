"""Reader of the sim dataset (format: `dataset_format.md`): decoded images plus every label column."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SPLITS = ("train", "test_seen", "test_unseen")


class DatasetError(ValueError):
    """The folder is not a manipllm sim dataset, or a split name is unknown."""


def read_meta(path: str | Path) -> dict:
    p = Path(path) / "meta.json"
    if not p.is_file():
        raise DatasetError(f"{path}: no meta.json, not a manipllm sim dataset")
    meta = json.loads(p.read_text())
    if meta.get("format") != "manipllm-sim-v1":
        raise DatasetError(f"{path}: format {meta.get('format')!r}, expected 'manipllm-sim-v1'")
    return meta


def shard_files(path: str | Path) -> list[Path]:
    return sorted((Path(path) / "shards").glob("shard-*.parquet"))


def decode_png(data: bytes) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError("undecodable PNG payload")
    if img.ndim == 3:
        img = img[..., ::-1]  # BGR -> RGB
    return np.ascontiguousarray(img)


def iter_samples(path: str | Path, split: str | None = None, *, decode: bool = True,
                 columns: list[str] | None = None) -> Iterator[dict]:
    """Yield samples in shard order; with `decode`, adds `rgb` (HxWx3 uint8), `depth` (HxW float32, m) and, where
    the dataset has masks, `segmentation` (HxW uint8: 0 background, 1 object, 2 movable part)."""
    import pyarrow.parquet as pq

    read_meta(path)
    if split is not None and split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; one of {SPLITS}")
    for f in shard_files(path):
        table = pq.read_table(f, columns=columns)
        for row in table.to_pylist():
            if split is not None and row.get("split") != split:
                continue
            if decode and "rgb_png" in row:
                row["rgb"] = decode_png(row["rgb_png"])
            if decode and "depth_png" in row:
                row["depth"] = decode_png(row["depth_png"]).astype(np.float32) / 1000.0
            if decode and row.get("mask_png"):
                row["segmentation"] = decode_png(row["mask_png"])
            yield row


def count_samples(path: str | Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in shard_files(path))
