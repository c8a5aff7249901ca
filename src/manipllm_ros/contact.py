"""Where the gripper touches and which way it faces, from one model prediction and the aligned depth.

The model answers a pose (pixel, up, forward) and, when asked, a grounding point ("the part that moves is at").
`contact` chooses the pixel: the pose answer's, the grounding answer's, or of the two the one whose measured
surface faces the way the model's up says ("agreement": the up tells which surface the model means to touch,
the depth which surface each pixel is on). `snap_px` then moves a contact whose surface disagrees with the
model's up to the nearest pixel within that radius whose surface agrees (a point beside the part, on the body,
moves onto the part the up describes). `up` chooses the approach axis: the model's, or minus the surface normal
measured at the contact. Shared by the pose service and the evaluation, so both act alike.
(benchmarks/eval_depth_up.md, benchmarks/eval_contact_agreement.md)
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
                              max_angle_deg: float = 30.0, step_px: int = 4) -> tuple[float, float] | None:
    """The nearest pixel within `radius_px` of (u, v), on a `step_px` grid, whose surface faces the way `up` says
    (within `max_angle_deg`); None when (u, v) itself does, or when no such pixel is near."""
    a0 = surface_angle(u, v, depth, K, up)
    if a0 is not None and a0 <= max_angle_deg:
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


def check_sources(contact: str, up: str, zoom: float = 0.0) -> None:
    """ValueError unless `contact` and `up` name sources resolve_contact knows, and a zoom (the grounding answer
    asked again on a crop, model/zoom.py) is 0 or >= 1 with a contact that uses the grounding answer."""
    if contact not in CONTACT_SOURCES or up not in UP_SOURCES:
        raise ValueError(f"contact must be one of {CONTACT_SOURCES} and up one of {UP_SOURCES}, got {contact!r}, "
                         f"{up!r}")
    if zoom and (zoom < 1.0 or not needs_grounding(contact)):
        raise ValueError(f"zoom {zoom:g} refines the grounding answer: it needs contact grounding or agreement "
                         f"(and zoom >= 1), not contact {contact!r}")


def needs_grounding(contact: str) -> bool:
    """Whether the model must also be asked the grounding question."""
    return contact in ("grounding", "agreement")


def resolve_contact(pred, depth: np.ndarray, K, contact: str = "pose", up: str = "model", snap_px: int = 0,
                    snap_deg: float = 30.0) -> Contact:
    """The contact pixel and gripper directions for `pred` (a `model.policy.Prediction`, asked with
    ground_contact=needs_grounding(contact)); `snap_px` > 0 snaps the pixel (snap_to_agreeing_surface)."""
    check_sources(contact, up)
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
    if coarse is not None and pixel_from == "grounding":
        note = "; ".join(x for x in (f"zoomed from ({coarse[0]:.0f}, {coarse[1]:.0f})", note) if x)
    if snap_px > 0:
        snapped = snap_to_agreeing_surface(u, v, depth, K, pred.up, snap_px, snap_deg)
        if snapped is not None:
            note = "; ".join(x for x in (note, f"snapped from ({u:.0f}, {v:.0f})") if x)
            u, v = snapped
    up_vec, forward, up_from = np.asarray(pred.up, float), np.asarray(pred.forward, float), "model"
    if up == "depth":
        up_vec, forward, why = G.up_from_depth(u, v, depth, K, up_vec, forward)
        up_from = f"model (depth: {why})" if why else "depth"
    return Contact(u, v, up_vec, forward, pixel_from, up_from, note)
