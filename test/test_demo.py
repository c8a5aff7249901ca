"""`manipllm demo` end to end at toy size: sim collect -> train -> /predict_pose node over DDS -> fast arm ->
/report_outcome, then a full-system episode (franky-sim + camera + pose service + franka node as processes).
The toy model is trained for 2 steps, so its answers do not parse: the demo must say so in its table (never a
default pose) and still write every image and the summary. With the shipped model a system episode runs the
whole chain: /predict_pose on the camera's frame -> /manipulate (AIA on the FR3 in franky-sim) -> TTA step."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import run_cli

MANIPLLM = Path(sys.executable).parent / "manipllm"
REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _no_children_left(out: Path) -> None:
    """Every process a system episode started has exited (the demo logs the exit codes it collected)."""
    for log in (out / "system").glob("episode_*"):
        assert any(log.iterdir()), log


def _explain(row: dict, res, out: Path) -> str:
    """Everything needed to tell why a system episode went wrong from a CI log alone: the whole row, the demo's
    output and the tail of each node's log."""
    parts = [json.dumps(row), res.stdout[-2500:], res.stderr[-1500:]]
    for log in sorted((out / "system").glob("episode_*/*.log")):
        text = log.read_text(errors="replace")
        parts.append(f"--- {log.name} (last 1500 chars)\n{text[-1500:]}")
    return "\n".join(parts)


def test_demo_runs_end_to_end_and_reports_honestly(tmp_path, node_env):
    out = tmp_path / "demo"
    cmd = [str(MANIPLLM), "demo", "--samples", "6", "--steps", "2", "--val-samples", "1", "--episodes", "2",
           "--system-episodes", "1", "--out", str(out), "--checkpoint", str(tmp_path / "ckpt"),
           "--categories", "microwave", "cabinet_drawer"]
    res = run_cli(cmd, timeout=1200, cwd=tmp_path, env=node_env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rows = json.loads((out / "episodes.json").read_text())
    assert [r["arm"] for r in rows] == ["fast arm", "fast arm", "FR3/franky-sim"]
    for row in rows:
        assert (out / row["image"]).is_file()
        if row["pixel"] == "-":  # unparsed: a failure with the parser's message, no pose, no motion
            assert not row["success"] and row["note"].startswith("could not parse pose"), row
            assert row["joint_delta"] == 0.0
    # The system episode really ran through the processes: the pose service answered from the camera's frame.
    fr3 = rows[-1]
    assert fr3["category"] == "cabinet_drawer" and fr3["latency_ms"] > 0, fr3
    assert "system stopped: {'franky_sim': 0, 'camera': 0, 'pose_service': 0, 'franka': 0}" in res.stdout
    prov = json.loads((tmp_path / "ckpt" / "provenance.json").read_text())
    assert prov["train_samples"] == 6 and prov["steps"] == 2 and "manipllm demo" in prov["command"]
    summary = (out / "summary.md").read_text()
    assert "opened" in summary and "FR3/franky-sim" in summary


def test_demo_system_episode_runs_the_whole_chain_on_the_fr3(tmp_path, node_env):
    """The shipped model, one full-system episode: prediction, AIA on the FR3, outcome, TTA version bump.

    Whether the door opens is the shipped model's quality on one view, and the shipped model is tiny and ignores
    most of the image (benchmarks/model_small_sim.md): locally its pose opens this door, while one CI machine's run
    ended with ee_distance 0 (no attach) for a reason its log did not show. So this test asks for the chain and an
    honest row, and prints the node logs if either is missing; test_franka_node opens the door through the same
    /manipulate action with a known-good pose, and the evaluation measures success rates."""
    out = tmp_path / "demo"
    cmd = [str(MANIPLLM), "demo", "--episodes", "0", "--system-episodes", "1", "--out", str(out),
           "--categories", "storage_cabinet_door"]
    res = run_cli(cmd, timeout=900, cwd=tmp_path, env=node_env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (row,) = json.loads((out / "episodes.json").read_text())
    why = _explain(row, res, out)
    assert row["arm"] == "FR3/franky-sim" and row["pixel"] != "-", why
    assert "/manipulate: approach" in res.stdout, why  # feedback from franka_node
    assert "system error" not in row["note"], why
    assert row["success"] == (row["joint_delta"] > 0.01), why  # success is what franky-sim's joint did
    assert row["success"] or row["note"], why  # a failed episode says why (franka_node's reason)
    assert row["adapter_version"] >= 1, why  # the pose service's TTA learned from franka_node's outcome
    assert (out / row["image"]).is_file()
    assert "'franka': 0" in res.stdout and "'franky_sim': 0" in res.stdout
    print(json.dumps(row))


def test_demo_system_episode_that_cannot_start_is_a_failure_row(tmp_path, node_env):
    """franky-sim refuses the object: that episode is a clear failure row, the rest of the demo goes on."""
    out = tmp_path / "demo"
    cmd = [str(MANIPLLM), "demo", "--episodes", "0", "--system-episodes", "1", "--out", str(out),
           "--system-categories", "teapot"]
    res = run_cli(cmd, timeout=300, cwd=tmp_path, env=node_env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (row,) = json.loads((out / "episodes.json").read_text())
    assert not row["success"] and row["note"].startswith("system error: franky_sim exited with code 2"), row
    assert (out / row["image"]).is_file()
    assert "system stopped: {'franky_sim': 2}" in res.stdout


def test_demo_system_episode_that_times_out_stops_its_processes(tmp_path, node_env):
    """A process not ready within --system-timeout: a failure row that says so, every process stopped, no hang."""
    out = tmp_path / "demo"
    cmd = [str(MANIPLLM), "demo", "--episodes", "0", "--system-episodes", "1", "--out", str(out),
           "--system-timeout", "0.5"]
    res = run_cli(cmd, timeout=300, cwd=tmp_path, env=node_env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (row,) = json.loads((out / "episodes.json").read_text())
    assert not row["success"] and row["note"].startswith("system error: franky_sim not ready after"), row
    assert "system stopped: {'franky_sim'" in res.stdout


def _kill_franka_node_mid_episode(out: Path, killed: list[int], deadline_s: float = 600.0) -> None:
    """Once the pose service has answered (the demo sends /manipulate right after), SIGKILL this demo's franka_node."""
    logs = out / "system" / "episode_00"
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        pose_log = logs / "pose_service.log"
        if pose_log.is_file() and "prediction 1:" in pose_log.read_text(errors="replace"):
            time.sleep(3.0)  # the approach is under way
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                if "manipllm_ros.nodes.franka_node" in cmd and str(logs) in cmd:
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed.append(int(proc.name))
                    return
            return
        time.sleep(0.2)


def test_demo_system_episode_whose_node_dies_mid_episode_is_a_failure_row(tmp_path, node_env):
    """franka_node killed during /manipulate: the episode is a failure row naming it, the rest is stopped, no hang."""
    out = tmp_path / "demo"
    cmd = [str(MANIPLLM), "demo", "--episodes", "0", "--system-episodes", "1", "--out", str(out),
           "--categories", "storage_cabinet_door"]
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_franka_node_mid_episode, args=(out, killed), daemon=True)
    watcher.start()
    res = run_cli(cmd, timeout=900, cwd=tmp_path, env=node_env)
    watcher.join(5)
    assert killed, "franka_node was never found to kill: " + res.stdout[-2000:]
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (row,) = json.loads((out / "episodes.json").read_text())
    assert not row["success"] and row["note"] == "system error: franka died (code -9)", row
    assert "'franka': -9" in res.stdout and "'pose_service': 0" in res.stdout and "'camera': 0" in res.stdout
    # The killed node's open-episode journal stays with this system's logs, not in a per-user file that the next
    # system's franka_node would read and report to a pose service whose prediction ids start again at 1.
    journal = out / "system" / "episode_00" / "franka_episode.json"
    assert json.loads(journal.read_text())["prediction_id"] == 1
    assert (out / row["image"]).is_file()


def test_demo_serves_the_shipped_small_model_directly_with_grounded_contacts(tmp_path, node_env):
    """models/small-objview-hard was trained without chain of thought and with the grounding task, on object
    windows: `--direct --contact grounding` asks it the way it was taught, through the real pose service node over
    DDS; `--up depth` takes the approach axis from the depth image; `--views 7` asks on 7 jittered windows;
    `--protrusion-radius 40 --protrusion-facing 45` moves a contact onto a raised part that faces the model's up;
    `--protrusion-skip-outline` keeps it off the outline of its own surface; `--protrusion-stay-on-own` keeps it on
    a part it is already on; `--handle-radius 200` first moves one on a panel beside a handle on another panel of
    its plane."""
    out = tmp_path / "demo"
    cmd = [str(MANIPLLM), "demo", "--checkpoint", str(REPO / "models" / "small-objview-hard"), "--direct",
           "--contact", "grounding", "--up", "depth", "--snap-radius", "60", "--views", "7",
           "--protrusion-radius", "40", "--protrusion-facing", "45", "--protrusion-skip-outline",
           "--protrusion-stay-on-own", "--handle-radius", "200", "--episodes", "3",
           "--system-episodes", "0", "--out", str(out)]
    res = run_cli(cmd, timeout=600, cwd=tmp_path, env=node_env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rows = json.loads((out / "episodes.json").read_text())
    assert len(rows) == 3 and all(r["pixel"] != "-" for r in rows), rows  # every answer parsed
    assert all(r["on_part"] is not None and r["success"] == (r["joint_delta"] > 0.01) for r in rows), rows
    log = (out / "logs" / "pose_service.log").read_text()
    assert ("contact from the grounding answer, up from the depth image, beside a handle on another panel within "
            "200 px, onto raised parts within 40 px facing the model's up within 45 deg (not the contact surface's "
            "outline) (staying on a part the contact is on), snap within 60 px, mean of 7 jittered windows") in log, \
        log[-2000:]
    assert "(from depth)" in log, log[-2000:]  # each prediction's log line says where its up came from
    assert "of 7 views" in log, log[-2000:]  # ... and how many views its contact is the mean of


def test_demo_system_config_carries_the_contact_source(tmp_path):
    import argparse

    import yaml

    from manipllm_ros.config import load_config
    from manipllm_ros.demo import system_config

    args = argparse.Namespace(out=str(tmp_path / "demo"), system_timeout=60.0, contact="grounding", up="depth",
                              snap_radius=60, views=7, protrusion_radius=40, protrusion_facing=45.0,
                              handle_radius=200, protrusion_skip_outline=True, protrusion_stay_on_own=True)
    path = system_config(args, REPO / "models" / "small-grounded", "microwave", 5, tmp_path / "logs")
    cfg = load_config(str(path))
    assert cfg.pose_service.contact == "grounding" and cfg.pose_service.up == "depth"
    assert cfg.pose_service.snap_radius_px == 60 and cfg.pose_service.views == 7
    assert cfg.pose_service.protrusion_radius_px == 40 and cfg.pose_service.protrusion_facing_deg == 45.0
    assert cfg.pose_service.handle_radius_px == 200 and cfg.pose_service.protrusion_skip_outline
    assert cfg.pose_service.protrusion_stay_on_own
    assert cfg.pose_service.model_path == str((REPO / "models" / "small-grounded").resolve())
    assert yaml.safe_load(path.read_text())["bringup"]["franky_object"] == "microwave"


def test_demo_refuses_contact_flags_the_pose_service_would_refuse_before_starting_anything(tmp_path):
    """A facing angle without a raised-part radius, or more views than the service allows: said at once, with the
    reason, instead of after the pose service node's start-up timeout."""
    for flags, why in ((["--protrusion-facing", "45"], "set protrusion_radius_px too"),
                       (["--protrusion-radius", "40", "--protrusion-facing", "180"], "less than 180"),
                       (["--views", "99"], "less than or equal to")):
        res = run_cli([str(MANIPLLM), "demo", "--out", str(tmp_path / "demo"), *flags], timeout=120, cwd=tmp_path)
        assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
        assert "the pose service would refuse these options" in res.stderr and why in res.stderr, res.stderr
        assert not (tmp_path / "demo").exists()
