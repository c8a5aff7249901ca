"""Every text the model reads or writes: the paper's four training formats, the three chain-of-thought turns,
direction binning, and a strict parser for the answers.

Pixel convention (used everywhere in manipllm): a pixel is written (x, y) = (u, v) = (column, row), origin at the
top-left corner, in pixels of the ORIGINAL camera image (e.g. 640x480). The model may see a resized image; the
text it reads and writes then uses pixels of that resized image, and `ImageFrame` converts between the two, so
callers only ever handle original-image pixels.

Directions (gripper up and forward, unit vectors in the OpenCV camera frame) are written as three integers in
[-50, 50]: component v -> round(50 v), i.e. bins of width 0.02 over [-1, 1]. The reference code floors
(int(v // 0.02)), which biases every component by half a bin and maps 1.0 to 49 through float error; rounding
keeps the error symmetric (<= 0.01 per component). Decoding is b / 50, re-normalised.

The parser never guesses: a malformed or partial answer, a pixel outside the image, or a zero-length or
degenerate direction raises a `PromptParseError` subclass whose message says what was wrong. The service
reports `PoseParseError` text verbatim ("could not parse pose from model output: ...").
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

BIN_HALF_RANGE = 50  # directions are written as integers in [-50, 50]
MASK_TOKEN = "[MASK]"
MIN_DIRECTION_LENGTH = 0.5  # binned directions shorter than this (of 1) are rejected as zero-length

CATEGORY_QUESTION = "What is the category of the object in the image?"
AFFORDANCE_QUESTION = (
    "Determine if operating on each following point can effectively manipulate the object within the image: "
)
AFFORDANCE_QUESTION_SINGLE = (
    "Determine if operating on the following point can effectively manipulate the object within the image: "
)
POSE_QUESTION = "Specify the contact point and gripper direction of manipulating the object."
MASKED_POSE_QUESTION = "Fill in the masked values of the contact point and gripper direction: "
GROUNDING_QUESTION = "Point to the centre of the part that moves."
POSE_ANSWER_TEMPLATE = (
    "The contact point is ({x}, {y}), the gripper up direction is ({ux}, {uy}, {uz}), "
    "the gripper forward direction is ({fx}, {fy}, {fz})"
)

_INT = r"(-?\d+)"
_SLOT = r"(-?\d+|\[MASK\])"
_SEP = r"\s*,\s*"
POSE_ANSWER_RE = re.compile(
    r"The contact point is \(\s*" + _INT + _SEP + _INT + r"\s*\)\s*,\s*"
    r"the gripper up direction is \(\s*" + _INT + _SEP + _INT + _SEP + _INT + r"\s*\)\s*,\s*"
    r"the gripper forward direction is \(\s*" + _INT + _SEP + _INT + _SEP + _INT + r"\s*\)"
)
_POINT_RE = re.compile(r"\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)")
GROUNDING_ANSWER_RE = re.compile(r"The (.{1,40}?) is at \(\s*" + _INT + _SEP + _INT + r"\s*\)")


class PromptParseError(ValueError):
    """A model answer does not follow the expected format; the message names what is wrong."""

    prefix = "could not parse model output: "

    def __init__(self, reason: str, text: str = "") -> None:
        self.reason = reason
        self.text = text
        shown = text if len(text) <= 200 else text[:200] + "..."
        super().__init__(f"{self.prefix}{reason} (output was {shown!r})")


class PoseParseError(PromptParseError):
    """The pose answer is malformed, partial, off-image or has a zero-length/degenerate direction."""

    prefix = "could not parse pose from model output: "


class AffordanceParseError(PromptParseError):
    """The yes/no affordance answer is malformed or has the wrong number of entries."""

    prefix = "could not parse affordance from model output: "


class CategoryParseError(PromptParseError):
    """The category answer is empty."""

    prefix = "could not parse category from model output: "


# --------------------------------------------------------------------------------------------------------------
# Coordinates and binning


@dataclass(frozen=True)
class ImageFrame:
    """Maps original-camera pixels to the pixels of the image the model sees, and back.

    The model's text uses integer pixels of the resized image; the rest of manipllm uses original pixels.
    """

    orig_width: int
    orig_height: int
    model_width: int
    model_height: int

    @classmethod
    def identity(cls, width: int, height: int) -> ImageFrame:
        return cls(width, height, width, height)

    def to_model(self, u: float, v: float) -> tuple[int, int]:
        """Original pixel -> integer model pixel (clamped inside the model image)."""
        x = int(math.floor((u + 0.5) * self.model_width / self.orig_width))
        y = int(math.floor((v + 0.5) * self.model_height / self.orig_height))
        return min(max(x, 0), self.model_width - 1), min(max(y, 0), self.model_height - 1)

    def to_orig(self, x: int, y: int) -> tuple[float, float]:
        """Integer model pixel -> original pixel at the centre of the model pixel's footprint."""
        return (
            (x + 0.5) * self.orig_width / self.model_width - 0.5,
            (y + 0.5) * self.orig_height / self.model_height - 0.5,
        )


def bin_direction(vec: Sequence[float]) -> tuple[int, int, int]:
    """Unit vector -> three integers in [-50, 50] (round(50 v))."""
    arr = np.asarray(vec, dtype=float).reshape(3)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"direction {arr.tolist()} is not finite")
    n = np.linalg.norm(arr)
    if n < 1e-9:
        raise ValueError("direction has zero length")
    arr = arr / n
    b = np.clip(np.rint(arr * BIN_HALF_RANGE), -BIN_HALF_RANGE, BIN_HALF_RANGE).astype(int)
    return int(b[0]), int(b[1]), int(b[2])


def unbin_direction(bins: Sequence[int]) -> np.ndarray:
    """Three bin integers -> unit vector (b / 50, re-normalised). Raises ValueError on zero length."""
    b = np.asarray(bins, dtype=float).reshape(3)
    if np.any(np.abs(b) > BIN_HALF_RANGE):
        raise ValueError(f"direction bins {b.astype(int).tolist()} outside [-50, 50]")
    raw = b / BIN_HALF_RANGE
    # A binned unit vector has length 1 +- 0.02; far shorter means the model wrote no real direction.
    if np.linalg.norm(raw) < MIN_DIRECTION_LENGTH:
        raise ValueError(f"direction bins {b.astype(int).tolist()} have (near) zero length")
    return raw / np.linalg.norm(raw)


# --------------------------------------------------------------------------------------------------------------
# Conversation structures


@dataclass
class Turn:
    """One question (user) and its answer (assistant); `train` says whether the answer is supervised."""

    question: str
    answer: str
    train: bool = True


@dataclass
class Example:
    """A training/inference conversation about one image: the image is attached to the first turn."""

    task: str  # "category" | "affordance" | "pose" | "masked_pose" | "cot"
    turns: list[Turn] = field(default_factory=list)


@dataclass(frozen=True)
class PoseAnswer:
    """A parsed pose: pixel in ORIGINAL image coordinates, directions as unit vectors (camera frame)."""

    u: float
    v: float
    up: np.ndarray
    forward: np.ndarray
    model_xy: tuple[int, int]
    up_bins: tuple[int, int, int]
    forward_bins: tuple[int, int, int]


def format_point(x: int, y: int) -> str:
    return f"({int(x)}, {int(y)})"


def format_pose_answer(x: int, y: int, up_bins: Sequence[int], forward_bins: Sequence[int]) -> str:
    """The pose answer text, from model-image pixel and bin integers."""
    return POSE_ANSWER_TEMPLATE.format(
        x=int(x), y=int(y), ux=up_bins[0], uy=up_bins[1], uz=up_bins[2],
        fx=forward_bins[0], fy=forward_bins[1], fz=forward_bins[2],
    )  # fmt: skip


def pose_answer(frame: ImageFrame, uv: Sequence[float], up: Sequence[float], forward: Sequence[float]) -> str:
    """The pose answer for an original-image pixel and camera-frame directions."""
    x, y = frame.to_model(float(uv[0]), float(uv[1]))
    return format_pose_answer(x, y, bin_direction(up), bin_direction(forward))


def _instruction_sentence(instruction: str) -> str:
    s = instruction.strip()
    if not s:
        raise ValueError("instruction is empty")
    s = s[0].upper() + s[1:]
    return s if s.endswith((".", "!", "?")) else s + "."


def pose_question(instruction: str) -> str:
    return f"{_instruction_sentence(instruction)} {POSE_QUESTION}"


def category_answer(category: str) -> str:
    c = category.strip().replace("_", " ")
    if not c:
        raise ValueError("category is empty")
    return c


def reasoning_question(instruction: str, category: str) -> str:
    """Turn 2 of the chain of thought: "Think about where you can <open the door> of the <category> ..."."""
    action = instruction.strip().rstrip(".!?")
    action = re.split(r"\s+of\s+(?:the|a|an)\s+", action, maxsplit=1)[0]
    action = action[0].lower() + action[1:] if action else action
    return f"Think about where you can {action} of the {category_answer(category)} in order to manipulate it."


def affordance_question(frame: ImageFrame, points_uv: Sequence[Sequence[float]]) -> str:
    if len(points_uv) == 0:
        raise ValueError("affordance question needs at least one point")
    pts = [format_point(*frame.to_model(float(p[0]), float(p[1]))) for p in points_uv]
    if len(pts) == 1:
        return AFFORDANCE_QUESTION_SINGLE + pts[0]
    return AFFORDANCE_QUESTION + " ".join(pts)


def affordance_answer(labels: Sequence[bool]) -> str:
    return ", ".join("yes" if b else "no" for b in labels)


# --------------------------------------------------------------------------------------------------------------
# The four training formats + chain of thought, from a dataset sample dict


def _frame_for(sample: Mapping, model_size: tuple[int, int] | None) -> ImageFrame:
    w, h = int(sample["width"]), int(sample["height"])
    if model_size is None:
        return ImageFrame.identity(w, h)
    return ImageFrame(w, h, int(model_size[0]), int(model_size[1]))


def category_example(sample: Mapping) -> Example:
    return Example("category", [Turn(CATEGORY_QUESTION, category_answer(sample["category"]))])


def affordance_example(
    sample: Mapping, rng: random.Random, n: int = 20, model_size: tuple[int, int] | None = None
) -> Example:
    """Up to n positives (affordance > 0.8) and n negatives (< 0.2), shuffled; raises if neither exists."""
    frame = _frame_for(sample, model_size)
    pos = list(sample.get("aff_pos_uv") or [])
    neg = list(sample.get("aff_neg_uv") or [])
    pos = rng.sample(pos, min(n, len(pos)))
    neg = rng.sample(neg, min(n, len(neg)))
    items = [(p, True) for p in pos] + [(p, False) for p in neg]
    if not items:
        raise ValueError(f"sample {sample.get('sample_id')!r} has no affordance points")
    rng.shuffle(items)
    q = affordance_question(frame, [p for p, _ in items])
    return Example("affordance", [Turn(q, affordance_answer([lab for _, lab in items]))])


def pose_example(sample: Mapping, model_size: tuple[int, int] | None = None) -> Example:
    frame = _frame_for(sample, model_size)
    ans = pose_answer(frame, sample["contact_uv"], sample["up_cam"], sample["forward_cam"])
    return Example("pose", [Turn(pose_question(sample["instruction"]), ans)])


def masked_pose_example(
    sample: Mapping, rng: random.Random, mask_prob: float = 0.3, model_size: tuple[int, int] | None = None
) -> Example:
    """The pose answer with some of its 8 numbers replaced by [MASK] (at least one) as the prompt."""
    frame = _frame_for(sample, model_size)
    full = pose_answer(frame, sample["contact_uv"], sample["up_cam"], sample["forward_cam"])
    nums = list(re.finditer(r"-?\d+", full))
    mask = [rng.random() < mask_prob for _ in nums]
    if not any(mask):
        mask[rng.randrange(len(nums))] = True
    out, last = [], 0
    for m, hide in zip(nums, mask):
        out.append(full[last : m.start()])
        out.append(MASK_TOKEN if hide else m.group())
        last = m.end()
    out.append(full[last:])
    q = f"{_instruction_sentence(sample['instruction'])} {MASKED_POSE_QUESTION}{''.join(out)}"
    return Example("masked_pose", [Turn(q, full)])


def cot_turns(
    instruction: str, category: str | None = None, reasoning: str | None = None
) -> list[tuple[str, str | None]]:
    """The three chain-of-thought questions; later questions need earlier answers (None until known)."""
    q2 = reasoning_question(instruction, category) if category else None
    return [(CATEGORY_QUESTION, category), (q2, reasoning), (pose_question(instruction), None)]


def cot_example(sample: Mapping, model_size: tuple[int, int] | None = None) -> Example:
    """Category -> reasoning -> pose, all answers supervised (the paper trains category turns in CoT data)."""
    frame = _frame_for(sample, model_size)
    cat = category_answer(sample["category"])
    reasoning = str(sample.get("reasoning") or "").strip()
    if not reasoning:
        raise ValueError(f"sample {sample.get('sample_id')!r} has no reasoning text for chain of thought")
    pose = pose_answer(frame, sample["contact_uv"], sample["up_cam"], sample["forward_cam"])
    return Example(
        "cot",
        [
            Turn(CATEGORY_QUESTION, cat),
            Turn(reasoning_question(sample["instruction"], cat), reasoning),
            Turn(pose_question(sample["instruction"]), pose),
        ],
    )


def grounding_question(instruction: str) -> str:
    return f"{_instruction_sentence(instruction)} {GROUNDING_QUESTION}"


def grounding_example(sample: Mapping, model_size: tuple[int, int] | None = None) -> Example:
    """Where the movable part is: the centroid of its mask (`part_centre_uv`, set where the dataset has masks).

    Not one of the paper's four tasks: an optional extra (weight 0 by default) for random-init bases, whose
    exact, noise-free answer asks the model to find the part in the image (benchmarks/model_part_supervision.md).
    """
    centre = sample.get("part_centre_uv")
    if centre is None:
        raise ValueError(f"sample {sample.get('sample_id')!r} has no part mask for grounding")
    frame = _frame_for(sample, model_size)
    x, y = frame.to_model(*centre)
    part = str(sample.get("part") or "part").strip() or "part"
    return Example("grounding", [Turn(grounding_question(sample["instruction"]), f"The {part} is at {format_point(x, y)}")])


# grounding_zoom: the grounding question on a zoomed-in crop around the part (model/zoom.py); its examples need
# the image, so training.data cuts them, not make_example.
TASKS = ("category", "affordance", "pose", "masked_pose", "cot", "grounding", "grounding_zoom")


def make_example(
    sample: Mapping,
    task: str,
    rng: random.Random,
    model_size: tuple[int, int] | None = None,
    n_affordance: int = 20,
    mask_prob: float = 0.3,
) -> Example:
    if task == "category":
        return category_example(sample)
    if task == "affordance":
        return affordance_example(sample, rng, n=n_affordance, model_size=model_size)
    if task == "pose":
        return pose_example(sample, model_size=model_size)
    if task == "masked_pose":
        return masked_pose_example(sample, rng, mask_prob=mask_prob, model_size=model_size)
    if task == "cot":
        return cot_example(sample, model_size=model_size)
    if task == "grounding":
        return grounding_example(sample, model_size=model_size)
    if task == "grounding_zoom":
        raise ValueError("grounding_zoom examples are cut from the image by training.data.MixedTaskDataset")
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


# --------------------------------------------------------------------------------------------------------------
# Strict parsers


def parse_pose(text: str, frame: ImageFrame, min_angle_deg: float = 1.0) -> PoseAnswer:
    """Parse a pose answer; returns original-image pixel and unit directions, or raises PoseParseError."""
    if not isinstance(text, str) or not text.strip():
        raise PoseParseError("empty answer", text if isinstance(text, str) else repr(text))
    if MASK_TOKEN in text:
        raise PoseParseError("answer still contains a [MASK] value", text)
    matches = list(POSE_ANSWER_RE.finditer(text))
    if not matches:
        raise PoseParseError(
            "expected 'The contact point is (x, y), the gripper up direction is (a, b, c), "
            "the gripper forward direction is (a, b, c)'",
            text,
        )
    if len(matches) > 1:
        raise PoseParseError(f"found {len(matches)} pose answers, expected exactly one", text)
    g = [int(s) for s in matches[0].groups()]
    x, y = g[0], g[1]
    if not (0 <= x < frame.model_width and 0 <= y < frame.model_height):
        raise PoseParseError(
            f"contact pixel ({x}, {y}) is outside the {frame.model_width}x{frame.model_height} image", text
        )
    up_b, fw_b = tuple(g[2:5]), tuple(g[5:8])
    try:
        up = unbin_direction(up_b)
    except ValueError as e:
        raise PoseParseError(f"up direction: {e}", text) from None
    try:
        fw = unbin_direction(fw_b)
    except ValueError as e:
        raise PoseParseError(f"forward direction: {e}", text) from None
    angle = math.degrees(math.asin(min(1.0, float(np.linalg.norm(np.cross(up, fw))))))
    if angle < min_angle_deg:
        raise PoseParseError("up and forward directions are parallel", text)
    u, v = frame.to_orig(x, y)
    return PoseAnswer(u=u, v=v, up=up, forward=fw, model_xy=(x, y), up_bins=up_b, forward_bins=fw_b)  # type: ignore[arg-type]


def parse_affordance(text: str, n_points: int) -> list[bool]:
    """Parse "yes, no, ..." with exactly n_points entries."""
    if not isinstance(text, str) or not text.strip():
        raise AffordanceParseError("empty answer", text if isinstance(text, str) else repr(text))
    words = [w.strip().lower().rstrip(".") for w in text.strip().split(",")]
    if any(w not in ("yes", "no") for w in words):
        raise AffordanceParseError("every entry must be 'yes' or 'no'", text)
    if len(words) != n_points:
        raise AffordanceParseError(f"expected {n_points} answers, got {len(words)}", text)
    return [w == "yes" for w in words]


def parse_category(text: str) -> str:
    if not isinstance(text, str):
        raise CategoryParseError("answer is not text", repr(text))
    c = text.strip().rstrip(".").strip()
    if not c or len(c) > 64 or "\n" in c:
        raise CategoryParseError("expected a short category name", text)
    return c


def parse_grounding(text: str, frame: ImageFrame) -> tuple[str, tuple[float, float]]:
    """(part noun, original-image pixel) of a grounding answer; off-image points are errors."""
    m = GROUNDING_ANSWER_RE.search(text) if isinstance(text, str) else None
    if m is None:
        raise PromptParseError("expected 'The <part> is at (x, y)'", repr(text))
    x, y = int(m.group(2)), int(m.group(3))
    if not (0 <= x < frame.model_width and 0 <= y < frame.model_height):
        raise PromptParseError(f"point ({x}, {y}) is outside the {frame.model_width}x{frame.model_height} image", text)
    return m.group(1), frame.to_orig(x, y)


def parse_points(question: str) -> list[tuple[int, int]]:
    """The (x, y) points of an affordance question, in model pixels (used for round-trip checks)."""
    return [(int(a), int(b)) for a, b in _POINT_RE.findall(question)]
