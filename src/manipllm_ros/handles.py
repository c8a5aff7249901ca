"""Handles in the aligned depth: small parts that stand off the flat face a contact is on.

The small model finds the part it is asked for but often touches the wrong one of several look-alike faces: of
a cabinet's two or three fronts it touches one at about chance, even when only the sliding one bears a handle
(benchmarks/drawer_front_probe.md: its image tokens do not carry which front it is). The depth camera sees the
handle. `snap_beside_handle` moves the contact right beside the nearest handle mounted on the plane the model's
contact lies on, when that handle is on another panel of the plane (another front) than the contact: which is
also where the templated reasoning says to act ("near the handle bar"). A contact on a door or lid that bears its
own handle stays. It looks only at geometry: the face and the handle from the depth, no category, no mask.
(benchmarks/eval_handle_snap.md) Two fronts are two panels where the depth shows a gap between them, or where one
stands back from the other by a step (seen from above, the gap hides behind a front's edge); a recessed pull
plate, a few mm proud, is a handle too (benchmarks/eval_panels.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from manipllm_ros import geometry as G

HANDLE_MIN_M = 0.004  # a handle stands off the face by more than this (a bar: 35-70 mm, a knob: 30-60 mm, a
# recessed pull plate: 4-9 mm; the face is what lies within FACE_TOL_M) ...
HANDLE_MAX_M = 0.08  # ... and less than this
FACE_TOL_M = 0.004  # a pixel within this of the face's plane is on the face
FACE_MAX_DEG = 30.0  # ... if its own surface (finite differences) is also within this of the plane's
JUMP_M = 0.015  # a depth step this large between neighbours outlines a handle against what it hides
RING_FRACTION = 0.35  # a handle is mounted on the face: at least this much of a 5 px ring around it is the face
ERODE_PX = 5  # the face is eroded by this square before telling its separate panels apart
MIN_FACE_PX = 50  # fewer pixels around the contact on its plane are no face (an edge, a speck)
NEAR_PX = 20  # a contact this close to the spot beside a handle stays where it is
PANEL_STEP_M = 0.001  # the face around a handle standing this far off the plane at the contact is another panel
PANEL_DISC_PX = 15  # the plane at the contact: fitted to the face pixels within this of it


@dataclass(frozen=True)
class HandleSnap:
    pixel: tuple[float, float] | None  # where the contact moves; None: it stays
    why: str  # why it moved or stayed (for the prediction's note)


def _plane(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit normal facing the camera, centroid) of the least-squares plane through points P (n x 3)."""
    c = P.mean(axis=0)
    n = np.linalg.svd(P - c, full_matrices=False)[2][2]
    return (n if float(n @ c) < 0 else -n), c


def _pixel_normals(P: np.ndarray) -> np.ndarray:
    """Unit normals (sign arbitrary) from central differences of a grid of points; NaN at the border/holes. Not
    sim.camera.normals_from_points: that one also blanks pixels at second-difference depth jumps, which would
    change which pixels join a face from what benchmarks/eval_handle_snap.md measured."""
    du = np.full_like(P, np.nan)
    dv = np.full_like(P, np.nan)
    du[:, 1:-1] = P[:, 2:] - P[:, :-2]
    dv[1:-1] = P[2:] - P[:-2]
    n = np.cross(du, dv)
    with np.errstate(invalid="ignore", divide="ignore"):
        return n / np.linalg.norm(n, axis=-1, keepdims=True)


def snap_beside_handle(u: float, v: float, depth: np.ndarray, K, radius_px: int, near_px: int = NEAR_PX, *,
                       min_m: float = HANDLE_MIN_M, panel_step_m: float | None = PANEL_STEP_M) -> HandleSnap:
    """The spot on the face beside the handle nearest (u, v), within `radius_px`, mounted on the plane (u, v)
    lies on, when that handle is on another panel of it; stays (pixel None) without a plane there, without a
    handle on it, with the handle on the contact's own panel, or when already beside it.

    The face: the pixels within FACE_TOL_M of a plane refitted three times to the 4-connected component of such
    pixels that holds (u, v), whose own surface also faces along its normal (so a front's top edge seen in a
    gap does not join it to the next front). A handle: an 8-connected blob standing `min_m`-HANDLE_MAX_M
    off that plane, cut from whatever it hides by depth steps, inside the window, smaller than 0.3 of the face,
    with the face around it. Its panel: of the face eroded by ERODE_PX, the component most of its surroundings
    lie on; and where that is the contact's, another all the same if the face around it stands off the plane at
    the contact by more than `panel_step_m` (_offset_panels; None: gaps alone part panels, as
    benchmarks/eval_handle_snap.md measured). The spot: the face pixel (eroded 2 px, 3 px clear of the blob)
    nearest the point where the handle meets the plane. `min_m` 0.008 and `panel_step_m` None give the snap as
    first built."""
    import cv2

    K = np.asarray(K, dtype=float)
    depth = np.asarray(depth, dtype=float)
    h, w = depth.shape
    c, r = int(round(float(u))), int(round(float(v)))
    if not (0 <= c < w and 0 <= r < h):
        return HandleSnap(None, f"({u:.0f}, {v:.0f}) is outside the image")
    try:
        n = G.surface_normal_at(u, v, depth, K)
        p0 = G.pixel_to_point(u, v, depth, K)
    except G.GeometryError as exc:
        return HandleSnap(None, f"no plane at the contact: {exc}")
    r0, r1, c0, c1 = max(0, r - radius_px), min(h, r + radius_px + 1), max(0, c - radius_px), min(w, c + radius_px + 1)
    z = depth[r0:r1, c0:c1]
    ok = np.isfinite(z) & (z > 0)
    vv, uu = np.mgrid[r0:r1, c0:c1]
    P = np.stack([(uu - K[0, 2]) * z / K[0, 0], (vv - K[1, 2]) * z / K[1, 1], z], axis=-1)
    normals = _pixel_normals(P)
    ci, cj = r - r0, c - c0
    cos_max = np.cos(np.radians(FACE_MAX_DEG))
    for _ in range(3):
        with np.errstate(invalid="ignore"):
            dist = np.where(ok, (P - p0) @ n, np.nan)
            face = ok & (np.abs(dist) < FACE_TOL_M) & (np.abs(normals @ n) > cos_max)
        _, lab, stats, _ = cv2.connectedComponentsWithStats(face.astype(np.uint8), connectivity=4)
        if lab[ci, cj] == 0 or stats[lab[ci, cj], cv2.CC_STAT_AREA] < MIN_FACE_PX:
            return HandleSnap(None, "the contact is not on a flat face")
        n, p0 = _plane(P[lab == lab[ci, cj]])
    with np.errstate(invalid="ignore"):
        dist = np.where(ok, (P - p0) @ n, np.nan)
        face = ok & (np.abs(dist) < FACE_TOL_M) & (np.abs(normals @ n) > cos_max)
        raised = ok & (dist > min_m) & (dist < HANDLE_MAX_M)
    face_area = int(stats[lab[ci, cj], cv2.CC_STAT_AREA])
    zz = np.where(ok, z, np.inf)
    step = np.zeros_like(ok)
    for a, b in ((np.s_[:, 1:], np.s_[:, :-1]), (np.s_[1:], np.s_[:-1])):
        with np.errstate(invalid="ignore"):
            j = np.abs(zz[a] - zz[b]) > JUMP_M
        step[a] |= j
        step[b] |= j
    raised &= ~step
    nb, blab, bst, _ = cv2.connectedComponentsWithStats(raised.astype(np.uint8), connectivity=8)
    ring_k = np.ones((11, 11), np.uint8)
    best: tuple[float, int] | None = None
    for b in range(1, nb):
        x, y, bw, bh, area = (int(s) for s in bst[b])
        if area < 12 or area > 0.3 * face_area or x == 0 or y == 0 or x + bw >= raised.shape[1] \
                or y + bh >= raised.shape[0]:
            continue
        blob = blab == b
        ring = (cv2.dilate(blob.astype(np.uint8), ring_k) > 0) & ~blob
        if face[ring].mean() < RING_FRACTION:
            continue
        ys, xs = np.nonzero(blob)
        d = float(np.hypot(xs - cj, ys - ci).min())
        if best is None or d < best[0]:
            best = (d, b)
    if best is None:
        return HandleSnap(None, "no handle on the face")
    blob = blab == best[1]
    # Which face the handle is on: of the face eroded (a gap seen edge-on between two fronts is a dashed line
    # that its bridges, 1-2 px, no longer cross), the component most of the ring around the handle lies on.
    parts = cv2.erode(face.astype(np.uint8), np.ones((ERODE_PX, ERODE_PX), np.uint8))
    _, plab = cv2.connectedComponents(parts, connectivity=4)
    around = plab[(cv2.dilate(blob.astype(np.uint8), np.ones((21, 21), np.uint8)) > 0) & (plab > 0)]
    ys, xs = np.nonzero(plab)
    if len(xs) == 0 or len(around) == 0:
        return HandleSnap(None, "no face left around the handle")
    k = int(np.argmin(np.hypot(xs - cj, ys - ci)))  # the contact's panel: the eroded face's pixel nearest it
    if np.bincount(around).argmax() == plab[ys[k], xs[k]] and not _offset_panels(P, face, blob, ci, cj, panel_step_m):
        return HandleSnap(None, "on the face the handle is on")
    Pb = P[blob]
    m = (Pb - ((Pb - p0) @ n)[:, None] * n[None]).mean(axis=0)  # where the handle meets the face
    mu, mv = K[0, 0] * m[0] / m[2] + K[0, 2] - c0, K[1, 1] * m[1] / m[2] + K[1, 2] - r0
    spots = (cv2.erode(face.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) \
        & ~(cv2.dilate(blob.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0)
    ys, xs = np.nonzero(spots)
    if len(xs) == 0:
        return HandleSnap(None, "no flat spot beside the handle")
    i = int(np.argmin(np.hypot(xs - mu, ys - mv)))
    moved = float(np.hypot(xs[i] - cj, ys[i] - ci))
    if moved <= near_px:
        return HandleSnap(None, f"already beside a handle ({moved:.0f} px)")
    return HandleSnap((float(xs[i] + c0), float(ys[i] + r0)), f"beside a handle {moved:.0f} px away")


def _offset_panels(P: np.ndarray, face: np.ndarray, blob: np.ndarray, ci: int, cj: int,
                   step_m: float | None) -> bool:
    """Whether the face around the handle stands off the plane of the face at the contact (the face pixels within
    PANEL_DISC_PX of it) by more than `step_m` (median; None: never): two fronts that meet without a gap the
    camera sees, one set back from the other (a drawer 2 mm behind the fixed front above it, seen from above; one
    plane fitted through both tilts to split the step, so each front is measured against the contact's own;
    benchmarks/eval_panels.md)."""
    import cv2

    if step_m is None:
        return False
    ring = (cv2.dilate(blob.astype(np.uint8), np.ones((21, 21), np.uint8)) > 0) & ~blob & face
    vv, uu = np.indices(face.shape)
    own = face & (np.hypot(uu - cj, vv - ci) <= PANEL_DISC_PX)
    if ring.sum() < 3 or own.sum() < 10:
        return False
    n, c = _plane(P[own])
    return abs(float(np.median((P[ring] - c) @ n))) > step_m
