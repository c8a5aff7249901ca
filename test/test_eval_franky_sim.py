"""`manipllm eval --arm franky-sim`: an evaluation episode on the FR3 in franky-sim (libfranka protocol), the
episode's generated object loaded into franky-sim and the camera mirroring it. One category, the mask oracle (so
the contact is on the part and the episode exercises approach, suction and the pull); ~30-60 s."""

from __future__ import annotations

import json

import pytest

from manipllm_ros.evaluation.runner import EvalConfig, run_eval

pytestmark = pytest.mark.slow


def test_franky_sim_episode_opens_a_generated_object(tmp_path):
    cfg = EvalConfig(out=tmp_path / "fs", proposer="random-part", categories=["microwave"],
                     episodes_per_category=1, workers=1, progress=False, arm="franky-sim")
    summary = run_eval(cfg)
    (rec,) = [json.loads(l) for l in (cfg.out / "episodes.jsonl").read_text().splitlines()]
    assert not rec["failure"].startswith("episode error"), rec["failure"]
    assert rec["category"] == "microwave" and rec["parsed"] and rec["on_part"]
    assert rec["initial_success"] == (rec["joint_delta"] > 0.01)
    # the FR3 really opened the door in franky-sim (a microwave door is small enough that any pixel on it is
    # within the FR3's workspace; a random pixel on a tall cabinet door often is not: "outside workspace")
    assert rec["joint_delta"] > 0.01, rec
    assert rec["wall_s"] > 1.0 and summary["overall"]["n"] == 1
