"""Training: mixed-task data with loss on answers only, a short run with checkpoints + validation, resume,
and a 2-process DDP run (torchrun, gloo on CPU)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from manipllm_ros.model.build import AdaptedVLM
from manipllm_ros.model.policy import PosePredictor
from manipllm_ros.model.processor import IGNORE_INDEX
from manipllm_ros.training.config import PRESETS, TrainConfig, preset
from manipllm_ros.training.data import MixedTaskDataset, prepare_samples
from manipllm_ros.training.synthetic import synthetic_samples
from manipllm_ros.training.trainer import latest_checkpoint, train


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(output_dir=str(tmp_path / "run"), max_steps=4, batch_size=2, grad_accum=2, eval_every=0,
                save_every=2, log_every=1, progress=False, warmup_steps=1,
                model={"max_new_tokens_category": 4, "max_new_tokens_reasoning": 4, "max_new_tokens_pose": 8})
    base.update(kw)
    return preset("tiny", **base)


def test_presets_validate_and_round_trip_yaml(tmp_path):
    for name in PRESETS:
        cfg = preset(name)
        f = tmp_path / f"{name}.yaml"
        f.write_text(cfg.to_yaml())
        assert TrainConfig.from_yaml(f) == cfg
    assert preset("qwen2.5-vl-3b").model.base_path
    # the committed configs of benchmarked runs still validate (benchmarks/model_part_supervision.md)
    committed = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "train_configs").glob("*.yaml"))
    assert committed and all(TrainConfig.from_yaml(f).part_supervision == 1.0 for f in committed)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ValueError, match="task_weights"):
        preset("tiny", data={"task_weights": {"dance": 1.0}})


def test_mixed_task_dataset_supervises_answers_only():
    vlm = AdaptedVLM.build(preset("tiny").model.model_copy(update={"device": "cpu"}))
    samples = prepare_samples(synthetic_samples(40), (112, 84))
    weights = {"category": 0.0, "affordance": 1.0, "pose": 1.0, "masked_pose": 1.0, "cot": 1.0}
    ds = MixedTaskDataset(samples, vlm.processor, weights, seed=0, n_affordance=4)
    tasks = collections.Counter(ds.example(i).task for i in range(len(ds)))
    assert set(tasks) == {"affordance", "pose", "masked_pose", "cot"} and "category" not in tasks
    first = [ds.example(i).task for i in range(len(ds))]
    ds.set_epoch(1)
    assert [ds.example(i).task for i in range(len(ds))] != first  # a new draw of tasks each epoch
    pr = vlm.processor
    for i in range(8):
        ex, enc = ds.example(i), ds[i]
        sup = [t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE_INDEX]
        expected = []
        for turn in ex.turns:
            expected += pr.answer_ids(turn.answer)
        assert sup == expected  # exactly the answers (+ their <|im_end|>), nothing of the prompts or image
        assert sum(enc.mm_token_type_ids) == pr.n_image_tokens
    # a task the sample cannot serve falls back to pose instead of failing
    bare = [dict(samples[0], aff_pos_uv=[], aff_neg_uv=[], reasoning="")]
    ds2 = MixedTaskDataset(bare, pr, {"affordance": 1.0, "cot": 1.0}, seed=0)
    assert ds2.example(0).task == "pose"


@pytest.mark.slow
def test_short_run_checkpoints_validates_and_resumes(tmp_path):
    tr = prepare_samples(synthetic_samples(8), (112, 84))
    va = prepare_samples(synthetic_samples(2, start=100, split="test_seen"), (112, 84))
    res = train(_cfg(tmp_path), tr, va)
    run = tmp_path / "run"
    assert res["step"] == 4 and res["world_size"] == 1 and res["ranks_in_sync"]
    assert {"parse_rate", "pixel_error_px_mean", "affordance_acc"} <= set(res)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train_lines = [x for x in lines if x["kind"] == "train"]
    assert [x["step"] for x in train_lines] == [1, 2, 3, 4]
    assert train_lines[-1]["lr"] < train_lines[0]["lr"]  # cosine decay after warm-up
    val = [x for x in lines if x["kind"] == "val"]
    assert val and val[-1]["mode"] == "cot" and val[-1]["n_affordance"] == 8  # the tiny preset trains both
    assert latest_checkpoint(run).name == "checkpoint-4"
    assert (run / "checkpoint-2").exists()
    # the final checkpoint is what the service loads
    pred = PosePredictor.load(run / "final", device="cpu")
    assert pred.adapter_version == "final"
    assert pred.vlm.trained_tasks == _cfg(tmp_path).data.task_weights  # what it may be asked travels with it
    # resume: continue to step 6 from checkpoint-4 with its adapters and optimizer state
    ck4 = AdaptedVLM.load(run / "checkpoint-4", device="cpu").adapter_state_dict()
    final = PosePredictor.load(run / "final", device="cpu").vlm.adapter_state_dict()
    assert all(torch.equal(ck4[k], final[k]) for k in ck4)
    res2 = train(_cfg(tmp_path, max_steps=6), tr, va)
    assert res2["step"] == 6
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_validation_asks_as_the_model_was_trained(tmp_path):
    """A model trained without chain of thought is validated on the direct pose question (it answers the
    category turn with noise), and with as many affordance points as it was trained on."""
    tr = prepare_samples(synthetic_samples(4), (112, 84))
    va = prepare_samples(synthetic_samples(2, start=100, split="test_seen"), (112, 84))
    weights = {"category": 0.0, "affordance": 1.0, "pose": 1.0, "masked_pose": 1.0, "cot": 0.0}
    res = train(_cfg(tmp_path, max_steps=2, save_every=0, data={"task_weights": weights, "n_affordance": 3}), tr, va)
    val = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    val = [x for x in val if x["kind"] == "val"]
    assert val[-1]["mode"] == "direct" and val[-1]["n_affordance"] == 3
    assert np.isnan(res["category_acc"])  # no category turn was asked
    assert res["parse_rate"] >= 0.0 and res["n"] == 2


@pytest.mark.slow
def test_two_process_ddp_with_torchrun_gloo(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "manipllm_ros.model.cli", "train", "--preset", "tiny", "--synthetic", "8", "--output-dir", str(out),
           "--max-steps", "2", "--batch-size", "2", "--eval-every", "0", "--save-every", "0"]  # fmt: skip
    log = tmp_path / "torchrun.log"
    with open(log, "wb") as fh:  # a file, not a pipe: the ranks' progress output never blocks them
        p = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=120, env=env)
    text = log.read_text(errors="replace")
    assert p.returncode == 0, text[-3000:]
    result = json.loads(text[text.rindex("{\n") :].split("\n}\n")[0] + "\n}")
    assert result["world_size"] == 2
    assert result["ranks_in_sync"] is True  # gradients were all-reduced: both ranks hold identical adapters
    assert (out / "final" / "adapters.safetensors").exists()


def test_evaluate_maps_pixels_of_resized_samples_back_to_original():
    """A predictor that answers the true pose scores ~0 px even though samples hold model-size images."""
    from manipllm_ros.model.config import ModelConfig
    from manipllm_ros.model.policy import Prediction
    from manipllm_ros.prompts import ImageFrame
    from manipllm_ros.training.metrics import evaluate

    samples = prepare_samples(synthetic_samples(3), (112, 84))
    pred = PosePredictor.from_config(ModelConfig(device="cpu", max_new_tokens_pose=2))

    def oracle(rgbs, instructions, chain_of_thought=True, reuse_prefix=True, viewed=False):
        out = []
        for s in samples[: len(rgbs)]:
            f = ImageFrame(640, 480, 112, 84)
            x, y = f.to_model(*s["contact_uv"])
            out.append(Prediction(pixel=(float(x), float(y)), up=np.array(s["up_cam"]),
                                  forward=np.array(s["forward_cam"]), answer="", category=s["category"].replace("_", " ")))
        return out

    pred.predict_batch = oracle
    m = evaluate(pred, samples, batch_size=3, n_affordance=2)
    assert m["parse_rate"] == 1.0 and m["pixel_error_px_mean"] < 640 / 112  # within one model pixel
    assert m["up_angle_deg_mean"] < 1e-6 and m["category_acc"] == 1.0


def test_training_reads_extra_datasets_train_splits(tmp_path):
    """data.extra_paths adds more datasets' train splits (extra samples of hard categories); validation stays on
    data.path, max_train_samples caps the total, and a path without training samples is an error, not less data."""
    from manipllm_ros.sim.collect import CollectConfig, collect
    from manipllm_ros.sim.dataset import iter_samples
    from manipllm_ros.training.data import DatasetError, load_train_samples

    main, extra = tmp_path / "main", tmp_path / "extra"
    for out, cat, seed in ((main, "microwave", 1), (extra, "toaster_lever", 2)):
        collect(CollectConfig(out=out, num_samples=3, seed=seed, workers=1, categories=[cat], samples_per_shard=3,
                              progress=False))
    n = {p: sum(1 for _ in iter_samples(p, split="train", decode=False)) for p in (main, extra)}
    assert n[main] and n[extra]
    cfg = _cfg(tmp_path, max_steps=1, save_every=0,
               data={"path": str(main), "extra_paths": [str(extra)], "val_split": "train", "max_val_samples": 1,
                     "task_weights": {"pose": 1.0}})
    train(cfg)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    data = [x for x in lines if x["kind"] == "data"]
    assert data[0]["train_samples"] == n[main] + n[extra]
    assert data[0]["per_category"] == {"microwave": n[main], "toaster lever": n[extra]}
    capped = load_train_samples([str(main), str(extra)], "train", (112, 84), limit=n[main] + 1)
    assert [s["category"] for s in capped] == ["microwave"] * n[main] + ["toaster lever"]
    with pytest.raises(DatasetError, match="no samples"):
        load_train_samples([str(main), str(extra)], "test_unseen", (112, 84))
