"""`manipllm sim collect` / `sim preview` through the area's argparse registration."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from manipllm_ros.sim import cli
from manipllm_ros.sim.dataset import count_samples

DATA = Path(__file__).parent / "data"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="manipllm")
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_sim_collect_cli(tmp_path):
    out = tmp_path / "ds"
    args = _parse(["sim", "collect", "--out", str(out), "--num-samples", "2", "--samples-per-shard", "1",
                   "--workers", "1", "--categories", "cabinet_drawer", "--no-progress"])
    assert args.func(args) == 0
    assert count_samples(out) == 2


def test_sim_preview_cli_with_a_thirdparty_object(tmp_path):
    png = tmp_path / "sheet.png"
    args = _parse(["sim", "preview", "--out", str(png), "--categories", "microwave,usb cap", "--cols", "3",
                   "--object", str(DATA / "thirdparty_cabinet.xml"), "--joint", "wing_hinge", "--up", "y"])
    assert args.func(args) == 0
    img = np.asarray(Image.open(png))
    assert img.shape == (240, 960, 3)
    assert img[:, 640:].std() > 5  # the third tile (third-party object) is drawn, not blank
