"""Absolute position features in the vision tower: right patch order, they reach the image tokens, they persist."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from manipllm_ros.model.build import AdaptedVLM
from manipllm_ros.model.config import ModelConfig
from manipllm_ros.model.vision_position import position_features

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _coordinate_image(h: int = 480, w: int = 640) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // w, yy * 255 // h, np.zeros_like(xx)], -1).astype(np.uint8)


@torch.no_grad()
def _image_tokens(vlm: AdaptedVLM, rgb: np.ndarray) -> torch.Tensor:
    pv, grid = vlm.processor.encode_images([rgb])
    return vlm.model.model.visual(pv, grid_thw=grid).pooler_output


def test_features_follow_the_processors_patch_order():
    """Red encodes the column and green the row; the features' cos(pi x) / cos(pi y) must track them per patch."""
    vlm = AdaptedVLM.build(ModelConfig(device="cpu"))
    pv, grid = vlm.processor.encode_images([_coordinate_image()])
    patches = pv.reshape(len(pv), 3, 2, 14, 14)
    red, green = patches[:, 0].mean((1, 2, 3)).numpy(), patches[:, 1].mean((1, 2, 3)).numpy()
    f = position_features(grid, 2, 16).numpy()  # k = 4: [sin y, cos y, sin x, cos x] x 4 each
    assert f.shape == (len(pv), 16)
    assert np.corrcoef(red, f[:, 12])[0, 1] < -0.98  # cos(pi x) falls as the column grows
    assert np.corrcoef(green, f[:, 4])[0, 1] < -0.98
    assert np.corrcoef(red, f[:, 4])[0, 1] > -0.2  # and the row features do not follow the column
    wide = position_features(grid, 2, 64).numpy()
    assert np.all(wide[:, 32:] == 0)  # at most 8 frequencies per axis; the rest of the width stays free
    assert np.all(wide[:, 0] > 0)  # sin(pi y) on fractional rows in (0, 1)


def test_a_uniform_image_gives_one_vector_without_and_a_position_map_with():
    """Why the features exist: rotary positions never enter the values, so a plain image's tokens are identical."""
    grey = np.full((480, 640, 3), 128, np.uint8)
    stock = _image_tokens(AdaptedVLM.build(ModelConfig(device="cpu")), grey)
    assert torch.allclose(stock, stock[:1].expand_as(stock), atol=1e-5)
    vlm = AdaptedVLM.build(ModelConfig(device="cpu", vision_abs_pos=1.0))
    tokens = _image_tokens(vlm, grey)
    spread = (tokens - tokens.mean(0)).norm(dim=1)
    assert spread.min() > 1e-2 * tokens.norm(dim=1).mean()
    # every merged token is different from every other one: position can be read back from the values alone
    d = torch.cdist(tokens, tokens) + torch.eye(len(tokens)) * 1e9
    assert d.min() > 1e-3


def test_scale_zero_is_stock_qwen_and_the_setting_survives_save_and_load(tmp_path):
    stock = AdaptedVLM.build(ModelConfig(device="cpu"))
    assert stock.vision_position is None
    vlm = AdaptedVLM.build(ModelConfig(device="cpu", vision_abs_pos=1.0))
    img = _coordinate_image()
    before = _image_tokens(vlm, img)
    assert not torch.allclose(before, _image_tokens(stock, img))
    vlm.save(tmp_path / "ckpt")
    again = AdaptedVLM.load(tmp_path / "ckpt")
    assert again.cfg.vision_abs_pos == 1.0
    assert torch.allclose(_image_tokens(again, img), before, atol=1e-6)
