"""Start node processes, watch them, forward signals and shut them all down cleanly (bringup, demo).

Each child runs in its own process group with the ROS environment of this process; its output goes to a log
file (a chatty child can never block on a full pipe) and is echoed with a name prefix when asked. A child dies
with the process that started it (Linux parent-death signal), so a killed demo, bringup or test never leaves
nodes behind that keep the CPU busy; and Fast DDS files of killed processes are cleaned (manipllm_ros.dds_shm).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from manipllm_ros.dds_shm import clean_zombie_shm
from manipllm_ros.rosenv import ros_env

PR_SET_PDEATHSIG = 1
try:  # resolved here, in the parent: a preexec_fn must not import or load libraries after fork()
    import ctypes

    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: children are still stopped by stop() / the context manager
    _prctl = None


def child_setup() -> None:
    """`preexec_fn` of every child we start. It must not outlive its parent: SIGKILL when the thread that started
    it exits (so start children from a thread that lives as long as they should: the main thread here). And it
    starts with normal scheduling: libfranka makes the thread that connects to a robot SCHED_FIFO 99 (we run as
    root here), and a child forked from that thread would inherit it. A pose service or camera node at real-time
    priority that spins takes whole cores from everything else, the arm's client and the test runner included:
    that was the CI stall (the suite's franky tests had left pytest's main thread at FIFO 99)."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if hasattr(os, "sched_setscheduler") and os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


class ProcessError(RuntimeError):
    """A child process did not start, or died; the message carries the end of its log."""


@dataclass
class Child:
    name: str
    args: list[str]
    log_path: Path
    popen: subprocess.Popen | None = None
    _fh: object = field(default=None, repr=False)

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class ProcessGroup:
    """Children that live and die together; use as a context manager."""

    def __init__(self, log_dir: str | Path, env: dict[str, str] | None = None, echo: bool = False) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = env if env is not None else ros_env()
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.echo = echo
        self.children: list[Child] = []
        self._stop = threading.Event()
        clean_zombie_shm()  # a DDS port left by a killed process can hang the nodes started next

    def start(self, name: str, args: list[str]) -> Child:
        child = Child(name, args, self.log_dir / f"{name}.log")
        child._fh = open(child.log_path, "wb")
        child.popen = subprocess.Popen(args, env=self.env, stdout=child._fh, stderr=subprocess.STDOUT,
                                       start_new_session=True, preexec_fn=child_setup)
        self.children.append(child)
        if self.echo:
            threading.Thread(target=self._echo, args=(child,), daemon=True).start()
        return child

    def _echo(self, child: Child) -> None:
        pos = 0
        while not self._stop.is_set():
            text = child.output()
            for line in text[pos:].splitlines(keepends=True):
                if line.endswith("\n"):
                    print(f"[{child.name}] {line}", end="", flush=True)
                    pos += len(line)
                else:
                    break
            if not child.alive and pos >= len(text):
                return
            time.sleep(0.2)

    def wait_for(self, child: Child, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in child.output():
                return
            if not child.alive:
                raise ProcessError(f"{child.name} exited with code {child.popen.returncode} before it was ready:\n"
                                   f"{child.tail()}")
            time.sleep(0.1)
        raise ProcessError(f"{child.name} not ready after {timeout:.0f} s (waiting for '{text}'):\n{child.tail()}")

    def check_alive(self) -> None:
        for child in self.children:
            if not child.alive:
                raise ProcessError(f"{child.name} died (code {child.popen.returncode}):\n{child.tail()}")

    def stop(self, timeout: float = 10.0) -> dict[str, int]:
        """SIGINT to all (ROS nodes shut down cleanly on it), SIGKILL for any that outlive `timeout`."""
        for child in self.children:
            if child.alive:
                os.killpg(child.popen.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        codes = {}
        for child in self.children:
            try:
                codes[child.name] = child.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.popen.pid, signal.SIGKILL)
                codes[child.name] = child.popen.wait()
            if child._fh:
                child._fh.close()
        self._stop.set()
        if any(code < 0 for code in codes.values()):  # killed: it could not remove its DDS files itself
            clean_zombie_shm()
        return codes

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
