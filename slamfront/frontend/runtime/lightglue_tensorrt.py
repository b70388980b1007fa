"""LightGlue stages as TensorRT 10 engines (FP16), driven by the same numpy host loop.

The engines are built from the masked ONNX graphs of ``lightglue_export``. Inputs are padded
to a point-count bucket (256/512/1024/2048): each engine carries one static optimisation
profile per bucket, and the per-point additive key biases keep padded points out of every
softmax and maximum. Both images of a pair are padded to the same bucket (the larger one's),
so an engine needs one profile per bucket, not one per pair of buckets. Engines are cached
on disk keyed by (ONNX sha256, TensorRT version, GPU name, precision, buckets). Buffers are
torch CUDA tensors; execution is ``execute_async_v3`` on torch's current stream.

``tensorrt`` and CUDA are imported lazily; without them :class:`TrtGlueStages` raises
:class:`~slamfront.errors.RuntimeUnavailableError`. Nothing of this module runs on machines
without a GPU: what TensorRT consumes (graphs, padding, biases, bucket shapes) is verified
there with ONNX Runtime on the same masked graphs and padded inputs
(``OrtGlueStages(padded=True)``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slamfront.errors import RuntimeUnavailableError
from slamfront.frontend.runtime.lightglue_export import GlueGraphs, lightglue_graphs
from slamfront.frontend.runtime.lightglue_loop import BUCKETS, PaddedStages
from slamfront.frontend.runtime.tensorrt_common import gpu_tag, torch_dtype
from slamfront.weights import sha256_of

if TYPE_CHECKING:
    from slamfront.config import MatcherConfig

log = logging.getLogger(__name__)

PRECISION = "fp16"


def tensorrt_available() -> bool:
    """True when ``tensorrt`` imports and torch sees a CUDA device."""
    try:
        import tensorrt  # noqa: F401
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def default_engine_dir() -> Path:
    return Path(os.path.expanduser("~/.cache/slamfront/tensorrt"))


@dataclass(frozen=True)
class InputSpec:
    """One graph input: name, shape with ``"n0"``/``"n1"``/``"n"`` for point dimensions."""

    name: str
    shape: tuple[int | str, ...]


def graph_inputs(kind: str, input_dim: int, descriptor_dim: int) -> list[InputSpec]:
    """The inputs of a masked stage graph (see ``lightglue_export``)."""
    d = descriptor_dim
    if kind == "input":
        return [InputSpec("kpts", ("n", 2)), InputSpec("desc", ("n", input_dim))]
    pair = [InputSpec("x0", ("n0", d)), InputSpec("x1", ("n1", d))]
    if kind == "confidence":
        return pair
    biases = [InputSpec("bias0", ("n0",)), InputSpec("bias1", ("n1",))]
    if kind == "assign":
        return pair + biases
    return [*pair, InputSpec("enc0", (2, "n0", d)), InputSpec("enc1", (2, "n1", d)), *biases]


def profile_shape(spec: InputSpec, points: int) -> tuple[int, ...]:
    """Concrete shape of ``spec`` when every point dimension is ``points`` (one bucket)."""
    return tuple(points if isinstance(dim, str) else dim for dim in spec.shape)


def engine_file_name(
    onnx_name: str, onnx_sha256: str, trt_version: str, gpu_name: str, buckets: Sequence[int]
) -> str:
    """Cache file of one engine; every ingredient of its validity is in the name."""
    gpu = gpu_tag(gpu_name)
    sizes = "-".join(str(b) for b in buckets)
    stem = Path(onnx_name).stem
    return f"{stem}-{onnx_sha256[:16]}-trt{trt_version}-{gpu}-{PRECISION}-b{sizes}.engine"


class _Engine:
    """One deserialised engine, its execution context and its profile per bucket."""

    def __init__(self, engine: Any, buckets: Sequence[int]) -> None:
        import tensorrt as trt

        self.engine = engine
        self.context = engine.create_execution_context()
        self.buckets = tuple(buckets)
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(name)
            else:
                self.outputs.append(name)
        self.profile = -1

    def run(self, feed: dict[str, Any], points: int) -> list[Any]:
        """Run on CUDA tensors padded to ``points`` (a bucket); returns output tensors."""
        import tensorrt as trt
        import torch

        stream = torch.cuda.current_stream()
        profile = self.buckets.index(points)
        if profile != self.profile:
            self.context.set_optimization_profile_async(profile, stream.cuda_stream)
            self.profile = profile
        for name in self.inputs:
            tensor = feed[name].contiguous()
            feed[name] = tensor
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = []
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = torch_dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            out = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, out.data_ptr())
            outputs.append(out)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeUnavailableError("TensorRT execute_async_v3 failed")
        return outputs


def build_engine(
    onnx_path: Path,
    inputs: Sequence[InputSpec],
    buckets: Sequence[int],
    engine_path: Path,
    workspace_bytes: int = 1 << 30,
) -> bytes:
    """Parse ``onnx_path``, build an FP16 engine with one static profile per bucket, cache it.

    LayerNormalization layers are kept in FP32 (their variance overflows FP16 easily).
    """
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeUnavailableError(f"{onnx_path}: TensorRT cannot parse the graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    config.set_flag(trt.BuilderFlag.FP16)
    config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == trt.LayerType.NORMALIZATION:
            layer.precision = trt.float32
            layer.set_output_type(0, trt.float32)
    for points in buckets:
        profile = builder.create_optimization_profile()
        for spec in inputs:
            shape = profile_shape(spec, points)
            profile.set_shape(spec.name, shape, shape, shape)
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeUnavailableError(f"{onnx_path}: TensorRT engine build failed")
    data = bytes(serialized)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(engine_path)
    return data


class TrtGraphRunner:
    """:class:`~slamfront.frontend.runtime.lightglue_loop.GraphRunner` on TensorRT engines.

    Builds (or loads from ``cache_dir``) one engine per masked graph, each with one static
    optimisation profile per bucket.
    """

    def __init__(
        self,
        graphs: GlueGraphs,
        cache_dir: str | os.PathLike[str] | None = None,
        buckets: Sequence[int] = BUCKETS,
    ) -> None:
        if not graphs.masked:
            raise ValueError("TensorRT engines are built from the masked graphs")
        try:
            import tensorrt as trt
            import torch
        except ImportError as exc:
            raise RuntimeUnavailableError(
                "TensorRT runtime needs the 'tensorrt' package (pip install slamfront[tensorrt])"
            ) from exc
        if not torch.cuda.is_available():
            raise RuntimeUnavailableError("TensorRT runtime needs a CUDA device; none found")
        self._graphs = graphs
        self._buckets = tuple(sorted(buckets))
        folder = Path(cache_dir) if cache_dir is not None else default_engine_dir()
        gpu = torch.cuda.get_device_name(0)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))

        def engine(kind: str, index: int | None) -> _Engine:
            onnx_path = graphs.path(kind, index)
            name = engine_file_name(
                onnx_path.name, sha256_of(onnx_path), trt.__version__, gpu, self._buckets
            )
            path = folder / name
            if path.is_file():
                data = path.read_bytes()
            else:
                log.info("building TensorRT engine %s (minutes, once)", name)
                specs = graph_inputs(kind, graphs.input_dim, graphs.descriptor_dim)
                data = build_engine(onnx_path, specs, self._buckets, path)
            deserialized = runtime.deserialize_cuda_engine(data)
            if deserialized is None:
                raise RuntimeUnavailableError(f"{path}: cannot deserialise TensorRT engine")
            return _Engine(deserialized, self._buckets)

        n = graphs.n_layers
        self._engines: dict[tuple[str, int | None], _Engine] = {
            ("input", None): engine("input", None)
        }
        for i in range(n):
            self._engines[("layer", i)] = engine("layer", i)
            self._engines[("assign", i)] = engine("assign", i)
            if i < n - 1:
                self._engines[("confidence", i)] = engine("confidence", i)

    @property
    def n_layers(self) -> int:
        return self._graphs.n_layers

    def run(
        self, kind: str, index: int | None, feed: dict[str, np.ndarray], points: int
    ) -> list[np.ndarray]:
        import torch

        cuda = {
            name: torch.from_numpy(np.ascontiguousarray(a)).to("cuda", non_blocking=True)
            for name, a in feed.items()
        }
        outputs = self._engines[(kind, index)].run(cuda, points)
        return [np.asarray(out.cpu().numpy()) for out in outputs]


def build_matcher_engines(cfg: MatcherConfig, extractor_model: str) -> Path:
    """Export the masked graphs and build (or find) every TensorRT engine of the LightGlue
    ``cfg`` describes; returns the engine folder. ``slamfront export --tensorrt`` runs it."""
    graphs = lightglue_graphs(cfg, extractor_model, masked=True)
    TrtGraphRunner(graphs, cfg.engine_dir)
    return Path(cfg.engine_dir) if cfg.engine_dir is not None else default_engine_dir()


def tensorrt_stages(
    graphs: GlueGraphs,
    cache_dir: str | os.PathLike[str] | None = None,
    buckets: Sequence[int] = BUCKETS,
) -> PaddedStages:
    """The host-loop stages on TensorRT: bucket padding + masks over :class:`TrtGraphRunner`."""
    return PaddedStages(TrtGraphRunner(graphs, cache_dir, buckets), buckets)
