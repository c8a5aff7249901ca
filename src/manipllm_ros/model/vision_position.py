"""Absolute 2D position features added to the vision tower's patch embeddings (random-init bases only).

Why: Qwen2.5-VL positions image tokens with rotary embeddings only, in the vision tower (2D RoPE) and in the
language model (M-RoPE). Rotary embeddings shape attention scores, never the values, so what an image token
carries holds no absolute position. A pretrained checkpoint has learned to recover "where" from web-scale
grounding data; our random-init presets, trained on a few thousand simulated images, did not: they predict
each category's typical pixel and ignore the image (benchmarks/model_small_sim.md). Adding fixed sinusoids of
each patch's (row, column) to its embedding puts position into the values, so an attention head that picks
out the movable part reads out where it is (the CoordConv idea; Qwen3-VL adds a learned absolute embedding to
its vision tower).

Fixed, no parameters: nothing to save or hot-swap, the same config rebuilds the same model. Off (0.0) for a
pretrained checkpoint, whose blocks never saw these features.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import get_vision_position_ids

MAX_FREQUENCIES = 8


def position_features(grid_thw: torch.Tensor, merge: int, dim: int) -> torch.Tensor:
    """(num_patches, dim) sinusoids of each patch's fractional (row, column), in the processor's patch order.

    Coordinates are fractions of the image ((i + 0.5) / n), so the features do not depend on the resolution.
    Frequencies pi * 1..K with K <= 8 per axis and per sin/cos: the lowest, cos(pi x), is monotone in x, so one
    linear read-out gives the coordinate; the rest sharpen it. Columns beyond 4K stay zero.
    """
    ids = get_vision_position_ids(grid_thw, merge).to(torch.float64)  # (N, 2): row, col
    sizes = torch.cat([g[1:].to(torch.float64).repeat(int(g[0]) * int(g[1]) * int(g[2]), 1) for g in grid_thw])
    frac = (ids + 0.5) / sizes  # (N, 2) in (0, 1)
    k = min(MAX_FREQUENCIES, dim // 4)
    out = torch.zeros(len(ids), dim, dtype=torch.float64)
    if k == 0:
        return out.float()
    freqs = math.pi * torch.arange(1, k + 1, dtype=torch.float64)
    parts = []
    for axis in (0, 1):
        ang = frac[:, axis : axis + 1] * freqs
        parts += [torch.sin(ang), torch.cos(ang)]
    feats = torch.cat(parts, dim=1)
    out[:, : feats.shape[1]] = feats
    return out.float()


class VisionPositionHooks:
    """Adds `scale` x position_features to `visual.patch_embed`'s output; the grid comes from the visual call."""

    def __init__(self, visual: nn.Module, scale: float) -> None:
        self.scale = float(scale)
        self.merge = int(visual.spatial_merge_size)
        self._grid: torch.Tensor | None = None
        self._cache: dict[tuple, torch.Tensor] = {}
        self.handles = [
            visual.register_forward_pre_hook(self._remember_grid, with_kwargs=True),
            visual.patch_embed.register_forward_hook(self._add),
        ]

    def _remember_grid(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        if grid is None:
            raise RuntimeError("vision position features: the vision tower was called without grid_thw")
        self._grid = grid

    def _add(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        if self._grid is None:
            raise RuntimeError("vision position features: patch_embed ran outside the vision tower's forward")
        key = (tuple(map(tuple, self._grid.tolist())), output.shape[-1], output.device, output.dtype)
        feats = self._cache.get(key)
        if feats is None:
            feats = (self.scale * position_features(self._grid.cpu(), self.merge, output.shape[-1])).to(
                output.device, output.dtype
            )
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = feats
        if feats.shape[0] != output.shape[0]:
            raise RuntimeError(f"vision position features: {feats.shape[0]} positions for {output.shape[0]} patches")
        return output + feats

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def add_vision_position(model: nn.Module, scale: float) -> VisionPositionHooks | None:
    """Install the hooks on a Qwen2.5-VL model (before or after peft wrapping); None when scale is 0."""
    if scale == 0:
        return None
    visual = model.model.visual if hasattr(model, "model") and hasattr(model.model, "visual") else model.visual
    return VisionPositionHooks(visual, scale)
