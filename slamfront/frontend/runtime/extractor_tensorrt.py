"""The GPU runtime: a TensorRT 10 engine built from the exported ONNX detector graph.

The engine is built once per (ONNX sha256, TensorRT version, GPU name, precision, profile)
and cached on disk (``extractor.engine_dir``, default ``~/.cache/slamfront/tensorrt``); the
optimisation profile covers network input sizes from ``tensorrt_min_size_px`` to
``tensorrt_max_size_px`` (width, height), tuned for ``tensorrt_opt_size_px``. Buffers are
torch CUDA tensors when torch sees a CUDA device, else pycuda allocations.

Written against the TensorRT 10 Python API (named I/O tensors, ``execute_async_v3``).
TensorRT and CUDA are imported lazily; without them the constructor raises
:class:`~slamfront.errors.RuntimeUnavailableError`. No machine of this project has a GPU,
so this module is exercised only by the skipped tests in ``test_extractor_tensorrt.py``.
"""

from __future__ import annotations

import importlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slamfront.errors import InputError, RuntimeUnavailableError
from slamfront.frontend.export import ensure_extractor_onnx
from slamfront.frontend.models.specs import MODEL_SPECS
from slamfront.frontend.runtime.extractor_base import INPUT_NAME, OUTPUT_NAMES, DetectorOutputs
from slamfront.frontend.runtime.tensorrt_common import gpu_tag, torch_dtype
from slamfront.weights import sha256_of, user_cache

if TYPE_CHECKING:
    from slamfront.config import ExtractorConfig

log = logging.getLogger(__name__)

WORKSPACE_BYTES = 1 << 30


@dataclass(frozen=True)
class EngineProfile:
    """Input shapes (1, C, H, W) of the optimisation profile, multiples of the stride."""

    channels: int
    min_hw: tuple[int, int]
    opt_hw: tuple[int, int]
    max_hw: tuple[int, int]

    def shape(self, hw: tuple[int, int]) -> tuple[int, int, int, int]:
        return (1, self.channels, hw[0], hw[1])

    def covers(self, height: int, width: int) -> bool:
        return (
            self.min_hw[0] <= height <= self.max_hw[0] and self.min_hw[1] <= width <= self.max_hw[1]
        )

    @property
    def tag(self) -> str:
        return "_".join(f"{h}x{w}" for h, w in (self.min_hw, self.opt_hw, self.max_hw))


def engine_profile(cfg: ExtractorConfig, channels: int, stride_px: int) -> EngineProfile:
    """The profile of ``cfg`` (sizes are (width, height) in the config) on the stride grid."""

    def hw(size: tuple[int, ...], up: bool) -> tuple[int, int]:
        width, height = size
        snap = (
            (lambda v: -(-v // stride_px) * stride_px)
            if up
            else (lambda v: v // stride_px * stride_px)
        )
        return (max(stride_px, snap(height)), max(stride_px, snap(width)))

    low = hw(cfg.tensorrt_min_size_px, up=True)
    high = hw(cfg.tensorrt_max_size_px, up=False)
    opt = hw(cfg.tensorrt_opt_size_px, up=False)
    opt = (min(max(opt[0], low[0]), high[0]), min(max(opt[1], low[1]), high[1]))
    return EngineProfile(channels, low, opt, (max(high[0], low[0]), max(high[1], low[1])))


def engine_name(
    onnx_sha256: str, trt_version: str, gpu_name: str, profile: EngineProfile, *, fp16: bool
) -> str:
    """Cache file name keyed by (ONNX sha256, TensorRT version, GPU name, precision, profile)."""
    precision = "fp16" if fp16 else "fp32"
    return (
        f"{onnx_sha256[:16]}-trt{trt_version}-{gpu_tag(gpu_name)}-{precision}-{profile.tag}.engine"
    )


def engine_dir(configured: str | None) -> Path:
    """``configured``, else ``$XDG_CACHE_HOME/slamfront/tensorrt`` (``~/.cache`` by default)."""
    return user_cache("tensorrt", configured)


def _import_tensorrt() -> Any:
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise RuntimeUnavailableError(
            f"runtime tensorrt: the tensorrt package is not installed ({exc}); "
            "install the [tensorrt] extra on a machine with an NVIDIA GPU, or use "
            "runtime=onnxruntime"
        ) from exc
    if not str(trt.__version__).startswith("10."):
        raise RuntimeUnavailableError(
            f"runtime tensorrt: need TensorRT 10, found {trt.__version__}"
        )
    return trt


class _TorchBuffers:
    """Device buffers as torch CUDA tensors."""

    def __init__(self) -> None:
        import torch

        if not torch.cuda.is_available():
            raise RuntimeUnavailableError("torch sees no CUDA device")
        self._torch = torch
        self.device = torch.device("cuda", 0)
        self.stream = torch.cuda.Stream(self.device)
        self.gpu_name = torch.cuda.get_device_name(self.device)

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        return self._torch.empty(shape, dtype=torch_dtype(dtype), device=self.device)

    def address(self, buffer: Any) -> int:
        return int(buffer.data_ptr())

    def upload(self, buffer: Any, array: np.ndarray) -> None:
        with self._torch.cuda.stream(self.stream):
            buffer.copy_(self._torch.from_numpy(array), non_blocking=False)

    def download(self, buffer: Any) -> np.ndarray:
        self.stream.synchronize()
        return np.asarray(buffer.cpu().numpy())

    @property
    def stream_handle(self) -> int:
        return int(self.stream.cuda_stream)

    def synchronize(self) -> None:
        self.stream.synchronize()


class _PycudaBuffers:
    """Device buffers through pycuda, in the device's primary context."""

    def __init__(self) -> None:
        try:
            driver = importlib.import_module("pycuda.driver")
        except ImportError as exc:
            raise RuntimeUnavailableError(f"pycuda is not installed ({exc})") from exc
        driver.init()
        if driver.Device.count() == 0:
            raise RuntimeUnavailableError("pycuda sees no CUDA device")
        self._driver = driver
        device = driver.Device(0)
        self.gpu_name = str(device.name())
        self._context = device.retain_primary_context()
        self._context.push()
        try:
            self.stream = driver.Stream()
        finally:
            self._context.pop()
        self._shapes: dict[int, tuple[tuple[int, ...], np.dtype[Any]]] = {}

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        self._context.push()
        try:
            allocation = self._driver.mem_alloc(max(nbytes, 1))
        finally:
            self._context.pop()
        self._shapes[int(allocation)] = (shape, np.dtype(dtype))
        return allocation

    def address(self, buffer: Any) -> int:
        return int(buffer)

    def upload(self, buffer: Any, array: np.ndarray) -> None:
        self._context.push()
        try:
            self._driver.memcpy_htod_async(buffer, np.ascontiguousarray(array), self.stream)
        finally:
            self._context.pop()

    def download(self, buffer: Any) -> np.ndarray:
        shape, dtype = self._shapes[int(buffer)]
        host = np.empty(shape, dtype)
        self._context.push()
        try:
            self._driver.memcpy_dtoh_async(host, buffer, self.stream)
            self.stream.synchronize()
        finally:
            self._context.pop()
        return host

    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def synchronize(self) -> None:
        self.stream.synchronize()


def _buffers() -> _TorchBuffers | _PycudaBuffers:
    reasons = []
    for kind in (_TorchBuffers, _PycudaBuffers):
        try:
            return kind()
        except RuntimeUnavailableError as exc:
            reasons.append(str(exc))
    raise RuntimeUnavailableError("runtime tensorrt: no CUDA device: " + "; ".join(reasons))


def build_engine(
    onnx_path: str | os.PathLike[str], profile: EngineProfile, target: Path, *, fp16: bool
) -> Path:
    """Parse the ONNX graph, build a (FP16) engine for ``profile`` and write it atomically."""
    trt = _import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeUnavailableError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    optimisation = builder.create_optimization_profile()
    optimisation.set_shape(
        INPUT_NAME,
        profile.shape(profile.min_hw),
        profile.shape(profile.opt_hw),
        profile.shape(profile.max_hw),
    )
    config.add_optimization_profile(optimisation)
    log.info("building TensorRT engine %s (this takes a while)", target.name)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeUnavailableError(f"TensorRT failed to build an engine from {onnx_path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".part")
    with os.fdopen(fd, "wb") as handle:
        handle.write(bytes(serialized))
    os.replace(partial, target)
    return target


def ensure_engine(onnx_path: str | os.PathLike[str], cfg: ExtractorConfig, gpu_name: str) -> Path:
    """The cached engine of this ONNX graph, precision and profile on ``gpu_name`` (built if
    missing)."""
    trt = _import_tensorrt()
    spec = MODEL_SPECS[cfg.model]
    profile = engine_profile(cfg, spec.input_channels, spec.stride_px)
    onnx_sha = sha256_of(onnx_path)
    name = engine_name(onnx_sha, str(trt.__version__), gpu_name, profile, fp16=cfg.tensorrt_fp16)
    path = engine_dir(cfg.engine_dir) / name
    if not path.is_file():
        build_engine(onnx_path, profile, path, fp16=cfg.tensorrt_fp16)
    return path


def build_extractor_engine(cfg: ExtractorConfig) -> Path:
    """Export (if needed) and build (if needed) the engine of ``cfg`` on this machine's GPU."""
    _import_tensorrt()
    return ensure_engine(ensure_extractor_onnx(cfg), cfg, _buffers().gpu_name)


class TensorRTDetector:
    """The detector graph as a TensorRT engine; same inputs and outputs as the other runtimes."""

    def __init__(self, onnx_path: str | os.PathLike[str], cfg: ExtractorConfig) -> None:
        trt = _import_tensorrt()
        self._buffers = _buffers()
        spec = MODEL_SPECS[cfg.model]
        self._profile = engine_profile(cfg, spec.input_channels, spec.stride_px)
        path = ensure_engine(onnx_path, cfg, self._buffers.gpu_name)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise RuntimeUnavailableError(f"{path}: TensorRT cannot load this engine; delete it")
        self._context = self._engine.create_execution_context()
        self._trt = trt
        self._allocated: dict[str, tuple[tuple[int, ...], Any]] = {}

    def _buffer(self, name: str, shape: tuple[int, ...]) -> Any:
        current = self._allocated.get(name)
        if current is None or current[0] != shape:
            dtype = np.dtype(self._trt.nptype(self._engine.get_tensor_dtype(name)))
            current = (shape, self._buffers.empty(shape, dtype))
            self._allocated[name] = current
        return current[1]

    def __call__(self, network_input: np.ndarray) -> DetectorOutputs:
        _, _, height, width = network_input.shape
        if not self._profile.covers(height, width):
            raise InputError(
                f"network input {width}x{height} is outside the TensorRT profile "
                f"{self._profile.min_hw[1]}x{self._profile.min_hw[0]}.."
                f"{self._profile.max_hw[1]}x{self._profile.max_hw[0]} "
                "(extractor.tensorrt_min_size_px / tensorrt_max_size_px)"
            )
        self._context.set_input_shape(INPUT_NAME, tuple(network_input.shape))
        image = self._buffer(INPUT_NAME, tuple(network_input.shape))
        self._buffers.upload(image, np.ascontiguousarray(network_input, dtype=np.float32))
        self._context.set_tensor_address(INPUT_NAME, self._buffers.address(image))
        outputs = []
        for name in OUTPUT_NAMES:
            shape = tuple(int(d) for d in self._context.get_tensor_shape(name))
            buffer = self._buffer(name, shape)
            self._context.set_tensor_address(name, self._buffers.address(buffer))
            outputs.append(buffer)
        if not self._context.execute_async_v3(self._buffers.stream_handle):
            raise RuntimeUnavailableError("TensorRT execution failed")
        self._buffers.synchronize()
        return DetectorOutputs.of([self._buffers.download(b) for b in outputs])


__all__ = [
    "EngineProfile",
    "TensorRTDetector",
    "build_engine",
    "build_extractor_engine",
    "engine_dir",
    "engine_name",
    "engine_profile",
    "ensure_engine",
]
