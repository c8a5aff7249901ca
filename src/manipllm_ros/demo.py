"""`manipllm demo`: the simulated system end to end, with a model trained by our own pipeline.

1. Model: the shipped `models/demo-tiny` (trained by our pipeline; its provenance.json names the commands and
   seeds). With `--retrain`, or a `--checkpoint` that holds no model, collect a small simulated dataset
   (`sim collect`), train the tiny preset on it (progress bars) and write `provenance.json` next to it.
2. Fast-arm episodes (`--episodes`): `pose_service_node` runs as its own process (the real /predict_pose over
   DDS, with test-time adaptation); this process is the client. For each random object: render RGB-D, call
   /predict_pose (chain of thought), lift the answer to a contact pose, open the part with the fast simulated
   arm (approach, suction, AIA), report the outcome to /report_outcome (TTA), draw the prediction on the image.
3. Full-system episodes (`--system-episodes`): per random object, the whole simulated system as processes
   (`bringup.start_system`: franky-sim with the object, camera_node mirroring it, pose_service_node with TTA,
   franka_node); this process only acts as the client (`nodes.client.SystemClient`): a camera frame for the
   picture, /predict_pose on the camera's frame, a /manipulate goal (AIA on the FR3 over the libfranka
   protocol) with feedback, the ManipulationOutcome, and the TTA step the pose service makes from it. The scene
   cannot change at runtime, so the system is started and shut down for each object. Any error (a process that
   does not start or dies, a timeout) ends that episode as a failure row and stops every process.
A prediction that does not parse is shown as the failure it is; nothing is replaced by a default pose. The
success column is the same for both arms: the object's joint moved > 0.01 (rad or m) in the opening direction.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

DEMO_CATEGORIES = ("microwave", "storage_cabinet_door", "cabinet_drawer", "refrigerator", "safe", "oven_door")
# Front-facing categories whose opening by the FR3 in franky-sim is tested (test_control_franky_sim_objects.py).
FR3_CATEGORIES = ("storage_cabinet_door", "cabinet_drawer")
FAST_ARM, FR3 = "fast arm", "FR3/franky-sim"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Row:
    episode: int
    category: str
    object_seed: int
    pixel: str
    on_part: bool | None
    success: bool
    joint_delta: float
    latency_ms: float
    adapter_version: int
    note: str
    image: str
    arm: str = FAST_ARM
    ee_distance: float = 0.0  # m the end effector moved after contact
    seconds: float = 0.0  # wall time of the episode (a system episode includes starting and stopping it)


# -- model ------------------------------------------------------------------------------------------------
def ensure_model(args: argparse.Namespace) -> Path:
    """The model directory to serve: the shipped/earlier one, or one trained here first (`--retrain`)."""
    ckpt = Path(args.checkpoint)
    final = ckpt if (ckpt / "manipllm_model.json").is_file() else ckpt / "final"
    prov = ckpt / "provenance.json"
    if (final / "manipllm_model.json").is_file() and prov.is_file() and not args.retrain:
        info = json.loads(prov.read_text())
        print(f"[demo] model: {final} (trained by `{info['command']}`, {info.get('steps')} steps; data seed "
              f"{info.get('data_seed')})")
        return final
    if args.retrain and ckpt.resolve() == (Path(__file__).resolve().parents[2] / "models" / "demo-tiny"):
        ckpt = Path("checkpoints/demo")  # never overwrite the shipped model
        args.checkpoint = str(ckpt)
        final, prov = ckpt / "final", ckpt / "provenance.json"
    from manipllm_ros.sim.collect import CollectConfig, collect
    from manipllm_ros.training.config import preset
    from manipllm_ros.training.trainer import train

    data = Path(args.out) / "data"
    print(f"[demo] no trained model in {ckpt}: collecting {args.samples} simulated samples "
          f"({', '.join(args.categories)}), then training the tiny preset for {args.steps} steps")
    summary = collect(CollectConfig(out=data, num_samples=args.samples, seed=args.seed, workers=args.workers,
                                    categories=list(args.categories)))
    from manipllm_ros.sim.dataset import iter_samples

    # Validate on unseen instances when the run collected some (1 in 5 object seeds), else on training data.
    val_split = "test_seen" if next(iter(iter_samples(data, split="test_seen")), None) is not None else "train"
    cfg = preset("tiny")
    cfg = cfg.model_copy(update={
        "output_dir": str(ckpt), "max_steps": args.steps, "resume": not args.retrain, "seed": args.seed,
        "eval_every": 0, "save_every": 0,  # validate and save once, at the end: the demo's time is bounded
        "data": cfg.data.model_copy(update={"path": str(data), "val_split": val_split,
                                            "max_val_samples": args.val_samples}),
    })
    result = train(cfg)
    prov.write_text(json.dumps({
        "command": " ".join(shlex.quote(a) for a in ["manipllm", *sys.argv[1:]]),
        "data_seed": args.seed, "categories": list(args.categories), "train_samples": args.samples,
        "steps": args.steps, "preset": "tiny", "collect_summary": summary, "train_result": result,
    }, indent=2, default=str))
    return final


# -- episodes ---------------------------------------------------------------------------------------------
def draw(rgb: np.ndarray, K: np.ndarray, point_cam, up_cam, fwd_cam, ok: bool, path: Path, text: str) -> None:
    import cv2

    img = np.ascontiguousarray(rgb[..., ::-1].copy())

    def px(p):
        p = np.asarray(p, float)
        return int(round(K[0, 0] * p[0] / p[2] + K[0, 2])), int(round(K[1, 1] * p[1] / p[2] + K[1, 2]))

    if point_cam is not None:
        c = px(point_cam)
        cv2.circle(img, c, 7, (0, 215, 255), 2)
        for vec, colour in ((up_cam, (40, 40, 255)), (fwd_cam, (40, 220, 40))):
            tip = np.asarray(point_cam) + 0.06 * np.asarray(vec)
            if tip[2] > 0.05:
                cv2.arrowedLine(img, c, px(tip), colour, 2, tipLength=0.25)
    cv2.rectangle(img, (0, 0), (img.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(img, text[:90], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (80, 255, 80) if ok else (80, 80, 255), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def run_episodes(args: argparse.Namespace, model_dir: Path) -> list[Row]:
    from manipllm_ros.control.arm import EEPose
    from manipllm_ros.control.config import AIAConfig
    from manipllm_ros.control.episodes import workspace_around
    from manipllm_ros.geometry import rotation_from_up_forward
    from manipllm_ros.manipulation import run_manipulation
    from manipllm_ros.nodes.client import PoseServiceClient, predict_request
    from manipllm_ros.sim.flying_arm import FlyingArm
    from manipllm_ros.sim.objects import generate_object

    out = Path(args.out)
    rng = np.random.default_rng(args.seed + 1)
    rows: list[Row] = []
    with PoseServiceClient(model_dir, out / "logs", out / "tta", contact=args.contact,
                           up=args.up, snap_radius_px=args.snap_radius, views=args.views,
                           protrusion_radius_px=args.protrusion_radius,
                           protrusion_facing_deg=args.protrusion_facing,
                           handle_radius_px=args.handle_radius,
                           protrusion_skip_outline=args.protrusion_skip_outline,
                           protrusion_stay_on_own=args.protrusion_stay_on_own) as service:
        for i in range(args.episodes):
            t0 = time.monotonic()
            category = str(rng.choice(args.categories))
            # seed % 5 == 0: an instance of the "test_seen" split, never in the training data.
            seed = 5 * int(rng.integers(2_000, 20_000))
            obj = generate_object(category, seed)
            img = out / f"episode_{i:02d}_{category}.png"
            with FlyingArm.from_object(obj, seed=seed) as arm:
                obs = arm.world.observe()
                K = obs.intrinsics.K
                res, _ = service.predict(predict_request(obs.rgb, obs.depth, K, obj.meta.instruction,
                                                         chain_of_thought=not args.direct))
                if not res.success:
                    draw(obs.rgb, K, None, None, None, False, img, f"{category}: {res.error}")
                    rows.append(Row(i, category, seed, "-", None, False, 0.0, res.latency.total_ms,
                                    res.adapter_version, res.error[:60], img.name))
                else:
                    p_cam = np.array([res.pose.point.x, res.pose.point.y, res.pose.point.z])
                    up_cam = np.array([res.pose.up.x, res.pose.up.y, res.pose.up.z])
                    fwd_cam = np.array([res.pose.forward.x, res.pose.forward.y, res.pose.forward.z])
                    T = obs.cam_to_world
                    p_w, up_w, fwd_w = T[:3, :3] @ p_cam + T[:3, 3], T[:3, :3] @ up_cam, T[:3, :3] @ fwd_cam
                    on_part = bool(obs.mask[min(res.pose.v, obs.mask.shape[0] - 1),
                                            min(res.pose.u, obs.mask.shape[1] - 1)])
                    R = rotation_from_up_forward(up_w, fwd_w)
                    q0 = arm.joint_position()
                    arm.teleport(p_w - 0.05 * up_w, R)  # fast-arm shortcut through free space
                    aia = AIAConfig().model_copy(update={"workspace": workspace_around(arm)})
                    run = run_manipulation(arm, EEPose(p_w, R), policy="aia", aia=aia, approach_distance=0.05,
                                           push=obj.meta.action == "push")
                    dq = float(arm.joint_position() - q0)
                    success = dq > 0.01  # the paper's initial-movement threshold, opening direction
                    rep, _ = service.report(res.prediction_id, success)
                    said = res.reasoning.category or "direct question"
                    draw(obs.rgb, K, p_cam, up_cam, fwd_cam, success, img,
                         f"{category}: {'opened' if success else 'failed'} dq={dq:+.3f} ({said})")
                    rows.append(Row(i, category, seed, f"({res.pose.u}, {res.pose.v})", on_part, success, dq,
                                    res.latency.total_ms, rep.adapter_version,
                                    "" if run.success else run.failure_reason[:60], img.name,
                                    ee_distance=run.ee_distance))
            rows[-1].seconds = time.monotonic() - t0
            print(f"[demo] episode {i + 1}/{args.episodes}: {category} "
                  f"{'success' if rows[-1].success else 'failure'}", flush=True)
    return rows


def system_config(args: argparse.Namespace, model_dir: Path, category: str, seed: int, logs: Path) -> Path:
    """config/sim.yaml with this episode's object in franky-sim, the demo's model and the demo's TTA state."""
    import yaml

    from manipllm_ros.config import ManipllmConfig

    src = REPO / "config" / "sim.yaml"
    data = yaml.safe_load(src.read_text()) if src.is_file() else ManipllmConfig().model_dump(mode="json")
    data.setdefault("pose_service", {}).update({"model_path": str(model_dir.resolve()),
                                                "contact": args.contact, "up": args.up,
                                                "snap_radius_px": args.snap_radius, "views": args.views,
                                                "protrusion_radius_px": args.protrusion_radius,
                                                "protrusion_facing_deg": args.protrusion_facing,
                                                "handle_radius_px": args.handle_radius,
                                                "protrusion_skip_outline": args.protrusion_skip_outline,
                                                "protrusion_stay_on_own": args.protrusion_stay_on_own})
    data.setdefault("tta", {})["state_dir"] = str((Path(args.out) / "tta").resolve())
    data.setdefault("bringup", {}).update({"franky_sim": True, "franky_object": category,
                                           "franky_object_seed": seed, "log_dir": str(logs.resolve()),
                                           "startup_timeout_s": args.system_timeout})
    path = logs / "sim.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _tta_version(group, prediction_id: int, version: int, timeout: float = 60.0) -> tuple[int, str]:
    """The adapter version after the pose service's TTA step on `prediction_id` (from its log), and a note."""
    pose = next(c for c in group.children if c.name == "pose_service")
    pattern = re.compile(rf"prediction {prediction_id}: (V-Adapter step, loss \S+, adapter version (\d+)|"
                         rf"no update: (.*))")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = pattern.search(pose.output())
        if m:
            return (int(m.group(2)), "") if m.group(2) else (version, f"tta: {m.group(3)[:40]}")
        group.check_alive()
        time.sleep(0.2)
    return version, "tta: no update seen"


def run_system_episode(args: argparse.Namespace, model_dir: Path, i: int, category: str, seed: int) -> Row:
    """One object through the whole system as processes; every error is a failure row, never a hang."""
    from manipllm.action import Manipulate
    from manipllm_ros.bringup import start_system
    from manipllm_ros.control.franky_sim_scene import SceneClient
    from manipllm_ros.nodes.client import SystemClient
    from manipllm_ros.processes import ProcessGroup
    from manipllm_ros.sim.objects import generate_object

    t0 = time.monotonic()
    out = Path(args.out)
    img = out / f"episode_{i:02d}_{category}_fr3.png"
    logs = out / "system" / f"episode_{i:02d}"
    row = Row(i, category, seed, "-", None, False, 0.0, 0.0, 0, "", img.name, arm=FR3)
    rgb = K = None
    res = None
    codes: dict[str, int] = {}
    group = ProcessGroup(logs)
    try:
        print(f"[demo] system episode {i}: starting franky-sim ({category}, seed {seed}), camera, pose service "
              f"and franka nodes (logs in {logs})", flush=True)
        system = start_system(system_config(args, model_dir, category, seed, logs), group)
        instruction = generate_object(category, seed).meta.instruction
        print(f"[demo] system up in {time.monotonic() - t0:.0f} s; asking /predict_pose: '{instruction}'",
              flush=True)
        with SystemClient(group, system.config) as client:
            rgb, K = client.camera_frame()
            scene = SceneClient(system.robot_ip)
            try:
                q0 = scene.joint()
                res = client.predict_on_camera(instruction, chain_of_thought=not args.direct)
                row.latency_ms, row.adapter_version = res.latency.total_ms, res.adapter_version
                if not res.success:
                    row.note = res.error[:60]
                else:
                    row.pixel = f"({res.pose.u}, {res.pose.v})"
                    phases: list[str] = []

                    def feedback(f) -> None:
                        if not phases or phases[-1] != f.phase:
                            phases.append(f.phase)
                            print(f"[demo]   /manipulate: {f.phase} (iteration {f.iteration}, moved "
                                  f"{f.distance_moved:.3f} m)", flush=True)

                    goal = Manipulate.Goal(use_given_pose=True, use_aia=True, prediction_id=res.prediction_id,
                                           pose=res.pose)
                    outcome = client.manipulate(goal, feedback, timeout=args.system_timeout)
                    row.joint_delta = float(scene.joint() - q0)
                    row.ee_distance = float(outcome.ee_distance)
                    row.success = row.joint_delta > 0.01
                    verdict = "" if outcome.success else outcome.failure_reason
                    if outcome.success != row.success:
                        verdict = f"franka_node: {'success' if outcome.success else verdict}"
                    # franka_node publishes the outcome; the pose service's TTA node learns from it.
                    row.adapter_version, tta_note = _tta_version(group, res.prediction_id, res.adapter_version)
                    row.note = "; ".join(n for n in (verdict[:60], tta_note) if n)
            finally:
                scene.close()
    except Exception as exc:  # a process that did not start or died, a timeout, a refused goal
        first = str(exc).strip().splitlines()[0].rstrip(":") if str(exc).strip() else type(exc).__name__
        print(f"[demo] system episode {i} failed: {exc}", flush=True)
        row.success, row.note = False, f"system error: {first}"[:80]
    finally:
        codes = group.stop(timeout=30.0)  # SIGINT to all; SIGKILL (code -9) for any still running after 30 s
        print(f"[demo] system stopped: {codes}", flush=True)
    row.seconds = time.monotonic() - t0
    if rgb is not None:
        ok = res is not None and res.success
        pose = res.pose if ok else None
        vec = (lambda v: np.array([v.x, v.y, v.z])) if ok else (lambda v: None)
        text = (f"FR3 {category}: {'opened' if row.success else 'failed'} dq={row.joint_delta:+.3f} "
                f"({res.reasoning.category or 'direct question'})" if ok else f"FR3 {category}: {row.note}")
        draw(rgb, K, vec(pose.point) if ok else None, vec(pose.up) if ok else None,
             vec(pose.forward) if ok else None, row.success, img, text)
    else:  # no camera frame: the picture says why
        draw(np.zeros((480, 640, 3), np.uint8), np.eye(3), None, None, None, False, img,
             f"FR3 {category}: {row.note}")
    return row


def run_system_episodes(args: argparse.Namespace, model_dir: Path) -> list[Row]:
    categories = [c for c in args.categories if c in FR3_CATEGORIES] or list(args.categories)
    if args.system_categories:
        categories = list(args.system_categories)
    rng = np.random.default_rng(args.seed + 2)
    rows = []
    for k in range(args.system_episodes):
        category = str(rng.choice(categories))
        seed = 5 * int(rng.integers(2_000, 20_000))  # an unseen ("test_seen") instance, as for the fast arm
        rows.append(run_system_episode(args, model_dir, args.episodes + k, category, seed))
        r = rows[-1]
        print(f"[demo] system episode {k + 1}/{args.system_episodes}: {category} "
              f"{'success' if r.success else 'failure'} ({r.seconds:.0f} s)", flush=True)
    return rows


def table(rows: list[Row]) -> str:
    head = ("| # | arm | category | pixel | on part | success | joint delta | ee moved m | latency ms | adapter | "
            "episode s | note |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        on = "-" if r.on_part is None else ("yes" if r.on_part else "no")
        lines.append(f"| {r.episode} | {r.arm} | {r.category} | {r.pixel} | {on} | {'yes' if r.success else 'no'} | "
                     f"{r.joint_delta:+.3f} | {r.ee_distance:.3f} | {r.latency_ms:.0f} | {r.adapter_version} | "
                     f"{r.seconds:.0f} | {r.note} |")
    n = len(rows)
    ok = sum(r.success for r in rows)
    parsed = sum(r.pixel != "-" for r in rows)
    lines.append("")
    lines.append(f"{ok}/{n} opened (joint moved > 0.01 in the opening direction); {parsed}/{n} predictions "
                 f"parsed; {sum(bool(r.on_part) for r in rows)}/{sum(r.on_part is not None for r in rows)} contacts on the "
                 "movable part (known where the demo renders the object itself: fast-arm rows).")
    return "\n".join(lines)


def _check_service_options(args: argparse.Namespace) -> str:
    """Why the pose service would refuse the demo's contact flags ("" if it would not): said before any model is
    trained or node started, not after the node's start-up timeout."""
    from pydantic import ValidationError

    from manipllm_ros.config import PoseServiceConfig

    try:
        PoseServiceConfig(contact=args.contact, up=args.up, snap_radius_px=args.snap_radius, views=args.views,
                          protrusion_radius_px=args.protrusion_radius, protrusion_facing_deg=args.protrusion_facing,
                          handle_radius_px=args.handle_radius,
                          protrusion_skip_outline=args.protrusion_skip_outline,
                          protrusion_stay_on_own=args.protrusion_stay_on_own)
    except ValidationError as exc:
        return "; ".join(e["msg"] for e in exc.errors())
    return ""


def _demo(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    why = _check_service_options(args)
    if why:
        print(f"[demo] the pose service would refuse these options: {why}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = ensure_model(args)
    rows = run_episodes(args, model_dir) if args.episodes > 0 else []
    rows += run_system_episodes(args, model_dir)
    text = table(rows)
    print(text)
    (out / "summary.md").write_text(text + "\n")
    (out / "episodes.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    print(f"[demo] images and summary in {out}/ ({time.monotonic() - t0:.0f} s)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the simulated system end to end (trains a small model on first run)")
    p.add_argument("--episodes", type=int, default=6, help="fast-arm episodes on random objects")
    p.add_argument("--system-episodes", type=int, default=2,
                   help="full-system episodes: franky-sim (FR3) + camera + pose service + franka node as processes, "
                        "started per random object (about 2-4 min each on 2 CPU cores)")
    p.add_argument("--system-categories", nargs="+", default=None,
                   help=f"categories of the system episodes (default: those of --categories among "
                        f"{', '.join(FR3_CATEGORIES)}, the front-facing ones tested with the FR3)")
    p.add_argument("--system-timeout", type=float, default=300.0,
                   help="seconds a system process may take to start, and a /manipulate episode to finish")
    p.add_argument("--out", default="results/demo", help="images, table, logs")
    p.add_argument("--checkpoint", default=str(Path(__file__).resolve().parents[2] / "models" / "demo-tiny"),
                   help="trained model directory (default: the shipped demo model; trained here if missing)")
    p.add_argument("--direct", action="store_true",
                   help="ask the pose question directly, without the chain of thought (for models trained "
                        "without it, such as models/small-grounded)")
    p.add_argument("--contact", choices=["pose", "grounding", "agreement"], default="pose",
                   help="contact pixel from the pose answer, the grounding answer, or of the two the one whose "
                        "depth surface faces the model's up (pose_service.contact; the last two for models "
                        "trained with the grounding task, such as models/small-grounded)")
    p.add_argument("--up", choices=["model", "depth"], default="model",
                   help="gripper up from the model's pose answer, or minus the surface normal measured in the "
                        "depth image at the contact (pose_service.up)")
    p.add_argument("--snap-radius", type=int, default=0,
                   help="pose_service.snap_radius_px: move a contact whose depth surface disagrees with the model's up "
                        "to the nearest agreeing one within this many px (0 = off)")
    p.add_argument("--views", type=int, default=1,
                   help="pose_service.views: ask an object-window model (models/small-objview-hard) on this many "
                        "jittered copies of its window and take the trimmed mean of the contacts (1 = off)")
    p.add_argument("--protrusion-radius", type=int, default=0,
                   help="pose_service.protrusion_radius_px: first move the contact onto the nearest raised part "
                        "(handle, lever, button) within this many px, found in the depth (0 = off)")
    p.add_argument("--protrusion-facing", type=float, default=None,
                   help="pose_service.protrusion_facing_deg: only onto a raised part whose surface faces the "
                        "model's up within this angle (degrees; default: any raised part)")
    p.add_argument("--protrusion-skip-outline", action="store_true",
                   help="pose_service.protrusion_skip_outline: nor onto a raised part that is the outline of the "
                        "contact's own surface against what lies behind the object (a thin lid's far edge)")
    p.add_argument("--protrusion-stay-on-own", action="store_true",
                   help="pose_service.protrusion_stay_on_own: keep a contact on a part it is already on: not onto "
                        "the rim of its own surface, and from a raised part (a lever) the surface snap only within "
                        "it (needs --protrusion-radius and --snap-radius)")
    p.add_argument("--handle-radius", type=int, default=0,
                   help="pose_service.handle_radius_px: first of all move a contact on one panel of a plane (a "
                        "cabinet front) beside a handle on another panel within this many px (0 = off)")
    p.add_argument("--retrain", action="store_true", help="collect and train again even if a model exists")
    p.add_argument("--samples", type=int, default=360, help="simulated training samples to collect")
    p.add_argument("--steps", type=int, default=300, help="training steps of the tiny preset")
    p.add_argument("--val-samples", type=int, default=8, help="validation samples decoded after training")
    p.add_argument("--workers", type=int, default=2, help="data-collection processes")
    p.add_argument("--seed", type=int, default=0, help="data and episode seed")
    p.add_argument("--categories", nargs="+", default=list(DEMO_CATEGORIES), help="object categories")
    p.set_defaults(func=_demo)
