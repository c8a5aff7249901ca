"""Where to touch and how to orient the gripper: the model, and the baselines it is measured against.

Every proposer sees only what a real system sees (RGB, aligned depth, intrinsics, the instruction) except the
oracle baseline, which is told the movable-part mask (the data-collection heuristic). A proposer that cannot
answer returns a `Proposal` with `error` set: the episode then counts as a failure, never as dropped.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Proposal:
    u: int = -1
    v: int = -1
    up_cam: np.ndarray = field(default_factory=lambda: np.zeros(3))
    forward_cam: np.ndarray = field(default_factory=lambda: np.zeros(3))
    error: str = ""
    category: str = ""
    reasoning: str = ""
    latency_ms: float = 0.0
    up_note: str = ""  # where the up came from: model | depth | model (depth: why not)
    pixel_from: str = ""  # whose answer the model's contact pixel is: pose | grounding
    contact_note: str = ""  # how agreement chose, where a snap moved the pixel from

    @property
    def ok(self) -> bool:
        return not self.error


def _perpendicular(up: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=3)
    a -= a.dot(up) * up
    return a / np.linalg.norm(a)


class Proposer(abc.ABC):
    name: str

    @abc.abstractmethod
    def propose(self, obs, instruction: str, rng: np.random.Generator) -> Proposal: ...


class _RandomPixelNormal(Proposer):
    """A random pixel of `region` with the gripper up = minus the surface normal estimated from depth."""

    region: str

    def propose(self, obs, instruction: str, rng: np.random.Generator) -> Proposal:
        mask = getattr(obs, self.region) & (obs.depth > 0) & (np.linalg.norm(obs.normals, axis=-1) > 0.5)
        cand = np.argwhere(mask)
        if len(cand) == 0:
            return Proposal(error=f"{self.name}: no pixel of the {self.region.replace('_', ' ')} with depth")
        v, u = (int(x) for x in cand[rng.integers(len(cand))])
        up = -np.asarray(obs.normals[v, u], float)
        up /= np.linalg.norm(up)
        return Proposal(u, v, up, _perpendicular(up, rng))


class RandomObjectPixel(_RandomPixelNormal):
    """Baseline: a random pixel on the object (any part) + surface-normal direction."""

    name, region = "random-object", "object_mask"


class RandomPartPixel(_RandomPixelNormal):
    """Oracle baseline: a random pixel on the movable part (knows the mask) + surface-normal direction."""

    name, region = "random-part", "mask"


class ModelProposer(Proposer):
    """The trained MLLM, with or without chain of thought; `contact` and `up_from` say where the contact pixel
    and the up direction come from, as in the pose service (`contact.resolve_contact`, `handle_px` included);
    `zoom` > 1 asks the grounding question again on a crop around the first answer; `views` > 1 asks on that many
    jittered object windows and takes the trimmed mean of their contacts (`PosePredictor.predict`,
    model/views.py)."""

    def __init__(self, checkpoint: str, chain_of_thought: bool = True, device: str | None = "cpu",
                 contact: str = "pose", up_from: str = "model", snap_px: int = 0, zoom: float = 0.0,
                 views: int = 1, protrusion_px: int = 0, protrusion_deg: float | None = None,
                 handle_px: int = 0, skip_outline: bool = False, stay_on_own: bool = False) -> None:
        from manipllm_ros.contact import check_protrusion_deg, check_skip_outline, check_sources, check_stay_on_own
        from manipllm_ros.model.policy import PosePredictor
        from manipllm_ros.model.views import check_views

        check_sources(contact, up_from, zoom)  # before the model loads
        check_views(views)
        check_protrusion_deg(protrusion_deg, protrusion_px)
        check_skip_outline(skip_outline, protrusion_px)
        check_stay_on_own(stay_on_own, protrusion_px, snap_px)
        self.predictor = PosePredictor.load(checkpoint, device=device)
        self.chain_of_thought = chain_of_thought
        self.contact = contact
        self.up_from = up_from
        self.snap_px = snap_px
        self.zoom = zoom
        self.views = views
        self.protrusion_px = protrusion_px
        self.protrusion_deg = protrusion_deg
        self.handle_px = handle_px
        self.skip_outline = skip_outline
        self.stay_on_own = stay_on_own
        self.name = model_proposer_name(ModelProposerSpec(chain_of_thought, contact, up_from, snap_px, zoom, views,
                                                          protrusion_px, protrusion_deg, handle_px, skip_outline,
                                                          stay_on_own))

    def propose(self, obs, instruction: str, rng: np.random.Generator) -> Proposal:
        from manipllm_ros.contact import needs_grounding, resolve_contact
        from manipllm_ros.prompts import PoseParseError

        try:
            pred = self.predictor.predict(obs.rgb, instruction, chain_of_thought=self.chain_of_thought,
                                          ground_contact=needs_grounding(self.contact), zoom=self.zoom,
                                          depth=obs.depth, K=obs.intrinsics.K, views=self.views)
        except PoseParseError as exc:
            return Proposal(error=str(exc))
        c = resolve_contact(pred, obs.depth, obs.intrinsics.K, self.contact, self.up_from, snap_px=self.snap_px,
                            protrusion_px=self.protrusion_px, protrusion_deg=self.protrusion_deg,
                            handle_px=self.handle_px, skip_outline=self.skip_outline,
                            stay_on_own=self.stay_on_own)
        return Proposal(int(round(c.u)), int(round(c.v)), c.up, c.forward,
                        category=pred.category or "", reasoning=pred.reasoning or "",
                        latency_ms=float(pred.timings.get("total", 0.0)), up_note=c.up_from,
                        pixel_from=c.pixel_from, contact_note=c.note)


@dataclass(frozen=True)
class ModelProposerSpec:
    """What a model proposer name says: inference mode, contact and up sources, snap radius, zoom, views,
    protrusion radius, the angle the raised part must face within, the handle snap's radius, whether a raised part
    that is the outline of the contact's surface is refused, whether the contact stays on its own raised part."""

    chain_of_thought: bool = True
    contact: str = "pose"
    up_from: str = "model"
    snap_px: int = 0
    zoom: float = 0.0
    views: int = 1
    protrusion_px: int = 0
    protrusion_deg: float | None = None
    handle_px: int = 0
    skip_outline: bool = False
    stay_on_own: bool = False


_CONTACT_SUFFIX = {"pose": "", "grounding": "-grounded", "agreement": "-agreed"}
_NAME = re.compile(r"model-(cot|direct)(-grounded|-agreed)?(?:-zoom(\d+(?:\.\d+)?))?(?:-snap(\d+))?(-depthup)?"
                   r"(?:-views(\d+))?(?:-raised(\d+)(?:-facing(\d+(?:\.\d+)?))?(-nooutline)?(-stayown)?)?"
                   r"(?:-handle(\d+))?")
NAME_GRAMMAR = ("model-{cot,direct}[-grounded|-agreed][-zoomZ][-snapR][-depthup][-viewsN]"
                "[-raisedR[-facingA][-nooutline][-stayown]][-handleH]")


def model_proposer_name(spec: ModelProposerSpec) -> str:
    """model-{cot,direct}[-grounded|-agreed][-zoomZ][-snapR][-depthup][-viewsN][-raisedR[-facingA][-nooutline]
    [-stayown]][-handleH]: the proposer names of `manipllm eval`."""
    return (("model-cot" if spec.chain_of_thought else "model-direct") + _CONTACT_SUFFIX[spec.contact]
            + (f"-zoom{spec.zoom:g}" if spec.zoom else "") + (f"-snap{spec.snap_px}" if spec.snap_px else "")
            + ("-depthup" if spec.up_from == "depth" else "") + (f"-views{spec.views}" if spec.views > 1 else "")
            + (f"-raised{spec.protrusion_px}" if spec.protrusion_px else "")
            + (f"-facing{spec.protrusion_deg:g}" if spec.protrusion_px and spec.protrusion_deg is not None else "")
            + ("-nooutline" if spec.protrusion_px and spec.skip_outline else "")
            + ("-stayown" if spec.protrusion_px and spec.stay_on_own else "")
            + (f"-handle{spec.handle_px}" if spec.handle_px else ""))


def parse_model_proposer(name: str) -> ModelProposerSpec:
    """The settings a model proposer name stands for; ValueError for any other name."""
    m = _NAME.fullmatch(name)
    if m is None:
        raise ValueError(f"unknown proposer {name!r}: random-object | random-part | {NAME_GRAMMAR}")
    contact = {"-grounded": "grounding", "-agreed": "agreement"}.get(m.group(2) or "", "pose")
    views = int(m.group(6) or 1)
    if m.group(6) is not None:
        from manipllm_ros.model.views import check_views

        try:
            check_views(views)
        except ValueError as exc:
            raise ValueError(f"proposer {name!r}: {exc}") from None
        if views == 1:
            raise ValueError(f"proposer {name!r}: one view is the default, drop '-views1'")
    if m.group(7) is not None and int(m.group(7)) == 0:
        raise ValueError(f"proposer {name!r}: a raised-part radius of 0 is off, drop '-raised0'")
    facing = None if m.group(8) is None else float(m.group(8))
    if facing is not None:
        from manipllm_ros.contact import check_protrusion_deg

        try:
            check_protrusion_deg(facing, int(m.group(7)))
        except ValueError as exc:
            raise ValueError(f"proposer {name!r}: {exc}") from None
    if m.group(10) is not None:
        from manipllm_ros.contact import check_stay_on_own

        try:
            check_stay_on_own(True, int(m.group(7)), int(m.group(4) or 0))
        except ValueError as exc:
            raise ValueError(f"proposer {name!r}: {exc}") from None
    if m.group(11) is not None and int(m.group(11)) == 0:
        raise ValueError(f"proposer {name!r}: a handle radius of 0 is off, drop '-handle0'")
    return ModelProposerSpec(m.group(1) == "cot", contact, "depth" if m.group(5) else "model", int(m.group(4) or 0),
                             float(m.group(3) or 0.0), views, int(m.group(7) or 0), facing, int(m.group(11) or 0),
                             m.group(9) is not None, m.group(10) is not None)


def make_proposer(name: str, checkpoint: str | None = None) -> Proposer:
    if name == "random-object":
        return RandomObjectPixel()
    if name == "random-part":
        return RandomPartPixel()
    spec = parse_model_proposer(name)
    if not checkpoint:
        raise ValueError(f"proposer {name!r} needs --checkpoint (a trained model directory)")
    return ModelProposer(checkpoint, chain_of_thought=spec.chain_of_thought, contact=spec.contact,
                         up_from=spec.up_from, snap_px=spec.snap_px, zoom=spec.zoom, views=spec.views,
                         protrusion_px=spec.protrusion_px, protrusion_deg=spec.protrusion_deg,
                         handle_px=spec.handle_px, skip_outline=spec.skip_outline, stay_on_own=spec.stay_on_own)
