"""Test-time adaptation: how long one V-Adapter step takes through /report_outcome, and what it does to a
/predict_pose request that arrives while the step runs (they share one model and its lock, by design).

    .venv/bin/manipllm env -- .venv/bin/python benchmarks/tta_latency.py --checkpoint models/demo-tiny/final
Needs a trained checkpoint (predictions must parse, so that there are prediction ids to report on).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def sim_request(category: str, seed: int):
    from manipllm.srv import PredictPose
    from manipllm_ros.images import depth_fields, rgb_fields
    from manipllm_ros.sim.objects import generate_object
    from manipllm_ros.sim.world import World

    obj = generate_object(category, seed)
    world = World(obj, seed=seed)
    obs = world.observe()
    world.close()
    req = PredictPose.Request(instruction=obj.meta.instruction, chain_of_thought=False)
    for k, v in rgb_fields(obs.rgb).items():
        setattr(req.rgb, k, v)
    for k, v in depth_fields(obs.depth).items():
        setattr(req.depth, k, v)
    req.camera_info.k = obs.intrinsics.K.reshape(-1).tolist()
    return req


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--out", default=str(Path(__file__).with_name("tta_latency.md")))
    args = ap.parse_args()

    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor

    from manipllm.srv import PredictPose, ReportOutcome
    from manipllm_ros.processes import ProcessGroup

    tmp = Path(tempfile.mkdtemp(prefix="tta_bench_"))
    requests = [sim_request(c, 5 * (100 + i)) for i, c in
                enumerate(["microwave", "cabinet_drawer", "storage_cabinet_door", "refrigerator"] * 4)]
    with ProcessGroup(tmp / "logs") as group:
        proc = group.start("pose_service", [sys.executable, "-m", "manipllm_ros.nodes.pose_service_node",
                                            "--ros-args", "-p", f"model_path:={Path(args.checkpoint).resolve()}",
                                            "-p", f"tta_state_dir:={tmp / 'tta'}"])
        group.wait_for(proc, "active: /predict_pose is serving", timeout=300)
        ctx = Context()
        rclpy.init(context=ctx)
        node = rclpy.create_node("tta_bench", context=ctx)
        ex = MultiThreadedExecutor(num_threads=4, context=ctx)
        ex.add_node(node)
        spinner = threading.Thread(target=ex.spin, daemon=True)
        spinner.start()
        predict = node.create_client(PredictPose, "predict_pose")
        report = node.create_client(ReportOutcome, "report_outcome")
        predict.wait_for_service(timeout_sec=60)
        report.wait_for_service(timeout_sec=60)

        def call(client, req):
            t0 = time.perf_counter()
            res = client.call(req, timeout_sec=600)
            return res, (time.perf_counter() - t0) * 1e3

        ids, alone = [], []
        for req in requests:
            res, ms = call(predict, req)
            alone.append(ms)
            if res.success:
                ids.append(res.prediction_id)
        step_ms, during, versions = [], [], []
        for i, pid in enumerate(ids[: args.steps]):
            box = {}
            t = threading.Thread(target=lambda: box.setdefault("r", call(report, ReportOutcome.Request(
                prediction_id=pid, success=bool(i % 2)))))
            t.start()
            time.sleep(0.005)  # the prediction arrives just after the update started
            _, ms = call(predict, requests[i])
            t.join()
            rres, rms = box["r"]
            if rres.updated:
                step_ms.append(rms)
                during.append(ms)
                versions.append(rres.adapter_version)
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)

    lines = ["# Test-time adaptation step and its effect on /predict_pose", "",
             f"Checkpoint `{args.checkpoint}`, pose service as its own process, client in another; 640x480 RGB-D "
             "requests of simulated objects, direct mode; 2-core CPU machine.", "",
             f"- predictions that parsed (have an id to report on): {len(ids)}/{len(requests)}",
             f"- TTA updates measured: {len(step_ms)} (adapter versions {versions[:1]}..{versions[-1:]})"]
    if step_ms:
        lines += ["", "| measure | median ms | max ms |", "|---|---|---|",
                  f"| /report_outcome round trip (one V-Adapter step + persist) | {statistics.median(step_ms):.0f} | "
                  f"{max(step_ms):.0f} |",
                  f"| /predict_pose alone | {statistics.median(alone):.0f} | {max(alone):.0f} |",
                  f"| /predict_pose sent while a TTA step runs | {statistics.median(during):.0f} | {max(during):.0f} |",
                  "", "A prediction that arrives during an update waits for it (one model, one lock): its latency "
                  "grows by at most one step, and it is then served by the updated adapter."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
