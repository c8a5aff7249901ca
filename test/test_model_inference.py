"""Inference: typed errors from an untrained model, KV-cache equivalence, and the successful path after the tiny
model has overfitted two examples (chain of thought and direct, batched and single, prefix reuse on and off)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import memorise


from manipllm_ros import prompts as P
from manipllm_ros.model.config import ModelConfig
from manipllm_ros.model.generation import DecodeSession
from manipllm_ros.model.policy import PosePredictor, Prediction
from manipllm_ros.model.processor import collate
from manipllm_ros.prompts import PoseParseError
from manipllm_ros.training.synthetic import synthetic_sample

CFG = ModelConfig(device="cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_untrained_model_output_gives_typed_parse_error():
    # small budgets: an untrained model babbles until the budget runs out
    pred = PosePredictor.from_config(
        CFG.model_copy(update={"max_new_tokens_category": 4, "max_new_tokens_reasoning": 4, "max_new_tokens_pose": 12})
    )
    s = synthetic_sample(0)
    for cot in (True, False):
        with pytest.raises(PoseParseError) as ei:
            pred.predict(s["rgb"], s["instruction"], chain_of_thought=cot)
        assert str(ei.value).startswith("could not parse pose from model output: ")
    res = pred.predict_batch([s["rgb"], synthetic_sample(1)["rgb"]], [s["instruction"], "pull the drawer"])
    assert len(res) == 2 and all(isinstance(r, PoseParseError) for r in res)
    with pytest.raises(ValueError, match="as many images"):
        pred.predict_batch([s["rgb"]], [])


def test_cached_incremental_decoding_matches_full_forward():
    """Batched turns with different lengths (masked holes) give the logits of a plain full forward."""
    pred = PosePredictor.from_config(CFG)
    vlm, pr = pred.vlm, pred.vlm.processor
    with torch.no_grad():  # non-zero LoRA so adapters take part
        for n, p in vlm.peft.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.3)
    imgs = [synthetic_sample(i)["rgb"] for i in range(2)]
    pv, thw = pr.encode_images(imgs)
    first = [pr.user_turn(P.CATEGORY_QUESTION, True, True), pr.user_turn("Short?", True, True)]
    later = [[pr.text_ids("microwave") + [pr.im_end], pr.text_ids("box") + [pr.im_end]],
             [pr.user_turn("Next question here.", False, False), []]]  # fmt: skip
    sess = DecodeSession(vlm.model, pr.pad_id, pr.im_end)
    sess.start(first, [pr.mm_types(r) for r in first], pv, thw)
    for chunk in later:
        sess.extend(chunk)
    for i in range(2):
        full = first[i] + later[0][i] + later[1][i]
        ids = torch.tensor([full])
        with torch.no_grad():
            ref = vlm.model(
                input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=torch.tensor([pr.mm_types(full)]),
                pixel_values=pr.encode_images([imgs[i]])[0], image_grid_thw=thw[i : i + 1],
            ).logits[0, -1]  # fmt: skip
        torch.testing.assert_close(sess.pending[i], ref, atol=1e-4, rtol=1e-4)


def _overfit(pred: PosePredictor, samples: list[dict], max_steps: int = 400, lr: float = 1e-2,
             tasks: tuple[str, ...] = ("cot", "pose")) -> int:
    """Train until teacher-forced greedy accuracy on every answer token is 100% (the tiny model memorises)."""
    vlm = pred.vlm
    size = (vlm.cfg.image_width, vlm.cfg.image_height)
    make = {"cot": P.cot_example, "pose": P.pose_example, "grounding": P.grounding_example}
    encs = [vlm.processor.encode_example(s["rgb"], make[t](s, model_size=size)) for s in samples for t in tasks]
    batch = collate(encs, vlm.processor.pad_id)
    return memorise(vlm, batch, max_steps=max_steps, lr=lr)


@pytest.mark.slow
def test_trained_tiny_model_predicts_pose_with_cot_direct_batched():
    cfg = CFG.model_copy(update={"lora": CFG.lora.model_copy(update={"extra_trainable": ["lm_head"]})})
    pred = PosePredictor.from_config(cfg)
    samples = [synthetic_sample(0), synthetic_sample(1)]
    _overfit(pred, samples)
    for s in samples:
        frame = pred.vlm.processor.frame(640, 480)
        exp_xy = frame.to_orig(*frame.to_model(*s["contact_uv"]))
        for cot in (True, False):
            for reuse in (True, False):
                r = pred.predict(s["rgb"], s["instruction"], chain_of_thought=cot, reuse_prefix=reuse)
                assert isinstance(r, Prediction)
                assert r.pixel == pytest.approx(exp_xy)
                assert np.degrees(np.arccos(np.clip(np.dot(r.up, s["up_cam"]), -1, 1))) < 3
                assert np.degrees(np.arccos(np.clip(np.dot(r.forward, s["forward_cam"]), -1, 1))) < 3
                assert {"preprocess", "pose", "total"} <= set(r.timings)
                if cot:
                    assert r.category == s["category"].replace("_", " ")
                    assert r.reasoning == s["reasoning"]
                    assert [q for q, _ in r.turns][0] == P.CATEGORY_QUESTION
                    assert {"category", "reasoning"} <= set(r.timings)
                else:
                    assert r.category is None and r.reasoning is None
    # batched prediction gives the same answers as one-by-one
    batch = pred.predict_batch([s["rgb"] for s in samples], [s["instruction"] for s in samples])
    for s, r in zip(samples, batch):
        single = pred.predict(s["rgb"], s["instruction"])
        assert r.answer == single.answer and r.reasoning == single.reasoning
    # this model never learned the grounding question: asking for a grounded contact is a typed error, not a
    # silent fallback to the pose answer's pixel
    with pytest.raises(PoseParseError, match="grounding turn"):
        pred.predict(samples[0]["rgb"], samples[0]["instruction"], chain_of_thought=False, ground_contact=True)


@pytest.mark.slow
def test_grounded_contact_takes_the_pixel_from_the_grounding_answer_and_directions_from_the_pose():
    from manipllm_ros.training.part_supervision import part_centre

    cfg = CFG.model_copy(update={"lora": CFG.lora.model_copy(update={"extra_trainable": ["lm_head"]})})
    pred = PosePredictor.from_config(cfg)
    samples = [dict(s, part_centre_uv=list(part_centre(s["segmentation"]))) for s in (synthetic_sample(0),
                                                                                        synthetic_sample(1))]
    _overfit(pred, samples, tasks=("pose", "grounding"))
    frame = pred.vlm.processor.frame(640, 480)
    rs = pred.predict_batch([s["rgb"] for s in samples], [s["instruction"] for s in samples],
                            chain_of_thought=False, ground_contact=True)  # fmt: skip
    for s, r in zip(samples, rs):
        assert isinstance(r, Prediction)
        centre = frame.to_orig(*frame.to_model(*s["part_centre_uv"]))
        contact = frame.to_orig(*frame.to_model(*s["contact_uv"]))
        assert r.pixel == pytest.approx(centre) and r.pixel != pytest.approx(contact)  # the box centre, not the handle
        assert r.pose_pixel == pytest.approx(contact)  # the pose answer's pixel is kept (contact.resolve_contact)
        assert np.degrees(np.arccos(np.clip(np.dot(r.up, s["up_cam"]), -1, 1))) < 3  # directions: the pose answer
        assert r.turns[0][0] == P.grounding_question(s["instruction"]) and r.turns[0][1].startswith("The door is at")
        assert r.timings["grounding"] > 0 and r.timings["total"] >= r.timings["grounding"]


def test_constrained_decoding_gives_well_formed_pose_from_untrained_model():
    """With the grammar, even a random model writes a well-formed answer; the parser then judges the values."""
    from manipllm_ros.model.constrained import pose_prefix_state

    pred = PosePredictor.from_config(CFG.model_copy(update={"constrain_pose": True, "max_new_tokens_pose": 100}))
    s = synthetic_sample(0)
    try:
        r = pred.predict(s["rgb"], s["instruction"], chain_of_thought=False)
        assert pose_prefix_state(r.answer) == "complete"
    except PoseParseError as e:  # well-formed, but e.g. an off-image pixel or a zero-length direction
        assert "expected 'The contact point" not in str(e)
        assert pose_prefix_state(e.text) == "complete"
