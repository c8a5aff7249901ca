"""`sim collect`: a short run gives a readable dataset; runs are deterministic per seed; a killed run resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from manipllm_ros.sim.collect import CollectConfig, DatasetConfigMismatch, collect, shard_path
from manipllm_ros.sim.dataset import count_samples, iter_samples, read_meta

CATS = ["cabinet_drawer", "microwave", "stapler"]


def _cfg(out: Path, **kw) -> CollectConfig:
    base = dict(out=out, num_samples=6, seed=3, workers=1, categories=CATS, samples_per_shard=2, progress=False)
    base.update(kw)
    return CollectConfig(**base)


def _fingerprint(path: Path) -> list[tuple]:
    return sorted((s["sample_id"], s["object_id"], tuple(s["contact_uv"]), tuple(np.round(s["up_cam"], 5)),
                   hash(s["rgb_png"]), hash(s["depth_png"])) for s in iter_samples(path, decode=False))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    summary = collect(_cfg(out))
    assert summary["successes"] == 6
    return out


def test_short_run_is_a_readable_dataset(reference):
    meta = read_meta(reference)
    assert meta["format"] == "manipllm-sim-v1" and meta["width"] == 640 and meta["height"] == 480
    assert meta["categories"]["stapler"] == {"split": "heldout", "joint_type": "hinge"}
    assert meta["categories"]["cabinet drawer"]["joint_type"] == "slide"
    samples = list(iter_samples(reference))
    assert len(samples) == 6 == count_samples(reference)
    assert len({s["sample_id"] for s in samples}) == 6
    for s in samples:
        assert s["rgb"].shape == (480, 640, 3) and s["rgb"].dtype == np.uint8
        assert s["depth"].shape == (480, 640) and s["depth"].dtype == np.float32
        u, v = s["contact_uv"]
        assert 0 <= u < 640 and 0 <= v < 480 and 0.05 < s["depth"][v, u] < 10
        up, fwd = np.array(s["up_cam"]), np.array(s["forward_cam"])
        assert abs(np.linalg.norm(up) - 1) < 1e-4 and abs(np.linalg.norm(fwd) - 1) < 1e-4 and abs(up @ fwd) < 1e-4
        # The suction cup approached along up: up points into the surface, i.e. away from the camera.
        assert up[2] > 0
        assert 1 <= len(s["aff_pos_uv"]) <= 20 and 1 <= len(s["aff_neg_uv"]) <= 20
        # the segmentation: the contact and every positive affordance point lie on the movable part (2), and
        # the object (1 or 2) is larger than its part and smaller than the image
        seg = s["segmentation"]
        assert seg.shape == (480, 640) and seg.dtype == np.uint8 and set(np.unique(seg)) <= {0, 1, 2}
        assert seg[v, u] == 2 and all(seg[b, a] == 2 for a, b in s["aff_pos_uv"])
        assert 0 < (seg == 2).sum() < (seg > 0).sum() < seg.size
        assert s["split"] in ("train", "test_seen", "test_unseen")
        assert (s["split"] == "test_unseen") == (s["category"] == "stapler")
        assert s["instruction"] and s["reasoning"] and s["joint_delta"] > 0
        T = np.array(s["cam_to_world"]).reshape(4, 4)
        assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-5)
    assert list(iter_samples(reference, split="test_unseen", decode=False))
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["attempts"] >= 6 and sum(summary["per_category"].values()) == 6


def test_deterministic_per_seed_whatever_the_workers(reference, tmp_path):
    collect(_cfg(tmp_path, workers=2))
    assert _fingerprint(tmp_path) == _fingerprint(reference)


@pytest.mark.slow
def test_resume_after_kill_loses_and_duplicates_nothing(reference, tmp_path):
    code = ("import sys; from pathlib import Path; from manipllm_ros.sim.collect import CollectConfig, collect\n"
            "if __name__ == '__main__':\n"
            f"    collect(CollectConfig(out=Path(sys.argv[1]), num_samples=6, seed=3, workers=1,"
            f" categories={CATS!r}, samples_per_shard=2, progress=False))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], start_new_session=True)
    deadline = time.time() + 120
    while not shard_path(tmp_path, 0).exists() and time.time() < deadline:  # wait for the first whole shard
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # a hard kill, mid-way through the next shard
    proc.wait()
    done = sorted(p.name for p in (tmp_path / "shards").glob("shard-*.parquet"))
    assert 1 <= len(done) < 3, done
    summary = collect(_cfg(tmp_path))
    assert summary["this_run"]["shards_already_done"] == len(done)
    assert count_samples(tmp_path) == 6
    assert _fingerprint(tmp_path) == _fingerprint(reference)
    assert not list((tmp_path / "shards").glob("*.tmp-*"))


def test_resume_with_other_settings_is_refused(reference):
    with pytest.raises(DatasetConfigMismatch):
        collect(_cfg(reference, num_samples=8))


def test_bad_objects_are_reported_and_the_run_continues(tmp_path):
    data = Path(__file__).parent / "data"
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><body name='a'>")
    cfg = _cfg(tmp_path / "ds", samples_per_shard=1, categories=["cabinet_drawer"],
               objects=[f"{bad}:j", f"{data / 'thirdparty_cabinet.xml'}:no_such_joint:y",
                        f"{data / 'thirdparty_cabinet.xml'}:tray_slide:y"],  # the tray hides behind the door
               num_samples=4, max_attempts_factor=3, scenes_per_object=2)
    summary = collect(cfg)
    errors = "\n".join(summary["errors"])
    assert "bad.xml" in errors and "no_such_joint" in errors
    assert "sees nothing of the movable part 'src/Tray'" in errors
    assert summary["per_category"] == {"cabinet drawer": 1}  # shard 0 (generated) still produced its sample
