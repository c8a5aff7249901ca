"""Dense part supervision of the image tokens: a training-only head that says, for every merged image token,
how much of its image block is the movable part (the simulator's segmentation).

Why: a random-init base has no pretrained vision. Trained on the four text tasks alone, its image tokens hardly
differ between where the part is and where it is not, and the model learns each category's typical pixel
instead of looking (benchmarks/model_small_sim.md, model_position_features.md). The paper's model starts from
a vision encoder pretrained on web data; in simulation we have something better for this one job, the exact
mask, so we teach the V-Adapter and the projector to mark the part in the tokens the language model reads.

The head (one linear layer on the projector's output) is not part of the model: checkpoints, the pose service
and test-time adaptation never see it. Its gradient reaches exactly what training updates anyway (V-Adapter,
projector). Samples without a segmentation (older datasets) have NaN targets and add nothing.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import get_vision_position_ids

PART_LABEL = 2  # segmentation value of the movable part (dataset_format.md)
TOKEN_PIXELS = 28  # a merged Qwen2.5-VL token covers 2x2 patches of 14 px


def part_fraction_grid(segmentation: np.ndarray, model_size: tuple[int, int]) -> np.ndarray:
    """(H/28, W/28) float32: fraction of each model-image token block covered by the movable part."""
    w, h = model_size
    if w % TOKEN_PIXELS or h % TOKEN_PIXELS:
        raise ValueError(f"model image size {w}x{h} must be multiples of {TOKEN_PIXELS}")
    seg = np.asarray(segmentation)
    if seg.ndim != 2:
        raise ValueError(f"segmentation must be HxW, got shape {seg.shape}")
    part = Image.fromarray(((seg == PART_LABEL) * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BOX)
    frac = np.asarray(part, np.float32) / 255.0
    gh, gw = h // TOKEN_PIXELS, w // TOKEN_PIXELS
    return frac.reshape(gh, TOKEN_PIXELS, gw, TOKEN_PIXELS).mean(axis=(1, 3)).astype(np.float32)


def part_centre(segmentation: np.ndarray) -> tuple[float, float] | None:
    """(u, v) centroid of the movable part's pixels, None when the part is not in view."""
    vs, us = np.nonzero(np.asarray(segmentation) == PART_LABEL)
    return (float(us.mean()), float(vs.mean())) if len(us) else None


def token_targets(fraction_grid: np.ndarray | None, grid_thw: torch.Tensor, merge: int = 2) -> torch.Tensor:
    """Targets in the vision tower's output order for one image (NaN everywhere without a segmentation).

    The order is taken from the patch positions the model itself uses (get_vision_position_ids), not assumed.
    """
    ids = get_vision_position_ids(grid_thw, merge)  # (patches, 2): row, col
    rows, cols = ids[::merge * merge, 0] // merge, ids[::merge * merge, 1] // merge
    if fraction_grid is None:
        return torch.full((len(rows),), float("nan"))
    g = torch.as_tensor(fraction_grid)
    if g.shape != (int(grid_thw[0, 1]) // merge, int(grid_thw[0, 2]) // merge):
        raise ValueError(f"part grid {tuple(g.shape)} does not match the image token grid {grid_thw.tolist()}")
    return g[rows, cols].float()


class PartSupervision(nn.Module):
    """Hooks the vision tower's merged output and scores it against the part targets (BCE on soft targets)."""

    def __init__(self, visual: nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.head = nn.Linear(hidden_size, 1)
        self._tokens: torch.Tensor | None = None
        self._handle = visual.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, args: tuple, output) -> None:
        self._tokens = getattr(output, "pooler_output", output)

    def take_tokens(self) -> torch.Tensor:
        """The merged image tokens of the vision tower's last forward; each forward's tokens are taken once."""
        if self._tokens is None:
            raise RuntimeError("part supervision: the vision tower has not run since its tokens were last taken")
        tokens, self._tokens = self._tokens, None
        return tokens

    def loss(self, targets: torch.Tensor) -> torch.Tensor:
        """Mean BCE over tokens with a target; call right after the model's forward on the same batch."""
        tokens = self.take_tokens()
        if tokens.shape[0] != targets.shape[0]:
            raise RuntimeError(f"part supervision: {tokens.shape[0]} image tokens for {targets.shape[0]} targets")
        t = targets.to(tokens.device)
        keep = ~torch.isnan(t)
        if not bool(keep.any()):
            return tokens.sum() * 0.0  # keeps the graph (and DDP) uniform when a batch has no masks
        logits = self.head(tokens[keep].float()).squeeze(-1)
        return nn.functional.binary_cross_entropy_with_logits(logits, t[keep])

    def remove(self) -> None:
        self._handle.remove()
