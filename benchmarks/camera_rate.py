"""camera_node sustained rate, drops and CPU for 640x480 RGB + aligned depth + camera_info.

The node runs as its own process on a private DDS domain; this script is the subscriber process (raw CDR
subscriptions, so that Python message construction on the receiving side is not what is measured). For each
source it waits for the stream to settle, then for `--seconds` counts the frames that arrive complete (colour,
depth and camera_info with one stamp); drops = frames the target rate promised in the window that did not arrive
complete, whatever the cause; messages lost in transport = a sibling of the same stamp arrived but not they. It
also measures the age of each frame on arrival (receipt time - header stamp) and the node's CPU time (psutil). The bag source plays a
paced synthetic recording through librealsense (`rs.align` included) in a loop, in realtime.

    .venv/bin/python benchmarks/camera_rate.py [--seconds 20] [--cases bag:default,bag:shm16,sim:shm16]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from manipllm_ros.rosenv import ensure_ros_env

ensure_ros_env()

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import rclpy  # noqa: E402
import yaml  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from manipllm_ros.camera.dds import fastdds_profile  # noqa: E402
from manipllm_ros.camera.record import SyntheticRig, write_synthetic_recording  # noqa: E402
from manipllm_ros.config import CameraConfig  # noqa: E402
from manipllm_ros.nodes.convert import qos_profile  # noqa: E402

HERE = Path(__file__).resolve().parent


def measure(source: str, camera: dict, seconds: float, warmup: float, domain: int, workdir: Path) -> dict:
    cfg_path = workdir / f"{source}.yaml"
    cfg_path.write_text(yaml.safe_dump({"camera": camera}))
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1")
    log = open(workdir / f"{source}.log", "w+b")
    proc = subprocess.Popen([sys.executable, "-m", "manipllm_ros.nodes.camera_node", "--ros-args", "-p",
                             f"config_file:={cfg_path}"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node("camera_rate_bench", context=ctx)
    cam = CameraConfig(**camera)
    fps = cam.fps
    recording = threading.Event()
    arrivals: dict[str, list[tuple[float, int]]] = {"rgb": [], "depth": [], "info": []}
    sizes: set[tuple[int, int]] = set()

    def on_msg(key: str, raw: bytes) -> None:
        # Raw CDR, not deserialised: the measurement is of the node and DDS, not of Python message building.
        # Layout: 4-byte encapsulation, header.stamp (int32 sec, uint32 nanosec), frame_id (uint32 length +
        # bytes incl. NUL, padded to 4), then height and width (Image and CameraInfo alike).
        if recording.is_set():
            sec, nsec, n = struct.unpack_from("<iII", raw, 4)
            off = 16 + n + (-(16 + n - 4) % 4)
            height, width = struct.unpack_from("<II", raw, off)
            arrivals[key].append((time.time(), sec * 1_000_000_000 + nsec))
            sizes.add((width, height))

    qos = qos_profile(cam.qos_depth, cam.qos_reliability)
    for key, topic, cls in (("rgb", cam.color_topic, Image), ("depth", cam.depth_topic, Image),
                            ("info", cam.info_topic, CameraInfo)):
        node.create_subscription(cls, topic, lambda m, k=key: on_msg(k, m), qos, raw=True)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 90
        while b"streaming" not in (workdir / f"{source}.log").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"camera_node did not start:\n{(workdir / f'{source}.log').read_text()}")
            time.sleep(0.1)
        t_end = time.monotonic() + warmup
        while time.monotonic() < t_end:
            executor.spin_once(timeout_sec=0.05)
        ps = psutil.Process(proc.pid)
        cpu0, t0 = ps.cpu_times(), time.monotonic()
        recording.set()
        while time.monotonic() < t0 + seconds:
            executor.spin_once(timeout_sec=0.01)
        recording.clear()
        cpu1, t1 = ps.cpu_times(), time.monotonic()
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        if proc.poll() is None:
            os.killpg(proc.pid, 2)
            proc.wait(15)
    log.seek(0)
    tail = log.read().decode(errors="replace").strip().splitlines()[-1:]
    log.close()
    elapsed = t1 - t0
    seen = {k: {s for _, s in v} for k, v in arrivals.items()}
    union = sorted(seen["rgb"] | seen["depth"] | seen["info"])
    complete = len(seen["rgb"] & seen["depth"] & seen["info"])
    received = {k: len(v) for k, v in arrivals.items()}
    lost_msgs = 3 * len(union) - sum(received.values())  # published (a sibling arrived) but never received
    gaps = np.diff(np.array(union, dtype=np.int64)) * 1e-9
    # Drops against the target rate: frames the window should have held that did not arrive complete,
    # whatever the cause (source too slow, node, DDS, receiver).
    expected = round(elapsed * fps)
    missing = max(0, expected - complete)
    max_gap = float(gaps.max()) if gaps.size else float("nan")
    ages = np.array([t - s * 1e-9 for t, s in arrivals["rgb"]]) * 1000.0
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed
    return {
        "source": source, "size": sorted(sizes), "target_hz": fps, "qos": cam.qos_reliability,
        "seconds": round(elapsed, 2), "msgs": received, "frames_seen": len(union), "complete_frames": complete,
        "complete_hz": round(complete / elapsed, 2), "expected_frames": expected,
        "frames_missing_vs_target": missing, "lost_msgs": lost_msgs,
        "drop_pct": round(100.0 * missing / max(1, expected), 2), "max_gap_ms": round(max_gap * 1000, 1),
        "median_period_ms": round(float(np.median(gaps)) * 1000, 2) if gaps.size else None,
        "age_ms_median": round(float(np.median(ages)), 1) if ages.size else None,
        "age_ms_p95": round(float(np.percentile(ages, 95)), 1) if ages.size else None,
        "node_cpu_cores": round(cpu, 3), "load_avg_1min": round(os.getloadavg()[0], 2), "node_log_tail": tail,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--cases", type=lambda v: v.split(","),
                    default=["bag:default", "bag:shm16", "bag:large_data", "bag_best_effort:default",
                             "bag_best_effort:shm16", "sim:shm16"],
                    help="source:transport pairs; sources bag, bag_best_effort, sim; Fast DDS transports default, "
                    "shmN (XML profile with an N MB shared-memory segment), large_data "
                    "(FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA)")
    ap.add_argument("--out", type=Path, default=HERE / "camera_rate.json")
    args = ap.parse_args()
    rig = SyntheticRig()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rec = write_synthetic_recording(work / "bench.db3", 150, rig, paced=True, progress=True)
        bag = {"source": "bag", "bag_path": str(rec), "bag_loop": True, "bag_realtime": True}
        cases = {"bag": bag, "bag_best_effort": {**bag, "qos_reliability": "best_effort"},
                 "sim": {"source": "sim", "sim_category": "microwave", "sim_seed": 0}}
        for case in args.cases:
            name, transport = case.split(":")
            # Fast DDS's default shared-memory segment (0.5 MB) is smaller than one 640x480 image, so
            # images go over UDP loopback in fragments; a larger segment keeps them in shared memory.
            os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
            os.environ.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
            if transport.startswith("shm"):
                profile = fastdds_profile(work / f"fastdds_{transport}.xml", int(transport[3:]))
                os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
            elif transport == "large_data":
                os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"
            elif transport != "default":
                raise SystemExit(f"unknown transport {transport!r}")
            domain = random.randrange(101, 200)
            r = measure(name, cases[name], args.seconds, args.warmup, domain, work)
            r["transport"] = transport
            print(json.dumps(r), flush=True)
            results.append(r)
    meta = {"cpu_load_note": "2-core machine shared with other jobs; load avg per row",
            "machine": f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, no GPU",
            "python": sys.version.split()[0], "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    head = ("| source | QoS | Fast DDS transport | size | target Hz | complete frames/s | "
            "missing vs target (drop %) | msgs lost in transport | max gap (ms) | age median / p95 (ms) | "
            "node CPU (cores) | load avg |")
    print(head)
    print("|" + "---|" * 12)
    for r in results:
        size = "x".join(map(str, r["size"][0])) if r["size"] else "-"
        print(f"| {r['source']} | {r['qos']} | {r['transport']} | {size} | {r['target_hz']} | {r['complete_hz']} | "
              f"{r['frames_missing_vs_target']} / {r['expected_frames']} ({r['drop_pct']} %) | "
              f"{r['lost_msgs']} | {r['max_gap_ms']} | {r['age_ms_median']} / {r['age_ms_p95']} | "
              f"{r['node_cpu_cores']} | {r['load_avg_1min']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
