"""Unpack train_matrix.py's checkpoints: rebuild each random base from its config on CPU, check it against the
hash the GPU side recorded, load the trained adapters and save a self-contained checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_matrix import base_hash  # noqa: E402

from manipllm_ros.model.build import AdaptedVLM  # noqa: E402
from manipllm_ros.training.config import TrainConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("packed", type=Path, help="folder with <variant>.tgz and train_summary.json")
    ap.add_argument("dest", type=Path)
    a = ap.parse_args()
    summary = json.loads((a.packed / "train_summary.json").read_text())
    a.dest.mkdir(parents=True, exist_ok=True)
    (a.dest / "train_summary.json").write_text(json.dumps(summary, indent=1))
    for tgz in sorted(a.packed.glob("*.tgz")):
        with tarfile.open(tgz) as tar:
            tar.extractall(a.dest, filter="data")
        d = a.dest / tgz.name.removesuffix(".tgz")
        cfg = TrainConfig.from_yaml(d / "train_config.yaml").model.model_copy(update={"device": "cpu"})
        h = base_hash(cfg)
        if h != summary["base_sha256"]:
            raise SystemExit(f"{d}: the rebuilt base differs from the one trained on ({h} != {summary['base_sha256']})")
        vlm = AdaptedVLM.build(cfg)
        vlm.load_adapters(d)
        vlm.save(d)
        print(f"{d}: base hash ok, adapters {vlm.adapter_version}")


if __name__ == "__main__":
    main()
