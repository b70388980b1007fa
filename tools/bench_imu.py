#!/usr/bin/env python
"""Benchmark the IMU's cost in the tracker: CPU time per frame of the inertial odometry
(integrate the frame's samples, predict, update) on the simulator's head-turn motion.

    python tools/bench_imu.py [--rate-hz 200] [--fps 30] [--frames 240] [--runs 5]

Prints the median over runs of the median per-frame process time, milliseconds; frames are
built without rendering so that only the IMU code is timed.
"""

from __future__ import annotations

import argparse
import statistics
import time

SETTLE_FRAMES = 30
"""Frames left out of the timing: the IMU's initialisation."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rate-hz", type=float, default=200.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if args.frames <= SETTLE_FRAMES or args.runs < 1 or args.fps <= 0 or args.rate_hz <= 0:
        parser.error(
            f"--frames must exceed the {SETTLE_FRAMES} frames left out while the IMU initialises, "
            "--runs be at least 1, --fps and --rate-hz positive"
        )

    import numpy as np

    from slamfront.config import ImuConfig, SimConfig
    from slamfront.frontend.inertial_odometry import InertialOdometry
    from slamfront.sim.imu import ImuErrors, imu_samples, imu_stamps_ns
    from slamfront.sim.rig import BODY_FROM_CAM, sim_camera
    from slamfront.sim.trajectories import get_trajectory
    from slamfront.types import Frame

    model = get_trajectory("headturn")
    errors = ImuErrors((0.001, -0.002, 0.0015), (0.02, -0.01, 0.03), 0.002, 0.02)
    rng = np.random.default_rng(0)
    camera, image = sim_camera(SimConfig()), np.zeros((8, 8), np.uint8)
    frames, poses, previous = [], [], -1
    for index in range(args.frames):
        stamp = round(index * 1e9 / args.fps)
        samples = imu_samples(
            model, BODY_FROM_CAM, imu_stamps_ns(previous, stamp, args.rate_hz), errors, rng
        )
        frames.append(Frame(index, stamp, image, camera, imu=samples, body_from_cam=BODY_FROM_CAM))
        poses.append(model.world_from_cam(stamp * 1e-9))
        previous = stamp
    medians = []
    for _ in range(args.runs):
        imu = InertialOdometry(ImuConfig())
        per_frame = []
        for frame, pose in zip(frames, poses, strict=True):
            start = time.process_time()
            imu.integrate(frame)
            imu.predict(pose)
            imu.update(frame.stamp_ns, pose)
            per_frame.append((time.process_time() - start) * 1e3)
        medians.append(statistics.median(per_frame[SETTLE_FRAMES:]))
    print(
        f"IMU per frame ({args.rate_hz:g} Hz IMU, {args.fps:g} fps): median "
        f"{statistics.median(medians):.3f} ms of CPU (runs: "
        + ", ".join(f"{m:.3f}" for m in medians)
        + ")"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
