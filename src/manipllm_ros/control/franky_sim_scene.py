"""franky-sim with an articulated part in its MuJoCo scene, plus a tiny side channel for the suction cup.

franky-sim (`franky_sim.MujocoSimulator`) builds its MJCF scene as an ElementTree and documents that extra
bodies may be appended to `sim.worldbody` before `start()`; that is the hook used here (no subclass or fork
needed). We add one hinged door or drawer, a TCP site on the hand, and an inactive weld between the hand
and the part: the simulated suction cup turns that weld on (at the current relative pose) when the TCP is
within `attach_tolerance` of the part's suction face, and off on release or when the weld has to carry more
than `suction_max_force` N (suction loss).

The robot itself is driven only through franky-sim's libfranka protocol server (port 1337 on the chosen
loopback address). The side channel (`SceneClient`, JSON lines over TCP on `scene_port`, served from the
simulation loop's pre-step callback so it never races MuJoCo) carries what a real cell would get from other
hardware: the suction valve, the suction pressure switch, and, for tests only, the part's joint state.

Besides the hand-made door/drawer (`ObjectSpec`), the scene can hold any generated object (category + seed) or
third-party MJCF/URDF (file + joint) through `SceneObject` (see `franky_sim_objects.py`): the same object the fast
simulated arm uses, placed in front of the FR3. The side channel's `scene` command then returns what a camera in
another process needs to mirror it (`franky_sim_objects.mirror_world`), and `state` its joint position.

Run: `python -m manipllm_ros.control.franky_sim_scene --object door --hostname 127.0.3.1`
(or `--object microwave --seed 3`, or `--object cabinet.xml:door_hinge --up y`).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import tempfile
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SCENE_PORT = 1340
TCP_OFFSET = 0.1034  # franky-sim's TCP: 0.1034 m along the hand z axis (RobotParameters.ee_tcp_xyz)

# Gripper orientation facing +x (approach axis z = +x, forward x = +z_world): columns x, y, z.
FACING_X = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
# Ready configuration: TCP at (0.57, 0.10, 0.45) facing +x, 8 cm before the default contact. Found by damped
# least-squares IK over the wrist angle, maximising the distance to the FR3 joint limits along a 12 cm pull
# (>= 0.17 rad everywhere); starting there saves the 10+ s reorientation from franky-sim's home pose.
READY_Q = (0.156, 0.064, 0.162, -2.51, 0.372, 4.179, 0.579)


class SceneError(RuntimeError):
    """The franky-sim scene process could not be started or answered badly."""


@dataclass(frozen=True)
class ObjectSpec:
    """One articulated part in front of the robot; its suction face looks at the robot (normal -x).

    door: a panel in the y-z plane at x=`front_x`, hinged on a vertical axis at y=`hinge_y`, extending
    `width` towards +y, opening towards the robot (positive angle). The contact point sits `contact_radius`
    from the hinge, so a straight pull along -x is right only at the start: the handle moves on an arc.
    drawer: a box sliding along -x (towards the robot), front face at x=`front_x`.
    """

    kind: str = "door"  # "door" | "drawer"
    front_x: float = 0.65
    center_y: float = 0.10  # drawer only
    center_z: float = 0.45
    hinge_y: float = -0.25
    width: float = 0.45
    height: float = 0.4
    contact_radius: float = 0.35
    joint_range: float = 1.6  # rad (door) or m (drawer, capped at 0.35)
    damping: float = 2.0  # N s/m or N m s/rad
    frictionloss: float = 0.5
    locked: bool = False  # a locked joint: the part does not move whatever the pull
    suction_max_force: float = 80.0  # N the suction cup holds before it lets go
    attach_tolerance: float = 0.02  # m between TCP and suction face for the cup to seal

    def __post_init__(self) -> None:
        if self.kind not in ("door", "drawer"):
            raise ValueError(f"ObjectSpec.kind must be 'door' or 'drawer', got {self.kind!r}")

    def contact_point(self) -> np.ndarray:
        """Point on the suction face where the cup should seal, base frame (closed part)."""
        if self.kind == "door":
            return np.array([self.front_x, self.hinge_y + self.contact_radius, self.center_z])
        return np.array([self.front_x, self.center_y, self.center_z])

    def contact_rotation(self) -> np.ndarray:
        """Gripper rotation at the contact: approach axis into the face (+x)."""
        return FACING_X.copy()

    def hinge_axis_point(self) -> np.ndarray:
        return np.array([self.front_x, self.hinge_y, self.center_z])


def _add_object(sim, spec: ObjectSpec) -> None:
    """Append the part, its joint, a TCP site and the (inactive) suction weld to the scene tree."""
    wb = sim.worldbody
    t = 0.02  # panel thickness
    rng = spec.joint_range if spec.kind == "door" else min(spec.joint_range, 0.35)
    lo, hi = (0.0, 1e-4) if spec.locked else (0.0, rng)
    common = dict(contype="0", conaffinity="0", rgba="0.7 0.5 0.3 1")
    if spec.kind == "door":
        body = ET.SubElement(wb, "body", name="part", pos=f"{spec.front_x + t / 2} {spec.hinge_y} {spec.center_z}")
        # Positive angle about +z swings the free (+y) edge towards the robot (-x).
        ET.SubElement(
            body, "joint", name="part_joint", type="hinge", axis="0 0 1", limited="true",
            range=f"{lo} {hi}", damping=str(spec.damping), frictionloss=str(spec.frictionloss),
        )
        ET.SubElement(
            body, "geom", name="part_panel", type="box", mass="2.0",
            pos=f"0 {spec.width / 2} 0", size=f"{t / 2} {spec.width / 2} {spec.height / 2}", **common,
        )
        ET.SubElement(body, "site", name="part_face", pos=f"{-t / 2} {spec.contact_radius} 0", size="0.01")
    else:
        body = ET.SubElement(wb, "body", name="part", pos=f"{spec.front_x + 0.15} {spec.center_y} {spec.center_z}")
        ET.SubElement(
            body, "joint", name="part_joint", type="slide", axis="-1 0 0", limited="true",
            range=f"{lo} {hi}", damping=str(spec.damping * 10), frictionloss=str(spec.frictionloss * 4),
        )
        ET.SubElement(
            body, "geom", name="part_box", type="box", mass="3.0", size=f"0.15 {spec.width / 2} {spec.height / 2}",
            **common,
        )
        ET.SubElement(body, "site", name="part_face", pos="-0.15 0 0", size="0.01")
    _add_suction(sim, "part")


def _add_suction(sim, part_body: str) -> None:
    """A TCP site (+ a tiny collision-free probe sphere for surface distances) on the hand, and the inactive
    suction weld between the hand and `part_body`."""
    hand = next(b for b in sim.scene.iter("body") if b.get("name") == "robot0_hand")
    ET.SubElement(hand, "site", name="tcp", pos=f"0 0 {TCP_OFFSET}", size="0.005")
    ET.SubElement(hand, "geom", name="tcp_probe", type="sphere", size="0.001", pos=f"0 0 {TCP_OFFSET}",
                  contype="0", conaffinity="0", group="5", mass="0")
    equality = sim.scene.find("equality")
    ET.SubElement(equality, "weld", name="suction", body1="robot0_hand", body2=part_body, active="false",
                  solref="0.01 1")


class _SceneService:
    """Serves suction and part state over JSON lines; polled from the simulation thread."""

    def __init__(self, sim, hostname: str, port: int, *, part_body: str = "part", joint: str = "part_joint",
                 attach_tolerance: float = 0.02, suction_max_force: float = 80.0,
                 description: dict | None = None) -> None:
        import mujoco

        self._mj = mujoco
        self.sim = sim
        self.part_name, self.joint_name = part_body, joint
        self.attach_tolerance, self.suction_max_force = attach_tolerance, suction_max_force
        self.description = description
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((hostname, port))
        self.sock.listen(4)
        self.sock.setblocking(False)
        self.clients: list[tuple[socket.socket, bytearray]] = []
        self.tick = 0
        self.suction_on = False
        self.fail_at_tick: int | None = None
        self.lost = False
        self.max_weld_force = 0.0
        self.parent = os.getppid()
        # A bellows suction cup holds position but lets the part turn a little: weld with a weak torque.
        self.torquescale = 0.0

    def ids(self) -> None:
        m = self.sim.model
        self.eq_id = self._mj.mj_name2id(m, self._mj.mjtObj.mjOBJ_EQUALITY, "suction")
        self.tcp_site = self._mj.mj_name2id(m, self._mj.mjtObj.mjOBJ_SITE, "tcp")
        self.face_site = self._mj.mj_name2id(m, self._mj.mjtObj.mjOBJ_SITE, "part_face")
        self.hand_body = self._mj.mj_name2id(m, self._mj.mjtObj.mjOBJ_BODY, "robot0_hand")
        self.part_body = self._mj.mj_name2id(m, self._mj.mjtObj.mjOBJ_BODY, self.part_name)
        jid = self._mj.mj_name2id(m, self._mj.mjtObj.mjOBJ_JOINT, self.joint_name)
        self.part_qadr = int(m.jnt_qposadr[jid])
        self.probe_geom = self._mj.mj_name2id(m, self._mj.mjtObj.mjOBJ_GEOM, "tcp_probe")
        parts = {self.part_body}
        for b in range(m.nbody):  # the movable body and everything it carries
            if int(m.body_parentid[b]) in parts:
                parts.add(b)
        self.part_geoms = [g for g in range(m.ngeom) if int(m.geom_bodyid[g]) in parts]

    # -- physics-side helpers ------------------------------------------------------------------------
    def face_distance(self) -> float:
        """Distance (m) from the TCP to the nearest surface of the movable part (negative = inside it)."""
        m, d = self.sim.model, self.sim.data
        cap = 1.0
        fromto = np.zeros(6)
        dist = min((self._mj.mj_geomDistance(m, d, self.probe_geom, g, cap, fromto) for g in self.part_geoms),
                   default=cap)
        return float(dist + m.geom_size[self.probe_geom, 0])

    def engage(self) -> bool:
        if self.lost:
            return False
        if self.face_distance() > self.attach_tolerance:
            return False
        m, d = self.sim.model, self.sim.data
        # Weld at the current relative pose, about the cup (the TCP point w): the point w fixed in the
        # part (eq_data[0:3], part frame) must stay at w fixed in the hand (eq_data[3:6], hand frame).
        w = d.site_xpos[self.tcp_site].copy()
        R1 = d.xmat[self.hand_body].reshape(3, 3)
        R2 = d.xmat[self.part_body].reshape(3, 3)
        q1inv = np.zeros(4)
        self._mj.mju_negQuat(q1inv, d.xquat[self.hand_body])
        rel_q = np.zeros(4)
        self._mj.mju_mulQuat(rel_q, q1inv, d.xquat[self.part_body])
        # eq_data layout for weld: anchor(3), relpose pos(3), quat(4), torquescale(1)
        m.eq_data[self.eq_id, 0:3] = R2.T @ (w - d.xpos[self.part_body])
        m.eq_data[self.eq_id, 3:6] = R1.T @ (w - d.xpos[self.hand_body])
        m.eq_data[self.eq_id, 6:10] = rel_q
        m.eq_data[self.eq_id, 10] = self.torquescale
        d.eq_active[self.eq_id] = 1
        self.suction_on = True
        return True

    def release(self) -> None:
        self.sim.data.eq_active[self.eq_id] = 0
        self.suction_on = False
        self.fail_at_tick = None

    def weld_force(self) -> float:
        d = self.sim.data
        rows = np.nonzero(
            (d.efc_type[: d.nefc] == self._mj.mjtConstraint.mjCNSTR_EQUALITY) & (d.efc_id[: d.nefc] == self.eq_id)
        )[0]
        if rows.size < 3:
            return 0.0
        return float(np.linalg.norm(d.efc_force[rows[:3]]))

    def state(self) -> dict:
        d = self.sim.data
        return {
            "joint": float(d.qpos[self.part_qadr]),
            "suction": bool(self.suction_on),
            "lost": bool(self.lost),
            "tcp": d.site_xpos[self.tcp_site].tolist(),
            "face": d.site_xpos[self.face_site].tolist(),
            "sim_time": float(d.time),
            "max_weld_force": self.max_weld_force,
        }

    # -- per tick -------------------------------------------------------------------------------------
    def __call__(self, sim) -> None:
        self.tick += 1
        if self.suction_on:
            f = self.weld_force()
            self.max_weld_force = max(self.max_weld_force, f)
            if f > self.suction_max_force or (self.fail_at_tick is not None and self.tick >= self.fail_at_tick):
                self.release()
                self.lost = True
        if self.tick % 1000 == 0 and os.getppid() != self.parent:
            os._exit(0)  # the process that started us is gone (e.g. a killed test run): do not linger
        if self.tick % 5:
            return
        try:
            conn, _ = self.sock.accept()
            conn.setblocking(False)
            self.clients.append((conn, bytearray()))
        except BlockingIOError:
            pass
        for conn, buf in list(self.clients):
            try:
                chunk = conn.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                conn.close()
                self.clients.remove((conn, buf))
                continue
            buf.extend(chunk)
            while b"\n" in buf:
                line, _, rest = bytes(buf).partition(b"\n")
                buf[:] = rest
                conn.sendall((json.dumps(self.handle(json.loads(line))) + "\n").encode())

    def handle(self, req: dict) -> dict:
        cmd = req.get("cmd")
        if cmd == "state":
            return {"ok": True, **self.state()}
        if cmd == "scene":  # what a camera in another process needs to mirror the object (and its state)
            if self.description is None:
                return {"ok": False, "error": "the hand-made door/drawer has no object description to mirror"}
            return {"ok": True, **self.description, **self.state()}
        if cmd == "suction_on":
            return {"ok": True, "attached": self.engage(), "distance": self.face_distance()}
        if cmd == "suction_off":
            self.release()
            self.lost = False
            return {"ok": True}
        if cmd == "fail_suction_in":  # fault injection for tests: the cup lets go after `s` seconds
            self.fail_at_tick = self.tick + int(float(req["s"]) * 1000)
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {cmd!r}"}


def serve(spec, hostname: str, scene_port: int = SCENE_PORT, realtime: float = 1.0,
          initial_q: tuple[float, ...] = READY_Q) -> None:
    """Run franky-sim with the part (`ObjectSpec` door/drawer or a `SceneObject`) until killed (blocking)."""
    import franky_sim
    from franky_sim.mujoco_simulator import MujocoSimulator

    from .franky_sim_objects import SceneObject, merge_into_scene, place_object

    placed = place_object(spec) if isinstance(spec, SceneObject) else None  # load errors before franky-sim starts
    with MujocoSimulator(enable_visualization=False) as sim:
        sim.add_robot(initial_q=initial_q)
        if placed is None:
            _add_object(sim, spec)
            service = _SceneService(sim, hostname, scene_port, attach_tolerance=spec.attach_tolerance,
                                    suction_max_force=spec.suction_max_force)
        else:
            merge_into_scene(sim, placed)
            _add_suction(sim, placed.part_body)
            service = _SceneService(sim, hostname, scene_port, part_body=placed.part_body, joint=placed.joint_name,
                                    attach_tolerance=spec.attach_tolerance, suction_max_force=spec.suction_max_force,
                                    description=placed.describe())
        sim.register_pre_step_callback(service)
        with franky_sim.SimulationServer(sim, hostname_candidates=[hostname]) as server:
            service.ids()
            print(f"READY {hostname}", flush=True)
            server.run_forever(realtime=realtime)


class SceneClient:
    """Talks to the scene side channel: suction valve and pressure switch, part state (tests)."""

    def __init__(self, hostname: str, port: int = SCENE_PORT, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((hostname, port), timeout=timeout)
        self._buf = b""

    def call(self, cmd: str, **kw) -> dict:
        self.sock.sendall((json.dumps({"cmd": cmd, **kw}) + "\n").encode())
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SceneError("franky-sim scene closed the side channel")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise SceneError(f"scene command {cmd!r} failed: {reply.get('error')}")
        return reply

    def joint(self) -> float:
        return float(self.call("state")["joint"])

    def close(self) -> None:
        self.sock.close()


class FrankySimProcess:
    """franky-sim with a part, as a child process on its own loopback address (so runs never collide)."""

    def __init__(self, spec, hostname: str | None = None, startup_timeout: float = 60.0) -> None:
        self.spec = spec
        self.hostname = hostname or free_loopback_address()
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log = None

    def start(self) -> "FrankySimProcess":
        from .franky_sim_objects import SceneObject

        if isinstance(self.spec, SceneObject):
            self.spec.load()  # a bad object or joint: ObjectLoadError here, with its message, before any process
            args = [sys.executable, "-m", "manipllm_ros.control.franky_sim_scene", "--hostname", self.hostname,
                    "--scene-object", json.dumps(asdict(self.spec))]
        else:
            args = [sys.executable, "-m", "manipllm_ros.control.franky_sim_scene", "--hostname", self.hostname,
                    "--spec", json.dumps(asdict(self.spec))]
        # Output goes to a file, never a pipe: a chatty simulator must not block on a full pipe mid-run.
        self.log = tempfile.NamedTemporaryFile(prefix="franky_sim_", suffix=".log", delete=False)
        from manipllm_ros.processes import child_setup

        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=child_setup)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            text = self.output()
            if "READY" in text:
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        text = self.output()
        self.stop()
        raise SceneError(f"franky-sim scene did not start on {self.hostname}:\n{text[-3000:]}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace") if self.log else ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None
        if self.log is not None:
            self.log.close()
            Path(self.log.name).unlink(missing_ok=True)
            self.log = None

    def __enter__(self) -> "FrankySimProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_loopback_address() -> str:
    """A 127.a.b.c address whose libfranka/gripper/scene ports are free (random, so parallel runs differ)."""
    rnd = np.random.default_rng()
    for _ in range(200):
        host = f"127.{rnd.integers(1, 255)}.{rnd.integers(1, 255)}.{rnd.integers(2, 255)}"
        ok = True
        for port in (1337, 1338, SCENE_PORT):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((host, port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return host
    raise SceneError("no free loopback address found for franky-sim")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hostname", default=None)
    p.add_argument("--object", default="door",
                   help="door | drawer (hand-made) | a generated category | FILE.xml:JOINT (third-party MJCF/URDF)")
    p.add_argument("--seed", type=int, default=0, help="seed of a generated object")
    p.add_argument("--up", default="z", help="up axis of a third-party file (z, y, -y, x)")
    p.add_argument("--scale", type=float, default=None, help="object scale (default: automatic)")
    p.add_argument("--spec", default=None, help="ObjectSpec as JSON (overrides --object)")
    p.add_argument("--scene-object", default=None, help="SceneObject as JSON (overrides --object)")
    p.add_argument("--scene-port", type=int, default=SCENE_PORT)
    a = p.parse_args(argv)
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: thread stacks to the log, goes on
    spec = scene_spec(a.object, a.seed, up=a.up, scale=a.scale)
    if a.spec:
        spec = ObjectSpec(**json.loads(a.spec))
    elif a.scene_object:
        from .franky_sim_objects import SceneObject

        spec = SceneObject(**json.loads(a.scene_object))
    from manipllm_ros.sim.world import SimError

    try:
        serve(spec, a.hostname or free_loopback_address(), a.scene_port)
    except (SimError, ValueError) as e:
        print(f"franky-sim scene: {e}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:  # Ctrl+C / SIGINT from bringup: a normal stop
        return 0
    return 0


def scene_spec(name: str, seed: int = 0, **kw):
    """`door`/`drawer` -> the hand-made `ObjectSpec`; a category or FILE:JOINT -> a `SceneObject`."""
    if name in ("door", "drawer"):
        return ObjectSpec(kind=name)
    from .franky_sim_objects import SceneObject

    return SceneObject.from_arg(name, seed, **kw)


if __name__ == "__main__":
    raise SystemExit(main())
