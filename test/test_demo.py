"""`manipllm demo` end to end at toy size: sim collect -> train -> /predict_pose node over DDS -> fast arm ->
/report_outcome. The toy model is trained for 2 steps, so its answers do not parse: the demo must say so in its
table (never a default pose) and still write every image and the summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

MANIPLLM = Path(sys.executable).parent / "manipllm"


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reports_honestly(tmp_path):
    out = tmp_path / "demo"
    cmd = [str(MANIPLLM), "demo", "--samples", "6", "--steps", "2", "--val-samples", "1", "--episodes", "2",
           "--out", str(out), "--checkpoint", str(tmp_path / "ckpt"), "--categories", "microwave", "cabinet_drawer"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rows = json.loads((out / "episodes.json").read_text())
    assert len(rows) == 2
    for row in rows:
        assert (out / row["image"]).is_file()
        if row["pixel"] == "-":  # unparsed: a failure with the parser's message, no pose, no motion
            assert not row["success"] and row["note"].startswith("could not parse pose")
            assert row["joint_delta"] == 0.0
    prov = json.loads((tmp_path / "ckpt" / "provenance.json").read_text())
    assert prov["train_samples"] == 6 and prov["steps"] == 2 and "manipllm demo" in prov["command"]
    assert "opened" in (out / "summary.md").read_text()
