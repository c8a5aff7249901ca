"""An offline byte-level BPE tokenizer for the tiny test/demo model (built with `tokenizers`, never downloaded).

It has the Qwen2.5-VL special tokens, so the same conversation code serves the tiny model and a real
Qwen2.5-VL checkpoint's tokenizer. It is trained on text generated from our own prompt templates, which keeps
it small (a few hundred merges) while still covering every word the prompts use. Digits are split one by one,
as in Qwen's tokenizer, so numbers are spelled digit by digit by both.
"""

from __future__ import annotations

import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from manipllm_ros import prompts as P

PAD = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD]

CATEGORIES = [
    "microwave", "refrigerator", "storage furniture", "safe", "dishwasher", "oven", "washing machine", "door",
    "table", "box", "bucket", "kettle", "trash can", "toilet", "laptop", "phone", "window", "faucet", "pot",
    "switch", "cabinet", "drawer", "lid", "suitcase",
]  # fmt: skip
ACTIONS = ["open the door", "open the drawer", "open the lid", "pull the drawer", "lift the lid", "close the door"]
WORDS = (
    "the a an of on in to is it and so pull push handle hinge left right top bottom side door drawer lid part "
    "rotates slides about axis away from far near grasp where can you think manipulate object image point "
    "contact gripper up forward direction yes no category what determine if operating each following "
    "effectively within specify fill masked values opens revolute prismatic joint surface normal edge front "
    "back middle center along toward"
)


def _corpus(n: int = 3000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = [WORDS, P.CATEGORY_QUESTION, P.AFFORDANCE_QUESTION, P.POSE_QUESTION, P.MASKED_POSE_QUESTION]
    for _ in range(n):
        cat, act = rng.choice(CATEGORIES), rng.choice(ACTIONS)
        inst = f"{act} of the {cat}"
        ub = [rng.randint(-50, 50) for _ in range(3)]
        fb = [rng.randint(-50, 50) for _ in range(3)]
        lines.append(P.pose_question(inst))
        lines.append(P.format_pose_answer(rng.randint(0, 639), rng.randint(0, 479), ub, fb))
        lines.append(P.reasoning_question(inst, cat))
        lines.append(" ".join(rng.sample(WORDS.split(), 12)))
        lines.append(P.affordance_answer([rng.random() < 0.5 for _ in range(6)]))
    return lines


def build_tiny_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A deterministic byte-level BPE with Qwen's special tokens; vocab_size includes bytes and specials."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=IM_END, additional_special_tokens=SPECIAL_TOKENS[1:]
    )
    return fast
