"""Prompts: the four formats, chain of thought, binning, and the strict parser (round trips and typed errors)."""

import random

import numpy as np
import pytest

from manipllm_ros import prompts as P


def _sample(**kw):
    s = dict(
        width=640, height=480, category="microwave", instruction="open the door of the microwave",
        contact_uv=[412.0, 233.0], up_cam=[0.1, -0.2, -0.97], forward_cam=[0.0, 0.98, -0.2],
        aff_pos_uv=[[400 + i, 230] for i in range(30)], aff_neg_uv=[[100, 100 + i] for i in range(25)],
        reasoning="The door opens about a hinge on the left, so pull the handle on the right.", sample_id="s0",
        part="door", part_centre_uv=[390.0, 240.0],
    )
    s.update(kw)
    return s


def test_binning_round_trip_is_within_one_bin():
    rng = np.random.default_rng(0)
    for _ in range(200):
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        b = P.bin_direction(v)
        assert all(-50 <= x <= 50 for x in b)
        back = P.unbin_direction(b)
        assert np.linalg.norm(back - v) < 0.03
    assert P.bin_direction([1, 0, 0]) == (50, 0, 0)
    assert P.bin_direction([-1, 0, 0]) == (-50, 0, 0)


def test_image_frame_round_trip_and_convention():
    f = P.ImageFrame(640, 480, 224, 168)
    x, y = f.to_model(639, 0)  # right edge, top row: x is the column
    assert (x, y) == (223, 0)
    u, v = f.to_orig(*f.to_model(320.0, 240.0))
    assert abs(u - 320) <= 640 / 224 and abs(v - 240) <= 480 / 168
    assert P.ImageFrame.identity(640, 480).to_model(12.0, 34.0) == (12, 34)


def test_pose_format_round_trip_identity_frame():
    s = _sample()
    ex = P.pose_example(s)
    assert ex.turns[0].question.startswith("Open the door of the microwave. Specify the contact point")
    pa = P.parse_pose(ex.turns[0].answer, P.ImageFrame.identity(640, 480))
    assert (pa.u, pa.v) == (412.0, 233.0)
    up = np.array(s["up_cam"]) / np.linalg.norm(s["up_cam"])
    fw = np.array(s["forward_cam"]) / np.linalg.norm(s["forward_cam"])
    assert np.linalg.norm(pa.up - up) < 0.04 and np.linalg.norm(pa.forward - fw) < 0.04


def test_pose_round_trip_resized_frame():
    s = _sample()
    ex = P.pose_example(s, model_size=(224, 168))
    pa = P.parse_pose(ex.turns[0].answer, P.ImageFrame(640, 480, 224, 168))
    assert abs(pa.u - 412) < 3 and abs(pa.v - 233) < 3


def test_category_and_cot_formats():
    s = _sample(category="storage_furniture")
    assert P.parse_category(P.category_example(s).turns[0].answer) == "storage furniture"
    ex = P.cot_example(s)
    assert [t.question for t in ex.turns][0] == P.CATEGORY_QUESTION
    assert ex.turns[1].question == (
        "Think about where you can open the door of the storage furniture in order to manipulate it."
    )
    assert ex.turns[1].answer == s["reasoning"]
    assert P.parse_pose(ex.turns[2].answer, P.ImageFrame.identity(640, 480)).model_xy == (412, 233)
    with pytest.raises(ValueError, match="no reasoning"):
        P.cot_example(_sample(reasoning=""))


def test_affordance_format_round_trip():
    s = _sample()
    ex = P.affordance_example(s, random.Random(0), n=20)
    pts = P.parse_points(ex.turns[0].question)
    labels = P.parse_affordance(ex.turns[0].answer, len(pts))
    assert len(pts) == 40 and sum(labels) == 20
    pos = {tuple(p) for p in s["aff_pos_uv"]}
    assert all((tuple(p) in pos) == lab for p, lab in zip(pts, labels))
    single = P.affordance_question(P.ImageFrame.identity(640, 480), [(5, 6)])
    assert single.startswith(P.AFFORDANCE_QUESTION_SINGLE) and single.endswith("(5, 6)")
    assert P.parse_affordance("yes", 1) == [True]


def test_masked_pose_format():
    s = _sample()
    ex = P.masked_pose_example(s, random.Random(3))
    assert P.MASK_TOKEN in ex.turns[0].question
    full = P.pose_example(s).turns[0].answer
    assert ex.turns[0].answer == full
    # the unmasked numbers in the prompt agree with the answer
    q = ex.turns[0].question.split(P.MASKED_POSE_QUESTION)[1]
    for a, b in zip(q.replace("(", " ").replace(")", " ").replace(",", " ").split(), full.replace("(", " ").replace(")", " ").replace(",", " ").split()):
        assert a == b or a == P.MASK_TOKEN
    with pytest.raises(P.PoseParseError, match="MASK"):
        P.parse_pose(q, P.ImageFrame.identity(640, 480))


def test_make_example_dispatch_and_unknown_task():
    s = _sample()
    for t in P.TASKS:
        if t == "grounding_zoom":  # needs the image: training.data cuts it (test_model_zoom.py)
            with pytest.raises(ValueError, match="cut from the image"):
                P.make_example(s, t, random.Random(0))
            continue
        assert P.make_example(s, t, random.Random(0)).task == t
    with pytest.raises(ValueError, match="unknown task"):
        P.make_example(s, "dance", random.Random(0))


def test_grounding_format_round_trip_and_errors():
    frame = P.ImageFrame(640, 480, 224, 168)
    ex = P.make_example(_sample(), "grounding", random.Random(0), model_size=(224, 168))
    (turn,) = ex.turns
    assert turn.question == "Open the door of the microwave. Point to the centre of the part that moves."
    assert turn.answer.startswith("The door is at (")
    part, (u, v) = P.parse_grounding(turn.answer, frame)
    assert part == "door" and abs(u - 390) <= 640 / 224 and abs(v - 240) <= 480 / 168
    with pytest.raises(ValueError, match="no part mask"):
        P.grounding_example(_sample(part_centre_uv=None))
    with pytest.raises(P.PromptParseError, match="outside the 224x168"):
        P.parse_grounding("The door is at (224, 10)", frame)
    with pytest.raises(P.PromptParseError, match="expected 'The <part> is at"):
        P.parse_grounding("somewhere left", frame)


FRAME = P.ImageFrame.identity(640, 480)
GOOD = P.format_pose_answer(10, 20, (0, 0, -50), (50, 0, 0))


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "empty"),
        ("I think the handle", "expected 'The contact point"),
        (GOOD[:60], "expected"),  # partial answer
        (GOOD.replace("(10, 20)", "(10, )"), "expected"),
        (P.format_pose_answer(640, 20, (0, 0, -50), (50, 0, 0)), "outside the 640x480"),
        (P.format_pose_answer(10, -1, (0, 0, -50), (50, 0, 0)), "expected|outside"),
        (P.format_pose_answer(10, 20, (0, 0, 0), (50, 0, 0)), "up direction.*zero length"),
        (P.format_pose_answer(10, 20, (0, 0, -50), (0, -1, 0)), "forward direction.*zero length"),
        (P.format_pose_answer(10, 20, (0, 0, -50), (0, 0, 50)), "parallel"),
        (P.format_pose_answer(10, 20, (0, 0, -77), (50, 0, 0)), "outside \\[-50, 50\\]"),
        (GOOD + " " + GOOD, "exactly one"),
    ],
)
def test_parser_rejects_bad_answers_with_typed_error(text, match):
    with pytest.raises(P.PoseParseError, match=match) as ei:
        P.parse_pose(text, FRAME)
    assert str(ei.value).startswith("could not parse pose from model output: ")


def test_parser_accepts_surrounding_text_and_whitespace():
    pa = P.parse_pose("Sure. " + GOOD.replace(", ", " ,  ") + ".", FRAME)
    assert pa.model_xy == (10, 20)
    np.testing.assert_allclose(pa.up, [0, 0, -1.0])


def test_affordance_and_category_parser_errors():
    with pytest.raises(P.AffordanceParseError, match="expected 3"):
        P.parse_affordance("yes, no", 3)
    with pytest.raises(P.AffordanceParseError, match="'yes' or 'no'"):
        P.parse_affordance("yes, maybe", 2)
    with pytest.raises(P.CategoryParseError):
        P.parse_category("   ")
    assert issubclass(P.PoseParseError, ValueError)


def test_pose_grammar_prefix_states():
    from manipllm_ros.model.constrained import pose_prefix_state

    a = P.format_pose_answer(12, 345, (1, -2, -50), (50, 0, 3))
    assert pose_prefix_state(a) == "complete"
    assert all(pose_prefix_state(a[:k]) == "partial" for k in range(len(a)))
    for bad in (a + "x", "Hello", "The contact point is (1a", "The contact point is (12345",
                P.format_pose_answer(1, 2, (123, 0, 0), (0, 0, 1))):
        assert pose_prefix_state(bad) == "invalid"
