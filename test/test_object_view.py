"""The object's window found in the depth: on rendered MuJoCo scenes, on views with no object, as training
samples cut to it, and at inference on a tiny model that memorised a pose in the window."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import memorise

from manipllm_ros import prompts as P
from manipllm_ros.model.build import AdaptedVLM
from manipllm_ros.model.config import ModelConfig
from manipllm_ros.model.policy import NoObjectError, PosePredictor, Prediction
from manipllm_ros.model.processor import collate
from manipllm_ros.model.zoom import Window, crop
from manipllm_ros.object_view import ObjectViewConfig, ObjectViewError, box_window, foreground_mask, object_window
from manipllm_ros.training.data import intrinsics, object_viewed, prepare_samples, view_sample
from manipllm_ros.training.part_supervision import part_fraction_grid
from manipllm_ros.training.synthetic import synthetic_sample

CFG = ModelConfig(device="cpu")
VIEW = ObjectViewConfig()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _aspect_ok(win: Window, w: int = 640, h: int = 480) -> bool:
    return abs(win.width * h - win.height * w) <= w and win.x0 >= 0 and win.y0 >= 0 and \
        win.x0 + win.width <= w and win.y0 + win.height <= h


@pytest.mark.parametrize("category", ["microwave", "toaster_lever", "usb_cap", "table_drawer", "faucet_handle"])
def test_the_window_frames_the_object_in_rendered_scenes(category):
    """Real renders (MuJoCo, floor + object): the blob off the floor is the object, and the window holds it and
    its movable part, at the camera's aspect ratio; the same depth gives the same window."""
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm

    _, arm = build_arm(EpisodeSpec(category, 0, 1))
    with arm:
        obs = arm.world.observe()
    K = obs.intrinsics.K
    fg = foreground_mask(obs.depth, K)
    obj = np.asarray(obs.object_mask, bool)
    assert (fg & obj).sum() / (fg | obj).sum() > 0.8  # a usb cap lying flat stands 8 mm off the floor
    win = object_window(obs.depth, K)
    assert _aspect_ok(win) and win == object_window(obs.depth.copy(), K)
    inside = np.zeros_like(obj)
    inside[win.y0:win.y0 + win.height, win.x0:win.x0 + win.width] = True
    part = np.asarray(obs.mask, bool)
    assert (obj & inside).sum() / obj.sum() > 0.97 and (part & inside).sum() / part.sum() > 0.9
    assert win.width <= 640 and win.width >= 640 / VIEW.max_zoom - 1


def test_no_object_in_the_depth_is_an_error_not_a_window():
    h, w = 480, 640
    K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
    vs = np.arange(h, dtype=np.float64)[:, None]
    floor = np.broadcast_to(1.0 / (0.2 + 0.8 * vs / h) + 0.0 * np.arange(w)[None], (h, w)).astype(np.float32)
    for depth, why in ((floor, "no object"), (np.full((h, w), np.nan, np.float32), "valid depth"),
                       (np.zeros((h, w), np.float32), "valid depth")):
        with pytest.raises(ObjectViewError, match=why):
            object_window(depth, K)
    with pytest.raises(ObjectViewError, match="HxW"):
        object_window(np.zeros((h, w, 3)), K)
    speck = floor.copy()
    speck[200:205, 300:305] -= 0.1  # 25 px off the plane: not an object
    with pytest.raises(ObjectViewError, match="pixels"):
        object_window(speck, K)
    box = floor.copy()
    box[150:260, 280:400] -= 0.3
    box[0:4, :] = np.nan  # invalid pixels are ignored, not a failure
    win = object_window(box, K)
    assert win.contains(280, 150) and win.contains(399, 259) and _aspect_ok(win)


def test_box_window_grows_widens_and_stays_inside_the_image():
    cfg = ObjectViewConfig(margin=0.1, max_zoom=3.0)
    win = box_window(200, 100, 440, 300, 640, 480, cfg)  # 240x200 -> 288x240 -> widened to 4:3
    assert (win.width, win.height) == (320, 240) and win.contains(200, 100) and win.contains(439, 299)
    small = box_window(300, 200, 310, 210, 640, 480, cfg)  # a speck: at most max_zoom
    assert (small.width, small.height) == (213, 160) and small.contains(305, 205)
    edge = box_window(600, 0, 640, 400, 640, 480, cfg)  # tall, at the border: shifted in, clipped to the image
    assert _aspect_ok(edge) and edge.contains(639, 0) and edge.height == 480
    assert box_window(0, 0, 640, 480, 640, 480, cfg) == Window(0, 0, 640, 480)


def test_training_samples_are_cut_to_the_window_with_their_labels():
    s = synthetic_sample(3)
    s["aff_pos_uv"] = [list(map(int, s["contact_uv"])), [2, 2]]  # the second is off the object, off the window
    win = object_window(s["depth"], intrinsics(s))
    v = view_sample(s, win)
    assert np.array_equal(v["rgb"], crop(s["rgb"], win)) and v["width"] == win.width
    assert v["contact_uv"] == pytest.approx(list(win.to_crop(*s["contact_uv"])))
    assert v["aff_pos_uv"] == [list(win.to_crop(*s["contact_uv"]))]
    assert (v["cx"], v["cy"]) == (s["cx"] - win.x0, s["cy"] - win.y0)
    assert v["view_window"] == [win.x0, win.y0, win.width, win.height] and "rgb_png" not in v
    assert np.array_equal(v["rgb"][int(v["contact_uv"][1]), int(v["contact_uv"][0])], [255, 255, 255])  # the handle
    pr = PosePredictor.from_config(CFG).vlm.processor
    size = (pr.image_width, pr.image_height)
    (prep,) = prepare_samples([s], size, object_view=VIEW)
    assert prep["rgb"].shape == (size[1], size[0], 3) and prep["width"] == win.width
    assert np.allclose(prep["part_grid"], part_fraction_grid(crop(s["segmentation"], win), size))
    # a sample whose depth shows nothing off the plane is skipped, and said so
    flat = dict(synthetic_sample(4), depth=np.full((480, 640), 2.0, np.float32))
    skipped: list[str] = []
    assert len(list(object_viewed([flat, synthetic_sample(5)], VIEW, skipped))) == 1
    assert len(skipped) == 1 and "no object" in skipped[0]


def test_a_checkpoint_trained_on_windows_needs_depth_and_says_so(tmp_path):
    pred = PosePredictor.from_config(CFG)
    pred.vlm.object_view = VIEW.model_dump()
    pred.vlm.save(tmp_path / "ck")
    loaded = PosePredictor.load(tmp_path / "ck", device="cpu")
    assert loaded.object_view == VIEW
    s = synthetic_sample(0)
    with pytest.raises(ValueError, match="aligned depth"):
        loaded.predict(s["rgb"], s["instruction"], chain_of_thought=False)
    with pytest.raises(NoObjectError, match="no object in view"):
        loaded.predict(s["rgb"], s["instruction"], chain_of_thought=False,
                       depth=np.full((480, 640), 2.0, np.float32), K=intrinsics(s))
    with pytest.raises(ValueError, match="aligned to colour"):
        loaded.predict(s["rgb"], s["instruction"], chain_of_thought=False, depth=s["depth"][:240], K=intrinsics(s))


def test_the_answer_in_the_window_is_mapped_back_to_the_camera_image():
    """A tiny model memorises the pose answers of two samples seen through their object windows; predicting on
    the full images with depth gives those contacts in full-image pixels, and TTA asks about the same window."""
    cfg = CFG.model_copy(update={"lora": CFG.lora.model_copy(update={"extra_trainable": ["lm_head"]})})
    pred = PosePredictor.from_config(cfg)
    vlm, pr = pred.vlm, pred.vlm.processor
    size = (vlm.cfg.image_width, vlm.cfg.image_height)
    samples = [synthetic_sample(0), synthetic_sample(1)]
    views = [view_sample(s, object_window(s["depth"], intrinsics(s))) for s in samples]
    batch = collate([pr.encode_example(v["rgb"], P.pose_example(v, model_size=size)) for v in views], pr.pad_id)
    memorise(vlm, batch, max_steps=600)
    vlm.object_view = VIEW.model_dump()
    rs = pred.predict_batch([s["rgb"] for s in samples], [s["instruction"] for s in samples], chain_of_thought=False,
                            depths=[s["depth"] for s in samples], Ks=[intrinsics(s) for s in samples])
    for s, v, r in zip(samples, views, rs):
        assert isinstance(r, Prediction), r
        win = Window(*v["view_window"])
        assert r.view == win and win.contains(*r.pixel)
        assert np.allclose(r.pixel, s["contact_uv"], atol=win.width / size[0])  # one model pixel of the window
        assert r.up @ np.asarray(s["up_cam"]) > 0.9
    # the viewed images themselves (validation on prepared samples) give the window's pixels
    (r0,) = pred.predict_batch([views[0]["rgb"]], [samples[0]["instruction"]], chain_of_thought=False, viewed=True)
    assert np.allclose(r0.pixel, views[0]["contact_uv"], atol=1.0 + views[0]["width"] / size[0])
    s = samples[0]
    loss = pred.tta_step(s["rgb"], s["instruction"], rs[0].pixel, True, depth=s["depth"], K=intrinsics(s))
    assert np.isfinite(loss)
    with pytest.raises(ValueError, match="outside the object window"):
        pred.tta_step(s["rgb"], s["instruction"], (1.0, 1.0), True, depth=s["depth"], K=intrinsics(s))


def test_the_trained_window_travels_with_the_checkpoint_from_the_training_config(tmp_path):
    from manipllm_ros.training.config import preset
    from manipllm_ros.training.trainer import train

    cfg = preset("tiny", output_dir=str(tmp_path / "run"), max_steps=2, eval_every=0, save_every=0,
                 data={"object_view": {"margin": 0.1}, "max_val_samples": 2}, progress=False)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"device": "cpu"})})
    size = (cfg.model.image_width, cfg.model.image_height)
    from manipllm_ros.training.data import prepare_samples as prep

    train_s = prep([synthetic_sample(i) for i in range(4)], size, object_view=cfg.data.object_view)
    val_s = prep([synthetic_sample(i, split="test_seen") for i in (7, 8)], size, object_view=cfg.data.object_view)
    train(cfg, train_s, val_s)
    loaded = AdaptedVLM.load(tmp_path / "run" / "final", device="cpu")
    assert loaded.object_view == ObjectViewConfig(margin=0.1).model_dump()


def test_the_pose_service_answers_no_object_with_an_error_not_a_pose():
    from manipllm_ros.config import FramesConfig, PoseServiceConfig
    from manipllm_ros.pose_service import PoseService, RGBDFrame

    pred = PosePredictor.from_config(CFG)
    pred.vlm.object_view = VIEW.model_dump()
    s = synthetic_sample(0)
    flat = RGBDFrame(s["rgb"], np.full((480, 640), 2.0, np.float32), intrinsics(s))
    res = PoseService(pred, PoseServiceConfig(), FramesConfig()).predict(s["instruction"], flat, False)
    assert not res.success and "no object in view" in res.error and res.prediction_id == 0
