"""Records passed between stages: frozen, typed, with shapes and units on every field.

Conventions (see README): poses are ``a_from_b`` 4x4 float64 matrices mapping points in frame
``b`` to frame ``a``; the camera frame is x right, y down, z forward (OpenCV / Rerun RDF);
times are ``stamp_ns`` integers from the sensor clock; images are uint8, depth float32 metres
with 0 meaning invalid; keypoints are pixel coordinates of the image the caller passed in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

DistortionModel = Literal["none", "radtan", "equidistant"]


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics with optional lens distortion, and the shutter's readout.

    ``radtan``: OpenCV's k1, k2, p1, p2[, k3]; ``equidistant``: the fisheye k1..k4.
    """

    width_px: int
    height_px: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: DistortionModel = "none"
    dist_coeffs: tuple[float, ...] = ()
    readout_s: float = 0.0
    """Rolling shutter: seconds from the exposure of the first row to that of the last, rows
    evenly spaced in between and the frame's stamp at the middle row; 0 = global shutter."""

    def __post_init__(self) -> None:
        if not self.readout_s >= 0.0:
            raise ValueError(f"readout must be >= 0 s, got {self.readout_s}")
        if self.width_px <= 0 or self.height_px <= 0:
            raise ValueError(f"camera size must be positive, got {self.width_px}x{self.height_px}")
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"focal lengths must be positive, got fx={self.fx} fy={self.fy}")
        counts = {"none": (0,), "radtan": (4, 5, 8), "equidistant": (4,)}
        if self.distortion not in counts:
            raise ValueError(
                f"unknown distortion model {self.distortion!r} (none, radtan or equidistant)"
            )
        expected = counts[self.distortion]
        if self.distortion == "none" and self.dist_coeffs and any(self.dist_coeffs):
            raise ValueError("distortion 'none' takes no coefficients")
        if self.distortion != "none" and len(self.dist_coeffs) not in expected:
            raise ValueError(
                f"{self.distortion} distortion takes {expected} coefficients, "
                f"got {len(self.dist_coeffs)}"
            )

    @property
    def K(self) -> np.ndarray:
        """3x3 float64 intrinsic matrix."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64
        )

    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return (self.width_px, self.height_px)

    @property
    def is_distorted(self) -> bool:
        return self.distortion != "none" and any(c != 0.0 for c in self.dist_coeffs)


@dataclass(frozen=True, eq=False)
class StereoRig:
    """Two cameras and the transform between them. ``right_from_left`` is 4x4 float64."""

    left: CameraModel
    right: CameraModel
    right_from_left: np.ndarray
    rectified: bool = False

    @property
    def baseline_m(self) -> float:
        return float(np.linalg.norm(self.right_from_left[:3, 3]))


@dataclass(frozen=True)
class ImuSample:
    """One IMU reading in the IMU (body) frame."""

    stamp_ns: int
    gyro_rad_s: tuple[float, float, float]
    accel_m_s2: tuple[float, float, float]


@dataclass(frozen=True)
class ImuNoise:
    """An IMU's noise model as calibrations state it (Kalibr / EuRoC ``sensor.yaml``):
    white-noise densities and bias random walks, continuous time."""

    gyro_noise_density: float
    """rad/s/sqrt(Hz)."""
    gyro_random_walk: float
    """rad/s^2/sqrt(Hz)."""
    accel_noise_density: float
    """m/s^2/sqrt(Hz)."""
    accel_random_walk: float
    """m/s^3/sqrt(Hz)."""
    rate_hz: float
    """Nominal sample rate."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One time step of a sensor rig.

    ``image`` is the colour/grey image (the left one for stereo); ``depth_m`` (HxW float32
    metres, 0 = invalid) is registered to it; ``image_right`` with ``stereo`` describes a stereo
    pair (rectified when ``stereo.rectified``). ``imu`` holds the samples after the previous
    frame up to and including this frame's stamp. ``body_from_cam`` is the IMU-camera
    extrinsic (4x4) when the rig has an IMU, ``imu_noise`` its calibrated noise model when
    the source knows it.
    """

    index: int
    stamp_ns: int
    image: np.ndarray
    camera: CameraModel
    depth_m: np.ndarray | None = None
    image_right: np.ndarray | None = None
    stereo: StereoRig | None = None
    imu: tuple[ImuSample, ...] = ()
    body_from_cam: np.ndarray | None = None
    source_path: str = ""
    imu_noise: ImuNoise | None = None

    @property
    def stamp_s(self) -> float:
        return self.stamp_ns * 1e-9


@dataclass(frozen=True, eq=False)
class Features:
    """Keypoints of one image.

    keypoints: (N, 2) float32 pixel coordinates (x, y) of the image passed to the extractor;
    scores: (N,) float32 detection scores; descriptors: (N, D) float32 (or uint8 for binary
    descriptors such as ORB); image_size: (width, height) of that image in pixels.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    descriptors: np.ndarray
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def subset(self, indices: np.ndarray) -> Features:
        """The features at ``indices`` (an index array or boolean mask)."""
        return Features(
            keypoints=self.keypoints[indices],
            scores=self.scores[indices],
            descriptors=self.descriptors[indices],
            image_size=self.image_size,
        )

    def strongest(self, limit: int | None, allowed: np.ndarray | None = None) -> np.ndarray:
        """Sorted indices of the ``limit`` highest-scoring features among the ``allowed``
        ones (a boolean mask; all when None), or of all allowed ones when ``limit`` is None
        or not smaller."""
        index = np.flatnonzero(allowed) if allowed is not None else np.arange(len(self))
        if limit is not None and index.size > limit:
            keep = np.argpartition(-self.scores[index], limit - 1)[:limit]
            index = np.sort(index[keep])
        return index


@dataclass(frozen=True, eq=False)
class Matches:
    """Correspondences between two feature sets.

    indices: (M, 2) int64 rows (i0, i1) into the first / second ``Features``;
    scores: (M,) float32 match confidences in [0, 1];
    layers_run: matcher layers evaluated (0 for non-iterative matchers);
    points_kept: per layer, points of both images still active after pruning;
    time_ms: wall time of the call.
    """

    indices: np.ndarray
    scores: np.ndarray
    layers_run: int = 0
    points_kept: tuple[int, ...] = ()
    time_ms: float = 0.0

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @staticmethod
    def empty() -> Matches:
        return Matches(np.zeros((0, 2), np.int64), np.zeros((0,), np.float32))


class TrackingState(enum.Enum):
    INITIALIZING = "initializing"
    OK = "ok"
    LOST = "lost"
    IMU_PROPAGATED = "imu_propagated"
    """Vision failed on this frame; its pose is the IMU's propagation from the last tracked
    one (for a bounded time). Never counted as visually tracked."""


class FrameIssue(enum.Enum):
    """Why a frame got no pose (the value is the short name written to ``stats.json``)."""

    FEW_FEATURES = "few_features"
    """Too few keypoints: a blank, dark, overexposed or textureless image."""
    NO_DEPTH = "no_depth"
    """Too little valid depth to start a map (RGB-D holes, no stereo pairs)."""
    MONO_PARALLAX = "mono_parallax"
    """Monocular start: waiting for enough parallax or matches between two views."""
    SHUTTER_RATE = "shutter_rate"
    """Rolling shutter without a gyro: the first frame waits for the next, whose motion since
    it tells how fast the camera turns."""
    NOT_IN_MAP = "not_in_map"
    """Not yet placed in the loaded map."""
    FEW_MATCHES = "few_matches"
    """Too few correspondences with the map."""
    FEW_INLIERS = "few_inliers"
    """Correspondences found, but too few agree on one pose."""
    MOTION_GATE = "motion_gate"
    """The pose strayed too far from the motion model's prediction."""
    NOT_RELOCALIZED = "not_relocalized"
    """Lost, and no keyframe of any map recognised the view."""
    IMU_SCALE = "imu_scale"
    """Monocular with an IMU: tracked, but the map is held back until the IMU has given it a
    metric scale (too little acceleration so far to measure it)."""


@dataclass(frozen=True)
class StageTimings:
    """Wall time of each stage for one frame, milliseconds."""

    read_ms: float = 0.0
    extract_ms: float = 0.0
    match_ms: float = 0.0
    pose_ms: float = 0.0
    backend_ms: float = 0.0
    sinks_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return (
            self.read_ms
            + self.extract_ms
            + self.match_ms
            + self.pose_ms
            + self.backend_ms
            + self.sinks_ms
        )


@dataclass(frozen=True, eq=False)
class TrackResult:
    """What the tracker made of one frame.

    world_from_cam is None while INITIALIZING or LOST (no pose is invented). ``matches`` are
    the correspondences used for the pose (frame features vs reference keyframe features).
    """

    frame_index: int
    stamp_ns: int
    state: TrackingState
    world_from_cam: np.ndarray | None
    num_features: int = 0
    num_matches: int = 0
    num_inliers: int = 0
    reprojection_rmse_px: float = float("nan")
    is_keyframe: bool = False
    keyframe_id: int | None = None
    reference_keyframe_id: int | None = None
    reference_from_cam: np.ndarray | None = None
    """4x4 pose of this frame in the reference keyframe's camera (None without a pose)."""
    matched_keyframe_id: int | None = None
    """The keyframe ``matches`` were made against (index 0 of the matches)."""
    matches: Matches | None = None
    features: Features | None = None
    timings: StageTimings = field(default_factory=StageTimings)
    landmark_ids: np.ndarray | None = None
    """(M,) int64 the landmarks the pose was solved on (its inliers), or None without a pose."""
    landmark_pixels: np.ndarray | None = None
    """(M, 2) float64 where this frame sees them (undistorted pixels, as aligned)."""
    landmark_keypoints: np.ndarray | None = None
    """(M,) int64 the keypoint of this frame each of them was found at (index into
    ``features``)."""
    landmark_depths_m: np.ndarray | None = None
    """(M,) float32 the depth image's depth at those pixels (0: none; None without one)."""
    issue: FrameIssue | None = None
    """Why the frame has no pose (None when it has one)."""
    map_id: int = 0
    """The map the pose is in: a run starts a new map when it stays lost, and maps merge when
    they meet (their poses then share the older map's frame)."""
    gravity_world: np.ndarray | None = None
    """(3,) unit vector of gravity's direction in the map's world frame, once the IMU is
    initialised (None without an IMU or before)."""


@dataclass(frozen=True, eq=False)
class KeyframeImu:
    """The inertial link of a keyframe to the previous keyframe of its chain: every IMU sample
    after that keyframe's stamp up to this one's (no gap between), and what is needed to
    integrate them."""

    previous_keyframe_id: int
    previous_stamp_ns: int
    stamp_ns: int
    """This keyframe's stamp (the link spans previous_stamp_ns to it, camera clock)."""
    samples: tuple[ImuSample, ...]
    body_from_cam: np.ndarray
    """4x4 IMU (body) from camera."""
    noise: ImuNoise
    gravity_world: np.ndarray
    """(3,) gravity in the map's world frame, m/s^2, as the tracker estimated it."""
    time_offset_s: float = 0.0
    """A frame stamped t was taken at IMU time t + offset."""


@dataclass(frozen=True, eq=False)
class Keyframe:
    """A frame kept for mapping and loop closure. Its keypoints are in the undistorted
    (pinhole) image of ``camera``, as the tracker uses them.

    points_cam_m: (N, 3) float64 3-D position of each keypoint in this camera's frame, NaN
    where unknown (no depth / not triangulated). global_descriptor: (G,) float32 for place
    recognition, or None before it is computed.
    """

    keyframe_id: int
    frame_index: int
    stamp_ns: int
    world_from_cam: np.ndarray
    camera: CameraModel
    features: Features
    points_cam_m: np.ndarray
    global_descriptor: np.ndarray | None = None
    reprojection_rmse_px: float = float("nan")
    """Reprojection RMSE of the tracked pose that made this keyframe."""
    reference_keyframe_id: int | None = None
    """The keyframe this one was tracked against (None for a first or relocalised one)."""
    reference_from_cam: np.ndarray | None = None
    """4x4 pose of this keyframe in ``reference_keyframe_id``'s camera (the odometry)."""
    reference_information: np.ndarray | None = None
    """6x6 information of ``reference_from_cam`` when it was not tracked but verified (the
    first keyframe placed in a saved map); None: the back end derives it from the points."""
    landmark_ids: np.ndarray | None = None
    """(N,) int64 the tracker's landmark of each keypoint, -1 where none."""
    grey: np.ndarray | None = None
    """(H, W) uint8 grey image the keypoints are in, kept for sub-pixel alignment of loop
    correspondences (about 0.3 MB at 640x480); None when alignment is off."""
    depth_m: np.ndarray | None = None
    """(N,) float32 depth of each keypoint as measured (depth image or stereo pair), 0 where
    none; None where not kept (a loaded map)."""
    depth_sigma_m: np.ndarray | None = None
    """(N,) float32 standard deviation of ``depth_m`` (0 where none)."""
    map_id: int = 0
    """The map the keyframe was made in."""
    imu: KeyframeImu | None = None
    """The IMU since the previous keyframe of its chain (None: no inertial link)."""


@dataclass(frozen=True, eq=False)
class MapPlacement:
    """Where a camera is in a saved map: its 4x4 pose in the frame of the map ``map_id``."""

    world_from_cam: np.ndarray
    map_id: int = 0
    keyframe_id: int | None = None
    """The saved keyframe that recognised the view (None: unknown)."""
    keyframe_from_cam: np.ndarray | None = None
    """4x4 pose of the camera in that keyframe's camera, as verified."""
    information: np.ndarray | None = None
    """6x6 information of ``keyframe_from_cam`` (gtsam Pose3 tangent order)."""


@dataclass(frozen=True, eq=False)
class LoopCandidate:
    """A verified loop: ``match_from_query`` is the relative pose (4x4) between the cameras.

    information: 6x6 information of that relative pose (gtsam Pose3 tangent order
    rx, ry, rz, tx, ty, tz; perturbation of the query camera in its own frame), or None.
    """

    query_keyframe_id: int
    match_keyframe_id: int
    similarity: float
    match_from_query: np.ndarray
    num_inliers: int
    inlier_ratio: float
    information: np.ndarray | None = None
    match_keypoints: np.ndarray | None = None
    """(M,) int64 keypoints of the matched keyframe whose 3-D points the pose was fitted on."""
    query_pixels: np.ndarray | None = None
    """(M, 2) float64 where the query keyframe sees those points (undistorted pixels)."""


@dataclass(frozen=True, eq=False)
class OptimizedPoses:
    """Keyframe poses after a pose-graph optimisation. world_from_cam: (K, 4, 4) float64."""

    revision: int
    keyframe_ids: tuple[int, ...]
    world_from_cam: np.ndarray
    num_loops: int = 0
    loop_edges: tuple[tuple[int, int], ...] = ()
    """Accepted loops so far as (query keyframe id, matched keyframe id)."""
    landmark_ids: np.ndarray | None = None
    """(L,) int64 sorted ids of the landmarks placed by the final bundle adjustment (None
    before it)."""
    landmarks_world_m: np.ndarray | None = None
    """(L, 3) float64 their positions."""
    range_baseline_m: float | None = None
    """How the final adjustment weighed a measured depth (the baseline of a virtual stereo
    camera whose disparity has the pixels' noise), for refits on those landmarks."""
    map_ids: tuple[int, ...] = ()
    """The map of each keyframe after merges (empty: all in map 0)."""
    map_merges: tuple[tuple[int, int], ...] = ()
    """Maps joined so far, in order, as (absorbed map, map it joined)."""
    frame_map_ids: np.ndarray | None = None
    """(F,) int64 the map of each pose of ``frame_trajectory`` after merges."""

    def merged_map_of(self, map_id: int) -> int:
        """The map ``map_id`` ended up in after the merges."""
        for absorbed, into in self.map_merges:
            if map_id == absorbed:
                map_id = into
        return map_id

    frame_trajectory: Trajectory | None = None
    """The final pose of every tracked frame, in tracking order: placed on its reference
    keyframe's pose above, then refitted on the adjusted landmarks (the back end's final poses
    only; None in its corrections during a run)."""


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A timed sequence of poses. stamps_ns: (N,) int64; world_from_body: (N, 4, 4) float64."""

    stamps_ns: np.ndarray
    world_from_body: np.ndarray

    def __len__(self) -> int:
        return int(self.stamps_ns.shape[0])

    @property
    def positions_m(self) -> np.ndarray:
        return self.world_from_body[:, :3, 3]
