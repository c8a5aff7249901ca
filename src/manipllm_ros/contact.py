"""Where the gripper touches and which way it faces, from one model prediction and the aligned depth.

The model answers a pose (pixel, up, forward) and, when asked, a grounding point ("the part that moves is at").
`contact` chooses the pixel: the pose answer's, the grounding answer's, or of the two the one whose measured
surface faces the way the model's up says ("agreement": the up tells which surface the model means to touch,
the depth which surface each pixel is on). `snap_px` then moves a contact whose surface disagrees with the
model's up to the nearest pixel within that radius whose surface agrees (a point beside the part, on the body,
moves onto the part the up describes). `protrusion_px`, instead, moves a contact onto the nearest thing within
that radius that stands off the surface around it (a handle, lever, button, knob), where it then stays: what the
small model misses it misses beside such a part, on the surface it is mounted on; `skip_outline` keeps it off
the outline of the contact's own surface against what lies behind the object; `protrusion_deg` keeps it
off a raised part whose surface does not face the way the model's up says (a bar handle's side); `stay_on_own`
keeps a contact on a part the model already touched (no move onto its own surface's rim, and from a lever the
surface snap only within the lever). `up` chooses
the approach axis: the model's, or minus the surface normal measured at the contact. Shared by the pose service
and the evaluation, so both act alike. (benchmarks/eval_depth_up.md, benchmarks/eval_contact_agreement.md,
benchmarks/eval_contact_choices.md, benchmarks/eval_raised_facing.md)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from manipllm_ros import geometry as G

CONTACT_SOURCES: tuple[str, ...] = ("pose", "grounding", "agreement")
UP_SOURCES: tuple[str, ...] = ("model", "depth")


@dataclass
class Contact:
    u: float
    v: float
    up: np.ndarray
    forward: np.ndarray
    pixel_from: str  # "pose" | "grounding": the answer whose pixel was taken
    up_from: str  # "model" | "depth" | "model (depth: why not)"
    note: str = ""  # for agreement: the angles that decided; for a snap: from where


def surface_angle(u: float, v: float, depth: np.ndarray, K, up) -> float | None:
    """Degrees between the model's up and minus the surface normal measured at (u, v); None without a plane."""
    try:
        return G.angle_between(up, -G.surface_normal_at(u, v, depth, K))
    except G.GeometryError:
        return None


def snap_to_agreeing_surface(u: float, v: float, depth: np.ndarray, K, up, radius_px: int,
                              max_angle_deg: float = 30.0, step_px: int = 4,
                              within: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float, float] | None:
    """The nearest pixel within `radius_px` of (u, v), on a `step_px` grid, whose surface faces the way `up` says
    (within `max_angle_deg`); None when (u, v) itself does, or when no such pixel is near. `within` (us, vs):
    search only those pixels (the raised part the contact is on, own_raised_part)."""
    a0 = surface_angle(u, v, depth, K, up)
    if a0 is not None and a0 <= max_angle_deg:
        return None
    if within is not None:
        us, vs = within
        for i in np.argsort(np.hypot(us - u, vs - v), kind="stable"):
            a = surface_angle(us[i], vs[i], depth, K, up)
            if a is not None and a <= max_angle_deg:
                return float(us[i]), float(vs[i])
        return None
    h, w = np.asarray(depth).shape
    r = np.arange(-radius_px, radius_px + 1, step_px)
    du, dv = (x.ravel() for x in np.meshgrid(r, r))
    d = np.hypot(du, dv)
    for i in np.lexsort((dv, du, d)):  # nearest first; ties: left, then up
        if d[i] == 0 or d[i] > radius_px:
            continue
        cu, cv = u + du[i], v + dv[i]
        if not (0 <= cu < w and 0 <= cv < h):
            continue
        a = surface_angle(cu, cv, depth, K, up)
        if a is not None and a <= max_angle_deg:
            return float(cu), float(cv)
    return None


PROTRUSION_RING_PX = 16  # a pixel's surroundings: depth sampled on a circle of this radius around it
PROTRUSION_MIN_M = 0.006  # standing off its surroundings by more than this (a toaster lever: 30 mm, a bar: 35)
PROTRUSION_MAX_M = 0.06  # ... and less than this: more is the object's silhouette against what lies behind it
PROTRUSION_STEP_M = 0.01  # and bounded somewhere by a depth step this large between grid neighbours: a convex
# edge of the body (where the top meets a side) also stands off its ring, but the depth runs on across it


def _depth_at(depth: np.ndarray, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
    """Depth at integer pixels (us, vs); NaN off the image and at holes (0, NaN)."""
    depth = np.asarray(depth, dtype=np.float64)
    h, w = depth.shape
    ok = (us >= 0) & (us < w) & (vs >= 0) & (vs < h)
    z = np.where(ok, depth[np.clip(vs, 0, h - 1), np.clip(us, 0, w - 1)], np.nan)
    return np.where(np.isfinite(z) & (z > 0), z, np.nan)


def protrusion_heights(us: np.ndarray, vs: np.ndarray, depth: np.ndarray,
                       ring_px: int = PROTRUSION_RING_PX) -> np.ndarray:
    """How far each pixel (us, vs) lies nearer the camera than its surroundings (m, along the ray): the median
    of depth(ring sample) - depth(pixel) over 16 samples on a circle of `ring_px` around it. About 0 on a plane
    (the ring is symmetric), the height on a small raised part; NaN without depth."""
    z0 = _depth_at(depth, us, vs)
    ang = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)
    ring = [_depth_at(depth, np.round(us + ring_px * np.cos(a)).astype(int),
                      np.round(vs + ring_px * np.sin(a)).astype(int)) for a in ang]
    diff = np.stack(ring) - z0[None]
    out = np.full(z0.shape, np.nan)
    valid = np.isfinite(diff).any(axis=0)
    out[valid] = np.nanmedian(diff[:, valid], axis=0)
    return out


def _components(mask: np.ndarray) -> np.ndarray:
    """4-connected labels (0 = background) of a small boolean grid."""
    lab = np.zeros(mask.shape, dtype=int)
    k = 0
    for i0, j0 in zip(*np.nonzero(mask)):
        if lab[i0, j0]:
            continue
        k += 1
        lab[i0, j0] = k
        stack = [(i0, j0)]
        while stack:
            i, j = stack.pop()
            for a, b in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if 0 <= a < mask.shape[0] and 0 <= b < mask.shape[1] and mask[a, b] and not lab[a, b]:
                    lab[a, b] = k
                    stack.append((a, b))
    return lab


@dataclass(frozen=True)
class RaisedBlob:
    """The raised part snap_to_protrusion moves onto: the pixel it takes, the blob's grid pixels, and the pixels
    across its depth steps (the deeper side: what it stands off)."""

    pixel: tuple[float, float]
    us: np.ndarray
    vs: np.ndarray
    below_us: np.ndarray
    below_vs: np.ndarray


def raised_blob(u: float, v: float, depth: np.ndarray, radius_px: int, step_px: int = 2,
                ring_px: int = PROTRUSION_RING_PX, min_m: float = PROTRUSION_MIN_M,
                max_m: float = PROTRUSION_MAX_M) -> RaisedBlob | None:
    """The nearest raised blob (protrusion_heights between min_m and max_m, with a depth step of
    PROTRUSION_STEP_M somewhere on its border) within `radius_px` of (u, v), on a `step_px` grid, and its pixel
    nearest its centroid. None when (u, v) is on one already or none is near."""
    g = _raised_grid(u, v, depth, radius_px, step_px, ring_px, min_m, max_m)
    if g is None or not g.parts or g.centre_label in g.parts:
        return None
    dist = np.where(np.isin(g.labels, list(g.parts)), g.offset, np.inf)
    blob = g.labels == g.labels.flat[int(np.argmin(dist))]
    us, vs = g.us, g.vs
    cu, cv = us[blob].mean(), vs[blob].mean()
    i = int(np.argmin(np.where(blob, np.hypot(us - cu, vs - cv), np.inf)))
    mine = blob.flat[g.step_src]
    return RaisedBlob((float(us.flat[i]), float(vs.flat[i])), us[blob], vs[blob], us.flat[g.step_dst[mine]],
                      vs.flat[g.step_dst[mine]])


def own_raised_part(u: float, v: float, depth: np.ndarray, radius_px: int, step_px: int = 2,
                    ring_px: int = PROTRUSION_RING_PX, min_m: float = PROTRUSION_MIN_M,
                    max_m: float = PROTRUSION_MAX_M) -> tuple[np.ndarray, np.ndarray] | None:
    """The grid pixels (us, vs), within `radius_px`, of the raised blob that (u, v) itself lies on (the kind
    raised_blob moves onto: a toaster's lever); None when (u, v) is on none."""
    g = _raised_grid(u, v, depth, radius_px, step_px, ring_px, min_m, max_m)
    if g is None or g.centre_label not in g.parts:
        return None
    own = g.labels == g.centre_label
    return g.us[own], g.vs[own]


@dataclass(frozen=True)
class _RaisedGrid:
    us: np.ndarray  # grid pixels around the start
    vs: np.ndarray
    offset: np.ndarray  # their grid distance from the start (px)
    labels: np.ndarray  # 4-connected raised blobs (0 = not raised)
    parts: set[int]  # labels of the blobs with a depth step somewhere on their border
    centre_label: int  # the start pixel's label
    step_src: np.ndarray  # flat grid index of each raised pixel at a step ...
    step_dst: np.ndarray  # ... and of its deeper neighbour across it


def _raised_grid(u: float, v: float, depth: np.ndarray, radius_px: int, step_px: int, ring_px: int, min_m: float,
                 max_m: float) -> _RaisedGrid | None:
    """The raised blobs on a `step_px` grid within `radius_px` of (u, v); None when nothing there is raised."""
    r = np.arange(-radius_px, radius_px + 1, step_px)
    du, dv = np.meshgrid(r, r)
    us, vs = np.round(u + du).astype(int), np.round(v + dv).astype(int)
    near = np.hypot(du, dv) <= radius_px
    ht = protrusion_heights(us, vs, depth, ring_px)
    raised = near & np.isfinite(ht) & (ht > min_m) & (ht < max_m)
    centre = np.unravel_index(np.argmin(np.hypot(du, dv)), du.shape)
    if not raised.any():
        return None
    lab = _components(raised)
    z = _depth_at(depth, us, vs)
    stepped = np.zeros(raised.shape, dtype=bool)  # a raised pixel with a grid neighbour deeper by a step
    below: list[tuple[np.ndarray, np.ndarray]] = []  # (raised pixel's grid index, its deeper neighbour's)
    idx = np.arange(raised.size).reshape(raised.shape)
    for sl_a, sl_b in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                       ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))):
        jump = z[sl_b] - z[sl_a]  # the neighbour's depth minus this pixel's, both ways
        with np.errstate(invalid="ignore"):
            a = raised[sl_a] & (jump > PROTRUSION_STEP_M)
            b = raised[sl_b] & (-jump > PROTRUSION_STEP_M)
        stepped[sl_a] |= a
        stepped[sl_b] |= b
        below += [(idx[sl_a][a], idx[sl_b][a]), (idx[sl_b][b], idx[sl_a][b])]
    parts = set(np.unique(lab[stepped]).tolist()) - {0}
    return _RaisedGrid(us, vs, np.hypot(du, dv), lab, parts, int(lab[centre]), np.concatenate([x for x, _ in below]),
                       np.concatenate([y for _, y in below]))


def snap_to_protrusion(u: float, v: float, depth: np.ndarray, radius_px: int, step_px: int = 2,
                       ring_px: int = PROTRUSION_RING_PX, min_m: float = PROTRUSION_MIN_M,
                       max_m: float = PROTRUSION_MAX_M) -> tuple[float, float] | None:
    """The middle of the nearest raised blob within `radius_px` of (u, v) (raised_blob): its pixel nearest its
    centroid. None when (u, v) is on one already or none is near."""
    blob = raised_blob(u, v, depth, radius_px, step_px, ring_px, min_m, max_m)
    return None if blob is None else blob.pixel


def steps_off_object(blob: RaisedBlob, object_mask: np.ndarray) -> bool:
    """Whether every depth step at the blob's border drops to a pixel off the object (`object_mask`, HxW)."""
    h, w = object_mask.shape
    inside = (blob.below_us >= 0) & (blob.below_us < w) & (blob.below_vs >= 0) & (blob.below_vs < h)
    return not object_mask[blob.below_vs[inside], blob.below_us[inside]].any()


OUTLINE_PLANE_M = 0.003  # a raised blob this close to the plane at the contact lies on the contact's surface


def is_own_outline(u: float, v: float, blob: RaisedBlob, depth: np.ndarray, K) -> bool:
    """Whether the raised blob is the outline of the surface (u, v) lies on, seen against what lies behind the
    object, rather than a part standing off it: every depth step at its border drops off the object (the
    foreground found in the depth, object_view.foreground_mask) and the pixel it gives lies on the plane at (u, v)
    (within OUTLINE_PLANE_M). The far edge of a closed laptop lid stands 3-6 cm off the floor behind it and passes
    the raised-part test; a contact moved there pulls beside the hinge (benchmarks/eval_handle_snap.md). False
    where it cannot tell (no object found, no plane at (u, v))."""
    from manipllm_ros.object_view import ObjectViewError, foreground_mask

    try:
        fg = foreground_mask(depth, K)
    except ObjectViewError:
        return False
    return steps_off_object(blob, fg) and is_own_rim(u, v, blob, depth, K)


def is_own_rim(u: float, v: float, blob: RaisedBlob, depth: np.ndarray, K) -> bool:
    """Whether the pixel the raised blob gives lies on the plane at (u, v) (within OUTLINE_PLANE_M): the blob is
    the rim of the surface the contact is already on, raised only because the ring around it reaches past that
    surface's edge (a soap dispenser's lever plate, 16 mm proud of the body: its middle is not raised, its rim is;
    benchmarks/eval_which_part.md). False without a plane at (u, v)."""
    try:
        n = G.surface_normal_at(u, v, depth, K)
        p0 = G.pixel_to_point(u, v, depth, K)
        p1 = G.pixel_to_point(*blob.pixel, depth, K)
    except G.GeometryError:
        return False
    return abs(float((p1 - p0) @ n)) < OUTLINE_PLANE_M


def check_sources(contact: str, up: str, zoom: float = 0.0) -> None:
    """ValueError unless `contact` and `up` name sources resolve_contact knows, and a zoom (the grounding answer
    asked again on a crop, model/zoom.py) is 0 or >= 1 with a contact that uses the grounding answer."""
    if contact not in CONTACT_SOURCES or up not in UP_SOURCES:
        raise ValueError(f"contact must be one of {CONTACT_SOURCES} and up one of {UP_SOURCES}, got {contact!r}, "
                         f"{up!r}")
    if zoom and (zoom < 1.0 or not needs_grounding(contact)):
        raise ValueError(f"zoom {zoom:g} refines the grounding answer: it needs contact grounding or agreement "
                         f"(and zoom >= 1), not contact {contact!r}")


def check_protrusion_deg(protrusion_deg: float | None, protrusion_px: int) -> None:
    """ValueError unless the raised-part angle condition is None (any raised part), or an angle in (0, 180) with a
    raised-part radius to condition: without one it would silently do nothing."""
    if protrusion_deg is None:
        return
    if not 0.0 < protrusion_deg < 180.0:
        raise ValueError(f"the raised part's surface must face the model's up within an angle in (0, 180) degrees "
                         f"(or no condition: None), got {protrusion_deg}")
    if protrusion_px <= 0:
        raise ValueError(f"a facing angle ({protrusion_deg:g} deg) conditions the raised-part snap: it needs a "
                         "raised-part radius > 0")


def check_skip_outline(skip_outline: bool, protrusion_px: int) -> None:
    """ValueError for an outline condition without a raised-part radius: it would silently do nothing."""
    if skip_outline and protrusion_px <= 0:
        raise ValueError("keeping off the outline conditions the raised-part snap: it needs a raised-part radius > 0")


def check_stay_on_own(stay_on_own: bool, protrusion_px: int, snap_px: int) -> None:
    """ValueError for keeping a contact on its own raised part without both snaps it conditions."""
    if stay_on_own and (protrusion_px <= 0 or snap_px <= 0):
        raise ValueError("staying on the contact's own raised part conditions the raised-part and surface snaps: it "
                         f"needs both radii > 0 (raised part {protrusion_px}, surface {snap_px})")


def needs_grounding(contact: str) -> bool:
    """Whether the model must also be asked the grounding question."""
    return contact in ("grounding", "agreement")


def resolve_contact(pred, depth: np.ndarray, K, contact: str = "pose", up: str = "model", snap_px: int = 0,
                    snap_deg: float = 30.0, protrusion_px: int = 0, protrusion_deg: float | None = None,
                    handle_px: int = 0, skip_outline: bool = False, stay_on_own: bool = False) -> Contact:
    """The contact pixel and gripper directions for `pred` (a `model.policy.Prediction`, asked with
    ground_contact=needs_grounding(contact)); `protrusion_px` > 0 moves the pixel onto a raised part nearby
    (snap_to_protrusion), else `snap_px` > 0 snaps it to a surface facing the model's up
    (snap_to_agreeing_surface). With `protrusion_deg`, only onto a raised part whose measured surface faces the
    model's up within that angle (or is too curved to measure): a bar handle's side, 90 degrees off, is a part
    the model did not mean and one the cup seals on badly (benchmarks/eval_raised_facing.md). `handle_px` > 0
    first moves the pixel beside the nearest handle within that radius that is mounted on another panel of the
    plane it lies on (handles.snap_beside_handle); the snaps then start from there. `skip_outline` refuses a
    raised part that is the outline of the contact's own surface (is_own_outline: a thin lid's far edge against
    the floor). `stay_on_own` keeps a contact on a part the model already touched: no raised-part move onto the
    rim of the contact's own surface (is_own_rim, which covers the outline), and from a pixel on a raised part
    (own_raised_part: a toaster's lever) the surface snap moves only within that part, or not at all
    (benchmarks/eval_which_part.md)."""
    check_sources(contact, up)
    check_protrusion_deg(protrusion_deg, protrusion_px)
    check_skip_outline(skip_outline, protrusion_px)
    check_stay_on_own(stay_on_own, protrusion_px, snap_px)
    if needs_grounding(contact) and pred.pose_pixel is None:
        raise ValueError(f"contact {contact!r} needs the grounding answer: predict with ground_contact=True")
    pose_px = pred.pose_pixel if pred.pose_pixel is not None else pred.pixel
    pixel_from, note = ("pose", "") if contact == "pose" else ("grounding", "")
    if contact == "agreement":
        a_g = surface_angle(*pred.pixel, depth, K, pred.up)
        a_p = surface_angle(*pose_px, depth, K, pred.up)
        if a_p is not None and (a_g is None or a_p < a_g):
            pixel_from = "pose"

        def fmt(a: float | None) -> str:
            return "no plane" if a is None else f"{a:.0f} deg"

        note = f"surface vs model up: grounding {fmt(a_g)}, pose {fmt(a_p)}"
    u, v = (float(x) for x in (pose_px if pixel_from == "pose" else pred.pixel))
    coarse = getattr(pred, "coarse_pixel", None)  # set when the grounding answer was asked again, zoomed in
    view_pixels = getattr(pred, "view_pixels", None)  # set when several jittered windows were asked (views > 1)
    if view_pixels and pixel_from == "grounding":
        note = "; ".join(x for x in (f"mean of {pred.views_kept} of {len(view_pixels)} views", note) if x)
    if coarse is not None and pixel_from == "grounding":
        note = "; ".join(x for x in (f"zoomed from ({coarse[0]:.0f}, {coarse[1]:.0f})", note) if x)
    if handle_px > 0:
        from manipllm_ros.handles import snap_beside_handle

        hs = snap_beside_handle(u, v, depth, K, handle_px)
        if hs.pixel is not None:
            note = "; ".join(x for x in (note, f"{hs.why}, from ({u:.0f}, {v:.0f})") if x)
            u, v = hs.pixel
    blob = raised_blob(u, v, depth, protrusion_px) if protrusion_px > 0 else None
    raised = None if blob is None else blob.pixel
    if raised is not None and protrusion_deg is not None:
        a = surface_angle(*raised, depth, K, pred.up)
        if a is not None and a > protrusion_deg:
            note = "; ".join(x for x in (note, f"not onto the raised part at ({raised[0]:.0f}, {raised[1]:.0f}): "
                                         f"its surface is {a:.0f} deg off the model's up") if x)
            raised = None
    if raised is not None and stay_on_own and is_own_rim(u, v, blob, depth, K):
        note = "; ".join(x for x in (note, f"not onto the raised part at ({raised[0]:.0f}, {raised[1]:.0f}): it is "
                                     "the rim of the surface the contact is on") if x)
        raised = None
    elif raised is not None and skip_outline and is_own_outline(u, v, blob, depth, K):
        note = "; ".join(x for x in (note, f"not onto the raised part at ({raised[0]:.0f}, {raised[1]:.0f}): it is "
                                     "the outline of the surface the contact is on") if x)
        raised = None
    if raised is not None:  # it stays on the raised part: the surface snap would move it back beside it
        note = "; ".join(x for x in (note, f"onto a raised part from ({u:.0f}, {v:.0f})") if x)
        u, v = raised
    elif snap_px > 0:
        own = own_raised_part(u, v, depth, snap_px) if stay_on_own else None
        snapped = snap_to_agreeing_surface(u, v, depth, K, pred.up, snap_px, snap_deg, within=own)
        if snapped is not None:
            on = " on the raised part it is on" if own is not None else ""
            note = "; ".join(x for x in (note, f"snapped{on} from ({u:.0f}, {v:.0f})") if x)
            u, v = snapped
    up_vec, forward, up_from = np.asarray(pred.up, float), np.asarray(pred.forward, float), "model"
    if up == "depth":
        up_vec, forward, why = G.up_from_depth(u, v, depth, K, up_vec, forward)
        up_from = f"model (depth: {why})" if why else "depth"
    return Contact(u, v, up_vec, forward, pixel_from, up_from, note)
