"""Asking on several jittered object windows (model/views.py): the windows, the trimmed mean, and the path from
the evaluation's proposer name and the pose service's `views` setting to the shipped object-window model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from manipllm_ros.model.views import MAX_VIEWS, VIEW_JITTERS, check_views, combine_points, view_windows
from manipllm_ros.model.zoom import Window

REPO = Path(__file__).resolve().parents[1]
OBJVIEW_HARD = REPO / "models" / "small-objview-hard"


def test_views_are_the_window_then_shifted_and_scaled_copies_inside_the_image():
    base = Window(200, 100, 250, 180)
    wins = view_windows(base, 640, 480, MAX_VIEWS)
    assert wins[0] == base and len(wins) == MAX_VIEWS == len(VIEW_JITTERS)
    assert (wins[1].x0 - base.x0, wins[2].x0 - base.x0) == (10, -10)  # 4 % of the width each way
    assert (wins[3].y0 - base.y0, wins[4].y0 - base.y0) == (7, -7)
    assert wins[5].width == 230 and wins[6].width == 270  # 0.92x and 1.08x, same centre
    assert abs((wins[6].x0 + wins[6].width / 2) - (base.x0 + base.width / 2)) <= 0.5
    corner = view_windows(Window(0, 0, 640, 480), 640, 480, MAX_VIEWS)  # the whole image: copies stay inside
    assert all(w.x0 >= 0 and w.y0 >= 0 and w.x0 + w.width <= 640 and w.y0 + w.height <= 480 for w in corner)
    assert view_windows(base, 640, 480, 1) == [base]
    for bad in (0, MAX_VIEWS + 1, 2.5, True):
        with pytest.raises(ValueError, match="views must be an integer"):
            check_views(bad)


def test_trimmed_mean_drops_an_answer_far_from_the_rest():
    agree = [(100, 50), (104, 52), (98, 49), (102, 51)]
    (u, v), kept = combine_points(agree + [(180, 120)])  # one view picked something else
    assert kept == 4 and (u, v) == pytest.approx((101.0, 50.5))
    (u, v), kept = combine_points([(10, 10)])
    assert (u, v, kept) == (10.0, 10.0, 1)
    # answers that all agree within a few pixels are all kept, however tight their spread
    assert combine_points([(0, 0), (3, 0), (0, 3), (5, 5)])[1] == 4
    with pytest.raises(ValueError, match="finite points"):
        combine_points([(1, 2), (np.nan, 3)])
    with pytest.raises(ValueError, match="finite points"):
        combine_points([])


@pytest.fixture(scope="module")
def lever():
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm

    obj, arm = build_arm(EpisodeSpec("toaster_lever", 5, 0))  # object seed % 5 == 0: never trained on
    with arm:
        return obj.meta.instruction, arm.world.observe()


def test_views_ask_every_window_and_contact_is_their_trimmed_mean(lever, one_torch_thread):
    from manipllm_ros.model.policy import PosePredictor

    instruction, obs = lever
    pred = PosePredictor.load(OBJVIEW_HARD, device="cpu")
    kw = dict(chain_of_thought=False, ground_contact=True, depth=obs.depth, K=obs.intrinsics.K)
    one = pred.predict(obs.rgb, instruction, **kw)
    many = pred.predict(obs.rgb, instruction, views=7, **kw)
    assert one.view_pixels is None and len(many.view_pixels) == 7 and 1 <= many.views_kept <= 7
    assert many.pixel == combine_points(many.view_pixels)[0]
    # the first view is the window alone, and the directions are its answer's
    assert many.view == one.view and np.hypot(*np.subtract(many.view_pixels[0], one.pixel)) < 3
    np.testing.assert_allclose(many.up, one.up)
    np.testing.assert_allclose(many.forward, one.forward)
    # the views do differ: the jitter moves the answers (that spread is what the mean averages out)
    assert len({tuple(np.round(p)) for p in many.view_pixels}) > 1


def test_views_need_a_model_that_looks_at_object_windows(lever):
    from manipllm_ros.config import FramesConfig, PoseServiceConfig
    from manipllm_ros.model.policy import PosePredictor
    from manipllm_ros.pose_service import PoseService

    instruction, obs = lever
    whole = PosePredictor.load(REPO / "models" / "small-grounded", device="cpu")
    with pytest.raises(ValueError, match="trained on object windows"):
        whole.predict(obs.rgb, instruction, chain_of_thought=False, ground_contact=True, views=7)
    with pytest.raises(ValueError, match="set views to 1"):
        PoseService(whole, PoseServiceConfig(contact="grounding", views=7), FramesConfig())
    with pytest.raises(ValueError, match="less than or equal to 7"):
        PoseServiceConfig(views=8)


def test_eval_proposer_and_pose_service_ask_several_views(lever, one_torch_thread):
    from manipllm_ros.config import FramesConfig, PoseServiceConfig
    from manipllm_ros.evaluation.matrix import MatrixRow
    from manipllm_ros.evaluation.proposals import make_proposer, parse_model_proposer
    from manipllm_ros.pose_service import PoseService, RGBDFrame

    instruction, obs = lever
    name = "model-direct-grounded-snap60-depthup-views7"
    assert parse_model_proposer(name).views == 7
    row = MatrixRow(name="v", proposer="model", checkpoint=str(OBJVIEW_HARD), mode="direct", contact="grounding",
                    snap_px=60, up="depth", views=7)
    assert row.eval_proposer == name
    for bad, why in (("model-direct-grounded-views1", "drop '-views1'"), ("model-direct-grounded-views9", "to 7")):
        with pytest.raises(ValueError, match=why):
            parse_model_proposer(bad)
    proposer = make_proposer(name, str(OBJVIEW_HARD))
    prop = proposer.propose(obs, instruction, np.random.default_rng(0))
    assert prop.ok and prop.pixel_from == "grounding" and "of 7 views" in prop.contact_note
    frame = RGBDFrame(obs.rgb, np.asarray(obs.depth, np.float32), np.asarray(obs.intrinsics.K, float))
    cfg = PoseServiceConfig(contact="grounding", up="depth", snap_radius_px=60, views=7)
    res = PoseService(proposer.predictor, cfg, FramesConfig()).predict(instruction, frame, False)
    assert res.success, res.error
    assert (res.u, res.v) == (prop.u, prop.v) and "of 7 views" in res.contact_note  # the same contact either way


def test_an_attempt_outside_the_model_s_window_is_refused_by_tta_not_a_crash(lever, tmp_path, one_torch_thread):
    """A contact the model cannot be asked about (moved outside its object window, as a mean of jittered windows
    or a snap can in principle do) gets no adaptation step and says why; the adapters stay as they were."""
    import dataclasses

    from manipllm_ros.config import FramesConfig, PoseServiceConfig, TTAConfig
    from manipllm_ros.model.policy import PosePredictor
    from manipllm_ros.pose_service import PoseService, RGBDFrame
    from manipllm_ros.tta import TestTimeAdapter

    instruction, obs = lever
    frame = RGBDFrame(obs.rgb, np.asarray(obs.depth, np.float32), np.asarray(obs.intrinsics.K, float))
    service = PoseService(PosePredictor.load(OBJVIEW_HARD, device="cpu"),
                          PoseServiceConfig(contact="grounding", views=7), FramesConfig())
    res = service.predict(instruction, frame, False)
    assert res.success, res.error
    tta = TestTimeAdapter(service, TTAConfig(state_dir=str(tmp_path / "tta")))
    item = service.recall(res.prediction_id)
    service._remember(res.prediction_id, dataclasses.replace(item, pixel=(0.0, 0.0)))  # the image's corner
    out = tta.report(res.prediction_id, success=False)
    assert not out.accepted and not out.updated and "outside the object window" in out.error
    assert out.adapter_version == service.adapter_version == 0
