"""Pack a sim dataset for a GPU machine that takes at most 64 MiB: colour images pre-resized to the model size
(bicubic, exactly what training.data.prepare_samples would do at load time), depth dropped (training does not
read it). Labels stay in original-image pixels (`width`/`height` unchanged), so training on the packed copy is
the same computation as training on the original."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--size", type=int, nargs=2, default=(224, 168), metavar=("W", "H"))
    a = ap.parse_args()
    (a.dst / "shards").mkdir(parents=True, exist_ok=True)
    for meta in a.src.glob("*.json"):
        (a.dst / meta.name).write_bytes(meta.read_bytes())
    for shard in sorted((a.src / "shards").glob("*.parquet")):
        t = pq.read_table(shard)
        small = []
        for png in t.column("rgb_png").to_pylist():
            img = Image.open(io.BytesIO(png)).convert("RGB").resize(tuple(a.size), Image.Resampling.BICUBIC)
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            small.append(buf.getvalue())
        t = t.drop_columns(["depth_png"]).set_column(t.schema.get_field_index("rgb_png"), "rgb_png",
                                                     pa.array(small, pa.binary()))
        pq.write_table(t, a.dst / "shards" / shard.name)
    size = sum(f.stat().st_size for f in a.dst.rglob("*") if f.is_file())
    print(f"packed {a.src} -> {a.dst}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
