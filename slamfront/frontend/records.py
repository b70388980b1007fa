"""Records the tracker's parts hand each other within one frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from slamfront.frontend.pose import PoseEstimate
from slamfront.types import (
    CameraModel,
    Features,
    Frame,
    FrameIssue,
    Keyframe,
    Matches,
    TrackingState,
)


@dataclass(frozen=True, eq=False)
class FrameInput:
    """One frame as the tracker sees it: its features (keypoints in undistorted pinhole
    pixels), the sensing mode it is tracked in, and its grey image for sub-pixel alignment
    (None when alignment is off or the keypoints are not in this image's pixels)."""

    frame: Frame
    features: Features
    mode: str
    """"rgbd", "stereo" or "mono"."""
    grey: np.ndarray | None
    start_s: float
    """``time.perf_counter()`` when tracking of the frame began."""

    @property
    def camera(self) -> CameraModel:
        return self.frame.camera

    @property
    def mono(self) -> bool:
        return self.mode == "mono"


@dataclass(frozen=True, eq=False)
class MatchAttempt:
    """What the matcher did for a frame: its matches (None: it did not run), the time it
    took and the keyframe it matched against."""

    matches: Matches | None = None
    match_ms: float = 0.0
    keyframe_id: int | None = None

    def then(self, other: MatchAttempt) -> MatchAttempt:
        """This attempt followed by ``other``: other's matches, both times."""
        if other.matches is None:
            return MatchAttempt(self.matches, self.match_ms + other.match_ms, self.keyframe_id)
        return MatchAttempt(other.matches, self.match_ms + other.match_ms, other.keyframe_id)


@dataclass(frozen=True, eq=False)
class Correspondences:
    """2-D/3-D pairs for one frame: current keypoint index, landmark id, world point, the
    measured pixel (where image alignment put the landmark, or the keypoint where alignment
    failed or is off) and whether alignment measured it."""

    keypoint_index: np.ndarray
    landmark_ids: np.ndarray
    points_world: np.ndarray
    pixels: np.ndarray
    aligned: np.ndarray
    """(N,) bool: the pixel comes from sub-pixel alignment, not from the detector."""

    @staticmethod
    def empty() -> Correspondences:
        return Correspondences(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, 3)),
            np.zeros((0, 2)),
            np.zeros(0, bool),
        )

    def __len__(self) -> int:
        return int(self.keypoint_index.size)

    def select(self, mask: np.ndarray) -> Correspondences:
        return Correspondences(
            self.keypoint_index[mask],
            self.landmark_ids[mask],
            self.points_world[mask],
            self.pixels[mask],
            self.aligned[mask],
        )

    def concat(self, other: Correspondences) -> Correspondences:
        return Correspondences(
            np.concatenate([self.keypoint_index, other.keypoint_index]),
            np.concatenate([self.landmark_ids, other.landmark_ids]),
            np.concatenate([self.points_world, other.points_world]),
            np.concatenate([self.pixels, other.pixels]),
            np.concatenate([self.aligned, other.aligned]),
        )


@dataclass(frozen=True, eq=False)
class PoseFit:
    """A pose estimate and the correspondences it was solved on (its inliers only)."""

    corr: Correspondences
    estimate: PoseEstimate

    @staticmethod
    def inliers_of(corr: Correspondences, estimate: PoseEstimate) -> PoseFit:
        """The estimate and the correspondences restricted to the estimate's inliers."""
        mask = estimate.inliers
        return PoseFit(
            corr.select(mask),
            PoseEstimate(
                estimate.cam_from_world,
                mask[mask],
                estimate.residuals_px[mask],
                estimate.information,
            ),
        )

    @property
    def num_inliers(self) -> int:
        return self.estimate.num_inliers


@dataclass(frozen=True, eq=False)
class Outcome:
    """What tracking made of a frame, before it becomes a :class:`TrackResult`."""

    state: TrackingState
    attempt: MatchAttempt = field(default_factory=MatchAttempt)
    world_from_cam: np.ndarray | None = None
    fit: PoseFit | None = None
    keyframe: Keyframe | None = None
    issue: FrameIssue | None = None
