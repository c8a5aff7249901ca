"""The training loop: AdamW + cosine schedule, gradient accumulation, bf16 on GPU, checkpoints with resume,
periodic validation, tqdm progress. Runs as one process or under `torchrun` / `accelerate launch` (DDP; FSDP
through an accelerate config for large bases): Accelerate reads the launcher's environment.

Checkpoint layout (output_dir):
  checkpoint-<step>/   a loadable model checkpoint (AdaptedVLM.save) + trainer_state.pt (optimizer, scheduler,
                       step, epoch, RNG) -> resume continues from here
  final/               the model after the last step (what `manipllm predict` and the pose service load)
  metrics.jsonl        one JSON line per log/validation event
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from manipllm_ros.model.build import AdaptedVLM
from manipllm_ros.model.policy import PosePredictor
from manipllm_ros.training.config import TrainConfig
from manipllm_ros.training.data import Collator, MixedTaskDataset, load_samples, load_train_samples
from manipllm_ros.training.metrics import evaluate
from manipllm_ros.training.part_supervision import PartSupervision

STATE_FILE = "trainer_state.pt"


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    d = Path(output_dir)
    cks = [(int(m.group(1)), p) for p in d.glob("checkpoint-*") if (m := re.fullmatch(r"checkpoint-(\d+)", p.name))
           and (p / STATE_FILE).exists()]  # fmt: skip
    return max(cks)[1] if cks else None


def _log(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


_RUNTIME_FIELDS = ("device", "cpu_threads", "dtype")  # may differ between the checkpoint and the fine-tune
# The input size may change too: the vision tower has no size-bound weights (patch embeddings, 2D RoPE, position
# features of fractional coordinates), so a fine-tune can teach a checkpoint to see more pixels.
_RESIZABLE_FIELDS = ("image_width", "image_height")


def init_model(cfg: TrainConfig, model_cfg) -> AdaptedVLM:
    """A new model from `model_cfg`, or `cfg.init_from`'s weights and adapters when set (a fine-tune); raises
    when that checkpoint's model settings differ from `cfg.model` beyond where it runs and the input size."""
    if not cfg.init_from:
        return AdaptedVLM.build(model_cfg)
    vlm = AdaptedVLM.load(cfg.init_from, device=model_cfg.device)
    ours = cfg.model.model_dump(exclude=set(_RUNTIME_FIELDS + _RESIZABLE_FIELDS))
    theirs = vlm.cfg.model_dump(exclude=set(_RUNTIME_FIELDS + _RESIZABLE_FIELDS))
    diff = sorted(k for k in ours if ours[k] != theirs.get(k))
    if diff:
        raise ValueError(f"init_from {cfg.init_from}: its model settings differ from this config's in {diff}")
    if (vlm.cfg.image_width, vlm.cfg.image_height) != (cfg.model.image_width, cfg.model.image_height):
        vlm.resize_input(cfg.model.image_width, cfg.model.image_height)
    if model_cfg.cpu_threads and vlm.device.type == "cpu":
        torch.set_num_threads(model_cfg.cpu_threads)
    return vlm


def train(cfg: TrainConfig, train_samples: list[dict] | None = None, val_samples: list[dict] | None = None) -> dict:
    """Train the adapters; returns the last validation metrics (plus 'step' and 'final_dir').

    Samples are dataset dicts (see training.data); when not given they are read from cfg.data.path.
    """
    use_cuda = torch.cuda.is_available() and cfg.model.device != "cpu"
    acc = Accelerator(
        gradient_accumulation_steps=cfg.grad_accum,
        mixed_precision="bf16" if (cfg.bf16 and use_cuda) else "no",
        cpu=not use_cuda,
    )
    torch.manual_seed(cfg.seed + acc.process_index)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    out = Path(cfg.output_dir)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.yaml").write_text(cfg.to_yaml())
    model_cfg = cfg.model.model_copy(update={"device": str(acc.device)})
    vlm = init_model(cfg, model_cfg)
    vlm.trained_tasks = dict(cfg.data.task_weights)  # saved with every checkpoint: what it may be asked
    view = cfg.data.object_view
    vlm.object_view = view.model_dump() if view is not None else None  # and what it looks at
    size = (model_cfg.image_width, model_cfg.image_height)
    keep_full = cfg.data.task_weights.get("grounding_zoom", 0.0) > 0  # zoomed crops are cut from the full image
    if train_samples is None:
        if not cfg.data.path:
            raise ValueError("no training data: set data.path (a dataset directory) or pass samples")
        train_samples = load_train_samples([cfg.data.path, *cfg.data.extra_paths], cfg.data.train_split, size,
                                           cfg.data.max_train_samples, keep_full=keep_full, object_view=view)
    if val_samples is None and cfg.data.path:
        val_samples = load_samples(cfg.data.path, cfg.data.val_split, size, cfg.data.max_val_samples,
                                   object_view=view)
    val_samples = (val_samples or [])[: cfg.data.max_val_samples]
    if view is not None and not all("view_window" in s for s in train_samples + val_samples):
        raise ValueError("data.object_view is set but the samples given were not cut to their object windows: "
                         "prepare them with prepare_samples(..., object_view=cfg.data.object_view)")

    part = None
    if cfg.part_supervision > 0:
        if not any("part_grid" in s for s in train_samples):
            raise ValueError("part_supervision > 0 needs a dataset with segmentations (mask_png); this one has none")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            part = PartSupervision(vlm.model.model.visual, vlm.model.config.text_config.hidden_size).to(vlm.device)
    ds = MixedTaskDataset(train_samples, vlm.processor, cfg.data.task_weights, seed=cfg.seed,
                          n_affordance=cfg.data.n_affordance, mask_prob=cfg.data.mask_prob,
                          part_targets=part is not None, zoom_range=cfg.data.zoom_range,
                          zoom_jitter=cfg.data.zoom_jitter)  # fmt: skip
    dl = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, collate_fn=Collator(vlm.processor.pad_id),
                    num_workers=cfg.data.num_workers, generator=torch.Generator().manual_seed(cfg.seed))  # fmt: skip
    params = vlm.trainable_parameters() + (list(part.parameters()) if part is not None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    # The scheduler is stepped by us once per optimizer step (not prepared: Accelerate would step it per process).
    sched = get_cosine_schedule_with_warmup(opt, cfg.warmup_steps, cfg.max_steps)
    wrapped, opt, dl = acc.prepare(vlm.peft, opt, dl)

    step, epoch = 0, 0
    ck = latest_checkpoint(out) if cfg.resume else None
    if ck is not None:
        st = torch.load(ck / STATE_FILE, map_location="cpu", weights_only=False)
        vlm.load_adapters(ck)
        if part is not None and "part_head" in st:
            part.load_state_dict(st["part_head"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        step, epoch = int(st["step"]), int(st["epoch"])
        torch.set_rng_state(st["torch_rng"])
        if acc.is_main_process:
            print(f"resumed from {ck} at step {step}")
    vlm.mark_saved()
    predictor = PosePredictor(vlm)
    metrics_f = out / "metrics.jsonl"
    last_eval: dict = {}
    if acc.is_main_process:  # what this (part of the) run trained on, e.g. extra samples of hard categories
        _log(metrics_f, {"step": step, "kind": "data", "train_samples": len(train_samples),
                         "per_category": dict(sorted(Counter(str(s["category"]) for s in train_samples).items()))})

    def validate() -> dict:
        if not val_samples:
            return {}
        if acc.is_main_process:
            t0 = time.perf_counter()
            # Ask as the model was taught: chain of thought only if it trained on it (a direct-only model answers
            # the category turn with noise), and as many affordance points as in training (the model answers
            # that many, whatever the question lists).
            cot = cfg.data.task_weights.get("cot", 0.0) > 0
            m = evaluate(predictor, val_samples, batch_size=max(1, cfg.batch_size), chain_of_thought=cot,
                         n_affordance=cfg.data.n_affordance)
            m.update(step=step, kind="val", mode="cot" if cot else "direct", n_affordance=cfg.data.n_affordance,
                     seconds=time.perf_counter() - t0)
            _log(metrics_f, m)
            return m
        return {}

    def save(tag: str) -> Path:
        d = out / tag
        if acc.is_main_process:
            tmp = out / f".{tag}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            vlm.adapter_version = f"{tag}"
            vlm.save(tmp)
            state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step, "epoch": epoch,
                     "torch_rng": torch.get_rng_state()}  # fmt: skip
            if part is not None:
                state["part_head"] = part.state_dict()
            torch.save(state, tmp / STATE_FILE)
            shutil.rmtree(d, ignore_errors=True)
            os.replace(tmp, d)
            olds = sorted((int(p.name.split("-")[1]), p) for p in out.glob("checkpoint-*") if p.name.split("-")[1].isdigit())
            for _, p in olds[: -cfg.keep_checkpoints]:
                shutil.rmtree(p, ignore_errors=True)
        acc.wait_for_everyone()
        return d

    pbar = tqdm(total=cfg.max_steps, initial=step, desc="train", disable=not (cfg.progress and acc.is_main_process))
    wrapped.train()
    run_loss, run_n, run_part, t_start = 0.0, 0, 0.0, time.perf_counter()
    while step < cfg.max_steps:
        ds.set_epoch(epoch)
        if hasattr(dl, "set_epoch"):
            dl.set_epoch(epoch)
        for batch in dl:
            part_target = batch.pop("part_target", None)
            with acc.accumulate(wrapped):
                loss, _ = vlm.loss(batch, module=wrapped)
                part_loss = part.loss(part_target) if part is not None else None
                acc.backward(loss if part_loss is None else loss + cfg.part_supervision * part_loss)
                if acc.sync_gradients:
                    if part is not None and acc.num_processes > 1:  # the head is outside DDP: average it here
                        for p in part.parameters():
                            p.grad = acc.reduce(p.grad, reduction="mean")
                    acc.clip_grad_norm_(params, cfg.max_grad_norm)
                opt.step()
                opt.zero_grad(set_to_none=True)
            run_loss += float(loss.detach())
            run_part += float(part_loss.detach()) if part_loss is not None else 0.0
            run_n += 1
            if not acc.sync_gradients:
                continue
            sched.step()
            step += 1
            pbar.update(1)
            pbar.set_postfix(loss=f"{run_loss / max(run_n, 1):.3f}", lr=f"{sched.get_last_lr()[0]:.2e}")
            if step % cfg.log_every == 0 and acc.is_main_process:
                rec = {"step": step, "kind": "train", "loss": run_loss / max(run_n, 1), "lr": sched.get_last_lr()[0],
                       "elapsed_s": time.perf_counter() - t_start, "world_size": acc.num_processes}
                if part is not None:
                    rec["part_loss"] = run_part / max(run_n, 1)
                _log(metrics_f, rec)
                run_loss, run_n, run_part = 0.0, 0, 0.0
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
                wrapped.eval()
                last_eval = validate() or last_eval
                acc.wait_for_everyone()
                wrapped.train()
            if cfg.save_every and step % cfg.save_every == 0 and step < cfg.max_steps:
                save(f"checkpoint-{step}")
            if step >= cfg.max_steps:
                break
        epoch += 1
    pbar.close()
    wrapped.eval()
    final = save("final")
    save(f"checkpoint-{step}")
    last_eval = validate() or last_eval
    acc.wait_for_everyone()
    # DDP health check: every process must hold the same adapters after the last step. Exchanged through files
    # + a barrier rather than an all_gather: a gloo all_gather's work object is freed on gloo's thread, which
    # needs the GIL, and deadlocks against destroy_process_group at exit.
    sums = [float(v.double().sum()) + float(v.double().abs().sum()) for v in vlm.adapter_state_dict().values()]
    (out / f".adapter_checksum.{acc.process_index}").write_text(json.dumps(sums))
    acc.wait_for_everyone()
    ref = json.loads((out / ".adapter_checksum.0").read_text())
    in_sync = all(
        np.allclose(json.loads((out / f".adapter_checksum.{r}").read_text()), ref, rtol=1e-6, atol=1e-9)
        for r in range(acc.num_processes)
    )
    acc.wait_for_everyone()
    if acc.is_main_process:
        for r in range(acc.num_processes):
            (out / f".adapter_checksum.{r}").unlink(missing_ok=True)
    result = dict(last_eval)
    result.update(step=step, final_dir=str(final), world_size=acc.num_processes, ranks_in_sync=in_sync)
    if acc.is_main_process and math.isfinite(result.get("pixel_error_px_mean", float("nan"))):
        print(f"final: pixel error {result['pixel_error_px_mean']:.1f} px, parse rate {result['parse_rate']:.2f}")
    acc.end_training()
    return result
