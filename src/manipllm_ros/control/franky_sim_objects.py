"""Any generated object (category + seed) or third-party MJCF/URDF (file + joint) in franky-sim's MuJoCo scene.

The object comes from the same code the fast simulated arm uses (`sim.objects.generate_object`,
`sim.loader.load_object`), is merged into an MjSpec by `sim.world.attach_object` (every name, asset, material,
mesh and default class prefixed with ``obj/``, so nothing collides with the robot's ``robot0_*`` names), and
that MJCF is grafted into franky-sim's ElementTree (`sim.scene`), which franky-sim documents as extensible
before `start()`. Mesh and texture files embedded in the object are written to a temporary directory and named
by absolute path (franky-sim compiles from an XML string with its own meshdir).

Placement (`place_object`): a contact on the movable part is found by ray casting from the front and from above
(the point whose opening motion is most along the outward surface normal, away from the part's edges); the
object is turned so that this surface faces the robot, scaled (`scale=None`: objects larger than 1 m shrink,
parts smaller than 12 cm grow) and shifted so the contact lies at `FRONT_TARGET` (surfaces facing sideways: the
same point as the hand-made door, 8 cm in front of `READY_Q`'s TCP) or `TOP_TARGET` (lids: approached from
above). Object geoms do not collide with the robot or the floor (as for the hand-made door/drawer): the suction
weld is the only coupling.

`describe()` gives what another process needs to rebuild the object exactly (MJCF, metadata, assets, scale,
pose in the robot base frame, contact): the scene side channel serves it (`scene` command), and
`mirror_world` turns it into a `sim.world.World` whose camera can render the object in franky-sim's state.
"""

from __future__ import annotations

import base64
import math
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

PREFIX = "obj/"
FACE_SITE = "part_face"
FRONT_TARGET = (0.65, 0.10, 0.45)  # contact on a surface facing the robot (the hand-made door's contact)
TOP_TARGET = (0.55, 0.0, 0.30)  # contact on a surface facing up (lids), approached from above
MAX_SIZE = 1.0  # m: larger objects are scaled down to this (auto scale)
MIN_PART = 0.12  # m: smaller movable parts are scaled up to this (auto scale)


@dataclass(frozen=True)
class SceneObject:
    """Which object franky-sim shows: a generated `category` + `seed`, or a third-party `file` + `joint`."""

    category: str | None = None
    seed: int = 0
    file: str | None = None
    joint: str | None = None
    up: str = "z"  # third-party files: which axis is up
    scale: float | None = None  # None = automatic (see module doc)
    # N the suction cup holds before it lets go: a 40 mm cup at -0.8 bar; generated parts weigh up to ~10 kg
    # and the weld sees ~80 N peaks when a compliant step starts on a 5 kg cabinet door (measured)
    suction_max_force: float = 150.0
    attach_tolerance: float = 0.02  # m between the TCP and the part's surface for the cup to seal

    def __post_init__(self) -> None:
        if (self.category is None) == (self.file is None):
            raise ValueError("SceneObject needs either a category or a file (with its joint), not both")
        if self.file is not None and not self.joint:
            raise ValueError(f"SceneObject: file {self.file!r} needs the name of its hinge/slide joint")

    @property
    def name(self) -> str:
        return f"{self.category} (seed {self.seed})" if self.category else f"{self.file}:{self.joint}"

    def load(self):
        """The object's `sim.objects.ObjectSpec`; raises `sim.world.ObjectLoadError` with a clear message."""
        from manipllm_ros.sim.objects import UnknownCategoryError, generate_object
        from manipllm_ros.sim.world import ObjectLoadError

        if self.category is not None:
            try:
                return generate_object(self.category.replace(" ", "_"), self.seed)
            except UnknownCategoryError as e:
                raise ObjectLoadError(str(e)) from e
        from manipllm_ros.sim.loader import load_object

        return load_object(self.file, self.joint, up=self.up, seed=self.seed)

    @classmethod
    def from_arg(cls, arg: str, seed: int = 0, **kw) -> "SceneObject":
        """`CATEGORY` or `FILE:JOINT` (command lines, YAML)."""
        if ":" in arg:
            file, joint = arg.rsplit(":", 1)
            return cls(file=file, joint=joint, seed=seed, **kw)
        return cls(category=arg, seed=seed, **kw)


@dataclass
class PlacedObject:
    """An object as franky-sim shows it: scaled, posed in the robot base frame, with its contact."""

    obj: object  # sim.objects.ObjectSpec, already scaled
    pos: np.ndarray  # object root position in the base frame
    quat: np.ndarray  # object root orientation (w, x, y, z)
    contact_point: np.ndarray  # base frame, part closed
    contact_rotation: np.ndarray  # gripper rotation at the contact (columns x forward, y, z approach)
    pull_direction: np.ndarray  # the direction that opens the part at the start (base frame)
    contact_in_part: np.ndarray  # the contact point in the movable body's frame
    settings: SceneObject = field(default_factory=lambda: SceneObject(category="storage_cabinet_door"))

    @property
    def part_body(self) -> str:
        return PREFIX + self.obj.meta.movable_body

    @property
    def joint_name(self) -> str:
        return PREFIX + self.obj.meta.joint_name

    def describe(self) -> dict:
        """JSON-able: everything a mirroring process needs to rebuild the object and its pose."""
        o = self.obj
        return {
            "object": {"mjcf": o.mjcf, "meta": o.meta.to_dict(),
                       "assets": {k: base64.b64encode(v).decode() for k, v in o.assets.items()}},
            "pos": self.pos.tolist(), "quat": self.quat.tolist(),
            "contact_point": self.contact_point.tolist(), "contact_rotation": self.contact_rotation.tolist(),
            "pull_direction": self.pull_direction.tolist(), "contact_in_part": self.contact_in_part.tolist(),
            "part_body": self.part_body, "joint_name": self.joint_name, "settings": asdict(self.settings),
        }


def object_from_description(desc: dict):
    """The `sim.objects.ObjectSpec` of a `PlacedObject.describe()` dict."""
    from manipllm_ros.sim.objects import ObjectMeta, ObjectSpec

    o = desc["object"]
    meta = dict(o["meta"])
    meta["joint_range"] = tuple(meta["joint_range"])
    return ObjectSpec(mjcf=o["mjcf"], meta=ObjectMeta(**meta),
                      assets={k: base64.b64decode(v) for k, v in o["assets"].items()})


def _box(model, data, geoms) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for g in geoms:
        aabb = model.geom_aabb[g]
        R = data.geom_xmat[g].reshape(3, 3)
        c = data.geom_xpos[g] + R @ aabb[:3]
        half = np.abs(R) @ aabb[3:]
        lo, hi = np.minimum(lo, c - half), np.maximum(hi, c + half)
    return lo, hi


def _part_geoms(model, part: int) -> np.ndarray:
    def inside(b: int) -> bool:
        while b not in (0, part):
            b = int(model.body_parentid[b])
        return b == part

    return np.array([g for g in range(model.ngeom) if inside(int(model.geom_bodyid[g]))], int)


def _find_contact(obj, model, data) -> tuple[np.ndarray, np.ndarray, float]:
    """(point, outward normal, score) on the movable part, object frame: the best surface to pull (or push)."""
    import mujoco

    from manipllm_ros.sim.world import ObjectLoadError

    part = model.body(obj.meta.movable_body).id
    pg = _part_geoms(model, part)
    if pg.size == 0:
        raise ObjectLoadError(f"object {obj.meta.object_id!r}: movable body has no geoms")
    lo, hi = _box(model, data, range(model.ngeom))
    plo, phi = _box(model, data, pg)
    j = model.joint(obj.meta.joint_name).id
    anchor, axis = data.xanchor[j].copy(), data.xaxis[j].copy()
    hinge = model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE
    sign = -1.0 if obj.meta.action == "push" else 1.0
    best = (None, None, 0.0)
    gid = np.array([-1], np.int32)
    nrm = np.zeros(3)
    ts = np.linspace(0.15, 0.85, 13)  # stay off the part's edges
    for ray, (a, b), start in (((-1.0, 0.0, 0.0), (1, 2), hi[0] + 0.1), ((0.0, 0.0, -1.0), (0, 1), hi[2] + 0.1)):
        ray = np.array(ray)
        for s in ts:
            for t in ts:
                p0 = np.zeros(3)
                p0[a] = plo[a] + s * (phi[a] - plo[a])
                p0[b] = plo[b] + t * (phi[b] - plo[b])
                p0[np.flatnonzero(ray)[0]] = start
                dist = mujoco.mj_ray(model, data, p0, ray, None, 1, -1, gid, nrm)
                if dist < 0 or int(gid[0]) not in pg:
                    continue
                n = nrm / max(np.linalg.norm(nrm), 1e-12)
                if n @ -ray < 0.8:
                    continue
                p = p0 + dist * ray
                v = np.cross(axis, p - anchor) if hinge else axis
                score = sign * float(v @ n) * (1.0 if ray[0] else 0.95)  # sideways faces first on a tie
                if score > best[2] + 1e-9:
                    best = (p, n, score)
    if best[0] is None:
        raise ObjectLoadError(f"object {obj.meta.object_id!r}: no surface of the movable part "
                              f"{obj.meta.movable_body!r} faces the front or the top so that a "
                              f"{obj.meta.action} along it opens the joint")
    return best


def _rotation(approach: np.ndarray, ref: np.ndarray) -> np.ndarray:
    z = approach / np.linalg.norm(approach)
    x = ref - (ref @ z) * z
    x /= np.linalg.norm(x)
    return np.column_stack([x, np.cross(z, x), z])


def place_object(settings: SceneObject, obj=None) -> PlacedObject:
    """Load (unless `obj` is given), scale and pose the object in front of the FR3; find its contact."""
    import mujoco

    from manipllm_ros.sim.loader import scale_object

    obj = obj if obj is not None else settings.load()

    def compiled(o):
        m = mujoco.MjModel.from_xml_string(o.mjcf, o.assets or None)
        d = mujoco.MjData(m)
        mujoco.mj_forward(m, d)
        return m, d

    m, d = compiled(obj)
    scale = settings.scale
    if scale is None:
        lo, hi = _box(m, d, range(m.ngeom))
        plo, phi = _box(m, d, _part_geoms(m, m.body(obj.meta.movable_body).id))
        scale = min(1.0, MAX_SIZE / float(np.max(hi - lo)))
        scale = max(scale, min(5.0, MIN_PART / max(float(np.max(phi - plo)), 1e-3)))
    if scale != 1.0:
        obj = scale_object(obj, scale)
        m, d = compiled(obj)
    p, n, _ = _find_contact(obj, m, d)
    top = abs(n[2]) > 0.7
    yaw = math.pi if top else math.pi - math.atan2(n[1], n[0])  # the contact surface faces the robot (-x)
    Rz = np.array([[math.cos(yaw), -math.sin(yaw), 0.0], [math.sin(yaw), math.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    target = np.array(TOP_TARGET if top else FRONT_TARGET)
    pos = target - Rz @ p
    n_base = Rz @ n
    R = _rotation(-n_base, np.array([1.0, 0.0, 0.0]) if top else np.array([0.0, 0.0, 1.0]))
    part = m.body(obj.meta.movable_body).id
    in_part = d.xmat[part].reshape(3, 3).T @ (p - d.xpos[part])
    pull = n_base if obj.meta.action != "push" else -n_base
    quat = np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])
    return PlacedObject(obj, pos, quat, target, R, pull, in_part, settings)


def merge_into_scene(sim, placed: PlacedObject) -> None:
    """Graft the placed object into franky-sim's scene tree (before `start()`), prefixed with ``obj/``."""
    import mujoco

    from manipllm_ros.sim.world import ObjectLoadError, attach_object

    obj = placed.obj
    spec = mujoco.MjSpec()
    spec.compiler.degree = False  # franky-sim's scene is in radians
    attach_object(spec, obj, placed.pos, placed.quat, prefix=PREFIX)
    for g in spec.geoms:  # visual + suction only: no contacts with the robot or the floor
        g.contype, g.conaffinity = 0, 0
    spec.body(placed.part_body).add_site(name=FACE_SITE, pos=placed.contact_in_part.tolist(), size=[0.005, 0, 0],
                                         group=5)
    root = ET.fromstring(spec.to_xml())
    comp = root.find("compiler")
    if comp is not None and comp.get("angle", "degree") != "radian":
        raise ObjectLoadError(f"object {obj.meta.object_id!r}: merged MJCF is not in radians")
    scene = sim.scene
    section = {el.tag: el for el in scene}

    def target(tag: str) -> ET.Element:
        if tag not in section:
            section[tag] = ET.SubElement(scene, tag)
        return section[tag]

    for el in root.findall("default/default"):
        target("default").append(el)
    files = None
    for el in root.findall("asset/*"):
        if el.get("file"):
            if files is None:
                files = Path(tempfile.mkdtemp(prefix="franky_sim_assets_"))
            key = next((k for k in obj.assets if k == el.get("file") or k == Path(el.get("file")).name), None)
            if key is None:
                raise ObjectLoadError(f"object {obj.meta.object_id!r}: asset file {el.get('file')!r} is not "
                                      "embedded in the object")
            (files / key).write_bytes(obj.assets[key])
            el.set("file", str(files / key))
        target("asset").append(el)
    for el in root.find("worldbody"):
        if el.tag == "frame" and root.find("default/default") is not None:
            el.set("childclass", root.find("default/default").get("class"))
        sim.worldbody.append(el)
    for tag in ("equality", "contact", "tendon", "actuator", "sensor"):
        for el in root.findall(f"{tag}/*"):
            target(tag).append(el)


def mirror_world(desc: dict, intrinsics=None):
    """A `sim.world.World` of the described object at its canonical camera; franky-sim's base frame is
    `base_T_world() @ world point` (the World holds the object at its own origin, unturned)."""
    from manipllm_ros.sim.world import World, WorldConfig

    kw = {"intrinsics": intrinsics} if intrinsics is not None else {}
    world = World(object_from_description(desc), int(desc["settings"].get("seed", 0)), WorldConfig(randomize=False),
                  **kw)
    world.base_T_world = base_T_object(desc)
    return world


def base_T_object(desc: dict) -> np.ndarray:
    """4x4 pose of the object root in franky-sim's robot base frame."""
    import mujoco

    T = np.eye(4)
    R = np.zeros(9)
    mujoco.mju_quat2Mat(R, np.asarray(desc["quat"], float))
    T[:3, :3], T[:3, 3] = R.reshape(3, 3), desc["pos"]
    return T
