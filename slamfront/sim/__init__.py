"""The synthetic rig behind ``sim:NAME`` sources: scenes, textures, trajectories, rendering, IMU.

Only numpy and OpenCV are needed. Entry points: :class:`~slamfront.sim.rig.SimRig` (frames
by index), :func:`~slamfront.sim.scene.build_scene`,
:func:`~slamfront.sim.trajectories.get_trajectory`. Conventions: world frame in metres, z up,
gravity (0, 0, -9.81); camera frame x right, y down, z forward.
"""

from __future__ import annotations

from slamfront.sim.rig import BODY_FROM_CAM, SimRig, sim_camera
from slamfront.sim.scene import SCENE_NAMES, Scene, build_scene
from slamfront.sim.trajectories import TRAJECTORY_NAMES, TrajectoryModel, get_trajectory

__all__ = [
    "BODY_FROM_CAM",
    "SCENE_NAMES",
    "TRAJECTORY_NAMES",
    "Scene",
    "SimRig",
    "TrajectoryModel",
    "build_scene",
    "get_trajectory",
    "sim_camera",
]
