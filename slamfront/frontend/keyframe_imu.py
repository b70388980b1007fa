"""The inertial links between consecutive keyframes, for the back end's IMU factors: every IMU
sample from one keyframe to the next of the same unbroken chain (each frame between them has
a pose in the same map, and the samples have no gap), with the rig's extrinsic, its noise
model (the source's calibration, else ``tracker.imu``) and the tracker's gravity."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from slamfront.config import ImuConfig
from slamfront.frontend.imu_preintegration import GRAVITY_M_S2
from slamfront.types import Frame, ImuNoise, ImuSample, Keyframe, KeyframeImu, TrackResult


class KeyframeImuLinks:
    """Collects the samples between keyframes; ``step`` attaches a :class:`KeyframeImu` to
    the keyframes a frame made when the chain from the previous one holds."""

    def __init__(self, config: ImuConfig) -> None:
        self._config = config
        self._default_noise = ImuNoise(
            config.gyro_noise_density,
            config.gyro_random_walk,
            config.accel_noise_density,
            config.accel_random_walk,
            200.0,
        )
        self._samples: list[ImuSample] = []
        self._anchor: tuple[int, int, int] | None = None  # keyframe id, stamp_ns, map id

    def step(self, frame: Frame, result: TrackResult, keyframes: list[Keyframe]) -> list[Keyframe]:
        """``keyframes``: the ones this frame made (in order); returned with their links."""
        if self._config.enabled is False:
            return keyframes
        self._take(frame.imu)
        anchor = self._anchor
        if result.world_from_cam is None or (anchor is not None and anchor[2] != result.map_id):
            self._anchor = None
            anchor = None
        out = []
        for keyframe in keyframes:
            link = None
            if (
                anchor is not None
                and result.gravity_world is not None
                and frame.body_from_cam is not None
                and self._samples
            ):
                link = KeyframeImu(
                    previous_keyframe_id=anchor[0],
                    previous_stamp_ns=anchor[1],
                    stamp_ns=keyframe.stamp_ns,
                    samples=tuple(self._samples),
                    body_from_cam=frame.body_from_cam,
                    noise=frame.imu_noise or self._default_noise,
                    gravity_world=np.asarray(result.gravity_world, np.float64) * GRAVITY_M_S2,
                    time_offset_s=self._config.time_offset_s,
                )
            out.append(replace(keyframe, imu=link) if link is not None else keyframe)
            anchor = (keyframe.keyframe_id, keyframe.stamp_ns, keyframe.map_id)
            self._samples = self._samples[-1:]  # the one at or before the keyframe
        self._anchor = anchor
        return out

    def _take(self, samples: tuple[ImuSample, ...]) -> None:
        """Append in order; a gap or a sample out of order breaks the chain."""
        max_gap_ns = self._config.max_sample_gap_s * 1e9
        for sample in samples:
            last = self._samples[-1].stamp_ns if self._samples else None
            if last is not None and (
                sample.stamp_ns <= last or sample.stamp_ns - last > max_gap_ns
            ):
                self._anchor = None
                self._samples = []
            self._samples.append(sample)
