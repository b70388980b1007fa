#!/usr/bin/env python
"""Benchmark the synthetic rig: median wall time per frame and frames/s, per sensor.

    python tools/bench_sim.py [--frames 90] [--warmup 5] [--sensors rgbd,stereo,mono]
                              [--trajectory loop] [--threads N] [key=value ...]

Times ``next(frame)`` of a ``sim`` source with the ``fast`` preset's sim settings (640x480,
motion blur and pixel noise on, IMU at 200 Hz) plus any ``sim.*`` overrides given, on a
scene built once beforehand (its build time is printed separately). Also prints the
process CPU time per frame, which is less sensitive to other load on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--frames", type=int, default=90, help="timed frames per sensor")
    parser.add_argument("--warmup", type=int, default=5, help="untimed frames first")
    parser.add_argument("--sensors", default="rgbd,stereo,mono")
    parser.add_argument("--trajectory", default="loop")
    parser.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)

    import cv2
    import numpy as np

    from slamfront.bench.common import TimingStats, machine_info
    from slamfront.config import load_config
    from slamfront.sim.scene import build_scene
    from slamfront.sources.sim import SimSource

    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    base = load_config("fast", [f"sim.trajectory={args.trajectory}", *args.overrides])
    start = time.perf_counter()
    from slamfront.sim.trajectories import get_trajectory

    scene_name = get_trajectory(args.trajectory).scene
    scene = build_scene(scene_name, base.sim.seed)
    scene_s = time.perf_counter() - start
    info = machine_info()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, load average "
        f"{os.getloadavg()[0]:.2f} (shared machine: wall times vary with other load)"
    )
    print(
        f"scene {scene_name!r}: built in {scene_s:.2f} s, atlas "
        f"{scene.atlas.image.shape[1]}x{scene.atlas.image.shape[0]} "
        f"({scene.atlas.image.nbytes / 1e6:.0f} MB), {len(scene.faces)} faces"
    )
    results: dict[str, dict[str, float]] = {}
    for sensor in [s.strip() for s in args.sensors.split(",") if s.strip()]:
        config = load_config(
            "fast",
            [f"sim.trajectory={args.trajectory}", *args.overrides, f"sim.sensor={sensor}"],
        )
        source = SimSource(config, scene)
        needed = args.warmup + args.frames
        if len(source) < needed:
            print(f"{sensor}: only {len(source)} frames, need {needed}", file=sys.stderr)
            return 2
        frames = iter(source)
        for _ in range(args.warmup):
            next(frames)
        wall_ms, cpu_ms = [], []
        for _ in range(args.frames):
            w0, c0 = time.perf_counter(), time.process_time()
            next(frames)
            wall_ms.append((time.perf_counter() - w0) * 1e3)
            cpu_ms.append((time.process_time() - c0) * 1e3)
        wall = TimingStats.of(wall_ms)
        cpu = float(np.median(cpu_ms))
        sim = config.sim
        print(
            f"{sensor:6s} {sim.width_px}x{sim.height_px}: median {wall.median_ms:6.2f} ms/frame "
            f"({1e3 / wall.median_ms:5.1f} fps), p90 {wall.p90_ms:6.2f} ms, "
            f"CPU {cpu:6.2f} ms/frame, {wall.runs} frames"
        )
        results[sensor] = {
            "median_ms": wall.median_ms,
            "p90_ms": wall.p90_ms,
            "fps": 1e3 / wall.median_ms,
            "cpu_median_ms": cpu,
        }
    if args.json:
        print(json.dumps({"scene_build_s": scene_s, "sensors": results, "machine": info}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
