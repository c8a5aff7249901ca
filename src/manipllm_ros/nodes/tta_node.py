"""The test-time-adaptation node: outcomes in, V-Adapter steps out. It runs inside the pose service process and
shares its model (see manipllm_ros.tta for why)."""

from __future__ import annotations

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from std_srvs.srv import Trigger

from manipllm.msg import ManipulationOutcome
from manipllm.srv import ReportOutcome
from manipllm_ros.tta import TestTimeAdapter

OUTCOME_TOPIC = "/manipllm/outcome"


class TTANode(Node):
    def __init__(self, adapter: TestTimeAdapter) -> None:
        super().__init__("tta")
        self.adapter = adapter
        group = MutuallyExclusiveCallbackGroup()  # one update at a time, beside the prediction service
        self.create_service(ReportOutcome, "report_outcome", self._on_report, callback_group=group)
        self.create_service(Trigger, "reset_adapter", self._on_reset, callback_group=group)
        self.create_subscription(ManipulationOutcome, OUTCOME_TOPIC, self._on_outcome, 10, callback_group=group)
        if adapter.resume():
            self.get_logger().info(f"resumed adapted V-Adapter version {adapter.service.adapter_version} "
                                   f"from {adapter.state_dir}")
        self.get_logger().info(f"tta ready (enabled={adapter.cfg.enabled}, state in {adapter.state_dir})")

    def _log(self, pid: int, result) -> None:
        if result.updated:
            self.get_logger().info(f"prediction {pid}: V-Adapter step, loss {result.loss:.4f}, "
                                   f"adapter version {result.adapter_version}")
        elif result.error:
            self.get_logger().warning(f"prediction {pid}: no update: {result.error}")

    def _on_outcome(self, msg: ManipulationOutcome) -> None:
        if msg.prediction_id:
            self._log(msg.prediction_id, self.adapter.report(msg.prediction_id, msg.success))

    def _on_report(self, req: ReportOutcome.Request, res: ReportOutcome.Response) -> ReportOutcome.Response:
        result = self.adapter.report(req.prediction_id, req.success)
        self._log(req.prediction_id, result)
        res.accepted, res.updated, res.loss = result.accepted, result.updated, result.loss
        res.adapter_version, res.error = result.adapter_version, result.error
        return res

    def _on_reset(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        version = self.adapter.reset()
        res.success, res.message = True, f"V-Adapter reset to its start state (adapter version {version})"
        self.get_logger().info(res.message)
        return res
