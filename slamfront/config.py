"""Typed configuration: dataclasses with defaults in code, YAML presets, ``key=value`` overrides.

Loading is strict: an unknown key, a value of the wrong type or out of range is a
:class:`~slamfront.errors.ConfigError` naming the key and the file (with its line) or override.
Presets live in ``configs/<name>.yaml``; a preset may start from another with ``extends: NAME``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from slamfront.errors import ConfigError

Runtime = Literal["auto", "torch", "onnxruntime", "tensorrt"]


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{key}: {message}")


@dataclass(frozen=True)
class ExtractorConfig:
    model: Literal["xfeat", "disk", "superpoint", "orb"] = "xfeat"
    runtime: Runtime = "auto"
    max_keypoints: int = 1024
    detection_threshold: float = 0.05
    nms_radius_px: int = 2
    border_px: int = 4
    subpixel: bool = True
    weights: str | None = None
    """Explicit weights file; None resolves by name (see README "Weights")."""
    onnx_dir: str | None = None
    """Where exported ONNX models are kept; None is ~/.cache/slamfront/onnx."""
    device: Literal["cpu", "cuda"] = "cpu"
    """torch runtime: where the network runs."""
    threads: int = 0
    """onnxruntime: intra-op threads (0 = half of the cores: matching runs at the same time)."""
    engine_dir: str | None = None
    """Where TensorRT engines are kept; None is ~/.cache/slamfront/tensorrt."""
    tensorrt_fp16: bool = True
    tensorrt_min_size_px: tuple[int, ...] = (64, 64)
    """TensorRT optimisation profile, network input (width, height): smallest, usual, largest."""
    tensorrt_opt_size_px: tuple[int, ...] = (640, 480)
    tensorrt_max_size_px: tuple[int, ...] = (1280, 1024)

    def __post_init__(self) -> None:
        _check(self.max_keypoints > 0, "max_keypoints", "must be positive")
        _check(self.nms_radius_px >= 0, "nms_radius_px", "must be >= 0")
        _check(self.border_px >= 0, "border_px", "must be >= 0")
        _check(self.threads >= 0, "threads", "must be >= 0")
        sizes = (self.tensorrt_min_size_px, self.tensorrt_opt_size_px, self.tensorrt_max_size_px)
        _check(
            all(len(s) == 2 and min(s) > 0 for s in sizes),
            "tensorrt_min_size_px",
            "profile sizes are (width, height) pairs of positive integers",
        )
        _check(
            all(a <= b <= c for a, b, c in zip(*sizes, strict=True)),
            "tensorrt_opt_size_px",
            "profile sizes must satisfy min <= opt <= max in width and height",
        )


@dataclass(frozen=True)
class MatcherConfig:
    model: Literal["lightglue", "mnn", "orb_bf"] = "lightglue"
    runtime: Runtime = "auto"
    depth_confidence: float = 0.95
    """Early exit: stop when this share of points is confident (-1 = off)."""
    width_confidence: float = 0.99
    """Pruning: drop points confidently unmatchable at this level (-1 = off)."""
    filter_threshold: float = 0.1
    """Minimum match score."""
    min_cosine: float = 0.8
    """Mutual nearest neighbour: minimum cosine similarity (float descriptors)."""
    ratio: float = 0.9
    """Nearest neighbour ratio test (1.0 = off)."""
    weights: str | None = None
    device: Literal["cpu", "cuda"] = "cpu"
    """torch runtime: where the network runs."""
    threads: int = 0
    """onnxruntime: intra-op threads of the layer and assignment graphs (0 = half of the
    cores: extraction runs at the same time)."""
    onnx_dir: str | None = None
    """Where exported LightGlue graphs are kept; None is ~/.cache/slamfront/onnx."""
    engine_dir: str | None = None
    """Where TensorRT engines are kept; None is ~/.cache/slamfront/tensorrt."""

    def __post_init__(self) -> None:
        for key in ("depth_confidence", "width_confidence"):
            value = getattr(self, key)
            _check(value == -1 or 0.0 < value <= 1.0, key, "must be in (0, 1] or -1 (off)")
        _check(0.0 <= self.filter_threshold < 1.0, "filter_threshold", "must be in [0, 1)")
        _check(0.0 < self.ratio <= 1.0, "ratio", "must be in (0, 1]")
        _check(self.threads >= 0, "threads", "must be >= 0")


@dataclass(frozen=True)
class KeyframeConfig:
    min_tracked_ratio: float = 0.6
    """New keyframe when fewer than this share of the reference's landmarks are tracked."""
    max_translation_ratio: float = 0.095
    """New keyframe when the camera moved farther from the reference than this share of the
    reference keyframe's median landmark depth (scale-free: a room, a car, a monocular map).
    The default is the earlier fixed 0.25 m in the room-sized scenes it was chosen in."""
    max_rotation_deg: float = 15.0
    min_frames_between: int = 1

    def __post_init__(self) -> None:
        _check(0.0 <= self.min_tracked_ratio <= 1.0, "min_tracked_ratio", "must be in [0, 1]")
        _check(self.max_translation_ratio > 0, "max_translation_ratio", "must be positive")
        _check(self.max_rotation_deg > 0, "max_rotation_deg", "must be positive")
        _check(self.min_frames_between >= 0, "min_frames_between", "must be >= 0")


@dataclass(frozen=True)
class DepthConfig:
    """Depth measured at keypoints (RGB-D depth image or stereo pair)."""

    min_m: float = 0.1
    """Nearer measurements are ignored (metres)."""
    max_m: float | None = None
    """Farther measurements are ignored (metres). None: the sensor's own range (for stereo,
    where the disparity falls to ``stereo.min_disparity_px``)."""
    edge_ratio: float = 0.05
    """Keypoints whose 3x3 depth neighbourhood varies more than this share are skipped."""
    rgbd_sigma_m: float = 0.002
    """RGB-D depth noise floor (metres)."""
    rgbd_sigma_quadratic: float = 0.0015
    """RGB-D depth sigma = max(rgbd_sigma_m, rgbd_sigma_quadratic * z^2) (per metre)."""

    def __post_init__(self) -> None:
        _check(self.min_m > 0, "min_m", "must be positive")
        _check(self.max_m is None or self.max_m > self.min_m, "max_m", "must exceed min_m")
        _check(self.edge_ratio > 0, "edge_ratio", "must be positive")
        _check(self.rgbd_sigma_m > 0, "rgbd_sigma_m", "must be positive")
        _check(self.rgbd_sigma_quadratic >= 0, "rgbd_sigma_quadratic", "must be >= 0")


@dataclass(frozen=True)
class StereoConfig:
    max_row_diff_px: float = 1.5
    """Left and right keypoints of a pair lie at most this far apart vertically."""
    disparity_sigma_px: float = 0.5
    """Disparity noise: stereo depth sigma = sigma_px * z^2 / (fx * baseline)."""
    min_disparity_px: float = 1.0
    """Smallest disparity measured (the far end of the stereo range without depth.max_m)."""

    def __post_init__(self) -> None:
        _check(self.max_row_diff_px > 0, "max_row_diff_px", "must be positive")
        _check(self.disparity_sigma_px > 0, "disparity_sigma_px", "must be positive")
        _check(self.min_disparity_px > 0, "min_disparity_px", "must be positive")


@dataclass(frozen=True)
class SearchConfig:
    """Local-map search: window landmarks projected and looked for near their projection."""

    radius_px: float = 6.0
    """Window around each projected landmark."""
    max_distance: float = 0.35
    """Largest descriptor distance (1 - cosine; share of bits for binary), in [0, 2]."""
    ratio: float = 0.9
    """Best over second-best descriptor distance, in (0, 1]."""

    def __post_init__(self) -> None:
        _check(self.radius_px > 0, "radius_px", "must be positive")
        _check(0 < self.max_distance <= 2, "max_distance", "must be in (0, 2]")
        _check(0 < self.ratio <= 1, "ratio", "must be in (0, 1]")


@dataclass(frozen=True)
class MotionConfig:
    """The constant-velocity motion model: tracking from its prediction, and its sanity gate."""

    search_radius_px: float = 12.0
    """Without the matcher (``match_every_frame`` false): search window around each landmark
    projected at the predicted pose."""
    min_share: float = 0.6
    """Without the matcher: the search must find this share of the landmarks the previous
    frame tracked (and at least 2 x min_inliers), else the matcher runs. In [0, 1]."""
    max_jump_share: float = 0.2
    """A pose whose landmarks land farther from where the prediction put them than this share
    of the image diagonal (median over its inliers) is a tracking failure. Applied only while
    the model has a velocity, within ``max_gap_s`` of the last pose. In (0, 1]."""
    max_gap_s: float = 0.25
    """Beyond this time since the last pose the prediction is not trusted (seconds)."""

    def __post_init__(self) -> None:
        _check(self.search_radius_px > 0, "search_radius_px", "must be positive")
        _check(0 <= self.min_share <= 1, "min_share", "must be in [0, 1]")
        _check(0 < self.max_jump_share <= 1, "max_jump_share", "must be in (0, 1]")
        _check(self.max_gap_s > 0, "max_gap_s", "must be positive")


@dataclass(frozen=True)
class ShutterConfig:
    """Rolling-shutter correction of cameras with a readout (``camera.readout_ms``): each
    frame is moved to its global-shutter image by the camera's angular rate, the gyro's when
    frames carry IMU samples, else measured from the tracked poses."""

    rate_intervals: int = 2
    """Frame intervals the tracked poses' angular rate is averaged over (more is smoother,
    but lags a turning hand). >= 1."""
    resolve_px: float | None = 2.0
    """Without a gyro: when the rate a frame's solved pose gives (the intervals ending at it)
    moves an edge row's correction by more than this from the predicted rate's, pixels, the
    frame is corrected by it and tracked again (> 0); null: never."""

    def __post_init__(self) -> None:
        _check(self.rate_intervals >= 1, "rate_intervals", "must be >= 1")
        _check(self.resolve_px is None or self.resolve_px > 0, "resolve_px", "must be > 0 or null")


@dataclass(frozen=True)
class AlignmentConfig:
    """Sub-pixel refinement of correspondences by image alignment (pyramidal Lucas-Kanade)."""

    enabled: bool = True
    window_px: int = 9
    """Side of the aligned window (odd, pixels)."""
    levels: int = 1
    """Pyramid levels above the full image."""
    max_shift_px: float = 4.0
    """Alignment may move a matched keypoint at most this far; farther is a failure."""
    max_round_trip_px: float | None = 0.3
    """Forward-backward check: aligned back, a window must land this close to its start
    (None: no check)."""
    prewarp: bool = True
    """Once the pose is found, align every correspondence again from its landmark's newest
    keyframe window warped into the current view by that pose, then refine the pose on those
    positions (a translation-only window is biased where the view scaled or turned it)."""
    keep_unaligned: bool = False
    """Where alignment is a pair's only check (stereo pairs, monocular initialisation and
    triangulation), keep pairs whose alignment failed, at the detector's precision. Tracking
    always keeps them, weighted by the noise they show."""

    def __post_init__(self) -> None:
        _check(self.window_px >= 3 and self.window_px % 2 == 1, "window_px", "must be odd, >= 3")
        _check(self.levels >= 0, "levels", "must be >= 0")
        _check(self.max_shift_px > 0, "max_shift_px", "must be positive")
        _check(
            self.max_round_trip_px is None or self.max_round_trip_px > 0,
            "max_round_trip_px",
            "must be positive or null",
        )


@dataclass(frozen=True)
class MonoConfig:
    min_parallax_px: float = 20.0
    """Initialisation waits for this median image motion between its two views."""
    init_angle_deg: float = 3.0
    """Initialisation waits until ``min_map_points`` of its landmarks are seen under at least
    this ray angle (degrees, >= 0)."""
    min_angle_deg: float = 1.0
    """Smallest ray angle of a triangulated landmark."""
    adjustment_iterations: int = 20
    """At each keyframe, Levenberg-Marquardt iterations of a joint bundle adjustment of the
    window's keyframe poses and landmarks, the two oldest keyframes held (they fix the gauge
    and the scale; alternation cannot hold a monocular scale). 0 = off."""

    def __post_init__(self) -> None:
        _check(self.min_parallax_px >= 0, "min_parallax_px", "must be >= 0")
        _check(self.init_angle_deg >= 0, "init_angle_deg", "must be >= 0")
        _check(self.min_angle_deg >= 0, "min_angle_deg", "must be >= 0")
        _check(self.adjustment_iterations >= 0, "adjustment_iterations", "must be >= 0")


@dataclass(frozen=True)
class WindowConfig:
    """The local map: the last few keyframes and the landmarks they observe."""

    keyframes: int = 5
    adjustment_rounds: int = 2
    """RGB-D and stereo: at each keyframe, rounds of alternating keyframe-pose / landmark
    refinement over the window (a local bundle adjustment; 0 = landmarks only)."""

    def __post_init__(self) -> None:
        _check(self.keyframes >= 2, "keyframes", "must be >= 2")
        _check(self.adjustment_rounds >= 0, "adjustment_rounds", "must be >= 0")


@dataclass(frozen=True)
class RelocalizationConfig:
    keyframes: int = 4
    """Window keyframes tried first, newest first, to relocalise when lost."""
    candidates: int = 3
    """Then this many keyframes of any map, those that look most like the frame (place
    recognition over every keyframe of the run), each in a window rebuilt around it."""
    new_map_after_s: float = 1.0
    """Lost for longer than this (seconds of the sensor's clock), tracking starts a new map
    and keeps going there; maps merge when a loop closure later connects them."""

    def __post_init__(self) -> None:
        _check(self.keyframes >= 1, "keyframes", "must be >= 1")
        _check(self.candidates >= 0, "candidates", "must be >= 0")
        _check(self.new_map_after_s >= 0, "new_map_after_s", "must be >= 0")


@dataclass(frozen=True)
class ImuConfig:
    """The IMU in the tracker: gyro (and, once gravity is known, accelerometer) integration
    between frames predicts the pose, and carries it through brief visual failures."""

    enabled: Literal["auto", True, False] = "auto"
    """auto: used when frames carry IMU samples and the IMU-camera extrinsic; true (on): the
    same, but a frame without them is an error; false (off): never used."""
    max_propagation_s: float = 0.5
    """Longest time a pose is propagated by the IMU alone after vision fails (seconds,
    [0, 5]; 0: never)."""
    time_offset_s: float = 0.0
    """Camera-IMU clock offset: a frame stamped t was taken at IMU time t + offset (seconds,
    |offset| <= 0.1)."""
    max_sample_gap_s: float = 0.05
    """Samples farther apart than this are a gap: nothing is integrated across it (seconds)."""
    init_window_s: float = 0.5
    """IMU time the gravity/gyro-bias initialisation gathers before deciding (seconds)."""
    static_gyro_rad_s: float = 0.05
    """Initialisation: the rig counts as static while the gyro's spread stays below this."""
    gyro_noise_density: float = 1.7e-4
    """rad/s/sqrt(Hz); used when the source gives no calibration (EuRoC's sensor.yaml does)."""
    gyro_random_walk: float = 2.0e-5
    """rad/s^2/sqrt(Hz), as above."""
    accel_noise_density: float = 2.0e-3
    """m/s^2/sqrt(Hz), as above."""
    accel_random_walk: float = 3.0e-3
    """m/s^3/sqrt(Hz), as above."""

    def __post_init__(self) -> None:
        _check(0 <= self.max_propagation_s <= 5, "max_propagation_s", "must be in [0, 5]")
        _check(abs(self.time_offset_s) <= 0.1, "time_offset_s", "must be in [-0.1, 0.1]")
        _check(self.max_sample_gap_s > 0, "max_sample_gap_s", "must be positive")
        _check(0 < self.init_window_s <= 10, "init_window_s", "must be in (0, 10]")
        _check(self.static_gyro_rad_s > 0, "static_gyro_rad_s", "must be positive")
        for key in (
            "gyro_noise_density",
            "gyro_random_walk",
            "accel_noise_density",
            "accel_random_walk",
        ):
            _check(getattr(self, key) > 0, key, "must be positive")


@dataclass(frozen=True)
class TrackerConfig:
    mode: Literal["auto", "rgbd", "stereo", "mono"] = "auto"
    """auto: rgbd when frames carry depth, stereo when they carry a right image, else mono."""
    min_inliers: int = 25
    """Fewer pose inliers than this is a tracking failure."""
    min_map_points: int = 50
    """Landmarks a first keyframe needs before tracking starts."""
    ransac_reprojection_px: float = 2.0
    """Inlier threshold of PnP, of the pose refinement and of triangulation (pixels)."""
    huber_px: float = 2.0
    """Robust loss width of the pose refinement (pixels)."""
    match_keypoints: int | None = None
    """Keypoints per image handed to the matcher (best by score; None = all). Extracting more
    than this gives the local-map search and new landmarks more points at no matching cost."""
    match_every_frame: bool = True
    """False: a frame is first tracked by the local-map search alone from the motion model's
    pose (``motion``), and matched to the reference keyframe only when that finds too little
    (the search's pose is kept if the matcher then does worse)."""
    depth: DepthConfig = field(default_factory=DepthConfig)
    stereo: StereoConfig = field(default_factory=StereoConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    shutter: ShutterConfig = field(default_factory=ShutterConfig)
    mono: MonoConfig = field(default_factory=MonoConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    relocalization: RelocalizationConfig = field(default_factory=RelocalizationConfig)
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    imu: ImuConfig = field(default_factory=ImuConfig)

    def __post_init__(self) -> None:
        _check(self.min_inliers >= 6, "min_inliers", "must be >= 6")
        _check(self.min_map_points >= 6, "min_map_points", "must be >= 6")
        _check(self.ransac_reprojection_px > 0, "ransac_reprojection_px", "must be positive")
        _check(self.huber_px > 0, "huber_px", "must be positive")
        _check(
            self.match_keypoints is None or self.match_keypoints >= 6,
            "match_keypoints",
            "must be >= 6 or null",
        )


MOVED_KEYS = {
    "tracker.min_depth_m": "tracker.depth.min_m",
    "tracker.max_depth_m": "tracker.depth.max_m",
    "tracker.depth_edge_ratio": "tracker.depth.edge_ratio",
    "tracker.rgbd_depth_sigma_m": "tracker.depth.rgbd_sigma_m",
    "tracker.rgbd_depth_sigma_quadratic": "tracker.depth.rgbd_sigma_quadratic",
    "tracker.stereo_max_row_diff_px": "tracker.stereo.max_row_diff_px",
    "tracker.stereo_disparity_sigma_px": "tracker.stereo.disparity_sigma_px",
    "tracker.search_radius_px": "tracker.search.radius_px",
    "tracker.search_max_distance": "tracker.search.max_distance",
    "tracker.search_ratio": "tracker.search.ratio",
    "tracker.motion_search_radius_px": "tracker.motion.search_radius_px",
    "tracker.motion_min_share": "tracker.motion.min_share",
    "tracker.lk_refine": "tracker.alignment.enabled",
    "tracker.lk_window_px": "tracker.alignment.window_px",
    "tracker.lk_levels": "tracker.alignment.levels",
    "tracker.lk_max_shift_px": "tracker.alignment.max_shift_px",
    "tracker.lk_max_round_trip_px": "tracker.alignment.max_round_trip_px",
    "tracker.lk_prewarp": "tracker.alignment.prewarp",
    "tracker.lk_keep_unaligned": "tracker.alignment.keep_unaligned",
    "tracker.mono_min_parallax_px": "tracker.mono.min_parallax_px",
    "tracker.mono_init_angle_deg": "tracker.mono.init_angle_deg",
    "tracker.mono_min_angle_deg": "tracker.mono.min_angle_deg",
    "tracker.mono_adjustment_iterations": "tracker.mono.adjustment_iterations",
    "tracker.local_map_keyframes": "tracker.window.keyframes",
    "tracker.local_adjustment_rounds": "tracker.window.adjustment_rounds",
    "tracker.relocalization_keyframes": "tracker.relocalization.keyframes",
}
"""Keys of earlier versions and where they went: loading one is an error naming the new key."""

REMOVED_KEYS = {
    "tracker.max_speed_m_s": "the motion gate is in the image now: tracker.motion.max_jump_share",
    "tracker.max_angular_speed_deg_s": (
        "the motion gate is in the image now: tracker.motion.max_jump_share"
    ),
    "tracker.motion.max_speed_m_s": (
        "the motion gate is in the image now: tracker.motion.max_jump_share"
    ),
    "tracker.motion.max_angular_speed_deg_s": (
        "the motion gate is in the image now: tracker.motion.max_jump_share"
    ),
    "tracker.keyframes.max_translation_m": (
        "keyframes follow the scene's depth now: tracker.keyframes.max_translation_ratio"
    ),
}
"""Keys of earlier versions that no longer exist, and what replaced them."""


@dataclass(frozen=True)
class LoopClosureConfig:
    enabled: bool = True
    vocabulary: str | None = None
    """VLAD vocabulary (.npz); None: the one packaged for extractor.model."""
    min_keyframe_gap: int = 15
    """Keyframes this recent (by id) are never loop candidates."""
    min_similarity: float = 0.4
    """Smallest global-descriptor similarity (centred VLAD dot product) of a candidate, in
    [-1, 1]."""
    candidates: int = 3
    """Best candidates geometrically verified per query keyframe, best first."""
    min_inliers: int = 40
    min_inlier_ratio: float = 0.4
    """PnP inliers over the matches that have a 3-D point in the candidate."""
    ransac_reprojection_px: float = 3.0
    ransac_iterations: int = 500
    match_keypoints: int | None = 1024
    """Each keyframe of a pair is matched with its strongest this many keypoints (the
    candidate's among those with a 3-D point); None: all. A loop is verified on a background
    thread, but on the same cores as tracking."""
    align_subpixel: bool = True
    """Refit a verified loop on correspondences aligned to sub-pixel precision (the two
    keyframes' grey images, pyramidal Lucas-Kanade) instead of the raw keypoints."""
    consistency: int = 2
    """Consecutive query keyframes that must each verify a loop to the same place (1 = off)."""
    consistency_max_keyframe_gap: int = 5
    """Matched keyframes of consecutive confirmations are at most this many ids apart."""
    consistency_translation_m: float = 0.2
    consistency_rotation_deg: float = 5.0
    """Largest disagreement between the odometry of consecutive queries and the motion their
    loops imply."""
    max_drift_ratio: float | None = 0.1
    """Plausibility gate: a loop may move the query keyframe by at most max_drift_m plus this
    share of the path travelled since the matched keyframe (None: no gate). Not applied to
    keyframes pre-loaded from a saved map."""
    max_drift_m: float = 0.3

    def __post_init__(self) -> None:
        _check(self.min_keyframe_gap >= 1, "min_keyframe_gap", "must be >= 1")
        _check(-1.0 <= self.min_similarity <= 1.0, "min_similarity", "must be in [-1, 1]")
        _check(self.candidates >= 1, "candidates", "must be >= 1")
        _check(self.min_inliers >= 6, "min_inliers", "must be >= 6")
        _check(0.0 <= self.min_inlier_ratio <= 1.0, "min_inlier_ratio", "must be in [0, 1]")
        _check(self.ransac_reprojection_px > 0, "ransac_reprojection_px", "must be positive")
        _check(self.ransac_iterations >= 1, "ransac_iterations", "must be >= 1")
        _check(
            self.match_keypoints is None or self.match_keypoints >= 6,
            "match_keypoints",
            "must be >= 6 or null",
        )
        _check(self.consistency >= 1, "consistency", "must be >= 1")
        _check(
            self.consistency_max_keyframe_gap >= 0, "consistency_max_keyframe_gap", "must be >= 0"
        )
        _check(
            self.max_drift_ratio is None or self.max_drift_ratio >= 0,
            "max_drift_ratio",
            "must be >= 0 or null",
        )
        _check(self.max_drift_m >= 0, "max_drift_m", "must be >= 0")


@dataclass(frozen=True)
class BackendConfig:
    enabled: bool = True
    robust_kernel: Literal["cauchy", "huber", "none"] = "cauchy"
    """Kernel on loop-closure factors ("none": plain Gaussian, for comparison only)."""
    robust_kernel_scale: float = 3.0
    """Kernel width in whitened units (Mahalanobis distance of the loop residual)."""
    prior_sigma_m: float = 1e-4
    prior_sigma_rad: float = 1e-5
    """Prior holding the first keyframe (fixes the gauge)."""
    relinearize_threshold: float = 1e-4
    """iSAM2 relinearises a keyframe whose update exceeds this (radians / metres). Keep it
    below the corrections a loop brings: robust loop weights are only recomputed at a
    relinearisation."""
    loop_iterations: int = 4
    """Extra iSAM2 relinearisation passes after a loop factor (no new factors)."""
    odometry_min_sigma_px: float = 0.5
    """Floor on the pixel noise used to turn a tracker's inliers into an information matrix."""
    final_adjustment: bool = True
    """At the end of a run, bundle-adjust every keyframe pose with the landmarks it observes
    (seeded by the pose graph). The graph can only spread each keyframe's odometry error;
    landmarks seen from many keyframes remove it."""
    final_adjustment_iterations: int = 4
    """Levenberg-Marquardt iterations of the final adjustment's last pass (>= 1)."""
    final_adjustment_passes: int = 6
    """Most passes of the final adjustment (>= 1). Each pass but the last (one iteration)
    measures the noise of the pixels and of the depths from their residuals and re-weights
    both for the next, until the weights settle, so that depth is trusted as much as the
    sensor deserves, whatever the tracker's configured depth noise says."""
    adjustment_sigma_px: float = 0.3
    """Pixel noise of an observation in the first pass of the final adjustment."""
    adjustment_range_baseline_m: float = 3.0
    """A measured depth enters the final adjustment as the disparity a stereo camera of this
    baseline would see, with the pixels' noise: the first pass's weight, which later passes
    re-weight. Start by trusting the depth: its residuals then show its noise (from a small
    weight they show only the poses' error)."""
    adjustment_odometry_weight: float = 0.01
    """Scale of the odometry information in the final adjustment (it only holds a keyframe
    with few observations; the observations carry the same information)."""
    imu_factors: bool = True
    """With an IMU (``tracker.imu``) and once the tracker knows gravity: a preintegrated IMU
    factor between consecutive keyframes, with velocity and bias variables."""
    loop_closure: LoopClosureConfig = field(default_factory=LoopClosureConfig)

    def __post_init__(self) -> None:
        _check(self.robust_kernel_scale > 0, "robust_kernel_scale", "must be positive")
        _check(self.prior_sigma_m > 0, "prior_sigma_m", "must be positive")
        _check(self.prior_sigma_rad > 0, "prior_sigma_rad", "must be positive")
        _check(self.relinearize_threshold > 0, "relinearize_threshold", "must be positive")
        _check(self.loop_iterations >= 0, "loop_iterations", "must be >= 0")
        _check(self.odometry_min_sigma_px > 0, "odometry_min_sigma_px", "must be positive")
        _check(self.final_adjustment_iterations >= 1, "final_adjustment_iterations", "must be >= 1")
        _check(self.final_adjustment_passes >= 1, "final_adjustment_passes", "must be >= 1")
        _check(self.adjustment_sigma_px > 0, "adjustment_sigma_px", "must be positive")
        _check(
            self.adjustment_range_baseline_m > 0, "adjustment_range_baseline_m", "must be positive"
        )
        _check(
            self.adjustment_odometry_weight > 0, "adjustment_odometry_weight", "must be positive"
        )


@dataclass(frozen=True)
class CameraConfig:
    """Intrinsics for sources that carry none (image folders, video); null = not given.
    ``readout_ms`` applies to every source but the simulator (which renders a global
    shutter)."""

    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    distortion: Literal["none", "radtan", "equidistant"] = "none"
    dist_coeffs: tuple[float, ...] = ()
    readout_ms: float | None = None
    """Rolling-shutter readout of the (colour / left) camera: milliseconds from the exposure
    of its first row to that of its last; 0 = global shutter; null = the source's default
    for its sensor (0 where it knows of none). >= 0."""

    def __post_init__(self) -> None:
        _check(self.readout_ms is None or self.readout_ms >= 0, "readout_ms", "must be >= 0")


@dataclass(frozen=True)
class SourceConfig:
    spec: str | None = None
    """Source a profile runs when none is given on the command line (``realsense``,
    ``realsense-file:rec.db3``); a bare scheme such as ``tum:`` takes its path from there."""
    max_frames: int | None = None
    start_frame: int = 0
    stride: int = 1
    realtime: bool = False
    """Replay at the recorded rate instead of as fast as possible."""
    tum_max_time_diff_s: float = 0.02
    tum_depth_scale: float = 5000.0
    tum_intrinsics: Literal["auto", "fr1", "fr2", "fr3", "ros"] = "auto"
    stereo_rectify: bool = True
    undistort: bool = True
    """Remap distorted images (TUM fr1/fr2, EuRoC, camera.dist_coeffs) to a pinhole camera."""
    fps: float = 30.0
    """Frame rate for stamps of image folders without times.txt and videos without stamps."""
    groundtruth: str | None = None
    """Ground-truth trajectory file (TUM, KITTI or EuRoC csv); EuRoC: world_from_body poses."""

    def __post_init__(self) -> None:
        _check(self.stride >= 1, "stride", "must be >= 1")
        _check(self.fps > 0, "fps", "must be positive")
        _check(self.start_frame >= 0, "start_frame", "must be >= 0")
        _check(self.max_frames is None or self.max_frames > 0, "max_frames", "must be > 0")


@dataclass(frozen=True)
class RealSenseConfig:
    """Intel RealSense D400 live capture and playback of its recordings (``realsense`` sources)."""

    mode: Literal["auto", "rgbd", "stereo"] = "auto"
    """rgbd: colour + depth aligned to colour; stereo: the two infrared imagers (left = image);
    auto: rgbd live, and for a recording rgbd when it has colour + depth, else stereo."""
    serial: str | None = None
    """Device to open (``realsense:SERIAL`` wins); None takes the only / first device."""
    width_px: int = 640
    height_px: int = 480
    fps: int = 30
    emitter: bool = True
    """Infrared dot projector (helps depth, but its dots show in the infrared images)."""
    imu: bool = True
    """Gyro + accelerometer when the device has them (D435i, D455)."""
    gyro_hz: int = 200
    accel_hz: int = 0
    """0: the device's lowest accelerometer rate (D435i 63 Hz, D455 100 Hz)."""
    timeout_s: float = 5.0
    """A device (or recording) silent for longer ends the source with a DeviceError."""
    first_frame_timeout_s: float = 15.0
    """Allowance for the first frame (auto-exposure and USB start-up are slow)."""
    queue_frames: int = 4
    """Frames buffered between the device and the consumer; a live source drops the oldest
    (counted) when the consumer is slower; a non-real-time playback waits instead."""

    def __post_init__(self) -> None:
        _check(self.width_px > 0 and self.height_px > 0, "width_px", "must be positive")
        _check(self.fps > 0, "fps", "must be positive")
        _check(self.gyro_hz >= 0 and self.accel_hz >= 0, "gyro_hz", "must be >= 0")
        _check(self.timeout_s > 0, "timeout_s", "must be positive")
        _check(self.first_frame_timeout_s > 0, "first_frame_timeout_s", "must be positive")
        _check(self.queue_frames >= 1, "queue_frames", "must be >= 1")


@dataclass(frozen=True)
class SimConfig:
    """The synthetic rig (``sim:NAME``); see slamfront/sim/ for scenes and trajectories."""

    trajectory: str = "loop"
    """loop | figure8 | still | repeated (``sim:NAME`` sets it)."""
    scene: Literal["auto", "room", "repeated"] = "auto"
    """auto: the scene the trajectory is made for."""
    sensor: Literal["rgbd", "stereo", "mono"] = "rgbd"
    frames: int | None = None
    """None: the trajectory's own length."""
    width_px: int = 640
    height_px: int = 480
    hfov_deg: float = 70.0
    """Horizontal field of view; fx = fy = (width_px / 2) / tan(hfov_deg / 2)."""
    fps: float = 30.0
    baseline_m: float = 0.1
    seed: int = 0
    image_noise_std: float = 2.0
    """Gaussian pixel noise, grey levels (0-255)."""
    motion_blur: bool = True
    exposure_ms: float = 10.0
    """Shutter time that motion_blur integrates over (centred on the frame's pose)."""
    depth_noise_std_m: float = 0.0
    blank_start: int | None = None
    """First of ``blank_count`` all-black frames (zero depth; ground truth and IMU kept)."""
    blank_count: int = 0
    imu_rate_hz: float = 200.0
    gyro_noise_std_rad_s: float = 0.002
    """Per-sample white-noise standard deviation (not a density)."""
    accel_noise_std_m_s2: float = 0.02
    gyro_bias_rad_s: tuple[float, ...] = (0.001, -0.002, 0.0015)
    accel_bias_m_s2: tuple[float, ...] = (0.02, -0.01, 0.03)

    def __post_init__(self) -> None:
        _check(self.width_px >= 64 and self.height_px >= 64, "width_px", "image too small")
        _check(self.fps > 0, "fps", "must be positive")
        _check(10.0 <= self.hfov_deg <= 150.0, "hfov_deg", "must be in [10, 150]")
        _check(self.frames is None or self.frames > 0, "frames", "must be > 0")
        _check(self.baseline_m > 0, "baseline_m", "must be positive")
        _check(self.image_noise_std >= 0, "image_noise_std", "must be >= 0")
        _check(self.exposure_ms >= 0, "exposure_ms", "must be >= 0")
        _check(self.depth_noise_std_m >= 0, "depth_noise_std_m", "must be >= 0")
        _check(self.blank_start is None or self.blank_start >= 0, "blank_start", "must be >= 0")
        _check(self.blank_count >= 0, "blank_count", "must be >= 0")
        _check(self.imu_rate_hz > 0, "imu_rate_hz", "must be positive")
        _check(self.gyro_noise_std_rad_s >= 0, "gyro_noise_std_rad_s", "must be >= 0")
        _check(self.accel_noise_std_m_s2 >= 0, "accel_noise_std_m_s2", "must be >= 0")
        _check(len(self.gyro_bias_rad_s) == 3, "gyro_bias_rad_s", "needs 3 values")
        _check(len(self.accel_bias_m_s2) == 3, "accel_bias_m_s2", "needs 3 values")


@dataclass(frozen=True)
class RerunConfig:
    """The Rerun viewer sink (``--rerun MODE``); see slamfront/sinks/rerun_sink.py."""

    mode: str = "off"
    """off | save[:FILE.rrd] | serve | connect[:ADDR]; ``save`` alone: RUN_DIR/recording.rrd."""
    image_scale: float = 0.5
    """Logged images (current image, matches view) are resized by this factor, (0, 1]."""
    jpeg_quality: int | None = 80
    """None: raw pixels; 1-100: logged images are JPEG-compressed at this quality."""
    queue_size: int = 8
    """Per-frame results waiting for the viewer thread; further ones are dropped and counted."""
    web_port: int = 9090
    """serve: HTTP port of the web viewer on localhost (0: a free port)."""
    grpc_port: int = 9876
    """serve: gRPC port on localhost the web viewer reads from (0: a free port)."""
    server_memory_limit: str = "1GiB"
    """serve: data the server keeps for late viewers (oldest dropped first)."""
    keep_serving: bool = True
    """serve from the CLI: after the run, keep the viewer up until Ctrl-C."""
    frustum_depth_m: float = 0.1
    """Drawn depth of camera and keyframe frustums."""
    max_match_lines: int = 200
    """Matches view: at most this many lines (the highest-scoring matches)."""

    def __post_init__(self) -> None:
        scheme = self.mode.partition(":")[0]
        _check(
            scheme in ("off", "save", "serve", "connect"),
            "mode",
            f"must be off, save[:FILE.rrd], serve or connect[:ADDR], got {self.mode!r}",
        )
        _check(0.0 < self.image_scale <= 1.0, "image_scale", "must be in (0, 1]")
        _check(
            self.jpeg_quality is None or 1 <= self.jpeg_quality <= 100,
            "jpeg_quality",
            "must be null or 1-100",
        )
        _check(self.queue_size >= 1, "queue_size", "must be >= 1")
        _check(0 <= self.web_port <= 65535, "web_port", "must be a port (0: any free one)")
        _check(0 <= self.grpc_port <= 65535, "grpc_port", "must be a port (0: any free one)")
        _check(bool(self.server_memory_limit), "server_memory_limit", "must not be empty")
        _check(self.frustum_depth_m > 0, "frustum_depth_m", "must be positive")
        _check(self.max_match_lines >= 0, "max_match_lines", "must be >= 0")


@dataclass(frozen=True)
class PipelineConfig:
    queue_size: int = 4
    read_thread: bool = False
    """Read the source on a thread of its own (a third one) instead of the reader thread:
    worth it when the tracking thread has time to spare, a cost when both cores are busy."""
    progress_interval_s: float = 2.0


@dataclass(frozen=True)
class Config:
    preset: str = "fast"
    extractor: ExtractorConfig = field(default_factory=ExtractorConfig)
    matcher: MatcherConfig = field(default_factory=MatcherConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    realsense: RealSenseConfig = field(default_factory=RealSenseConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    rerun: RerunConfig = field(default_factory=RerunConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


# --------------------------------------------------------------------------- loading


def presets_dir() -> Path:
    """The folder of named presets: $SLAMFRONT_CONFIGS, else ``configs/`` beside the package."""
    env = os.environ.get("SLAMFRONT_CONFIGS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "configs"


def preset_names() -> list[str]:
    folder = presets_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_config(preset: str | os.PathLike[str] = "fast", overrides: Sequence[str] = ()) -> Config:
    """Defaults in code, then the preset (a name in ``configs/`` or a YAML path), then overrides.

    ``overrides`` are ``dotted.key=value`` strings; values are parsed as YAML scalars.
    """
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    _read_preset(str(preset), data, sources, seen=())
    for text in overrides:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {text!r}: expected key=value")
        value = _parse_scalar(raw, f"override {text!r}")
        _set_dotted(data, key.strip(), value)
        sources[key.strip()] = f"override {text!r}"
    return build_config(data, sources)


def build_config(data: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> Config:
    """Config from a nested mapping (as read from YAML); errors name the key and its origin."""
    return _build(Config, data, "", sources or {})


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (tuples become lists), for YAML output."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = config_to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def dump_config(config: Config, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as YAML, atomically."""
    import yaml

    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    tmp.replace(target)


def _read_preset(
    name: str, data: dict[str, Any], sources: dict[str, str], seen: tuple[str, ...]
) -> None:
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = presets_dir() / f"{name}.yaml"
        if not path.is_file():
            known = ", ".join(preset_names()) or "(none found)"
            raise ConfigError(f"unknown preset {name!r}; known presets: {known}")
    elif not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if str(path.resolve()) in seen:
        raise ConfigError(f"{path}: 'extends' loops back to itself")
    content, lines = _load_yaml(path)
    base = content.pop("extends", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}:{lines.get('extends', '?')}: 'extends' must be a name")
        _read_preset(base, data, sources, (*seen, str(path.resolve())))
    for key, value in _flatten(content):
        _set_dotted(data, key, value)
        sources[key] = f"{path}:{lines.get(key, '?')}"
    if "preset" not in content:
        data["preset"] = path.stem


def _load_yaml(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Mapping from a YAML file plus the 1-based line of every dotted key."""
    import yaml

    try:
        text = path.read_text()
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if node is None:
        return {}, {}
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}:1: the top level must be a mapping of keys")
    lines: dict[str, int] = {}
    constructor = yaml.SafeLoader(text)

    def walk(mapping: yaml.MappingNode, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in mapping.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            if key_node.value in out:
                raise ConfigError(f"{path}:{lines[key]}: duplicate key {key!r}")
            if isinstance(value_node, yaml.MappingNode):
                out[key_node.value] = walk(value_node, key + ".")
            else:
                out[key_node.value] = constructor.construct_object(value_node, deep=True)
        return out

    return walk(node, ""), lines


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            items.extend(_flatten(value, f"{prefix}{key}."))
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _parse_scalar(raw: str, origin: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: cannot parse value: {exc}") from exc


def _origin(sources: Mapping[str, str], key: str) -> str:
    probe = key
    while probe:
        if probe in sources:
            return sources[probe]
        probe = probe.rpartition(".")[0]
    return "config"


def _build(cls: type, data: Mapping[str, Any], prefix: str, sources: Mapping[str, str]) -> Any:
    if not isinstance(data, Mapping):
        key = prefix.rstrip(".") or "(top level)"
        raise ConfigError(f"{_origin(sources, key)}: {key} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            if full in REMOVED_KEYS:
                raise ConfigError(
                    f"{_origin(sources, full)}: {full!r} was removed: {REMOVED_KEYS[full]}"
                )
            if full in MOVED_KEYS:
                raise ConfigError(
                    f"{_origin(sources, full)}: {full!r} has moved: use {MOVED_KEYS[full]!r}"
                )
            raise ConfigError(
                f"{_origin(sources, full)}: unknown key {full!r} "
                f"(known in this section: {', '.join(sorted(names))})"
            )
        kwargs[key] = _coerce(hints[key], value, full, sources)
    try:
        return cls(**kwargs)
    except ValueError as exc:
        section = prefix.rstrip(".")
        message = str(exc)
        field_name = message.partition(":")[0]
        full = f"{prefix}{field_name}" if field_name in names else section
        raise ConfigError(f"{_origin(sources, full)}: {prefix}{message}") from exc


_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(hint: Any, value: Any, key: str, sources: Mapping[str, str]) -> Any:
    def fail(expected: str) -> typing.NoReturn:
        raise ConfigError(
            f"{_origin(sources, key)}: {key} must be {expected}, got {value!r} "
            f"({type(value).__name__})"
        )

    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _build(hint, value if value is not None else {}, key + ".", sources)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key, sources)
    if origin is Literal:
        if value not in args:
            fail("one of " + ", ".join(repr(a) for a in args))
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            fail("a list")
        return tuple(_coerce(args[0], v, key, sources) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer")
        return value
    if hint is float:
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 3e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail("a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            fail("a string")
        return value
    raise ConfigError(f"{key}: unsupported config type {hint!r}")  # pragma: no cover
