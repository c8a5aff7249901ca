"""Keeping the raised-part snap off the outline of the contact's own surface (contact.is_own_outline): on a
rendered closed laptop, whose lid's far edge stands off the floor behind it, and on a rendered toaster, whose
lever is a part."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from manipllm_ros.contact import is_own_outline, raised_blob, resolve_contact

OBJVIEW_HARD = Path(__file__).resolve().parents[1] / "models" / "small-objview-hard"


def _observe(category: str, seed: int, index: int):
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm

    obj, arm = build_arm(EpisodeSpec(category, seed, index))
    with arm:
        return obj, arm.world.observe()


def test_a_thin_lid_s_far_edge_is_its_outline_and_a_toaster_lever_is_a_part(monkeypatch):
    """laptop seed 175360: the served model touched the lid's middle at (320, 247) and the raised-part snap moved
    it to the hinged far edge, where the pull stalled (eval_raised_facing, seed 3)."""
    monkeypatch.setenv("MUJOCO_GL", "egl")
    _, obs = _observe("laptop", 175360, 0)
    K = obs.intrinsics.K
    blob = raised_blob(320, 247, obs.depth, 40)
    assert blob is not None and blob.pixel[1] < 247 - 20  # up the image: the far edge
    assert is_own_outline(320, 247, blob, obs.depth, K)
    _, toaster = _observe("toaster_lever", 131310, 4)  # the snap moved (302, 258) onto the lever
    blobs = {(u, v): raised_blob(u, v, toaster.depth, 40) for u in range(250, 350, 6) for v in range(220, 300, 6)}
    moved = [uv for uv, b in blobs.items() if b is not None and toaster.mask[int(b.pixel[1]), int(b.pixel[0])]]
    assert moved
    for u, v in moved[:5]:  # onto the lever: a part, not an outline
        assert not is_own_outline(u, v, blobs[(u, v)], toaster.depth, toaster.intrinsics.K)


def test_resolve_contact_refuses_the_outline_and_says_so(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "egl")
    from manipllm_ros.model.policy import Prediction

    _, obs = _observe("laptop", 175360, 0)
    K = obs.intrinsics.K
    up = -obs.normals[247, 320]
    pred = Prediction(pixel=(320.0, 247.0), up=up, forward=np.cross(up, [0.0, 0.0, 1.0]), answer="",
                      pose_pixel=(320.0, 247.0))
    kw = dict(contact="grounding", up="depth", snap_px=60, protrusion_px=40, protrusion_deg=45)
    on_edge = resolve_contact(pred, obs.depth, K, **kw)
    assert "onto a raised part from (320, 247)" in on_edge.note and on_edge.v < 247 - 20
    kept = resolve_contact(pred, obs.depth, K, skip_outline=True, **kw)
    assert "the outline of the surface the contact is on" in kept.note, kept.note
    assert "onto a raised part" not in kept.note and abs(kept.v - 247) <= 60
    with pytest.raises(ValueError, match="needs a raised-part radius"):
        resolve_contact(pred, obs.depth, K, contact="grounding", skip_outline=True)


def test_the_outline_condition_needs_a_raised_part_radius_everywhere():
    from pydantic import ValidationError

    from manipllm_ros.config import PoseServiceConfig
    from manipllm_ros.evaluation.matrix import MatrixRow
    from manipllm_ros.evaluation.proposals import parse_model_proposer

    with pytest.raises(ValidationError, match="set protrusion_radius_px too"):
        PoseServiceConfig(protrusion_skip_outline=True)
    with pytest.raises(ValidationError, match="set protrusion_px"):
        MatrixRow(name="r", proposer="model", checkpoint="m", protrusion_skip_outline=True)
    with pytest.raises(ValueError, match="unknown proposer"):
        parse_model_proposer("model-direct-grounded-nooutline")


def test_eval_proposer_and_pose_service_keep_off_the_same_outline(one_torch_thread, monkeypatch):
    """`-nooutline` in an eval name and `protrusion_skip_outline: true` in the pose service reach resolve_contact
    alike, on the laptop above."""
    monkeypatch.setenv("MUJOCO_GL", "egl")
    from manipllm_ros.config import FramesConfig, PoseServiceConfig
    from manipllm_ros.evaluation.matrix import MatrixRow
    from manipllm_ros.evaluation.proposals import make_proposer, parse_model_proposer
    from manipllm_ros.pose_service import PoseService, RGBDFrame

    name = "model-direct-grounded-snap60-depthup-raised40-facing45-nooutline-handle200"
    spec = parse_model_proposer(name)
    assert spec.skip_outline and spec.protrusion_deg == 45 and spec.handle_px == 200
    assert MatrixRow(name="r", proposer="model", checkpoint=str(OBJVIEW_HARD), mode="direct", contact="grounding",
                     snap_px=60, up="depth", protrusion_px=40, protrusion_deg=45, protrusion_skip_outline=True,
                     handle_px=200).eval_proposer == name
    obj, obs = _observe("laptop", 175360, 0)
    proposer = make_proposer(name, str(OBJVIEW_HARD))
    prop = proposer.propose(obs, obj.meta.instruction, np.random.default_rng(0))
    frame = RGBDFrame(obs.rgb, np.asarray(obs.depth, np.float32), np.asarray(obs.intrinsics.K, float))
    cfg = PoseServiceConfig(contact="grounding", up="depth", snap_radius_px=60, protrusion_radius_px=40,
                            protrusion_facing_deg=45, protrusion_skip_outline=True, handle_radius_px=200)
    res = PoseService(proposer.predictor, cfg, FramesConfig()).predict(obj.meta.instruction, frame, False)
    assert prop.ok and res.success, (prop.error, res.error)
    assert (res.u, res.v) == (prop.u, prop.v) and res.contact_note == prop.contact_note
    assert "the outline of the surface the contact is on" in prop.contact_note, prop.contact_note
