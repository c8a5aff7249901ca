"""`manipllm bringup --config config/sim.yaml`: the launch file's nodes as separate processes, without ROS's launch.

Starts franky-sim (with a part in its scene), camera_node, pose_service_node and franka_node from the same YAML,
waits until each is ready, forwards SIGINT/SIGTERM, and shuts everything down cleanly when one of them dies or
the user stops it. On a real ROS install `ros2 launch manipllm sim.launch.py` starts the same nodes.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from manipllm_ros.config import load_config
from manipllm_ros.processes import ProcessError, ProcessGroup


def _node(module: str, config: Path, *params: str) -> list[str]:
    args = [sys.executable, "-m", f"manipllm_ros.nodes.{module}", "--ros-args", "-p", f"config_file:={config}"]
    for p in params:
        args += ["-p", p]
    return args


def bringup(config_path: str, log_dir: str | None = None, echo: bool = True) -> int:
    config = Path(config_path).resolve()
    cfg = load_config(config)
    b = cfg.bringup
    model = Path(cfg.pose_service.model_path).expanduser()
    if b.pose_service and not (model / "manipllm_model.json").is_file():
        print(f"manipllm bringup: no model at '{model}' (pose_service.model_path in {config}): run `manipllm demo` "
              "(it trains one) or point model_path at a checkpoint directory", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    logs = Path(log_dir or b.log_dir) / time.strftime("%Y%m%d-%H%M%S")
    with ProcessGroup(logs, echo=echo) as group:
        try:
            start_system(config, group)
            print(f"[bringup] system up ({', '.join(c.name for c in group.children)}); logs in {logs}; "
                  "Ctrl+C stops everything", flush=True)
            while not stop.is_set():
                group.check_alive()
                stop.wait(0.5)
        except ProcessError as exc:
            print(f"[bringup] {exc}", file=sys.stderr, flush=True)
            codes = group.stop()
            print(f"[bringup] stopped: {codes}", flush=True)
            return 1
        codes = group.stop()
    print(f"[bringup] stopped cleanly: {codes}", flush=True)
    return 0


@dataclass
class System:
    """A started simulated system: its processes, the config the nodes got, and franky-sim's address."""

    group: ProcessGroup
    config: Path  # the YAML the nodes read (with a mirrored camera: the one written into the log folder)
    robot_ip: str  # franky-sim's loopback address (libfranka and the scene side channel), or the real robot's


def start_system(config_path: str | Path, group: ProcessGroup) -> System:
    """Start franky-sim and the nodes of `config_path` in `group`, each waited for until ready (what `manipllm
    bringup` runs, and the demo's full-system episodes). Raises ProcessError when one fails to start or dies;
    stopping the group (its context manager) then shuts the others down."""
    config = Path(config_path).resolve()
    cfg = load_config(config)
    b = cfg.bringup
    model = Path(cfg.pose_service.model_path).expanduser()
    robot_ip = cfg.control.franky.robot_ip
    if b.franky_sim:
        from manipllm_ros.control.franky_sim_scene import free_loopback_address

        robot_ip = free_loopback_address()
        sim = group.start("franky_sim", [sys.executable, "-m", "manipllm_ros.control.franky_sim_scene",
                                         "--hostname", robot_ip, "--object", b.franky_object,
                                         "--seed", str(b.franky_object_seed)])
        group.wait_for(sim, "READY", b.startup_timeout_s)
        if b.franky_object not in ("door", "drawer"):
            try:
                config = _mirror_config(cfg, robot_ip, group.log_dir / "config.yaml")
            except Exception as exc:  # the side channel did not answer: as clear as a process that died
                raise ProcessError(f"franky-sim's scene side channel at {robot_ip}: {exc}") from exc
    if b.camera:
        cam = group.start("camera", _node("camera_node", config))
        group.wait_for(cam, "streaming ", b.startup_timeout_s)
    if b.pose_service:
        pose = group.start("pose_service", _node("pose_service_node", config, f"model_path:={model.resolve()}"))
        group.wait_for(pose, "active: /predict_pose is serving", b.startup_timeout_s)
    if b.franka:
        effector = "franky_sim_suction" if b.franky_sim else "suction_command"
        # The episode journal lives with this system's logs: a simulated system starts with fresh prediction ids,
        # so an episode left open by an earlier, killed system must not be reported to this one's TTA.
        journal = (group.log_dir / "franka_episode.json").resolve()
        franka = group.start("franka", _node("franka_node", config, f"robot_ip:={robot_ip}",
                                             f"end_effector:={effector}", f"journal:={journal}"))
        group.wait_for(franka, "ready: /manipulate", b.startup_timeout_s)
    return System(group, config, robot_ip)


def _mirror_config(cfg, robot_ip: str, path: Path) -> Path:
    """The config the nodes get when the camera mirrors franky-sim's object: camera source sim at the scene side
    channel, and frames.base_to_camera = where that camera is in the robot base frame (so poses line up)."""
    import yaml

    from manipllm_ros.camera.sources import sim_intrinsics
    from manipllm_ros.control.franky_sim_objects import mirror_world
    from manipllm_ros.control.franky_sim_scene import SceneClient
    from manipllm_ros.geometry import quaternion_from_matrix

    client = SceneClient(robot_ip)
    try:
        desc = client.call("scene")
    finally:
        client.close()
    world = mirror_world(desc, sim_intrinsics(cfg.camera.width, cfg.camera.height))
    T = world.base_T_world @ world.cam_to_world
    world.close()
    data = cfg.model_dump(mode="json")
    data["frames"]["base_to_camera_xyz"] = [float(v) for v in T[:3, 3]]
    data["frames"]["base_to_camera_quat_xyzw"] = [float(v) for v in quaternion_from_matrix(T[:3, :3])]
    data["camera"]["source"] = "sim"
    data["camera"]["sim_scene_host"] = robot_ip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    print(f"[bringup] camera mirrors franky-sim's {desc['object']['meta']['object_id']}; config: {path}", flush=True)
    return path


def _bringup(args: argparse.Namespace) -> int:
    return bringup(args.config, args.log_dir, echo=not args.quiet)


def register(subparsers) -> None:
    p = subparsers.add_parser("bringup", help="start the simulated system's nodes as processes from one YAML")
    p.add_argument("--config", default="config/sim.yaml", help="manipllm YAML config")
    p.add_argument("--log-dir", help="override bringup.log_dir")
    p.add_argument("--quiet", action="store_true", help="do not echo the processes' output")
    p.set_defaults(func=_bringup)
