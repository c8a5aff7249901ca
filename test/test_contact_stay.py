"""Keeping a contact on a part it is already on (resolve_contact's `stay_on_own`): on a rendered toaster, where
the model touched the lever and the surface snap used to move it up onto the toaster's top, and on a rendered trash
can, where the raised-part snap took the rim of the lid the contact was on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from manipllm_ros.contact import is_own_outline, is_own_rim, own_raised_part, raised_blob, resolve_contact

OBJVIEW_HARD = Path(__file__).resolve().parents[1] / "models" / "small-objview-hard"
SERVED = dict(contact="grounding", up="depth", snap_px=60, protrusion_px=40, protrusion_deg=45, skip_outline=True)


def _observe(category: str, seed: int, index: int):
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm

    obj, arm = build_arm(EpisodeSpec(category, seed, index))
    with arm:
        return obj, arm.world.observe()


def _pred(u: float, v: float, up: np.ndarray):
    from manipllm_ros.model.policy import Prediction

    forward = np.cross(up, [1.0, 0.0, 0.0])
    return Prediction(pixel=(u, v), up=up, forward=forward / np.linalg.norm(forward), answer="", pose_pixel=(u, v))


def test_the_surface_snap_stays_on_the_lever_the_model_touched(monkeypatch):
    """toaster_lever 140190 / 31685: the served model touched the lever's front (eval_bound seeds 3-14); pressing
    down, the front disagrees with the up, and the snap moved the contact onto the toaster's top, where the press
    did nothing."""
    monkeypatch.setenv("MUJOCO_GL", "egl")
    for seed, (u, v) in ((140190, (251, 224)), (31685, (264, 262))):
        _, obs = _observe("toaster_lever", seed, 0)
        down = obs.cam_to_world[:3, :3].T @ np.array([0.0, 0.0, -1.0])  # press down, in the camera frame
        assert obs.mask[v, u] and own_raised_part(u, v, obs.depth, 60) is not None
        left = resolve_contact(_pred(u, v, down), obs.depth, obs.intrinsics.K, **SERVED)
        assert f"snapped from ({u}, {v})" in left.note and not obs.mask[round(left.v), round(left.u)]
        kept = resolve_contact(_pred(u, v, down), obs.depth, obs.intrinsics.K, stay_on_own=True, **SERVED)
        assert obs.mask[round(kept.v), round(kept.u)], kept.note
        assert kept.note in ("", f"snapped on the raised part it is on from ({u}, {v})")


def test_the_raised_snap_keeps_off_the_rim_of_the_contact_s_own_surface(monkeypatch):
    """trash_can_lid 42845: the raised-part snap took a blob on the plane the contact was on; the pull from there
    did not seal, from the contact itself it opened the lid (eval_bound seed 4)."""
    monkeypatch.setenv("MUJOCO_GL", "egl")
    _, obs = _observe("trash_can_lid", 42845, 7)
    K = obs.intrinsics.K
    blob = raised_blob(312, 166, obs.depth, 40)
    assert blob is not None and blob.pixel == (316.0, 172.0)
    assert is_own_rim(312, 166, blob, obs.depth, K)
    assert not is_own_outline(312, 166, blob, obs.depth, K)  # its steps stay on the can: the outline rule keeps it
    pred = _pred(312.0, 166.0, -obs.normals[166, 312])
    moved = resolve_contact(pred, obs.depth, K, **SERVED)
    assert "onto a raised part from (312, 166)" in moved.note and (moved.u, moved.v) == (316.0, 172.0)
    kept = resolve_contact(pred, obs.depth, K, stay_on_own=True, **SERVED)
    assert (kept.u, kept.v) == (312.0, 166.0)
    assert kept.note == "not onto the raised part at (316, 172): it is the rim of the surface the contact is on"


def test_a_toaster_lever_is_not_the_rim_of_the_toaster_front(monkeypatch):
    """The rule must still let the raised-part snap onto a lever from the body it is mounted on."""
    monkeypatch.setenv("MUJOCO_GL", "egl")
    _, toaster = _observe("toaster_lever", 131310, 4)
    blobs = {(u, v): raised_blob(u, v, toaster.depth, 40) for u in range(250, 350, 6) for v in range(220, 300, 6)}
    onto = [uv for uv, b in blobs.items() if b is not None and toaster.mask[int(b.pixel[1]), int(b.pixel[0])]
            and not toaster.mask[uv[1], uv[0]]]  # from the body onto the lever
    assert len(onto) >= 5
    for u, v in onto:
        assert not is_own_rim(u, v, blobs[(u, v)], toaster.depth, toaster.intrinsics.K)


def test_staying_on_its_own_part_needs_both_snaps_everywhere():
    from pydantic import ValidationError

    from manipllm_ros.config import PoseServiceConfig
    from manipllm_ros.evaluation.matrix import MatrixRow
    from manipllm_ros.evaluation.proposals import parse_model_proposer

    with pytest.raises(ValueError, match="needs both radii"):
        resolve_contact(_pred(1.0, 1.0, np.array([0.0, 0.0, 1.0])), np.ones((4, 4)), np.eye(3), protrusion_px=40,
                        stay_on_own=True)
    with pytest.raises(ValidationError, match="set protrusion_radius_px and snap_radius_px too"):
        PoseServiceConfig(protrusion_radius_px=40, protrusion_stay_on_own=True)
    with pytest.raises(ValidationError, match="set protrusion_px and snap_px"):
        MatrixRow(name="r", proposer="model", checkpoint="m", snap_px=60, protrusion_stay_on_own=True)
    with pytest.raises(ValueError, match="needs both radii"):
        parse_model_proposer("model-direct-grounded-depthup-raised40-stayown")
    with pytest.raises(ValueError, match="unknown proposer"):
        parse_model_proposer("model-direct-grounded-snap60-stayown")


def test_eval_proposer_and_pose_service_stay_on_the_same_lever(one_torch_thread, monkeypatch):
    """`-stayown` in an eval name and `protrusion_stay_on_own: true` in the pose service reach resolve_contact
    alike, on the first toaster above."""
    monkeypatch.setenv("MUJOCO_GL", "egl")
    from manipllm_ros.config import FramesConfig, PoseServiceConfig
    from manipllm_ros.evaluation.matrix import MatrixRow
    from manipllm_ros.evaluation.proposals import make_proposer, parse_model_proposer
    from manipllm_ros.pose_service import PoseService, RGBDFrame

    name = "model-direct-grounded-snap60-depthup-raised40-facing45-nooutline-stayown-handle200"
    spec = parse_model_proposer(name)
    assert spec.stay_on_own and spec.skip_outline and spec.handle_px == 200
    assert MatrixRow(name="r", proposer="model", checkpoint=str(OBJVIEW_HARD), mode="direct", contact="grounding",
                     snap_px=60, up="depth", protrusion_px=40, protrusion_deg=45, protrusion_skip_outline=True,
                     protrusion_stay_on_own=True, handle_px=200).eval_proposer == name
    obj, obs = _observe("toaster_lever", 140190, 0)
    proposer = make_proposer(name, str(OBJVIEW_HARD))
    prop = proposer.propose(obs, obj.meta.instruction, np.random.default_rng(0))
    frame = RGBDFrame(obs.rgb, np.asarray(obs.depth, np.float32), np.asarray(obs.intrinsics.K, float))
    cfg = PoseServiceConfig(contact="grounding", up="depth", snap_radius_px=60, protrusion_radius_px=40,
                            protrusion_facing_deg=45, protrusion_skip_outline=True, protrusion_stay_on_own=True,
                            handle_radius_px=200)
    res = PoseService(proposer.predictor, cfg, FramesConfig()).predict(obj.meta.instruction, frame, False)
    assert prop.ok and res.success, (prop.error, res.error)
    assert (res.u, res.v) == (prop.u, prop.v) and res.contact_note == prop.contact_note
    assert obs.mask[prop.v, prop.u], prop.contact_note  # the served model touched the lever; it stays there
