"""`manipllm eval-tta`: the same stream of shifted scenes twice from the same start adapters, TTA off then on,
through PoseService + TestTimeAdapter (the tta node's objects); curve, JSON and table written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from manipllm_ros.evaluation.tta_eval import DomainShift, TTAExperimentConfig, attempt_stream, run_tta_experiment

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "models" / "demo-tiny"


def test_stream_is_fixed_by_the_seed_and_the_shift_leaves_the_training_ranges():
    cfg = TTAExperimentConfig(checkpoint=str(TINY), out=Path("/nonexistent"), attempts=6)
    a = attempt_stream(cfg)
    assert a == attempt_stream(cfg) and len(a) == 6
    assert all(s.object_seed % 5 == 0 for s in a)  # unseen instances
    from manipllm_ros.sim.world import WorldConfig

    train = WorldConfig()
    shift = DomainShift()
    assert shift.world_config().elevation_deg[0] > train.elevation_deg[1]  # camera higher than any training view
    assert shift.ambient < 0.15 and min(shift.light_rgb) / max(shift.light_rgb) < 0.85  # darker, tinted light


@pytest.mark.slow
def test_tta_on_vs_off_from_the_same_start(tmp_path, one_torch_thread):
    cfg = TTAExperimentConfig(checkpoint=str(TINY), out=tmp_path / "tta", attempts=3, categories=["microwave"],
                              progress=False, learning_rate=1e-3)
    res = run_tta_experiment(cfg)
    off, on = res["off"], res["on"]
    assert [r["key"] for r in off] == [r["key"] for r in on] == [s.key for s in attempt_stream(cfg)]
    assert all(not r["updated"] and r["adapter_version"] == 0 for r in off)  # off never touches the adapters
    # on: every attempt with a prediction is one V-Adapter step, counted by the service's adapter version
    predicted = [r for r in on if r["updated"]]
    assert predicted, [r["failure"] for r in on]
    assert len(predicted) == res["final"]["on"]["updates"] and on[-1]["adapter_version"] == len(predicted)
    assert all(math.isfinite(r["loss"]) for r in predicted)
    assert (cfg.out / "tta_state_on" / "current" / "tta.json").is_file()  # persisted like the tta node does
    # the first attempt is made before any update: both runs see and do exactly the same
    assert off[0]["joint_delta"] == pytest.approx(on[0]["joint_delta"]) and off[0]["failure"] == on[0]["failure"]
    for runs in (off, on):
        for k, r in enumerate(runs):
            assert r["cum_initial"] == pytest.approx(np.mean([x["initial_success"] for x in runs[: k + 1]]))
            assert r["initial_success"] == (r["joint_delta"] > 0.01)
    saved = json.loads((cfg.out / "tta_curve.json").read_text())
    assert saved["final"] == res["final"]
    assert "| 3 |" in (cfg.out / "tta.md").read_text()
    assert (cfg.out / "tta_curve.png").stat().st_size > 1000
