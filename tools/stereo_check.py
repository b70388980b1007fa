#!/usr/bin/env python
"""Check a rectified stereo recording's calibration against its images and ground truth.

    python tools/stereo_check.py SOURCE [--every 5] [--gap 2 3] [--set key=value ...]

SOURCE is what ``slamfront run`` takes (e.g. ``kitti:PATH:06``). Prints:

- the row offset of the pair: where the left keypoints' windows land in the right image,
  vertically (aligned in 2-D, corners only), with a plane fitted over the image; a rectified
  pair should show none;
- with ground truth: the disparity offset that makes the stereo depths of keypoints matched
  ``--gap`` frames apart agree with the true motion (true = measured + offset), per point,
  median over points and by disparity. Image matching cannot see such an offset (a principal
  column or yaw error of the rectification): it is a scale error of the trajectory.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from slamfront.geometry import transform_points, unproject


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--every", type=int, default=5, help="row offsets on every Nth frame")
    parser.add_argument("--gap", type=int, nargs="+", default=[2, 3], help="frames apart")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    args = parser.parse_args(argv)

    from slamfront import load_config, open_source
    from slamfront.frontend.alignment import align_positions, alignment_image
    from slamfront.frontend.depth import keypoint_depth
    from slamfront.frontend.extractors import build_extractor
    from slamfront.frontend.matchers import build_matcher
    from slamfront.frontend.refine import grey
    from slamfront.frontend.stereo import search_rows
    from slamfront.geometry import invert_pose

    config = load_config("fast", args.set)
    tracker = config.tracker
    extractor = build_extractor(config.extractor)
    matcher = build_matcher(config.matcher, config.extractor.model)
    frames, rows = [], []
    with open_source(args.source, config) as source:
        truth = source.groundtruth()
        for frame in source:
            rig = frame.stereo
            if rig is None or frame.image_right is None or not rig.rectified:
                print("the source gives no rectified stereo pair")
                return 2
            left_grey = grey(frame.image)
            features = extractor(frame.image)
            depth = keypoint_depth(frame, features, "stereo", left_grey, tracker)
            frames.append((frame, features, depth.depth_m))
            if frame.index % args.every:
                continue
            right_grey = alignment_image(frame.image_right, rig.right, tracker.alignment)
            if right_grey is None:
                continue
            focal_baseline = rig.left.fx * rig.baseline_m
            right_px, found = search_rows(
                left_grey,
                right_grey,
                features.keypoints.astype(np.float64),
                rig,
                min_disparity_px=tracker.stereo.min_disparity_px,
                max_disparity_px=focal_baseline / tracker.depth.min_m,
            )
            left_px = features.keypoints[found].astype(np.float64)
            aligned, ok = align_positions(
                tracker.alignment, left_grey, right_grey, left_px, right_px[found]
            )
            corner = _corners(left_grey, left_px)
            keep = ok & corner
            rows.append(np.c_[left_px[keep], aligned[keep, 1] - left_px[keep, 1]])
    camera = frames[0][0].camera
    offsets = np.concatenate(rows) if rows else np.zeros((0, 3))
    if len(offsets) >= 10:
        design = np.c_[np.ones(len(offsets)), offsets[:, :2] - [camera.cx, camera.cy]]
        fit = np.linalg.lstsq(design, offsets[:, 2], rcond=None)[0]
        print(
            f"row offset (right - left) over {len(offsets)} corners: median "
            f"{np.median(offsets[:, 2]):+.3f} px; plane {fit[0]:+.3f} px "
            f"{fit[1] * 1e3:+.3f} px per 1000 columns {fit[2] * 1e3:+.3f} px per 1000 rows "
            f"(from the principal point)"
        )
    if truth is None:
        print("no ground truth: no disparity offset")
        return 0
    rig = frames[0][0].stereo
    assert rig is not None
    focal_baseline = rig.left.fx * rig.baseline_m
    poses = {int(s): p for s, p in zip(truth.stamps_ns, truth.world_from_body, strict=True)}
    found, disparities = [], []
    for i, (frame_i, feat_i, depth_i) in enumerate(frames):
        for gap in args.gap:
            if i + gap >= len(frames):
                continue
            frame_j, feat_j, depth_j = frames[i + gap]
            if frame_i.stamp_ns not in poses or frame_j.stamp_ns not in poses:
                continue
            j_from_i = invert_pose(poses[frame_j.stamp_ns]) @ poses[frame_i.stamp_ns]
            pairs = matcher(feat_i, feat_j).indices
            both = (depth_i[pairs[:, 0]] > 0) & (depth_j[pairs[:, 1]] > 0)
            pairs = pairs[both]
            d_i = focal_baseline / depth_i[pairs[:, 0]].astype(np.float64)
            d_j = focal_baseline / depth_j[pairs[:, 1]].astype(np.float64)
            offset = _offset_per_point(
                camera.K,
                (feat_i.keypoints[pairs[:, 0]], feat_j.keypoints[pairs[:, 1]]),
                (d_i, d_j),
                focal_baseline,
                j_from_i,
            )
            found.append(offset)
            disparities.append(d_i)
    if not found:
        print("no frames with ground truth")
        return 0
    offset, disparity = np.concatenate(found), np.concatenate(disparities)
    good = np.isfinite(offset)
    print(
        f"disparity offset from the true motion over {good.sum()} points: median "
        f"{np.median(offset[good]):+.3f} px (true = measured + offset)"
    )
    for lo, hi in ((0, 10), (10, 20), (20, 40), (40, np.inf)):
        sel = good & (disparity >= lo) & (disparity < hi)
        if sel.sum() >= 20:
            print(
                f"  disparity {lo}-{hi} px: {np.median(offset[sel]):+.3f} px ({sel.sum()} points)"
            )
    return 0


def _corners(image: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Mask of the positions whose 21-pixel window has texture in two directions (the smaller
    structure-tensor eigenvalue at least a third of the larger): no aperture problem."""
    gx = cv2.Sobel(image.astype(np.float32), cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(image.astype(np.float32), cv2.CV_32F, 0, 1)
    xx, yy, xy = (cv2.boxFilter(a, -1, (21, 21)) for a in (gx * gx, gy * gy, gx * gy))
    u = np.clip(np.rint(px[:, 0]).astype(int), 0, image.shape[1] - 1)
    v = np.clip(np.rint(px[:, 1]).astype(int), 0, image.shape[0] - 1)
    a, b, c = xx[v, u], yy[v, u], xy[v, u]
    root = np.sqrt(np.maximum((a - b) ** 2 / 4 + c * c, 0.0))
    return (a + b) / 2 - root > ((a + b) / 2 + root) / 3


def _offset_per_point(
    K: np.ndarray,
    px: tuple[np.ndarray, np.ndarray],
    disparity: tuple[np.ndarray, np.ndarray],
    focal_baseline: float,
    j_from_i: np.ndarray,
) -> np.ndarray:
    """Per point matched from frame i to j (pixels ``px``, measured ``disparity`` in each), the
    offset b for which the depth of disparity ``d_i + b`` moved by the true motion has the
    disparity ``d_j + b`` (Newton steps); NaN where the moved point does not land within 3 px
    of its match (a moving object, a wrong match) or no offset fits."""
    (px_i, px_j), (d_i, d_j) = px, disparity

    def residual(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        points = transform_points(j_from_i, unproject(K, px_i, focal_baseline / (d_i + b)))
        return focal_baseline / points[:, 2] - (d_j + b), points

    b = np.zeros(len(d_i))
    for _ in range(15):
        r0, _ = residual(b)
        r1, _ = residual(b + 1e-3)
        b = np.clip(b - r0 / ((r1 - r0) / 1e-3 - 1e-12), -5.0, 5.0)
    _, moved = residual(np.zeros(len(d_i)))
    seen = (moved[:, :2] / moved[:, 2:3]) @ K[:2, :2].T + K[:2, 2]
    lands = (np.linalg.norm(seen - px_j, axis=1) < 3.0) & (moved[:, 2] > 0)
    converged = np.abs(residual(b)[0]) < 1e-3
    return np.where(lands & converged & (np.abs(b) < 5.0), b, np.nan)


if __name__ == "__main__":
    raise SystemExit(main())
