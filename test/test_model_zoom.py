"""Zoomed grounding: the crop window, the training examples cut from the full image, the second grounding turn
at inference on a tiny model that memorised both turns, and the fine-tune that starts from a checkpoint."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from conftest import memorise

from manipllm_ros import prompts as P
from manipllm_ros.model.build import AdaptedVLM
from manipllm_ros.model.config import ModelConfig
from manipllm_ros.model.policy import PosePredictor, Prediction, UntrainedQuestionError
from manipllm_ros.model.processor import collate
from manipllm_ros.model.zoom import Window, crop, training_window, zoom_window
from manipllm_ros.training.config import TrainConfig, preset
from manipllm_ros.training.data import DatasetError, MixedTaskDataset, full_image, prepare_samples
from manipllm_ros.training.part_supervision import part_centre
from manipllm_ros.training.synthetic import synthetic_sample
from manipllm_ros.training.trainer import init_model

CFG = ModelConfig(device="cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_zoom_window_keeps_the_aspect_and_stays_inside_the_image():
    w = zoom_window((320, 240), 2.0, 640, 480)
    assert w == Window(160, 120, 320, 240)
    assert w.to_full(*w.to_crop(401.5, 77.25)) == (401.5, 77.25)
    corner = zoom_window((5, 470), 2.0, 640, 480)  # shifted inside, not shrunk
    assert (corner.x0, corner.y0, corner.width, corner.height) == (0, 240, 320, 240)
    assert zoom_window((100, 100), 1.0, 640, 480) == Window(0, 0, 640, 480)
    rgb = np.arange(480 * 640 * 3, dtype=np.uint32).reshape(480, 640, 3).astype(np.uint8)
    c = crop(rgb, corner)
    assert c.shape == (240, 320, 3) and c.flags["C_CONTIGUOUS"]
    assert np.array_equal(c[0, 0], rgb[240, 0]) and np.array_equal(c[-1, -1], rgb[479, 319])
    for bad in (0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="zoom"):
            zoom_window((1, 1), bad, 640, 480)
    with pytest.raises(ValueError, match="centre"):
        zoom_window((float("nan"), 1), 2.0, 640, 480)
    with pytest.raises(ValueError, match="outside"):
        crop(rgb, Window(400, 0, 320, 240))


def test_training_windows_contain_the_target_anywhere_in_the_image():
    rng = random.Random(0)
    for _ in range(2000):
        target = (rng.uniform(0, 639.9), rng.uniform(0, 479.9))
        win = training_window(target, 640, 480, (1.5, 3.0), 0.3, rng)
        assert win.contains(*target)
        assert 640 / 3.0 - 1 <= win.width <= 640 / 1.5 + 1 and abs(win.width / win.height - 4 / 3) < 0.02
        assert win.x0 >= 0 and win.y0 >= 0 and win.x0 + win.width <= 640 and win.y0 + win.height <= 480


def test_grounding_zoom_examples_point_to_the_part_centre_in_the_crop():
    pr = PosePredictor.from_config(CFG).vlm.processor
    model_size = (pr.image_width, pr.image_height)
    samples = prepare_samples([synthetic_sample(i) for i in range(6)], model_size, keep_full=True)
    assert np.array_equal(full_image(samples[0]), synthetic_sample(0)["rgb"])  # PNG, lossless
    ds = MixedTaskDataset(samples, pr, {"grounding_zoom": 1.0}, seed=3, zoom_range=(2.0, 2.5), zoom_jitter=0.2)
    for i, s in enumerate(samples):
        ex, img = ds.example_and_image(i)
        assert ex.task == "grounding_zoom" and ex.turns[0].question == P.grounding_question(s["instruction"])
        # the window is the dataset's own draw for (seed, epoch, i): replay it
        rng = random.Random(hash((3, 0, i)) & 0xFFFFFFFF)
        rng.choices(["grounding_zoom"], weights=[1.0])
        win = training_window(tuple(s["part_centre_uv"]), 640, 480, (2.0, 2.5), 0.2, rng)
        assert 640 / 2.5 - 1 <= win.width <= 640 / 2.0 + 1
        assert np.array_equal(img, crop(full_image(s), win))
        # the answer, read in the crop's frame and mapped back, is the part centre up to one model pixel
        _, uv = P.parse_grounding(ex.turns[0].answer, pr.frame(win.width, win.height))
        assert np.allclose(win.to_full(*uv), s["part_centre_uv"], atol=win.width / model_size[0])
        enc = ds[i]
        assert enc.image_grid_thw.tolist() == [[1, model_size[1] // 14, model_size[0] // 14]]
    # without the full image the task cannot be cut: a clear error, not a silent fall back
    plain = prepare_samples([synthetic_sample(0)], model_size)
    with pytest.raises(DatasetError, match="keep_full"):
        MixedTaskDataset(plain, pr, {"grounding_zoom": 1.0}).example_and_image(0)
    with pytest.raises(ValueError, match="cut from the image"):
        P.make_example(samples[0], "grounding_zoom", random.Random(0))


def test_zoom_is_refused_unless_the_model_learned_it():
    pred = PosePredictor.from_config(CFG)
    s = synthetic_sample(0)
    with pytest.raises(ValueError, match="ground_contact"):
        pred.predict(s["rgb"], s["instruction"], chain_of_thought=False, zoom=2.0)
    with pytest.raises(ValueError, match="zoom"):
        pred.predict(s["rgb"], s["instruction"], chain_of_thought=False, ground_contact=True, zoom=0.5)
    pred.vlm.trained_tasks = {"pose": 1.0, "grounding": 1.0}
    with pytest.raises(UntrainedQuestionError, match="zoomed grounding"):
        pred.predict(s["rgb"], s["instruction"], chain_of_thought=False, ground_contact=True, zoom=2.0)


@pytest.mark.slow
def test_zoomed_grounding_asks_again_on_the_crop_and_maps_the_answer_back():
    """A tiny model memorises the pose, the grounding answer and the zoomed answer on the crop around it; the
    prediction then takes the contact from the zoomed answer, mapped back to the full image."""
    cfg = CFG.model_copy(update={"lora": CFG.lora.model_copy(update={"extra_trainable": ["lm_head"]})})
    pred = PosePredictor.from_config(cfg)
    vlm, pr = pred.vlm, pred.vlm.processor
    size = (vlm.cfg.image_width, vlm.cfg.image_height)
    frame = pr.frame(640, 480)
    samples = [dict(s, part_centre_uv=list(part_centre(s["segmentation"]))) for s in (synthetic_sample(0),
                                                                                        synthetic_sample(1))]
    # the zoomed target is a point the first answer cannot give: the handle, 1/4 of the way from the centre
    encs, wins, targets = [], [], []
    for s in samples:
        coarse = frame.to_orig(*frame.to_model(*s["part_centre_uv"]))
        win = zoom_window(coarse, 2.0, 640, 480)
        target = win.to_full(*win.to_crop(*s["contact_uv"]))
        view = dict(s, width=win.width, height=win.height, part_centre_uv=list(win.to_crop(*target)))
        encs += [pr.encode_example(s["rgb"], P.pose_example(s, model_size=size)),
                 pr.encode_example(s["rgb"], P.grounding_example(s, model_size=size)),
                 pr.encode_example(crop(s["rgb"], win), P.grounding_example(view, model_size=size))]
        wins.append(win)
        targets.append(target)
    batch = collate(encs, pr.pad_id)
    memorise(vlm, batch, max_steps=1000, halve_every=200)
    vlm.trained_tasks = {"pose": 1.0, "grounding": 1.0, "grounding_zoom": 1.0}
    rs = pred.predict_batch([s["rgb"] for s in samples], [s["instruction"] for s in samples],
                            chain_of_thought=False, ground_contact=True, zoom=2.0)  # fmt: skip
    for s, r, win, target in zip(samples, rs, wins, targets):
        assert isinstance(r, Prediction), r
        assert r.coarse_pixel == pytest.approx(frame.to_orig(*frame.to_model(*s["part_centre_uv"])))
        assert np.allclose(r.pixel, target, atol=win.width / size[0])  # within one model pixel of the crop
        assert np.hypot(*np.subtract(r.pixel, r.coarse_pixel)) > 5  # it did move
        assert r.turns[1][0].startswith("[2x crop at") and r.timings["grounding_zoom"] > 0


def test_init_from_starts_a_fine_tune_from_a_checkpoint(tmp_path):
    cfg = preset("tiny", output_dir=str(tmp_path / "run"))
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"device": "cpu"})})
    src = AdaptedVLM.build(cfg.model)
    with torch.no_grad():
        for n, p in src.peft.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    src.save(tmp_path / "ck")
    vlm = init_model(cfg.model_copy(update={"init_from": str(tmp_path / "ck")}), cfg.model)
    a, b = src.adapter_state_dict(), vlm.adapter_state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert vlm.trainable_parameters()  # the loaded adapters train
    other = cfg.model.model_copy(update={"vision_abs_pos": 0.5})
    with pytest.raises(ValueError, match="vision_abs_pos"):
        init_model(cfg.model_copy(update={"init_from": str(tmp_path / "ck"), "model": other}), other)
    bigger = cfg.model.model_copy(update={"image_width": 224, "image_height": 168})  # the input size may change
    vlm = init_model(cfg.model_copy(update={"init_from": str(tmp_path / "ck"), "model": bigger}), bigger)
    assert (vlm.processor.image_width, vlm.processor.image_height, vlm.cfg.image_width) == (224, 168, 224)
    assert all(torch.equal(a[k], vlm.adapter_state_dict()[k]) for k in a)
    enc = vlm.processor.encode_example(synthetic_sample(0)["rgb"], P.pose_example(synthetic_sample(0)))
    assert enc.image_grid_thw.tolist() == [[1, 12, 16]]
    vlm.save(tmp_path / "big")
    assert AdaptedVLM.load(tmp_path / "big", device="cpu").processor.image_width == 224
    assert isinstance(TrainConfig.model_validate({"init_from": None}), TrainConfig)
