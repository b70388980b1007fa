"""The tracker's IMU aid: which monocular maps it treats as metric."""

from __future__ import annotations

import numpy as np

from slamfront.config import ImuConfig
from slamfront.frontend.imu_aid import ImuAid
from slamfront.frontend.records import FrameInput
from slamfront.types import CameraModel, Features, Frame, ImuSample

CAMERA = CameraModel(64, 48, 50.0, 50.0, 32.0, 24.0)


def _mono_input(*, with_imu: bool) -> FrameInput:
    imu = (ImuSample(0, (0.0, 0.0, 0.0), (0.0, 0.0, 9.81)),) if with_imu else ()
    frame = Frame(
        0,
        0,
        np.zeros((48, 64), np.uint8),
        CAMERA,
        imu=imu,
        body_from_cam=np.eye(4) if with_imu else None,
    )
    features = Features(
        np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros((0, 8)), (64, 48)
    )
    return FrameInput(frame, features, "mono", None, 0.0)


def test_a_monocular_map_without_imu_is_not_called_metric() -> None:
    # the IMU is on by default ("auto"); a source without IMU samples must not make the map
    # look metric to the run's notes and to eval's choice of alignment
    aid = ImuAid(ImuConfig())
    inp = _mono_input(with_imu=False)
    aid.map_started(inp)
    assert aid.metric is None
    assert not aid.holds_back(inp)
