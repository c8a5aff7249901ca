"""The pose service's `contact` setting reaches the model: 'grounding' asks the grounding question, and a
checkpoint that never learned it gets an error response, not a pose at the pose answer's pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from manipllm_ros.config import FramesConfig, PoseServiceConfig
from manipllm_ros.pose_service import PoseService, RGBDFrame

REPO = Path(__file__).resolve().parents[1]


def test_contact_setting_selects_the_answer_the_pixel_comes_from(one_torch_thread):
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm
    from manipllm_ros.model.policy import PosePredictor

    obj, arm = build_arm(EpisodeSpec("microwave", 5, 0))
    with arm:
        obs = arm.world.observe()
    frame = RGBDFrame(obs.rgb, np.asarray(obs.depth, np.float32), np.asarray(obs.intrinsics.K, float))
    predictor = PosePredictor.load(REPO / "models" / "demo-tiny", device="cpu")  # trained without grounding
    pose = PoseService(predictor, PoseServiceConfig(), FramesConfig()).predict(obj.meta.instruction, frame, False)
    assert pose.success, pose.error
    grounded = PoseService(predictor, PoseServiceConfig(contact="grounding"), FramesConfig())
    res = grounded.predict(obj.meta.instruction, frame, False)
    assert not res.success and "grounding turn" in res.error and res.prediction_id == 0
    # demo-tiny's train_config.yaml says what it learned: refused before decoding, and the error says why
    assert "not trained for this" in res.error and "pose answer" in res.error


def test_questions_the_checkpoint_never_learned_are_refused_not_answered(one_torch_thread):
    """models/small-grounded learned the direct pose question and grounding, no chain of thought: asked for one
    its answers would be noise that still parses (poses ~226 px off), so the service answers with an error."""
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm
    from manipllm_ros.model.policy import PosePredictor, UntrainedQuestionError

    obj, arm = build_arm(EpisodeSpec("microwave", 5, 0))
    with arm:
        obs = arm.world.observe()
    frame = RGBDFrame(obs.rgb, np.asarray(obs.depth, np.float32), np.asarray(obs.intrinsics.K, float))
    predictor = PosePredictor.load(REPO / "models" / "small-grounded", device="cpu")
    assert predictor.vlm.trained_tasks["cot"] == 0.0 and predictor.vlm.trained_tasks["grounding"] > 0
    service = PoseService(predictor, PoseServiceConfig(contact="grounding"), FramesConfig())
    cot = service.predict(obj.meta.instruction, frame, True)
    assert not cot.success and "not trained for this: chain of thought" in cot.error
    assert "chain_of_thought false" in cot.error
    direct = service.predict(obj.meta.instruction, frame, False)
    assert direct.success, direct.error
    assert obs.mask[direct.v, direct.u]  # the grounding contact is on the microwave's door
    (err,) = predictor.predict_batch([obs.rgb], [obj.meta.instruction], chain_of_thought=True)
    assert isinstance(err, UntrainedQuestionError)


def test_up_setting_takes_the_approach_axis_from_the_depth_image(one_torch_thread):
    """pose_service.up = depth: same contact pixel as the model's answer, up = minus the surface normal fitted to
    the aligned depth there, which matches the simulator's own normals (rendered points, central differences)."""
    from manipllm_ros import geometry as G
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm
    from manipllm_ros.model.policy import PosePredictor

    obj, arm = build_arm(EpisodeSpec("microwave", 5, 0))
    with arm:
        obs = arm.world.observe()
    frame = RGBDFrame(obs.rgb, np.asarray(obs.depth, np.float32), np.asarray(obs.intrinsics.K, float))
    predictor = PosePredictor.load(REPO / "models" / "demo-tiny", device="cpu")
    model = PoseService(predictor, PoseServiceConfig(), FramesConfig()).predict(obj.meta.instruction, frame, False)
    depth = PoseService(predictor, PoseServiceConfig(up="depth"), FramesConfig()).predict(obj.meta.instruction,
                                                                                           frame, False)
    assert model.success and depth.success, (model.error, depth.error)
    assert (depth.u, depth.v) == (model.u, model.v) and model.up_source == "model"
    assert depth.up_source == "depth" and "(from depth)" in depth.summary()
    sim_normal = obs.normals[depth.v, depth.u]
    assert np.linalg.norm(sim_normal) > 0.5 and G.angle_between(depth.up, -sim_normal) < 3.0
    assert G.angle_between(model.up, depth.up) > 3.0  # it did replace the model's answer
    R = G.matrix_from_quaternion(depth.quat_cam)
    np.testing.assert_allclose(R[:, 2], depth.up, atol=1e-6)
    assert abs(np.dot(depth.up, depth.forward)) < 1e-6

    flat_hole = frame.depth.copy()  # no plane around the contact: the model's up is kept, and the log says why
    r0, c0 = depth.v, depth.u
    flat_hole[max(0, r0 - 30) : r0 + 31, max(0, c0 - 30) : c0 + 31] = np.nan
    flat_hole[r0, c0] = frame.depth[r0, c0]
    kept = PoseService(predictor, PoseServiceConfig(up="depth"), FramesConfig()).predict(
        obj.meta.instruction, RGBDFrame(frame.rgb, flat_hole, frame.K), False)
    assert kept.success and kept.up_source.startswith("model (depth: only 1 depth points"), kept.up_source
    np.testing.assert_allclose(kept.up, model.up, atol=1e-6)


def test_agreement_contact_is_the_pose_or_grounding_pixel_it_names(one_torch_thread):
    """contact = agreement asks both questions and takes one of the two pixels; the result says which."""
    from manipllm_ros.contact import snap_to_agreeing_surface, surface_angle
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm
    from manipllm_ros.model.policy import PosePredictor

    predictor = PosePredictor.load(REPO / "models" / "small-grounded", device="cpu")
    seen = set()
    for spec in (EpisodeSpec("microwave", 5, 0), EpisodeSpec("kettle_lid", 12, 0), EpisodeSpec("stapler", 7, 0)):
        obj, arm = build_arm(spec)
        with arm:
            obs = arm.world.observe()
        frame = RGBDFrame(obs.rgb, np.asarray(obs.depth, np.float32), np.asarray(obs.intrinsics.K, float))
        res = {c: PoseService(predictor, PoseServiceConfig(contact=c, up="depth"), FramesConfig()).predict(
            obj.meta.instruction, frame, False) for c in ("pose", "grounding", "agreement")}
        assert all(r.success for r in res.values()), {c: r.error for c, r in res.items()}
        agreed = res["agreement"]
        chosen = res[agreed.pixel_source]
        assert (agreed.u, agreed.v) == (chosen.u, chosen.v) and f"(from {agreed.pixel_source}; surface vs" in agreed.summary()
        other = res["pose" if agreed.pixel_source == "grounding" else "grounding"]
        up = predictor.predict(obs.rgb, obj.meta.instruction, chain_of_thought=False).up
        a_chosen = surface_angle(chosen.u, chosen.v, frame.depth, frame.K, up)
        a_other = surface_angle(other.u, other.v, frame.depth, frame.K, up)
        assert a_other is None or (a_chosen is not None and a_chosen <= a_other + 1e-6)
        seen.add(agreed.pixel_source)
        snap = PoseService(predictor, PoseServiceConfig(contact="grounding", up="depth", snap_radius_px=60),
                           FramesConfig()).predict(obj.meta.instruction, frame, False)
        g = res["grounding"]
        if "snapped from" in snap.contact_note:  # moved: to a surface that faces the model's up, within 60 px
            assert f"snapped from ({g.u}, {g.v})" in snap.summary() and 0 < np.hypot(snap.u - g.u, snap.v - g.v) <= 60
            assert surface_angle(snap.u, snap.v, frame.depth, frame.K, up) <= 30
        else:  # stayed: the grounding pixel's surface already agrees, or none near does
            assert (snap.u, snap.v) == (g.u, g.v)
            assert snap_to_agreeing_surface(g.u, g.v, frame.depth, frame.K, up, radius_px=60) is None
    assert seen == {"pose", "grounding"}  # on these three scenes it takes each answer at least once
    assert res["pose"].pixel_source == "pose" and res["grounding"].pixel_source == "grounding"
