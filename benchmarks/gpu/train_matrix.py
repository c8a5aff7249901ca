"""Train the `small` preset and its Table-2 ablations side by side on one GPU (the model is small, so one run
cannot fill an H100; seven concurrent runs can), then pack each final checkpoint for the trip back.

Variants (task weights; one task drawn per example, as the reference code):
  full-s{0,1,2}   the preset's mix (affordance, pose, masked pose, chain of thought), training seeds 0, 1, 2
  pose            pose only
  pose_cat        + category question
  pose_cat_mask   + masked pose
  all4            + affordance (the paper's four tasks, no chain-of-thought examples)

With --fp16-transfer the trained tensors travel as float16 (the unpacking side loads them into float32).
The packed checkpoint leaves out the random base (base/, rebuilt bit-identically from the config's seed; the
summary records its hash so the unpacking side can check) and the optimizer state.

    python3 benchmarks/gpu/train_matrix.py --data .gpudata/sim-v1-224 --steps 3000 --time-limit 540 --out $OUT
    python3 benchmarks/gpu/train_matrix.py ... --probe 90     # steps/s of all variants at once, then stop
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from safetensors.torch import load_file, save_file

from manipllm_ros.training.config import preset

W = {"category": 0.0, "affordance": 0.0, "pose": 0.0, "masked_pose": 0.0, "cot": 0.0}
VARIANTS: dict[str, tuple[dict[str, float] | None, int]] = {  # the default run takes the first six (64 MiB back)
    "full-s0": (None, 0),
    "full-s1": (None, 1),
    "full-s2": (None, 2),
    "pose": ({**W, "pose": 1.0}, 0),
    "pose_cat": ({**W, "pose": 1.0, "category": 1.0}, 0),
    "pose_cat_mask": ({**W, "pose": 1.0, "category": 1.0, "masked_pose": 1.0}, 0),
    "all4": ({**W, "pose": 1.0, "category": 1.0, "masked_pose": 1.0, "affordance": 1.0}, 0),
}


def base_hash(model_cfg) -> str:
    """Hash of the random base's weights (LoRA excluded) as built from the config on CPU."""
    from manipllm_ros.model.build import tiny_base

    model, _ = tiny_base(model_cfg.model_copy(update={"device": "cpu"}))
    h = hashlib.sha256()
    for k, t in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(t.float().numpy().tobytes())
    return h.hexdigest()


def last_record(path: Path, kind: str) -> dict | None:
    rec = None
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r.get("kind") == kind:
                rec = r
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--time-limit", type=float, default=540.0, help="seconds; runs still going are stopped")
    ap.add_argument("--probe", type=float, default=0.0, help="run all variants this many seconds, report steps/s")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--workers", type=int, default=1, help="data-loader workers per run")
    ap.add_argument("--batch-size", type=int, default=16, help="per step, no accumulation (preset: 8 x 2)")
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--fp16-transfer", action="store_true",
                    help="pack trained tensors as float16 (the whole-base small preset is 4x the size of LoRA)")
    ap.add_argument("--runs-dir", default="/tmp/runs")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    runs, out = Path(a.runs_dir), Path(a.out)
    runs.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    procs = {}
    t0 = time.monotonic()
    for name in a.variants:
        weights, seed = VARIANTS[name]
        data = {"path": a.data, "num_workers": a.workers, "max_val_samples": 32}
        if weights is not None:
            data["task_weights"] = weights
        cfg = preset("small", data=data, seed=seed, output_dir=str(runs / name), max_steps=a.steps,
                     batch_size=a.batch_size, grad_accum=1, eval_every=a.steps, save_every=a.save_every, progress=False, model={"device": a.device})  # fmt: skip
        (runs / f"{name}.yaml").write_text(cfg.to_yaml())
        log = open(runs / f"{name}.log", "w")
        procs[name] = subprocess.Popen([sys.executable, "-m", "manipllm_ros.model.cli", "train", "--config",
                                        str(runs / f"{name}.yaml"), "--no-resume"], stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    limit = a.probe or a.time_limit
    while time.monotonic() - t0 < limit and any(p.poll() is None for p in procs.values()):
        time.sleep(2)
    stopped = [n for n, p in procs.items() if p.poll() is None]
    for n in stopped:
        procs[n].kill()
        procs[n].wait()
    wall = time.monotonic() - t0
    summary: dict = {"wall_s": wall, "steps": a.steps, "probe": bool(a.probe), "runs": {}}
    for name in a.variants:
        train = last_record(runs / name / "metrics.jsonl", "train")
        val = last_record(runs / name / "metrics.jsonl", "val")
        r = {"returncode": procs[name].returncode, "stopped_at_limit": name in stopped,
             "last_train": train, "val": val, "task_weights": VARIANTS[name][0], "seed": VARIANTS[name][1]}
        final = runs / name / "final"
        if not final.exists():  # stopped at the limit: the last checkpoint, reported as such
            ckpts = sorted((runs / name).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
            final = ckpts[-1] if ckpts else final
            r["packed"] = final.name
        if not a.probe and final.exists():
            with tarfile.open(out / f"{name}.tgz", "w:gz") as tar:
                for f in sorted(final.iterdir()):
                    if f.name == "adapters.safetensors" and a.fp16_transfer:
                        half = runs / name / "adapters.fp16.safetensors"
                        sd = {k: v.half() for k, v in load_file(str(f)).items()}
                        save_file(sd, str(half), metadata={"transfer": "float16"})
                        tar.add(half, arcname=f"{name}/{f.name}")
                    elif f.name not in ("base", "trainer_state.pt"):
                        tar.add(f, arcname=f"{name}/{f.name}")
                tar.add(runs / name / "metrics.jsonl", arcname=f"{name}/metrics.jsonl")
                tar.add(runs / f"{name}.yaml", arcname=f"{name}/train_config.yaml")
        if procs[name].returncode not in (0, None) and name not in stopped:
            r["log_tail"] = (runs / f"{name}.log").read_text()[-3000:]
        summary["runs"][name] = r
        print(name, json.dumps(r)[:400], flush=True)
    if not a.probe:
        summary["base_sha256"] = base_hash(preset("small").model)
    (out / "train_summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
