"""Turn any third-party articulated model (MJCF or URDF) into an `ObjectSpec` like the generated ones.

`load_object("cabinet.xml", "door_hinge")` accepts real asset files: includes and meshes are resolved
(mesh/texture bytes are embedded in `ObjectSpec.assets`, so the result is self-contained), body names are
free, any scale works (the world frames the camera on the object's bounding sphere). Normalisation:

- every top-level body (and every non-plane static geom of the worldbody) moves under one fixed root body
  named ``object``, rotated so that the file's up axis (`up="z"`, `"y"`, `"-y"`, `"x"`) becomes +z;
- free joints are removed (the object and any loose props become fixed scenery), and every joint other than
  the joint of interest is frozen at its reference pose, so the object has exactly one degree of freedom;
- planes, lights and cameras of the file are dropped (the world brings its own floor, lights and camera);
- object geoms collide only with the gripper, as for generated objects;
- a joint without limits gets (0, pi/2) for a hinge or (0, 0.3 x object size) for a slide.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import mujoco
import numpy as np

from .objects import OBJ_CONAFFINITY, OBJ_CONTYPE, ObjectMeta, ObjectSpec, reasoning_for
from .world import ObjectLoadError

PREFIX = "src/"  # prefix of the file's body/joint names inside the normalised object (MuJoCo needs one)
_UP_QUATS = {  # rotation taking the file's up axis to +z (w, x, y, z)
    "z": (1.0, 0.0, 0.0, 0.0),
    "y": (math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0),  # +90 deg about x: y -> z
    "-y": (math.cos(math.pi / 4), -math.sin(math.pi / 4), 0.0, 0.0),
    "x": (math.cos(math.pi / 4), 0.0, -math.sin(math.pi / 4), 0.0),  # -90 deg about y: x -> z
}


def _resolve(base: Path, subdir: str, file: str) -> Path | None:
    f = Path(file.replace("package://", ""))
    cands = [f] if f.is_absolute() else []
    for root in (base / subdir if subdir else base, base):
        cands += [root / f, root / f.name]
    for c in cands:
        if c.is_file():
            return c
    return None


def _embed_assets(spec: mujoco.MjSpec, base: Path, name: str) -> dict[str, bytes]:
    assets: dict[str, bytes] = {}
    groups = ((spec.meshes, spec.meshdir), (spec.textures, spec.texturedir), (spec.hfields, spec.meshdir))
    for items, subdir in groups:
        for i, a in enumerate(items):
            file = getattr(a, "file", "")
            if not file:
                continue
            p = _resolve(base, subdir or "", file)
            if p is None:
                raise ObjectLoadError(f"object {name!r}: asset file {file!r} not found next to the model")
            key = f"a{len(assets)}_{p.name}"
            assets[key] = p.read_bytes()
            a.file = key
    spec.meshdir = ""
    spec.texturedir = ""
    return assets


def _geom_box_centre(model: mujoco.MjModel, data: mujoco.MjData, geoms: np.ndarray) -> np.ndarray:
    pts = []
    for g in geoms:
        aabb = model.geom_aabb[g]
        pts.append(data.geom_xpos[g] + data.geom_xmat[g].reshape(3, 3) @ aabb[:3])
    return np.mean(pts, axis=0) if pts else np.zeros(3)


def _face_front(model: mujoco.MjModel, movable: str, up_quat) -> np.ndarray:
    """Root rotation: `up_quat`, then a yaw that turns the movable part's side of the object towards +x."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    part = model.body(movable).id
    in_part = np.zeros(model.nbody, bool)
    for b in range(model.nbody):
        c = b
        while c not in (0, part):
            c = int(model.body_parentid[c])
        in_part[b] = c == part
    geoms = np.arange(model.ngeom)
    v = _geom_box_centre(model, data, geoms[in_part[model.geom_bodyid]]) - _geom_box_centre(model, data, geoms)
    q = np.asarray(up_quat, float)
    if np.hypot(v[0], v[1]) < 0.05 * max(model.stat.extent, 1e-6):
        return q
    yaw = -math.atan2(v[1], v[0])
    qz = np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, qz, q)
    return out


def load_object(path: str | os.PathLike, joint: str, *, category: str | None = None, part: str = "part",
                instruction: str | None = None, up: str = "z", seed: int = 0, split: str = "test_unseen",
                handle: str = "none", hinge_side: str = "none") -> ObjectSpec:
    """Load a third-party MJCF or URDF and normalise it around the hinge/slide joint `joint`."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise ObjectLoadError(f"object {name!r}: file {str(path)!r} does not exist")
    if up not in _UP_QUATS:
        raise ObjectLoadError(f"object {name!r}: up axis must be one of {sorted(_UP_QUATS)}, got {up!r}")
    try:
        src = mujoco.MjSpec.from_file(str(path))
    except Exception as e:  # noqa: BLE001 - MuJoCo reports parse errors as ValueError with details
        raise ObjectLoadError(f"object {name!r}: does not load: {e}") from e
    js = src.joint(joint)
    if js is None:
        kinds = {mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE}
        avail = [j.name for j in src.joints if j.type in kinds]
        raise ObjectLoadError(f"object {name!r}: no joint named {joint!r}; hinge/slide joints: {avail}")
    if js.type not in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
        raise ObjectLoadError(f"object {name!r}: joint {joint!r} is not a hinge or slide joint")
    jtype = "hinge" if js.type == mujoco.mjtJoint.mjJNT_HINGE else "slide"
    movable = js.parent.name
    if not movable:
        raise ObjectLoadError(f"object {name!r}: the body holding joint {joint!r} has no name")
    assets = _embed_assets(src, path.parent, name)
    src.assets = assets
    # Compile once to learn the object's size (for unlimited slide ranges).
    try:
        tmp_model = src.compile()
    except Exception as e:  # noqa: BLE001
        raise ObjectLoadError(f"object {name!r}: does not compile: {e}") from e
    size = float(max(tmp_model.stat.extent, 1e-3))
    jid = tmp_model.joint(joint).id
    limited = bool(tmp_model.jnt_limited[jid])
    rng = tuple(float(x) for x in tmp_model.jnt_range[jid])  # radians / metres, whatever the file's units
    # Freeze everything but the joint of interest.
    for j in list(src.joints):
        if j.name != joint:
            src.delete(j)
    js = src.joint(joint)
    if not limited or rng[1] <= rng[0]:
        rng = (0.0, math.pi / 2) if jtype == "hinge" else (0.0, 0.3 * size)
        js.range = [math.degrees(r) for r in rng] if (jtype == "hinge" and src.compiler.degree) else list(rng)
    js.limited = 1
    src.option.gravity = [0.0, 0.0, -9.81]  # the world's gravity wins; avoids an attach conflict

    out = mujoco.MjSpec()
    out.modelname = path.stem
    out.compiler.degree = src.compiler.degree
    out.assets = assets
    root = out.worldbody.add_body(name="object", quat=list(_UP_QUATS[up]))
    for el in list(src.lights) + list(src.cameras):
        src.delete(el)
    for g in [g for g in src.geoms if g.type == mujoco.mjtGeom.mjGEOM_PLANE]:
        src.delete(g)
    out.attach(src, prefix=PREFIX, frame=root.add_frame())
    for g in out.geoms:
        if g.type != mujoco.mjtGeom.mjGEOM_PLANE:
            g.contype, g.conaffinity = OBJ_CONTYPE, OBJ_CONAFFINITY
    for g in [g for g in out.geoms if g.type == mujoco.mjtGeom.mjGEOM_PLANE]:
        out.delete(g)
    try:
        root.quat = list(_face_front(out.compile(), PREFIX + movable, _UP_QUATS[up]))
        out.compile()
        xml = out.to_xml()
        mujoco.MjModel.from_xml_string(xml, assets or None)
    except Exception as e:  # noqa: BLE001
        raise ObjectLoadError(f"object {name!r}: normalised model does not compile: {e}") from e
    cat = category or path.stem.replace("_", " ")
    meta = ObjectMeta(
        object_id=f"{path.stem}-{seed:06d}",
        category=cat,
        category_split="heldout",
        instance_split=split,
        instruction=instruction or f"open the {part} of the {cat}",
        part=part,
        movable_body=PREFIX + movable,
        joint_name=PREFIX + joint,
        joint_type=jtype,
        joint_range=rng,
        action="pull",
        handle=handle,
        hinge_side=hinge_side,
        reasoning=reasoning_for(cat, part, jtype, hinge_side, handle, "pull"),
        seed=seed,
        extra={"source": str(path), "up": up, "joint": joint, "body": movable},
    )
    return ObjectSpec(mjcf=xml, meta=meta, assets=assets)


def object_from_arg(arg: str, joint: str | None = None, **kw) -> ObjectSpec:
    """CLI helper: `FILE.xml` with `joint`, or `FILE.xml:JOINT`."""
    if joint is None:
        if ":" not in arg:
            raise ObjectLoadError(f"object {arg!r}: give the joint as FILE:JOINT or with --joint")
        arg, joint = arg.rsplit(":", 1)
    return load_object(arg, joint, **kw)


__all__ = ["load_object", "object_from_arg", "scale_object"]


def scale_object(obj: ObjectSpec, scale: float) -> ObjectSpec:
    """The same object `scale` times larger (uniformly): positions, sizes, meshes and slide ranges.

    Masses follow from the geoms' densities; hinge ranges, damping and friction are unchanged. The result is a
    self-contained `ObjectSpec` again (same metadata, `extra["scale"]` multiplied), so every process that is
    given it (franky-sim, a mirroring camera) builds exactly the same geometry.
    """
    s = float(scale)
    if not (math.isfinite(s) and s > 0):
        raise ObjectLoadError(f"object {obj.meta.object_id!r}: scale must be a positive number, got {scale!r}")
    if s == 1.0:
        return obj
    from dataclasses import replace

    from .world import object_mjspec

    spec = object_mjspec(obj)

    def mul(v) -> list[float]:
        return [float(x) * s for x in v]

    for b in spec.bodies:
        b.pos = mul(b.pos)
        b.ipos = mul(b.ipos)
    for f in spec.frames:
        f.pos = mul(f.pos)
    for g in spec.geoms:
        g.pos = mul(g.pos)
        if g.type != mujoco.mjtGeom.mjGEOM_MESH:
            g.size = mul(g.size)
        if not np.isnan(g.fromto[0]):
            g.fromto = mul(g.fromto)
    for st in spec.sites:
        st.pos, st.size = mul(st.pos), mul(st.size)
    for j in spec.joints:
        j.pos = mul(j.pos)
        if j.type == mujoco.mjtJoint.mjJNT_SLIDE:
            j.range = mul(j.range)
    for m in spec.meshes:
        m.scale = mul(m.scale)
    for el in list(spec.cameras) + list(spec.lights):
        el.pos = mul(el.pos)
    try:
        xml = spec.to_xml()
        mujoco.MjModel.from_xml_string(xml, obj.assets or None)
    except Exception as e:  # noqa: BLE001
        raise ObjectLoadError(f"object {obj.meta.object_id!r}: scaled model does not compile: {e}") from e
    meta = obj.meta
    rng = tuple(r * s for r in meta.joint_range) if meta.joint_type == "slide" else meta.joint_range
    extra = {**meta.extra, "scale": float(meta.extra.get("scale", 1.0)) * s}
    return replace(obj, mjcf=xml, meta=replace(meta, joint_range=rng, extra=extra))
