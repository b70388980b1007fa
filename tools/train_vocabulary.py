#!/usr/bin/env python
"""Train the VLAD vocabulary of one extractor and write it as a package .npz.

    python tools/train_vocabulary.py --preset fast \\
        --images '../shared/data/textures/*/*.png' \\
        --source sim:figure8 --frames 40 --stride 15 --set sim.seed=3 \\
        --out slamfront/backend/vocabularies/xfeat.npz

Runs the preset's extractor (the same one slamfront runs) on every image, at full size and
scaled by each ``--scales`` factor, collects the local descriptors and trains ``--words``
visual words with spherical k-means (binary and wide descriptors are first PCA-projected to
``--dim`` dimensions, so every vocabulary gives 16 x 64 = 1024-d global descriptors).
Keep evaluation images (HPatches, EuRoC, TUM fr2/desk) out of the training set.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import numpy as np


def _read_grey(path: str) -> np.ndarray:
    import cv2

    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise SystemExit(f"cannot read image {path}")
    return image


def _descriptor_sets(args: argparse.Namespace) -> tuple[str, list[np.ndarray]]:
    import cv2

    import slamfront as sf

    config = sf.load_config(args.preset, args.set)
    extractor = sf.load_extractor(config, runtime=args.runtime, max_keypoints=args.max_keypoints)
    sets: list[np.ndarray] = []
    paths = sorted(p for pattern in args.images for p in glob.glob(pattern))
    if args.images and not paths:
        raise SystemExit(f"no image matches {args.images}")
    for path in paths:
        image = _read_grey(path)
        for scale in (1.0, *args.scales):
            scaled = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale)
            sets.append(extractor(scaled).descriptors)
    for spec in args.source:
        with sf.open_source(spec, config) as source:
            for i, frame in enumerate(source):
                if i >= args.frames * args.stride:
                    break
                if i % args.stride == 0:
                    sets.append(extractor(frame.image).descriptors)
    return config.extractor.model, sets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast", help="preset whose extractor to run")
    parser.add_argument("--images", nargs="*", default=[], help="image globs")
    parser.add_argument("--source", nargs="*", default=[], help="source specs (sim:loop)")
    parser.add_argument("--frames", type=int, default=100, help="frames taken per source")
    parser.add_argument("--stride", type=int, default=5, help="take every n-th source frame")
    parser.add_argument("--scales", type=float, nargs="*", default=[0.7], help="extra scales")
    parser.add_argument("--max-keypoints", type=int, default=None)
    parser.add_argument("--runtime", default="torch", help="extractor runtime (reference: torch)")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (sim.seed=3)"
    )
    parser.add_argument("--words", type=int, default=16)
    parser.add_argument("--dim", type=int, default=64, help="PCA dimension for wide/binary")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)

    from slamfront.backend.vocabulary import train_vocabulary

    start = time.perf_counter()
    name, sets = _descriptor_sets(args)
    total = sum(len(d) for d in sets)
    print(f"{name}: {total} descriptors from {len(sets)} images", file=sys.stderr)
    width = sets[0].shape[1] * (8 if sets[0].dtype == np.uint8 else 1)
    vocabulary = train_vocabulary(
        sets,
        name=name,
        num_words=args.words,
        projection_dim=args.dim if width > args.dim else None,
        seed=args.seed,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    vocabulary.save(args.out)
    print(
        f"wrote {args.out} ({vocabulary.vocabulary_id}, {vocabulary.num_words} words, "
        f"{vocabulary.global_dim}-d global) in {time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
