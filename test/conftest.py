"""Shared test set-up: the ROS environment, isolated DDS domains, and real node processes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from manipllm_ros.dds_shm import clean_zombie_shm
from manipllm_ros.processes import child_setup
from manipllm_ros.rosenv import ros_env

# The ROS environment itself is set up by the early plugin manipllm_ros.pytest_rosenv (pyproject.toml).

TEST_DIR = Path(__file__).resolve().parent
REPO = TEST_DIR.parent


class Process:
    """A real child process with its output in a file, so that a chatty child never blocks on a full pipe."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._fh = open(log, "wb")
        self.popen = subprocess.Popen(args, env=env, stdout=self._fh, stderr=subprocess.STDOUT,
                                      start_new_session=True, preexec_fn=child_setup)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited ({self.popen.returncode}) before '{text}':\n{self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for '{text}':\n{self.output()}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._fh.close()
        if self.popen.returncode < 0:  # killed: its Fast DDS files stay behind unless we clean them
            clean_zombie_shm()
        return self.popen.returncode


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models decode several times faster on one thread, above all on a shared 2-core machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def ros_domain() -> int:
    """A DDS domain of this test alone, so that parallel test runs never see each other's nodes."""
    return random.Random(os.getpid() * 1000 + time.time_ns()).randrange(1, 101)


@pytest.fixture
def node_env(ros_domain: int) -> dict[str, str]:
    clean_zombie_shm()  # DDS files of a node an earlier test killed must not hang this test's nodes
    env = ros_env()
    env["ROS_DOMAIN_ID"] = str(ros_domain)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def spawn(node_env: dict[str, str], tmp_path: Path) -> Iterator:
    procs: list[Process] = []

    def _spawn(args: list[str], name: str | None = None, env: dict[str, str] | None = None) -> Process:
        log = tmp_path / f"{name or Path(args[0]).stem}-{len(procs)}.log"
        proc = Process(args, env or node_env, log)
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        proc.stop()


@pytest.fixture
def rclpy_context(ros_domain: int) -> Iterator:
    """An rclpy context of this test process (the client side), on the test's own domain."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    yield ctx
    rclpy.shutdown(context=ctx)


PYTHON = sys.executable


# Processes that print their thread stacks on SIGUSR1 (faulthandler) instead of dying of it.
DUMPS_ON_USR1 = ("manipllm_ros.nodes.", "manipllm_ros.control.franky_sim_scene")


def run_cli(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    """subprocess.run for a `manipllm` command that starts node processes. On timeout the test fails with the
    command's own thread stacks (`manipllm` and every node dump them on SIGUSR1), the end of its output and of every
    log under its cwd (node logs with their stacks), and the command is killed; its node processes die with it (parent-death signal), so nothing is left eating the CPU."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=child_setup,
                            **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        import psutil

        # The command and its node processes (they dump their stacks into their logs; other children, such as
        # franky-sim's workers, would die of the signal).
        for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
            try:
                if p.pid == proc.pid or any(m in " ".join(p.cmdline()) for m in DUMPS_ON_USR1):
                    p.send_signal(signal.SIGUSR1)
            except psutil.Error:
                pass
        time.sleep(2.0)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        clean_zombie_shm()
        logs = "".join(f"\n--- {log} (last 3000 chars)\n{log.read_text(errors='replace')[-3000:]}"
                       for log in sorted(Path(kw.get("cwd", ".")).rglob("*.log")))
        pytest.fail(f"{' '.join(cmd[:3])} did not finish within {timeout:.0f} s\n--- stdout\n{(out or '')[-3000:]}"
                    f"\n--- stderr (thread stacks on SIGUSR1)\n{(err or '')[-8000:]}{logs}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def memorise(vlm, batch: dict, max_steps: int = 600, lr: float = 1e-2, halve_every: int = 0) -> int:
    """Train `vlm` on one batch until teacher-forced greedy accuracy on every answer token is 100% (a tiny model
    memorises), so a test can check what inference does with answers it is sure to give; returns the step."""
    import torch

    opt = torch.optim.AdamW(vlm.trainable_parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=halve_every, gamma=0.5) if halve_every else None
    torch.manual_seed(0)
    for step in range(max_steps):
        loss, _ = vlm.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        if step % 10 == 9:
            with torch.no_grad():
                b = {k: v for k, v in batch.items() if k != "labels"}
                ids = vlm.model(**b, use_cache=False).logits[:, :-1].argmax(-1)
                tgt = batch["labels"][:, 1:]
                if bool((ids[tgt != -100] == tgt[tgt != -100]).all()):
                    return step
    raise AssertionError(f"tiny model did not memorise the batch in {max_steps} steps "
                         f"(loss {float(loss.detach()):.3f})")
