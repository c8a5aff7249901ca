"""Synthetic RealSense recordings: frames of known content written through librealsense's own recorder.

A `rs.software_device` with a depth and a colour sensor (each with its own intrinsics, extrinsics between them,
depth units) feeds `rs.recorder`, so the file is exactly what librealsense would write for a real camera and it
plays back through the real `enable_device_from_file` + `rs.align` path. librealsense 2.59 writes rosbag2
(`.db3`); older versions wrote ROS 1 `.bag`; both play back through the same call.

The scene is a wall at `wall_m` with a box at `box_m` in front of it (moving right one pixel per frame) and a
small hole without depth, seen by a depth camera `baseline_m` to the left of the colour camera, as on a D415.
The colour image encodes the frame number in red, so a reader can check which frame it got.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PinholeModel:
    """Intrinsics of one stream (pixels, RealSense's ppx/ppy convention)."""

    fx: float
    fy: float
    ppx: float
    ppy: float

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.ppx], [0.0, self.fy, self.ppy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class SyntheticRig:
    """Stream layout and scene of a synthetic recording; the defaults resemble a D415 at 640x480, 30 Hz."""

    width: int = 640
    height: int = 480
    fps: int = 30
    color: PinholeModel = field(default_factory=lambda: PinholeModel(615.0, 615.0, 321.25, 238.75))
    depth: PinholeModel = field(default_factory=lambda: PinholeModel(590.0, 590.0, 318.5, 241.5))
    baseline_m: float = 0.015  # depth origin -> colour origin along +x (the colour camera is to the right)
    depth_units: float = 0.001  # metres per z16 count
    color_format: str = "rgb8"  # or "bgr8", as some recordings hold it (the reader converts to RGB)
    wall_m: float = 1.0
    box_m: float = 0.6
    box_px: tuple[int, int, int, int] = (260, 200, 340, 280)  # (u0, v0, u1, v1) in the depth image at frame 0
    hole_px: tuple[int, int, int, int] = (40, 40, 60, 60)  # depth = 0 here (no return)


def synthetic_depth_mm(n: int, rig: SyntheticRig = SyntheticRig()) -> np.ndarray:
    """Depth image (z16 counts, depth camera's pixels) of frame `n`."""
    d = np.full((rig.height, rig.width), round(rig.wall_m / rig.depth_units), np.uint16)
    u0, v0, u1, v1 = rig.box_px
    d[v0:v1, u0 + n:u1 + n] = round(rig.box_m / rig.depth_units)
    hu0, hv0, hu1, hv1 = rig.hole_px
    d[hv0:hv1, hu0:hu1] = 0
    return d


def synthetic_rgb(n: int, rig: SyntheticRig = SyntheticRig()) -> np.ndarray:
    """Colour image of frame `n`: red = n mod 256, green = column / 4 mod 256, blue = row / 2 mod 256."""
    img = np.empty((rig.height, rig.width, 3), np.uint8)
    img[..., 0] = n % 256
    img[..., 1] = (np.arange(rig.width) // 4 % 256).astype(np.uint8)[None, :]
    img[..., 2] = (np.arange(rig.height) // 2 % 256).astype(np.uint8)[:, None]
    return img


def _color_pixels(n: int, rig: SyntheticRig) -> np.ndarray:
    rgb = synthetic_rgb(n, rig)
    return np.ascontiguousarray(rgb[..., ::-1]) if rig.color_format == "bgr8" else rgb


def _intrinsics(rs, rig: SyntheticRig, pm: PinholeModel):
    i = rs.intrinsics()
    i.width, i.height = rig.width, rig.height
    i.fx, i.fy, i.ppx, i.ppy = pm.fx, pm.fy, pm.ppx, pm.ppy
    i.model = rs.distortion.brown_conrady
    i.coeffs = [0.0] * 5
    return i


def _stream(rs, rig: SyntheticRig, kind, fmt, bpp: int, uid: int, pm: PinholeModel):
    s = rs.video_stream()
    s.type, s.fmt, s.bpp, s.index, s.uid = kind, fmt, bpp, 0, uid
    s.width, s.height, s.fps = rig.width, rig.height, rig.fps
    s.intrinsics = _intrinsics(rs, rig, pm)
    return s


def write_synthetic_recording(path: str | Path, frames: int = 30, rig: SyntheticRig = SyntheticRig(),
                              paced: bool = False, progress: bool = False) -> Path:
    """Record `frames` synthetic depth + colour frames to `path` (.db3) through `rs.recorder`.

    The recorder stamps each frame with the wall-clock time it arrived, so realtime playback replays the pace of
    writing: `paced=True` writes at `rig.fps` (for realtime playback); False writes as fast as possible (tests
    play back with realtime off).
    """
    import pyrealsense2 as rs

    path = Path(path)
    if path.suffix != ".db3":
        raise ValueError(f"recording path must end in .db3 (librealsense {rs.__version__} writes rosbag2): {path}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if rig.box_px[2] + frames > rig.width:
        raise ValueError(f"{frames} frames would move the box out of the {rig.width}-px image")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()

    dev = rs.software_device()
    depth_sensor, color_sensor = dev.add_sensor("Depth"), dev.add_sensor("Color")
    depth_profile = depth_sensor.add_video_stream(_stream(rs, rig, rs.stream.depth, rs.format.z16, 2, 0, rig.depth))
    if rig.color_format not in ("rgb8", "bgr8"):
        raise ValueError(f"color_format must be rgb8 or bgr8, got {rig.color_format!r}")
    color_fmt = getattr(rs.format, rig.color_format)
    color_profile = color_sensor.add_video_stream(_stream(rs, rig, rs.stream.color, color_fmt, 3, 1, rig.color))
    depth_sensor.add_read_only_option(rs.option.depth_units, rig.depth_units)
    dev.create_matcher(rs.matchers.default)
    ex = rs.extrinsics()
    ex.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    ex.translation = [-rig.baseline_m, 0.0, 0.0]  # a depth-frame point expressed in the colour frame
    depth_profile.register_extrinsics_to(color_profile, ex)

    recorder = rs.recorder(str(path), dev)
    syncer = rs.syncer()
    depth_sensor.open(depth_profile)
    color_sensor.open(color_profile)
    depth_sensor.start(syncer)
    color_sensor.start(syncer)
    keep = []  # the pixel buffers must outlive the injected frames
    try:
        iterator = range(frames)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc=f"recording {path.name}", unit="frame")
        t0 = time.monotonic()
        for n in iterator:
            if paced:
                time.sleep(max(0.0, t0 + n / rig.fps - time.monotonic()))
            ts_ms = 1000.0 * n / rig.fps
            for sensor, profile, img, bpp in ((depth_sensor, depth_profile, synthetic_depth_mm(n, rig), 2),
                                              (color_sensor, color_profile, _color_pixels(n, rig), 3)):
                f = rs.software_video_frame()
                f.pixels, f.stride, f.bpp = img, rig.width * bpp, bpp
                f.timestamp, f.domain, f.frame_number = ts_ms, rs.timestamp_domain.hardware_clock, n
                f.profile = profile.as_video_stream_profile()
                sensor.on_video_frame(f)
                keep.append(img)
            keep = keep[-8:]
    finally:
        for s in (depth_sensor, color_sensor):
            s.stop()
            s.close()
        del recorder, syncer  # the recorder writes and closes the file when it is destroyed
        gc.collect()
    return path
