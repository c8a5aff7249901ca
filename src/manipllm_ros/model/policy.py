"""The library call the ROS pose service, the evaluation and `manipllm predict` use.

    predictor = PosePredictor.load("runs/small/final")          # or PosePredictor.from_config(ModelConfig())
    pred = predictor.predict(rgb, "open the door of the microwave")   # raises PoseParseError on bad output
    pred.pixel, pred.up, pred.forward, pred.category, pred.reasoning, pred.timings
    loss = predictor.tta_step(rgb, instruction, pred.pixel, success=False)   # updates only the V-Adapter

Chain of thought runs the paper's three turns (category -> reasoning -> pose) in one conversation whose image is
encoded once and whose KV cache is reused by every later turn; `reuse_prefix=False` re-encodes the image and
history at every turn (only to measure what the cache saves). Decoding is greedy, hence deterministic.

`ground_contact=True` also asks the optional grounding question ("Point to the centre of the part that moves.")
and takes the contact pixel from its answer, the directions from the pose answer. Why: a small model trained
with the grounding task finds the part in the image far better than its pose answer does, which tends to give
each category's mean pixel (benchmarks/model_part_supervision.md). Only for checkpoints trained with grounding.

A checkpoint says what it was trained on (`trained_tasks` in manipllm_model.json, written by the trainer; older
ones: a train_config.yaml beside them). A turn it never learned, chain of thought or grounding, is refused with
`UntrainedQuestionError` (a PoseParseError) before decoding, because its answer would be noise that can parse.
A checkpoint trained on object windows (`object_view` in manipllm_model.json) is shown the object's window found in
the depth (object_view.py), so it needs `depth` and `K`; every pixel it returns is mapped back to the full image.
`views=N` (N > 1) asks such a checkpoint on N jittered copies of that window and takes the trimmed mean of their
contact pixels (model/views.py); the directions stay those of the window itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from manipllm_ros import prompts as P
from manipllm_ros.model.build import AdaptedVLM
from manipllm_ros.model.config import ModelConfig
from manipllm_ros.model.constrained import PoseGrammar
from manipllm_ros.model.generation import DecodeSession
from manipllm_ros.model.views import check_views, combine_points, view_windows
from manipllm_ros.model.zoom import Window, crop, zoom_window
from manipllm_ros.object_view import ObjectViewConfig, ObjectViewError, object_window
from manipllm_ros.prompts import PoseParseError

GROUNDING_TOKENS = 32  # "The drawer front is at (123, 45)" is ~15 tokens


class UntrainedQuestionError(PoseParseError):
    """A turn the checkpoint never learned (its trained tasks say so), refused before decoding: the answer would
    be noise that can still parse (a direct-only model asked for a chain of thought gave poses 226 px off)."""

    prefix = "the checkpoint was not trained for this: "


class NoObjectError(PoseParseError):
    """A checkpoint that looks at the object's window found no object in the depth (object_view.py): nothing to
    ask it about, so no pose rather than one guessed from a view it never learned."""

    prefix = "no object in view: "


@dataclass
class Prediction:
    """A parsed pose plus the text that explains it. Pixel in original-image pixels (u = column, v = row);
    up/forward are unit vectors in the camera (OpenCV optical) frame; timings in milliseconds."""

    pixel: tuple[float, float]
    up: np.ndarray
    forward: np.ndarray
    answer: str
    category: str | None = None
    reasoning: str | None = None
    turns: list[tuple[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    adapter_version: str = ""
    pose_pixel: tuple[float, float] | None = None  # the pose answer's pixel when `pixel` is the grounding answer's
    coarse_pixel: tuple[float, float] | None = None  # the first grounding answer's pixel when `pixel` is the zoomed one
    view: Window | None = None  # the object window the model looked at (object_view.py); pixels are full-image
    view_pixels: list[tuple[float, float]] | None = None  # with views > 1: each parsed view's contact pixel
    views_kept: int = 0  # with views > 1: how many of view_pixels the trimmed mean `pixel` kept


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PosePredictor:
    """Wraps an `AdaptedVLM`: prediction, test-time adaptation of the V-Adapter, adapter hot swap/reset."""

    def __init__(self, vlm: AdaptedVLM, tta_lr: float = 1e-4) -> None:
        self.vlm = vlm
        self.tta_lr = tta_lr
        self._tta_opt: torch.optim.Optimizer | None = None
        self.last_generated_tokens: list[int] = []  # per image, all turns of the last predict call (diagnostics)

    @classmethod
    def from_config(cls, cfg: ModelConfig, tta_lr: float = 1e-4) -> PosePredictor:
        return cls(AdaptedVLM.build(cfg), tta_lr=tta_lr)

    @classmethod
    def load(cls, checkpoint_dir: str | Path, device: str | None = None, tta_lr: float = 1e-4) -> PosePredictor:
        return cls(AdaptedVLM.load(checkpoint_dir, device=device), tta_lr=tta_lr)

    # ---- prediction --------------------------------------------------------------------------------------
    def predict(
        self, rgb: np.ndarray, instruction: str, chain_of_thought: bool = True, reuse_prefix: bool = True,
        ground_contact: bool = False, zoom: float = 0.0, depth: np.ndarray | None = None, K=None, views: int = 1,
    ) -> Prediction:
        """One image -> Prediction; raises PoseParseError if the model's answer does not parse."""
        res = self.predict_batch([rgb], [instruction], chain_of_thought=chain_of_thought, reuse_prefix=reuse_prefix,
                                 ground_contact=ground_contact, zoom=zoom,
                                 depths=None if depth is None else [depth], Ks=None if K is None else [K],
                                 views=views)
        if isinstance(res[0], PoseParseError):
            raise res[0]
        return res[0]

    @property
    def object_view(self) -> ObjectViewConfig | None:
        """The object window this checkpoint was trained to look at; None: the whole camera image."""
        ov = self.vlm.object_view
        return None if ov is None else ObjectViewConfig.model_validate(ov)

    def view_window(self, rgb: np.ndarray, depth: np.ndarray | None, K) -> Window | None:
        """The window of `rgb` the model looks at: None (the whole image) for a checkpoint trained on whole images;
        else the object's window found in `depth` (ValueError without depth; ObjectViewError with no object)."""
        cfg = self.object_view
        if cfg is None:
            return None
        if depth is None or K is None:
            raise ValueError("this checkpoint looks at the object's window found in the depth (object_view in its "
                             "manipllm_model.json): pass the aligned depth and the intrinsics K")
        depth = np.asarray(depth)
        if depth.shape != np.asarray(rgb).shape[:2]:
            raise ValueError(f"depth {depth.shape} and image {np.asarray(rgb).shape[:2]} differ in size: depth must "
                             "be aligned to colour")
        return object_window(depth, K, cfg)

    def _views(self, rgbs: Sequence[np.ndarray], depths, Ks) -> list[Window | None | NoObjectError]:
        if self.vlm.object_view is None:
            return [None] * len(rgbs)
        if depths is None or Ks is None or len(depths) != len(rgbs) or len(Ks) != len(rgbs):
            raise ValueError("this checkpoint looks at the object's window found in the depth (object_view in its "
                             "manipllm_model.json): pass one aligned depth and one K per image")
        out: list[Window | None | NoObjectError] = []
        for rgb, depth, K in zip(rgbs, depths, Ks):
            try:
                out.append(self.view_window(rgb, depth, K))
            except ObjectViewError as exc:
                out.append(NoObjectError(str(exc), ""))
        return out

    def _predict_viewed(self, rgbs, instructions, depths, Ks, views: int = 1,
                        **kw) -> list[Prediction | PoseParseError]:
        """predict_batch on each image's object window (and, with views > 1, its jittered copies), pixels mapped
        back to the full image."""
        bases = self._views(rgbs, depths, Ks)
        idx = [i for i, w in enumerate(bases) if not isinstance(w, NoObjectError)]
        out: list[Prediction | PoseParseError] = list(bases)  # the NoObjectErrors stay
        jobs = [(i, win) for i in idx
                for win in view_windows(bases[i], rgbs[i].shape[1], rgbs[i].shape[0], views)]
        if not jobs:
            return out
        res = self._predict_batch([crop(rgbs[i], win) for i, win in jobs], [instructions[i] for i, _ in jobs], **kw)
        per_image: dict[int, list[Prediction | PoseParseError]] = {i: [] for i in idx}
        for (i, win), r in zip(jobs, res):
            if isinstance(r, Prediction):
                r.view = win
                r.pixel = win.to_full(*r.pixel)
                if r.pose_pixel is not None:
                    r.pose_pixel = win.to_full(*r.pose_pixel)
                if r.coarse_pixel is not None:
                    r.coarse_pixel = win.to_full(*r.coarse_pixel)
            per_image[i].append(r)
        for i, rs in per_image.items():
            out[i] = rs[0] if views == 1 else self._combine_views(rs)
        return out

    @staticmethod
    def _combine_views(rs: list[Prediction | PoseParseError]) -> Prediction | PoseParseError:
        """The first view that parsed, its contact pixel replaced by the trimmed mean of every parsed view's (the
        directions and the text stay that view's); the first view's error when none parsed."""
        ok = [r for r in rs if isinstance(r, Prediction)]
        if not ok:
            return rs[0]
        pred = ok[0]
        pred.view_pixels = [tuple(r.pixel) for r in ok]
        pred.pixel, pred.views_kept = combine_points(pred.view_pixels)
        return pred

    @torch.no_grad()
    def predict_batch(
        self,
        rgbs: Sequence[np.ndarray],
        instructions: Sequence[str],
        chain_of_thought: bool = True,
        reuse_prefix: bool = True,
        ground_contact: bool = False,
        zoom: float = 0.0,
        depths: Sequence[np.ndarray] | None = None,
        Ks: Sequence | None = None,
        viewed: bool = False,
        views: int = 1,
    ) -> list[Prediction | PoseParseError]:
        """Batched prediction; each entry is a Prediction or the PoseParseError for that image.

        `zoom` > 1 (with ground_contact) asks the grounding question a second time, on a crop 1/zoom the image's
        size around the first answer, and takes the contact from that answer (model/zoom.py). `depths`/`Ks` are
        needed (and only used) by a checkpoint trained on object windows: NoObjectError where no object is found.
        `viewed`: the images already are what the model looks at (validation on prepared training samples).
        `views` > 1: the object window and jittered copies of it, one contact from all (model/views.py); only for
        a checkpoint trained on object windows."""
        if len(rgbs) != len(instructions) or not rgbs:
            raise ValueError(f"need as many images as instructions (got {len(rgbs)} and {len(instructions)})")
        check_views(views)
        if views > 1 and (self.vlm.object_view is None or viewed):
            raise ValueError(f"views {views} jitters the object window: it needs a checkpoint trained on object "
                             "windows (object_view in its manipllm_model.json) and images that are not already cut "
                             "to the window")
        kw = dict(chain_of_thought=chain_of_thought, reuse_prefix=reuse_prefix, ground_contact=ground_contact,
                  zoom=zoom)
        if self.vlm.object_view is not None and not viewed:
            return self._predict_viewed(rgbs, instructions, depths, Ks, views=views, **kw)
        return self._predict_batch(rgbs, instructions, **kw)

    def _predict_batch(self, rgbs: Sequence[np.ndarray], instructions: Sequence[str], chain_of_thought: bool,
                       reuse_prefix: bool, ground_contact: bool, zoom: float) -> list[Prediction | PoseParseError]:
        if zoom and (not np.isfinite(zoom) or zoom < 1.0 or not ground_contact):
            raise ValueError(f"zoom must be 0 (off) or >= 1 with ground_contact, got {zoom} "
                             f"(ground_contact={ground_contact})")
        refused = self._untrained(chain_of_thought, ground_contact, zoom > 1.0)
        if refused:
            return [UntrainedQuestionError(refused) for _ in rgbs]
        pr, model, cfg = self.vlm.processor, self.vlm.model, self.vlm.cfg
        dev = self.vlm.device
        B = len(rgbs)
        t_all = time.perf_counter()
        pv, thw = pr.encode_images(list(rgbs))
        t_pre = (time.perf_counter() - t_all) * 1e3
        if chain_of_thought:
            questions = [[P.CATEGORY_QUESTION] for _ in range(B)]
            budgets = [cfg.max_new_tokens_category, cfg.max_new_tokens_reasoning, cfg.max_new_tokens_pose]
            names = ["category", "reasoning", "pose"]
        else:
            questions = [[P.pose_question(ins)] for ins in instructions]
            budgets, names = [cfg.max_new_tokens_pose], ["pose"]
        history = [[] for _ in range(B)]  # token ids of the whole conversation so far
        answers: list[list[str]] = [[] for _ in range(B)]
        errors: list[PoseParseError | None] = [None] * B
        timings: dict[str, float] = {"preprocess": t_pre}
        n_gen = [0] * B
        sess: DecodeSession | None = None
        for k, (name, budget) in enumerate(zip(names, budgets)):
            t0 = time.perf_counter()
            if k > 0:  # the next question depends on earlier answers
                for i in range(B):
                    if errors[i] is None:
                        questions[i].append(self._next_question(k, instructions[i], answers[i]))
                    if errors[i] is None and k == 1 and not answers[i][0].strip():
                        errors[i] = PoseParseError("chain of thought: the category turn gave no category", "")
            chunks = [
                pr.user_turn(questions[i][-1], with_image=(k == 0), first=(k == 0)) if errors[i] is None else []
                for i in range(B)
            ]
            if k == 0 or not reuse_prefix:
                rows = [h + c for h, c in zip(history, chunks)]
                rows = [r if r else [pr.pad_id] for r in rows]
                sess = DecodeSession(model, pr.pad_id, pr.im_end, banned_ids=pr.special_ids())
                sess.start(rows, [pr.mm_types(r) for r in rows], pv, thw)
            else:
                sess.extend(chunks)
            active = [e is None for e in errors]
            grammar = PoseGrammar(pr.tokenizer, pr.im_end) if (name == "pose" and cfg.constrain_pose) else None
            gen = sess.generate(budget, active=active, grammar=grammar)
            for i in range(B):
                n_gen[i] += len(gen[i]) + (1 if active[i] else 0)
                history[i] += chunks[i] + (gen[i] + [pr.im_end] if active[i] else [])
                answers[i].append(pr.decode(gen[i]).strip() if active[i] else "")
            _sync(dev)
            timings[name] = (time.perf_counter() - t0) * 1e3
        timings["total"] = (time.perf_counter() - t_all) * 1e3
        self.last_generated_tokens = [n_gen[i] for i in range(B)]
        out: list[Prediction | PoseParseError] = []
        for i in range(B):
            if errors[i] is not None:
                out.append(errors[i])
                continue
            frame = pr.frame(rgbs[i].shape[1], rgbs[i].shape[0])
            try:
                pa = P.parse_pose(answers[i][-1], frame)
            except PoseParseError as e:
                out.append(e)
                continue
            turns = list(zip(questions[i], answers[i]))
            out.append(
                Prediction(
                    pixel=(pa.u, pa.v), up=pa.up, forward=pa.forward, answer=answers[i][-1],
                    category=answers[i][0] if chain_of_thought else None,
                    reasoning=answers[i][1] if chain_of_thought else None,
                    turns=turns, timings=dict(timings), adapter_version=self.vlm.adapter_version,
                )  # fmt: skip
            )
        if ground_contact:
            self._ground(rgbs, instructions, out)
        if zoom > 1.0:
            self._refine(rgbs, instructions, out, zoom)
        return out

    def _untrained(self, chain_of_thought: bool, ground_contact: bool, zoomed: bool = False) -> str:
        """Why the checkpoint cannot answer what was asked, or "" (also when it does not say what it learned)."""
        tasks = self.vlm.trained_tasks
        if tasks is None:
            return ""
        learned = ", ".join(k for k, v in tasks.items() if v > 0)
        if chain_of_thought and tasks.get("cot", 0.0) <= 0:
            return (f"chain of thought: it learned {learned}, not the chain-of-thought turns; ask the pose question "
                    "directly (chain_of_thought false)")
        if ground_contact and tasks.get("grounding", 0.0) <= 0:
            return (f"grounding turn: it learned {learned}, not the grounding question; take the contact from the "
                    "pose answer (contact: pose)")
        if zoomed and tasks.get("grounding_zoom", 0.0) <= 0:
            return (f"zoomed grounding: it learned {learned}, not grounding on zoomed-in crops (the grounding_zoom "
                    "task); leave zoom off")
        return ""

    def _ground(self, rgbs: Sequence[np.ndarray], instructions: Sequence[str],
                out: list[Prediction | PoseParseError]) -> None:
        """Replace each parsed prediction's pixel by the grounding answer's point (in place); a grounding answer
        that does not parse turns the prediction into a PoseParseError (never a silent fallback)."""
        idx = [i for i, o in enumerate(out) if isinstance(o, Prediction)]
        if not idx:
            return
        t0 = time.perf_counter()
        questions = [P.grounding_question(instructions[i]) for i in idx]
        texts = self.ask([rgbs[i] for i in idx], questions, max_new_tokens=GROUNDING_TOKENS)
        ms = (time.perf_counter() - t0) * 1e3
        for i, q, text in zip(idx, questions, texts):
            frame = self.vlm.processor.frame(rgbs[i].shape[1], rgbs[i].shape[0])
            try:
                _, uv = P.parse_grounding(text, frame)
            except P.PromptParseError as exc:
                out[i] = PoseParseError(f"grounding turn: {exc.reason}", text)
                continue
            pred = out[i]
            pred.pose_pixel, pred.pixel = pred.pixel, uv
            pred.turns.insert(0, (q, text))
            pred.timings["grounding"] = ms
            pred.timings["total"] = pred.timings.get("total", 0.0) + ms

    def _refine(self, rgbs: Sequence[np.ndarray], instructions: Sequence[str],
                out: list[Prediction | PoseParseError], zoom: float) -> None:
        """Ask the grounding question again on a crop around each grounding answer and move the contact to the
        new answer (in place; `coarse_pixel` keeps the first). An answer that does not parse is an error, as for
        the first grounding turn."""
        idx = [i for i, o in enumerate(out) if isinstance(o, Prediction)]
        if not idx:
            return
        t0 = time.perf_counter()
        wins = [zoom_window(out[i].pixel, zoom, rgbs[i].shape[1], rgbs[i].shape[0]) for i in idx]
        questions = [P.grounding_question(instructions[i]) for i in idx]
        texts = self.ask([crop(rgbs[i], w) for i, w in zip(idx, wins)], questions, max_new_tokens=GROUNDING_TOKENS)
        ms = (time.perf_counter() - t0) * 1e3
        for i, win, q, text in zip(idx, wins, questions, texts):
            try:
                _, uv = P.parse_grounding(text, self.vlm.processor.frame(win.width, win.height))
            except P.PromptParseError as exc:
                out[i] = PoseParseError(f"zoomed grounding turn: {exc.reason}", text)
                continue
            pred = out[i]
            pred.coarse_pixel, pred.pixel = pred.pixel, win.to_full(*uv)
            pred.turns.insert(1, (f"[{zoom:g}x crop at ({win.x0}, {win.y0})] {q}", text))
            pred.timings["grounding_zoom"] = ms
            pred.timings["total"] = pred.timings.get("total", 0.0) + ms

    @torch.no_grad()
    def ask(self, rgbs: Sequence[np.ndarray], questions: Sequence[str], max_new_tokens: int = 64) -> list[str]:
        """One free question per image (greedy), e.g. the affordance question during validation."""
        pr = self.vlm.processor
        pv, thw = pr.encode_images(list(rgbs))
        rows = [pr.user_turn(q, with_image=True, first=True) for q in questions]
        sess = DecodeSession(self.vlm.model, pr.pad_id, pr.im_end, banned_ids=pr.special_ids())
        sess.start(rows, [pr.mm_types(r) for r in rows], pv, thw)
        return [pr.decode(g).strip() for g in sess.generate(max_new_tokens)]

    @staticmethod
    def _next_question(k: int, instruction: str, answers: list[str]) -> str:
        if k == 1:
            return P.reasoning_question(instruction, answers[0] or "object")
        return P.pose_question(instruction)

    # ---- test-time adaptation ----------------------------------------------------------------------------
    def affordance_loss(
        self, rgb: np.ndarray, instruction: str, pixel: tuple[float, float], success: bool
    ) -> torch.Tensor:
        """Cross-entropy of the APR answer ("yes" if the attempt at `pixel` succeeded, else "no").

        The question is the paper's single-point APR prompt; `instruction` is not part of it (as in training)
        and is accepted so callers can pass what they have.
        """
        del instruction
        frame = self.vlm.processor.frame(rgb.shape[1], rgb.shape[0])
        q = P.affordance_question(frame, [pixel])
        ex = P.Example("affordance", [P.Turn(q, P.affordance_answer([bool(success)]))])
        from manipllm_ros.model.processor import collate

        batch = collate([self.vlm.processor.encode_example(rgb, ex)], self.vlm.processor.pad_id)
        loss, _ = self.vlm.loss(batch)
        return loss

    def tta_step(self, rgb: np.ndarray, instruction: str, pixel: tuple[float, float], success: bool,
                 depth: np.ndarray | None = None, K=None) -> float:
        """One AdamW step on the V-Adapter only (everything else frozen for the step); returns the loss.

        A checkpoint trained on object windows is asked about the window it predicted from (found again in
        `depth`: the same function of the same frame), with `pixel` (full-image) moved into it."""
        win = self.view_window(rgb, depth, K)
        if win is not None:
            if not win.contains(*pixel):
                raise ValueError(f"pixel {tuple(pixel)} is outside the object window {win}: not an attempt this "
                                 "model proposed on this frame")
            rgb, pixel = crop(rgb, win), win.to_crop(*pixel)
        v_params = [p for _, p in self.vlm.named_group_params("v_adapter")]
        prev = {id(p): p.requires_grad for p in self.vlm.peft.parameters()}
        self.vlm.set_trainable(("v_adapter",))
        try:
            if self._tta_opt is None:
                self._tta_opt = torch.optim.AdamW(v_params, lr=self.tta_lr, weight_decay=0.0)
            self._tta_opt.zero_grad(set_to_none=True)
            loss = self.affordance_loss(rgb, instruction, pixel, success)
            loss.backward()
            self._tta_opt.step()
            self._tta_opt.zero_grad(set_to_none=True)
        finally:
            for p in self.vlm.peft.parameters():
                p.requires_grad_(prev[id(p)])
        self.vlm.adapter_version = f"{self.vlm.adapter_version.split('+tta')[0]}+tta{self._tta_count()}"
        return float(loss.detach())

    def _tta_count(self) -> int:
        st = self._tta_opt.state if self._tta_opt is not None else {}
        steps = [int(s["step"]) for s in st.values() if "step" in s]
        return max(steps) if steps else 0

    # ---- adapters ----------------------------------------------------------------------------------------
    @property
    def adapter_version(self) -> str:
        return self.vlm.adapter_version

    def save_adapters(self, directory: str | Path) -> str:
        return self.vlm.save_adapters(directory)

    def load_adapters(self, directory: str | Path) -> str:
        """Hot swap the adapters of the live model; the loaded state becomes the one `reset_adapters` restores."""
        v = self.vlm.load_adapters(directory)
        self.vlm.mark_saved()
        self._tta_opt = None
        return v

    def reset_adapters(self) -> str:
        self._tta_opt = None
        return self.vlm.reset_adapters()

    def save(self, directory: str | Path) -> None:
        self.vlm.save(directory)
