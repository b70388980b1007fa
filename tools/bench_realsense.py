#!/usr/bin/env python
"""Benchmark RealSense playback: median wall time per frame through ``realsense-file:``.

    python tools/bench_realsense.py [--frames 90] [--width 640] [--height 480]

Writes three synthetic recordings with the SDK's software device and recorder (random
colour, depth in millimetres, 3 IMU readings per frame), then times each frame handed out
by the source played as fast as possible: depth already registered to colour (no
alignment), depth that the SDK must align to colour (5 cm apart, other intrinsics), and the
infrared stereo pair. Needs pyrealsense2. The first 5 frames of each run are not timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args(argv)

    import numpy as np

    from slamfront.bench.common import TimingStats, machine_info
    from slamfront.config import load_config
    from slamfront.sources import open_source
    from slamfront.sources.realsense_synthetic import write_recording
    from slamfront.types import CameraModel, Frame, ImuSample, StereoRig

    width, height, count = args.width, args.height, args.frames + 5
    rng = np.random.default_rng(0)
    camera = CameraModel(width, height, 0.95 * width, 0.95 * width, width / 2, height / 2)
    depth_camera = CameraModel(width, height, 0.9 * width, 0.9 * width, width / 2, height / 2)
    color_from_depth = np.eye(4)
    color_from_depth[0, 3] = -0.05
    rig = StereoRig(camera, camera, np.diag([1.0, 1.0, 1.0, 1.0]), rectified=True)
    rig.right_from_left[0, 3] = -0.05
    period_ns = 33_333_333

    def rgbd(i: int) -> Frame:
        stamp = 10**9 + i * period_ns
        imu = tuple(
            ImuSample(stamp - period_ns + (k + 1) * period_ns // 3, (0.0, 0.1, 0.0), (0, -9.8, 0))
            for k in range(3)
        )
        depth = rng.integers(300, 5000, (height, width)).astype(np.float32) * 0.001
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        return Frame(i, stamp, image, camera, depth_m=depth, imu=imu, body_from_cam=np.eye(4))

    def stereo(i: int) -> Frame:
        pair = rng.integers(0, 256, (2, height, width), dtype=np.uint8)
        return Frame(i, 10**9 + i * period_ns, pair[0], camera, image_right=pair[1], stereo=rig)

    config = load_config("fast")
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "rgbd_registered": (rgbd, {}),
            "rgbd_aligned": (
                rgbd,
                {"depth_camera": depth_camera, "color_from_depth": color_from_depth},
            ),
            "stereo": (stereo, {}),
        }
        for name, (make, extra) in cases.items():
            path = Path(tmp) / f"{name}.db3"
            start = time.perf_counter()
            write_recording(path, (make(i) for i in range(count)), **extra)  # type: ignore[arg-type]
            write_ms = (time.perf_counter() - start) * 1e3 / count
            samples = []
            with open_source(f"realsense-file:{path}", config) as source:
                last = time.perf_counter()
                for frame in source:
                    now = time.perf_counter()
                    if frame.index >= 5:
                        samples.append((now - last) * 1e3)
                    last = now
            stats = TimingStats.of(samples)
            results[name] = {"read": stats.__dict__, "write_ms_per_frame": write_ms}
            print(
                f"{name:<16} {width}x{height}: read median {stats.median_ms:6.2f} ms "
                f"(p90 {stats.p90_ms:6.2f}, {1e3 / stats.median_ms:6.1f} frames/s), "
                f"write {write_ms:6.2f} ms/frame, {stats.runs} frames"
            )
    print(json.dumps({"machine": machine_info(), "results": results}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
