"""Extractors: image -> Features, the same on every runtime.

``build_extractor(cfg)`` returns a callable ``image -> Features``. For the learned models
(``xfeat``, ``disk``, ``superpoint``) the work is split in three:

1. host, shared by all runtimes (:func:`prepare_image`): check the image, convert it to the
   network's channels, resize it to multiples of the network stride, scale to [0, 1];
2. the runtime (torch, ONNX Runtime or TensorRT) runs the detector graph — network, NMS,
   threshold, border, top-k, sub-pixel refinement and descriptor sampling — returning
   ``max_keypoints`` fixed-size slots (``models/keypoints.py``);
3. host, shared (:func:`finish_features`): keep the valid slots and map them back to the
   caller's pixels.

``model: orb`` (the ``classic`` preset) is OpenCV ORB with uint8 descriptors.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from slamfront.errors import InputError, RuntimeUnavailableError
from slamfront.frontend.export import ensure_extractor_onnx
from slamfront.frontend.models.specs import MODEL_SPECS, ModelSpec
from slamfront.frontend.runtime.availability import pick_runtime, runtime_report
from slamfront.frontend.runtime.extractor_base import DetectorOutputs, DetectorRuntime
from slamfront.frontend.runtime.extractor_onnx import OnnxDetector
from slamfront.frontend.runtime.extractor_tensorrt import TensorRTDetector
from slamfront.frontend.runtime.extractor_torch import TorchDetector
from slamfront.types import Features

if TYPE_CHECKING:
    from slamfront.config import ExtractorConfig
    from slamfront.frontend.base import Extractor

log = logging.getLogger(__name__)

MIN_IMAGE_SIDE_PX = 32
"""Smaller images are rejected: the networks need at least one 32-pixel block."""


# ----------------------------------------------------------------------------- host side


def check_image(image: object) -> np.ndarray:
    """``image`` as an (H, W, C) uint8 view with C in {1, 3}; InputError if it is not one."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        hint = ""
        if image.dtype.kind == "f" and image.size and not np.isfinite(image).all():
            hint = " (and it contains NaN or infinite values)"
        raise InputError(
            f"image must be uint8 (HxW grey or HxWx3 RGB), got dtype {image.dtype}{hint}"
        )
    if image.ndim == 2:
        image = image[:, :, None]
    elif image.ndim != 3:
        raise InputError(f"image must be HxW or HxWx3, got shape {image.shape}")
    height, width, channels = image.shape
    if channels not in (1, 3):
        raise InputError(
            f"image must have 1 (grey) or 3 (RGB) channels, got {channels} (shape {image.shape})"
        )
    if height < MIN_IMAGE_SIDE_PX or width < MIN_IMAGE_SIDE_PX:
        raise InputError(
            f"image is {width}x{height} px; the extractor needs at least "
            f"{MIN_IMAGE_SIDE_PX}x{MIN_IMAGE_SIDE_PX}"
        )
    return image


@dataclass(frozen=True, eq=False)
class NetworkInput:
    """An image prepared for a network.

    tensor: (1, C, H', W') float32 in [0, 1], H' and W' multiples of the network stride;
    image_size: (width, height) of the caller's image; scale_xy: caller pixels per network
    pixel along x and y.
    """

    tensor: np.ndarray
    image_size: tuple[int, int]
    scale_xy: tuple[float, float]


def network_size(width: int, height: int, stride_px: int, max_area_px: int = 0) -> tuple[int, int]:
    """(W', H'): the image scaled down to at most ``max_area_px`` pixels (0: no limit), then
    each side rounded down to a multiple of the stride (at least one stride)."""
    scale = 1.0
    if 0 < max_area_px < width * height:
        scale = math.sqrt(max_area_px / (width * height))
    return (
        max(stride_px, int(width * scale) // stride_px * stride_px),
        max(stride_px, int(height * scale) // stride_px * stride_px),
    )


def prepare_image(image: np.ndarray, spec: ModelSpec, max_area_px: int = 0) -> NetworkInput:
    """Checked, channel-converted, resized network input (see :class:`NetworkInput`); scaled
    down to at most ``max_area_px`` pixels when that is set (0: full resolution)."""
    import cv2

    checked = check_image(image)
    height, width, channels = checked.shape
    pixels: np.ndarray = checked.astype(np.float32)
    if spec.input_channels == 1:
        if channels == 3:
            pixels = pixels @ np.asarray(spec.grey_weights, dtype=np.float32)
        else:
            pixels = pixels[:, :, 0]
    elif channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    net_w, net_h = network_size(width, height, spec.stride_px, max_area_px)
    if (net_w, net_h) != (width, height):
        # area averaging when shrinking for real (no aliasing), else a stretch to the stride
        shrink = net_w * net_h < 0.9 * width * height
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        pixels = cv2.resize(pixels, (net_w, net_h), interpolation=interpolation)
    pixels *= np.float32(1.0 / 255.0)
    tensor = pixels[None, None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)[None]
    return NetworkInput(
        tensor=np.ascontiguousarray(tensor, dtype=np.float32),
        image_size=(width, height),
        scale_xy=(width / net_w, height / net_h),
    )


def finish_features(outputs: DetectorOutputs, prepared: NetworkInput) -> Features:
    """The valid detections, in the caller's pixels (pixel centres are integers)."""
    valid = outputs.valid
    scale = np.asarray(prepared.scale_xy, dtype=np.float32)
    keypoints = (outputs.keypoints[valid] + np.float32(0.5)) * scale - np.float32(0.5)
    return Features(
        keypoints=np.ascontiguousarray(keypoints, dtype=np.float32),
        scores=np.ascontiguousarray(outputs.scores[valid], dtype=np.float32),
        descriptors=np.ascontiguousarray(outputs.descriptors[valid], dtype=np.float32),
        image_size=prepared.image_size,
    )


# ----------------------------------------------------------------------------- extractors


class LearnedExtractor:
    """``image -> Features`` for a learned model on one runtime (see the module docstring).

    ``spec`` and ``runtime`` (the runtime's name) are read-only descriptions.
    """

    def __init__(
        self, spec: ModelSpec, detector: DetectorRuntime, runtime: str, max_area_px: int = 0
    ) -> None:
        self.spec = spec
        self.runtime = runtime
        self._detector = detector
        self._max_area_px = max_area_px

    def __call__(self, image: np.ndarray) -> Features:
        prepared = prepare_image(image, self.spec, self._max_area_px)
        return finish_features(self._detector(prepared.tensor), prepared)


class OrbExtractor:
    """OpenCV ORB (``model: orb``): up to ``max_keypoints`` corners, 32-byte uint8 descriptors.

    Scores are the Harris responses; keypoints are sorted by score. ORB has no sub-pixel step.
    """

    descriptor_bytes = 32

    def __init__(self, max_keypoints: int) -> None:
        import cv2

        self._orb = cv2.ORB_create(nfeatures=max_keypoints)  # type: ignore[attr-defined]

    def __call__(self, image: np.ndarray) -> Features:
        import cv2

        checked = check_image(image)
        height, width, channels = checked.shape
        grey = cv2.cvtColor(checked, cv2.COLOR_RGB2GRAY) if channels == 3 else checked[:, :, 0]
        keypoints, descriptors = self._orb.detectAndCompute(np.ascontiguousarray(grey), None)
        if descriptors is None or not keypoints:
            return Features(
                keypoints=np.zeros((0, 2), np.float32),
                scores=np.zeros((0,), np.float32),
                descriptors=np.zeros((0, self.descriptor_bytes), np.uint8),
                image_size=(width, height),
            )
        xy = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
        response = np.array([k.response for k in keypoints], dtype=np.float32)
        order = np.argsort(-response, kind="stable")
        return Features(
            keypoints=np.ascontiguousarray(xy[order]),
            scores=np.ascontiguousarray(response[order]),
            descriptors=np.ascontiguousarray(descriptors[order], dtype=np.uint8),
            image_size=(width, height),
        )


# ----------------------------------------------------------------------------- building


def build_extractor(cfg: ExtractorConfig) -> Extractor:
    """The extractor of ``cfg`` on its runtime (``auto``: TensorRT > ONNX Runtime > torch)."""
    if cfg.model == "orb":
        return OrbExtractor(cfg.max_keypoints)
    spec = MODEL_SPECS[cfg.model]
    runtime = pick_runtime(cfg.runtime)
    detector: DetectorRuntime
    if runtime == "torch":
        from slamfront.frontend.models.detector import build_detector  # imports torch

        detector = TorchDetector(build_detector(cfg), cfg.device)
    elif runtime == "onnxruntime":
        detector = OnnxDetector(ensure_extractor_onnx(cfg), cfg.threads)
    else:
        probe = runtime_report().probe("tensorrt")
        if not probe.usable:  # say so before spending time on an ONNX export
            raise RuntimeUnavailableError(f"runtime tensorrt is not usable here: {probe.detail}")
        detector = TensorRTDetector(ensure_extractor_onnx(cfg), cfg)
    log.debug("extractor %s on %s", cfg.model, runtime)
    return LearnedExtractor(spec, detector, runtime, cfg.max_area_px)


__all__ = [
    "MODEL_SPECS",
    "LearnedExtractor",
    "ModelSpec",
    "NetworkInput",
    "OrbExtractor",
    "build_extractor",
    "check_image",
    "finish_features",
    "prepare_image",
]
