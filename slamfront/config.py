"""Typed configuration: dataclasses with defaults in code, YAML presets, ``key=value`` overrides.

Loading is strict: an unknown key, a value of the wrong type or out of range is a
:class:`~slamfront.errors.ConfigError` naming the key and the file (with its line) or override.
Presets live in ``configs/<name>.yaml``; a preset may start from another with ``extends: NAME``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from slamfront.errors import ConfigError

Runtime = Literal["auto", "torch", "onnxruntime", "tensorrt"]


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{key}: {message}")


@dataclass(frozen=True, slots=True)
class Bounds:
    """The values a numeric field takes: limits (``ge``/``gt`` below, ``le``/``lt`` above) and
    values outside them that have a meaning of their own (``also``, e.g. -1 = off). Every
    value must be finite unless ``also`` names an infinity."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    also: tuple[float, ...] = ()

    def admits(self, value: float) -> bool:
        if value in self.also:
            return True
        if not math.isfinite(value):
            return False
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def describe(self) -> str:
        parts = [
            f"{op} {limit:g}"
            for op, limit in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if limit is not None
        ]
        text = " and ".join(parts) if parts else "finite"
        if self.also:
            text += " (or " + ", ".join(f"{v:g}" for v in self.also) + ")"
        return text


_T = TypeVar("_T")


def bounded(
    default: _T,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    also: tuple[float, ...] = (),
) -> _T:
    """A numeric config field with its bounds (checked on every construction; a tuple's bounds
    hold for each element, None passes)."""
    bounds = Bounds(ge=ge, gt=gt, le=le, lt=lt, also=also)
    return field(default=default, metadata={"bounds": bounds})


def _check_bounds(section: Any) -> None:
    """ValueError naming the first field of ``section`` outside its bounds or not finite."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        bounds: Bounds | None = f.metadata.get("bounds")
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if item is None or isinstance(item, bool) or not isinstance(item, int | float):
                continue
            if bounds is not None and not bounds.admits(item):
                raise ValueError(f"{f.name}: must be {bounds.describe()}, got {item!r}")
            if bounds is None and isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"{f.name}: must be a finite number, got {item!r}")


class _Section:
    """Base of every config section: on construction each field is checked against its
    :func:`bounded` limits, then the rules that tie fields together (:meth:`_validate`)."""

    def __post_init__(self) -> None:
        _check_bounds(self)
        self._validate()

    def _validate(self) -> None:
        """Rules across fields; ValueError ``"field: message"`` when one is broken."""


@dataclass(frozen=True)
class ExtractorConfig(_Section):
    model: Literal["xfeat", "disk", "superpoint", "orb"] = "xfeat"
    runtime: Runtime = "auto"
    max_keypoints: int = bounded(1024, ge=1, le=1_000_000)
    max_area_px: int = bounded(0, ge=32 * 32, le=1_000_000_000, also=(0,))
    """Detection runs on the image scaled down to at most this many pixels (0: full
    resolution), so its cost stops growing with the camera; keypoints come back in the
    image's pixels and the tracker's alignment refines them there."""
    detection_threshold: float = bounded(0.05, ge=0, lt=1)
    nms_radius_px: int = bounded(2, ge=0, le=64)
    border_px: int = bounded(4, ge=0, le=1024)
    subpixel: bool = True
    weights: str | None = None
    """Explicit weights file; None resolves by name (see README "Weights")."""
    onnx_dir: str | None = None
    """Where exported ONNX models are kept; None is ~/.cache/slamfront/onnx."""
    device: Literal["cpu", "cuda"] = "cpu"
    """torch runtime: where the network runs."""
    threads: int = bounded(0, ge=0, le=1024)
    """onnxruntime: intra-op threads (0 = half of the cores: matching runs at the same time)."""
    engine_dir: str | None = None
    """Where TensorRT engines are kept; None is ~/.cache/slamfront/tensorrt."""
    tensorrt_fp16: bool = True
    tensorrt_min_size_px: tuple[int, ...] = bounded((64, 64), ge=1, le=16384)
    """TensorRT optimisation profile, network input (width, height): smallest, usual, largest."""
    tensorrt_opt_size_px: tuple[int, ...] = bounded((640, 480), ge=1, le=16384)
    tensorrt_max_size_px: tuple[int, ...] = bounded((1280, 1024), ge=1, le=16384)

    def _validate(self) -> None:
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
class MatcherConfig(_Section):
    model: Literal["lightglue", "mnn", "orb_bf"] = "lightglue"
    runtime: Runtime = "auto"
    depth_confidence: float = bounded(0.95, gt=0, le=1, also=(-1.0,))
    """Early exit: stop when this share of points is confident (-1 = off)."""
    width_confidence: float = bounded(0.99, gt=0, le=1, also=(-1.0,))
    """Pruning: drop points confidently unmatchable at this level (-1 = off)."""
    filter_threshold: float = bounded(0.1, ge=0, lt=1)
    """Minimum match score."""
    min_cosine: float = bounded(0.8, ge=-1, le=1)
    """Mutual nearest neighbour: minimum cosine similarity (float descriptors)."""
    ratio: float = bounded(0.9, gt=0, le=1)
    """Nearest neighbour ratio test (1.0 = off)."""
    weights: str | None = None
    device: Literal["cpu", "cuda"] = "cpu"
    """torch runtime: where the network runs."""
    threads: int = bounded(0, ge=0, le=1024)
    """onnxruntime: intra-op threads of the layer and assignment graphs (0 = half of the
    cores: extraction runs at the same time)."""
    onnx_dir: str | None = None
    """Where exported LightGlue graphs are kept; None is ~/.cache/slamfront/onnx."""
    engine_dir: str | None = None
    """Where TensorRT engines are kept; None is ~/.cache/slamfront/tensorrt."""


@dataclass(frozen=True)
class KeyframeConfig(_Section):
    min_tracked_ratio: float = bounded(0.6, ge=0, le=1)
    """New keyframe when fewer than this share of the reference's landmarks are tracked."""
    max_translation_ratio: float = bounded(0.095, gt=0)
    """New keyframe when the camera moved farther from the reference than this share of the
    reference keyframe's median landmark depth (scale-free: a room, a car, a monocular map;
    a share, > 0)."""
    max_rotation_deg: float = bounded(15.0, gt=0, le=180)
    """New keyframe when the camera turned farther than this from the reference (degrees,
    (0, 180])."""
    min_frames_between: int = bounded(1, ge=0)
    """A keyframe needs at least this many tracked frames since the last one (>= 0)."""


@dataclass(frozen=True)
class DepthConfig(_Section):
    """Depth measured at keypoints (RGB-D depth image or stereo pair)."""

    min_m: float = bounded(0.1, gt=0)
    """Nearer measurements are ignored (metres)."""
    max_m: float | None = bounded(None, gt=0)
    """Farther measurements are ignored (metres). None: the sensor's own range (for stereo,
    where the disparity falls to ``stereo.min_disparity_px``)."""
    edge_ratio: float = bounded(0.05, gt=0)
    """Keypoints whose 3x3 depth neighbourhood varies more than this share are skipped."""
    rgbd_sigma_m: float = bounded(0.002, gt=0)
    """RGB-D depth noise floor (metres)."""
    rgbd_sigma_quadratic: float = bounded(0.0015, ge=0)
    """RGB-D depth sigma = max(rgbd_sigma_m, rgbd_sigma_quadratic * z^2) (per metre)."""

    def _validate(self) -> None:
        _check(self.max_m is None or self.max_m > self.min_m, "max_m", "must exceed min_m")


@dataclass(frozen=True)
class StereoConfig(_Section):
    max_row_diff_px: float = bounded(1.5, gt=0)
    """Aligned to sub-pixel, a stereo point may land at most this far off its left row."""
    disparity_sigma_px: float = bounded(0.5, gt=0)
    """Disparity noise: stereo depth sigma = sigma_px * z^2 / (fx * baseline)."""
    min_disparity_px: float = bounded(1.0, gt=0)
    """Smallest disparity measured (the far end of the stereo range without depth.max_m)."""


@dataclass(frozen=True)
class SearchConfig(_Section):
    """Local-map search: window landmarks projected and looked for near their projection."""

    radius_px: float = bounded(6.0, gt=0)
    """Window around each projected landmark."""
    max_distance: float = bounded(0.35, gt=0, le=2)
    """Largest descriptor distance (1 - cosine; share of bits for binary), in [0, 2]."""
    ratio: float = bounded(0.9, gt=0, le=1)
    """Best over second-best descriptor distance, in (0, 1]."""


@dataclass(frozen=True)
class MotionConfig(_Section):
    """The constant-velocity motion model: tracking from its prediction, and its sanity gate."""

    search_radius_px: float = bounded(12.0, gt=0)
    """Without the matcher (``match_every_frame`` false): search window around each landmark
    projected at the predicted pose."""
    min_share: float = bounded(0.6, ge=0, le=1)
    """Without the matcher: the search must find this share of the landmarks the previous
    frame tracked (and at least 2 x min_inliers), else the matcher runs. In [0, 1]."""
    max_jump_share: float = bounded(0.2, gt=0, le=1)
    """A pose whose landmarks land farther from where the prediction put them than this share
    of the image diagonal (median over its inliers) is a tracking failure. Applied only while
    the model has a velocity, within ``max_gap_s`` of the last pose. In (0, 1]."""
    max_gap_s: float = bounded(0.25, gt=0)
    """Beyond this time since the last pose the prediction is not trusted (seconds)."""


@dataclass(frozen=True)
class ShutterConfig(_Section):
    """Rolling-shutter correction of cameras with a readout (``camera.readout_ms``): each
    frame is moved to its global-shutter image by the camera's angular rate, the gyro's when
    frames carry IMU samples, else measured from the tracked poses."""

    rate_intervals: int = bounded(2, ge=1, le=1000)
    """Frame intervals the tracked poses' angular rate is averaged over (more is smoother,
    but lags a turning hand). >= 1."""
    resolve_px: float | None = bounded(2.0, gt=0)
    """Without a gyro: when the rate a frame's solved pose gives (the intervals ending at it)
    moves an edge row's correction by more than this from the predicted rate's, pixels, the
    frame is corrected by it and tracked again (> 0); null: never."""


@dataclass(frozen=True)
class AlignmentConfig(_Section):
    """Sub-pixel refinement of correspondences by image alignment (pyramidal Lucas-Kanade)."""

    enabled: bool = True
    window_px: int = bounded(9, ge=3, le=101)
    """Side of the aligned window (odd, pixels)."""
    levels: int = bounded(1, ge=0, le=8)
    """Pyramid levels above the full image."""
    max_shift_px: float = bounded(4.0, gt=0)
    """Alignment may move a matched keypoint at most this far; farther is a failure."""
    max_round_trip_px: float | None = bounded(0.3, gt=0)
    """Forward-backward check: aligned back, a window must land this close to its start
    (None: no check)."""
    prewarp: bool = True
    """Once the pose is found, align every correspondence again from its landmark's newest
    keyframe window warped into the current view by that pose, then refine the pose on those
    positions (a translation-only window is biased where the view scaled or turned it)."""
    match_brightness: bool = True
    """Map each keyframe's windows to the current frame's brightness (a gain and offset fitted
    to the windows' means) before aligning them: auto exposure changes it between frames."""
    keep_unaligned: bool = False
    """Where alignment is a pair's only check (stereo pairs, monocular initialisation and
    triangulation), keep pairs whose alignment failed, at the detector's precision. Tracking
    always keeps them, weighted by the noise they show."""

    def _validate(self) -> None:
        _check(self.window_px >= 3 and self.window_px % 2 == 1, "window_px", "must be odd, >= 3")


@dataclass(frozen=True)
class MonoConfig(_Section):
    min_parallax_px: float = bounded(20.0, ge=0)
    """Initialisation waits for this median image motion between its two views."""
    init_angle_deg: float = bounded(3.0, ge=0, lt=180)
    """Initialisation waits until ``min_map_points`` of its landmarks are seen under at least
    this ray angle (degrees, >= 0)."""
    min_angle_deg: float = bounded(1.0, ge=0, lt=180)
    """Smallest ray angle of a triangulated landmark."""
    adjustment_iterations: int = bounded(20, ge=0, le=1000)
    """At each keyframe, Levenberg-Marquardt iterations of a joint bundle adjustment of the
    window's keyframe poses and landmarks, the two oldest keyframes held (they fix the gauge
    and the scale; alternation cannot hold a monocular scale). 0 = off."""


@dataclass(frozen=True)
class WindowConfig(_Section):
    """The local map: the last few keyframes and the landmarks they observe."""

    keyframes: int = bounded(5, ge=2, le=1000)
    adjustment_rounds: int = bounded(2, ge=0, le=100)
    """RGB-D and stereo: at each keyframe, rounds of alternating keyframe-pose / landmark
    refinement over the window (a local bundle adjustment; 0 = landmarks only)."""


@dataclass(frozen=True)
class RelocalizationConfig(_Section):
    keyframes: int = bounded(4, ge=1, le=1000)
    """Window keyframes tried first, newest first, to relocalise when lost."""
    candidates: int = bounded(3, ge=0, le=1000)
    """Then this many keyframes of any map, those that look most like the frame (place
    recognition over every keyframe of the run), each in a window rebuilt around it."""
    new_map_after_s: float = bounded(1.0, ge=0)
    """Lost for longer than this (seconds of the sensor's clock), tracking starts a new map
    and keeps going there; maps merge when a loop closure later connects them."""


@dataclass(frozen=True)
class ImuConfig(_Section):
    """The IMU in the tracker: gyro (and, once gravity is known, accelerometer) integration
    between frames predicts the pose, and carries it through brief visual failures."""

    enabled: Literal["auto", True, False] = "auto"
    """auto: used when frames carry IMU samples and the IMU-camera extrinsic; true (on): the
    same, but a frame without them is an error; false (off): never used."""
    max_propagation_s: float = bounded(0.5, ge=0, le=5)
    """Longest time a pose is propagated by the IMU alone after vision fails (seconds,
    [0, 5]; 0: never)."""
    time_offset_s: float = bounded(0.0, ge=-0.1, le=0.1)
    """Camera-IMU clock offset: a frame stamped t was taken at IMU time t + offset (seconds,
    |offset| <= 0.1)."""
    max_sample_gap_s: float = bounded(0.05, gt=0, le=10)
    """Samples farther apart than this are a gap: nothing is integrated across it (seconds)."""
    init_window_s: float = bounded(0.5, gt=0, le=10)
    """IMU time the gravity/gyro-bias initialisation gathers before deciding (seconds)."""
    static_gyro_rad_s: float = bounded(0.05, gt=0, le=10)
    """Initialisation: the rig counts as static while the gyro's spread stays below this."""
    scale_window_s: float = bounded(3.0, gt=0, le=60)
    """Monocular: the shortest span of tracked motion the visual-inertial alignment measures
    the map's metric scale on (seconds)."""
    max_scale_std: float = bounded(0.01, gt=0, le=1)
    """Monocular: the scale is accepted once its relative standard deviation is below this
    (too little acceleration leaves it uncertain: the alignment keeps waiting)."""
    scale_wait_s: float = bounded(15.0, ge=0, le=600)
    """Monocular: longest time a new map is held back waiting for its metric scale (seconds);
    after that it is released at an arbitrary scale, as without an IMU (0: never wait)."""
    gyro_noise_density: float = bounded(1.7e-4, gt=0, le=1)
    """rad/s/sqrt(Hz); used when the source gives no calibration (EuRoC's sensor.yaml does)."""
    gyro_random_walk: float = bounded(2.0e-5, gt=0, le=1)
    """rad/s^2/sqrt(Hz), as above."""
    accel_noise_density: float = bounded(2.0e-3, gt=0, le=10)
    """m/s^2/sqrt(Hz), as above."""
    accel_random_walk: float = bounded(3.0e-3, gt=0, le=10)
    """m/s^3/sqrt(Hz), as above."""


@dataclass(frozen=True)
class TrackerConfig(_Section):
    mode: Literal["auto", "rgbd", "stereo", "mono"] = "auto"
    """auto: rgbd when frames carry depth, stereo when they carry a right image, else mono."""
    min_inliers: int = bounded(25, ge=6)
    """Fewer pose inliers than this is a tracking failure."""
    min_map_points: int = bounded(50, ge=6)
    """Landmarks a first keyframe needs before tracking starts."""
    ransac_reprojection_px: float = bounded(2.0, gt=0)
    """Inlier threshold of PnP, of the pose refinement and of triangulation (pixels)."""
    huber_px: float = bounded(2.0, gt=0)
    """Robust loss width of the pose refinement (pixels)."""
    match_keypoints: int | None = bounded(None, ge=6, le=65536)
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
class LoopClosureConfig(_Section):
    enabled: bool = True
    vocabulary: str | None = None
    """VLAD vocabulary (.npz); None: the one packaged for extractor.model."""
    min_keyframe_gap: int = bounded(15, ge=1)
    """Keyframes this recent (by id) are never loop candidates."""
    min_similarity: float = bounded(0.4, ge=-1, le=1)
    """Smallest global-descriptor similarity (centred VLAD dot product) of a candidate, in
    [-1, 1]."""
    candidates: int = bounded(3, ge=1, le=1000)
    """Best candidates geometrically verified per query keyframe, best first."""
    min_inliers: int = bounded(40, ge=6)
    min_inlier_ratio: float = bounded(0.4, ge=0, le=1)
    """PnP inliers over the matches that have a 3-D point in the candidate."""
    ransac_reprojection_px: float = bounded(3.0, gt=0)
    ransac_iterations: int = bounded(500, ge=1, le=1000000)
    match_keypoints: int | None = bounded(1024, ge=6, le=65536)
    """Each keyframe of a pair is matched with its strongest this many keypoints (the
    candidate's among those with a 3-D point); None: all. A loop is verified on a background
    thread, but on the same cores as tracking."""
    guided_radius_px: float | None = bounded(16.0, gt=0)
    """While the previous query keyframe verified a loop to the candidate's place, the
    candidate's points are first projected at the pose that loop and the odometry predict and
    paired with query keypoints within this radius (the matcher runs only if that fails
    verification); None: always the matcher."""
    guided_max_distance: float = bounded(0.35, gt=0, le=2)
    """Largest descriptor distance of a guided pair (1 - cosine; share of bits for binary)."""
    guided_ratio: float = bounded(0.8, gt=0, le=1)
    """Best over second-best descriptor distance of a guided pair, in (0, 1]."""
    align_subpixel: bool = True
    """Refit a verified loop on correspondences aligned to sub-pixel precision (the two
    keyframes' grey images, pyramidal Lucas-Kanade) instead of the raw keypoints."""
    consistency: int = bounded(2, ge=1, le=1000)
    """Consecutive query keyframes that must each verify a loop to the same place (1 = off)."""
    consistency_max_keyframe_gap: int = bounded(5, ge=0)
    """Matched keyframes of consecutive confirmations are at most this many ids apart."""
    consistency_translation_m: float = bounded(0.2, gt=0)
    consistency_rotation_deg: float = bounded(5.0, gt=0, le=180)
    """Largest disagreement between the odometry of consecutive queries and the motion their
    loops imply."""
    max_drift_ratio: float | None = bounded(0.1, ge=0)
    """Plausibility gate: a loop may move the query keyframe by at most max_drift_m plus this
    share of the path travelled since the matched keyframe (None: no gate). Not applied to
    keyframes pre-loaded from a saved map."""
    max_drift_m: float = bounded(0.3, ge=0)


@dataclass(frozen=True)
class BackendConfig(_Section):
    enabled: bool = True
    robust_kernel: Literal["cauchy", "huber", "none"] = "cauchy"
    """Kernel on loop-closure factors ("none": plain Gaussian, for comparison only)."""
    robust_kernel_scale: float = bounded(3.0, gt=0)
    """Kernel width in whitened units (Mahalanobis distance of the loop residual)."""
    prior_sigma_m: float = bounded(1e-4, gt=0)
    prior_sigma_rad: float = bounded(1e-5, gt=0)
    """Prior holding the first keyframe (fixes the gauge)."""
    relinearize_threshold: float = bounded(1e-4, gt=0)
    """iSAM2 relinearises a keyframe whose update exceeds this (radians / metres). Keep it
    below the corrections a loop brings: robust loop weights are only recomputed at a
    relinearisation."""
    loop_iterations: int = bounded(4, ge=0, le=1000)
    """Extra iSAM2 relinearisation passes after a loop factor (no new factors)."""
    odometry_min_sigma_px: float = bounded(0.5, gt=0)
    """Floor on the pixel noise used to turn a tracker's inliers into an information matrix."""
    final_adjustment: bool = True
    """At the end of a run, bundle-adjust every keyframe pose with the landmarks it observes
    (seeded by the pose graph). The graph can only spread each keyframe's odometry error;
    landmarks seen from many keyframes remove it."""
    final_adjustment_iterations: int = bounded(4, ge=1, le=1000)
    """Levenberg-Marquardt iterations of the final adjustment's last pass (>= 1)."""
    final_adjustment_passes: int = bounded(6, ge=1, le=1000)
    """Most passes of the final adjustment (>= 1). Each pass but the last (one iteration)
    measures the noise of the pixels and of the depths from their residuals and re-weights
    both for the next, until the weights settle, so that depth is trusted as much as the
    sensor deserves, whatever the tracker's configured depth noise says."""
    final_adjustment_weighting_landmarks: int | None = bounded(5000, ge=1)
    """The re-weighting passes (all but the last) adjust at most this many landmarks, evenly
    spread: they only measure two noise figures. None: every landmark."""
    adjustment_sigma_px: float = bounded(0.3, gt=0)
    """Pixel noise of an observation in the first pass of the final adjustment."""
    adjustment_range_baseline_m: float = bounded(3.0, gt=0)
    """A measured depth enters the final adjustment as the disparity a stereo camera of this
    baseline would see, with the pixels' noise: the first pass's weight, which later passes
    re-weight. Start by trusting the depth: its residuals then show its noise (from a small
    weight they show only the poses' error)."""
    adjustment_odometry_weight: float = bounded(0.01, gt=0)
    """Scale of the odometry information in the final adjustment (it only holds a keyframe
    with few observations; the observations carry the same information)."""
    imu_factors: bool = True
    """With an IMU (``tracker.imu``) and once the tracker knows gravity: a preintegrated IMU
    factor between consecutive keyframes, with velocity and bias variables."""
    loop_closure: LoopClosureConfig = field(default_factory=LoopClosureConfig)


@dataclass(frozen=True)
class CameraConfig(_Section):
    """Intrinsics for sources that carry none (image folders, video, bags without CameraInfo);
    null = not given. ``readout_ms`` applies to every source but the simulator (which renders
    a global shutter)."""

    calibration: str | None = None
    """Calibration file (ROS camera_info YAML, Kalibr camchain, OpenCV/ORB-SLAM3 settings) for
    ``images:``, ``video:`` and ``bag:``; excludes fx/fy/cx/cy/distortion/dist_coeffs."""
    fx: float | None = bounded(None, gt=0)
    fy: float | None = bounded(None, gt=0)
    cx: float | None = bounded(None, gt=-1e6, lt=1e6)
    cy: float | None = bounded(None, gt=-1e6, lt=1e6)
    distortion: Literal["none", "radtan", "equidistant"] = "none"
    dist_coeffs: tuple[float, ...] = bounded((), gt=-1e6, lt=1e6)
    readout_ms: float | None = bounded(None, ge=0, le=1000)
    """Rolling-shutter readout of the (colour / left) camera: milliseconds from the exposure
    of its first row to that of its last; 0 = global shutter; null = the source's default
    for its sensor (0 where it knows of none). >= 0."""


@dataclass(frozen=True)
class SourceConfig(_Section):
    spec: str | None = None
    """Source a profile runs when none is given on the command line (``realsense``,
    ``realsense-file:rec.db3``); a bare scheme such as ``tum:`` takes its path from there."""
    max_frames: int | None = bounded(None, ge=1)
    start_frame: int = bounded(0, ge=0)
    stride: int = bounded(1, ge=1)
    realtime: bool = False
    """Replay at the recorded rate instead of as fast as possible."""
    tum_max_time_diff_s: float = bounded(0.02, ge=0, le=3600)
    tum_depth_scale: float = bounded(5000.0, gt=0)
    tum_intrinsics: Literal["auto", "fr1", "fr2", "fr3", "ros"] = "auto"
    stereo_rectify: bool = True
    undistort: bool = True
    """Remap distorted images (TUM fr1/fr2, EuRoC, camera.dist_coeffs) to a pinhole camera."""
    fps: float = bounded(30.0, ge=1e-3, le=1e6)
    """Frame rate for stamps of image folders without times.txt and videos without stamps."""
    max_image_side_px: int = bounded(4096, ge=0)
    """Images wider or taller than this (pixels) are refused when the source opens (each such
    frame costs seconds and gigabytes); 0 = no limit."""
    groundtruth: str | None = None
    """Ground-truth trajectory file (TUM, KITTI or EuRoC csv); EuRoC: world_from_body poses."""


@dataclass(frozen=True)
class BagConfig(_Section):
    """ROS 1 / ROS 2 bags (``bag:PATH``). A topic left empty is picked from the bag's topic
    list (message type and the usual driver and dataset names); ``none`` turns a stream off."""

    image_topic: str = ""
    """Colour / grey (left) images: sensor_msgs/Image or CompressedImage."""
    right_topic: str = ""
    """Right images of a stereo pair."""
    depth_topic: str = ""
    """Depth registered to the image topic (16UC1 in depth_scale units, or 32FC1 metres)."""
    imu_topic: str = ""
    camera_info_topic: str = ""
    """CameraInfo of the image topic (default: its namespace's camera_info)."""
    right_camera_info_topic: str = ""
    depth_scale: float = bounded(1000.0, gt=0)
    """Units per metre of 16-bit depth (ROS drivers publish millimetres). > 0."""
    depth_max_time_diff_s: float = bounded(0.02, gt=0, le=3600)
    """An image and its depth pair up when their stamps differ by at most this. > 0."""
    stereo_max_time_diff_s: float = bounded(0.001, gt=0, le=3600)
    """A left and a right image pair up when their stamps differ by at most this. > 0."""


@dataclass(frozen=True)
class RealSenseConfig(_Section):
    """Intel RealSense D400 live capture and playback of its recordings (``realsense`` sources)."""

    mode: Literal["auto", "rgbd", "stereo"] = "auto"
    """rgbd: colour + depth aligned to colour; stereo: the two infrared imagers (left = image);
    auto: rgbd live, and for a recording rgbd when it has colour + depth, else stereo."""
    serial: str | None = None
    """Device to open (``realsense:SERIAL`` wins); None takes the only / first device."""
    width_px: int = bounded(640, ge=1, le=16384)
    height_px: int = bounded(480, ge=1, le=16384)
    fps: int = bounded(30, ge=1, le=1000)
    emitter: bool = True
    """Infrared dot projector (helps depth, but its dots show in the infrared images)."""
    imu: bool = True
    """Gyro + accelerometer when the device has them (D435i, D455)."""
    gyro_hz: int = bounded(200, ge=0, le=100000)
    accel_hz: int = bounded(0, ge=0, le=100000)
    """0: the device's lowest accelerometer rate (D435i 63 Hz, D455 100 Hz)."""
    timeout_s: float = bounded(5.0, gt=0)
    """A device (or recording) silent for longer ends the source with a DeviceError."""
    first_frame_timeout_s: float = bounded(15.0, gt=0)
    """Allowance for the first frame (auto-exposure and USB start-up are slow)."""
    queue_frames: int = bounded(4, ge=1, le=1024)
    """Frames buffered between the device and the consumer; a live source drops the oldest
    (counted) when the consumer is slower; a non-real-time playback waits instead."""


@dataclass(frozen=True)
class SimConfig(_Section):
    """The synthetic rig (``sim:NAME``); see slamfront/sim/ for scenes and trajectories."""

    trajectory: str = "loop"
    """loop | figure8 | still | repeated | headturn | drive (``sim:NAME`` sets it)."""
    scene: Literal["auto", "room", "repeated", "street"] = "auto"
    """auto: the scene the trajectory is made for (room, repeated or street)."""
    sensor: Literal["rgbd", "stereo", "mono"] = "rgbd"
    frames: int | None = bounded(None, ge=1, le=1000000)
    """None: the trajectory's own length."""
    width_px: int = bounded(640, ge=64, le=8192)
    height_px: int = bounded(480, ge=64, le=8192)
    hfov_deg: float = bounded(70.0, ge=10, le=150)
    """Horizontal field of view; fx = fy = (width_px / 2) / tan(hfov_deg / 2)."""
    fps: float | None = bounded(None, ge=1e-3, le=1e6)
    """Frames per second; None: the trajectory's own rate (drive: 10 Hz, the others 30 Hz)."""
    baseline_m: float = bounded(0.1, gt=0)
    seed: int = bounded(0, ge=0, lt=2**32)
    image_noise_std: float = bounded(2.0, ge=0, le=255)
    """Gaussian pixel noise, grey levels (0-255)."""
    motion_blur: bool = True
    exposure_ms: float = bounded(10.0, ge=0, le=10000)
    """Shutter time that motion_blur integrates over (centred on the frame's pose)."""
    depth_noise_std_m: float = bounded(0.0, ge=0)
    blank_start: int | None = bounded(None, ge=0)
    """First of ``blank_count`` all-black frames (zero depth; ground truth and IMU kept)."""
    blank_count: int = bounded(0, ge=0)
    imu_rate_hz: float = bounded(200.0, gt=0, le=100000)
    gyro_noise_std_rad_s: float = bounded(0.002, ge=0)
    """Per-sample white-noise standard deviation (not a density)."""
    accel_noise_std_m_s2: float = bounded(0.02, ge=0)
    gyro_bias_rad_s: tuple[float, ...] = bounded((0.001, -0.002, 0.0015), gt=-100, lt=100)
    accel_bias_m_s2: tuple[float, ...] = bounded((0.02, -0.01, 0.03), gt=-1000, lt=1000)

    def _validate(self) -> None:
        _check(len(self.gyro_bias_rad_s) == 3, "gyro_bias_rad_s", "needs 3 values")
        _check(len(self.accel_bias_m_s2) == 3, "accel_bias_m_s2", "needs 3 values")


@dataclass(frozen=True)
class RerunConfig(_Section):
    """The Rerun viewer sink (``--rerun MODE``); see slamfront/sinks/rerun_sink.py."""

    mode: str = "off"
    """off | save[:FILE.rrd] | serve | connect[:ADDR]; ``save`` alone: RUN_DIR/recording.rrd."""
    image_scale: float = bounded(0.5, gt=0, le=1)
    """Logged images (current image, matches view) are resized by this factor, (0, 1]."""
    jpeg_quality: int | None = bounded(80, ge=1, le=100)
    """None: raw pixels; 1-100: logged images are JPEG-compressed at this quality."""
    queue_size: int = bounded(8, ge=1, le=4096)
    """Per-frame results waiting for the viewer thread; further ones are dropped and counted."""
    web_port: int = bounded(9090, ge=0, le=65535)
    """serve: HTTP port of the web viewer on localhost (0: a free port)."""
    grpc_port: int = bounded(9876, ge=0, le=65535)
    """serve: gRPC port on localhost the web viewer reads from (0: a free port)."""
    server_memory_limit: str = "1GiB"
    """serve: data the server keeps for late viewers (oldest dropped first)."""
    keep_serving: bool = True
    """serve from the CLI: after the run, keep the viewer up until Ctrl-C."""
    frustum_depth_m: float = bounded(0.1, gt=0)
    """Drawn depth of camera and keyframe frustums."""
    max_match_lines: int = bounded(200, ge=0)
    """Matches view: at most this many lines (the highest-scoring matches)."""

    def _validate(self) -> None:
        scheme = self.mode.partition(":")[0]
        _check(
            scheme in ("off", "save", "serve", "connect"),
            "mode",
            f"must be off, save[:FILE.rrd], serve or connect[:ADDR], got {self.mode!r}",
        )
        _check(bool(self.server_memory_limit), "server_memory_limit", "must not be empty")


@dataclass(frozen=True)
class PipelineConfig(_Section):
    queue_size: int = bounded(4, ge=1, le=4096)
    read_thread: bool = False
    """Read the source on a thread of its own (a third one) instead of the reader thread:
    worth it when the tracking thread has time to spare, a cost when both cores are busy."""
    progress_interval_s: float = bounded(0.5, gt=0)
    """Seconds between progress reports of a run (the command line's progress bar)."""


@dataclass(frozen=True)
class Config:
    preset: str = "fast"
    extractor: ExtractorConfig = field(default_factory=ExtractorConfig)
    matcher: MatcherConfig = field(default_factory=MatcherConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    bag: BagConfig = field(default_factory=BagConfig)
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
        if Path(base).suffix in (".yaml", ".yml") and not Path(base).is_absolute():
            base = str(path.parent / base)  # a file is found beside the one that names it
        _read_preset(base, data, sources, (*seen, str(path.resolve())))
    for key, value in _flatten(content):
        _set_dotted(data, key, value)
        sources[key] = f"{path}:{lines.get(key, '?')}"
    for key, line in lines.items():  # sections too: an unknown one is named with its line
        if key != "extends" and key not in sources:
            sources[key] = f"{path}:{line}"
    if "preset" not in content:
        data["preset"] = path.stem


_MAX_YAML_KEYS = 10_000
"""More keys than any config has: a file over it is refused (a YAML alias bomb)."""


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
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    if node is None:
        return {}, {}
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}:1: the top level must be a mapping of keys")
    lines: dict[str, int] = {}
    constructor = yaml.SafeLoader(text)

    visited = [0]

    def walk(mapping: yaml.MappingNode, prefix: str) -> dict[str, Any]:
        if mapping.tag != yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG:
            # the safe loader refuses such tags on values; a section is walked here instead
            line = mapping.start_mark.line + 1
            raise ConfigError(f"{path}:{line}: the tag {mapping.tag!r} is not allowed here")
        out: dict[str, Any] = {}
        for key_node, value_node in mapping.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{path}:{line}: a key must be a name, not a list or mapping")
            visited[0] += 1
            if visited[0] > _MAX_YAML_KEYS:  # aliases of mappings can multiply keys
                raise ConfigError(f"{path}:{line}: more than {_MAX_YAML_KEYS} keys")
            key = f"{prefix}{key_node.value}"
            lines[key] = line
            if key_node.value in out:
                raise ConfigError(f"{path}:{lines[key]}: duplicate key {key!r}")
            if isinstance(value_node, yaml.MappingNode):
                out[key_node.value] = walk(value_node, key + ".")
            else:
                out[key_node.value] = constructor.construct_object(value_node, deep=True)
        return out

    try:
        return walk(node, ""), lines
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:  # e.g. a tag the safe loader refuses (!!python/object)
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: {problem}") from exc


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
    except RecursionError:
        raise ConfigError(f"{origin}: cannot parse value: nested too deeply") from None


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
