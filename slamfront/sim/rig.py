"""The synthetic sensor rig: frames of a trajectory through a scene, by index.

A :class:`SimRig` turns a :class:`~slamfront.config.SimConfig` into frames: the camera pose
at each stamp comes from the named trajectory, images (and depth) from the renderer,
optionally blurred over the exposure and noised, plus IMU samples since the previous frame.
Every frame is a pure function of (config, index, previous stamp): random access and
iteration give the same arrays, and the same seed gives the same sequence.

Sensors: ``rgbd`` (RGB + exact depth in metres), ``stereo`` (rectified pair with identical
pinhole intrinsics, the right camera ``baseline_m`` along the left camera's +x; no depth),
``mono`` (RGB only). All carry IMU samples and ``body_from_cam``.

Pixel noise is i.i.d. Gaussian per pixel and channel within a frame, rounded to whole grey
levels; for speed it is a window, placed at random each frame, of a Gaussian field drawn
once per rig (4x the image area). Depth noise (on valid pixels only) works the same way.
"""

from __future__ import annotations

import math

import numpy as np

from slamfront.config import SimConfig
from slamfront.geometry import invert_pose, make_pose, so3_exp
from slamfront.sim.blur import blur_displacement, motion_blur
from slamfront.sim.imu import ImuErrors, imu_samples, imu_stamps_ns
from slamfront.sim.renderer import Renderer
from slamfront.sim.scene import Scene, build_scene
from slamfront.sim.trajectories import TrajectoryModel, get_trajectory
from slamfront.types import CameraModel, Frame, ImuNoise, StereoRig

BODY_FROM_CAM = make_pose(so3_exp(np.array([0.012, -0.02, 0.008])), np.array([0.04, -0.015, 0.01]))
"""The IMU-camera extrinsic of the rig: a small rotation (about 1.4 deg) and 4.4 cm offset."""
BODY_FROM_CAM.setflags(write=False)


def sim_camera(config: SimConfig) -> CameraModel:
    """The rig's undistorted pinhole: square pixels, principal point at the image centre."""
    focal = (config.width_px / 2.0) / math.tan(math.radians(config.hfov_deg) / 2.0)
    return CameraModel(
        width_px=config.width_px,
        height_px=config.height_px,
        fx=focal,
        fy=focal,
        cx=(config.width_px - 1) / 2.0,
        cy=(config.height_px - 1) / 2.0,
    )


class SimRig:
    """Renders frame ``index`` of the configured sequence. Raises ValueError on a bad config."""

    def __init__(self, config: SimConfig, scene: Scene | None = None) -> None:
        self.config = config
        try:
            self.trajectory: TrajectoryModel = get_trajectory(config.trajectory)
        except ValueError as exc:
            raise ValueError(f"sim.trajectory: {exc}") from exc
        scene_name = self.trajectory.scene if config.scene == "auto" else config.scene
        if scene_name != self.trajectory.scene:
            raise ValueError(
                f"sim.scene: trajectory {self.trajectory.name!r} is made for scene "
                f"{self.trajectory.scene!r}, not {scene_name!r} (use sim.scene=auto)"
            )
        if scene is not None and (scene.name != scene_name or scene.seed != config.seed):
            raise ValueError(
                f"scene {scene.name!r} seed {scene.seed} given, but the config needs "
                f"{scene_name!r} seed {config.seed}"
            )
        self.scene = scene if scene is not None else build_scene(scene_name, config.seed)
        self.fps = config.fps if config.fps is not None else self.trajectory.fps
        self.camera = sim_camera(config)
        self.renderer = Renderer(self.scene, self.camera)
        self.num_frames = (
            config.frames
            if config.frames is not None
            else max(1, round(self.trajectory.duration_s * self.fps))
        )
        self.body_from_cam = BODY_FROM_CAM.copy()
        self.right_from_left = make_pose(np.eye(3), np.array([-config.baseline_m, 0.0, 0.0]))
        self.stereo = (
            StereoRig(self.camera, self.camera, self.right_from_left, rectified=True)
            if config.sensor == "stereo"
            else None
        )
        self.imu_errors = ImuErrors(
            gyro_bias_rad_s=_triple(config.gyro_bias_rad_s),
            accel_bias_m_s2=_triple(config.accel_bias_m_s2),
            gyro_noise_std_rad_s=config.gyro_noise_std_rad_s,
            accel_noise_std_m_s2=config.accel_noise_std_m_s2,
        )
        # the rig's calibration as a data sheet states it: densities from per-sample deviations
        # (std = density x sqrt(rate)); the biases are constant: small walks
        root_rate = math.sqrt(config.imu_rate_hz)
        self.imu_noise = ImuNoise(
            gyro_noise_density=max(config.gyro_noise_std_rad_s / root_rate, 1e-6),
            gyro_random_walk=1e-5,
            accel_noise_density=max(config.accel_noise_std_m_s2 / root_rate, 1e-5),
            accel_random_walk=1e-4,
            rate_hz=config.imu_rate_hz,
        )
        bank_rng = np.random.default_rng([config.seed, 0x5EED])
        h, w = config.height_px, config.width_px
        self._image_noise: np.ndarray | None = None
        if config.image_noise_std > 0:
            field = bank_rng.standard_normal((2 * h, 2 * w, 3), dtype=np.float32)
            self._image_noise = np.rint(field * config.image_noise_std).astype(np.int16)
        self._depth_noise: np.ndarray | None = None
        if config.depth_noise_std_m > 0:
            self._depth_noise = bank_rng.standard_normal((2 * h, 2 * w), dtype=np.float32)

    # ------------------------------------------------------------------ timing and poses

    def stamp_ns(self, index: int) -> int:
        return round(index * 1e9 / self.fps)

    def world_from_cam(self, index: int) -> np.ndarray:
        """Ground-truth pose of the left/colour camera at frame ``index``."""
        pose: np.ndarray = self.trajectory.world_from_cam(self.stamp_ns(index) * 1e-9)
        return pose

    def is_blank(self, index: int) -> bool:
        start = self.config.blank_start
        return start is not None and start <= index < start + self.config.blank_count

    # ------------------------------------------------------------------ frames

    def frame(self, index: int, previous_stamp_ns: int | None = None) -> Frame:
        """Frame ``index``; its IMU samples are those after ``previous_stamp_ns`` (default:
        one frame interval earlier, never before 0) up to and including its stamp."""
        cfg = self.config
        stamp = self.stamp_ns(index)
        if previous_stamp_ns is None:
            previous_stamp_ns = max(-1, stamp - round(1e9 / self.fps))
        t_s = stamp * 1e-9
        world_from_cam = self.trajectory.world_from_cam(t_s)
        rng = np.random.default_rng([cfg.seed, index, 1])
        imu_rng = np.random.default_rng([cfg.seed, index, 2])
        imu = imu_samples(
            self.trajectory,
            self.body_from_cam,
            imu_stamps_ns(previous_stamp_ns, stamp, cfg.imu_rate_hz),
            self.imu_errors,
            imu_rng if (cfg.gyro_noise_std_rad_s > 0 or cfg.accel_noise_std_m_s2 > 0) else None,
        )
        h, w = cfg.height_px, cfg.width_px
        depth: np.ndarray | None
        right: np.ndarray | None = None
        if self.is_blank(index):
            image = np.zeros((h, w, 3), np.uint8)
            depth = np.zeros((h, w), np.float32)
            if cfg.sensor == "stereo":
                right = np.zeros((h, w, 3), np.uint8)
        else:
            image, depth = self._view(world_from_cam, t_s, np.eye(4), rng)
            if cfg.sensor == "stereo":
                right, _ = self._view(world_from_cam, t_s, invert_pose(self.right_from_left), rng)
        if cfg.sensor == "rgbd":
            assert depth is not None
            if self._depth_noise is not None and not self.is_blank(index):
                depth = self._noisy_depth(depth, rng)
        else:
            depth = None
        return Frame(
            index=index,
            stamp_ns=stamp,
            image=image,
            camera=self.camera,
            depth_m=depth,
            image_right=right,
            stereo=self.stereo,
            imu=imu,
            body_from_cam=self.body_from_cam.copy(),
            imu_noise=self.imu_noise,
            source_path=f"sim:{self.trajectory.name}",
        )

    def _view(
        self,
        world_from_left: np.ndarray,
        t_s: float,
        left_from_cam: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(image uint8, exact depth) of the camera at ``world_from_left @ left_from_cam``."""
        import cv2

        cfg = self.config
        world_from_cam = world_from_left @ left_from_cam
        view = self.renderer(world_from_cam, rgbx=True)
        image: np.ndarray = view.image
        if cfg.motion_blur and cfg.exposure_ms > 0:
            end = self.trajectory.world_from_cam(t_s + 0.5e-3 * cfg.exposure_ms) @ left_from_cam
            end_from_mid = invert_pose(end) @ world_from_cam
            dx, dy = blur_displacement(view.depth_m, self.camera, end_from_mid)
            image = motion_blur(image, dx, dy)
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
        if self._image_noise is not None:
            image = cv2.add(image, self._noise_window(self._image_noise, rng), dtype=cv2.CV_8U)
        return image, view.depth_m

    def _noise_window(self, bank: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = self.config.height_px, self.config.width_px
        oy = int(rng.integers(0, bank.shape[0] - h + 1))
        ox = int(rng.integers(0, bank.shape[1] - w + 1))
        window: np.ndarray = bank[oy : oy + h, ox : ox + w]
        return window

    def _noisy_depth(self, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        assert self._depth_noise is not None
        noise = self._noise_window(self._depth_noise, rng) * np.float32(
            self.config.depth_noise_std_m
        )
        noisy = depth + noise
        noisy[(depth <= 0) | (noisy <= 0)] = 0.0
        return noisy.astype(np.float32)


def _triple(values: tuple[float, ...]) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))
