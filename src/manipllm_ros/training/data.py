"""Mixed-task training data: each example is one of the paper's tasks, drawn at random per sample and epoch.

Works on the dataset's sample dicts (fields of `manipllm_ros.sim.dataset.iter_samples`), not on the file format.
Images are resized to the model size once at load time, so 10^4 samples fit in memory; pixel coordinates stay
in original-image pixels (`width`/`height` of the sample) and the prompts module converts them.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from manipllm_ros import prompts as P
from manipllm_ros.model.processor import Encoded, ManipProcessor, collate
from manipllm_ros.model.zoom import Window, crop, training_window
from manipllm_ros.object_view import ObjectViewConfig, ObjectViewError, object_window
from manipllm_ros.training.part_supervision import part_centre, part_fraction_grid, token_targets

REQUIRED = ("rgb", "width", "height", "category", "instruction", "contact_uv", "up_cam", "forward_cam")


class DatasetError(ValueError):
    """The dataset is missing, empty, or a sample lacks a required field."""


def _resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if rgb.shape[1] == size[0] and rgb.shape[0] == size[1]:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC))


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def full_image(sample: Mapping[str, Any]) -> np.ndarray:
    """The sample's full-size image (kept by prepare_samples(keep_full=True) as PNG bytes)."""
    data = sample.get("rgb_full_png")
    if data is None:
        raise DatasetError(f"sample {sample.get('sample_id')!r} kept no full-size image: prepare it with "
                           "keep_full=True (the grounding_zoom task crops it)")
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def intrinsics(sample: Mapping[str, Any]) -> np.ndarray:
    return np.array([[sample["fx"], 0.0, sample["cx"]], [0.0, sample["fy"], sample["cy"]], [0.0, 0.0, 1.0]])


def view_sample(s: Mapping[str, Any], win: Window) -> dict:
    """The sample as seen through `win`: image, depth and mask cropped, every pixel label moved into the crop
    (affordance points outside it dropped), the principal point shifted; `view_window` records where."""
    d = dict(s)
    for k in ("rgb", "depth", "segmentation"):
        if s.get(k) is not None:
            d[k] = crop(s[k], win)
    for k in [k for k in d if k.endswith("_png")]:
        del d[k]  # the encoded full-size images no longer match
    d["width"], d["height"] = win.width, win.height
    d["cx"], d["cy"] = float(s["cx"]) - win.x0, float(s["cy"]) - win.y0
    d["contact_uv"] = list(win.to_crop(*s["contact_uv"]))
    for k in ("aff_pos_uv", "aff_neg_uv"):
        if s.get(k) is not None:
            d[k] = [list(win.to_crop(*p)) for p in s[k] if win.contains(*p)]
    d["view_window"] = [win.x0, win.y0, win.width, win.height]
    return d


def object_viewed(samples: Iterable[Mapping[str, Any]], cfg: ObjectViewConfig,
                  skipped: list[str] | None = None) -> Iterable[dict]:
    """Each sample cut to its object's window (object_view.py), found in its depth as at inference. A sample
    whose depth shows no object, or whose contact lies outside the window, is skipped (named in `skipped`):
    the model never sees it at inference either (there the request fails)."""
    for s in samples:
        sid = str(s.get("sample_id", "?"))
        if s.get("depth") is None or "fx" not in s:
            raise DatasetError(f"sample {sid!r} has no depth or intrinsics: object_view needs both")
        try:
            win = object_window(s["depth"], intrinsics(s), cfg)
        except ObjectViewError as exc:
            if skipped is not None:
                skipped.append(f"{sid}: {exc}")
            continue
        if not win.contains(*s["contact_uv"]):
            if skipped is not None:
                skipped.append(f"{sid}: contact {tuple(s['contact_uv'])} outside the object window {win}")
            continue
        yield view_sample(s, win)


def prepare_samples(samples: Iterable[Mapping[str, Any]], model_size: tuple[int, int], limit: int | None = None,
                    keep_full: bool = False, object_view: ObjectViewConfig | None = None) -> list[dict]:
    """Keep what training needs, with the image already at model size; validates the required fields.

    The encoded PNGs and the full-size depth and segmentation are dropped (10^4 samples stay in memory); a
    segmentation becomes `part_grid`, the movable part's share of each image token (part supervision).
    `keep_full` also keeps the full-size image as PNG bytes (`rgb_full_png`), for the grounding_zoom task.
    `object_view` first cuts every sample to its object's window (object_viewed).
    """
    out = []
    if object_view is not None:
        samples = object_viewed(samples, object_view)
    for s in samples:
        missing = [k for k in REQUIRED if k not in s]
        if missing:
            raise DatasetError(f"sample {s.get('sample_id', len(out))!r} lacks fields {missing}")
        d = {k: v for k, v in s.items() if k not in ("rgb", "depth", "segmentation") and not k.endswith("_png")}
        rgb = np.asarray(s["rgb"], dtype=np.uint8)
        if keep_full:
            d["rgb_full_png"] = s.get("rgb_png") or _png(rgb)
        d["rgb"] = _resize(rgb, model_size)
        seg = s.get("segmentation")
        if seg is not None:
            d["part_grid"] = part_fraction_grid(seg, model_size)
            centre = part_centre(seg)
            if centre is not None:
                d["part_centre_uv"] = list(centre)
        out.append(d)
        if limit is not None and len(out) >= limit:
            break
    return out


def load_samples(path: str, split: str | None, model_size: tuple[int, int], limit: int | None = None,
                 keep_full: bool = False, object_view: ObjectViewConfig | None = None) -> list[dict]:
    """Read a split of the simulated dataset through its reader."""
    try:
        from manipllm_ros.sim.dataset import iter_samples
    except ImportError as e:  # the reader ships with the simulator package
        raise DatasetError(f"dataset reader manipllm_ros.sim.dataset is not available: {e}") from e
    samples = prepare_samples(iter_samples(path, split=split), model_size, limit, keep_full=keep_full,
                              object_view=object_view)
    if not samples:
        raise DatasetError(f"dataset {path!r} has no samples in split {split!r}")
    return samples


def load_train_samples(paths: Sequence[str], split: str, model_size: tuple[int, int], limit: int | None = None,
                       keep_full: bool = False, object_view: ObjectViewConfig | None = None) -> list[dict]:
    """The `split` of every dataset in `paths`, in order, `limit` samples at most over all of them; a dataset
    without samples in the split is an error (a typo in a path must not silently train on less)."""
    out: list[dict] = []
    for path in paths:
        left = None if limit is None else limit - len(out)
        if left is not None and left <= 0:
            break
        out += load_samples(path, split, model_size, left, keep_full=keep_full, object_view=object_view)
    return out


class MixedTaskDataset(Dataset):
    """Sample i of epoch e -> one task (weights as configured) -> encoded conversation.

    A task a sample cannot serve (no affordance points, no reasoning text) falls back to the pose task, so
    every sample always contributes a supervised pose.
    """

    def __init__(
        self,
        samples: list[dict],
        processor: ManipProcessor,
        task_weights: Mapping[str, float],
        seed: int = 0,
        n_affordance: int = 20,
        mask_prob: float = 0.3,
        part_targets: bool = False,
        zoom_range: tuple[float, float] = (1.5, 3.0),
        zoom_jitter: float = 0.1,
    ) -> None:
        if not samples:
            raise DatasetError("no training samples")
        self.samples = samples
        self.processor = processor
        self.tasks = [t for t, w in task_weights.items() if w > 0]
        self.weights = [task_weights[t] for t in self.tasks]
        self.seed = seed
        self.epoch = 0
        self.n_affordance = n_affordance
        self.mask_prob = mask_prob
        self.part_targets = part_targets
        self.zoom_range = zoom_range
        self.zoom_jitter = zoom_jitter

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def example(self, i: int) -> P.Example:
        return self.example_and_image(i)[0]

    def example_and_image(self, i: int) -> tuple[P.Example, np.ndarray]:
        """The example drawn for sample i this epoch and the image it is about (a crop for grounding_zoom)."""
        s = self.samples[i]
        rng = random.Random(hash((self.seed, self.epoch, i)) & 0xFFFFFFFF)
        task = rng.choices(self.tasks, weights=self.weights)[0]
        size = (self.processor.image_width, self.processor.image_height)
        if task == "grounding_zoom":
            if s.get("part_centre_uv") is not None:
                return self._zoomed_grounding(s, rng, size)
            task = "pose"  # no part mask to crop around
        try:
            return P.make_example(s, task, rng, model_size=size, n_affordance=self.n_affordance,
                                  mask_prob=self.mask_prob), s["rgb"]  # fmt: skip
        except ValueError:
            if task == "pose":
                raise
            return P.make_example(s, "pose", rng, model_size=size), s["rgb"]

    def _zoomed_grounding(self, s: dict, rng: random.Random, size: tuple[int, int]) -> tuple[P.Example, np.ndarray]:
        full = full_image(s)
        h, w = full.shape[:2]
        if (w, h) != (int(s["width"]), int(s["height"])):
            raise DatasetError(f"sample {s.get('sample_id')!r}: full image is {w}x{h}, labels are for "
                               f"{s['width']}x{s['height']}")
        win = training_window(tuple(s["part_centre_uv"]), w, h, self.zoom_range, self.zoom_jitter, rng)
        view = {**s, "width": win.width, "height": win.height, "part_centre_uv": list(win.to_crop(*s["part_centre_uv"]))}
        ex = P.grounding_example(view, model_size=size)
        return P.Example("grounding_zoom", ex.turns), crop(full, win)

    def __getitem__(self, i: int) -> Encoded:
        ex, rgb = self.example_and_image(i)
        enc = self.processor.encode_example(rgb, ex)
        if self.part_targets:
            grid = self.samples[i].get("part_grid") if ex.task != "grounding_zoom" else None
            enc.part_target = token_targets(grid, enc.image_grid_thw)
        return enc


class Collator:
    """Picklable collate_fn (for DataLoader workers)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[Encoded]):
        return collate(batch, self.pad_id)
