"""`manipllm eval-tta`: does test-time adaptation help under a domain shift the model never trained on?

A stream of K objects (fixed by the seed) is attempted once each, in order, twice from the same start adapters:
TTA off, then TTA on. The attempts go through the same objects the pose service and the tta node use:
`PoseService.predict` (validate, predict, lift, remember the prediction) and `TestTimeAdapter.report` (the
attempt's outcome -> one `PosePredictor.tta_step` on the V-Adapter, persisted); with TTA off the adapter is the
same object with `enabled=False`, so the only difference between the two runs is the update. The outcome fed
back is the paper's initial-movement success (joint moved > 0.01 in the opening direction), as the demo does.
The "off" run goes first and never changes the adapters, so "on" starts from exactly the loaded adapters.

The shift (`DomainShift`, default `high-camera-orange`): the camera looks down from 62-78 deg elevation
(training: 20-55) and the scene is lit by strongly orange light over a dim ambient (training: grey-white lights
with at most 15 % tint, ambient 0.15-0.45). Both are outside every range `sim collect` draws from.

Output (`--out DIR`): `tta_curve.json` (every attempt of both runs, cumulative success), `tta_curve.png`
(cumulative success rate over attempts, on vs off) and `tta.md`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from manipllm_ros.evaluation.episode import EpisodeSpec, run_episode
from manipllm_ros.evaluation.proposals import Proposal, Proposer


@dataclass(frozen=True)
class DomainShift:
    """Camera and lighting outside the training ranges (see the module doc)."""

    name: str = "high-camera-orange"
    elevation_deg: tuple[float, float] = (62.0, 78.0)
    ambient: float = 0.08
    headlight_diffuse: float = 0.12
    light_rgb: tuple[float, float, float] = (0.95, 0.55, 0.25)
    relight: bool = True  # False: the training lights

    def world_config(self):
        from manipllm_ros.sim.world import WorldConfig

        return WorldConfig(elevation_deg=self.elevation_deg)

    def __call__(self, world) -> None:
        """Relight a built world (rendering reads these model fields at every frame)."""
        if not self.relight:
            return
        m = world.model
        m.vis.headlight.ambient[:] = self.ambient
        m.vis.headlight.diffuse[:] = self.headlight_diffuse
        for i in range(m.nlight):
            m.light_diffuse[i] = self.light_rgb


SHIFTS = {"high-camera-orange": DomainShift(),
          "none": DomainShift(name="none", elevation_deg=(20.0, 55.0), relight=False)}  # the training distribution


class ServiceProposer(Proposer):
    """Proposals through `PoseService.predict`, remembering the prediction id for the outcome report."""

    def __init__(self, service, chain_of_thought: bool = True) -> None:
        self.service = service
        self.chain_of_thought = chain_of_thought
        self.name = "model-cot" if chain_of_thought else "model-direct"
        self.last_id = 0

    def propose(self, obs, instruction: str, rng: np.random.Generator) -> Proposal:
        from manipllm_ros.pose_service import RGBDFrame

        frame = RGBDFrame(obs.rgb, np.asarray(obs.depth, np.float32), np.asarray(obs.intrinsics.K, float))
        res = self.service.predict(instruction, frame, self.chain_of_thought)
        self.last_id = res.prediction_id if res.success else 0
        if not res.success:
            return Proposal(error=res.error, latency_ms=res.latency_ms.get("total_ms", 0.0))
        return Proposal(res.u, res.v, np.asarray(res.up, float), np.asarray(res.forward, float),
                        category=res.category, reasoning=res.reasoning,
                        latency_ms=res.latency_ms.get("total_ms", 0.0))


@dataclass
class TTAExperimentConfig:
    checkpoint: str
    out: Path
    attempts: int = 50
    categories: list[str] = field(default_factory=list)  # default: the 20 training categories (unseen instances)
    seed: int = 0
    pull: str = "aia"
    chain_of_thought: bool = True
    learning_rate: float = 1e-4
    shift: str = "high-camera-orange"
    device: str = "cpu"
    progress: bool = True


def attempt_stream(cfg: TTAExperimentConfig) -> list[EpisodeSpec]:
    """K (category, unseen instance) pairs in a fixed order; both runs attempt exactly these."""
    from manipllm_ros.sim.objects import TRAIN_CATEGORIES

    cats = cfg.categories or list(TRAIN_CATEGORIES)
    rng = np.random.default_rng([cfg.seed, 0x77A])
    out = []
    for i in range(cfg.attempts):
        cat = cats[int(rng.integers(len(cats)))]
        inst = 5 * (int(rng.integers(1, 200_000)) // 5) + 5  # seed % 5 == 0: an instance training never saw
        out.append(EpisodeSpec(cat, inst, i))
    return out


def _run_condition(tta_on: bool, cfg: TTAExperimentConfig, predictor, stream: list[EpisodeSpec], shift) -> list[dict]:
    from tqdm import tqdm

    from manipllm_ros.config import FramesConfig, PoseServiceConfig, TTAConfig
    from manipllm_ros.pose_service import PoseService
    from manipllm_ros.tta import TestTimeAdapter

    service = PoseService(predictor, PoseServiceConfig(), FramesConfig())
    name = "on" if tta_on else "off"
    tta = TestTimeAdapter(service, TTAConfig(enabled=tta_on, learning_rate=cfg.learning_rate,
                                             state_dir=str(cfg.out / f"tta_state_{name}")))
    proposer = ServiceProposer(service, cfg.chain_of_thought)
    recs = []
    n_init = n_long = 0
    for k, spec in enumerate(tqdm(stream, desc=f"TTA {name}", unit="attempt", disable=not cfg.progress)):
        try:
            o = run_episode(spec, proposer, pull=cfg.pull, seed=cfg.seed, world_config=shift.world_config(),
                            world_hook=shift).to_dict()
        except Exception as exc:  # noqa: BLE001 - an object that does not load is a failed attempt, not a dead run
            o = {"key": spec.key, "category": spec.category, "parsed": False, "on_part": False, "u": -1, "v": -1,
                 "initial_success": False, "long_success": False, "joint_delta": 0.0,
                 "failure": f"episode error: {type(exc).__name__}: {exc}"}
        update = {"updated": False, "loss": None}
        if proposer.last_id:  # a prediction was made: its outcome goes back, as /report_outcome does
            r = tta.report(proposer.last_id, bool(o["initial_success"]))
            update = {"updated": r.updated, "loss": r.loss if r.updated else None}
        n_init += bool(o["initial_success"])
        n_long += bool(o["long_success"])
        recs.append({"attempt": k + 1, "key": o["key"], "category": o["category"], "parsed": o["parsed"],
                     "u": o["u"], "v": o["v"], "on_part": o["on_part"], "joint_delta": o["joint_delta"],
                     "initial_success": bool(o["initial_success"]), "long_success": bool(o["long_success"]),
                     "failure": o["failure"], "adapter_version": service.adapter_version, **update,
                     "cum_initial": n_init / (k + 1), "cum_long": n_long / (k + 1)})
    return recs


def run_tta_experiment(cfg: TTAExperimentConfig) -> dict:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from manipllm_ros.model.policy import PosePredictor

    if cfg.shift not in SHIFTS:
        raise ValueError(f"unknown shift {cfg.shift!r}: {' | '.join(SHIFTS)}")
    shift = SHIFTS[cfg.shift]
    cfg.out = Path(cfg.out)
    cfg.out.mkdir(parents=True, exist_ok=True)
    stream = attempt_stream(cfg)
    t0 = time.perf_counter()
    predictor = PosePredictor.load(cfg.checkpoint, device=cfg.device, tta_lr=cfg.learning_rate)
    start_version = predictor.adapter_version
    off = _run_condition(False, cfg, predictor, stream, shift)  # never updates: "on" starts from the same adapters
    assert predictor.adapter_version == start_version
    on = _run_condition(True, cfg, predictor, stream, shift)
    predictor.reset_adapters()
    res = {"config": {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                      "shift_detail": asdict(shift), "start_adapter_version": start_version},
           "off": off, "on": on, "wall_s": time.perf_counter() - t0,
           "final": {c: {"initial": runs[-1]["cum_initial"] if runs else float("nan"),
                         "long": runs[-1]["cum_long"] if runs else float("nan"),
                         "updates": sum(r["updated"] for r in runs)}
                     for c, runs in (("off", off), ("on", on))}}
    (cfg.out / "tta_curve.json").write_text(json.dumps(res, indent=2))
    (cfg.out / "tta.md").write_text(tta_markdown(res))
    plot_tta(res, cfg.out / "tta_curve.png")
    return res


def tta_markdown(res: dict) -> str:
    c, off, on = res["config"], res["off"], res["on"]
    K = len(off)
    lines = [f"TTA under shift `{c['shift']}` ({c['shift_detail']}); checkpoint `{c['checkpoint']}`, {K} attempts "
             f"on a stream of unseen instances (seed {c['seed']}), pull {c['pull']}, "
             f"{'chain of thought' if c['chain_of_thought'] else 'direct'}, TTA learning rate {c['learning_rate']}. "
             "Both runs start from the same adapters and attempt the same objects in the same order; with TTA on, "
             "each attempt's outcome (initial movement > 0.01) is one V-Adapter step before the next attempt.",
             "",
             "| after attempt | off: initial | on: initial | off: long | on: long |",
             "|---|---|---|---|---|"]
    marks = sorted({k for k in (1, 5, 10, 20, 30, 50, 75, 100, 150, 200, K) if 1 <= k <= K})
    for k in marks:
        lines.append(f"| {k} | {off[k - 1]['cum_initial']:.2f} | {on[k - 1]['cum_initial']:.2f} | "
                     f"{off[k - 1]['cum_long']:.2f} | {on[k - 1]['cum_long']:.2f} |")
    if K >= 2:
        h = K // 2
        second = {n: (np.mean([r["initial_success"] for r in runs[h:]]), np.mean([r["long_success"] for r in runs[h:]]))
                  for n, runs in (("off", off), ("on", on))}
        lines += ["", f"Second half only (attempts {h + 1}-{K}, where adaptation has had time to act): initial "
                      f"{second['off'][0]:.2f} off vs {second['on'][0]:.2f} on; long {second['off'][1]:.2f} off vs "
                      f"{second['on'][1]:.2f} on."]
    moved = sum((a["u"], a["v"]) != (b["u"], b["v"]) for a, b in zip(off, on))
    lines += ["", f"V-Adapter updates: {res['final']['on']['updates']} with TTA on, {res['final']['off']['updates']} "
                  f"off; the adapted model chose another contact pixel than the unadapted one in {moved} of {K} "
                  f"attempts. Wall time {res['wall_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def plot_tta(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for cond, colour in (("off", "tab:grey"), ("on", "tab:blue")):
        runs = res[cond]
        x = [r["attempt"] for r in runs]
        ax.plot(x, [r["cum_initial"] for r in runs], color=colour, label=f"TTA {cond}: initial (>0.01)")
        ax.plot(x, [r["cum_long"] for r in runs], color=colour, ls="--", label=f"TTA {cond}: long (>0.1)")
    ax.set_xlabel("attempt")
    ax.set_ylabel("cumulative success rate")
    ax.set_ylim(0, 1)
    ax.set_title(f"test-time adaptation under shift '{res['config']['shift']}'", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
