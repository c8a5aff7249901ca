"""Training configuration (pydantic, YAML-loadable) and the three presets: tiny, small, qwen2.5-vl-3b."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from manipllm_ros.model.config import ModelConfig
from manipllm_ros.object_view import ObjectViewConfig
from manipllm_ros.prompts import TASKS


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, description="Dataset directory (parquet shards + meta.json from `manipllm sim`).")
    train_split: str = Field("train", description="Split trained on.")
    val_split: str = Field("test_seen", description="Split validated on (unseen instances of training categories).")
    extra_paths: list[str] = Field(
        default_factory=list, description="More dataset directories whose train split is added to training (e.g. "
        "extra samples of the categories validation finds hard, benchmarks/val_on_part.py); validation stays on "
        "`path`.")
    task_weights: dict[str, float] = Field(
        default_factory=lambda: {"category": 0.0, "affordance": 1.0, "pose": 1.0, "masked_pose": 1.0, "cot": 1.0},
        description="Relative frequency of each task per example (one task per example, as the reference code). "
        "Category alone is 0 as in the paper; category turns are trained inside chain-of-thought examples.",
    )
    n_affordance: int = Field(20, ge=1, description="Positives and negatives per affordance question (paper: 20).")
    mask_prob: float = Field(0.3, gt=0, lt=1, description="Chance each number of the pose is masked (MLM task).")
    max_train_samples: int | None = Field(None, description="Cap on training samples (quick runs).")
    max_val_samples: int = Field(64, description="Validation samples per evaluation (greedy decoding is slow).")
    num_workers: int = Field(0, ge=0, description="DataLoader workers.")
    zoom_range: tuple[float, float] = Field(
        (1.5, 3.0), description="grounding_zoom task: the crop's zoom is drawn from this range (model/zoom.py).")
    zoom_jitter: float = Field(
        0.1, ge=0, le=0.4, description="grounding_zoom task: std of the crop centre's offset from the part centre, "
        "as a fraction of the crop's size (the first grounding answer's error at inference).")

    object_view: ObjectViewConfig | None = Field(
        None, description="Train on each image cut to its object's window, found in the depth (object_view.py); "
        "saved with the checkpoint, so inference cuts the same window. None: the whole camera image.")

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        bad = set(self.task_weights) - set(TASKS)
        if bad or sum(self.task_weights.values()) <= 0 or any(v < 0 for v in self.task_weights.values()):
            raise ValueError(f"task_weights must be non-negative weights over {TASKS} with a positive sum")
        lo, hi = self.zoom_range
        if not 1.0 <= lo <= hi:
            raise ValueError(f"zoom_range must satisfy 1 <= low <= high, got {self.zoom_range}")
        return self


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: ModelConfig = Field(default_factory=ModelConfig, description="Base + adapters.")
    data: DataConfig = Field(default_factory=DataConfig, description="Dataset and task mix.")
    output_dir: str = Field("runs/tiny", description="Checkpoints, metrics.jsonl and final/ go here.")
    init_from: str | None = Field(
        None, description="Start from this checkpoint's weights and adapters (fresh optimizer and schedule) instead "
        "of a new model; its model settings must match `model` (a fine-tune of a shipped model).")
    seed: int = Field(0, description="Seed for data order, task choice and init.")
    max_steps: int = Field(200, ge=1, description="Optimizer steps (after gradient accumulation).")
    batch_size: int = Field(4, ge=1, description="Examples per process per micro-batch.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    lr: float = Field(1e-3, gt=0, description="Peak AdamW learning rate (LoRA usually 1e-4..1e-3).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_steps: int = Field(10, ge=0, description="Linear warm-up before the cosine decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping.")
    part_supervision: float = Field(
        0.0, ge=0, description="Weight of the dense movable-part loss on the image tokens (training/"
        "part_supervision.py; needs datasets with `mask_png`). For random-init bases, which have no pretrained "
        "vision; 0 for a pretrained checkpoint.",
    )
    bf16: bool = Field(True, description="bf16 autocast on GPU (ignored on CPU, where bf16 is slow).")
    eval_every: int = Field(100, ge=0, description="Validate every N steps (0 = only at the end).")
    save_every: int = Field(100, ge=0, description="Checkpoint every N steps (0 = only at the end).")
    keep_checkpoints: int = Field(2, ge=1, description="Older step checkpoints are deleted.")
    log_every: int = Field(10, ge=1, description="Write a metrics.jsonl line every N steps.")
    resume: bool = Field(True, description="Continue from the newest checkpoint in output_dir if there is one.")
    progress: bool = Field(True, description="tqdm progress bar on the main process.")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.model_validate(data.get("train", data))

    def to_yaml(self) -> str:
        return yaml.safe_dump({"train": self.model_dump()}, sort_keys=False)


_RANDOM_INIT_EXTRA = ["lm_head", "model\\.language_model\\.norm"]

PRESETS: dict[str, dict[str, Any]] = {
    # CPU, minutes: CI and the demo. The model is random-init and tiny; it learns the format and some geometry.
    "tiny": {
        "model": {"lora": {"v_rank": 8, "l_rank": 8, "extra_trainable": _RANDOM_INIT_EXTRA},
                  "image_width": 112, "image_height": 84},
        "data": {"n_affordance": 8, "max_val_samples": 16},
        "output_dir": "runs/tiny", "max_steps": 60, "batch_size": 4, "lr": 3e-3, "eval_every": 30,
        "save_every": 30, "warmup_steps": 5,
    },
    # CPU/GPU: a random-init model large enough to learn the simulated task.
    "small": {
        "model": {
            "tiny": {"hidden_size": 256, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 768,
                     "vision_hidden_size": 128, "vision_depth": 4, "vision_heads": 4, "vision_intermediate_size": 384,
                     "vocab_size": 1024},
            "lora": {"v_rank": 32, "l_rank": 32, "extra_trainable": _RANDOM_INIT_EXTRA + ["model\\.language_model\\.embed_tokens"]},
            "image_width": 224, "image_height": 168,
        },
        "data": {"n_affordance": 10, "max_val_samples": 64},
        "output_dir": "runs/small", "max_steps": 3000, "batch_size": 8, "grad_accum": 2, "lr": 1e-3,
        "eval_every": 500, "save_every": 500, "warmup_steps": 100,
    },
    # GPU: real Qwen2.5-VL-3B-Instruct weights from a local directory (set model.base_path).
    "qwen2.5-vl-3b": {
        "model": {"base_path": "models/Qwen2.5-VL-3B-Instruct", "lora": {"v_rank": 16, "l_rank": 16},
                  "image_width": 448, "image_height": 336, "dtype": "bfloat16", "device": "cuda"},
        "output_dir": "runs/qwen2.5-vl-3b", "max_steps": 5000, "batch_size": 4, "grad_accum": 4, "lr": 2e-4,
        "eval_every": 500, "save_every": 500, "warmup_steps": 100, "weight_decay": 0.01,
    },
}  # fmt: skip


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A named preset, with nested overrides merged in (e.g. data={"path": "data/sim"})."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return TrainConfig.model_validate(_merge(PRESETS[name], overrides))
