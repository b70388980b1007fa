"""Export the LightGlue stages as separate ONNX graphs with dynamic point counts.

Graphs (``N``, ``N0``, ``N1`` are dynamic):

- ``input.onnx``: kpts (N, 2), desc (N, input_dim) -> x (N, D), enc (2, N, D)
- ``layer{i}.onnx``: x0, x1, enc0, enc1 -> y0, y1
- ``confidence{i}.onnx`` (i < n_layers - 1): x0, x1 -> token0, matchable0, token1, matchable1
- ``assign{i}.onnx``: x0, x1 -> match0 (int64), score0, mutual0 (bool)

The masked variant (``layer{i}_masked``, ``assign{i}_masked``) takes two more inputs,
``bias0`` (N0,) and ``bias1`` (N1,): 0 for real points, ``lightglue_loop.PAD_BIAS`` for
padding. TensorRT engines are built from those so that inputs can be padded to a bucket size.

All layers share one structure, so each kind of graph is traced once and the other layers'
graphs are the same graph with that layer's weights swapped in by name; every graph written
is then checked against its torch stage with ONNX Runtime on random inputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from slamfront.errors import RuntimeUnavailableError
from slamfront.frontend.models.specs import LightGlueArch, lightglue_weights
from slamfront.frontend.runtime.lightglue_loop import PAD_BIAS
from slamfront.weights import make_cache_folder, sha256_of

if TYPE_CHECKING:
    import onnx
    import torch

    from slamfront.config import MatcherConfig
    from slamfront.frontend.models.lightglue import LightGlue

log = logging.getLogger(__name__)

GRAPH_VERSION = 2
"""Bumped whenever the exported graphs change; part of the cache folder name."""

OPSET = 18


@dataclass(frozen=True)
class GlueGraphs:
    """A folder of exported LightGlue graphs and what they are for."""

    folder: Path
    n_layers: int
    input_dim: int
    descriptor_dim: int
    masked: bool

    def path(self, kind: str, index: int | None = None) -> Path:
        """``kind`` in input | layer | confidence | assign."""
        name = kind if index is None else f"{kind}{index}"
        if self.masked and kind in ("layer", "assign"):
            name += "_masked"
        return self.folder / f"{name}.onnx"


def default_onnx_dir() -> Path:
    return Path(os.path.expanduser("~/.cache/slamfront/onnx"))


def graphs_folder(
    root: str | os.PathLike[str] | None, extractor_model: str, weights_sha256: str, *, masked: bool
) -> Path:
    base = Path(root) if root is not None else default_onnx_dir()
    variant = "masked" if masked else "plain"
    return base / f"lightglue-{extractor_model}-{weights_sha256[:16]}-g{GRAPH_VERSION}-{variant}"


def export_lightglue(
    net: LightGlue,
    folder: str | os.PathLike[str],
    *,
    masked: bool = False,
    check: bool = True,
) -> GlueGraphs:
    """Write every stage graph of ``net`` into ``folder`` (atomically) and return it.

    An existing export in ``folder`` whose graphs still have the content hashes its manifest
    recorded is reused as is; otherwise (missing, truncated, damaged) it is exported again.
    """
    target = Path(folder)
    arch = net.arch
    graphs = GlueGraphs(target, arch.n_layers, arch.input_dim, arch.descriptor_dim, masked)
    if _intact(graphs):
        return graphs
    make_cache_folder(target.parent, "matcher.onnx_dir")
    log.info("exporting the matcher to ONNX, one graph per stage (once; cached in %s)", target)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        staged = GlueGraphs(tmp, arch.n_layers, arch.input_dim, arch.descriptor_dim, masked)
        _export_all(net, staged, check=check)
        (tmp / "manifest.json").write_text(
            json.dumps(
                {
                    "graph_version": GRAPH_VERSION,
                    "opset": OPSET,
                    "n_layers": arch.n_layers,
                    "input_dim": arch.input_dim,
                    "descriptor_dim": arch.descriptor_dim,
                    "num_heads": arch.num_heads,
                    "masked": masked,
                    "sha256": {p.name: sha256_of(p) for p in sorted(tmp.glob("*.onnx"))},
                },
                indent=1,
            )
        )
        if target.exists():
            shutil.rmtree(target)
        tmp.replace(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return graphs


def cached_lightglue(
    folder: str | os.PathLike[str], arch: LightGlueArch, *, masked: bool = False
) -> GlueGraphs | None:
    """The intact export of a network of ``arch`` in ``folder`` (see :func:`export_lightglue`),
    or None: with the graphs cached, running them needs neither torch nor the network."""
    graphs = GlueGraphs(Path(folder), arch.n_layers, arch.input_dim, arch.descriptor_dim, masked)
    return graphs if _intact(graphs) else None


def _intact(graphs: GlueGraphs) -> bool:
    """True when every graph of ``graphs`` is there with the content hash its manifest
    recorded (a truncated or damaged graph, or a manifest without hashes, is exported again)."""
    paths = [graphs.path("input")]
    for i in range(graphs.n_layers):
        paths += [graphs.path("layer", i), graphs.path("assign", i)]
        if i < graphs.n_layers - 1:
            paths.append(graphs.path("confidence", i))
    try:
        hashes = json.loads((graphs.folder / "manifest.json").read_text())["sha256"]
        return all(p.is_file() and sha256_of(p) == hashes[p.name] for p in paths)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def lightglue_graphs(
    cfg: MatcherConfig,
    extractor_model: str,
    *,
    masked: bool = False,
    root: str | os.PathLike[str] | None = None,
) -> GlueGraphs:
    """The exported graphs of the LightGlue ``cfg`` describes, for ``extractor_model``'s
    features (exported into ``root`` or ``cfg.onnx_dir`` unless already there)."""
    weights = lightglue_weights(cfg, extractor_model)
    folder = graphs_folder(
        root if root is not None else cfg.onnx_dir,
        extractor_model,
        sha256_of(weights),
        masked=masked,
    )
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        graphs = GlueGraphs(
            folder,
            int(manifest["n_layers"]),
            int(manifest["input_dim"]),
            int(manifest["descriptor_dim"]),
            bool(manifest["masked"]),
        )
        if _intact(graphs):
            return graphs
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no export yet, or a damaged one: export again
    from slamfront.frontend.models.lightglue import load_lightglue  # imports torch

    return export_lightglue(load_lightglue(weights, extractor_model), folder, masked=masked)


def graphs_digest(graphs: GlueGraphs) -> str:
    """sha256 over every graph file of ``graphs`` (sorted by name): one hash for the set."""
    digest = hashlib.sha256()
    for path in sorted(graphs.folder.glob("*.onnx")):
        digest.update(path.name.encode())
        digest.update(sha256_of(path).encode())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- internals


def _example_inputs(
    net: LightGlue, kind: str, n0: int, n1: int, *, masked: bool, seed: int
) -> tuple[torch.Tensor, ...]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    d = net.arch.descriptor_dim
    if kind == "input":
        kpts = torch.rand(n0, 2, generator=gen) * 2 - 1
        return kpts, torch.randn(n0, net.arch.input_dim, generator=gen)
    x0 = torch.randn(n0, d, generator=gen)
    x1 = torch.randn(n1, d, generator=gen)
    if kind == "confidence":
        return x0, x1
    biases: tuple[torch.Tensor, ...] = ()
    if masked:
        bias0, bias1 = torch.zeros(n0), torch.zeros(n1)
        bias0[n0 - 3 :] = float(PAD_BIAS)
        bias1[n1 - 2 :] = float(PAD_BIAS)
        biases = (bias0, bias1)
    if kind == "assign":
        return (x0, x1, *biases)
    angles = torch.rand(n0, d, generator=gen) * 6.0
    enc0 = torch.stack([angles.cos(), angles.sin()])
    angles = torch.rand(n1, d, generator=gen) * 6.0
    enc1 = torch.stack([angles.cos(), angles.sin()])
    return (x0, x1, enc0, enc1, *biases)


_NAMES: dict[str, tuple[list[str], list[str]]] = {
    "input": (["kpts", "desc"], ["x", "enc"]),
    "layer": (["x0", "x1", "enc0", "enc1"], ["y0", "y1"]),
    "confidence": (["x0", "x1"], ["token0", "matchable0", "token1", "matchable1"]),
    "assign": (["x0", "x1"], ["match0", "score0", "mutual0"]),
}


def _names(kind: str, *, masked: bool) -> tuple[list[str], list[str]]:
    inputs, outputs = _NAMES[kind]
    if masked and kind in ("layer", "assign"):
        inputs = [*inputs, "bias0", "bias1"]
    return inputs, outputs


def _stage(net: LightGlue, kind: str, index: int, *, masked: bool) -> torch.nn.Module:
    from slamfront.frontend.models import lightglue as lg  # imports torch

    stage: torch.nn.Module
    if kind == "input":
        stage = lg.InputStage(net)
    elif kind == "layer":
        stage = lg.LayerStage(net, index, masked=masked)
    elif kind == "confidence":
        stage = lg.ConfidenceStage(net, index)
    else:
        stage = lg.AssignStage(net, index)
    return stage.eval()


def _trace(stage: torch.nn.Module, kind: str, net: LightGlue, *, masked: bool) -> onnx.ModelProto:
    import torch

    inputs, outputs = _names(kind, masked=masked)
    n0 = torch.export.Dim("n0", min=2, max=1 << 16)
    n1 = torch.export.Dim("n1", min=2, max=1 << 16)
    per_input = {
        "kpts": {0: n0},
        "desc": {0: n0},
        "x0": {0: n0},
        "x1": {0: n1},
        "enc0": {1: n0},
        "enc1": {1: n1},
        "bias0": {0: n0},
        "bias1": {0: n1},
    }
    example = _example_inputs(net, kind, 37, 23, masked=masked, seed=0)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            stage,
            example,
            None,
            dynamo=True,
            input_names=inputs,
            output_names=outputs,
            dynamic_shapes=tuple(per_input[name] for name in inputs),
            opset_version=OPSET,
            verbose=False,
        )
    if program is None:  # pragma: no cover - dynamo export always returns a program
        raise RuntimeUnavailableError(f"ONNX export of the LightGlue {kind} stage failed")
    model = program.model_proto
    # Rename the dynamic axes so that every graph speaks of n0 / n1 (or n for input).
    for value in [*model.graph.input, *model.graph.output]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = "n" if kind == "input" else dim.dim_param
    return model


def _with_weights(template: onnx.ModelProto, stage: torch.nn.Module) -> onnx.ModelProto:
    """``template`` (traced from a stage of the same structure) with ``stage``'s weights."""
    import onnx
    from onnx import numpy_helper

    state = {k: v.detach().cpu().numpy() for k, v in stage.state_dict().items()}
    model = onnx.ModelProto()
    model.CopyFrom(template)
    found = set()
    for init in model.graph.initializer:
        if init.name in state:
            value = state[init.name]
            if tuple(init.dims) != value.shape:
                raise RuntimeUnavailableError(
                    f"ONNX export: initializer {init.name} has shape {tuple(init.dims)}, "
                    f"stage weight has {value.shape}"
                )
            init.CopyFrom(numpy_helper.from_array(value.astype(np.float32), init.name))
            found.add(init.name)
    missing = sorted(set(state) - found)
    if missing:
        raise RuntimeUnavailableError(
            f"ONNX export: weights {missing[:3]} are not graph initializers (folded by the "
            "exporter?); cannot swap layer weights"
        )
    return model


def _export_all(net: LightGlue, graphs: GlueGraphs, *, check: bool) -> None:
    import onnx

    masked = graphs.masked
    n = net.arch.n_layers
    jobs: list[tuple[str, int | None]] = [("input", None)]
    for i in range(n):
        jobs.append(("layer", i))
        if i < n - 1:
            jobs.append(("confidence", i))
        jobs.append(("assign", i))
    templates: dict[str, onnx.ModelProto] = {}
    for kind, index in jobs:
        stage = _stage(net, kind, index or 0, masked=masked)
        if kind not in templates:
            templates[kind] = _trace(stage, kind, net, masked=masked)
        model = _with_weights(templates[kind], stage)
        path = graphs.path(kind, index)
        onnx.save(model, str(path))
        if check:
            _check_graph(path, stage, kind, net, masked=masked)


def _check_graph(
    path: Path, stage: torch.nn.Module, kind: str, net: LightGlue, *, masked: bool
) -> None:
    """Run the written graph with ONNX Runtime against its torch stage on new sizes."""
    import onnxruntime as ort
    import torch

    example = _example_inputs(net, kind, 29, 41, masked=masked, seed=1)
    with torch.inference_mode():
        expected = stage(*example)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs, _ = _names(kind, masked=masked)
    got = session.run(None, {name: t.numpy() for name, t in zip(inputs, example, strict=True)})
    for ref, out in zip(_as_list(expected), got, strict=True):
        ref_np = ref.numpy()
        if ref_np.dtype.kind == "f":
            ok = np.allclose(out, ref_np, rtol=1e-3, atol=1e-4)
        else:
            ok = bool(np.array_equal(out, ref_np))
        if not ok:
            raise RuntimeUnavailableError(f"{path.name}: ONNX graph disagrees with torch")


def _as_list(value: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    import torch

    return [value] if isinstance(value, torch.Tensor) else list(value)
