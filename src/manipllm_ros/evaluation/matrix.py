"""`manipllm eval --matrix FILE.yaml`: many rows (baselines, model variants, ablations) over the same episodes.

A matrix file lists rows; every row is one contact proposer + pull policy (and, for the model, a checkpoint and
an inference mode). All rows of one seed and split run `episode_specs` of the same `EvalConfig` fields (seed,
split, categories, episodes per category), so they see exactly the same objects, instance seeds, camera poses
and lights (the world seed is a function of the instance seed and the episode index) and the same proposer
random stream: the rows differ only in what the row says.

    rows:
      - name: random-object                 # folder name and table row
        label: random pixel on the object    # optional, longer text for tables and plots
        proposer: random-object              # random-object | random-part | model
        pull: aia                            # aia | straight
      - name: model
        proposer: model
        checkpoint: checkpoints/small-gpu/full-s0   # relative to the current directory
        mode: cot                            # cot (chain of thought) | direct
        contact: pose                        # pose | grounding | agreement (contact.py)
        up: model                            # model | depth (up = minus the surface normal measured in depth)
        snap_px: 0                           # 0 | R: snap to the nearest surface agreeing with the model's up
        zoom: 0                              # 0 | Z: ask the grounding question again on a Z-times zoomed crop
        views: 1                             # 1 | N: ask on N jittered object windows, trimmed mean of the contacts
        protrusion_px: 0                     # 0 | R: first move the contact onto a raised part within R px
        protrusion_deg: null                 # null | A: only onto one whose surface faces the model's up within A
        protrusion_skip_outline: false       # true: not onto the outline of the contact's own surface
        protrusion_stay_on_own: false        # true: keep a contact on a part it is on (own rim, own raised part)
        handle_px: 0                         # 0 | H: first of all move it beside a handle on its face within H px
    episodes: 20                             # optional defaults; command-line flags override them
    splits: [test_seen, test_unseen]

Output (`--out DIR`): `DIR/seed<S>/<split>/<row>/` holds each run's `episodes.jsonl`, `summary.json`, `table.md`
(per category) and `per_category.png`; `DIR/summary.md` / `summary.json` have one line per row with
{test_seen, test_unseen} x {initial, long} as mean ± std over the seeds (sample std, ddof=1: the run-to-run
spread), and `DIR/ablation.png` is the bar chart of the same numbers. Every model checkpoint is checked before
the first episode runs, so a missing one fails at once and names the row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from manipllm_ros.contact import check_sources
from manipllm_ros.model.views import check_views

SPLITS = ("test_seen", "test_unseen")


class MatrixError(ValueError):
    """A matrix file or row that cannot run; the message names the row and the field."""


class MatrixRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Row name: a folder name, so letters, digits, '-', '_' and '.'.")
    label: str = Field("", description="Longer text for the tables and the plot (default: the name).")
    proposer: Literal["random-object", "random-part", "model"]
    checkpoint: str | None = Field(None, description="Trained model directory (proposer model).")
    mode: Literal["cot", "direct"] = Field("cot", description="Model inference: chain of thought or direct.")
    contact: Literal["pose", "grounding", "agreement"] = Field(
        "pose", description="Model contact pixel: the pose answer's, the grounding answer's, or of the two the one "
        "whose depth surface faces the model's up (the last two: checkpoints trained with the grounding task).")
    up: Literal["model", "depth"] = Field(
        "model", description="Model up direction: the pose answer's, or minus the surface normal measured in the "
        "depth image at the contact (the model's where the depth there is no clean plane).")
    snap_px: int = Field(0, ge=0, description="Model contact: 0, or snap a pixel whose depth surface disagrees with "
                         "the model's up to the nearest agreeing one within this radius (contact.py).")
    zoom: float = Field(0.0, ge=0, description="Model contact: 0, or ask the grounding question again on a crop "
                        "1/zoom the image's size around the first answer (>= 1; checkpoints trained with "
                        "grounding_zoom; contact grounding or agreement).")
    views: int = Field(1, ge=1, description="Model contact: 1, or ask on that many jittered copies of the object "
                       "window and take the trimmed mean of their contacts (model/views.py; checkpoints trained on "
                       "object windows).")
    protrusion_px: int = Field(0, ge=0, description="Model contact: 0, or first move it onto the nearest raised "
                               "part (handle, lever, button) within this radius, found in the depth (contact.py).")
    protrusion_deg: float | None = Field(None, gt=0, lt=180, description="Model contact, with protrusion_px: "
                                         "only onto a raised part whose surface faces the model's up within this "
                                         "angle (degrees; or is too curved to measure); null = any raised part.")
    protrusion_skip_outline: bool = Field(False, description="Model contact, with protrusion_px: not onto a raised "
                                          "part that is the outline of the contact's own surface against what lies "
                                          "behind the object (contact.is_own_outline).")
    protrusion_stay_on_own: bool = Field(False, description="Model contact, with protrusion_px and snap_px: keep it "
                                         "on a part it is already on: not onto the rim of its own surface, and from "
                                         "a raised part the surface snap only within it (contact.resolve_contact).")
    handle_px: int = Field(0, ge=0, description="Model contact: 0, or first move it beside the nearest handle "
                           "within this radius that is on another panel of the plane it lies on (handles.py).")
    pull: Literal["aia", "straight"] = "aia"

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c in "-_." for c in v) or v.startswith("."):
            raise ValueError(f"row name {v!r} must be a plain folder name (letters, digits, '-', '_', '.')")
        return v

    @model_validator(mode="after")
    def _facing_needs_radius(self) -> MatrixRow:
        if self.protrusion_deg is not None and not self.protrusion_px:
            raise ValueError(f"row {self.name!r}: protrusion_deg conditions the raised-part snap; set protrusion_px")
        if self.protrusion_skip_outline and not self.protrusion_px:
            raise ValueError(f"row {self.name!r}: protrusion_skip_outline conditions the raised-part snap; set "
                             "protrusion_px")
        if self.protrusion_stay_on_own and not (self.protrusion_px and self.snap_px):
            raise ValueError(f"row {self.name!r}: protrusion_stay_on_own conditions the raised-part and surface "
                             "snaps; set protrusion_px and snap_px")
        return self

    @property
    def eval_proposer(self) -> str:
        """The `EvalConfig.proposer` of this row."""
        if self.proposer != "model":
            return self.proposer
        from manipllm_ros.evaluation.proposals import ModelProposerSpec, model_proposer_name

        return model_proposer_name(ModelProposerSpec(self.mode == "cot", self.contact, self.up, self.snap_px,
                                                     self.zoom, self.views, self.protrusion_px,
                                                     self.protrusion_deg, self.handle_px,
                                                     self.protrusion_skip_outline, self.protrusion_stay_on_own))

    @property
    def text(self) -> str:
        return self.label or self.name


class MatrixFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[MatrixRow] = Field(min_length=1)
    episodes: int | None = Field(None, ge=1, description="Episodes per category (default for --episodes).")
    splits: list[Literal["test_seen", "test_unseen"]] | None = None
    categories: list[str] | None = None


def load_matrix(path: str | Path) -> MatrixFile:
    p = Path(path)
    if not p.is_file():
        raise MatrixError(f"matrix file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
        mf = MatrixFile.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise MatrixError(f"matrix file {p}: {exc}") from exc
    names = [r.name for r in mf.rows]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise MatrixError(f"matrix file {p}: row names must be unique, repeated: {', '.join(dup)}")
    return mf


def check_rows(rows: list[MatrixRow]) -> None:
    """Every model row names an existing manipllm checkpoint; raises MatrixError naming the first bad row."""
    for r in rows:
        if r.proposer != "model":
            if r.checkpoint:
                raise MatrixError(f"row {r.name!r}: proposer {r.proposer} takes no checkpoint")
            continue
        if not r.checkpoint:
            raise MatrixError(f"row {r.name!r}: proposer model needs a checkpoint")
        try:
            check_sources(r.contact, r.up, r.zoom)
            check_views(r.views)
        except ValueError as exc:
            raise MatrixError(f"row {r.name!r}: {exc}") from None
        d = Path(r.checkpoint).expanduser()
        if not d.is_dir():
            raise MatrixError(f"row {r.name!r}: checkpoint {d} does not exist (relative paths are relative to "
                              f"the current directory {Path.cwd()})")
        if not (d / "manipllm_model.json").is_file():
            raise MatrixError(f"row {r.name!r}: {d} is not a manipllm checkpoint (no manipllm_model.json)")


def run_matrix(rows: list[MatrixRow], out: Path, *, seeds: list[int], splits: list[str], episodes: int,
               categories: list[str] | None = None, workers: int = 2, arm: str = "fast",
               progress: bool = True) -> dict:
    """Run every row on the same episodes, for every seed and split; write the per-run and summary outputs."""
    from manipllm_ros.evaluation.runner import EvalConfig, run_eval

    check_rows(rows)
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise MatrixError(f"unknown split(s) {bad}: {' | '.join(SPLITS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[int, dict]]] = {r.name: {s: {} for s in splits} for r in rows}
    for seed in seeds:
        for split in splits:
            for r in rows:
                cfg = EvalConfig(out=out / f"seed{seed}" / split / r.name, proposer=r.eval_proposer,
                                 checkpoint=r.checkpoint, pull=r.pull, split=split, episodes_per_category=episodes,
                                 categories=list(categories or []), seed=seed, workers=workers, progress=progress,
                                 arm=arm, label=f"{r.name} seed{seed} {split}")
                results[r.name][split][seed] = run_eval(cfg)
    summary = summarise_matrix(rows, results, seeds, splits)
    summary["config"] = {"seeds": seeds, "splits": splits, "episodes_per_category": episodes,
                         "categories": list(categories or []), "arm": arm,
                         "rows": [r.model_dump() for r in rows]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(summary_markdown(summary))
    plot_ablation(summary, out / "ablation.png")
    return summary


def _mean_std(xs: list[float]) -> tuple[float, float]:
    a = np.asarray(xs, float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarise_matrix(rows: list[MatrixRow], results: dict, seeds: list[int], splits: list[str]) -> dict:
    table = []
    for r in rows:
        row = {"name": r.name, "label": r.text, "proposer": r.eval_proposer, "checkpoint": r.checkpoint,
               "pull": r.pull}
        for s in splits:
            per_seed = [results[r.name][s][k]["overall"] for k in seeds]
            for metric in ("initial", "long", "on_part", "parsed"):
                m, sd = _mean_std([o[metric] for o in per_seed])
                row[f"{s}/{metric}"] = {"mean": m, "std": sd, "per_seed": [o[metric] for o in per_seed]}
            row[f"{s}/n"] = int(sum(o["n"] for o in per_seed))
        table.append(row)
    return {"rows": table, "seeds": seeds, "splits": splits}


def _cell(v: dict, seeds: int) -> str:
    return f"{v['mean']:.2f} ± {v['std']:.2f}" if seeds > 1 else f"{v['mean']:.2f}"


def summary_markdown(summary: dict) -> str:
    seeds, splits = summary["seeds"], summary["splits"]
    cfg = summary.get("config", {})
    head = ["row"] + [f"{s} {m}" for s in splits for m in ("initial", "long")] + [f"{s} n" for s in splits]
    lines = []
    lines.append(f"Seeds {', '.join(map(str, seeds))}; {cfg.get('episodes_per_category', '?')} episodes per category "
                 f"and seed; arm {cfg.get('arm', 'fast')}. " + ("Cells: mean ± sample std over the seeds (the "
                                                                "run-to-run spread). " if len(seeds) > 1 else "")
                 + "All rows ran the same episodes. n = episodes per split over all seeds.")
    lines.append("")
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in summary["rows"]:
        cells = [r["label"]] + [_cell(r[f"{s}/{m}"], len(seeds)) for s in splits for m in ("initial", "long")]
        cells += [str(r[f"{s}/n"]) for s in splits]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_ablation(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, splits = summary["rows"], summary["splits"]
    bars = [(s, m) for s in splits for m in ("initial", "long")]
    x = np.arange(len(rows))
    w = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows) + 2), 4.5))
    for i, (s, m) in enumerate(bars):
        means = [r[f"{s}/{m}"]["mean"] for r in rows]
        stds = [r[f"{s}/{m}"]["std"] for r in rows]
        ax.bar(x + (i - (len(bars) - 1) / 2) * w, means, w, yerr=stds if len(summary["seeds"]) > 1 else None,
               capsize=2, label=f"{s.replace('_', ' ')}, {m}")
    ax.set_xticks(x, [r["label"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("success rate")
    n_seeds = len(summary["seeds"])
    ax.set_title("same episodes for every row" + (f"; mean ± std over {n_seeds} seeds" if n_seeds > 1 else ""),
                 fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
