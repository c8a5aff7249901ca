"""Moving a contact beside the handle on the face it lies on (handles.snap_beside_handle): on synthetic depth
whose geometry is known exactly (stacked fronts, a gap seen as a dashed line, one knob, a front set back without a
gap, a recessed pull), and on rendered cabinets whose model contact sat on a fixed front."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from manipllm_ros.handles import snap_beside_handle

OBJVIEW_HARD = Path(__file__).resolve().parents[1] / "models" / "small-objview-hard"

K = np.array([[615.0, 0.0, 320.0], [0.0, 615.0, 240.0], [0.0, 0.0, 1.0]])
FRONTS = ((100, 200), (204, 304), (308, 408))  # rows of three fronts, columns 200-439, 1.2 m away
KNOB = (slice(340, 357), slice(312, 329))  # on the bottom front, 40 mm off it


def _cabinet(gaps: bool = True, bridges: bool = False) -> np.ndarray:
    """Fronts at 1.2 m in front of a body 5 cm behind them (what shows through the gaps), the floor far behind.
    `bridges`: the gaps are dashed, as a renderer shows an 8 mm gap seen from above (2 px bridges every 20 px)."""
    depth = np.full((480, 640), 2.5)
    depth[96:412, 196:444] = 1.25
    if gaps:
        for r0, r1 in FRONTS:
            depth[r0:r1, 200:440] = 1.2
        if bridges:
            for r1, r0 in ((200, 204), (304, 308)):
                for c in range(205, 440, 20):
                    depth[r1:r0, c:c + 2] = 1.2
    else:
        depth[100:408, 200:440] = 1.2
    depth[KNOB] = 1.16
    return depth


@pytest.mark.parametrize("bridges", [False, True])
def test_a_contact_on_a_plain_front_moves_beside_the_knob_on_the_other(bridges):
    depth = _cabinet(bridges=bridges)
    snap = snap_beside_handle(320, 150, depth, K, radius_px=250)  # the top front: no handle
    assert snap.pixel is not None, snap.why
    u, v = snap.pixel
    assert 308 <= v < 408 and 200 <= u < 440  # the bottom front
    assert not (340 <= v < 357 and 312 <= u < 329)  # beside the knob, not on it
    assert np.hypot(u - 320, v - 348) < 20 and "beside a handle" in snap.why


def test_a_contact_stays_on_the_face_the_handle_is_on_and_without_one_in_reach():
    depth = _cabinet(bridges=True)
    assert snap_beside_handle(230, 390, depth, K, radius_px=250).why == "on the face the handle is on"
    assert snap_beside_handle(230, 390, _cabinet(gaps=False), K, radius_px=250).pixel is None  # one door
    assert snap_beside_handle(320, 150, depth, K, radius_px=100).why == "no handle on the face"  # out of reach
    assert snap_beside_handle(50, 50, depth, K, radius_px=250).why == "no handle on the face"  # the floor


def test_a_front_set_back_without_a_visible_gap_is_another_panel():
    """Fronts that meet without a gap the camera sees (seen from above, the 8 mm gap hides behind the front's
    edge), the bottom one 2 mm behind the others: the knob on it is on another panel than the top front."""
    depth = _cabinet(gaps=False)
    depth[308:408, 200:440] += 0.002
    depth[KNOB] = 1.16
    snap = snap_beside_handle(320, 150, depth, K, radius_px=250)
    assert snap.pixel is not None, snap.why
    assert 308 <= snap.pixel[1] < 408
    assert snap_beside_handle(230, 390, depth, K, radius_px=250).why == "on the face the handle is on"
    flush = _cabinet(gaps=False)  # one flat door: the knob is on the contact's panel
    assert snap_beside_handle(320, 150, flush, K, radius_px=250).why == "on the face the handle is on"


def test_a_recessed_pull_a_few_mm_proud_is_a_handle():
    """A flat pull plate 5 mm proud of the bottom front (the simulator's recessed handle is 4-9 mm proud)."""
    depth = _cabinet()
    depth[KNOB] = 1.2
    depth[350:356, 280:360] = 1.195
    snap = snap_beside_handle(320, 150, depth, K, radius_px=250)
    assert snap.pixel is not None, snap.why
    u, v = snap.pixel
    assert 308 <= v < 408 and not (350 <= v < 356 and 280 <= u < 360)
    depth[350:356, 280:360] = 1.197  # 3 mm: within the face's tolerance, not a handle
    assert snap_beside_handle(320, 150, depth, K, radius_px=250).why == "no handle on the face"


def test_no_plane_no_depth_or_off_the_image_leave_the_contact_where_it_is():
    holes = np.zeros((480, 640))
    assert snap_beside_handle(320, 150, holes, K, radius_px=250).why.startswith("no plane at the contact")
    noisy = 1.2 + 0.05 * np.random.default_rng(0).standard_normal((480, 640))
    assert snap_beside_handle(320, 150, noisy, K, radius_px=250).pixel is None
    speck = _cabinet()
    speck[148:153, 318:323] = 1.1  # a 5 x 5 px patch standing off the front: no face to look for a handle on
    assert snap_beside_handle(320, 150, speck, K, radius_px=250).why == "the contact is not on a flat face"
    assert "outside the image" in snap_beside_handle(700, 150, _cabinet(), K, radius_px=250).why


def test_on_a_rendered_cabinet_the_contact_moves_from_a_fixed_front_onto_the_drawer(monkeypatch):
    """cabinet_drawer seed 105910 (three fronts, a bar on the bottom one): the served model touched the middle
    front at (317, 250) (eval_raised_facing, seed 4); the snap moves it onto the drawer."""
    monkeypatch.setenv("MUJOCO_GL", "egl")
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm

    _, arm = build_arm(EpisodeSpec("cabinet_drawer", 105910, 6))
    with arm:
        obs = arm.world.observe()
    assert obs.object_mask[250, 317] and not obs.mask[250, 317]
    snap = snap_beside_handle(317, 250, obs.depth, obs.intrinsics.K, radius_px=200)
    assert snap.pixel is not None, snap.why
    u, v = (int(round(x)) for x in snap.pixel)
    assert obs.mask[v, u]


@pytest.mark.parametrize("seed, index, pixel, what", [
    (100910, 4, (335, 268), "knob on the middle front; the seam above it shows no gap in the depth"),
    (186795, 5, (270, 268), "recessed pull on the bottom front, 4-9 mm proud"),
])
def test_on_rendered_cabinets_a_set_back_front_and_a_recessed_pull_are_found(seed, index, pixel, what, monkeypatch):
    """Three-front cabinets where the served model touched a fixed front (eval_bound seeds 18 and 9) and the
    handle snap as first built stayed put (benchmarks/eval_panels.md)."""
    monkeypatch.setenv("MUJOCO_GL", "egl")
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm

    _, arm = build_arm(EpisodeSpec("cabinet_drawer", seed, index))
    with arm:
        obs = arm.world.observe()
    u0, v0 = pixel
    assert obs.object_mask[v0, u0] and not obs.mask[v0, u0], what
    snap = snap_beside_handle(u0, v0, obs.depth, obs.intrinsics.K, radius_px=200)
    assert snap.pixel is not None, (what, snap.why)
    u, v = (int(round(x)) for x in snap.pixel)
    assert obs.mask[v, u], what


def test_eval_proposer_and_pose_service_move_beside_the_same_handle(one_torch_thread, monkeypatch):
    """`-handle200` in an eval name and `handle_radius_px: 200` in the pose service reach resolve_contact alike:
    on the cabinet above, the served model touches a fixed front and both move it onto the drawer."""
    monkeypatch.setenv("MUJOCO_GL", "egl")
    from manipllm_ros.config import FramesConfig, PoseServiceConfig
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm
    from manipllm_ros.evaluation.matrix import MatrixRow
    from manipllm_ros.evaluation.proposals import make_proposer, parse_model_proposer
    from manipllm_ros.pose_service import PoseService, RGBDFrame

    name = "model-direct-grounded-snap60-depthup-raised40-facing45-handle200"
    assert parse_model_proposer(name).handle_px == 200
    assert MatrixRow(name="r", proposer="model", checkpoint=str(OBJVIEW_HARD), mode="direct", contact="grounding",
                     snap_px=60, up="depth", protrusion_px=40, protrusion_deg=45,
                     handle_px=200).eval_proposer == name
    with pytest.raises(ValueError, match="drop '-handle0'"):
        parse_model_proposer("model-direct-grounded-handle0")
    obj, arm = build_arm(EpisodeSpec("cabinet_drawer", 105910, 6))
    with arm:
        obs = arm.world.observe()
    proposer = make_proposer(name, str(OBJVIEW_HARD))
    prop = proposer.propose(obs, obj.meta.instruction, np.random.default_rng(0))
    frame = RGBDFrame(obs.rgb, np.asarray(obs.depth, np.float32), np.asarray(obs.intrinsics.K, float))
    cfg = PoseServiceConfig(contact="grounding", up="depth", snap_radius_px=60, protrusion_radius_px=40,
                            protrusion_facing_deg=45, handle_radius_px=200)
    res = PoseService(proposer.predictor, cfg, FramesConfig()).predict(obj.meta.instruction, frame, False)
    assert prop.ok and res.success, (prop.error, res.error)
    assert (res.u, res.v) == (prop.u, prop.v) and res.contact_note == prop.contact_note
    assert "beside a handle" in prop.contact_note and obs.mask[prop.v, prop.u], prop.contact_note
