"""`manipllm camera ...`: list RealSense cameras, check a source end to end, write a synthetic recording."""

from __future__ import annotations

import argparse
import time

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser("camera", help="camera sources: list devices, check a source, synthetic recordings")
    sub = p.add_subparsers(dest="camera_cmd", required=True)

    d = sub.add_parser("devices", help="serial numbers of the connected RealSense cameras")
    d.set_defaults(func=_devices)

    c = sub.add_parser("check", help="open the configured source, read frames, print intrinsics, rate and depth")
    c.add_argument("--config", default=None, help="YAML with a camera: section (default: built-in defaults)")
    c.add_argument("--source", choices=["realsense", "bag", "sim"], default=None, help="override camera.source")
    c.add_argument("--serial", default=None, help="override camera.serial")
    c.add_argument("--bag-path", default=None, help="override camera.bag_path")
    c.add_argument("--frames", type=int, default=30, help="frames to read")
    c.set_defaults(func=_check)

    r = sub.add_parser("record-synthetic", help="write a synthetic RealSense recording (.db3) through librealsense")
    r.add_argument("out", help="output path, ending in .db3")
    r.add_argument("--frames", type=int, default=90)
    r.add_argument("--fast", action="store_true", help="write as fast as possible (playback with realtime off)")
    r.set_defaults(func=_record)


def _devices(_: argparse.Namespace) -> int:
    from .sources import list_realsense_serials

    serials = list_realsense_serials()
    for s in serials:
        print(s)
    if not serials:
        print("no RealSense camera connected")
    return 0 if serials else 1


def _check(args: argparse.Namespace) -> int:
    from manipllm_ros.config import ManipllmConfig, load_config

    from .sources import CameraError, open_source

    cfg = load_config(args.config)
    for name in ("source", "serial", "bag_path"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg.camera, name, value)
    cfg = ManipllmConfig.model_validate(cfg.model_dump())
    try:
        source = open_source(cfg.camera)
        with source:
            frames, t0 = [], time.monotonic()
            while len(frames) < args.frames:
                f = source.read(timeout=2.0)
                if f is None:
                    if source.finished:
                        break
                    print(f"{source.name}: no frame within 2 s")
                    return 1
                frames.append(f)
            elapsed = time.monotonic() - t0
    except CameraError as exc:
        print(f"camera check failed: {exc}")
        return 1
    if not frames:
        print(f"{source.name}: no frames")
        return 1
    last = frames[-1]
    valid = np.isfinite(last.depth)
    print(f"source: {source.name}")
    print(f"frames: {len(frames)} in {elapsed:.2f} s ({len(frames) / max(elapsed, 1e-9):.1f} Hz)")
    print(f"image: {last.width}x{last.height}; K: fx {last.K[0, 0]:.1f} fy {last.K[1, 1]:.1f} "
          f"cx {last.K[0, 2]:.1f} cy {last.K[1, 2]:.1f}; distortion {last.distortion_model} "
          f"{[round(c, 4) for c in last.distortion]}")
    if valid.any():
        print(f"aligned depth: {100 * valid.mean():.0f} % valid, median {np.median(last.depth[valid]):.3f} m, "
              f"range {last.depth[valid].min():.3f}-{last.depth[valid].max():.3f} m")
    else:
        print("aligned depth: no valid pixel")
    return 0


def _record(args: argparse.Namespace) -> int:
    from .record import write_synthetic_recording

    path = write_synthetic_recording(args.out, args.frames, paced=not args.fast, progress=True)
    print(f"wrote {path} ({args.frames} frames)")
    return 0
