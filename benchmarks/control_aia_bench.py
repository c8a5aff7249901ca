#!/usr/bin/env python3
"""AIA vs straight pull on revolute parts (fast arm), plus AIA timing on franky-sim. Prints a Markdown report.

Fast backend: `--episodes` episodes per run over the revolute categories of `control.episodes`, every episode
played by both policies from the same contact and the same (noisy) initial direction; `--runs` runs with
different run seeds (contact pixel, direction error, AIA perturbation phases) give the run-to-run spread.
franky-sim: one AIA episode on the door and one on the drawer through the real franky client, timed.

    .venv/bin/python benchmarks/control_aia_bench.py --episodes 100 --runs 3 --workers 2 \
        --out benchmarks/control_aia.md --json benchmarks/control_aia.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

import manipllm_ros.sim.flying_arm  # noqa: E402,F401  (imported before forking: every worker runs one version)
from manipllm_ros.control.config import AIAConfig  # noqa: E402
from manipllm_ros.control.episodes import REVOLUTE_CATEGORIES, run_flying_episode  # noqa: E402

# The fast arm's probe is a true force (no spring along the probe), so it moves ~4x further than the FR3's
# friction-limited impedance probe for the same 15 N: shorter probes, no return, longer steps. Measured.
SIM_VERSION = "?"
FAST_AIA = dict(target_distance=0.3, max_steps=12, step_length=0.05, probe_duration=0.1, return_after_probe=False)


def _one(args: tuple) -> dict:
    cat, obj_seed, run_seed, noise_max = args
    rng = np.random.default_rng([run_seed, obj_seed, 7])
    noise = float(rng.uniform(0.0, noise_max))
    out = {"category": cat, "object_seed": obj_seed, "run": run_seed, "noise_deg": noise}
    for pol in ("aia", "straight"):
        r = run_flying_episode(cat, obj_seed, pol, AIAConfig(**FAST_AIA), direction_noise_deg=noise,
                               rng_seed=run_seed)
        its = [it.wall_time for it in r.record.iterations] if r.record else []
        out[pol] = {"dq": r.joint_delta, "long": bool(r.long_success), "initial": bool(r.initial_success),
                    "attached": r.attached, "outcome": r.record.outcome.value if r.record else "not_attached",
                    "iterations": r.iterations, "wall": r.wall_time, "sim": r.sim_time,
                    "iter_wall": float(np.mean(its)) if its else None}
    return out


def fast_backend(episodes: int, runs: int, workers: int, noise_max: float) -> dict:
    from tqdm import tqdm

    per_run = {}
    for run in range(runs):
        jobs = [(REVOLUTE_CATEGORIES[i % len(REVOLUTE_CATEGORIES)], 1000 + i, run, noise_max) for i in range(episodes)]
        with ProcessPoolExecutor(workers) as ex:
            rows = list(tqdm(ex.map(_one, jobs), total=len(jobs), desc=f"fast run {run} (noise<= {noise_max})"))
        per_run[run] = rows
    return per_run


def summarise(per_run: dict) -> dict:
    s = {"runs": {}}
    for run, rows in per_run.items():
        r = {}
        for pol in ("aia", "straight"):
            r[pol] = {
                "long": float(np.mean([x[pol]["long"] for x in rows])),
                "initial": float(np.mean([x[pol]["initial"] for x in rows])),
                "mean_dq": float(np.mean([x[pol]["dq"] for x in rows])),
                "episode_wall": float(np.mean([x[pol]["wall"] for x in rows])),
                "episode_sim": float(np.mean([x[pol]["sim"] for x in rows])),
            }
        iw = [x["aia"]["iter_wall"] for x in rows if x["aia"]["iter_wall"] is not None]
        r["aia"]["iter_wall"] = float(np.mean(iw)) if iw else None
        r["n"] = len(rows)
        s["runs"][run] = r
    for key in ("long", "initial"):
        for pol in ("aia", "straight"):
            vals = [s["runs"][k][pol][key] for k in s["runs"]]
            s[f"{pol}_{key}_mean"] = float(np.mean(vals))
            s[f"{pol}_{key}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
            s[f"{pol}_{key}_range"] = float(max(vals) - min(vals))
        diffs = [s["runs"][k]["aia"][key] - s["runs"][k]["straight"][key] for k in s["runs"]]
        s[f"margin_{key}_min"] = float(min(diffs))
    return s


def franky_sim_timing() -> dict:
    from manipllm_ros.control.aia import AIAPolicy, approach_and_attach
    from manipllm_ros.control.arm import EEPose
    from manipllm_ros.control.config import FrankyConfig
    from manipllm_ros.control.end_effectors import FrankySimSuction
    from manipllm_ros.control.franky_arm import FrankyArm
    from manipllm_ros.control.franky_sim_scene import FrankySimProcess, ObjectSpec, SceneClient

    out = {}
    for kind, target in (("door", 0.12), ("drawer", 0.2)):
        spec = ObjectSpec(kind=kind)
        with FrankySimProcess(spec) as sp:
            sc = SceneClient(sp.hostname)
            cfg = FrankyConfig(robot_ip=sp.hostname, relative_dynamics_factor=0.3)
            arm = FrankyArm(cfg, FrankySimSuction(sp.hostname))
            with arm:
                s0, w0 = sc.call("state")["sim_time"], time.perf_counter()
                # The FR3 approach of franka_node: stop contact_gap short, then a compliant press seats the cup.
                ok, msg = approach_and_attach(arm, EEPose(spec.contact_point(), spec.contact_rotation()),
                                              **cfg.approach_kwargs())
                q0 = sc.joint()
                s1, w1 = sc.call("state")["sim_time"], time.perf_counter()
                rec = AIAPolicy(AIAConfig(target_distance=target, max_steps=10)).run(arm, -spec.contact_rotation()[:, 2])
                s2, w2 = sc.call("state")["sim_time"], time.perf_counter()
                out[kind] = {
                    "attached": ok, "outcome": rec.outcome.value, "joint_delta": sc.joint() - q0,
                    "iterations": len(rec.iterations),
                    "iter_wall": float(np.mean([it.wall_time for it in rec.iterations])),
                    "probe_wall": float(np.mean([p.wall_time for it in rec.iterations for p in it.probes])),
                    "episode_wall": w2 - w1, "episode_sim": s2 - s1, "approach_wall": w1 - w0,
                    "wall_per_sim": (w2 - w0) / max(s2 - s0, 1e-9),
                }
            sc.close()
    return out


def _sim_version() -> str:
    import subprocess

    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return "?"

    dirty = git("status", "--porcelain", "--", "src/manipllm_ros/sim", "src/manipllm_ros/control")
    return git("log", "-1", "--format=%h", "--", "src/manipllm_ros/sim") + (" (+ local changes)" if dirty else "")


def report(fast: dict, fast0: dict | None, franky: dict | None, args) -> str:
    L = ["# AIA vs straight pull, and AIA timing", "",
         f"Generated by `benchmarks/control_aia_bench.py --episodes {args.episodes} --runs {args.runs} "
         f"--noise-max {args.noise_max}` on {platform.node()} ({os.cpu_count()} CPUs), "
         f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, sim at commit {SIM_VERSION}.", "",
         "## Fast simulated arm (sim/flying_arm.py), revolute parts", "",
         f"{args.episodes} episodes per run, categories {', '.join(REVOLUTE_CATEGORIES)} (object seeds 1000+i). "
         "Each episode: cup sealed on a pixel with affordance > 0.8, initial pull direction = outward normal "
         f"turned by a random angle in [0, {args.noise_max}] deg (a predicted direction's error); both policies "
         "start from the same state. Success: joint moved > 0.1 rad (long distance) / > 0.01 rad (initial) in the "
         f"opening direction. AIA settings: defaults with {FAST_AIA}.", "",
         "| run | AIA long | straight long | AIA initial | straight initial | AIA mean dq (rad) | straight mean dq |",
         "|---|---|---|---|---|---|---|"]
    for k, r in fast["runs"].items():
        L.append(f"| {k} | {r['aia']['long']:.2f} | {r['straight']['long']:.2f} | {r['aia']['initial']:.2f} | "
                 f"{r['straight']['initial']:.2f} | {r['aia']['mean_dq']:.3f} | {r['straight']['mean_dq']:.3f} |")
    L += ["", f"**Long-distance success: AIA {fast['aia_long_mean']:.3f} ± {fast['aia_long_std']:.3f}, straight "
          f"pull {fast['straight_long_mean']:.3f} ± {fast['straight_long_std']:.3f}** (mean ± std over runs; "
          f"run-to-run range AIA {fast['aia_long_range']:.3f}, straight {fast['straight_long_range']:.3f}). "
          f"Smallest per-run margin AIA - straight: {fast['margin_long_min']:.3f}. Paper: 0.57 vs 0.50.", ""]
    if fast0 is not None:
        r = fast0["runs"][0]
        L += [f"Same episodes with the exact normal as the initial direction (no direction error, 1 run): long "
              f"AIA {r['aia']['long']:.2f} vs straight {r['straight']['long']:.2f}; initial "
              f"{r['aia']['initial']:.2f} vs {r['straight']['initial']:.2f}; mean dq {r['aia']['mean_dq']:.3f} vs "
              f"{r['straight']['mean_dq']:.3f} rad.", ""]
    r0 = fast["runs"][0]
    L += ["Timing (fast arm, one core per worker): AIA "
          f"{r0['aia']['iter_wall'] * 1000:.0f} ms wall per iteration ({FAST_AIA['max_steps']} max), "
          f"{r0['aia']['episode_wall']:.2f} s wall per episode (incl. world build + render) for "
          f"{r0['aia']['episode_sim']:.1f} s simulated; straight pull {r0['straight']['episode_wall']:.2f} s.", ""]
    if franky:
        L += ["## franky-sim (real franky client, libfranka protocol, MuJoCo FR3 at 1 kHz)", "",
              "| part | outcome | joint moved | iterations | wall / AIA iteration | wall / probe | episode wall | "
              "episode sim | approach wall | wall / sim time |", "|---|---|---|---|---|---|---|---|---|---|"]
        for kind, f in franky.items():
            unit = "rad" if kind == "door" else "m"
            L.append(f"| {kind} | {f['outcome']} | {f['joint_delta']:.3f} {unit} | {f['iterations']} | "
                     f"{f['iter_wall']:.2f} s | {f['probe_wall']:.2f} s | {f['episode_wall']:.1f} s | "
                     f"{f['episode_sim']:.1f} s | {f['approach_wall']:.1f} s | {f['wall_per_sim']:.2f} |")
        L += ["", "franky-sim runs its physics in real time (1 ms per tick, paced by wall clock); a ratio above "
              "1 means the 2-core machine could not keep up (the sim then runs slower than real time)."]
    return "\n".join(L) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--noise-max", type=float, default=60.0)
    p.add_argument("--no-clean", action="store_true", help="skip the 1-run comparison without direction error")
    p.add_argument("--no-franky", action="store_true")
    p.add_argument("--out", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--load-fast", default=None, help="JSON of an earlier run: skip the fast-arm episodes")
    a = p.parse_args()
    t0 = time.time()
    global SIM_VERSION
    SIM_VERSION = _sim_version()
    if a.load_fast:  # re-use the fast-arm episodes of an earlier run (e.g. after a franky-sim failure)
        saved = json.load(open(a.load_fast))
        rows = {int(k): v for k, v in saved["episodes"].items()}
        rows0 = {int(k): v for k, v in saved["episodes_no_direction_error"].items()} if saved.get(
            "episodes_no_direction_error") else None
    else:
        rows = fast_backend(a.episodes, a.runs, a.workers, a.noise_max)
        rows0 = None if a.no_clean else fast_backend(a.episodes, 1, a.workers, 0.0)
        if a.json:  # save before the franky-sim part, so a failure there loses nothing
            with open(a.json, "w") as f:
                json.dump({"episodes": rows, "episodes_no_direction_error": rows0}, f)
    fast = summarise(rows)
    fast0 = summarise(rows0) if rows0 else None
    franky = None if a.no_franky else franky_sim_timing()
    text = report(fast, fast0, franky, a)
    print(text)
    print(f"(total {time.time() - t0:.0f} s)")
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"fast": fast, "fast_no_direction_error": fast0, "franky_sim": franky,
                       "episodes": {str(k): v for k, v in rows.items()},
                       "episodes_no_direction_error": rows0}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
