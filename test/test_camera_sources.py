"""Camera sources without ROS: a synthetic recording written by librealsense's recorder plays back through the
real `enable_device_from_file` + `rs.align` path with its known content, intrinsics and geometry; the MuJoCo
camera renders the world's own depth; bad serials, files and profiles give clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from manipllm_ros.camera.record import SyntheticRig, synthetic_depth_mm, synthetic_rgb, write_synthetic_recording
from manipllm_ros.camera.sources import (
    CameraError,
    DeviceNotFoundError,
    RealSenseSource,
    RecordingNotFoundError,
    SimSource,
    UnsupportedProfileError,
    open_source,
)
from manipllm_ros.config import CameraConfig

RIG = SyntheticRig()
FRAMES = 12


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return write_synthetic_recording(tmp_path_factory.mktemp("cam") / "synthetic.db3", FRAMES, RIG)


def consecutive_to_end(numbers: list[int], n: int) -> bool:
    """Frames first..n-1 in order with none missing after the start. librealsense's syncer may emit the very first
    colour and depth of a playback apart (it has not seen the other stream yet), so a reader that wants pairs can
    lose the first framesets; RealSenseSource rewinds a non-real-time playback to make that rare (1 in 30 runs on a
    loaded machine, 3 frames lost at worst in CI before the rewind). Lost frames are allowed only at the start."""
    return numbers[0] <= 3 and numbers == list(range(numbers[0], n))


def read_all(src, limit=100):
    frames = []
    while len(frames) < limit:
        f = src.read(timeout=1.0)
        if f is None:
            if src.finished:
                break
            continue
        frames.append(f)
    return frames


def colour_column(u_depth: float, z: float) -> float:
    """Where a depth-image column at depth z lands in the colour image (the rig's pinhole models + baseline)."""
    d, c = RIG.depth, RIG.color
    x = (u_depth - d.ppx) * z / d.fx - RIG.baseline_m
    return c.fx * x / z + c.ppx


def test_recording_plays_back_aligned_with_known_content(recording):
    with RealSenseSource(recording=recording, realtime=False) as src:
        assert np.allclose(src.K, RIG.color.K)
        assert src.depth_scale == pytest.approx(RIG.depth_units)
        frames = read_all(src)
        assert src.finished
    assert consecutive_to_end([f.frame_number for f in frames], FRAMES)
    for f in frames:
        assert f.rgb.shape == (RIG.height, RIG.width, 3) and f.rgb.dtype == np.uint8
        assert f.depth.shape == (RIG.height, RIG.width) and f.depth.dtype == np.float32
        assert np.array_equal(f.rgb, synthetic_rgb(f.frame_number, RIG)), "colour must come back bit-exact"
        assert np.allclose(f.K, RIG.color.K)
        assert f.device_stamp == pytest.approx(f.frame_number / RIG.fps, abs=1e-3)
        assert f.distortion_model == "plumb_bob" and f.distortion == (0.0,) * 5

    # Alignment really reprojected depth into the colour camera: the box (0.6 m) sits where the two pinhole
    # models and the 15 mm baseline put it, not where it is in the depth image.
    n = 5
    f = next(f for f in frames if f.frame_number == n)
    u0, v0, u1, v1 = RIG.box_px
    row = (v0 + v1) // 2
    box_cols = np.flatnonzero(np.isclose(f.depth[row], RIG.box_m, atol=1e-3))
    expect_left, expect_right = colour_column(u0 + n - 0.5, RIG.box_m), colour_column(u1 + n - 0.5, RIG.box_m)
    assert abs(box_cols.min() - expect_left) <= 1.5 and abs(box_cols.max() + 1 - expect_right) <= 1.5
    raw_cols = np.flatnonzero(synthetic_depth_mm(n, RIG)[row] == round(RIG.box_m / RIG.depth_units))
    assert abs(box_cols.min() - raw_cols.min()) > 10, "depth was not moved onto the colour pixels"
    # The wall keeps its depth, the hole (no return) is NaN, not 0 and not a made-up value.
    assert np.nanmedian(f.depth) == pytest.approx(RIG.wall_m, abs=1e-3)
    hu0, hv0, hu1, hv1 = RIG.hole_px
    hole_u = int(round(colour_column((hu0 + hu1) / 2, RIG.wall_m)))
    hole_v = int(round(RIG.color.fy * ((hv0 + hv1) / 2 - RIG.depth.ppy) / RIG.depth.fy + RIG.color.ppy))
    assert np.isnan(f.depth[hole_v, hole_u])
    assert np.nanmin(f.depth) == pytest.approx(RIG.box_m, abs=1e-3)


def test_bgr_recording_comes_out_rgb(tmp_path):
    from dataclasses import replace

    rig = replace(RIG, color_format="bgr8")
    path = write_synthetic_recording(tmp_path / "bgr.db3", 3, rig)
    with RealSenseSource(recording=path, realtime=False) as src:
        frames = read_all(src)
    assert consecutive_to_end([f.frame_number for f in frames], 3)
    assert all(np.array_equal(f.rgb, synthetic_rgb(f.frame_number, rig)) for f in frames)


def test_recording_loops(recording):
    with RealSenseSource(recording=recording, realtime=False, loop=True) as src:
        frames = read_all(src, limit=FRAMES + 5)
        assert not src.finished
    numbers = [f.frame_number for f in frames]
    assert len(numbers) == FRAMES + 5
    # After the last frame the recording starts again (its frame 0 may be skipped, as above), and no frame is
    # handed out twice in a row.
    wrap = int(np.argmax(np.diff(numbers) < 0)) + 1
    assert numbers[wrap - 1] == FRAMES - 1 and numbers[wrap] in (0, 1)
    assert numbers[wrap + 1:wrap + 3] == [numbers[wrap] + 1, numbers[wrap] + 2]
    assert all(b == a + 1 for a, b in zip(numbers[:wrap - 1], numbers[1:wrap]))


def test_config_selects_the_recording(recording):
    cfg = CameraConfig(source="bag", bag_path=str(recording), bag_loop=False)
    with open_source(cfg, realtime=False) as src:
        assert isinstance(src, RealSenseSource)
        assert consecutive_to_end([f.frame_number for f in read_all(src)], FRAMES)
    with pytest.raises(CameraError, match="bag_path is empty"):
        open_source(CameraConfig(source="bag"))


def test_clear_errors(recording, tmp_path):
    with pytest.raises(RecordingNotFoundError, match="recording not found: .*missing.db3"):
        RealSenseSource(recording=tmp_path / "missing.db3").open()
    with pytest.raises(UnsupportedProfileError, match=r"1280x720 @30 Hz; available: .*Color 640x480 .*rgb8"):
        RealSenseSource(recording=recording, width=1280, height=720).open()
    with pytest.raises(UnsupportedProfileError, match="@60 Hz"):
        RealSenseSource(recording=recording, fps=60).open()
    # No camera is attached to this machine: the error names the serial asked for and what is connected.
    with pytest.raises(DeviceNotFoundError, match="no RealSense camera with serial '000000000000'; connected: "):
        RealSenseSource(serial="000000000000").open()
    with pytest.raises(ValueError, match=r"must end in \.db3"):
        write_synthetic_recording(tmp_path / "x.bag", 2)
    with pytest.raises(CameraError, match="unknown object category 'spaceship'"):
        SimSource(category="spaceship").open()


def test_sim_source_renders_the_world_depth():
    from manipllm_ros.sim.camera import Intrinsics
    from manipllm_ros.sim.objects import generate_object
    from manipllm_ros.sim.world import World, WorldConfig

    K = Intrinsics(160, 120, 154.0, 154.0, 79.5, 59.5)
    world = World(generate_object("cabinet_drawer", 0), 0, WorldConfig(randomize=False), intrinsics=K)
    try:
        with SimSource(world, fps=200, width=160, height=120) as src:
            f1, f2 = src.read(1.0), src.read(1.0)
            obs = world.observe()
        assert f1 is not None and f2 is not None and f2.frame_number == f1.frame_number + 1
        assert f1.rgb.shape == (120, 160, 3) and f1.depth.shape == (120, 160)
        assert np.allclose(f1.K, K.K)
        valid = obs.depth > 0
        assert valid.mean() > 0.5
        assert np.allclose(f1.depth[valid], obs.depth[valid], atol=1e-4)
        assert np.array_equal(f1.rgb, obs.rgb)
    finally:
        world.close()


def test_cli_records_and_checks(tmp_path, capsys):
    import argparse

    from manipllm_ros.camera.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))

    def run(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        return args.func(args)

    out = tmp_path / "cli.db3"
    assert run("camera", "record-synthetic", str(out), "--frames", "8", "--fast") == 0 and out.is_file()
    assert run("camera", "check", "--source", "bag", "--bag-path", str(out), "--frames", "5") == 0
    text = capsys.readouterr().out
    assert "frames: 5 in" in text and "image: 640x480; K: fx 615.0" in text and "median 1.000 m" in text
    assert run("camera", "check", "--source", "bag", "--bag-path", str(tmp_path / "none.db3")) == 1
    assert "recording not found" in capsys.readouterr().out
