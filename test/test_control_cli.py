"""`manipllm control ...` subcommands (registered by the lead's CLI through control.cli.register)."""

from __future__ import annotations

import argparse
import json

import pytest

from manipllm_ros.control import cli


def _parse(argv):
    p = argparse.ArgumentParser(prog="manipllm")
    cli.register(p.add_subparsers(dest="cmd", required=True))
    return p.parse_args(argv)


def test_register_adds_control_subcommands():
    a = _parse(["control", "demo", "--backend", "fast", "--object", "microwave", "--policy", "straight"])
    assert a.func is cli._demo and a.backend == "fast" and a.policy == "straight"
    a = _parse(["control", "sim-server", "--object", "drawer", "--hostname", "127.0.9.1"])
    assert a.func is cli._serve and a.object == "drawer"
    with pytest.raises(SystemExit):
        _parse(["control", "demo", "--policy", "yank"])


def test_fast_demo_prints_and_writes_the_record(tmp_path, capsys):
    out = tmp_path / "rec.json"
    rc = cli.main(["control", "demo", "--backend", "fast", "--object", "storage_cabinet_door", "--seed", "100",
                   "--target-distance", "0.1", "--json", str(out)])
    text = capsys.readouterr().out
    assert "aia:" in text and "part moved" in text
    rec = json.loads(out.read_text())
    assert rec["policy"] == "aia" and rec["iterations"] and "probes" in rec["iterations"][0]
    assert rc == (0 if rec["success"] else 1)


def test_franky_demo_rejects_unknown_objects(capsys):
    assert cli.main(["control", "demo", "--object", "microwave"]) == 2
    assert "door and drawer" in capsys.readouterr().err
