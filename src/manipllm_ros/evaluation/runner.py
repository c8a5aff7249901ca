"""`manipllm eval`: N episodes per category from a fixed seed, over worker processes, resumable.

Each finished episode is appended to `episodes.jsonl` in the run folder as soon as it ends, so a killed run
loses at most the episodes in flight; a rerun with the same arguments skips what is there. The summary
(`summary.json`, `table.md`, `per_category.png`) is rebuilt from that file at the end.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from manipllm_ros.evaluation.episode import EpisodeSpec, run_episode


@dataclass
class EvalConfig:
    out: Path
    proposer: str = "random-part"
    checkpoint: str | None = None
    pull: str = "aia"
    split: str = "test_seen"  # test_seen: unseen instances of training categories; test_unseen: held-out ones
    episodes_per_category: int = 20
    categories: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)  # third-party "PATH:JOINT"
    seed: int = 0
    workers: int = 2
    progress: bool = True
    arm: str = "fast"  # fast: the flying suction arm; franky-sim: the FR3 over libfranka, one simulator per episode
    label: str = ""  # progress-bar label (matrix rows)


def episode_specs(cfg: EvalConfig) -> list[EpisodeSpec]:
    """Fixed by the seed: instance seeds of the split (test_seen instances have seed % 5 == 0)."""
    from manipllm_ros.sim.objects import HELDOUT_CATEGORIES, TRAIN_CATEGORIES

    cats = cfg.categories or list(TRAIN_CATEGORIES if cfg.split == "test_seen" else HELDOUT_CATEGORIES)
    specs = []
    for c, cat in enumerate(cats):
        rng = np.random.default_rng([cfg.seed, c])
        for i in range(cfg.episodes_per_category):
            seed = int(rng.integers(1, 200_000))
            if cfg.split == "test_seen":
                seed = 5 * (seed // 5) + 5  # an instance no training run saw (training uses seed % 5 != 0)
            specs.append(EpisodeSpec(cat, seed, i))
    for obj in cfg.objects:
        for i in range(cfg.episodes_per_category):
            specs.append(EpisodeSpec(f"file:{obj}", 0, i))
    return specs


_PROPOSER = None


def _init_worker(proposer: str, checkpoint: str | None, threads: int) -> None:
    global _PROPOSER
    os.environ.setdefault("MUJOCO_GL", "egl")
    if proposer.startswith("model"):
        import torch

        torch.set_num_threads(threads)
    from manipllm_ros.evaluation.proposals import make_proposer

    _PROPOSER = make_proposer(proposer, checkpoint)


def _work(args: tuple[EpisodeSpec, str, int, str]) -> dict:
    spec, pull, seed, arm = args
    try:
        if arm == "franky-sim":
            from manipllm_ros.evaluation.franky_episode import run_episode_franky

            return run_episode_franky(spec, _PROPOSER, pull=pull, seed=seed).to_dict()
        return run_episode(spec, _PROPOSER, pull=pull, seed=seed).to_dict()
    except Exception as exc:  # an object that does not load is a failed episode with its reason, not a dead run
        return {"key": spec.key, "category": spec.category, "category_split": "", "object_seed": spec.object_seed,
                "proposer": _PROPOSER.name, "pull": pull, "parsed": False, "on_object": False, "on_part": False,
                "u": -1, "v": -1, "joint_delta": 0.0, "initial_success": False, "long_success": False,
                "failure": f"episode error: {type(exc).__name__}: {exc}", "latency_ms": 0.0, "wall_s": 0.0}


def read_episodes(run_dir: Path) -> dict[str, dict]:
    """The finished episodes of a run folder by key ({} if none ran yet)."""
    log = Path(run_dir) / "episodes.jsonl"
    if not log.exists():
        return {}
    recs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return {r["key"]: r for r in recs}


def run_eval(cfg: EvalConfig) -> dict:
    from tqdm import tqdm

    cfg.out.mkdir(parents=True, exist_ok=True)
    log = cfg.out / "episodes.jsonl"
    done = read_episodes(cfg.out)
    if cfg.arm not in ("fast", "franky-sim"):
        raise ValueError(f"unknown arm {cfg.arm!r}: fast | franky-sim")
    todo = [s for s in episode_specs(cfg) if s.key not in done]
    bar = tqdm(total=len(todo) + len(done), initial=len(done), desc=cfg.label or f"eval {cfg.proposer}/{cfg.pull}",
               unit="ep", disable=not cfg.progress)
    threads = max(1, (os.cpu_count() or 2) // max(1, cfg.workers))
    ctx = mp.get_context("spawn")  # EGL and torch do not survive fork
    with log.open("a") as fh, ctx.Pool(cfg.workers, initializer=_init_worker,
                                       initargs=(cfg.proposer, cfg.checkpoint, threads)) as pool:
        for rec in pool.imap_unordered(_work, [(s, cfg.pull, cfg.seed, cfg.arm) for s in todo]):
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            done[rec["key"]] = rec
            bar.update(1)
    bar.close()
    records = [done[s.key] for s in episode_specs(cfg) if s.key in done]
    summary = summarise(records)
    summary["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in cfg.__dict__.items()}
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=2))
    (cfg.out / "table.md").write_text(markdown_table(summary))
    plot_per_category(summary, cfg.out / "per_category.png")
    return summary


def summarise(records: list[dict]) -> dict:
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_cat[r["category"]].append(r)

    def rates(rs: list[dict]) -> dict:
        n = len(rs)
        return {"n": n,
                "initial": float(np.mean([r["initial_success"] for r in rs])) if n else float("nan"),
                "long": float(np.mean([r["long_success"] for r in rs])) if n else float("nan"),
                "parsed": float(np.mean([r["parsed"] for r in rs])) if n else float("nan"),
                "on_part": float(np.mean([r["on_part"] for r in rs])) if n else float("nan")}

    return {"overall": rates(records), "per_category": {c: rates(rs) for c, rs in sorted(by_cat.items())}}


def markdown_table(summary: dict) -> str:
    lines = ["| category | n | initial (>0.01) | long (>0.1) | parsed | contact on part |", "|---|---|---|---|---|---|"]
    for cat, r in list(summary["per_category"].items()) + [("**all**", summary["overall"])]:
        lines.append(f"| {cat} | {r['n']} | {r['initial']:.2f} | {r['long']:.2f} | {r['parsed']:.2f} | "
                     f"{r['on_part']:.2f} |")
    return "\n".join(lines) + "\n"


def plot_per_category(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = list(summary["per_category"])
    init = [summary["per_category"][c]["initial"] for c in cats]
    long = [summary["per_category"][c]["long"] for c in cats]
    x = np.arange(len(cats))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(cats) + 2), 4))
    ax.bar(x - 0.2, init, 0.4, label="initial movement (>0.01)")
    ax.bar(x + 0.2, long, 0.4, label="long distance (>0.1)")
    ax.set_xticks(x, [c.replace("_", " ") for c in cats], rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("success rate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
