"""LightGlue as separate ONNX graphs on ONNX Runtime: equal matches to torch, exit and pruning on.

The masked graphs on bucket-padded inputs are what TensorRT consumes; they are checked here
with ONNX Runtime through the same padding code the TensorRT runtime uses.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import pytest

import slamfront as sf
from slamfront.errors import InputError
from slamfront.frontend.models import lightglue as lg
from slamfront.frontend.runtime.lightglue_export import GlueGraphs, export_lightglue, graphs_folder
from slamfront.frontend.runtime.lightglue_loop import (
    GlueQuery,
    PaddedStages,
    bucket_size,
    run_glue,
)
from slamfront.frontend.runtime.lightglue_onnx import OrtGlueStages, OrtGraphRunner
from slamfront.frontend.runtime.lightglue_torch import TorchGlueReference
from slamfront.weights import sha256_of

XFEAT = "xfeat/xfeat-lighterglue.pt"

pytestmark = pytest.mark.slow  # one export of each graph set (~10 s each) per session


@pytest.fixture(scope="module")
def net(shared_weights: Path) -> lg.LightGlue:
    return lg.load_lightglue(shared_weights / XFEAT, "xfeat")


@pytest.fixture(scope="module")
def onnx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def plain(net: lg.LightGlue, onnx_root: Path, shared_weights: Path) -> GlueGraphs:
    sha = sha256_of(shared_weights / XFEAT)
    return export_lightglue(net, graphs_folder(onnx_root, "xfeat", sha, masked=False))


@pytest.fixture(scope="module")
def masked(net: lg.LightGlue, onnx_root: Path, shared_weights: Path) -> GlueGraphs:
    sha = sha256_of(shared_weights / XFEAT)
    return export_lightglue(net, graphs_folder(onnx_root, "xfeat", sha, masked=True), masked=True)


def pair(n0: int, n1: int, seed: int) -> tuple[np.ndarray, ...]:
    """Two overlapping point sets: the first min(n0, n1) points correspond (same index)."""
    rng = np.random.default_rng(seed)
    n = min(n0, n1)
    k0 = rng.uniform(-0.9, 0.9, (n0, 2)).astype(np.float32)
    d0 = rng.normal(size=(n0, 64)).astype(np.float32)
    d0 /= np.linalg.norm(d0, axis=1, keepdims=True)
    k1 = rng.uniform(-0.9, 0.9, (n1, 2)).astype(np.float32)
    d1 = rng.normal(size=(n1, 64)).astype(np.float32)
    k1[:n] = k0[:n] + rng.normal(0, 0.002, (n, 2))
    d1[:n] = d0[:n] + rng.normal(0, 0.03, (n, 64))
    d1 /= np.linalg.norm(d1, axis=1, keepdims=True)
    return k0, d0, k1, d1.astype(np.float32)


def _query(k0: np.ndarray, d0: np.ndarray, k1: np.ndarray, d1: np.ndarray) -> GlueQuery:
    """The points with early exit and pruning on (0.95 each) and a 0.1 score floor."""
    return GlueQuery(
        k0, d0, k1, d1, depth_confidence=0.95, width_confidence=0.95, filter_threshold=0.1
    )


def test_graph_files_have_dynamic_point_counts(plain: GlueGraphs, masked: GlueGraphs) -> None:
    assert (plain.folder / "manifest.json").is_file()
    layer = onnx.load(str(plain.path("layer", 3)))
    dims = {
        i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in layer.graph.input
    }
    assert dims == {
        "x0": ["n0", 96],
        "x1": ["n1", 96],
        "enc0": [2, "n0", 96],
        "enc1": [2, "n1", 96],
    }
    inputs = [i.name for i in onnx.load(str(masked.path("assign", 5))).graph.input]
    assert inputs == ["x0", "x1", "bias0", "bias1"]
    assert masked.path("layer", 0).name == "layer0_masked.onnx"
    assert not plain.path("confidence", 5).exists()  # no confidence head after the last layer
    # layers carry their own weights (one traced graph, weights swapped per layer)
    w = {
        i: {
            t.name: onnx.numpy_helper.to_array(t)
            for t in onnx.load(str(plain.path("layer", i))).graph.initializer
        }
        for i in (0, 4)
    }
    key = "cross_attn.to_out.weight"
    assert not np.array_equal(w[0][key], w[4][key])


def test_export_is_reused(net: lg.LightGlue, plain: GlueGraphs) -> None:
    before = plain.path("layer", 2).stat().st_mtime_ns
    start = time.perf_counter()
    again = export_lightglue(net, plain.folder)
    assert time.perf_counter() - start < 1.0
    assert again == plain and plain.path("layer", 2).stat().st_mtime_ns == before


@pytest.mark.parametrize(
    ("n0", "n1", "depth", "width"),
    [(600, 500, 0.95, 0.95), (600, 500, -1, -1), (700, 700, 0.95, 0.99), (300, 900, -1, 0.95)],
)
def test_onnxruntime_matches_equal_torch(
    net: lg.LightGlue,
    plain: GlueGraphs,
    masked: GlueGraphs,
    n0: int,
    n1: int,
    depth: float,
    width: float,
) -> None:
    k0, d0, k1, d1 = pair(n0, n1, seed=n0 + n1)
    query = GlueQuery(
        k0, d0, k1, d1, depth_confidence=depth, width_confidence=width, filter_threshold=0.1
    )
    ref = TorchGlueReference(net)(query)
    assert len(ref.indices) > 100
    for stages in (OrtGlueStages(plain), PaddedStages(OrtGraphRunner(masked))):
        out = run_glue(stages, query)
        assert out.layers_run == ref.layers_run
        assert out.points_kept == ref.points_kept
        np.testing.assert_array_equal(out.indices, ref.indices)
        np.testing.assert_allclose(out.scores, ref.scores, atol=1e-3)


def test_tiny_and_oversized_point_sets(
    net: lg.LightGlue, plain: GlueGraphs, masked: GlueGraphs
) -> None:
    k0, d0, k1, d1 = pair(1, 3, seed=4)
    ref = TorchGlueReference(net)(_query(k0, d0, k1, d1))
    out = run_glue(OrtGlueStages(plain), _query(k0, d0, k1, d1))
    np.testing.assert_array_equal(out.indices, ref.indices)
    assert bucket_size(3) == 256 and bucket_size(2048) == 2048 and bucket_size(2049) == 0
    k0, d0, k1, d1 = pair(2100, 10, seed=5)
    with pytest.raises(InputError, match="2100 points exceed the largest point bucket"):
        run_glue(PaddedStages(OrtGraphRunner(masked)), _query(k0, d0, k1, d1))


def test_load_matcher_onnxruntime_equals_torch(
    plain: GlueGraphs, onnx_root: Path, shared_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
    ort_matcher = sf.load_matcher("fast", runtime="onnxruntime", onnx_dir=str(onnx_root))
    torch_matcher = sf.load_matcher("fast", runtime="torch")
    k0, d0, k1, d1 = pair(500, 450, seed=9)
    size = (640, 480)
    f0 = sf.Features((k0 * 320 + [320, 240]).astype(np.float32), np.ones(500, np.float32), d0, size)
    f1 = sf.Features((k1 * 320 + [320, 240]).astype(np.float32), np.ones(450, np.float32), d1, size)
    a, b = ort_matcher(f0, f1), torch_matcher(f0, f1)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.layers_run == b.layers_run and a.points_kept == b.points_kept and len(a) > 100


def test_export_models_lists_the_matcher_graphs(
    plain: GlueGraphs,
    masked: GlueGraphs,
    onnx_root: Path,
    shared_weights: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import slamfront.frontend.export as export
    from slamfront.frontend.runtime.lightglue_export import graphs_digest

    monkeypatch.setenv("SLAMFRONT_WEIGHTS", str(shared_weights))
    monkeypatch.setattr(export, "export_extractor", lambda cfg, path=None: plain.path("input"))
    start = time.perf_counter()
    exported = export.export_models(sf.load_config("fast"), onnx_root)
    assert time.perf_counter() - start < 5.0  # the graphs exist already: nothing re-exported
    names = {e.name: e for e in exported}
    assert set(names) == {
        "extractor/xfeat",
        "matcher/lightglue-xfeat",
        "matcher/lightglue-xfeat-masked",
    }
    assert names["matcher/lightglue-xfeat"].path == plain.folder
    assert names["matcher/lightglue-xfeat-masked"].path == masked.folder
    assert names["matcher/lightglue-xfeat"].sha256 == graphs_digest(plain) != graphs_digest(masked)
    assert export._export_matcher(sf.load_config("superpoint"), onnx_root) == []  # mnn


def test_disk_lightglue_on_onnxruntime(shared_weights: Path, tmp_path: Path) -> None:
    """The 9-layer, 4-head network of the accurate preset: same matches as torch."""
    disk = lg.load_lightglue(shared_weights / "lightglue/disk_lightglue.pth", "disk")
    graphs = export_lightglue(disk, tmp_path / "disk")
    rng = np.random.default_rng(0)
    k0 = rng.uniform(-0.9, 0.9, (500, 2)).astype(np.float32)
    d0 = rng.normal(size=(500, 128)).astype(np.float32)
    d0 /= np.linalg.norm(d0, axis=1, keepdims=True)
    k1 = (k0 + rng.normal(0, 0.002, k0.shape)).astype(np.float32)
    d1 = (d0 + rng.normal(0, 0.05, d0.shape)).astype(np.float32)
    d1 /= np.linalg.norm(d1, axis=1, keepdims=True)
    ref = TorchGlueReference(disk)(_query(k0, d0, k1, d1))
    out = run_glue(OrtGlueStages(graphs), _query(k0, d0, k1, d1))
    assert ref.layers_run < 9 and len(ref.indices) > 400
    assert out.layers_run == ref.layers_run and out.points_kept == ref.points_kept
    np.testing.assert_array_equal(out.indices, ref.indices)
