"""Test-time adaptation: the outcome of a real attempt supervises the yes/no affordance question for the point
the model chose, and one optimiser step updates the V-Adapter only (paper, TTA).

It shares the PoseService's model and lock, so an update lands between two predictions (the next prediction uses
the new adapter: a hot swap with no copy of the weights), and persists the adapters after every update so that a
restart resumes the adapted state. Why one process: the model is the large part (a 3B base is ~7 GB in bf16);
handing weights to a second process would double that memory and add a transfer per update, while the update
itself (one backward pass through the vision tower) is short compared with a manipulation attempt.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from manipllm_ros.config import TTAConfig
from manipllm_ros.pose_service import PoseService


@dataclass
class TTAResult:
    accepted: bool
    updated: bool = False
    loss: float = math.nan
    adapter_version: int = 0
    error: str = ""


class TestTimeAdapter:
    __test__ = False  # not a pytest test class

    def __init__(self, service: PoseService, cfg: TTAConfig) -> None:
        self.service = service
        self.cfg = cfg
        self.state_dir = Path(cfg.state_dir).expanduser()
        self._done: set[int] = set()
        self._lock = threading.Lock()

    @property
    def predictor(self):
        return self.service.predictor

    # -- persistence ----------------------------------------------------------------------------------------
    def _current(self) -> Path:
        return self.state_dir / "current"

    def resume(self) -> bool:
        """Load the last persisted adapters (and version) if there are any; True if it did."""
        cur = self._current()
        meta = cur / "tta.json"
        if not meta.is_file():
            return False
        with self.service.model_lock():
            # Into the live model without making it the reset target: reset() returns to the start adapters.
            self.predictor.vlm.load_adapters(cur)
            self.service.adapter_version = int(json.loads(meta.read_text())["adapter_version"])
        return True

    def _persist(self) -> None:
        tmp = self.state_dir / "current.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.predictor.save_adapters(tmp)
        (tmp / "tta.json").write_text(json.dumps({"adapter_version": self.service.adapter_version}))
        old = self.state_dir / "current.old"
        shutil.rmtree(old, ignore_errors=True)
        if self._current().exists():
            self._current().rename(old)
        tmp.rename(self._current())
        shutil.rmtree(old, ignore_errors=True)

    # -- updates --------------------------------------------------------------------------------------------
    def report(self, prediction_id: int, success: bool) -> TTAResult:
        """One outcome -> at most one V-Adapter step for that prediction."""
        item = self.service.recall(prediction_id)
        if item is None:
            return TTAResult(False, adapter_version=self.service.adapter_version,
                             error=f"unknown prediction id {prediction_id} (never made, or older than the last "
                                   f"{self.service.cfg.remember_predictions} predictions)")
        with self._lock:
            if prediction_id in self._done:
                return TTAResult(True, adapter_version=self.service.adapter_version,
                                 error=f"prediction {prediction_id} was already used for adaptation")
            if not self.cfg.enabled:
                return TTAResult(True, adapter_version=self.service.adapter_version, error="tta is disabled")
            self._done.add(prediction_id)
        with self.service.model_lock():
            try:
                loss = self.predictor.tta_step(item.frame.rgb, item.instruction, item.pixel, bool(success),
                                               depth=item.frame.depth, K=item.frame.K)
            except ValueError as exc:  # e.g. a contact moved outside the object window the model looks at
                return TTAResult(False, adapter_version=self.service.adapter_version,
                                 error=f"no adaptation step for prediction {prediction_id}: {exc}")
            self.service.adapter_version += 1
            self._persist()
            version = self.service.adapter_version
        return TTAResult(True, updated=True, loss=float(loss), adapter_version=version)

    def reset(self) -> int:
        """Back to the adapters the service was started with; persisted, so a restart stays reset."""
        with self.service.model_lock():
            self.predictor.reset_adapters()
            self.service.adapter_version += 1
            self._persist()
            return self.service.adapter_version
