"""Procedural articulated objects (30 categories) as self-contained MJCF, standing in for PartNet-Mobility.

Every object is built from MuJoCo primitives by one archetype function (cabinet-with-door, drawer, lid,
lever, slider) with category-specific parameter ranges, so a (category, seed) pair always gives the same
object. Conventions shared by all generated objects (the loader in `loader.py` maps third-party files onto
the same metadata):

- z is up, the object stands on z = 0, its front (the side the part opens towards) faces +x;
- the root body is named ``object`` and carries no joint (the world fixes it); the movable body carries the
  one joint of interest, whose position 0 is "closed" and whose positive direction "opens";
- object geoms collide only with the gripper (contype 2 / conaffinity 1), never with each other, so parts
  that touch when closed do not jam; joint limits keep the motion physical.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

TRAIN_CATEGORIES: tuple[str, ...] = (
    "storage_cabinet_door", "cabinet_drawer", "refrigerator", "microwave", "safe", "box_lid", "laptop",
    "display_tilt", "trash_can_lid", "suitcase_lid", "pot_lid", "toaster_lever", "folding_chair",
    "lamp_arm", "dispenser_lever", "room_door", "oven_door", "remote_slide_cover", "lighter_lid",
    "mouse_button",
)
HELDOUT_CATEGORIES: tuple[str, ...] = (
    "toilet_lid", "table_drawer", "washing_machine_door", "dishwasher_door", "kettle_lid", "faucet_handle",
    "sliding_window", "stapler", "usb_cap", "phone_slide",
)
ALL_CATEGORIES: tuple[str, ...] = TRAIN_CATEGORIES + HELDOUT_CATEGORIES
HANDLES = ("bar", "knob", "recessed", "none")
OBJ_CONTYPE, OBJ_CONAFFINITY = 2, 1  # object geoms touch the gripper (contype 1, conaffinity 2) only


class UnknownCategoryError(ValueError):
    """The category name is not one of the 30 generated categories."""


@dataclass(frozen=True)
class ObjectMeta:
    """What a sample needs to know about the object besides its geometry."""

    object_id: str
    category: str  # e.g. "microwave" (display name; underscores become spaces)
    category_split: str  # "train" | "heldout"
    instance_split: str  # "train" | "test_seen" | "test_unseen" (see `instance_split`)
    instruction: str  # "open the door of the microwave"
    part: str  # noun of the movable part ("door")
    movable_body: str  # MJCF body name of the movable part
    joint_name: str
    joint_type: str  # "hinge" | "slide"
    joint_range: tuple[float, float]  # joint units (rad or m); 0 = closed
    action: str  # "pull" (move along -up after contact) or "push" (along +up)
    handle: str  # bar | knob | recessed | none
    hinge_side: str  # left | right | top | bottom | none (as seen from the front; "top" = far/back edge)
    reasoning: str  # templated "where to act" sentence
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["joint_range"] = list(self.joint_range)
        return d


@dataclass(frozen=True)
class ObjectSpec:
    """A self-contained MJCF string plus its metadata; `mjcf` compiles alone (`MjModel.from_xml_string`)."""

    mjcf: str
    meta: ObjectMeta
    assets: dict[str, bytes] = field(default_factory=dict)  # mesh/texture files referenced by name
    model_dir: str | None = None  # directory relative asset paths resolve against (third-party files)


def category_name(category: str) -> str:
    return category.replace("_", " ")


def instance_split(category: str, seed: int) -> str:
    """Held-out categories -> test_unseen; training categories: seed % 5 == 0 -> test_seen, else train."""
    if category in HELDOUT_CATEGORIES:
        return "test_unseen"
    return "test_seen" if seed % 5 == 0 else "train"


# ----------------------------------------------------------------------------------------------------------
# A tiny MJCF writer: geoms and one movable body inside the root body.


def _f(v: float | np.ndarray | tuple) -> str:
    return " ".join(f"{float(x):.5g}" for x in np.atleast_1d(np.asarray(v, dtype=float)))


class _Mjcf:
    def __init__(self, name: str, rng: np.random.Generator):
        self.name = name
        self.rng = rng
        self.assets: list[str] = []
        self.base: list[str] = []
        self.part: list[str] = []
        self._n = 0
        self._mats: dict[str, str] = {}

    def material(self, key: str, rgb: np.ndarray | None = None, texture: str | None = None) -> str:
        if key in self._mats:
            return self._mats[key]
        rgb = self.rng.uniform(0.1, 0.95, 3) if rgb is None else np.asarray(rgb)
        name = f"mat_{key}"
        if texture is None:
            texture = str(self.rng.choice(["none", "none", "checker", "gradient"]))
        if texture != "none":
            rgb2 = np.clip(rgb * self.rng.uniform(0.5, 0.85), 0, 1)
            extra = ' mark="random" random="0.05" markrgb="1 1 1"' if texture == "checker" else ""
            self.assets.append(
                f'<texture name="tex_{key}" type="2d" builtin="{texture}" rgb1="{_f(rgb)}" rgb2="{_f(rgb2)}"'
                f' width="64" height="64"{extra}/>'
            )
            rep = self.rng.integers(2, 6)
            self.assets.append(
                f'<material name="{name}" texture="tex_{key}" texrepeat="{rep} {rep}" specular="0.3"'
                f' shininess="{self.rng.uniform(0.1, 0.6):.3g}"/>'
            )
        else:
            self.assets.append(
                f'<material name="{name}" rgba="{_f(rgb)} 1" specular="{self.rng.uniform(0.1, 0.5):.3g}"'
                f' shininess="{self.rng.uniform(0.1, 0.8):.3g}"/>'
            )
        self._mats[key] = name
        return name

    def geom(self, where: str, kind: str, pos, size, mat: str, euler=None, density: float = 300.0) -> None:
        self._n += 1
        e = f' euler="{_f(euler)}"' if euler is not None else ""
        line = (
            f'<geom name="g{self._n}_{where}" type="{kind}" pos="{_f(pos)}" size="{_f(size)}"{e}'
            f' material="{mat}" density="{density:.4g}" contype="{OBJ_CONTYPE}" conaffinity="{OBJ_CONAFFINITY}"/>'
        )
        (self.base if where == "base" else self.part).append(line)

    def box(self, where: str, center, half, mat: str, **kw) -> None:
        self.geom(where, "box", center, half, mat, **kw)

    def xml(self, part_name: str, part_pos, joint: str, jtype: str, axis, rng: tuple[float, float],
            damping: float, friction: float, armature: float = 0.01,
            spring: tuple[float, float] | None = None) -> str:
        base = "\n      ".join(self.base)
        part = "\n        ".join(self.part)
        assets = "\n    ".join(self.assets)
        sp = f' stiffness="{spring[0]:.4g}" springref="{spring[1]:.4g}"' if spring else ""
        return f"""<mujoco model="{self.name}">
  <compiler angle="radian"/>
  <asset>
    {assets}
  </asset>
  <worldbody>
    <body name="object">
      {base}
      <body name="{part_name}" pos="{_f(part_pos)}">
        <joint name="{joint}" type="{jtype}" axis="{_f(axis)}" range="{rng[0]:.5g} {rng[1]:.5g}" limited="true"
               damping="{damping:.4g}" frictionloss="{friction:.4g}" armature="{armature:.4g}"{sp}/>
        {part}
      </body>
    </body>
  </worldbody>
</mujoco>
"""


# ----------------------------------------------------------------------------------------------------------
# Archetypes. Each returns (xml, partial metadata dict). `s` = sizes drawn from the category's ranges.


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _handle_geoms(m: _Mjcf, handle: str, face_x: float, y: float, z: float, along: str, length: float,
                  scale: float, mat: str) -> None:
    """A handle on a front face (x = face_x, facing +x) centred at (y, z); bar runs along y or z."""
    r = 0.012 * scale
    off = 0.035 * scale
    if handle == "bar":
        euler = (0, 0, 0) if along == "z" else (math.pi / 2, 0, 0)
        m.geom("part", "cylinder", (face_x + off, y, z), (r, length / 2), mat, euler=euler)
        d = np.array([0, 0, length / 2 - r]) if along == "z" else np.array([0, length / 2 - r, 0])
        for sgn in (-1, 1):
            c = np.array([face_x + off / 2, y, z]) + sgn * d
            m.box("part", c, (off / 2, r * 0.7, r * 0.7), mat)
    elif handle == "knob":
        m.geom("part", "cylinder", (face_x + off / 2, y, z), (r * 0.6, off / 2), mat, euler=(0, math.pi / 2, 0))
        m.geom("part", "sphere", (face_x + off, y, z), (r * 1.8,), mat)
    elif handle == "recessed":
        half = (0.004 * scale, length / 2, 0.012 * scale) if along == "y" else (0.004 * scale, 0.012 * scale,
                                                                               length / 2)
        m.box("part", (face_x + 0.002 * scale, y, z), half, m.material("recess", rgb=np.array([0.08, 0.08, 0.08]),
                                                                       texture="none"))


def _door_cabinet(m: _Mjcf, rng, cat: str, W: float, H: float, D: float, *, hinge_side: str, handle: str,
                  t: float, door_frac: float = 1.0, z0: float = 0.0, frame_only: bool = False,
                  round_door: bool = False, extras: Callable[[_Mjcf], None] | None = None) -> dict:
    """Carcass of width W (y), height H (z), depth D (x) with a front door on a side or bottom hinge."""
    body = m.material("body")
    door = m.material("door")
    hmat = m.material("handle", texture="none")
    if frame_only:  # room door: two posts and a lintel around an opening
        m.box("base", (0, -W / 2 - t, H / 2 + z0), (D / 2, t, H / 2 + t), body)
        m.box("base", (0, W / 2 + t, H / 2 + z0), (D / 2, t, H / 2 + t), body)
        m.box("base", (0, 0, H + z0 + t), (D / 2, W / 2 + 2 * t, t), body)
        front = D / 2
    else:
        m.box("base", (0, 0, z0 + t / 2), (D / 2, W / 2, t / 2), body)  # bottom
        m.box("base", (0, 0, z0 + H - t / 2), (D / 2, W / 2, t / 2), body)  # top
        m.box("base", (-D / 2 + t / 2, 0, z0 + H / 2), (t / 2, W / 2, H / 2), body)  # back
        for sgn in (-1, 1):
            m.box("base", (0, sgn * (W / 2 - t / 2), z0 + H / 2), (D / 2, t / 2, H / 2), body)
        front = D / 2
        if z0 > 0:  # legs / plinth
            m.box("base", (0, 0, z0 / 2), (D / 2 * 0.9, W / 2 * 0.9, z0 / 2), body)
    if extras is not None:
        extras(m)
    dw = W * door_frac  # door width (leaves a fixed panel when < 1, e.g. a microwave's control panel)
    dt = t
    scale = max(0.25, min(2.0, H / 0.6))
    if hinge_side in ("left", "right"):
        sgn = -1.0 if hinge_side == "left" else 1.0
        y_h = sgn * W / 2
        ppos = (front + dt / 2, y_h, z0 + H / 2)
        axis = (0, 0, -1) if hinge_side == "left" else (0, 0, 1)
        cy = -sgn * dw / 2
        if round_door:
            rad = min(dw, H) / 2 * 0.9
            m.geom("part", "cylinder", (0, cy, 0), (rad, dt / 2), door, euler=(0, math.pi / 2, 0))
            m.geom("part", "cylinder", (dt / 2 + 0.002, cy, 0), (rad * 0.7, 0.003), m.material(
                "glass", rgb=np.array([0.15, 0.2, 0.25]), texture="none"), euler=(0, math.pi / 2, 0))
            hy = cy - sgn * rad * 0.8
        else:
            m.box("part", (0, cy, 0), (dt / 2, dw / 2, H / 2), door)
            hy = -sgn * (dw - 0.08 * scale * 0.6)
        _handle_geoms(m, handle, dt / 2, hy, 0.0, "z", min(0.5 * H, 0.25 * scale), scale, hmat)
    else:  # bottom hinge: the door falls open towards the viewer
        ppos = (front + dt / 2, 0, z0)
        axis = (0, 1, 0)
        m.box("part", (0, 0, H / 2), (dt / 2, W / 2, H / 2), door)
        if cat in ("oven_door", "dishwasher_door"):
            m.box("part", (dt / 2 + 0.001, 0, H * 0.55), (0.002, W * 0.35, H * 0.25),
                  m.material("glass", rgb=np.array([0.1, 0.12, 0.15]), texture="none"))
        _handle_geoms(m, handle, dt / 2, 0.0, H - 0.06 * scale, "y", 0.6 * W, scale, hmat)
    return {"part_pos": ppos, "axis": axis}


def _lid_box(m: _Mjcf, rng, W: float, H: float, D: float, *, lid_t: float, handle: str, round_body: bool = False,
             lid_overhang: float = 0.0, lid_frac: float = 1.0, lid_x0: float | None = None) -> dict:
    """Container with a lid hinged along its back top edge (axis y); the lid opens upwards."""
    body = m.material("body")
    lidm = m.material("lid")
    hmat = m.material("handle", texture="none")
    if round_body:
        r = min(W, D) / 2
        m.geom("base", "cylinder", (0, 0, H / 2), (r, H / 2), body)
    else:
        m.box("base", (0, 0, H / 2), (D / 2, W / 2, H / 2), body)
    ld = D * lid_frac
    x0 = -D / 2 if lid_x0 is None else lid_x0
    ppos = (x0, 0, H + lid_t / 2)
    if round_body:
        r = min(W, ld) / 2
        m.geom("part", "cylinder", (r, 0, 0), (r + lid_overhang, lid_t / 2), lidm)
        L = 2 * r
    else:
        m.box("part", (ld / 2, 0, 0), (ld / 2 + lid_overhang, W / 2 + lid_overhang, lid_t / 2), lidm)
        L = ld
    scale = max(0.15, min(2.0, W / 0.4))
    hz = lid_t / 2
    if handle == "bar":
        r = 0.01 * scale
        m.geom("part", "cylinder", (L - 0.06 * scale, 0, hz + 0.03 * scale), (r, 0.2 * W), hmat,
               euler=(math.pi / 2, 0, 0))
        for s in (-1, 1):
            m.box("part", (L - 0.06 * scale, s * (0.2 * W - r), hz + 0.015 * scale),
                  (r * .7, r * .7, 0.015 * scale), hmat)
    elif handle == "knob":
        kx = L / 2 if round_body else L - 0.08 * scale
        m.geom("part", "cylinder", (kx, 0, hz + 0.01 * scale), (0.006 * scale, 0.01 * scale), hmat)
        m.geom("part", "sphere", (kx, 0, hz + 0.025 * scale), (0.02 * scale,), hmat)
    elif handle == "recessed":  # a lip on the front edge
        m.box("part", (L + lid_overhang + 0.006 * scale, 0, 0), (0.006 * scale, 0.3 * W, lid_t / 2 * 0.8),
              hmat)
    return {"part_pos": ppos, "axis": (0, -1, 0)}


@dataclass(frozen=True)
class _Cat:
    kind: str  # door | drawer | lid | lever | slider
    part: str
    verb: str  # instruction verb phrase, e.g. "open"
    joint_type: str
    range_: tuple[float, float]  # upper limit range (rad or m) to draw from
    handles: tuple[str, ...] = HANDLES
    action: str = "pull"


CATS: dict[str, _Cat] = {
    "storage_cabinet_door": _Cat("door", "door", "open", "hinge", (1.3, 2.0)),
    "cabinet_drawer": _Cat("drawer", "drawer", "open", "slide", (0.2, 0.35)),
    "refrigerator": _Cat("door", "door", "open", "hinge", (1.4, 2.0), ("bar", "recessed", "none")),
    "microwave": _Cat("door", "door", "open", "hinge", (1.3, 1.8), ("bar", "recessed", "none")),
    "safe": _Cat("door", "door", "open", "hinge", (1.3, 1.8), ("bar", "knob")),
    "box_lid": _Cat("lid", "lid", "open", "hinge", (1.4, 2.2)),
    "laptop": _Cat("lid", "screen", "open", "hinge", (1.6, 2.2), ("recessed", "none")),
    "display_tilt": _Cat("lever", "screen", "tilt", "hinge", (0.35, 0.6), ("none", "recessed")),
    "trash_can_lid": _Cat("lid", "lid", "open", "hinge", (1.4, 2.0), ("recessed", "none", "knob")),
    "suitcase_lid": _Cat("lid", "lid", "open", "hinge", (1.4, 2.0), ("bar", "recessed", "none")),
    "pot_lid": _Cat("lid", "lid", "lift", "hinge", (1.2, 1.8), ("knob", "bar")),
    "toaster_lever": _Cat("lever", "lever", "push down", "slide", (0.04, 0.07), ("knob", "none"), "push"),
    "folding_chair": _Cat("lever", "backrest", "fold", "hinge", (1.0, 1.4), ("none",)),
    "lamp_arm": _Cat("lever", "arm", "raise", "hinge", (0.6, 1.0), ("none", "knob")),
    "dispenser_lever": _Cat("lever", "lever", "press", "hinge", (0.25, 0.45), ("none",), "push"),
    "room_door": _Cat("door", "door", "open", "hinge", (1.3, 1.9), ("bar", "knob")),
    "oven_door": _Cat("door", "door", "open", "hinge", (1.2, 1.57), ("bar", "recessed")),
    "remote_slide_cover": _Cat("slider", "cover", "slide open", "slide", (0.03, 0.05), ("recessed", "none")),
    "lighter_lid": _Cat("lid", "lid", "open", "hinge", (1.6, 2.4), ("none", "recessed")),
    "mouse_button": _Cat("lever", "button", "press", "hinge", (0.08, 0.14), ("none",), "push"),
    "toilet_lid": _Cat("lid", "lid", "open", "hinge", (1.4, 1.8), ("none", "recessed")),
    "table_drawer": _Cat("drawer", "drawer", "open", "slide", (0.2, 0.35)),
    "washing_machine_door": _Cat("door", "door", "open", "hinge", (1.3, 1.9), ("bar", "recessed", "none")),
    "dishwasher_door": _Cat("door", "door", "open", "hinge", (1.2, 1.57), ("bar", "recessed")),
    "kettle_lid": _Cat("lid", "lid", "open", "hinge", (1.2, 1.8), ("knob", "none", "recessed")),
    "faucet_handle": _Cat("lever", "handle", "lift", "hinge", (0.5, 0.8), ("none",)),
    "sliding_window": _Cat("slider", "window", "slide open", "slide", (0.3, 0.5), ("bar", "recessed")),
    "stapler": _Cat("lever", "arm", "press", "hinge", (0.2, 0.35), ("none",), "push"),
    "usb_cap": _Cat("slider", "cap", "pull off", "slide", (0.02, 0.03), ("none",)),
    "phone_slide": _Cat("slider", "screen", "slide open", "slide", (0.04, 0.06), ("none", "recessed")),
}
assert set(CATS) == set(ALL_CATEGORIES)

# What the whole object is called in instructions and reasoning ("the door of the <noun>").
NOUNS: dict[str, str] = {
    "storage_cabinet_door": "storage cabinet", "cabinet_drawer": "cabinet", "box_lid": "box",
    "display_tilt": "display", "trash_can_lid": "trash can", "suitcase_lid": "suitcase", "pot_lid": "pot",
    "toaster_lever": "toaster", "lamp_arm": "desk lamp", "dispenser_lever": "soap dispenser", "room_door": "room",
    "oven_door": "oven", "remote_slide_cover": "remote control", "lighter_lid": "lighter", "mouse_button": "mouse",
    "toilet_lid": "toilet", "table_drawer": "table", "washing_machine_door": "washing machine",
    "dishwasher_door": "dishwasher", "kettle_lid": "kettle", "faucet_handle": "faucet",
    "sliding_window": "sliding window", "usb_cap": "USB stick", "phone_slide": "slide phone",
}

# (W, H, D) ranges in metres for cabinet-like categories, + hinge sides allowed.
_DOOR_SIZES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[str, ...]]] = {
    "storage_cabinet_door": ((0.35, 0.7), (0.5, 1.1), (0.3, 0.5), ("left", "right")),
    "refrigerator": ((0.55, 0.8), (1.4, 1.9), (0.55, 0.7), ("left", "right")),
    "microwave": ((0.45, 0.6), (0.27, 0.36), (0.32, 0.42), ("left",)),
    "safe": ((0.3, 0.5), (0.3, 0.6), (0.3, 0.45), ("left", "right")),
    "room_door": ((0.75, 0.95), (1.9, 2.1), (0.1, 0.15), ("left", "right")),
    "oven_door": ((0.5, 0.65), (0.45, 0.6), (0.5, 0.6), ("bottom",)),
    "washing_machine_door": ((0.55, 0.62), (0.8, 0.9), (0.5, 0.6), ("left", "right")),
    "dishwasher_door": ((0.55, 0.62), (0.75, 0.85), (0.55, 0.62), ("bottom",)),
}
_LID_SIZES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "box_lid": ((0.2, 0.5), (0.1, 0.3), (0.15, 0.4)),
    "laptop": ((0.3, 0.38), (0.015, 0.025), (0.2, 0.26)),
    "trash_can_lid": ((0.25, 0.4), (0.4, 0.7), (0.25, 0.4)),
    "suitcase_lid": ((0.4, 0.6), (0.1, 0.14), (0.3, 0.45)),
    "pot_lid": ((0.18, 0.3), (0.1, 0.2), (0.18, 0.3)),
    "lighter_lid": ((0.035, 0.045), (0.035, 0.045), (0.012, 0.016)),
    "toilet_lid": ((0.36, 0.42), (0.38, 0.45), (0.45, 0.52)),
    "kettle_lid": ((0.14, 0.2), (0.18, 0.26), (0.14, 0.2)),
}


def _build(category: str, seed: int) -> ObjectSpec:
    if category not in CATS:
        raise UnknownCategoryError(f"unknown object category {category!r}; known: {', '.join(ALL_CATEGORIES)}")
    c = CATS[category]
    # Per (category, seed) stream, independent of Python's hash randomisation.
    rng = np.random.default_rng([zlib.crc32(category.encode()), int(seed)])
    m = _Mjcf(f"{category}_{seed}", rng)
    handle = str(rng.choice(c.handles))
    hi = _u(rng, *c.range_)
    damping = _u(rng, 0.05, 0.6) if c.joint_type == "hinge" else _u(rng, 1.0, 6.0)
    friction = _u(rng, 0.02, 0.25) if c.joint_type == "hinge" else _u(rng, 0.1, 1.0)
    hinge_side = "none"
    part_name = c.part
    jtype = c.joint_type

    if c.kind == "door":
        (wl, wh), (hl, hh), (dl, dh), sides = _DOOR_SIZES[category]
        W, H, D = _u(rng, wl, wh), _u(rng, hl, hh), _u(rng, dl, dh)
        hinge_side = str(rng.choice(sides))
        t = _u(rng, 0.015, 0.03) * (2.0 if category == "safe" else 1.0)
        kw: dict = {}
        if category == "microwave":
            kw["door_frac"] = _u(rng, 0.68, 0.78)
            def _panel(mm: _Mjcf, W=W, H=H, D=D) -> None:
                for i in range(3):
                    mm.geom("base", "cylinder", (D / 2 + 0.004, W / 2 - 0.06, H * (0.75 - 0.2 * i)),
                            (0.015, 0.004),
                            mm.material("knob", rgb=np.array([0.2, 0.2, 0.2]), texture="none"),
                            euler=(0, math.pi / 2, 0))
            kw["extras"] = _panel
        if category == "room_door":
            kw["frame_only"] = True
            damping *= 4
        if category in ("oven_door", "dishwasher_door"):
            kw["z0"] = _u(rng, 0.08, 0.15)
            damping *= 2
        if category == "washing_machine_door":
            kw["round_door"] = True
        if category == "refrigerator":
            damping *= 2
        geo = _door_cabinet(m, rng, category, W, H, D, hinge_side=hinge_side, handle=handle, t=t, **kw)
        jrange = (0.0, hi)
    elif c.kind == "drawer":
        jrange = (0.0, hi)
        body = m.material("body")
        front = m.material("front")
        hmat = m.material("handle", texture="none")
        if category == "table_drawer":
            W, D, Ht = _u(rng, 0.7, 1.2), _u(rng, 0.5, 0.8), _u(rng, 0.65, 0.78)
            top_t, apron = 0.03, _u(rng, 0.1, 0.16)
            m.box("base", (0, 0, Ht - top_t / 2), (D / 2, W / 2, top_t / 2), body)
            for sx in (-1, 1):
                for sy in (-1, 1):
                    m.box("base", (sx * (D / 2 - 0.04), sy * (W / 2 - 0.04), (Ht - top_t) / 2),
                          (0.025, 0.025, (Ht - top_t) / 2), body)
            dz = Ht - top_t - apron / 2
            dh, dw, dd = apron * 0.85, _u(rng, 0.35, 0.55) * W, 0.8 * D
            m.box("base", (-D / 2 + 0.03, 0, dz), (0.01, W / 2 - 0.04, apron / 2), body)
        else:
            W, H, D = _u(rng, 0.35, 0.8), _u(rng, 0.4, 1.0), _u(rng, 0.35, 0.55)
            n = int(rng.integers(1, 4))
            t = 0.018
            m.box("base", (0, 0, t / 2), (D / 2, W / 2, t / 2), body)
            m.box("base", (0, 0, H - t / 2), (D / 2, W / 2, t / 2), body)
            m.box("base", (-D / 2 + t / 2, 0, H / 2), (t / 2, W / 2, H / 2), body)
            for sy in (-1, 1):
                m.box("base", (0, sy * (W / 2 - t / 2), H / 2), (D / 2, t / 2, H / 2), body)
            slot = (H - 2 * t) / n
            which = int(rng.integers(0, n))
            for i in range(n):  # fixed dummy fronts for the other drawers
                if i != which:
                    m.box("base", (D / 2 + 0.01, 0, t + slot * (i + 0.5)),
                          (0.01, W / 2 - t, slot / 2 - 0.004), front)
            dz, dh, dw, dd = t + slot * (which + 0.5), slot - 0.008, W - 2 * t, 0.9 * D
        dt = 0.018
        ppos = (D / 2 + dt / 2, 0, dz)
        # drawer: front panel at the body origin, box behind it
        m.box("part", (0, 0, 0), (dt / 2, dw / 2, dh / 2), front)
        m.box("part", (-dd / 2, 0, -dh / 2 + 0.005), (dd / 2, dw / 2 - 0.01, 0.005), front)
        for sy in (-1, 1):
            m.box("part", (-dd / 2, sy * (dw / 2 - 0.015), 0), (dd / 2, 0.005, dh / 2 * 0.8), front)
        m.box("part", (-dd, 0, 0), (0.005, dw / 2 - 0.01, dh / 2 * 0.8), front)
        scale = max(0.4, min(1.5, dw / 0.5))
        _handle_geoms(m, handle, dt / 2, 0.0, 0.0, "y", 0.5 * dw, scale, hmat)
        geo = {"part_pos": ppos, "axis": (1, 0, 0)}
        hinge_side = "none"
    elif c.kind == "lid":
        (wl, wh), (hl, hh), (dl, dh) = _LID_SIZES[category]
        W, H, D = _u(rng, wl, wh), _u(rng, hl, hh), _u(rng, dl, dh)
        hinge_side = "top"
        jrange = (0.0, hi)
        if category == "lighter_lid":
            # a zippo-like lighter standing upright: the lid (top ~quarter) is hinged on its left side edge
            lid_t = 0.24 * H
            m.box("base", (0, 0, H / 2), (D / 2, W / 2, H / 2), m.material("body"))
            m.geom("base", "cylinder", (0, W * 0.15, H + lid_t * 0.3), (0.004, lid_t * 0.3), m.material("wick"))
            m.box("part", (0, W / 2, 0), (D / 2, W / 2, lid_t / 2), m.material("lid"))
            if handle == "recessed":
                m.box("part", (0, W - 0.002, 0), (D / 2 * 0.8, 0.002, lid_t / 2 * 0.7),
                      m.material("recess", rgb=np.array([0.1, 0.1, 0.1]), texture="none"))
            geo = {"part_pos": (0, -W / 2, H + lid_t / 2 + 0.0005), "axis": (1, 0, 0)}
            hinge_side = "left"
        elif category == "laptop":
            geo = _lid_box(m, rng, W, H, D, lid_t=_u(rng, 0.006, 0.012), handle=handle)
            m.box("part", (D / 2, 0, -_u(rng, 0.004, 0.006) - 0.0), (D * 0.45, W * 0.45, 0.0005),
                  m.material("lcd", rgb=np.array([0.05, 0.05, 0.08]), texture="none"))
        elif category == "toilet_lid":
            tank_d = 0.18
            geo = _lid_box(m, rng, W, H, D, lid_t=0.03, handle=handle, round_body=False, lid_frac=0.8,
                           lid_x0=-D / 2 + 0.2 * D)
            m.box("base", (-D / 2 - tank_d / 2, 0, H + 0.2), (tank_d / 2, W / 2 * 1.05, 0.2), m.material("body"))
        elif category in ("trash_can_lid", "pot_lid", "kettle_lid"):
            geo = _lid_box(m, rng, W, H, D, lid_t=_u(rng, 0.01, 0.025), handle=handle, round_body=True,
                           lid_overhang=0.005)
            if category == "kettle_lid":
                bm = m.material("body")
                m.geom("base", "capsule", (-D / 2 - 0.04, 0, H * 0.55), (0.015, H * 0.3), bm)
                m.geom("base", "cylinder", (D / 2 + 0.02, 0, H * 0.6), (0.012, 0.05), bm, euler=(0, 0.8, 0))
            if category == "pot_lid":
                bm = m.material("body")
                for s in (-1, 1):
                    m.box("base", (0, s * (W / 2 + 0.03), H * 0.8), (0.015, 0.03, 0.008), bm)
        else:
            lid_t = _u(rng, 0.015, 0.05) * (1.5 if category == "suitcase_lid" else 1)
            geo = _lid_box(m, rng, W, H, D, lid_t=lid_t, handle=handle)
    elif c.kind == "lever":
        jrange = (0.0, hi)
        body = m.material("body")
        pm = m.material("part")
        if category == "toaster_lever":
            W, H, D = _u(rng, 0.25, 0.35), _u(rng, 0.18, 0.24), _u(rng, 0.14, 0.2)
            m.box("base", (0, 0, H / 2), (D / 2, W / 2, H / 2), body)
            m.box("base", (0, 0, H + 0.0005), (D * 0.15, W * 0.4, 0.001),
                  m.material("slot", rgb=np.array([0.05, 0.05, 0.05]), texture="none"))
            y = _u(rng, -0.3, 0.3) * W
            geo = {"part_pos": (D / 2 + 0.015, y, H * 0.8), "axis": (0, 0, -1)}
            m.box("part", (0, 0, 0), (0.015, 0.02, 0.008), pm)
            if handle == "knob":
                m.geom("part", "sphere", (0.01, 0, 0.008), (0.012,), pm)
            hinge_side = "none"
        elif category == "dispenser_lever":
            W, H, D = _u(rng, 0.1, 0.14), _u(rng, 0.18, 0.25), _u(rng, 0.08, 0.12)
            z0 = _u(rng, 0.1, 0.3)  # mounted on a wall plate above the "sink"
            m.box("base", (-D / 2 - 0.01, 0, z0 + H / 2), (0.01, W, H), body)
            m.box("base", (0, 0, z0 + H / 2), (D / 2, W / 2, H / 2), body)
            lh = H * _u(rng, 0.35, 0.5)
            geo = {"part_pos": (D / 2 + 0.012, 0, z0 + lh * 0.9), "axis": (0, 1, 0)}
            m.box("part", (0, 0, -lh / 2), (0.008, W / 2 * 0.85, lh / 2), pm)
            hinge_side = "top"
        elif category == "mouse_button":
            W, H, D = _u(rng, 0.055, 0.07), _u(rng, 0.03, 0.04), _u(rng, 0.1, 0.12)
            m.geom("base", "ellipsoid", (0, 0, H / 2), (D / 2, W / 2, H / 2), body)
            geo = {"part_pos": (-0.005, W / 4 * (1 if rng.random() < 0.5 else -1), H + 0.002), "axis": (0, 1, 0)}
            m.box("part", (D * 0.22, 0, 0), (D * 0.22, W / 4 * 0.95, 0.003), pm)
            hinge_side = "top"
        elif category == "stapler":
            L, W, H = _u(rng, 0.14, 0.2), _u(rng, 0.035, 0.05), _u(rng, 0.05, 0.07)
            m.box("base", (0, 0, 0.006), (L / 2, W / 2, 0.006), body)
            m.box("base", (-L / 2 + 0.015, 0, H / 2), (0.015, W / 2 * 0.8, H / 2), body)
            geo = {"part_pos": (-L / 2 + 0.015, 0, H), "axis": (0, 1, 0)}
            m.box("part", (L / 2 - 0.01, 0, 0), (L / 2 - 0.005, W / 2 * 0.9, 0.012), pm)
            hinge_side = "top"
        elif category == "faucet_handle":
            H = _u(rng, 0.12, 0.2)
            m.geom("base", "cylinder", (0, 0, H / 2), (0.025, H / 2), body)
            m.geom("base", "cylinder", (0.08, 0, H * 0.8), (0.012, 0.08), body, euler=(0, math.pi / 2, 0))
            m.box("base", (0, 0, 0.005), (0.08, 0.08, 0.005), body)
            Lh = _u(rng, 0.08, 0.13)
            geo = {"part_pos": (-0.02, 0, H + 0.012), "axis": (0, -1, 0)}
            m.box("part", (Lh / 2, 0, 0), (Lh / 2, 0.012, 0.008), pm)
            m.geom("part", "cylinder", (0.015, 0, 0), (0.028, 0.012), pm)
            hinge_side = "top"
        elif category == "folding_chair":
            W, Hs, D = _u(rng, 0.4, 0.5), _u(rng, 0.42, 0.48), _u(rng, 0.38, 0.45)
            m.box("base", (0, 0, Hs), (D / 2, W / 2, 0.015), body)
            for sx in (-1, 1):
                for sy in (-1, 1):
                    m.box("base", (sx * (D / 2 - 0.02), sy * (W / 2 - 0.02), Hs / 2), (0.012, 0.012, Hs / 2), body)
            Hb = _u(rng, 0.35, 0.45)
            # backrest stands up at the back of the seat, folds forward onto it (axis +y)
            geo = {"part_pos": (-D / 2 + 0.012, 0, Hs + 0.015), "axis": (0, 1, 0)}
            m.box("part", (0, 0, Hb / 2), (0.012, W / 2, Hb / 2), pm)
            hinge_side = "bottom"
        elif category == "lamp_arm":
            Hp = _u(rng, 0.25, 0.4)
            m.geom("base", "cylinder", (0, 0, 0.01), (0.09, 0.01), body)
            m.geom("base", "cylinder", (0, 0, Hp / 2), (0.012, Hp / 2), body)
            La = _u(rng, 0.25, 0.4)
            geo = {"part_pos": (0, 0, Hp), "axis": (0, -1, 0)}
            m.geom("part", "cylinder", (La / 2, 0, 0), (0.01, La / 2), pm, euler=(0, math.pi / 2, 0))
            m.geom("part", "cylinder", (La, 0, -0.04), (0.05, 0.04), pm)
            if handle == "knob":
                m.geom("part", "sphere", (La * 0.75, 0, 0.015), (0.015,), pm)
            jrange = (0.0, hi)
            hinge_side = "top"  # the arm turns about the post at its far end, as seen from the front
        else:  # display_tilt
            W, Hd = _u(rng, 0.45, 0.65), _u(rng, 0.28, 0.4)
            m.box("base", (0, 0, 0.008), (0.1, 0.14, 0.008), body)
            Hs = _u(rng, 0.12, 0.2)
            m.box("base", (-0.03, 0, Hs / 2), (0.015, 0.03, Hs / 2), body)
            geo = {"part_pos": (0.0, 0, Hs), "axis": (0, 1, 0)}
            m.box("part", (0, 0, Hd / 2 - 0.04), (0.02, W / 2, Hd / 2), pm)
            m.box("part", (0.0205, 0, Hd / 2 - 0.03), (0.0005, W / 2 * 0.95, Hd / 2 * 0.9),
                  m.material("lcd", rgb=np.array([0.03, 0.03, 0.05]), texture="none"))
            hinge_side = "bottom"
    else:  # slider: the moving part slides along +x (towards the viewer) or +y (window)
        jrange = (0.0, hi)
        body = m.material("body")
        pm = m.material("part")
        if category == "sliding_window":
            W, H = _u(rng, 0.8, 1.2), _u(rng, 0.6, 1.0)
            z0 = _u(rng, 0.0, 0.3)
            ft = 0.04
            for sy in (-1, 1):
                m.box("base", (0, sy * (W / 2 + ft / 2), z0 + H / 2), (0.04, ft / 2, H / 2 + ft), body)
            for z in (z0 - ft / 2, z0 + H + ft / 2):
                m.box("base", (0, 0, z), (0.04, W / 2 + ft, ft / 2), body)
            glass = m.material("glass", rgb=np.array([0.6, 0.75, 0.85]), texture="none")
            m.box("base", (-0.015, W / 4, z0 + H / 2), (0.004, W / 4, H / 2), glass)
            side = 1.0 if rng.random() < 0.5 else -1.0  # which way the pane opens
            geo = {"part_pos": (0.015, -side * W / 4, z0 + H / 2), "axis": (0, side, 0)}
            if side < 0:  # fixed pane must be on the other side
                m.base[-1] = m.base[-1].replace(f'pos="-0.015 {W / 4:.5g}', f'pos="-0.015 {-W / 4:.5g}')
            m.box("part", (0, 0, 0), (0.006, W / 4, H / 2), pm)
            # grip: a vertical bar at the pane's trailing edge whose side faces the slide direction
            gy = -side * (W / 4 - 0.03)
            gh = 0.2 * H if handle == "bar" else 0.9 * H / 2
            m.box("part", (0.04, gy, 0), (0.034, 0.015, gh), m.material("handle", texture="none"))
            hinge_side = "none"
        else:
            if category == "usb_cap":
                L, W = _u(rng, 0.04, 0.06), _u(rng, 0.016, 0.022)
                T, Lc = _u(rng, 0.007, 0.01), _u(rng, 0.018, 0.025)
                m.box("base", (0, 0, T / 2), (L / 2, W / 2, T / 2), body)
                geo = {"part_pos": (L / 2 + Lc / 2 - 0.012, 0, T / 2), "axis": (1, 0, 0)}
                m.box("part", (0, 0, 0), (Lc / 2, W / 2 * 1.08, T / 2 * 1.12), pm)
            elif category == "phone_slide":
                L, W, T = _u(rng, 0.1, 0.13), _u(rng, 0.05, 0.065), _u(rng, 0.007, 0.01)
                m.box("base", (0, 0, T / 2), (L / 2, W / 2, T / 2), body)
                geo = {"part_pos": (0, 0, T + T / 2), "axis": (1, 0, 0)}
                m.box("part", (0, 0, 0), (L / 2, W / 2, T / 2), pm)
                m.box("part", (0.0005, 0, T / 2 + 0.0005), (L / 2 * 0.9, W / 2 * 0.9, 0.0005),
                      m.material("lcd", rgb=np.array([0.03, 0.03, 0.06]), texture="none"))
                m.box("part", (L / 2 + 0.002, 0, 0), (0.002, W / 2 * 0.8, T / 2), pm)  # lip at the end
            else:  # remote_slide_cover
                L, W, T = _u(rng, 0.14, 0.2), _u(rng, 0.04, 0.055), _u(rng, 0.015, 0.022)
                m.box("base", (0, 0, T / 2), (L / 2, W / 2, T / 2), body)
                for i in range(int(rng.integers(4, 9))):
                    m.geom("base", "cylinder", (-L / 2 + 0.02 + i * 0.012, 0, T + 0.001), (0.004, 0.001),
                           m.material("btn", texture="none"))
                Lc = L * _u(rng, 0.35, 0.5)
                geo = {"part_pos": (L / 2 - Lc / 2, 0, T + 0.003), "axis": (1, 0, 0)}
                m.box("part", (0, 0, 0), (Lc / 2, W / 2 * 0.95, 0.003), pm)
                m.box("part", (Lc / 2 - 0.004, 0, 0.004), (0.003, W / 2 * 0.8, 0.003), pm)  # ridge to push on
            hinge_side = "none"

    # Joint friction/damping drawn above suit furniture-sized parts; small objects get proportionally less.
    small = {"lighter_lid": 0.02, "mouse_button": 0.05, "usb_cap": 0.2, "phone_slide": 0.2,
             "remote_slide_cover": 0.2, "stapler": 0.2, "faucet_handle": 0.2, "kettle_lid": 0.2,
             "dispenser_lever": 0.2, "toaster_lever": 0.3, "lamp_arm": 0.5, "pot_lid": 0.5}.get(category, 1.0)
    damping *= small
    friction *= small
    # Return springs (preloaded against the closed stop) where gravity would otherwise open the part by itself.
    spring = {"toaster_lever": (6.0, -0.03), "mouse_button": (0.1, -0.3), "stapler": (1.0, -0.3)}.get(category)
    if category in ("display_tilt", "folding_chair"):  # balanced upright: friction keeps them there
        friction = max(friction, 0.5)
    joint = f"{part_name}_joint"
    body_name = part_name
    xml = m.xml(body_name, geo["part_pos"], joint, jtype, geo["axis"], jrange, damping, friction, spring=spring)
    cat_disp = category_name(category)
    meta = ObjectMeta(
        object_id=f"{category}-{seed:06d}",
        category=cat_disp,
        category_split="train" if category in TRAIN_CATEGORIES else "heldout",
        instance_split=instance_split(category, seed),
        instruction=f"{c.verb} the {part_name} of the {NOUNS.get(category, cat_disp)}",
        part=part_name,
        movable_body=body_name,
        joint_name=joint,
        joint_type=jtype,
        joint_range=(float(jrange[0]), float(jrange[1])),
        action=c.action,
        handle=handle,
        hinge_side=hinge_side,
        reasoning=reasoning_for(NOUNS.get(category, cat_disp), part_name, jtype, hinge_side, handle, c.action),
        seed=int(seed),
        extra={"damping": damping, "frictionloss": friction, "key": category},
    )
    return ObjectSpec(mjcf=xml, meta=meta)


def reasoning_for(noun: str, part: str, joint_type: str, hinge_side: str, handle: str, action: str) -> str:
    """Templated chain-of-thought "where to act" sentence, built only from metadata."""
    hdesc = {"bar": "handle bar", "knob": "knob", "recessed": "recessed grip", "none": "edge"}.get(handle, "edge")
    if joint_type == "slide":
        if action == "push":
            return (f"The {part} of the {noun} slides along a straight rail, so pressing on its top surface "
                    f"in the direction of the rail moves it.")
        return (f"The {part} of the {noun} slides along a straight rail, so pulling on a face of it that points "
                f"along the rail, such as the {hdesc} at its front, moves it out.")
    opposite = {"left": "right", "right": "left", "top": "front", "bottom": "top"}.get(hinge_side, "free")
    where = {"left": "on its left side", "right": "on its right side", "top": "along its back edge",
             "bottom": "along its bottom edge"}.get(hinge_side, "at one end")
    verb = "pressing" if action == "push" else "pulling"
    return (f"The {part} of the {noun} turns on a hinge {where}, so {verb} near the {hdesc} on the "
            f"{opposite} edge, far from the hinge, moves it with the least force.")


def generate_object(category: str, seed: int = 0) -> ObjectSpec:
    """The object of `category` (one of ALL_CATEGORIES, underscores or spaces) for `seed`; deterministic."""
    return _build(category.replace(" ", "_"), int(seed))
