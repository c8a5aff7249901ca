"""The pose service's `contact` setting reaches the model: 'grounding' asks the grounding question, and a
checkpoint that never learned it gets an error response, not a pose at the pose answer's pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from manipllm_ros.config import FramesConfig, PoseServiceConfig
from manipllm_ros.pose_service import PoseService, RGBDFrame

REPO = Path(__file__).resolve().parents[1]


def test_contact_setting_selects_the_answer_the_pixel_comes_from(one_torch_thread):
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm
    from manipllm_ros.model.policy import PosePredictor

    obj, arm = build_arm(EpisodeSpec("microwave", 5, 0))
    with arm:
        obs = arm.world.observe()
    frame = RGBDFrame(obs.rgb, np.asarray(obs.depth, np.float32), np.asarray(obs.intrinsics.K, float))
    predictor = PosePredictor.load(REPO / "models" / "demo-tiny", device="cpu")  # trained without grounding
    pose = PoseService(predictor, PoseServiceConfig(), FramesConfig()).predict(obj.meta.instruction, frame, False)
    assert pose.success, pose.error
    grounded = PoseService(predictor, PoseServiceConfig(contact="grounding"), FramesConfig())
    res = grounded.predict(obj.meta.instruction, frame, False)
    assert not res.success and "grounding turn" in res.error and res.prediction_id == 0
