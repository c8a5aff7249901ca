"""contact.resolve_contact: which pixel and which up, on depth images with known surfaces."""

from __future__ import annotations

import numpy as np
import pytest

from manipllm_ros import geometry as G
from manipllm_ros.contact import needs_grounding, resolve_contact
from manipllm_ros.model.policy import Prediction

K = G.intrinsics_matrix(600.0, 600.0, 320.0, 240.0)


def _scene() -> np.ndarray:
    """Left half: a wall facing the camera (normal -z) at 1 m. Right half: a floor-like plane tilted 60 deg."""
    v, u = np.mgrid[0:480, 0:640].astype(float)
    depth = np.ones((480, 640), np.float32)
    n = np.array([0.0, -np.sin(np.radians(60)), -np.cos(np.radians(60))])  # faces the camera and upward (-y)
    rays = np.stack([(u - 320) / 600, (v - 240) / 600, np.ones_like(u)], axis=-1)
    tilted = -1.2 / (rays @ n)
    depth[:, 330:] = tilted[:, 330:]
    return depth


def _pred(pose_px, ground_px, up=(0.0, 0.0, 1.0)) -> Prediction:
    """A prediction as PosePredictor returns it with ground_contact=True: pixel = the grounding answer's."""
    return Prediction(pixel=ground_px, up=np.asarray(up), forward=np.array([1.0, 0, 0]), answer="",
                      pose_pixel=pose_px)


def test_agreement_takes_the_pixel_whose_surface_faces_the_models_up():
    depth = _scene()
    wall, tilted = (150.0, 240.0), (500.0, 300.0)
    c = resolve_contact(_pred(pose_px=wall, ground_px=tilted), depth, K, "agreement")  # up (0, 0, 1): the wall
    assert (c.u, c.v, c.pixel_from) == (*wall, "pose") and "grounding 60 deg, pose 0 deg" in c.note
    c = resolve_contact(_pred(pose_px=tilted, ground_px=wall), depth, K, "agreement")
    assert (c.u, c.v, c.pixel_from) == (*wall, "grounding")
    up_tilted = np.array([0.0, np.sin(np.radians(60)), np.cos(np.radians(60))])
    c = resolve_contact(_pred(pose_px=wall, ground_px=tilted, up=up_tilted), depth, K, "agreement")
    assert c.pixel_from == "grounding" and c.up_from == "model"
    np.testing.assert_allclose(c.up, up_tilted)  # the model's up is kept unless up = depth
    holes = depth.copy()  # the pose pixel on the wall, but with no depth around it: no plane, so it never wins
    holes[220:261, 130:171] = np.nan
    holes[240, 150] = 1.0
    c = resolve_contact(_pred(pose_px=wall, ground_px=tilted), holes, K, "agreement")
    assert c.pixel_from == "grounding" and "pose no plane" in c.note


def test_pose_grounding_and_depth_up():
    depth = _scene()
    p = _pred(pose_px=(150.0, 240.0), ground_px=(500.0, 300.0), up=(0.3, 0.0, 0.95))
    assert resolve_contact(p, depth, K, "pose").pixel_from == "pose"
    g = resolve_contact(p, depth, K, "grounding", up="depth")
    assert (g.u, g.v, g.pixel_from, g.up_from) == (500.0, 300.0, "grounding", "depth")
    assert G.angle_between(g.up, [0.0, np.sin(np.radians(60)), np.cos(np.radians(60))]) < 0.1
    assert abs(np.dot(g.up, g.forward)) < 1e-9
    plain = Prediction(pixel=(150.0, 240.0), up=np.array([0, 0, 1.0]), forward=np.array([1.0, 0, 0]), answer="")
    assert resolve_contact(plain, depth, K, "pose").pixel_from == "pose"  # asked without the grounding question
    assert needs_grounding("agreement") and needs_grounding("grounding") and not needs_grounding("pose")
    with pytest.raises(ValueError, match="ground_contact=True"):
        resolve_contact(plain, depth, K, "agreement")
    with pytest.raises(ValueError, match="contact must be"):
        resolve_contact(p, depth, K, "sideways")
    # a grounding answer asked again on a zoomed-in crop says where it came from; the pose contact does not
    zoomed = _pred(pose_px=(150.0, 240.0), ground_px=(500.0, 300.0))
    zoomed.coarse_pixel = (480.4, 310.0)
    assert resolve_contact(zoomed, depth, K, "grounding").note == "zoomed from (480, 310)"
    assert resolve_contact(zoomed, depth, K, "pose").note == ""


def test_snap_moves_a_disagreeing_contact_to_the_nearest_agreeing_surface():
    from manipllm_ros.contact import snap_to_agreeing_surface

    depth = _scene()  # wall (faces -z) for u < 330, tilted plane from u = 330
    wall_up = np.array([0.0, 0.0, 1.0])
    assert snap_to_agreeing_surface(150, 240, depth, K, wall_up, radius_px=40) is None  # already agrees
    u, v = snap_to_agreeing_surface(345, 240, depth, K, wall_up, radius_px=40)  # on the tilted plane, near the wall
    assert v == 240 and 320 <= u < 330 and G.angle_between(-G.surface_normal_at(u, v, depth, K), wall_up) < 1
    assert snap_to_agreeing_surface(500, 240, depth, K, wall_up, radius_px=40) is None  # no wall within 40 px
    p = _pred(pose_px=(345.0, 240.0), ground_px=(500.0, 300.0))
    c = resolve_contact(p, depth, K, "pose", up="depth", snap_px=40)
    assert (c.u, c.v) == (u, v) and c.note == "snapped from (345, 240)" and c.up_from == "depth"
    assert G.angle_between(c.up, wall_up) < 1  # the up is measured where the contact ended up
    assert (resolve_contact(p, depth, K, "pose").u, c.pixel_from) == (345.0, "pose")  # snap_px = 0: no snap
