"""A peer process for the interface test: echoes every manipllm message, answers both services and the action.

It holds no manipllm logic on purpose: it proves that the colcon-built interfaces travel between processes over
real DDS, field by field. The real nodes are tested in their own tests.
"""

import sys

import rclpy
from rclpy.action import ActionServer
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from manipllm.action import Manipulate
from manipllm.msg import AffordancePoint, AiaProbe, ContactPose, Latency, ManipulationOutcome, Reasoning
from manipllm.srv import PredictPose, ReportOutcome

MESSAGES = [AffordancePoint, AiaProbe, ContactPose, Latency, ManipulationOutcome, Reasoning]


class InterfacePeer(Node):
    def __init__(self) -> None:
        super().__init__("interface_peer")
        self._pubs = {}
        for cls in MESSAGES:
            name = cls.__name__
            self._pubs[name] = self.create_publisher(cls, f"echo/{name}", 10)
            self.create_subscription(cls, f"in/{name}", lambda msg, n=name: self._pubs[n].publish(msg), 10)
        self.create_service(PredictPose, "predict_pose", self.predict)
        self.create_service(ReportOutcome, "report_outcome", self.report)
        ActionServer(self, Manipulate, "manipulate", self.manipulate)
        self.get_logger().info("ready")

    def predict(self, req: PredictPose.Request, res: PredictPose.Response) -> PredictPose.Response:
        # Echo the request into the response so that the client can check every request field arrived.
        res.success = True
        res.error = f"{req.instruction}|{req.rgb.width}x{req.rgb.height}|{req.depth.encoding}|{req.camera_info.k[0]}"
        res.pose.u, res.pose.v = req.rgb.width // 2, req.rgb.height // 2
        res.pose.header.frame_id = req.camera_info.header.frame_id
        res.reasoning.raw_answer = bytes(req.rgb.data[:4]).hex()
        res.prediction_id = 42 if req.chain_of_thought else 43
        res.adapter_version = 7
        res.latency.total_ms = float(len(req.depth.data))
        return res

    def report(self, req: ReportOutcome.Request, res: ReportOutcome.Response) -> ReportOutcome.Response:
        res.accepted = req.prediction_id == 42
        res.updated = req.success
        res.loss = req.outcome.ee_distance
        res.adapter_version = 8
        res.error = req.outcome.failure_reason
        return res

    def manipulate(self, handle):
        fb = Manipulate.Feedback()
        fb.phase, fb.iteration, fb.distance_moved = "probe", 1, 0.05
        fb.probes = [AiaProbe(iteration=1, index=i, chosen=i == 2) for i in range(3)]
        handle.publish_feedback(fb)
        handle.succeed()
        result = Manipulate.Result()
        result.outcome.prediction_id = handle.request.prediction_id
        result.outcome.success = handle.request.use_aia
        result.outcome.failure_reason = handle.request.instruction
        result.outcome.probes = fb.probes
        return result


def main() -> int:
    rclpy.init(args=sys.argv)
    node = InterfacePeer()
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
