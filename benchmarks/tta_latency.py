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
import time
from pathlib import Path



def sim_request(category: str, seed: int):
    from manipllm_ros.nodes.client import predict_request
    from manipllm_ros.sim.objects import generate_object
    from manipllm_ros.sim.world import World

    obj = generate_object(category, seed)
    world = World(obj, seed=seed)
    obs = world.observe()
    world.close()
    return predict_request(obs.rgb, obs.depth, obs.intrinsics.K, obj.meta.instruction, chain_of_thought=False)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--out", default=str(Path(__file__).with_name("tta_latency.md")))
    args = ap.parse_args()

    from manipllm_ros.nodes.client import PoseServiceClient

    tmp = Path(tempfile.mkdtemp(prefix="tta_bench_"))
    requests = [sim_request(c, 5 * (100 + i)) for i, c in
                enumerate(["microwave", "cabinet_drawer", "storage_cabinet_door", "refrigerator"] * 4)]
    with PoseServiceClient(args.checkpoint, tmp / "logs") as service:
        ids, alone = [], []
        for req in requests:
            res, ms = service.predict(req)
            alone.append(ms)
            if res.success:
                ids.append(res.prediction_id)
        # The update is sent first and the prediction right behind it: both are queued on the node, which
        # serves them with one model and one lock, so the prediction waits for the step.
        step_ms, during, versions = [], [], []
        for i, pid in enumerate(ids[: args.steps]):
            from manipllm.srv import ReportOutcome

            t0 = time.perf_counter()
            rep_future = service._report.call_async(ReportOutcome.Request(prediction_id=pid, success=bool(i % 2)))
            pred_future = service._predict.call_async(requests[i])
            t_rep = t_pred = None
            while t_rep is None or t_pred is None:
                service.executor.spin_once(timeout_sec=0.005)
                if t_rep is None and rep_future.done():
                    t_rep = (time.perf_counter() - t0) * 1e3
                if t_pred is None and pred_future.done():
                    t_pred = (time.perf_counter() - t0) * 1e3
            rres = rep_future.result()
            if rres.updated:
                step_ms.append(t_rep)
                during.append(t_pred)
                versions.append(rres.adapter_version)

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
