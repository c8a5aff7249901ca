"""Geometry: back-projection with depth holes, rotations from up/forward, hand-eye transforms, quaternions."""

import numpy as np
import pytest

from manipllm_ros import geometry as G

K = G.intrinsics_matrix(600.0, 610.0, 320.0, 240.0)


def test_pixel_to_point_known_answer():
    depth = np.full((480, 640), 2.0, np.float32)
    np.testing.assert_allclose(G.pixel_to_point(320, 240, depth, K), [0, 0, 2.0])
    p = G.pixel_to_point(620, 40, depth, K)  # u = column (x right), v = row (y down)
    np.testing.assert_allclose(p, [300 * 2 / 600, -200 * 2 / 610, 2.0])
    np.testing.assert_allclose(G.point_to_pixel(p, K), (620, 40))
    np.testing.assert_allclose(G.pixel_to_point(320, 240, depth, [600, 610, 320, 240]), [0, 0, 2.0])


def test_depth_hole_uses_nearest_valid_pixel():
    depth = np.zeros((480, 640), np.float32)
    depth[100, 103] = 1.5  # 3 px right
    depth[100, 96] = 3.0  # 4 px left: farther, must not be chosen
    depth[100, 100] = np.nan
    assert G.valid_depth_at(100, 100, depth, window=5) == 1.5
    p = G.pixel_to_point(100, 100, depth, K, window=5)
    assert p[2] == pytest.approx(1.5) and p[0] == pytest.approx((100 - 320) * 1.5 / 600)


@pytest.mark.parametrize("fill", [0.0, np.nan, np.inf, 50.0])
def test_no_valid_depth_raises(fill):
    depth = np.full((480, 640), fill, np.float32)
    depth[0, 0] = 1.0  # far away from the pixel
    with pytest.raises(G.NoValidDepthError, match="no valid depth"):
        G.pixel_to_point(300, 300, depth, K, window=3)


def test_off_image_pixel_and_bad_intrinsics():
    depth = np.ones((480, 640), np.float32)
    with pytest.raises(G.NoValidDepthError, match="outside"):
        G.pixel_to_point(640, 10, depth, K)
    with pytest.raises(G.GeometryError, match="intrinsics"):
        G.pixel_to_point(1, 1, depth, np.zeros((3, 3)))


def test_rotation_from_up_forward_is_proper_and_columns_match_convention():
    rng = np.random.default_rng(1)
    for _ in range(50):
        up, fw = rng.normal(size=3), rng.normal(size=3)
        R = G.rotation_from_up_forward(up, fw)
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        np.testing.assert_allclose(R[:, 2], up / np.linalg.norm(up))
        np.testing.assert_allclose(R[:, 1], np.cross(R[:, 2], R[:, 0]))
        assert np.dot(R[:, 0], fw) > 0
    R = G.rotation_from_up_forward([0, 0, 1], [1, 0, 0.3])  # non-orthogonal forward
    np.testing.assert_allclose(R, np.eye(3), atol=1e-12)


@pytest.mark.parametrize(
    "up,fw,match",
    [([0, 0, 0], [1, 0, 0], "up direction has zero length"), ([0, 0, 1], [0, 0, 0], "forward"),
     ([0, 0, 1], [0, 0, -3], "parallel"), ([np.nan, 0, 1], [1, 0, 0], "not finite")],
)
def test_rotation_degenerate_inputs(up, fw, match):
    with pytest.raises(G.DegenerateDirectionError, match=match):
        G.rotation_from_up_forward(up, fw)


def test_approach_pose_backs_off_against_up():
    # camera looks along +z at a surface facing the camera: normal -z, so up (into the surface) is +z
    R = G.rotation_from_up_forward([0, 0, 1], [1, 0, 0])
    pos, R2 = G.approach_pose([0.1, 0.2, 1.0], R, 0.05)
    np.testing.assert_allclose(pos, [0.1, 0.2, 0.95])  # in front of the surface, towards the camera
    np.testing.assert_allclose(R2, R)


def test_transform_pose_through_hand_eye():
    Rz90 = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    T = G.make_transform(Rz90, [1.0, 2.0, 3.0])
    pos, R = G.transform_pose(T, [1, 0, 0], np.eye(3))
    np.testing.assert_allclose(pos, [1, 3, 3])
    np.testing.assert_allclose(R, Rz90)
    np.testing.assert_allclose(G.invert_transform(T) @ T, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(G.transform_direction(T, [1, 0, 0]), [0, 1, 0])
    bad = T.copy()
    bad[:3, :3] *= 2
    with pytest.raises(G.GeometryError, match="T_base_cam rotation"):
        G.transform_pose(bad, [0, 0, 0], np.eye(3))


def test_quaternion_round_trip_and_known_values():
    np.testing.assert_allclose(G.quaternion_from_matrix(np.eye(3)), [0, 0, 0, 1])
    Rz90 = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    np.testing.assert_allclose(G.quaternion_from_matrix(Rz90), [0, 0, np.sqrt(0.5), np.sqrt(0.5)])
    rng = np.random.default_rng(2)
    for _ in range(50):
        R = G.rotation_from_up_forward(rng.normal(size=3), rng.normal(size=3))
        np.testing.assert_allclose(G.matrix_from_quaternion(G.quaternion_from_matrix(R)), R, atol=1e-9)
    Rx180 = np.diag([1.0, -1, -1])
    np.testing.assert_allclose(G.matrix_from_quaternion(G.quaternion_from_matrix(Rx180)), Rx180, atol=1e-12)
    with pytest.raises(G.GeometryError):
        G.matrix_from_quaternion([0, 0, 0, 0])
    with pytest.raises(G.GeometryError):
        G.quaternion_from_matrix(np.diag([1.0, 1, -1]))
    assert G.angle_between([1, 0, 0], [0, 2, 0]) == pytest.approx(90)


def _plane_depth(normal, distance: float, shape=(480, 640)) -> np.ndarray:
    """Depth image of the plane n . p = -distance (n facing the camera), seen through K."""
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    v, u = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    return (-distance / (rays @ n)).astype(np.float32)  # z along each ray where it meets the plane


def test_surface_normal_of_a_tilted_plane_known_answer():
    n = np.array([0.3, -0.2, -1.0]) / np.linalg.norm([0.3, -0.2, -1.0])  # faces the camera (negative z)
    depth = _plane_depth(n, 0.8)
    for u, v in [(320, 240), (100, 400), (600, 30)]:
        assert G.angle_between(G.surface_normal_at(u, v, depth, K), n) < 0.05  # degrees
    depth[240, 318:323] = np.nan  # a few holes do not matter
    assert G.angle_between(G.surface_normal_at(320, 240, depth, K), n) < 0.05


def test_surface_normal_refuses_edges_corners_and_holes():
    depth = np.full((480, 640), 1.0, np.float32)
    depth[:, 320:] = 1.5  # a depth step: the far side is ignored, the plane is still the near one
    np.testing.assert_allclose(G.surface_normal_at(318, 240, depth, K), [0, 0, -1], atol=1e-6)
    x = (np.arange(640) - 320) / 600  # metres at z = 1
    ridge = np.tile((1.0 + np.abs(x)).astype(np.float32), (480, 1))  # a right-angled edge at u = 320
    with pytest.raises(G.GeometryError, match="not a plane"):
        G.surface_normal_at(320, 240, ridge, K)
    # surface_fit_at gives the same fit without refusing: the edge's variation (0.11 on a right angle), a plane's 0
    assert G.surface_fit_at(320, 240, ridge, K)[1] > 0.05
    flat_n, flat_var = G.surface_fit_at(318, 240, depth, K)
    np.testing.assert_allclose(flat_n, [0, 0, -1], atol=1e-6)
    assert flat_var < 1e-9
    noisy = np.random.default_rng(0).normal(1.0, 0.002, (480, 640)).astype(np.float32)  # 2 mm: still a plane
    assert G.angle_between(G.surface_normal_at(320, 240, noisy, K), [0, 0, -1]) < 10
    sparse = np.zeros((480, 640), np.float32)
    sparse[240, 318:323] = 1.0  # five points are not a surface
    with pytest.raises(G.GeometryError, match="depth points"):
        G.surface_normal_at(320, 240, sparse, K)
    with pytest.raises(G.NoValidDepthError):
        G.surface_normal_at(320, 240, np.zeros((480, 640), np.float32), K)


def test_up_from_depth_replaces_up_and_keeps_forward_perpendicular():
    n = np.array([0.0, 0.5, -1.0]) / np.linalg.norm([0.0, 0.5, -1.0])
    depth = _plane_depth(n, 1.0)
    up, fw, why = G.up_from_depth(320, 240, depth, K, up=[1.0, 0, 0], forward=[0.0, 1.0, 0.0])
    assert why == "" and G.angle_between(up, -n) < 0.05
    assert abs(np.dot(up, fw)) < 1e-9 and np.linalg.norm(fw) == pytest.approx(1.0)
    assert np.dot(fw, [0, 1, 0]) > 0.8  # the given forward, only made perpendicular
    up, fw, why = G.up_from_depth(320, 240, depth, K, up=[1.0, 0, 0], forward=-n)  # forward along the normal
    assert why == "" and abs(np.dot(up, fw)) < 1e-9
    G.rotation_from_up_forward(up, fw)  # a proper rotation, not a degenerate one
    flat = np.zeros((480, 640), np.float32)
    flat[240, 320] = 1.0
    up, fw, why = G.up_from_depth(320, 240, flat, K, up=[0, 0, 1.0], forward=[1.0, 0, 0])
    assert "depth points" in why  # no plane: the given directions come back, with the reason
    np.testing.assert_array_equal(up, [0, 0, 1]) and np.testing.assert_array_equal(fw, [1, 0, 0])
