"""LightGlue on TensorRT: what can be checked without a GPU, and the engines when there is one.

The graphs TensorRT consumes and the padded feeding are verified with ONNX Runtime in
test_lightglue_onnx.py (PaddedStages over the masked graphs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slamfront.frontend.runtime.lightglue_loop import BUCKETS, bucket_size, key_bias, pad_rows
from slamfront.frontend.runtime.lightglue_tensorrt import (
    InputSpec,
    engine_file_name,
    graph_inputs,
    profile_shape,
    tensorrt_available,
)


def test_profiles_cover_every_masked_graph_input() -> None:
    layer = graph_inputs("layer", 64, 96)
    assert [s.name for s in layer] == ["x0", "x1", "enc0", "enc1", "bias0", "bias1"]
    assert [profile_shape(s, 512) for s in layer] == [
        (512, 96),
        (512, 96),
        (2, 512, 96),
        (2, 512, 96),
        (512,),
        (512,),
    ]
    assert [profile_shape(s, 256) for s in graph_inputs("input", 64, 96)] == [(256, 2), (256, 64)]
    assert [s.name for s in graph_inputs("assign", 64, 96)] == ["x0", "x1", "bias0", "bias1"]
    assert [s.name for s in graph_inputs("confidence", 64, 96)] == ["x0", "x1"]
    assert profile_shape(InputSpec("x", ("n", 7)), 1024) == (1024, 7)


def test_buckets_padding_and_engine_names() -> None:
    assert BUCKETS == (256, 512, 1024, 2048)
    assert [bucket_size(n) for n in (1, 256, 257, 1000, 2048, 5000)] == [
        256,
        256,
        512,
        1024,
        2048,
        0,
    ]
    padded = pad_rows(np.ones((3, 2, 4), np.float32).transpose(1, 0, 2), 8, axis=1)
    assert padded.shape == (2, 8, 4) and padded[:, 3:].sum() == 0 and padded[:, :3].sum() == 24
    bias = key_bias(3, 5)
    assert bias.dtype == np.float32 and bias[:3].tolist() == [0, 0, 0] and np.all(bias[3:] <= -1e4)
    name = engine_file_name(
        "layer3_masked.onnx", "ab" * 32, "10.7.0", "NVIDIA Jetson Orin", BUCKETS
    )
    expected = "layer3_masked-abababababababab-trt10.7.0-nvidia-jetson-orin-fp16-b256-512-1024-2048"
    assert name == expected + ".engine"
    assert engine_file_name(
        "layer3_masked.onnx", "cd" * 32, "10.7.0", "x", BUCKETS
    ) != engine_file_name("layer3_masked.onnx", "ab" * 32, "10.7.0", "x", BUCKETS)


@pytest.mark.skipif(not tensorrt_available(), reason="TensorRT 10 and a CUDA device are needed")
def test_tensorrt_matches_torch(shared_weights: Path, tmp_path: Path) -> None:  # pragma: no cover
    from slamfront.frontend.models.lightglue import load_lightglue
    from slamfront.frontend.runtime.lightglue_export import export_lightglue
    from slamfront.frontend.runtime.lightglue_loop import GlueQuery, run_glue
    from slamfront.frontend.runtime.lightglue_tensorrt import tensorrt_stages
    from slamfront.frontend.runtime.lightglue_torch import TorchGlueReference

    net = load_lightglue(shared_weights / "xfeat/xfeat-lighterglue.pt", "xfeat")
    graphs = export_lightglue(net, tmp_path / "graphs", masked=True)
    stages = tensorrt_stages(graphs, cache_dir=tmp_path / "engines")
    rng = np.random.default_rng(0)
    k0 = rng.uniform(-0.9, 0.9, (700, 2)).astype(np.float32)
    d0 = rng.normal(size=(700, 64)).astype(np.float32)
    d0 /= np.linalg.norm(d0, axis=1, keepdims=True)
    d1 = d0 + rng.normal(0, 0.02, d0.shape).astype(np.float32)
    d1 /= np.linalg.norm(d1, axis=1, keepdims=True)
    query = GlueQuery(
        k0, d0, k0, d1, depth_confidence=0.95, width_confidence=0.95, filter_threshold=0.1
    )
    ref = TorchGlueReference(net)(query)
    out = run_glue(stages, query)
    # FP16 engines: the same correspondences, up to a few borderline ones
    a, b = {tuple(r) for r in ref.indices.tolist()}, {tuple(r) for r in out.indices.tolist()}
    assert len(a & b) >= 0.98 * len(a)
