"""Tiny Qwen2.5-VL + V/L adapters: which parameters training and TTA change, save/load, hot swap, reset."""

from __future__ import annotations

import random
import numpy as np
import pytest
import torch


from manipllm_ros import prompts as P
from manipllm_ros.model.build import AdaptedVLM, ModelLoadError
from manipllm_ros.model.config import ModelConfig
from manipllm_ros.model.policy import PosePredictor
from manipllm_ros.model.processor import collate
from manipllm_ros.training.data import prepare_samples
from manipllm_ros.training.synthetic import synthetic_sample

CFG = ModelConfig(device="cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(vlm: AdaptedVLM, n: int = 2) -> dict:
    encs = []
    for i in range(n):
        s = prepare_samples([synthetic_sample(i)], (vlm.cfg.image_width, vlm.cfg.image_height))[0]
        for task in [t for t in P.TASKS if t != "grounding_zoom"]:  # every text format (zoom: test_model_zoom)
            ex = P.make_example(s, task, random.Random(i), model_size=(vlm.cfg.image_width, vlm.cfg.image_height))
            encs.append(vlm.processor.encode_example(s["rgb"], ex))
    return collate(encs, vlm.processor.pad_id)


def _snapshot(vlm: AdaptedVLM) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in vlm.peft.named_parameters()}


def _changed(vlm: AdaptedVLM, before: dict[str, torch.Tensor]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for n, p in vlm.peft.named_parameters():
        if not torch.equal(p.detach(), before[n]):
            out.setdefault(vlm.group(n), set()).add(n)
    return out


@torch.no_grad()
def _logits(vlm: AdaptedVLM, batch: dict) -> torch.Tensor:
    b = {k: v for k, v in batch.items() if k != "labels"}
    return vlm.model(**b, use_cache=False).logits


@pytest.fixture(scope="module")
def batch():
    return _batch(AdaptedVLM.build(CFG))


def test_tiny_build_shapes_and_groups():
    vlm = AdaptedVLM.build(CFG)
    groups = {vlm.group(n) for n, _ in vlm.peft.named_parameters()}
    assert groups == {"v_adapter", "l_adapter", "projector", "base"}
    assert all(p.requires_grad == (vlm.group(n) != "base") for n, p in vlm.peft.named_parameters())
    t = vlm.model.config.text_config
    assert sum(t.rope_parameters["mrope_section"]) == t.hidden_size // t.num_attention_heads // 2
    # same config -> same random base (deterministic build)
    other = AdaptedVLM.build(CFG)
    assert all(torch.equal(a, b) for a, b in zip(vlm.peft.state_dict().values(), other.peft.state_dict().values()))


def test_training_step_changes_exactly_v_l_and_projector(batch):
    vlm = AdaptedVLM.build(CFG)
    before = _snapshot(vlm)
    opt = torch.optim.AdamW(vlm.trainable_parameters(), lr=1e-3, weight_decay=0.0)
    loss, n = vlm.loss(batch)
    assert n > 0 and torch.isfinite(loss)
    loss.backward()
    opt.step()
    changed = _changed(vlm, before)
    assert set(changed) == {"v_adapter", "l_adapter", "projector"}
    # LoRA B starts at zero, so its gradient is what moves first: every B matrix of both halves moved
    for g in ("v_adapter", "l_adapter"):
        bs = {n for n, _ in vlm.named_group_params(g) if "lora_B" in n}
        assert bs and bs <= changed[g]
    assert {n for n, _ in vlm.named_group_params("projector")} == changed["projector"]


def test_extra_trainable_group_for_random_init_presets(batch):
    cfg = CFG.model_copy(update={"lora": CFG.lora.model_copy(update={"extra_trainable": ["lm_head"]})})
    vlm = AdaptedVLM.build(cfg)
    before = _snapshot(vlm)
    opt = torch.optim.AdamW(vlm.trainable_parameters(), lr=1e-3)
    vlm.loss(batch)[0].backward()
    opt.step()
    changed = _changed(vlm, before)
    assert set(changed) == {"v_adapter", "l_adapter", "projector", "extra"}
    assert changed["extra"] == {"base_model.model.lm_head.weight"}


def test_tta_step_changes_only_v_adapter():
    pred = PosePredictor.from_config(CFG, tta_lr=1e-2)
    vlm = pred.vlm
    s = synthetic_sample(3)
    before = _snapshot(vlm)
    trainable_before = {n: p.requires_grad for n, p in vlm.peft.named_parameters()}
    loss = pred.tta_step(s["rgb"], s["instruction"], tuple(s["contact_uv"]), success=False)
    assert np.isfinite(loss) and loss > 0
    changed = _changed(vlm, before)
    assert set(changed) == {"v_adapter"}
    assert {n for n, _ in vlm.named_group_params("v_adapter") if "lora_B" in n} <= changed["v_adapter"]
    # training flags are restored afterwards
    assert trainable_before == {n: p.requires_grad for n, p in vlm.peft.named_parameters()}
    assert pred.adapter_version.endswith("+tta1")


def test_save_load_checkpoint_gives_identical_logits(tmp_path, batch):
    vlm = AdaptedVLM.build(CFG)
    opt = torch.optim.AdamW(vlm.trainable_parameters(), lr=1e-2)
    vlm.loss(batch)[0].backward()
    opt.step()
    ref = _logits(vlm, batch)
    vlm.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "adapters.safetensors").exists()
    assert (tmp_path / "ckpt" / "base" / "model.safetensors").exists()
    assert (tmp_path / "ckpt" / "base" / "tokenizer.json").exists()  # self-contained: offline tokenizer saved
    loaded = AdaptedVLM.load(tmp_path / "ckpt", device="cpu")
    assert torch.equal(_logits(loaded, batch), ref)


def test_hot_swap_and_reset_in_live_model(tmp_path, batch):
    vlm = AdaptedVLM.build(CFG)
    trained = AdaptedVLM.build(CFG)
    opt = torch.optim.AdamW(trained.trainable_parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        trained.loss(batch)[0].backward()
        opt.step()
    trained.adapter_version = "v2"
    trained.save_adapters(tmp_path / "a2")
    ref_trained = _logits(trained, batch)
    ref_init = _logits(vlm, batch)
    assert not torch.equal(ref_trained, ref_init)

    params_before = {n: p.data_ptr() for n, p in vlm.peft.named_parameters()}
    assert vlm.load_adapters(tmp_path / "a2") == "v2"
    assert vlm.adapter_version == "v2"
    assert torch.equal(_logits(vlm, batch), ref_trained)
    # in place: no parameter was re-allocated
    assert params_before == {n: p.data_ptr() for n, p in vlm.peft.named_parameters()}
    # reset goes back to the last marked state (here: the initial adapters)
    vlm.reset_adapters()
    assert torch.equal(_logits(vlm, batch), ref_init)
    assert vlm.adapter_version == "init"


def test_load_adapters_rejects_mismatched_file(tmp_path):
    vlm = AdaptedVLM.build(CFG)
    other_cfg = CFG.model_copy(update={"lora": CFG.lora.model_copy(update={"v_rank": 4})})
    other = AdaptedVLM.build(other_cfg)
    other.save_adapters(tmp_path / "bad")
    before = _snapshot(vlm)
    with pytest.raises(ModelLoadError, match="shape"):
        vlm.load_adapters(tmp_path / "bad")
    assert not _changed(vlm, before)  # all-or-nothing
    with pytest.raises(ModelLoadError, match="no adapter file"):
        vlm.load_adapters(tmp_path / "missing")


def test_predictor_hot_swap_resets_tta(tmp_path):
    pred = PosePredictor.from_config(CFG, tta_lr=1e-2)
    pred.save_adapters(tmp_path / "a")
    s = synthetic_sample(1)
    before = _snapshot(pred.vlm)
    pred.tta_step(s["rgb"], s["instruction"], (10.0, 20.0), success=True)
    assert _changed(pred.vlm, before)
    pred.load_adapters(tmp_path / "a")
    assert not _changed(pred.vlm, before)
    pred.tta_step(s["rgb"], s["instruction"], (10.0, 20.0), success=True)
    pred.reset_adapters()
    assert not _changed(pred.vlm, before)


def test_missing_checkpoint_and_base_path_give_typed_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="not a manipllm checkpoint"):
        PosePredictor.load(tmp_path / "nothing")
    with pytest.raises(ModelLoadError, match="no config.json"):
        AdaptedVLM.build(CFG.model_copy(update={"base_path": str(tmp_path)}))


def test_cli_predict_reports_parse_error_and_register(tmp_path, capsys):
    import argparse

    from PIL import Image

    from manipllm_ros.model import cli

    AdaptedVLM.build(CFG).save(tmp_path / "ck")
    Image.fromarray(synthetic_sample(0)["rgb"]).save(tmp_path / "rgb.png")
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["predict", "--checkpoint", str(tmp_path / "ck"), "--image", str(tmp_path / "rgb.png"),
                              "--instruction", "open the door of the microwave", "--direct", "--device", "cpu"])
    assert args.func(args) == 1  # an untrained model's answer does not parse: typed message, exit code 1
    assert "could not parse pose from model output: " in capsys.readouterr().err
    args = parser.parse_args(["train", "--preset", "small", "--dump-config", "--data", "x"])
    assert args.func(args) == 0
    assert "path: x" in capsys.readouterr().out
