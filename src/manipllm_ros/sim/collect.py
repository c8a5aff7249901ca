"""Data collection as in the paper: sample a contact on the movable part, approach, attach, pull, keep successes.

Work is split into shards; shard i's content depends only on (seed, i), so a run is deterministic per seed
whatever the number of workers, and a killed run resumes by redoing only the shards whose parquet file is
missing (each shard is written to a temporary file and renamed: a shard is on disk whole or not at all, so no
sample is lost or duplicated). See `dataset_format.md` for the on-disk format.

Per attempt: contact pixel uniformly among movable-part pixels with affordance > `aff_threshold`; up = minus
the surface normal there (ray-cast, exact) plus N(0, `up_noise`) per component; forward = random unit vector
orthogonal to up; approach along up, attach the suction, then move `pull` along -up (or along +up for
push-type parts: buttons, levers). Success (paper's reference code): the joint moved more than
`success_fraction` of its range and the contact point moved along the pull (cos > 0.5).
"""

from __future__ import annotations


import json
import math
import multiprocessing as mp
import os
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..control.arm import ArmError

FORMAT = "manipllm-sim-v1"


class CollectConfig(BaseModel):
    """Parameters of `manipllm sim collect`."""

    model_config = ConfigDict(extra="forbid")

    out: Path = Field(description="Output dataset folder (meta.json + shards/).")
    num_samples: int = Field(1000, ge=1, description="Successful samples to collect in total.")
    seed: int = Field(0, description="Master seed: the whole dataset is a function of it.")
    workers: int = Field(2, ge=1, description="Worker processes (this machine has 2 cores).")
    categories: list[str] = Field(default_factory=list, description="Generated categories to use (empty = "
                                  "all 30: 20 training + 10 held-out). Shards cycle through them.")
    objects: list[str] = Field(default_factory=list, description="Third-party objects as FILE:JOINT[:UP] "
                               "(MJCF or URDF); they join the category cycle.")
    samples_per_shard: int = Field(20, ge=1, description="Successes per shard; small shards lose little "
                                   "work when a run is killed.")
    scenes_per_object: int = Field(6, ge=1, description="Camera/lighting draws per compiled object instance.")
    attempts_per_scene: int = Field(3, ge=1, description="Contact tries per scene; at most one success is "
                                    "kept per scene (diversity).")
    max_attempts_factor: int = Field(12, ge=1, description="A shard gives up after this many attempts per "
                                     "wanted sample (objects that never succeed do not stall a run).")
    aff_threshold: float = Field(0.8, description="Contact pixels are drawn where affordance > this (paper).")
    up_noise: float = Field(0.05, description="Std of the Gaussian noise added to -normal for the up vector.")
    success_fraction: float = Field(0.1, description="Joint motion needed, as a fraction of the joint range.")
    n_aff_points: int = Field(20, description="APR positives / negatives stored per sample (paper: 20 each).")
    speed: float = Field(0.4, description="Gripper speed (m/s) for approach and pull in collection.")
    progress: bool = Field(True, description="Show a tqdm progress bar.")


@dataclass
class ShardResult:
    index: int
    samples: int = 0
    attempts: int = 0
    per_category: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    skipped: bool = False


# ------------------------------------------------------------------------------------------------ helpers


def _encode_png(img: np.ndarray) -> bytes:
    import cv2

    if img.ndim == 3:
        img = img[..., ::-1]  # RGB -> BGR for OpenCV
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def segmentation(object_mask: np.ndarray, part_mask: np.ndarray) -> np.ndarray:
    """One uint8 label image: 0 background, 1 object (fixed parts), 2 movable part (see dataset_format.md)."""
    seg = np.zeros(part_mask.shape, np.uint8)
    seg[object_mask] = 1
    seg[part_mask] = 2
    return seg


def _sources(cfg: CollectConfig) -> list[str]:
    from .objects import ALL_CATEGORIES

    cats = [c.replace(" ", "_") for c in cfg.categories] or list(ALL_CATEGORIES)
    return cats + [f"file:{o}" for o in cfg.objects]


def _make_object(source: str, obj_seed: int):
    from .loader import object_from_arg
    from .objects import generate_object

    if source.startswith("file:"):
        parts = source[5:].split(":")
        up = "z"
        if len(parts) >= 3 and parts[-1] in ("z", "y", "-y", "x"):
            up = parts.pop()
        return object_from_arg(":".join(parts), up=up, seed=obj_seed)
    return generate_object(source, obj_seed)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _random_perpendicular(up: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    while True:
        f = rng.normal(size=3)
        f -= (f @ up) * up
        if np.linalg.norm(f) > 1e-3:
            return _unit(f)


def _pick_uv(cands: np.ndarray, n: int, rng: np.random.Generator) -> list[list[int]]:
    if len(cands) == 0:
        return []
    idx = rng.choice(len(cands), size=min(n, len(cands)), replace=False)
    return [[int(cands[i][1]), int(cands[i][0])] for i in idx]  # (row, col) -> [u, v]


# ------------------------------------------------------------------------------------------------ one attempt


def attempt(arm, obs, rng: np.random.Generator, cfg: CollectConfig, timings: Counter) -> dict | None:
    """One contact-pull trial on the current scene; returns the sample's pose label or None on failure."""
    w = arm.world
    cand = np.argwhere((obs.affordance > cfg.aff_threshold) & obs.mask)
    if len(cand) == 0:
        return None
    v, u = (int(x) for x in cand[rng.integers(len(cand))])
    p, n, g = w.surface_at(obs, u, v)
    if g not in w.part_geoms:
        return None
    up = _unit(-n + rng.normal(0.0, cfg.up_noise, 3))
    fwd = _random_perpendicular(up, rng)
    t = time.perf_counter()
    w.reset()
    arm.stop()
    # Motion is measured from the untouched state: for push-type parts the press starts during the approach.
    q0 = w.joint_position()
    p_local = w.data.xmat[w.part_id].reshape(3, 3).T @ (p - w.data.xpos[w.part_id])
    result = None
    try:
        result = _approach_and_pull(arm, p, up, fwd, q0, p_local, cfg, u, v)
    except ArmError:  # an unreachable contact is a failed attempt, not a failed run
        result = None
    arm.end_effector.release()
    timings["physics"] += time.perf_counter() - t
    return result


def _approach_and_pull(arm, p, up, fwd, q0, p_local, cfg: CollectConfig, u: int, v: int) -> dict | None:
    w = arm.world
    touching = arm.approach(p, up, fwd)
    ok = touching and arm.end_effector.attach()
    result = None
    if ok:
        sign = -1.0 if w.obj.meta.action == "pull" else 1.0
        pull = float(np.clip(0.6 * w.radius, 0.03, 0.2))
        arm.move_along(sign * up, pull)
        dq = w.joint_position() - q0
        p1 = w.data.xmat[w.part_id].reshape(3, 3) @ p_local + w.data.xpos[w.part_id]
        dp = p1 - p
        cos = float(dp @ (sign * up) / (np.linalg.norm(dp) + 1e-12))
        lo, hi = w.joint_range
        if abs(dq) > cfg.success_fraction * (hi - lo) and cos > 0.5:
            result = {"u": u, "v": v, "up": up, "forward": fwd, "joint_delta": float(dq)}
    return result


def _sample_row(cfg: CollectConfig, shard: int, k: int, obj, obs, label: dict, rng: np.random.Generator,
                timings: Counter) -> dict:
    t = time.perf_counter()
    meta = obj.meta
    R = obs.cam_to_world[:3, :3]
    up_cam = (R.T @ label["up"]).astype(np.float32)
    fwd_cam = (R.T @ label["forward"]).astype(np.float32)
    pos = np.argwhere((obs.affordance > 0.8) & obs.mask)
    neg = np.argwhere((obs.affordance < 0.2) & obs.object_mask)
    if len(neg) < cfg.n_aff_points:
        neg = np.argwhere(obs.affordance < 0.2)
    depth_mm = np.clip(np.round(obs.depth * 1000.0), 0, 65535).astype(np.uint16)
    K = obs.intrinsics
    row = {
        "sample_id": f"s{cfg.seed}-{shard:06d}-{k:03d}",
        "object_id": meta.object_id,
        "category": meta.category,
        "split": meta.instance_split,
        "instruction": meta.instruction,
        "rgb_png": _encode_png(obs.rgb),
        "depth_png": _encode_png(depth_mm),
        "mask_png": _encode_png(segmentation(obs.object_mask, obs.mask)),
        "width": int(K.width),
        "height": int(K.height),
        "fx": float(K.fx), "fy": float(K.fy), "cx": float(K.cx), "cy": float(K.cy),
        "contact_uv": [label["u"], label["v"]],
        "up_cam": up_cam.tolist(),
        "forward_cam": fwd_cam.tolist(),
        "aff_pos_uv": _pick_uv(pos, cfg.n_aff_points, rng),
        "aff_neg_uv": _pick_uv(neg, cfg.n_aff_points, rng),
        "joint_type": meta.joint_type,
        "joint_delta": label["joint_delta"],
        "part": meta.part,
        "handle": meta.handle,
        "hinge_side": meta.hinge_side,
        "reasoning": meta.reasoning,
        "cam_to_world": obs.cam_to_world.astype(np.float32).reshape(-1).tolist(),
    }
    timings["encode"] += time.perf_counter() - t
    return row


def _schema():
    import pyarrow as pa

    i32l, f32l = pa.list_(pa.int32()), pa.list_(pa.float32())
    return pa.schema([
        ("sample_id", pa.string()), ("object_id", pa.string()), ("category", pa.string()), ("split", pa.string()),
        ("instruction", pa.string()), ("rgb_png", pa.binary()), ("depth_png", pa.binary()),
        ("mask_png", pa.binary()), ("width", pa.int32()), ("height", pa.int32()), ("fx", pa.float32()), ("fy", pa.float32()),
        ("cx", pa.float32()), ("cy", pa.float32()), ("contact_uv", i32l), ("up_cam", f32l),
        ("forward_cam", f32l), ("aff_pos_uv", pa.list_(i32l)), ("aff_neg_uv", pa.list_(i32l)),
        ("joint_type", pa.string()), ("joint_delta", pa.float32()), ("part", pa.string()),
        ("handle", pa.string()), ("hinge_side", pa.string()), ("reasoning", pa.string()),
        ("cam_to_world", f32l),
    ])


def shard_path(out: Path, index: int) -> Path:
    return out / "shards" / f"shard-{index:06d}.parquet"


def _shard_target(cfg: CollectConfig, index: int) -> int:
    n_shards = math.ceil(cfg.num_samples / cfg.samples_per_shard)
    if index < n_shards - 1:
        return cfg.samples_per_shard
    return cfg.num_samples - cfg.samples_per_shard * (n_shards - 1)


def run_shard(cfg: CollectConfig, index: int) -> ShardResult:
    """Produce shard `index` (deterministic in (cfg.seed, index)) and write it atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .flying_arm import FlyingArm, FlyingArmConfig
    from .world import NoPartVisibleError, SimError, World

    res = ShardResult(index)
    timings: Counter = Counter()
    t_start = time.perf_counter()
    sources = _sources(cfg)
    source = sources[index % len(sources)]
    rng = np.random.default_rng([cfg.seed, index, 0xC011EC7])
    target = _shard_target(cfg, index)
    rows: list[dict] = []
    max_attempts = cfg.max_attempts_factor * target
    failed_objects = 0
    while len(rows) < target and res.attempts < max_attempts and failed_objects < 5:
        obj_seed = int(rng.integers(0, 2**31 - 1))
        t = time.perf_counter()
        try:
            obj = _make_object(source, obj_seed)
            arm = FlyingArm(World(obj, obj_seed), FlyingArmConfig(speed=cfg.speed))
        except (SimError, ValueError, OSError) as e:
            res.errors.append(f"{source} (seed {obj_seed}): {e}")
            failed_objects += 1
            continue
        timings["build"] += time.perf_counter() - t
        seen_part = False
        try:
            for scene in range(cfg.scenes_per_object):
                if len(rows) >= target or res.attempts >= max_attempts:
                    break
                t = time.perf_counter()
                arm.world.rerandomize(int(rng.integers(0, 2**31 - 1)))
                obs = arm.world.observe()
                timings["render"] += time.perf_counter() - t
                if not obs.mask.any():
                    continue
                seen_part = True
                for _ in range(cfg.attempts_per_scene):
                    res.attempts += 1
                    label = attempt(arm, obs, rng, cfg, timings)
                    if label is not None:
                        rows.append(_sample_row(cfg, index, len(rows), obj, obs, label, rng, timings))
                        res.per_category[obj.meta.category] = res.per_category.get(obj.meta.category, 0) + 1
                        break
            if not seen_part:
                raise NoPartVisibleError(f"object {obj.meta.object_id!r}: the camera sees nothing of the movable "
                                         f"part {obj.meta.movable_body!r} in {cfg.scenes_per_object} scenes")
        except SimError as e:
            res.errors.append(str(e))
            failed_objects += 1
        finally:
            arm.world.close()
    if failed_objects >= 5 and not rows:
        res.errors.append(f"{source}: gave up after 5 objects failed")
    t = time.perf_counter()
    table = pa.Table.from_pylist(rows, schema=_schema())
    meta = {"attempts": res.attempts, "samples": len(rows), "per_category": res.per_category,
            "errors": res.errors[:20], "source": source}
    table = table.replace_schema_metadata({"manipllm": json.dumps(meta)})
    final = shard_path(cfg.out, index)
    tmp = final.with_suffix(f".tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="none")  # PNG payloads do not compress further
    os.replace(tmp, final)
    timings["write"] += time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start
    res.samples = len(rows)
    res.timings = dict(timings)
    return res


def _worker(args: tuple[dict, int]) -> ShardResult:
    cfg_d, index = args
    cfg = CollectConfig(**cfg_d)
    try:
        return run_shard(cfg, index)
    except Exception as e:  # noqa: BLE001 - one bad shard must not kill the run; it is reported and not written
        r = ShardResult(index)
        r.errors.append(f"shard {index}: {type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
        return r


def _meta(cfg: CollectConfig) -> dict:
    from .camera import D415
    from .objects import CATS, HELDOUT_CATEGORIES, category_name

    cats = {}
    for s in _sources(cfg):
        if s.startswith("file:"):
            try:  # third-party objects count as held-out categories; a broken file is reported by its shard
                m = _make_object(s, 0).meta
                cats[m.category] = {"split": "heldout", "joint_type": m.joint_type}
            except Exception:  # noqa: BLE001
                pass
            continue
        cats[category_name(s)] = {"split": "heldout" if s in HELDOUT_CATEGORIES else "train",
                                  "joint_type": CATS[s].joint_type}
    return {
        "format": FORMAT, "seed": cfg.seed, "width": D415.width, "height": D415.height,
        "categories": cats, "objects": cfg.objects, "num_samples": cfg.num_samples,
        "samples_per_shard": cfg.samples_per_shard,
        "num_shards": math.ceil(cfg.num_samples / cfg.samples_per_shard),
        "config": json.loads(cfg.model_dump_json(exclude={"out", "workers", "progress"})),
        "intrinsics": {"fx": D415.fx, "fy": D415.fy, "cx": D415.cx, "cy": D415.cy},
        "split_rule": "held-out categories -> test_unseen; training categories: object seed % 5 == 0 -> "
                      "test_seen, else train",
    }


class DatasetConfigMismatch(RuntimeError):
    """Resuming into a folder that was started with different settings."""


def collect(cfg: CollectConfig) -> dict:
    """Run (or resume) a collection; returns the summary (also written to summary.json)."""
    from tqdm import tqdm

    out = Path(cfg.out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    meta = _meta(cfg)
    meta_path = out / "meta.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("config") != meta["config"] or old.get("num_samples") != meta["num_samples"]:
            raise DatasetConfigMismatch(f"{out} holds a dataset made with other settings; resume with the same "
                                        f"settings or choose a new --out")
    else:
        meta_path.write_text(json.dumps(meta, indent=1))
    for stale in (out / "shards").glob("*.tmp-*"):
        stale.unlink()
    n_shards = meta["num_shards"]
    todo = [i for i in range(n_shards) if not shard_path(out, i).exists()]
    done_before = n_shards - len(todo)
    t0 = time.perf_counter()
    results: list[ShardResult] = []
    bar = tqdm(total=cfg.num_samples, desc="sim collect", unit="sample", disable=not cfg.progress)
    bar.update(sum(_shard_rows(shard_path(out, i)) for i in range(n_shards) if i not in todo))
    args = [(cfg.model_dump(mode="json"), i) for i in todo]
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # workers are processes; BLAS threads would only contend
    if cfg.workers == 1 or len(todo) <= 1:
        it = map(_worker, args)
        pool = None
    else:
        pool = mp.get_context("spawn").Pool(min(cfg.workers, len(todo)))
        it = pool.imap_unordered(_worker, args)
    try:
        for r in it:
            results.append(r)
            bar.update(r.samples)
            for e in r.errors:
                tqdm.write(f"[sim collect] {e.splitlines()[0]}")
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    wall = time.perf_counter() - t0
    return _summarise(cfg, out, results, wall, done_before)


def _shard_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _summarise(cfg: CollectConfig, out: Path, results: list[ShardResult], wall: float, done_before: int) -> dict:
    import pyarrow.parquet as pq

    attempts = successes = 0
    per_cat: Counter = Counter()
    for p in sorted((out / "shards").glob("shard-*.parquet")):
        md = json.loads(pq.read_schema(p).metadata[b"manipllm"])
        attempts += md["attempts"]
        successes += md["samples"]
        per_cat.update(md["per_category"])
    timings: Counter = Counter()
    for r in results:
        timings.update(r.timings)
    new = sum(r.samples for r in results)
    summary = {
        "out": str(out), "attempts": attempts, "successes": successes,
        "success_rate": successes / attempts if attempts else 0.0,
        "per_category": dict(sorted(per_cat.items())),
        "this_run": {"shards": len(results), "shards_already_done": done_before, "samples": new,
                     "wall_s": wall, "samples_per_s": new / wall if wall > 0 else 0.0,
                     "workers": cfg.workers, "stage_cpu_s": {k: round(v, 2) for k, v in timings.items()}},
        "errors": [e.splitlines()[0] for r in results for e in r.errors],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def format_summary(s: dict) -> str:
    lines = [f"attempts {s['attempts']}, successes {s['successes']} ({100 * s['success_rate']:.1f} %)",
             f"this run: {s['this_run']['samples']} samples in {s['this_run']['wall_s']:.1f} s = "
             f"{s['this_run']['samples_per_s']:.2f} samples/s on {s['this_run']['workers']} workers",
             "stage CPU seconds: " + ", ".join(f"{k} {v}" for k, v in s["this_run"]["stage_cpu_s"].items()),
             "per category: " + ", ".join(f"{k} {v}" for k, v in s["per_category"].items())]
    if s["errors"]:
        lines.append(f"{len(s['errors'])} errors (see summary.json); first: {s['errors'][0]}")
    return "\n".join(lines)


__all__ = ["CollectConfig", "collect", "run_shard", "attempt", "format_summary"]
