"""Frame sources behind one interface: a RealSense camera, a RealSense recording, the MuJoCo camera.

Every source yields colour + depth aligned to colour + colour intrinsics, which is what the pose service needs
to lift a pixel to 3D. RealSense frames go through librealsense's own `rs.align(rs.stream.color)`, for a live
camera and a recording alike, so the tests exercise the code path a robot runs.
"""

from __future__ import annotations

import abc
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from manipllm_ros.config import CameraConfig
    from manipllm_ros.sim.world import World


class CameraError(RuntimeError):
    """A camera source could not be opened or read; the message names the device, file or profile."""


class DeviceNotFoundError(CameraError):
    """No RealSense camera with the requested serial is connected."""


class RecordingNotFoundError(CameraError, FileNotFoundError):
    """The recording file does not exist."""


class UnsupportedProfileError(CameraError):
    """The device or recording has no stream of the requested size, rate or format."""


@dataclass(frozen=True)
class Frame:
    """One colour frame with depth aligned to its pixels."""

    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float32 metres, NaN = no depth
    K: np.ndarray  # 3x3 colour intrinsics
    stamp: float  # host time (time.time(), s) the frame became available: what messages are stamped with
    frame_number: int  # the device's or recording's colour frame counter
    device_stamp: float = 0.0  # the device's (or recording's) own timestamp (s)
    distortion_model: str = "plumb_bob"
    distortion: tuple[float, ...] = field(default=(0.0, 0.0, 0.0, 0.0, 0.0))

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


class FrameSource(abc.ABC):
    """A camera: `with source: frame = source.read(timeout)`. `read` returns None when no frame came in time."""

    name: str = "camera"

    @abc.abstractmethod
    def open(self) -> None:
        """Connect and start streaming; raises CameraError with a message naming what is wrong."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop streaming and free the device; safe to call twice."""

    @abc.abstractmethod
    def read(self, timeout: float = 1.0) -> Frame | None:
        """The next frame, or None if none arrived within `timeout` seconds (or the recording ended)."""

    @property
    def finished(self) -> bool:
        """True once a non-looping recording has played to its end."""
        return False

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def list_realsense_serials() -> list[str]:
    """Serial numbers of the connected RealSense cameras."""
    import pyrealsense2 as rs

    return [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]


PLAYBACK_START_ATTEMPTS = 5  # a short recording that keeps playing to its end before the pause is an error
_DISTORTION = {"brown_conrady": "plumb_bob", "inverse_brown_conrady": "plumb_bob", "none": "plumb_bob",
               "kannala_brandt4": "equidistant", "ftheta": "equidistant"}


class RealSenseSource(FrameSource):
    """A RealSense camera (by serial) or a recording of one (`recording=` path), depth aligned to colour.

    `realtime=False` plays a recording as fast as it is read (no frame skipped for being late), for tests and
    offline work; `loop=True` starts the recording again at its end. librealsense's playback now and then starts
    a recording at its second frame; every later frame comes out.
    """

    def __init__(self, serial: str = "", recording: str | Path | None = None, width: int = 640, height: int = 480,
                 fps: int = 30, realtime: bool = True, loop: bool = False) -> None:
        self.serial = str(serial or "")
        self.recording = Path(recording).expanduser() if recording else None
        self.width, self.height, self.fps = int(width), int(height), int(fps)
        self.realtime, self.loop = bool(realtime), bool(loop)
        self.name = f"recording {self.recording}" if self.recording else f"RealSense {self.serial or '(first)'}"
        self._pipeline = None
        self._align = None
        self._K: np.ndarray | None = None
        self._depth_scale = 0.001
        self._distortion: tuple[str, tuple[float, ...]] = ("plumb_bob", (0.0,) * 5)
        self._playback = None
        self._finished = False
        self._last_key: tuple[int, float] | None = None

    # -- opening --------------------------------------------------------------------------------------------
    def _config(self, rs):
        cfg = rs.config()
        if self.recording is not None:
            if not self.recording.is_file():
                raise RecordingNotFoundError(f"recording not found: {self.recording}")
            cfg.enable_device_from_file(str(self.recording), repeat_playback=self.loop)
            # Any colour format: convert below; the recording decides what it holds.
            cfg.enable_stream(rs.stream.color, self.width, self.height, rs.format.any, self.fps)
        else:
            serials = list_realsense_serials()
            if self.serial and self.serial not in serials:
                raise DeviceNotFoundError(f"no RealSense camera with serial '{self.serial}'; connected: "
                                          f"{', '.join(serials) or 'none'}")
            if not serials:
                raise DeviceNotFoundError("no RealSense camera is connected (check USB 3 and udev rules, or use "
                                          "camera.source = bag / sim)")
            cfg.enable_device(self.serial or serials[0])
            cfg.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.fps)
        if self.recording is not None:  # any depth size: alignment resamples it onto the colour pixels
            cfg.enable_stream(rs.stream.depth, 0, 0, rs.format.z16, self.fps)
        else:  # the same size as colour keeps the alignment cheap; every D400 offers 640x480 depth
            cfg.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
        return cfg

    def _available(self, rs) -> str:
        """Human-readable list of the streams the device or recording offers (for error messages)."""
        try:
            if self.recording is not None:
                ctx = rs.context()
                dev = ctx.load_device(str(self.recording))
            else:
                devs = [d for d in rs.context().query_devices()
                        if not self.serial or d.get_info(rs.camera_info.serial_number) == self.serial]
                dev = devs[0]
            seen = set()
            for sensor in dev.query_sensors():
                for p in sensor.get_stream_profiles():
                    if p.stream_type() in (rs.stream.color, rs.stream.depth) and p.is_video_stream_profile():
                        v = p.as_video_stream_profile()
                        seen.add(f"{p.stream_name()} {v.width()}x{v.height()} {p.format()} @{p.fps()}")
            return ", ".join(sorted(seen)) or "none"
        except Exception as exc:  # noqa: BLE001 - only used to improve an error message
            return f"(could not list: {exc})"

    def open(self) -> None:
        import pyrealsense2 as rs

        if self._pipeline is not None:
            return
        cfg = self._config(rs)
        pipeline = rs.pipeline()
        if not cfg.can_resolve(rs.pipeline_wrapper(pipeline)):
            raise UnsupportedProfileError(
                f"{self.name} has no colour + depth streams at {self.width}x{self.height} @{self.fps} Hz; "
                f"available: {self._available(rs)}")
        for attempt in range(PLAYBACK_START_ATTEMPTS):
            try:
                profile = pipeline.start(cfg)
            except RuntimeError as exc:
                raise CameraError(f"{self.name}: could not start streaming: {exc}") from exc
            dev = profile.get_device()
            if self.recording is None or self.realtime:
                break
            self._playback = dev.as_playback()
            self._playback.set_real_time(False)
            if self._rewind(pipeline):
                break
            # A recording of a few frames written fast can play to its end in real time before the pause
            # reaches it; a stopped playback does not resume, so start it again.
            pipeline.stop()
        else:
            raise CameraError(f"{self.name}: the recording played to its end {PLAYBACK_START_ATTEMPTS} times "
                              "before it could be paused and rewound")
        try:
            if self.recording is not None:
                self._playback = dev.as_playback()
                self._playback.set_real_time(self.realtime)
            self._depth_scale = float(dev.first_depth_sensor().get_depth_scale())
            color = profile.get_stream(rs.stream.color).as_video_stream_profile()
            if color.format() not in (rs.format.rgb8, rs.format.bgr8, rs.format.rgba8, rs.format.bgra8):
                raise UnsupportedProfileError(f"{self.name}: colour format {color.format()} is not supported "
                                              "(rgb8, bgr8, rgba8, bgra8)")
            self._color_format = color.format()
            intr = color.get_intrinsics()
            self._K = np.array([[intr.fx, 0.0, intr.ppx], [0.0, intr.fy, intr.ppy], [0.0, 0.0, 1.0]])
            model = str(intr.model).rsplit(".", 1)[-1]
            self._distortion = (_DISTORTION.get(model, "plumb_bob"), tuple(float(c) for c in intr.coeffs))
            if not self.serial and self.recording is None:
                self.serial = dev.get_info(rs.camera_info.serial_number)
        except Exception:
            pipeline.stop()
            raise
        self._rs = rs
        self._align = rs.align(rs.stream.color)
        self._pipeline = pipeline
        self._finished = False
        self._last_key = None

    def _rewind(self, pipeline) -> bool:
        """Playback starts in real time before `set_real_time(False)` can reach it, and the syncer drops the
        first framesets it matched in that window (on a loaded machine up to three). Paused, rewound and drained,
        a non-real-time playback hands out every recorded frame from the first. False: it had already stopped
        at its end (nothing to resume)."""
        import datetime

        import pyrealsense2 as rs

        self._playback.pause()
        if self._playback.current_status() == rs.playback_status.stopped:
            return False
        self._playback.seek(datetime.timedelta(0))
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 0.1:  # what was in flight through the syncer has come out
            if pipeline.poll_for_frames():
                quiet_since = time.monotonic()
            else:
                time.sleep(0.005)
        if self._playback.current_status() == rs.playback_status.stopped:  # its end's stop arrived late
            return False
        self._playback.resume()
        return True

    def close(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass
            self._pipeline = None
            self._playback = None

    # -- reading --------------------------------------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        if self._K is None:
            raise CameraError(f"{self.name} is not open")
        return self._K.copy()

    @property
    def depth_scale(self) -> float:
        return self._depth_scale

    @property
    def finished(self) -> bool:
        return self._finished

    def read(self, timeout: float = 1.0) -> Frame | None:
        if self._pipeline is None:
            raise CameraError(f"{self.name} is not open")
        if self._finished:
            return None
        deadline = time.monotonic() + timeout
        while True:
            ok, frames = self._pipeline.try_wait_for_frames(max(1, int((deadline - time.monotonic()) * 1000)))
            if not ok:
                if self._playback is not None and not self.loop and \
                        self._playback.current_status() == self._rs.playback_status.stopped:
                    self._finished = True
                return None
            color = frames.get_color_frame()
            key = (color.get_frame_number(), color.get_timestamp()) if color else None
            # A frameset with colour or depth alone is skipped; looping playback hands out the last frame of a
            # pass twice: a frame seen already is no new frame.
            if color and frames.get_depth_frame() and key != self._last_key:
                break
            if time.monotonic() >= deadline:
                return None
        self._last_key = key
        stamp = time.time()
        aligned = self._align.process(frames)
        color, depth = aligned.get_color_frame(), aligned.get_depth_frame()
        rgb = np.asanyarray(color.get_data())
        fmt = self._color_format
        rs = self._rs
        if fmt in (rs.format.bgr8, rs.format.bgra8):
            rgb = rgb[..., 2::-1]
        rgb = np.ascontiguousarray(rgb[..., :3])
        d = np.asanyarray(depth.get_data()).astype(np.float32) * np.float32(self._depth_scale)
        d[d <= 0] = np.nan
        return Frame(rgb, d, self._K.copy(), stamp, int(color.get_frame_number()), color.get_timestamp() / 1000.0,
                     *self._distortion)


class SimSource(FrameSource):
    """The MuJoCo world's camera: renders colour + z-depth (already aligned: one camera) at `fps`.

    Pass a `World` to watch a scene that something else moves (the demo's arm), let it build the world of
    (`category`, `seed`), or give `scene_host`: the franky-sim scene side channel at that address describes its
    object (the same MJCF, scale and pose), and every frame shows the object's joint where franky-sim has it. The source renders with its own renderer, whose GL context belongs to the thread that
    first reads: call `read` and `close` from that one thread (the camera node's reader thread does both).
    """

    def __init__(self, world: World | None = None, category: str = "storage_cabinet_door", seed: int = 0,
                 fps: int = 30, width: int = 640, height: int = 480, scene_host: str = "") -> None:
        self.world = world
        self.category, self.seed = category, int(seed)
        self.fps, self.width, self.height = int(fps), int(width), int(height)
        self.scene_host = scene_host
        self._scene = None
        self.name = (f"MuJoCo camera mirroring franky-sim at {scene_host}" if scene_host
                     else f"MuJoCo camera ({category}, seed {seed})")
        self._own_world = world is None
        self._count = 0
        self._next = 0.0
        self._opt = None
        self._renderer = None

    def open(self) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl")
        import mujoco

        from manipllm_ros.sim.world import GRIPPER_GROUP, World

        if self.world is None and self.scene_host:
            from manipllm_ros.control.franky_sim_objects import mirror_world
            from manipllm_ros.control.franky_sim_scene import SceneClient, SceneError

            try:
                self._scene = SceneClient(self.scene_host)
                self.world = mirror_world(self._scene.call("scene"), sim_intrinsics(self.width, self.height))
            except (OSError, SceneError) as exc:
                raise CameraError(f"{self.name}: {exc}") from exc
        elif self.world is None:
            from manipllm_ros.sim.objects import ALL_CATEGORIES, generate_object

            if self.category.replace(" ", "_") not in ALL_CATEGORIES:
                raise CameraError(f"sim camera: unknown object category '{self.category}' (one of "
                                  f"{', '.join(ALL_CATEGORIES)})")
            self.world = World(generate_object(self.category, self.seed), self.seed,
                               intrinsics=sim_intrinsics(self.width, self.height))
        elif (self.world.K.width, self.world.K.height) != (self.width, self.height):
            raise UnsupportedProfileError(f"sim camera renders {self.world.K.width}x{self.world.K.height}, "
                                          f"{self.width}x{self.height} requested")
        self._opt = mujoco.MjvOption()
        self._opt.geomgroup[GRIPPER_GROUP] = 0  # the paper's images show no robot
        self._count = 0
        self._next = time.monotonic()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._opt = None
        if self.world is not None and self._own_world:
            self.world.close()
            self.world = None
        if self._scene is not None:
            self._scene.close()
            self._scene = None

    def read(self, timeout: float = 1.0) -> Frame | None:
        if self.world is None or self._opt is None:
            raise CameraError(f"{self.name} is not open")
        wait = self._next - time.monotonic()
        if wait > timeout:
            time.sleep(timeout)
            return None
        if wait > 0:
            time.sleep(wait)
        # Next frame one period later; a render slower than the period does not build up a debt of frames.
        self._next = max(self._next + 1.0 / self.fps, time.monotonic() - 1.0 / self.fps)
        w = self.world
        if self._scene is not None:  # franky-sim's object state, now
            try:
                w.set_joint_position(self._scene.joint())
            except OSError as exc:
                raise CameraError(f"{self.name}: {exc}") from exc
        if self._renderer is None:
            import mujoco

            from manipllm_ros.sim import world as world_module

            world_module._ensure_offscreen_gl()  # EGL even if mujoco was imported before MUJOCO_GL was set
            self._renderer = mujoco.Renderer(w.model, self.height, self.width)
        r = self._renderer
        r.update_scene(w.data, camera=w.cam_id, scene_option=self._opt)
        rgb = r.render().copy()
        r.enable_depth_rendering()
        depth = r.render().astype(np.float32)
        r.disable_depth_rendering()
        far = float(w.model.vis.map.zfar * w.model.stat.extent)
        depth[depth >= far * 0.999] = np.nan  # nothing hit: no depth, like a RealSense hole
        self._count += 1
        return Frame(rgb, depth, w.K.K, time.time(), self._count, float(w.data.time))


def sim_intrinsics(width: int, height: int):
    """The simulated camera's intrinsics: a D415 colour camera at any resolution."""
    from manipllm_ros.sim.camera import Intrinsics

    f = 615.0 * width / 640
    return Intrinsics(width, height, f, f, (width - 1) / 2, (height - 1) / 2)


def open_source(cfg: CameraConfig, realtime: bool | None = None) -> FrameSource:
    """The source the `camera` config section names (not yet opened)."""
    if cfg.source == "realsense":
        return RealSenseSource(cfg.serial, None, cfg.width, cfg.height, cfg.fps)
    if cfg.source == "bag":
        if not cfg.bag_path:
            raise CameraError("camera.source is 'bag' but camera.bag_path is empty")
        return RealSenseSource("", cfg.bag_path, cfg.width, cfg.height, cfg.fps,
                               realtime=cfg.bag_realtime if realtime is None else realtime, loop=cfg.bag_loop)
    if cfg.source == "sim":
        return SimSource(None, cfg.sim_category, cfg.sim_seed, cfg.fps, cfg.width, cfg.height, cfg.sim_scene_host)
    raise CameraError(f"unknown camera.source '{cfg.source}'")
