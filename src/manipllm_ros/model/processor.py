"""Image-only processor: a PIL Qwen2-VL image processor + a tokenizer, and the chat layout of our conversations.

Qwen's stock `Qwen2_5_VLProcessor` also wants a video processor, which needs torchvision; we never feed video,
so we pair the PIL image processor with the tokenizer ourselves. Images are resized by us to one fixed model
size (a multiple of 28, the patch x merge factor) so that the pixels the model reads and writes map to the
camera image through one `ImageFrame`. `mm_token_type_ids` (0 text, 1 image) and `image_grid_thw` are produced
here and must survive collation: without them the model silently falls back to 1-D positions for the image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from manipllm_ros.prompts import Example, ImageFrame
from manipllm_ros.model.tokenizer import IM_END, IM_START, IMAGE_PAD, VISION_END, VISION_START

PROCESSOR_FILE = "manipllm_processor.json"
IGNORE_INDEX = -100


class ProcessorError(ValueError):
    """An input image or conversation cannot be encoded (wrong shape, dtype, or empty text)."""


@dataclass
class Encoded:
    """One tokenised conversation: ids, labels (-100 except supervised answers), modality ids, image tensors."""

    input_ids: list[int]
    labels: list[int]
    mm_token_type_ids: list[int]
    pixel_values: torch.Tensor
    image_grid_thw: torch.Tensor  # (1, 3)
    part_target: torch.Tensor | None = None  # training only: per image token, training/part_supervision.py


class ManipProcessor:
    """Turns (RGB image, conversation) into model inputs; the only place that knows the token layout."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, image_width: int, image_height: int) -> None:
        if image_width % 28 or image_height % 28:
            raise ProcessorError(f"model image size {image_width}x{image_height} must be multiples of 28")
        self.tokenizer = tokenizer
        self.image_width = int(image_width)
        self.image_height = int(image_height)
        self.image_processor = Qwen2VLImageProcessorPil(do_resize=False)
        ids = tokenizer.convert_tokens_to_ids([IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD])
        if any(i is None or i == tokenizer.unk_token_id for i in ids):
            raise ProcessorError("tokenizer lacks the Qwen2.5-VL special tokens (<|im_start|>, <|image_pad|>, ...)")
        self.im_start, self.im_end, self.vision_start, self.vision_end, self.image_pad = ids
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.im_end
        self._cache: dict[str, list[int]] = {}
        merge = 2
        self.n_image_tokens = (image_width // 14) * (image_height // 14) // (merge * merge)

    # ---- persistence -------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(d)
        (d / PROCESSOR_FILE).write_text(
            json.dumps({"image_width": self.image_width, "image_height": self.image_height}, indent=2)
        )

    @classmethod
    def load(cls, directory: str | Path, image_width: int | None = None, image_height: int | None = None):
        d = Path(directory)
        meta = json.loads((d / PROCESSOR_FILE).read_text()) if (d / PROCESSOR_FILE).exists() else {}
        w = image_width or meta.get("image_width")
        h = image_height or meta.get("image_height")
        if not w or not h:
            raise ProcessorError(f"{d}: no {PROCESSOR_FILE} and no image size given")
        tok = AutoTokenizer.from_pretrained(str(d), local_files_only=True)
        return cls(tok, w, h)

    # ---- images ------------------------------------------------------------------------------------------
    def frame(self, orig_width: int, orig_height: int) -> ImageFrame:
        return ImageFrame(int(orig_width), int(orig_height), self.image_width, self.image_height)

    def encode_images(self, rgbs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """HxWx3 uint8 images -> (pixel_values, image_grid_thw) at the fixed model size."""
        pil = []
        for i, rgb in enumerate(rgbs):
            a = np.asarray(rgb)
            if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
                raise ProcessorError(f"image {i} must be an HxWx3 uint8 RGB array, got {a.shape} {a.dtype}")
            img = Image.fromarray(a)
            if img.size != (self.image_width, self.image_height):
                img = img.resize((self.image_width, self.image_height), Image.Resampling.BICUBIC)
            pil.append(img)
        out = self.image_processor(images=pil, return_tensors="pt")
        return out["pixel_values"], out["image_grid_thw"]

    # ---- text --------------------------------------------------------------------------------------------
    def text_ids(self, text: str) -> list[int]:
        if text not in self._cache:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return list(self._cache[text])

    def image_block(self) -> list[int]:
        return [self.vision_start] + [self.image_pad] * self.n_image_tokens + [self.vision_end]

    def user_turn(self, question: str, with_image: bool, first: bool) -> list[int]:
        """Tokens from the user turn up to and including the assistant header (the generation prompt)."""
        if not question.strip():
            raise ProcessorError("question is empty")
        ids = [] if first else self.text_ids("\n")
        ids += [self.im_start] + self.text_ids("user\n")
        if with_image:
            ids += self.image_block()
        ids += self.text_ids(question) + [self.im_end] + self.text_ids("\n")
        ids += [self.im_start] + self.text_ids("assistant\n")
        return ids

    def answer_ids(self, answer: str) -> list[int]:
        return self.text_ids(answer) + [self.im_end]

    def special_ids(self) -> list[int]:
        """Ids an answer must not contain (everything special except <|im_end|>, which ends an answer)."""
        ids = set(self.tokenizer.all_special_ids) | {self.im_start, self.vision_start, self.vision_end, self.image_pad}
        ids.discard(self.im_end)
        return sorted(ids)

    def mm_types(self, ids: list[int]) -> list[int]:
        return [1 if t == self.image_pad else 0 for t in ids]

    def encode_example(self, rgb: np.ndarray, example: Example, max_length: int | None = None) -> Encoded:
        """Whole conversation, labels only on supervised answer tokens (+ their <|im_end|>)."""
        ids: list[int] = []
        labels: list[int] = []
        for k, turn in enumerate(example.turns):
            q = self.user_turn(turn.question, with_image=(k == 0), first=(k == 0))
            a = self.answer_ids(turn.answer)
            ids += q + a
            labels += [IGNORE_INDEX] * len(q) + (a if turn.train else [IGNORE_INDEX] * len(a))
        if max_length is not None and len(ids) > max_length:
            raise ProcessorError(f"{example.task} example has {len(ids)} tokens > max_length {max_length}")
        pv, thw = self.encode_images([rgb])
        return Encoded(ids, labels, self.mm_types(ids), pv, thw)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def collate(batch: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; keeps mm_token_type_ids and image_grid_thw (both needed for M-RoPE positions)."""
    if not batch:
        raise ProcessorError("empty batch")
    n = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    lab = torch.full((len(batch), n), IGNORE_INDEX, dtype=torch.long)
    mm = torch.zeros((len(batch), n), dtype=torch.long)
    att = torch.zeros((len(batch), n), dtype=torch.long)
    for i, e in enumerate(batch):
        k = len(e.input_ids)
        ids[i, :k] = torch.tensor(e.input_ids)
        lab[i, :k] = torch.tensor(e.labels)
        mm[i, :k] = torch.tensor(e.mm_token_type_ids)
        att[i, :k] = 1
    out = {
        "input_ids": ids,
        "labels": lab,
        "mm_token_type_ids": mm,
        "attention_mask": att,
        "pixel_values": torch.cat([e.pixel_values for e in batch], 0),
        "image_grid_thw": torch.cat([e.image_grid_thw for e in batch], 0),
    }
    if any(e.part_target is not None for e in batch):
        if any(e.part_target is None for e in batch):
            raise ProcessorError("part targets on some examples of a batch but not on others")
        out["part_target"] = torch.cat([e.part_target for e in batch], 0)
    return out
