"""Simulated world and training data (MuJoCo): procedural articulated objects, camera, suction gripper, dataset.

MuJoCo renders offscreen through EGL on this CPU-only machine; set the backend before anything imports mujoco.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
