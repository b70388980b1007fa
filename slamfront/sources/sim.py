"""``sim[:NAME]``: the synthetic rig (rendered RGB-D / stereo / mono frames with IMU and exact
ground truth). NAME picks the trajectory (``sim.trajectory``); everything else comes from
the ``sim`` config section. See :mod:`slamfront.sim`.

World frame: metres, z up, gravity (0, 0, -9.81) m/s², floor at z = 0. Camera frame: x right,
y down, z forward. Stamps start at 0 and advance by 1/fps. ``groundtruth()`` gives
``world_from_cam`` of the left/colour camera at every yielded frame (blank frames included).
``source.start_frame``, ``stride``, ``max_frames`` and ``realtime`` apply as for recorded
sequences.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from slamfront.errors import SourceError
from slamfront.sim.rig import SimRig
from slamfront.sources._files import IndexedSource
from slamfront.types import Frame, Trajectory

if TYPE_CHECKING:
    from slamfront.config import Config
    from slamfront.sim.scene import Scene
    from slamfront.sim.trajectories import TrajectoryModel


class SimSource(IndexedSource):
    """Frames of the synthetic rig. ``scene`` may be passed in to reuse an already built one
    (it must match the config's scene and seed)."""

    name = "sim"

    @classmethod
    def from_spec(cls, scheme: str, rest: str, config: Config) -> SimSource:
        trajectory = rest.strip()
        if trajectory:
            config = dataclasses.replace(
                config, sim=dataclasses.replace(config.sim, trajectory=trajectory)
            )
        return cls(config)

    def __init__(self, config: Config, scene: Scene | None = None) -> None:
        try:
            self.rig: SimRig = SimRig(config.sim, scene)
        except ValueError as exc:
            raise SourceError(f"sim:{config.sim.trajectory}: {exc}") from exc
        stamps = np.array([self.rig.stamp_ns(i) for i in range(self.rig.num_frames)], np.int64)
        super().__init__(stamps, config.source)

    @property
    def trajectory(self) -> TrajectoryModel:
        """The closed-form trajectory (poses at any time)."""
        return self.rig.trajectory

    @property
    def frame_indices(self) -> list[int]:
        """Indices (into the full sequence) of the frames this source yields."""
        return list(self._selected)

    def _read(self, index: int, previous_stamp_ns: int | None) -> Frame | None:
        return self.rig.frame(index, previous_stamp_ns)

    def groundtruth(self) -> Trajectory:
        stamps = self._stamps_ns[self._selected]
        poses = self.rig.trajectory.world_from_cam(stamps * 1e-9)
        return Trajectory(stamps.copy(), poses.reshape(-1, 4, 4))

    @property
    def path_length_m(self) -> float:
        """Length of the camera path from the first to the last yielded frame, metres
        (sampled at the frame rate, whatever the stride)."""
        if not self._selected:
            return 0.0
        first, last = self._selected[0], self._selected[-1]
        stamps = self._stamps_ns[first : last + 1]
        positions = self.rig.trajectory.world_from_cam(stamps * 1e-9).reshape(-1, 4, 4)[:, :3, 3]
        return float(np.linalg.norm(np.diff(positions, axis=0), axis=1).sum())
