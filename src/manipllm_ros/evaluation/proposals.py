"""Where to touch and how to orient the gripper: the model, and the baselines it is measured against.

Every proposer sees only what a real system sees (RGB, aligned depth, intrinsics, the instruction) except the
oracle baseline, which is told the movable-part mask (the data-collection heuristic). A proposer that cannot
answer returns a `Proposal` with `error` set: the episode then counts as a failure, never as dropped.
"""

from __future__ import annotations

import abc
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
    up_note: str = ""  # where the up direction came from, when a row chose depth

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
    """The trained MLLM, with or without chain of thought; `ground_contact` takes the contact pixel from the
    model's grounding answer (`PosePredictor.predict`); `up_from="depth"` replaces the model's up by minus the
    surface normal measured in the depth image at the contact (`geometry.up_from_depth`, as the pose service
    does), keeping the model's up where the depth there is no clean plane."""

    def __init__(self, checkpoint: str, chain_of_thought: bool = True, device: str | None = "cpu",
                 ground_contact: bool = False, up_from: str = "model") -> None:
        from manipllm_ros.model.policy import PosePredictor

        if up_from not in ("model", "depth"):
            raise ValueError(f"up_from must be model | depth, got {up_from!r}")
        self.predictor = PosePredictor.load(checkpoint, device=device)
        self.chain_of_thought = chain_of_thought
        self.ground_contact = ground_contact
        self.up_from = up_from
        self.name = model_proposer_name(chain_of_thought, ground_contact, up_from)

    def propose(self, obs, instruction: str, rng: np.random.Generator) -> Proposal:
        from manipllm_ros import geometry as G
        from manipllm_ros.prompts import PoseParseError

        try:
            pred = self.predictor.predict(obs.rgb, instruction, chain_of_thought=self.chain_of_thought,
                                          ground_contact=self.ground_contact)
        except PoseParseError as exc:
            return Proposal(error=str(exc))
        u, v = int(round(pred.pixel[0])), int(round(pred.pixel[1]))
        up, forward, up_note = np.asarray(pred.up, float), np.asarray(pred.forward, float), ""
        if self.up_from == "depth":
            up, forward, why = G.up_from_depth(u, v, obs.depth, obs.intrinsics.K, up, forward)
            up_note = f"model up kept: {why}" if why else "up from depth"
        return Proposal(u, v, up, forward,
                        category=pred.category or "", reasoning=pred.reasoning or "",
                        latency_ms=float(pred.timings.get("total", 0.0)), up_note=up_note)


def model_proposer_name(chain_of_thought: bool, ground_contact: bool, up_from: str = "model") -> str:
    """model-{cot,direct}[-grounded][-depthup]: the proposer names of `manipllm eval --proposer`."""
    return (("model-cot" if chain_of_thought else "model-direct") + ("-grounded" if ground_contact else "")
            + ("-depthup" if up_from == "depth" else ""))


MODEL_PROPOSERS = tuple(model_proposer_name(c, g, u) for u in ("model", "depth") for g in (False, True)
                        for c in (True, False))


def make_proposer(name: str, checkpoint: str | None = None) -> Proposer:
    if name == "random-object":
        return RandomObjectPixel()
    if name == "random-part":
        return RandomPartPixel()
    if name in MODEL_PROPOSERS:
        if not checkpoint:
            raise ValueError(f"proposer {name!r} needs --checkpoint (a trained model directory)")
        return ModelProposer(checkpoint, chain_of_thought=name.startswith("model-cot"),
                             ground_contact="-grounded" in name, up_from="depth" if name.endswith("-depthup")
                             else "model")
    raise ValueError(f"unknown proposer {name!r}: random-object | random-part | {' | '.join(MODEL_PROPOSERS)}")
