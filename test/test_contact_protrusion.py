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
