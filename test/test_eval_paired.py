"""Paired comparison of two matrix rows: known answers for the sign test and the episode pairing."""

from __future__ import annotations

import json

import pytest

from manipllm_ros.evaluation.paired import compare_rows, pooled_episodes, sign_test


def test_sign_test_known_answers():
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 5) == 1.0
    assert sign_test(10, 0) == pytest.approx(2 / 2**10)
    assert sign_test(50, 8) == pytest.approx(1.57e-8, rel=1e-2)  # benchmarks/eval_aia_revolute.md, grounded row
    assert sign_test(3, 1) == sign_test(1, 3) == pytest.approx(0.625)


def _write(root, seed, row, outcomes):
    d = root / f"seed{seed}" / "test_seen" / row
    d.mkdir(parents=True)
    d.joinpath("episodes.jsonl").write_text("".join(json.dumps({"key": k, "initial_success": v}) + "\n"
                                                    for k, v in outcomes.items()))


def test_rows_are_paired_by_episode_key(tmp_path):
    _write(tmp_path, 0, "a", {"e1": True, "e2": False, "e3": False, "e4": True})
    _write(tmp_path, 0, "b", {"e1": True, "e2": True, "e3": True, "e4": False, "extra": True})  # unpaired: ignored
    _write(tmp_path, 1, "a", {"e1": False, "e2": False})
    _write(tmp_path, 1, "b", {"e1": True, "e2": False})
    r = compare_rows(tmp_path, "a", "b", "test_seen", [0, 1])
    assert r["n"] == 6 and (r["only_b"], r["only_a"]) == (3, 1)
    assert r["a"] == pytest.approx((0.5 + 0.0) / 2) and r["b"] == pytest.approx((0.75 + 0.5) / 2)
    assert r["diff"] == pytest.approx(((0.75 - 0.5) + 0.5) / 2) and r["diff_sd"] == pytest.approx(0.1767767)
    assert r["p"] == pytest.approx(0.625)
    assert sorted(e["key"] for e in pooled_episodes(tmp_path, "b", "test_seen", [0, 1])) == [
        "e1", "e1", "e2", "e2", "e3", "e4", "extra"]
    with pytest.raises(ValueError, match="share no finished episode"):
        compare_rows(tmp_path, "a", "missing", "test_seen", [0])
