"""Moving a contact onto a raised part found in the depth (contact.snap_to_protrusion): on a synthetic depth image
whose geometry is known exactly, and on a rendered toaster whose lever the contact starts beside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from manipllm_ros.contact import protrusion_heights, resolve_contact, snap_to_protrusion

OBJVIEW_HARD = Path(__file__).resolve().parents[1] / "models" / "small-objview-hard"


def _wall_with_a_lever(tilt: float = 0.0) -> np.ndarray:
    """A wall 1 m away (tilted: depth grows to the right), a 30 mm lever on it at rows 100-115, columns 150-179,
    and the wall ending at column 260 with the floor 0.5 m further behind."""
    v, u = np.mgrid[0:240, 0:320].astype(float)
    depth = 1.0 + tilt * (u - 160)
    depth[100:116, 150:180] -= 0.03
    depth[:, 260:] += 0.5
    return depth


def test_heights_are_zero_on_a_plane_and_the_part_s_height_on_it():
    depth = _wall_with_a_lever(tilt=0.001)
    us, vs = np.array([60, 165, 200]), np.array([60, 108, 200])
    h = protrusion_heights(us, vs, depth)
    assert abs(h[0]) < 1e-9 and abs(h[2]) < 1e-9  # a tilted plane: the ring is symmetric
    assert h[1] == pytest.approx(0.03, abs=1e-9)
    holes = np.zeros_like(depth)
    assert np.isnan(protrusion_heights(np.array([60]), np.array([60]), holes)).all()


def test_a_contact_beside_the_lever_moves_onto_its_middle_and_stays_where_it_belongs():
    depth = _wall_with_a_lever(tilt=0.001)
    moved = snap_to_protrusion(165, 130, depth, radius_px=40)  # 15 px below the lever, on the wall
    assert moved is not None
    u, v = moved
    assert 150 <= u < 180 and 100 <= v < 116 and abs(u - 164.5) <= 2 and abs(v - 107.5) <= 2
    assert snap_to_protrusion(165, 108, depth, radius_px=40) is None  # on it already
    assert snap_to_protrusion(60, 200, depth, radius_px=40) is None  # nothing raised near
    # the wall's edge stands 0.5 m off the floor behind it: a silhouette, not a part
    assert snap_to_protrusion(250, 200, depth, radius_px=40) is None


def test_the_facing_condition_keeps_a_raised_part_that_faces_the_model_s_up_and_refuses_one_that_does_not():
    """protrusion_deg: the lever's top faces the camera, so a model up into the wall takes it, a model up along the
    wall (90 degrees off) does not; the refused contact then goes the way it would without the raised-part snap."""
    from manipllm_ros.model.policy import Prediction

    depth = _wall_with_a_lever()
    K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    start = (165.0, 130.0)  # on the wall, 15 px below the lever
    into = Prediction(pixel=start, up=np.array([0.0, 0.0, 1.0]), forward=np.array([1.0, 0, 0]), answer="",
                      pose_pixel=start)
    kept = resolve_contact(into, depth, K, contact="grounding", protrusion_px=40, protrusion_deg=45)
    assert 150 <= kept.u < 180 and 100 <= kept.v < 116 and "onto a raised part" in kept.note
    sideways = Prediction(pixel=start, up=np.array([1.0, 0.0, 0.0]), forward=np.array([0, 1.0, 0]), answer="",
                          pose_pixel=start)
    refused = resolve_contact(sideways, depth, K, contact="grounding", protrusion_px=40, protrusion_deg=45)
    assert (refused.u, refused.v) == start
    assert "not onto the raised part at (16" in refused.note and "90 deg off the model's up" in refused.note
    anyway = resolve_contact(sideways, depth, K, contact="grounding", protrusion_px=40)  # no condition
    assert (anyway.u, anyway.v) == (kept.u, kept.v)
    # a raised part too pointed to measure a plane on (a conical knob, 12 mm on its rim, 50 at its tip) is taken
    # whatever the up says
    vv, uu = np.mgrid[0:240, 0:320]
    r = np.hypot(uu - 165.0, vv - 108.0)
    knob = np.where(r < 10, 1.0 - 0.012 - 0.038 * (1 - r / 10), 1.0)
    on_knob = resolve_contact(sideways, knob, K, contact="grounding", protrusion_px=40, protrusion_deg=45)
    assert r[int(on_knob.v), int(on_knob.u)] < 10, on_knob.note
    for bad in (0.0, 180.0, -5.0):
        with pytest.raises(ValueError, match=r"within an angle in \(0, 180\)"):
            resolve_contact(into, depth, K, contact="grounding", protrusion_px=40, protrusion_deg=bad)
    with pytest.raises(ValueError, match="needs a raised-part radius"):  # a condition on nothing is refused
        resolve_contact(into, depth, K, contact="grounding", protrusion_deg=45)


def test_resolve_contact_moves_onto_the_rendered_lever_and_says_so():
    """A real render: the contact starts on the toaster's body beside its lever (the miss eval_hard_data.md
    counts most often) and ends on the lever's mask."""
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm
    from manipllm_ros.model.policy import Prediction

    obj, arm = build_arm(EpisodeSpec("toaster_lever", 5, 0))
    with arm:
        obs = arm.world.observe()
    vs, us = np.nonzero(obs.mask)
    body = obs.object_mask & ~obs.mask
    # the body pixel nearest the lever's centre, 12-20 px from the lever
    cu, cv = us.mean(), vs.mean()
    bv, bu = np.nonzero(body)
    gap = np.min(np.hypot(bu[:, None] - us[None, ::7], bv[:, None] - vs[None, ::7]), axis=1)
    pick = np.flatnonzero((gap >= 12) & (gap <= 20))
    i = pick[np.argmin(np.hypot(bu[pick] - cu, bv[pick] - cv))]
    start = (float(bu[i]), float(bv[i]))
    up = -obs.normals[bv[i], bu[i]]
    pred = Prediction(pixel=start, up=up, forward=np.cross(up, [0.0, 0.0, 1.0]), answer="", pose_pixel=start)
    K = obs.intrinsics.K
    off = resolve_contact(pred, obs.depth, K, contact="grounding", up="depth")
    assert (off.u, off.v) == start and not obs.mask[int(off.v), int(off.u)]
    on = resolve_contact(pred, obs.depth, K, contact="grounding", up="depth", snap_px=60, protrusion_px=40)
    assert obs.mask[int(on.v), int(on.u)], (start, (on.u, on.v))
    assert f"onto a raised part from ({start[0]:.0f}, {start[1]:.0f})" in on.note and "snapped" not in on.note


def test_eval_proposer_and_pose_service_move_onto_the_same_raised_part(one_torch_thread):
    """`-raised40` in an eval name and `protrusion_radius_px: 40` in the pose service reach resolve_contact alike."""
    from manipllm_ros.config import FramesConfig, PoseServiceConfig
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm
    from manipllm_ros.evaluation.matrix import MatrixRow
    from manipllm_ros.evaluation.proposals import make_proposer, parse_model_proposer
    from manipllm_ros.pose_service import PoseService, RGBDFrame

    name = "model-direct-grounded-snap60-depthup-raised40"
    assert parse_model_proposer(name).protrusion_px == 40
    assert MatrixRow(name="r", proposer="model", checkpoint=str(OBJVIEW_HARD), mode="direct", contact="grounding",
                     snap_px=60, up="depth", protrusion_px=40).eval_proposer == name
    with pytest.raises(ValueError, match="drop '-raised0'"):
        parse_model_proposer("model-direct-grounded-raised0")
    obj, arm = build_arm(EpisodeSpec("toaster_lever", 10, 0))  # object seed % 5 == 0: never trained on
    with arm:
        obs = arm.world.observe()
    proposer = make_proposer(name, str(OBJVIEW_HARD))
    prop = proposer.propose(obs, obj.meta.instruction, np.random.default_rng(0))
    frame = RGBDFrame(obs.rgb, np.asarray(obs.depth, np.float32), np.asarray(obs.intrinsics.K, float))
    cfg = PoseServiceConfig(contact="grounding", up="depth", snap_radius_px=60, protrusion_radius_px=40)
    res = PoseService(proposer.predictor, cfg, FramesConfig()).predict(obj.meta.instruction, frame, False)
    assert prop.ok and res.success, (prop.error, res.error)
    assert (res.u, res.v) == (prop.u, prop.v) and res.contact_note == prop.contact_note
    # with the facing condition (-facing45 / protrusion_facing_deg: 45), alike again
    facing = name + "-facing45"
    assert parse_model_proposer(facing).protrusion_deg == 45
    assert MatrixRow(name="r", proposer="model", checkpoint=str(OBJVIEW_HARD), mode="direct", contact="grounding",
                     snap_px=60, up="depth", protrusion_px=40, protrusion_deg=45).eval_proposer == facing
    proposer = make_proposer(facing, str(OBJVIEW_HARD))
    prop = proposer.propose(obs, obj.meta.instruction, np.random.default_rng(0))
    cfg = PoseServiceConfig(contact="grounding", up="depth", snap_radius_px=60, protrusion_radius_px=40,
                            protrusion_facing_deg=45)
    res = PoseService(proposer.predictor, cfg, FramesConfig()).predict(obj.meta.instruction, frame, False)
    assert prop.ok and res.success, (prop.error, res.error)
    assert (res.u, res.v) == (prop.u, prop.v) and res.contact_note == prop.contact_note


def test_a_facing_condition_without_a_raised_part_radius_is_refused():
    """It would silently do nothing: the eval row, the pose service config and the proposer name all refuse it."""
    from pydantic import ValidationError

    from manipllm_ros.config import PoseServiceConfig
    from manipllm_ros.evaluation.matrix import MatrixRow
    from manipllm_ros.evaluation.proposals import parse_model_proposer

    with pytest.raises(ValidationError, match="set protrusion_radius_px too"):
        PoseServiceConfig(protrusion_facing_deg=45)
    with pytest.raises(ValidationError, match="set protrusion_px"):
        MatrixRow(name="r", proposer="model", checkpoint="m", protrusion_deg=45)
    with pytest.raises(ValidationError):
        PoseServiceConfig(protrusion_radius_px=40, protrusion_facing_deg=180)
    with pytest.raises(ValueError, match="unknown proposer"):
        parse_model_proposer("model-direct-grounded-facing45")
    with pytest.raises(ValueError, match=r"in \(0, 180\)"):
        parse_model_proposer("model-direct-grounded-raised40-facing0")
