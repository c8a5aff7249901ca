"""Build the Qwen2.5-VL base (tiny random-init or a local checkpoint) and put the V/L adapters on it.

One LoRA adapter (peft) whose target modules cover both the vision blocks and the language layers; the paper's
V-Adapter and L-Adapter are the two halves of it, told apart by parameter name (`visual.blocks` vs
`language_model`). One adapter instead of two named peft adapters because peft runs one active adapter per
layer set at a time and we always want both active; splitting by name gives the same control (training unfreezes
V + L + projector, test-time adaptation unfreezes only V) with one forward path. Ranks are set per half with
peft's `rank_pattern`. The projector (`visual.merger`) sits inside the vision tower in Qwen2.5-VL and is trained
as a whole (no LoRA).

Adapters are saved as one safetensors file of exactly the trainable tensors (V LoRA, L LoRA, projector), so a
file can be hot-swapped into a running model by copying into the existing tensors.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerBase, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from manipllm_ros.model.config import ModelConfig
from manipllm_ros.model.processor import ManipProcessor
from manipllm_ros.model.tokenizer import (
    IM_END, IMAGE_PAD, PAD, VIDEO_PAD, VISION_END, VISION_START, build_tiny_tokenizer,
)  # fmt: skip
from manipllm_ros.model.vision_position import add_vision_position

ADAPTER_FILE = "adapters.safetensors"
ADAPTER_META = "adapters.json"
CONFIG_FILE = "manipllm_model.json"
TRAINED_TASKS_KEY = "trained_tasks"  # in CONFIG_FILE: data.task_weights of the run that wrote it
OBJECT_VIEW_KEY = "object_view"  # in CONFIG_FILE: data.object_view of the run that wrote it (object_view.py)
BASE_DIR = "base"
GROUPS = ("v_adapter", "l_adapter", "projector", "extra")
TRAIN_GROUPS = ("v_adapter", "l_adapter", "projector", "extra")


class ModelLoadError(RuntimeError):
    """A checkpoint or adapter file is missing, incomplete or does not fit the running model."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def _mrope_section(head_dim: int) -> list[int]:
    """Split head_dim/2 into (temporal, height, width) like Qwen's [16, 24, 24] for head_dim 128.

    transformers does not validate that the sections sum to head_dim/2; a wrong sum silently mis-rotates.
    """
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def tiny_base(cfg: ModelConfig) -> tuple[Qwen2_5_VLForConditionalGeneration, ManipProcessor]:
    """Random-init Qwen2.5-VL of the configured tiny shape and its offline tokenizer; deterministic per seed."""
    tok = build_tiny_tokenizer(cfg.tiny.vocab_size)
    qcfg = tiny_config(cfg, tok)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.tiny.seed)
        model = Qwen2_5_VLForConditionalGeneration(qcfg)
    return model, ManipProcessor(tok, cfg.image_width, cfg.image_height)


def tiny_config(cfg: ModelConfig, tok: PreTrainedTokenizerBase) -> Qwen2_5_VLConfig:
    """The Qwen2.5-VL config of cfg.tiny's shape around the token ids of `tok` (also used to build random models
    of a real checkpoint's shape for GPU benchmarks, benchmarks/gpu/latency_3b.py)."""
    t = cfg.tiny
    ids = {s: tok.convert_tokens_to_ids(s) for s in (PAD, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)}
    head_dim = t.hidden_size // t.num_heads
    sect = _mrope_section(head_dim)
    assert sum(sect) == head_dim // 2
    qcfg = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tok), hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
            num_hidden_layers=t.num_layers, num_attention_heads=t.num_heads, num_key_value_heads=t.num_kv_heads,
            max_position_embeddings=4096, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": sect},
            bos_token_id=ids[PAD], eos_token_id=ids[IM_END], pad_token_id=ids[PAD], tie_word_embeddings=False,
        ),
        vision_config=dict(
            depth=t.vision_depth, hidden_size=t.vision_hidden_size, intermediate_size=t.vision_intermediate_size,
            num_heads=t.vision_heads, out_hidden_size=t.hidden_size, fullatt_block_indexes=[t.vision_depth - 1],
            window_size=112, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
        ),
        image_token_id=ids[IMAGE_PAD], video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START], vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=False,
    )  # fmt: skip
    qcfg._attn_implementation = cfg.attn_implementation
    return qcfg


def _tasks_from_train_config(path: Path) -> dict[str, float] | None:
    """Task weights from a train_config.yaml shipped beside a checkpoint that predates TRAINED_TASKS_KEY."""
    if not path.is_file():
        return None
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    data = data.get("train", data)
    tasks = (data.get("data") or {}).get("task_weights")
    return {str(k): float(v) for k, v in tasks.items()} if isinstance(tasks, dict) else None


def load_base(path: str | Path, cfg: ModelConfig, dtype: torch.dtype) -> tuple[Qwen2_5_VLForConditionalGeneration, ManipProcessor]:
    """A Qwen2.5-VL checkpoint directory given by path; never touches the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = Path(path)
    if not (p / "config.json").exists():
        raise ModelLoadError(f"base model directory {p} has no config.json (give a local Qwen2.5-VL checkpoint)")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        str(p), dtype=dtype, local_files_only=True, attn_implementation=cfg.attn_implementation
    )
    from manipllm_ros.model.processor import PROCESSOR_FILE

    if (p / PROCESSOR_FILE).exists():
        proc = ManipProcessor.load(p)
    else:
        from transformers import AutoTokenizer

        proc = ManipProcessor(
            AutoTokenizer.from_pretrained(str(p), local_files_only=True), cfg.image_width, cfg.image_height
        )
    return model, proc


def lora_config(cfg: ModelConfig) -> LoraConfig:
    lc = cfg.lora
    v = r"model\.visual\.blocks\.\d+\.(" + "|".join(re.escape(s) for s in lc.v_targets) + ")"
    lang = r"model\.language_model\.layers\.\d+\.(" + "|".join(re.escape(s) for s in lc.l_targets) + ")"
    return LoraConfig(
        r=lc.l_rank,
        lora_alpha=lc.alpha_over_rank * lc.l_rank,
        lora_dropout=lc.dropout,
        target_modules=f"({v})|({lang})",
        rank_pattern={v: lc.v_rank},
        alpha_pattern={v: lc.alpha_over_rank * lc.v_rank},
        bias="none",
    )


def group_of(name: str, extra: tuple[str, ...] | list[str] = ()) -> str:
    """Which group a (peft-wrapped) parameter belongs to: v_adapter, l_adapter, projector, extra or base."""
    if "lora_" in name:
        if ".visual.blocks." in name:
            return "v_adapter"
        if ".language_model." in name:
            return "l_adapter"
    if ".visual.merger." in name:
        return "projector"
    if extra:
        module = name.removeprefix("base_model.model.").rsplit(".", 1)[0].replace(".base_layer", "")
        if any(re.fullmatch(p, module) for p in extra):
            return "extra"
    return "base"


class AdaptedVLM:
    """The Qwen2.5-VL with V/L adapters + processor: parameter groups, adapter save/load/hot swap/reset."""

    def __init__(self, cfg: ModelConfig, model: Qwen2_5_VLForConditionalGeneration, processor: ManipProcessor,
                 base_source: str | None) -> None:  # fmt: skip
        self.cfg = cfg
        self.processor = processor
        self.base_source = base_source  # None = tiny base built from cfg
        # Task weights it was fine-tuned with (TRAINED_TASKS_KEY), so a question it never learned is refused up
        # front; None = unknown (a fresh model, or a checkpoint that does not say).
        self.trained_tasks: dict[str, float] | None = None
        # The object window it was trained to look at (object_view.py), so inference cuts the same; None = the
        # whole camera image.
        self.object_view: dict | None = None
        self.vision_position = add_vision_position(model, cfg.vision_abs_pos)
        with warnings.catch_warnings():  # peft probes a deprecated transformers attribute
            warnings.simplefilter("ignore", FutureWarning)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.lora.seed)
                self.peft = get_peft_model(model, lora_config(cfg))
        self.model: Qwen2_5_VLForConditionalGeneration = self.peft.base_model.model
        self.device = next(self.model.parameters()).device
        self.set_trainable(self.train_groups())
        self.adapter_version = "init"
        self._saved_state = self.adapter_state_dict(clone=True)
        self._saved_version = self.adapter_version

    # ---- construction ------------------------------------------------------------------------------------
    @classmethod
    def build(cls, cfg: ModelConfig) -> AdaptedVLM:
        """Tiny random-init base (cfg.base_path None) or the local checkpoint at cfg.base_path, plus adapters."""
        device = resolve_device(cfg.device)
        dtype = resolve_dtype(cfg.dtype, device)
        if cfg.cpu_threads and device.type == "cpu":
            torch.set_num_threads(cfg.cpu_threads)
        if cfg.base_path:
            model, proc = load_base(cfg.base_path, cfg, dtype)
            src = cfg.base_path
        else:
            model, proc = tiny_base(cfg)
            model = model.to(dtype)
            src = None
        model.to(device)
        model.eval()
        return cls(cfg, model, proc, src)

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None) -> AdaptedVLM:
        """A checkpoint written by `save`: config + (tiny base weights or a base path) + adapters."""
        d = Path(directory)
        if not (d / CONFIG_FILE).exists():
            raise ModelLoadError(f"{d} is not a manipllm checkpoint (no {CONFIG_FILE})")
        meta = json.loads((d / CONFIG_FILE).read_text())
        cfg = ModelConfig.model_validate(meta["model"])
        if device is not None:
            cfg = cfg.model_copy(update={"device": device})
        dev = resolve_device(cfg.device)
        dtype = resolve_dtype(cfg.dtype, dev)
        if (d / BASE_DIR / "config.json").exists():
            model, proc = load_base(d / BASE_DIR, cfg, dtype)
            src = None
        elif cfg.base_path:
            model, proc = load_base(cfg.base_path, cfg, dtype)
            src = cfg.base_path
        else:
            raise ModelLoadError(f"{d}: neither an embedded base ({BASE_DIR}/) nor a base_path in the config")
        model.to(dev)
        model.eval()
        vlm = cls(cfg, model, proc, src)
        vlm.trained_tasks = meta.get(TRAINED_TASKS_KEY) or _tasks_from_train_config(d / "train_config.yaml")
        vlm.object_view = meta.get(OBJECT_VIEW_KEY)
        vlm.load_adapters(d)
        vlm.mark_saved()
        return vlm

    def resize_input(self, image_width: int, image_height: int) -> None:
        """See images at another size from now on (a fine-tune to more pixels; the answers' pixel frame follows)."""
        self.processor = ManipProcessor(self.processor.tokenizer, image_width, image_height)
        self.cfg = self.cfg.model_copy(update={"image_width": int(image_width), "image_height": int(image_height)})

    def save(self, directory: str | Path) -> None:
        """A self-contained checkpoint: config, adapters, and (for the tiny base) base weights + tokenizer."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if self.base_source is None:
            base = self.peft.get_base_model()
            # Base weights without the LoRA tensors, under the names an un-wrapped model loads.
            sd = {k: v for k, v in base.state_dict().items() if "lora_" not in k}
            sd = {k.replace(".base_layer.", "."): v.detach().contiguous().cpu() for k, v in sd.items()}
            (d / BASE_DIR).mkdir(exist_ok=True)
            base.config.save_pretrained(d / BASE_DIR)
            save_file(sd, str(d / BASE_DIR / "model.safetensors"), metadata={"format": "pt"})
            self.processor.save(d / BASE_DIR)
        meta = {"model": self.cfg.model_dump()}
        if self.trained_tasks is not None:
            meta[TRAINED_TASKS_KEY] = dict(self.trained_tasks)
        if self.object_view is not None:
            meta[OBJECT_VIEW_KEY] = dict(self.object_view)
        (d / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        self.save_adapters(d)

    # ---- parameter groups --------------------------------------------------------------------------------
    def group(self, name: str) -> str:
        return group_of(name, self.cfg.lora.extra_trainable)

    def train_groups(self) -> tuple[str, ...]:
        """Groups the training run updates: V + L adapters, the projector (unless disabled) and any extra."""
        g = ["v_adapter", "l_adapter"]
        if self.cfg.lora.train_projector:
            g.append("projector")
        if self.cfg.lora.extra_trainable:
            g.append("extra")
        return tuple(g)

    def named_group_params(self, group: str) -> list[tuple[str, torch.nn.Parameter]]:
        if group not in (*GROUPS, "base"):
            raise ValueError(f"unknown parameter group {group!r}")
        return [(n, p) for n, p in self.peft.named_parameters() if self.group(n) == group]

    def set_trainable(self, groups: tuple[str, ...] | list[str]) -> None:
        """Exactly these groups get gradients; everything else is frozen."""
        for g in groups:
            if g not in GROUPS:
                raise ValueError(f"unknown trainable group {g!r}; expected a subset of {GROUPS}")
        for n, p in self.peft.named_parameters():
            p.requires_grad_(self.group(n) in groups)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.peft.parameters() if p.requires_grad]

    # ---- adapters ----------------------------------------------------------------------------------------
    def adapter_state_dict(self, clone: bool = False) -> dict[str, torch.Tensor]:
        out = {}
        for n, p in self.peft.named_parameters():
            if self.group(n) in GROUPS:
                t = p.detach()
                out[n] = t.clone() if clone else t
        return out

    def save_adapters(self, directory: str | Path, version: str | None = None) -> str:
        """Write adapters.safetensors (+ adapters.json); returns the version string stored with them."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        version = version or self.adapter_version
        sd = {k: v.contiguous().cpu() for k, v in self.adapter_state_dict().items()}
        tmp = d / (ADAPTER_FILE + ".tmp")
        save_file(sd, str(tmp), metadata={"version": version})
        os.replace(tmp, d / ADAPTER_FILE)  # atomic: a reader never sees a half-written file
        (d / ADAPTER_META).write_text(
            json.dumps({"version": version, "saved_at": time.time(), "lora": self.cfg.lora.model_dump()}, indent=2)
        )
        return version

    def load_adapters(self, directory: str | Path) -> str:
        """Hot swap: copy the saved adapter tensors into the live model in place; returns the new version.

        All-or-nothing: every key and shape is checked before any tensor is touched.
        """
        f = Path(directory) / ADAPTER_FILE if Path(directory).is_dir() else Path(directory)
        if not f.exists():
            raise ModelLoadError(f"no adapter file at {f}")
        sd = load_file(str(f))
        live = self.adapter_state_dict()
        missing = sorted(set(live) - set(sd))
        extra = sorted(set(sd) - set(live))
        if missing or extra:
            raise ModelLoadError(
                f"adapter file {f} does not fit this model: {len(missing)} missing (e.g. {missing[:2]}), "
                f"{len(extra)} unexpected (e.g. {extra[:2]})"
            )
        for k, v in sd.items():
            if v.shape != live[k].shape:
                raise ModelLoadError(f"adapter tensor {k}: shape {tuple(v.shape)} != model {tuple(live[k].shape)}")
        with torch.no_grad():
            for k, v in sd.items():
                live[k].copy_(v.to(live[k].device, live[k].dtype))
        meta_f = f.parent / ADAPTER_META
        version = json.loads(meta_f.read_text()).get("version") if meta_f.exists() else None
        self.adapter_version = str(version or f"{f}@{f.stat().st_mtime:.0f}")
        return self.adapter_version

    def mark_saved(self) -> None:
        """Remember the current adapters as the state `reset_adapters` returns to."""
        self._saved_state = self.adapter_state_dict(clone=True)
        self._saved_version = self.adapter_version

    def reset_adapters(self) -> str:
        """Back to the last loaded/marked adapters (e.g. undo test-time adaptation)."""
        live = self.adapter_state_dict()
        with torch.no_grad():
            for k, v in self._saved_state.items():
                live[k].copy_(v)
        self.adapter_version = self._saved_version
        return self.adapter_version

    # ---- forward -----------------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor], module: torch.nn.Module | None = None) -> tuple[torch.Tensor, int]:
        """Mean cross-entropy over supervised (answer) tokens, and their count.

        `module` is what to call: the plain model by default, or its DDP/FSDP wrapper (around `self.peft`)
        during distributed training so gradients are synchronised.
        """
        b = {k: v.to(self.device) for k, v in batch.items()}
        labels = b.pop("labels")
        out = (module or self.model)(**b, use_cache=False)
        logits = out.logits[:, :-1].float()
        tgt = labels[:, 1:]
        n = int((tgt != -100).sum())
        if n == 0:
            raise ValueError("batch has no supervised answer tokens")
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100, reduction="sum"
        )
        return loss / n, n
