"""Dense part supervision: targets follow the vision tower's token order, the loss trains the vision side only,
and checkpoints are unchanged by it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from manipllm_ros.model.build import AdaptedVLM
from manipllm_ros.training.config import preset
from manipllm_ros.training.data import MixedTaskDataset, prepare_samples
from manipllm_ros.training.part_supervision import PartSupervision, part_centre, part_fraction_grid, token_targets
from manipllm_ros.training.synthetic import synthetic_samples
from manipllm_ros.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_part_fraction_grid_known_answer():
    seg = np.zeros((480, 640), np.uint8)
    seg[:, :320] = 2  # left half is the part
    seg[:240, 320:] = 1  # fixed object parts do not count
    g = part_fraction_grid(seg, (112, 84))  # 4 x 3 token blocks
    assert g.shape == (3, 4)
    assert np.allclose(g[:, :2], 1.0) and np.allclose(g[:, 2:], 0.0)
    seg[:] = 0
    seg[:, 240:400] = 2  # 160 of 640 columns: block 1 (cols 160-320) half covered, block 2 half covered
    g = part_fraction_grid(seg, (112, 84))
    assert np.allclose(g[0], [0.0, 0.5, 0.5, 0.0], atol=0.02)
    assert part_centre(seg) == pytest.approx((319.5, 239.5))
    assert part_centre(np.zeros((4, 4), np.uint8)) is None  # the part is not in view
    with pytest.raises(ValueError, match="multiples of 28"):
        part_fraction_grid(seg, (100, 84))
    with pytest.raises(ValueError, match="HxW"):
        part_fraction_grid(np.zeros((4, 4, 3)), (112, 84))


def test_token_targets_follow_the_order_of_the_vision_tokens():
    """Each token's target is the block whose pixels the processor put into that token's four patches."""
    vlm = AdaptedVLM.build(preset("tiny").model.model_copy(update={"device": "cpu"}))
    pr = vlm.processor
    w, h = pr.image_width, pr.image_height
    gh, gw = h // 28, w // 28
    level = np.arange(gh * gw, dtype=np.float32).reshape(gh, gw) / (gh * gw)  # a unique grey per token block
    img = np.kron(level * 200 + 20, np.ones((28, 28)))[..., None].repeat(3, 2).astype(np.uint8)
    pv, thw = pr.encode_images([img])
    targets = token_targets(level, thw)
    patch_means = pv.reshape(pv.shape[0], -1).mean(1)  # normalised grey of each patch
    token_means = patch_means.reshape(-1, 4).mean(1)
    assert len(targets) == gh * gw == len(token_means)
    assert np.corrcoef(targets.numpy(), token_means.numpy())[0, 1] > 0.999
    assert torch.isnan(token_targets(None, thw)).all()
    with pytest.raises(ValueError, match="does not match"):
        token_targets(level[:, :-1], thw)


@pytest.mark.slow
def test_part_supervision_trains_the_vision_side_and_leaves_checkpoints_unchanged(tmp_path: Path):
    samples = prepare_samples(synthetic_samples(8), (112, 84))
    assert all("part_grid" in s for s in samples) and not any("rgb_png" in s for s in samples)
    common = dict(max_steps=30, batch_size=4, eval_every=0, save_every=0, log_every=5, progress=False,
                  warmup_steps=2, lr=3e-3, data={"task_weights": {"pose": 1.0}})  # fmt: skip
    res = train(preset("tiny", output_dir=str(tmp_path / "part"), part_supervision=1.0, **common), samples)
    assert res["step"] == 30
    lines = [json.loads(x) for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    part_losses = [x["part_loss"] for x in lines if x["kind"] == "train"]
    assert part_losses[-1] < 0.8 * part_losses[0]  # the image tokens learned where the part is
    # the head is training-only: the checkpoint holds the same tensors as one trained without it
    train(preset("tiny", output_dir=str(tmp_path / "plain"), **dict(common, max_steps=1)), samples)
    with_part = load_file(str(tmp_path / "part" / "final" / "adapters.safetensors"))
    plain = load_file(str(tmp_path / "plain" / "final" / "adapters.safetensors"))
    assert set(with_part) == set(plain)
    assert AdaptedVLM.load(tmp_path / "part" / "final", device="cpu").adapter_version == "final"
    # a dataset without segmentations is refused with a reason, not trained silently without the loss
    bare = [{k: v for k, v in s.items() if k != "part_grid"} for s in samples]
    with pytest.raises(ValueError, match="segmentations"):
        train(preset("tiny", output_dir=str(tmp_path / "bare"), part_supervision=1.0, **common), bare)


def test_part_loss_reaches_v_adapter_and_projector_only():
    vlm = AdaptedVLM.build(preset("tiny").model.model_copy(update={"device": "cpu"}))
    samples = prepare_samples(synthetic_samples(2), (112, 84))
    ds = MixedTaskDataset(samples, vlm.processor, {"pose": 1.0}, part_targets=True)
    part = PartSupervision(vlm.model.model.visual, vlm.model.config.text_config.hidden_size)
    from manipllm_ros.model.processor import collate

    batch = collate([ds[0], ds[1]], vlm.processor.pad_id)
    target = batch.pop("part_target")
    assert target.shape[0] == 2 * vlm.processor.n_image_tokens and not torch.isnan(target).any()
    vlm.peft.zero_grad()
    vlm.loss(batch)
    part.loss(target).backward()
    got = {vlm.group(n) for n, p in vlm.peft.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert got == {"v_adapter", "projector"}
    assert part.head.weight.grad is not None
    with pytest.raises(RuntimeError, match="has not run since its tokens were last taken"):
        part.loss(target)  # the tokens of a forward are used once


def test_grounding_examples_come_from_the_mask_and_fall_back_to_pose_without_one():
    raw = synthetic_samples(3)
    samples = prepare_samples(raw, (112, 84))
    for r, s in zip(raw, samples):
        vs, us = np.nonzero(r["segmentation"] == 2)
        assert np.allclose(s["part_centre_uv"], [us.mean(), vs.mean()])
    vlm = AdaptedVLM.build(preset("tiny").model.model_copy(update={"device": "cpu"}))
    ds = MixedTaskDataset(samples, vlm.processor, {"grounding": 1.0})
    assert ds.example(0).task == "grounding"
    bare = [{k: v for k, v in s.items() if k != "part_centre_uv"} for s in samples]
    assert MixedTaskDataset(bare, vlm.processor, {"grounding": 1.0}).example(0).task == "pose"
