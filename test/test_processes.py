"""Process hygiene of the demo, bringup and the tests: node processes die with the process that started them, and
the Fast DDS shared-memory files of a killed node are cleaned while those of living nodes are left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import Process

from manipllm_ros.dds_shm import SHM_DIR, clean_zombie_shm

pytestmark = pytest.mark.ros

# A minimal rclpy node with a publisher: enough for Fast DDS to open its shared-memory port and segment.
NODE = textwrap.dedent("""
    import rclpy
    from std_msgs.msg import String
    rclpy.init()
    node = rclpy.create_node("shm_probe")
    node.create_publisher(String, "shm_probe", 10)
    print("UP", flush=True)
    rclpy.spin(node)
""")


def _fastdds_files() -> set[str]:
    return {n for n in os.listdir(SHM_DIR) if n.startswith(("fastdds_", "sem.fastdds_"))}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead, only not yet reaped
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not SHM_DIR.is_dir(), reason="no /dev/shm")
def test_clean_removes_a_killed_nodes_dds_files_and_keeps_a_living_ones(node_env, tmp_path):
    clean_zombie_shm()
    before = _fastdds_files()
    living = Process([sys.executable, "-c", NODE], node_env, tmp_path / "living.log")
    killed = None
    try:
        living.wait_for("UP", 60)
        time.sleep(1.0)  # discovery has opened what it opens
        with_living = _fastdds_files()
        killed = Process([sys.executable, "-c", NODE], node_env, tmp_path / "killed.log")
        killed.wait_for("UP", 60)
        both = _fastdds_files()
        assert both - with_living, "the second node opened no shared-memory files (Fast DDS SHM transport off?)"
        os.killpg(killed.popen.pid, signal.SIGKILL)
        killed.popen.wait()
        left = _fastdds_files() - with_living
        assert any(n.startswith("fastdds_port") for n in left), left  # what a SIGKILL leaves behind

        assert clean_zombie_shm() >= 1
        after = _fastdds_files()
        assert not (after & left), f"zombie files still there: {sorted(after & left)}"
        assert (with_living - before) <= after, "a living node's files were removed"
    finally:
        living.stop()
        if killed is not None:
            killed.stop()


def test_node_processes_die_with_the_process_that_started_them(tmp_path):
    """A demo or test killed with SIGKILL leaves no node process behind (parent-death signal)."""
    starter = textwrap.dedent(f"""
        import sys, time
        from manipllm_ros.processes import ProcessGroup
        group = ProcessGroup({str(tmp_path / 'logs')!r}, env=dict(__import__('os').environ))
        child = group.start("sleeper", [sys.executable, "-c", "import time; time.sleep(300)"])
        print(child.popen.pid, flush=True)
        time.sleep(300)
    """)
    parent = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    try:
        child_pid = int(parent.stdout.readline())
        assert _pid_alive(child_pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _pid_alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _pid_alive(child_pid), "the node process outlived the killed process that started it"
    finally:
        parent.kill()
        parent.wait()
        if _pid_alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)


def test_a_node_dumps_its_thread_stacks_on_sigusr1_and_goes_on(node_env, tmp_path):
    """`kill -USR1` on a node process writes where every thread is into its log (how a hung or CPU-burning node is
    diagnosed, and what the demo tests collect on a timeout); the node keeps running and stops cleanly."""
    node = Process([sys.executable, "-m", "manipllm_ros.nodes.pose_service_node", "--ros-args", "-p",
                    "autostart:=false"], node_env, tmp_path / "pose_service.log")
    try:
        node.wait_for("waiting for a lifecycle manager", 120)
        os.kill(node.popen.pid, signal.SIGUSR1)
        node.wait_for("most recent call first", 20)
        assert "in run_node" in node.output() and "in spin" in node.output(), node.output()
        time.sleep(0.5)
        assert node.popen.poll() is None, "SIGUSR1 ended the node"
    finally:
        code = node.stop(signal.SIGINT, timeout=30)
    assert code == 0, node.output()[-2000:]


@pytest.mark.skipif(not hasattr(os, "sched_setscheduler"), reason="no POSIX scheduling calls")
def test_children_start_with_normal_scheduling_even_from_a_real_time_thread(tmp_path):
    """libfranka leaves the thread that connected to a robot at SCHED_FIFO; a node started from it must not inherit
    that (a real-time pose service that spins starves every other process: the CI stall)."""
    from manipllm_ros.processes import ProcessGroup

    before = (os.sched_getscheduler(0), os.sched_getparam(0))
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except PermissionError:
        pytest.skip("not allowed to use SCHED_FIFO here")
    try:
        with ProcessGroup(tmp_path / "logs", env=dict(os.environ)) as group:
            child = group.start("probe", [sys.executable, "-c", "import os; print('POLICY', os.sched_getscheduler(0))"])
            child.popen.wait(30)
    finally:
        os.sched_setscheduler(0, before[0], before[1])
    assert f"POLICY {os.SCHED_OTHER}" in child.output(), child.output()
