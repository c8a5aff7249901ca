"""Model configuration (pydantic, YAML-loadable): which base, which adapters, what image size, how to decode."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class TinyBaseConfig(BaseModel):
    """Shape of the random-init Qwen2.5-VL built for tests, CI and the demo (no weights exist to download)."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(64, description="Language model width; tiny so CPU tests take seconds.")
    num_layers: int = Field(2, description="Language decoder layers.")
    num_heads: int = Field(4, description="Attention heads; head_dim = hidden_size / num_heads.")
    num_kv_heads: int = Field(2, description="Key/value heads (grouped-query attention as in Qwen2.5).")
    intermediate_size: int = Field(128, description="Language MLP width.")
    vision_hidden_size: int = Field(32, description="Vision tower width.")
    vision_depth: int = Field(2, description="Vision blocks (the V-Adapter's LoRA sits in these).")
    vision_heads: int = Field(2, description="Vision attention heads.")
    vision_intermediate_size: int = Field(64, description="Vision MLP width.")
    vocab_size: int = Field(512, description="Byte-level BPE vocabulary size (bytes + merges + specials).")
    seed: int = Field(0, description="Seed of the random init, so the same config builds the same model.")

    @model_validator(mode="after")
    def _check(self) -> TinyBaseConfig:
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("hidden_size must divide by num_heads and num_heads by num_kv_heads")
        if (self.hidden_size // self.num_heads) % 2:
            raise ValueError("head_dim must be even (M-RoPE splits head_dim/2 into 3 sections)")
        if self.vision_hidden_size % self.vision_heads:
            raise ValueError("vision_hidden_size must divide by vision_heads")
        return self


class LoraConfigModel(BaseModel):
    """The two adapters: V (LoRA on vision blocks) and L (LoRA on language layers), plus the projector."""

    model_config = ConfigDict(extra="forbid")

    v_rank: int = Field(8, ge=1, description="LoRA rank in the vision blocks (V-Adapter, also used by TTA).")
    l_rank: int = Field(8, ge=1, description="LoRA rank in the language layers (L-Adapter).")
    alpha_over_rank: float = Field(2.0, gt=0, description="LoRA alpha = this x rank (peft's common 2x).")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout; 0 keeps tests deterministic.")
    v_targets: list[str] = Field(
        default_factory=lambda: ["attn.qkv", "attn.proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
        description="Linear layers inside each visual.blocks.N that get LoRA.",
    )
    l_targets: list[str] = Field(
        default_factory=lambda: ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
        description="Linear layers inside each language_model.layers.N that get LoRA.",
    )  # fmt: skip
    seed: int = Field(0, description="Seed of the LoRA A init, so a config always builds the same adapters.")
    train_projector: bool = Field(True, description="Train the multimodal projector (visual.merger) fully.")
    extra_trainable: list[str] = Field(
        default_factory=list,
        description="Regexes of further modules trained fully and saved with the adapters (group 'extra'). "
        "Empty for a real pretrained base; the random-init tiny/small presets train `lm_head` and the final "
        "norm, because a frozen random output layer caps how confident any adapter can make the model.",
    )


class ModelConfig(BaseModel):
    """What `build_model` builds and how `PosePredictor` decodes."""

    model_config = ConfigDict(extra="forbid")

    base_path: str | None = Field(
        None,
        description="Local directory of a Qwen2.5-VL checkpoint (e.g. Qwen2.5-VL-3B-Instruct). Never downloaded; "
        "None builds the tiny random-init model from `tiny`.",
    )
    tiny: TinyBaseConfig = Field(default_factory=TinyBaseConfig, description="Shape of the tiny base.")
    lora: LoraConfigModel = Field(default_factory=LoraConfigModel, description="Adapters.")
    image_width: int = Field(112, description="Width the model sees (multiple of 28); 4:3 like the camera.")
    image_height: int = Field(84, description="Height the model sees (multiple of 28).")
    vision_abs_pos: float = Field(
        0.0, ge=0, description="Amplitude of fixed 2D sinusoidal position features added to the vision patch "
        "embeddings (model/vision_position.py). Qwen2.5-VL positions image tokens by rotary embeddings only, so a "
        "random-init base trained on little data cannot tell where a part is; 0 (stock Qwen2.5-VL) for a "
        "pretrained checkpoint.",
    )
    dtype: Literal["float32", "bfloat16", "auto"] = Field(
        "auto", description="auto = bfloat16 on CUDA, float32 on CPU (CPU bf16 matmuls are slow)."
    )
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1', ...")
    cpu_threads: int | None = Field(
        None, ge=1, description="torch intra-op threads when running on CPU (process-wide); None keeps torch's "
        "default. 1 is fastest for the tiny model, above all on a busy machine.",
    )
    attn_implementation: Literal["sdpa", "eager"] = Field("sdpa", description="Attention kernel.")
    constrain_pose: bool = Field(
        False, description="Constrain the pose turn's decoding to the answer grammar (fixes the form; the parser "
        "still rejects off-image pixels and zero-length directions). Off by default: a trained model needs no help.",
    )
    max_new_tokens_category: int = Field(16, description="Decoding budget of the category turn.")
    max_new_tokens_reasoning: int = Field(64, description="Decoding budget of the reasoning turn.")
    max_new_tokens_pose: int = Field(72, description="Decoding budget of the pose turn (answer is ~45 tokens).")

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.image_width % 28 or self.image_height % 28 or self.image_width <= 0 or self.image_height <= 0:
            raise ValueError(f"image size {self.image_width}x{self.image_height} must be positive multiples of 28")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> ModelConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.model_validate(data.get("model", data))
