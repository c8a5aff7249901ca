"""`manipllm eval --matrix`: many rows over exactly the same episodes, several seeds (mean ± std), a missing
checkpoint refused before any episode, and the committed paper matrix is valid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from manipllm_ros.evaluation.matrix import MatrixError, MatrixRow, check_rows, load_matrix, run_matrix

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "models" / "demo-tiny"


def test_paper_matrix_lists_the_paper_rows():
    mf = load_matrix(REPO / "config" / "eval_paper.yaml")
    by = {r.name: r for r in mf.rows}
    assert by["random-object"].proposer == "random-object" and by["random-part"].proposer == "random-part"
    assert by["model"].checkpoint == "checkpoints/small-gpu/full-s0" and by["model"].mode == "cot"
    assert by["model-straight"].pull == "straight" and by["model-direct"].mode == "direct"
    for name, ck in [("abl-pose", "pose"), ("abl-pose-cat", "pose_cat"), ("abl-pose-cat-mask", "pose_cat_mask"),
                     ("abl-all4", "all4")]:
        assert by[name].checkpoint == f"checkpoints/small-gpu/{ck}"
    assert mf.splits == ["test_seen", "test_unseen"]
    part = load_matrix(REPO / "config" / "eval_part_supervision.yaml")
    assert {r.name for r in part.rows} >= {"random-object", "random-part", "model-part", "model-part-ground"}
    pby = {r.name: r for r in part.rows}
    assert pby["model-part-ground"].eval_proposer == "model-direct"
    assert pby["model-part-ground-grounded"].eval_proposer == "model-direct-grounded"
    assert pby["model-part-ground-grounded-straight"].pull == "straight"
    for f in ("eval_grounded.yaml", "eval_aia_revolute.yaml"):  # the committed benchmarks' matrices still load
        rows = load_matrix(REPO / "config" / f).rows
        assert any(r.contact == "grounding" for r in rows) and {r.pull for r in rows} <= {"aia", "straight"}
    shipped = [r for r in load_matrix(REPO / "config" / "eval_small_grounded.yaml").rows if r.checkpoint]
    assert {r.contact for r in shipped} == {"pose", "grounding"}  # runs as is on a fresh clone: the model is in git
    assert all((REPO / r.checkpoint / "manipllm_model.json").is_file() for r in shipped)
    depthup = {r.name: r for r in load_matrix(REPO / "config" / "eval_depth_up.yaml").rows}
    assert depthup["grounded-depthup"].eval_proposer == "model-direct-grounded-depthup"
    for src in ("pose", "grounded"):  # each depth-up row differs from its model-up row in the up alone
        a, b = depthup[src], depthup[f"{src}-depthup"]
        assert (a.up, b.up) == ("model", "depth") and a.model_copy(update={"name": "x", "label": "", "up": "x"}) \
            == b.model_copy(update={"name": "x", "label": "", "up": "x"})
    agreed = {r.name: r for r in load_matrix(REPO / "config" / "eval_contact_agreement.yaml").rows}
    assert agreed["agreed-depthup"].eval_proposer == "model-direct-agreed-depthup"
    assert agreed["agreed"].eval_proposer == "model-direct-agreed"
    assert agreed["grounded-snap60-depthup"].eval_proposer == "model-direct-grounded-snap60-depthup"
    aia = {r.name: r for r in load_matrix(REPO / "config" / "eval_aia_revolute.yaml").rows}
    for src in ("oracle", "grounded", "pose"):  # benchmarks/aia_vs_straight.py pairs <src>-aia with <src>-straight
        a, b = aia[f"{src}-aia"], aia[f"{src}-straight"]
        assert (a.pull, b.pull) == ("aia", "straight") and a.model_copy(update={"name": "x", "label": "", "pull": "x"}) \
            == b.model_copy(update={"name": "x", "label": "", "pull": "x"})


def test_bad_matrix_files_and_rows_are_refused_with_the_row_named(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("rows:\n  - {name: a, proposer: random-object}\n  - {name: a, proposer: random-part}\n")
    with pytest.raises(MatrixError, match="repeated: a"):
        load_matrix(f)
    f.write_text("rows:\n  - {name: a, proposer: oracle}\n")
    with pytest.raises(MatrixError, match="proposer"):
        load_matrix(f)
    f.write_text("rows:\n  - {name: a, proposer: model, checkpoint: x, colour: red}\n")
    with pytest.raises(MatrixError, match="colour"):
        load_matrix(f)
    with pytest.raises(MatrixError, match="row 'm': checkpoint .*nope does not exist"):
        check_rows([MatrixRow(name="m", proposer="model", checkpoint=str(tmp_path / "nope"))])
    with pytest.raises(MatrixError, match="row 'z': zoom 2 refines the grounding answer"):
        check_rows([MatrixRow(name="z", proposer="model", checkpoint="models/small-grounded", zoom=2)])

    with pytest.raises(MatrixError, match="is not a manipllm checkpoint"):
        check_rows([MatrixRow(name="m", proposer="model", checkpoint=str(tmp_path))])
    with pytest.raises(MatrixError, match="needs a checkpoint"):
        check_rows([MatrixRow(name="m", proposer="model")])


def test_cli_refuses_a_missing_checkpoint_before_any_episode(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text(f"rows:\n  - {{name: base, proposer: random-object}}\n"
                 f"  - {{name: gone, proposer: model, checkpoint: {tmp_path / 'missing'}}}\n")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "manipllm_ros.cli", "eval", "--matrix", str(f), "--out", str(out),
                        "--categories", "microwave", "--episodes", "1"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "row 'gone': checkpoint" in r.stdout and "does not exist" in r.stdout
    assert not out.exists()  # nothing ran, not even the baseline row


@pytest.mark.slow
def test_matrix_rows_share_episodes_and_seeds_give_mean_and_std(tmp_path, one_torch_thread):
    rows = [MatrixRow(name="random-object", proposer="random-object"),
            MatrixRow(name="oracle", label="random pixel on movable part", proposer="random-part"),
            MatrixRow(name="tiny-direct", proposer="model", checkpoint=str(TINY), mode="direct", pull="straight")]
    out = tmp_path / "m"
    summary = run_matrix(rows, out, seeds=[0, 1], splits=["test_seen"], episodes=2, categories=["microwave", "safe"],
                         workers=2, progress=False)
    for seed in (0, 1):
        eps = {}
        for r in rows:
            run = out / f"seed{seed}" / "test_seen" / r.name
            recs = [json.loads(l) for l in (run / "episodes.jsonl").read_text().splitlines()]
            assert len(recs) == 4
            eps[r.name] = sorted((x["key"], x["category"], x["object_seed"]) for x in recs)
            assert "| **all** | 4 |" in (run / "table.md").read_text()
            assert (run / "per_category.png").stat().st_size > 1000
        # the same objects (category, instance seed, episode index -> camera and lights) for every row
        assert eps["random-object"] == eps["oracle"] == eps["tiny-direct"]
    seeds_eps = [sorted(json.loads(l)["key"] for l in (out / f"seed{s}" / "test_seen" / "oracle" / "episodes.jsonl")
                        .read_text().splitlines()) for s in (0, 1)]
    assert seeds_eps[0] != seeds_eps[1]  # another seed draws other instances
    row = {r["name"]: r for r in summary["rows"]}
    for name in ("random-object", "oracle", "tiny-direct"):
        cell = row[name]["test_seen/initial"]
        per_seed = [json.loads((out / f"seed{s}" / "test_seen" / name / "summary.json").read_text())["overall"]
                    ["initial"] for s in (0, 1)]
        assert cell["per_seed"] == per_seed
        assert cell["mean"] == pytest.approx(sum(per_seed) / 2)
        assert cell["std"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2 ** 0.5)  # sample std, ddof=1
        assert row[name]["test_seen/n"] == 8
    assert row["oracle"]["test_seen/on_part"]["mean"] == 1.0  # the oracle always touches the part
    md = (out / "summary.md").read_text()
    assert "random pixel on movable part" in md and "±" in md and "test_seen initial" in md
    assert (out / "ablation.png").stat().st_size > 1000
    # Resumable: a second run reruns nothing and gives the same summary.
    again = run_matrix(rows, out, seeds=[0, 1], splits=["test_seen"], episodes=2, categories=["microwave", "safe"],
                       workers=2, progress=False)
    assert again["rows"] == summary["rows"]


def test_cli_one_row_over_seeds_without_a_matrix_file(tmp_path):
    out = tmp_path / "one"
    r = subprocess.run([sys.executable, "-m", "manipllm_ros.cli", "eval", "--proposer", "random-part", "--seeds", "3",
                        "--splits", "test_unseen", "--categories", "kettle_lid", "--episodes", "1", "--workers", "1",
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert [row["name"] for row in s["rows"]] == ["random-part"] and s["seeds"] == [3]
    assert s["rows"][0]["test_unseen/n"] == 1
    assert (out / "seed3" / "test_unseen" / "random-part" / "episodes.jsonl").is_file()


def test_model_proposer_names_round_trip():
    from manipllm_ros.evaluation.proposals import ModelProposerSpec, model_proposer_name, parse_model_proposer

    for spec in (ModelProposerSpec(), ModelProposerSpec(False, "grounding", "depth", 60, 2.0),
                 ModelProposerSpec(False, "agreement", "model", 0, 1.5), ModelProposerSpec(True, "pose", "depth")):
        assert parse_model_proposer(model_proposer_name(spec)) == spec
    assert model_proposer_name(ModelProposerSpec(False, "grounding", "depth", 60, 2.0)) == \
        "model-direct-grounded-zoom2-snap60-depthup"
    row = MatrixRow(name="z", proposer="model", checkpoint="c", mode="direct", contact="grounding", zoom=2.5)
    assert row.eval_proposer == "model-direct-grounded-zoom2.5"
    for bad in ("model-direct-zoom", "model-direct-grounded-snap60-zoom2", "model-x"):
        with pytest.raises(ValueError, match="unknown proposer"):
            parse_model_proposer(bad)
