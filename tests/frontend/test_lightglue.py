"""LightGlue network: weights, layer arithmetic, early exit and pruning (torch and host loop)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from slamfront.errors import WeightsError
from slamfront.frontend.models import lightglue as lg
from slamfront.frontend.models.specs import confidence_threshold
from slamfront.frontend.runtime.lightglue_loop import (
    GlueConfidence,
    GlueQuery,
    GlueResult,
    run_glue,
)
from slamfront.frontend.runtime.lightglue_torch import TorchGlueReference, TorchGlueStages

XFEAT = "xfeat/xfeat-lighterglue.pt"
DISK = "lightglue/disk_lightglue.pth"


@pytest.fixture(scope="module")
def xfeat_net(shared_weights: Path) -> lg.LightGlue:
    return lg.load_lightglue(shared_weights / XFEAT, "xfeat")


def easy_pair(
    n: int, dim: int, seed: int = 0, noise: float = 0.02, shuffle: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points and unit descriptors, and a perturbed, shuffled copy; perm[i1] = i0."""
    rng = np.random.default_rng(seed)
    k0 = rng.uniform(-0.9, 0.9, (n, 2)).astype(np.float32)
    d0 = rng.normal(size=(n, dim)).astype(np.float32)
    d0 /= np.linalg.norm(d0, axis=1, keepdims=True)
    perm = rng.permutation(n) if shuffle else np.arange(n)
    k1 = (k0[perm] + rng.normal(0, 0.002, (n, 2))).astype(np.float32)
    d1 = d0[perm] + rng.normal(0, noise, (n, dim)).astype(np.float32)
    d1 /= np.linalg.norm(d1, axis=1, keepdims=True)
    return k0, d0, k1, d1.astype(np.float32), perm


# ----------------------------------------------------------------------------- weights


@pytest.mark.parametrize(
    ("name", "model", "arch"),
    [(XFEAT, "xfeat", (64, 96, 6, 1)), (DISK, "disk", (128, 256, 9, 4))],
)
def test_published_weights_load_strictly(
    shared_weights: Path, name: str, model: str, arch: tuple[int, int, int, int]
) -> None:
    net = lg.load_lightglue(shared_weights / name, model)
    assert (
        net.arch.input_dim,
        net.arch.descriptor_dim,
        net.arch.n_layers,
        net.arch.num_heads,
    ) == arch
    raw = torch.load(shared_weights / name, map_location="cpu", weights_only=True)
    state = lg.remap_state_dict(raw, name)
    # Every published tensor landed in the module, unchanged.
    mine = net.state_dict()
    assert set(state) == set(mine)
    for key, value in state.items():
        assert torch.equal(mine[key], value.float()), key
    assert len(net.token_confidence) == arch[2] - 1


def test_remap_moves_cvg_layout_and_drops_prefixed_extractor_keys() -> None:
    w = torch.zeros(1)
    cvg = lg.remap_state_dict(
        {"self_attn.3.Wqkv.weight": w, "cross_attn.0.to_v.bias": w, "log_assignment.2.r": w + 1},
        "f",
    )
    assert set(cvg) == {
        "transformers.3.self_attn.Wqkv.weight",
        "transformers.0.cross_attn.to_v.bias",
    }
    xf = lg.remap_state_dict({"matcher.posenc.Wr.weight": w, "extractor.block1.0.weight": w}, "f")
    assert set(xf) == {"posenc.Wr.weight"}
    with pytest.raises(WeightsError, match=r"log_assignment\.2\.r"):
        lg.remap_state_dict({"log_assignment.2.r": w + 2}, "f")


def test_weights_for_another_extractor_name_the_key(shared_weights: Path) -> None:
    with pytest.raises(
        WeightsError, match=r"input_proj\.weight.*128-d descriptors.*xfeat gives 64-d"
    ):
        lg.load_lightglue(shared_weights / DISK, "xfeat")
    with pytest.raises(WeightsError, match=r"input_proj\.weight.*64-d descriptors, 6 layers"):
        lg.load_lightglue(shared_weights / XFEAT, "disk")


def test_broken_weight_files_are_weights_errors(tmp_path: Path, shared_weights: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        lg.load_lightglue(tmp_path / "nope.pt", "xfeat")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((shared_weights / XFEAT).read_bytes()[:4096])
    with pytest.raises(WeightsError, match="cannot read"):
        lg.load_lightglue(truncated, "xfeat")
    raw = torch.load(shared_weights / XFEAT, map_location="cpu", weights_only=True)
    raw["matcher.transformers.2.cross_attn.to_v.weight"] = torch.zeros(96, 95)
    bad = tmp_path / "bad.pt"
    torch.save(raw, bad)
    with pytest.raises(
        WeightsError, match=r"transformers\.2\.cross_attn\.to_v\.weight.*\(96, 95\)"
    ):
        lg.load_lightglue(bad, "xfeat")
    del raw["matcher.transformers.2.cross_attn.to_v.weight"]
    raw["matcher.transformers.2.cross_attn.extra"] = torch.zeros(1)
    torch.save(raw, bad)
    with pytest.raises(
        WeightsError, match=r"missing key 'transformers\.2\.cross_attn\.to_v\.weight'"
    ):
        lg.load_lightglue(bad, "xfeat")


# ----------------------------------------------------------------------------- arithmetic


def test_rotary_encoding_is_a_rotation_of_each_pair() -> None:
    t = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert lg.rotate_pairs(t).tolist() == [[-2.0, 1.0, -4.0, 3.0]]
    angle = torch.tensor([[0.3, 0.3, -1.1, -1.1]])
    enc = torch.stack([angle.cos(), angle.sin()])
    rotated = lg.apply_rotary(t, enc)
    # Each pair keeps its norm; the dot product of two rotated vectors depends only on the
    # angle difference (relative positions).
    assert torch.allclose(rotated[0, :2].norm(), t[0, :2].norm())
    other = torch.tensor([[0.5, -1.0, 2.0, 0.1]])
    shift = torch.stack([(angle + 0.7).cos(), (angle + 0.7).sin()])
    a = (lg.apply_rotary(t, enc) * lg.apply_rotary(other, enc)).sum()
    b = (lg.apply_rotary(t, shift) * lg.apply_rotary(other, shift)).sum()
    assert torch.allclose(a, b, atol=1e-5)


def test_confidence_schedule() -> None:
    assert confidence_threshold(0, 6) == pytest.approx(0.9)
    values = [confidence_threshold(i, 9) for i in range(9)]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert values[-1] > 0.8


def test_assignment_is_log_double_softmax_with_matchability(xfeat_net: lg.LightGlue) -> None:
    gen = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(7, 96, generator=gen), torch.randn(5, 96, generator=gen)
    head = xfeat_net.assignment(0)
    with torch.inference_mode():
        scores = head.log_scores(x0, x1).double()
        m0 = head.final_proj(x0).double() / 96**0.25
        m1 = head.final_proj(x1).double() / 96**0.25
        sim = m0 @ m1.T
        sig0 = torch.sigmoid(head.matchability(x0).double())
        sig1 = torch.sigmoid(head.matchability(x1).double()).T
    expected = torch.softmax(sim, 1) * torch.softmax(sim, 0) * sig0 * sig1
    np.testing.assert_allclose(scores.exp().numpy(), expected.numpy(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name,model", [(XFEAT, "xfeat"), (DISK, "disk")])
def test_deploy_stages_equal_reference_layers(shared_weights: Path, name: str, model: str) -> None:
    net = lg.load_lightglue(shared_weights / name, model)
    gen = torch.Generator().manual_seed(1)
    k0, k1 = torch.rand(40, 2, generator=gen) * 2 - 1, torch.rand(31, 2, generator=gen) * 2 - 1
    d0 = torch.randn(40, net.arch.input_dim, generator=gen)
    d1 = torch.randn(31, net.arch.input_dim, generator=gen)
    with torch.inference_mode():
        x0, x1 = net.input_proj(d0), net.input_proj(d1)
        ref = net.layer(1)(x0, x1, net.posenc(k0), net.posenc(k1))
        stage_in = lg.InputStage(net)
        (y0, e0), (y1, e1) = stage_in(k0, d0), stage_in(k1, d1)
        out = lg.LayerStage(net, 1)(y0, y1, e0, e1)
        # Padding: extra rows masked out by PAD biases give the same real rows.
        pad = 9
        bias0 = torch.cat([torch.zeros(40), torch.full((pad,), -1.0e4)])
        padded = lg.LayerStage(net, 1, masked=True)(
            torch.cat([y0, torch.randn(pad, y0.shape[1], generator=gen)]),
            y1,
            torch.cat([e0, torch.randn(2, pad, e0.shape[2], generator=gen)], 1),
            e1,
            bias0,
            torch.zeros(31),
        )
    for got, want in ((out[0], ref[0]), (out[1], ref[1]), (padded[0][:40], ref[0])):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=2e-4)


# ----------------------------------------------------------------------------- forward


def _query(
    k0: np.ndarray, d0: np.ndarray, k1: np.ndarray, d1: np.ndarray, *, depth: float, width: float
) -> GlueQuery:
    """The points with the given early exit and pruning (-1: off) and a 0.1 score floor."""
    return GlueQuery(
        k0, d0, k1, d1, depth_confidence=depth, width_confidence=width, filter_threshold=0.1
    )


def test_full_depth_matches_a_shuffled_copy(xfeat_net: lg.LightGlue) -> None:
    k0, d0, k1, d1, perm = easy_pair(700, 64, seed=0)
    out = TorchGlueReference(xfeat_net)(_query(k0, d0, k1, d1, depth=-1, width=-1))
    assert out.layers_run == 6
    assert out.points_kept == (1400,) * 6
    assert len(out.indices) > 600
    # perm[i1] = i0 for a correct pair
    correct = perm[out.indices[:, 1]] == out.indices[:, 0]
    assert correct.mean() > 0.98
    assert out.scores.dtype == np.float32 and np.all((out.scores > 0.1) & (out.scores <= 1.0))
    assert len(np.unique(out.indices[:, 0])) == len(out.indices)
    assert len(np.unique(out.indices[:, 1])) == len(out.indices)


def test_pruning_keeps_indices_of_the_original_keypoints(xfeat_net: lg.LightGlue) -> None:
    k0, d0, k1, d1, perm = easy_pair(700, 64, seed=1)
    # the second half of image 1 replaced by unrelated points: unmatchable, to be pruned
    rng = np.random.default_rng(5)
    d1[350:] = rng.normal(size=(350, 64)).astype(np.float32)
    d1[350:] /= np.linalg.norm(d1[350:], axis=1, keepdims=True)
    k1[350:] = rng.uniform(-0.9, 0.9, (350, 2)).astype(np.float32)
    full = TorchGlueReference(xfeat_net)(_query(k0, d0, k1, d1, depth=-1, width=-1))
    out = TorchGlueReference(xfeat_net)(_query(k0, d0, k1, d1, depth=-1, width=0.95))
    assert out.layers_run == 6
    kept = np.array(out.points_kept)
    assert kept[0] == 1400 and kept[-1] < 1000 and np.all(np.diff(kept) <= 0)
    assert len(full.indices) > 100 and len(out.indices) > 50
    valid = out.indices[:, 1] < 350
    assert valid.mean() > 0.95
    assert (perm[out.indices[valid, 1]] == out.indices[valid, 0]).mean() > 0.98


def test_torch_reference_and_host_loop_agree(xfeat_net: lg.LightGlue) -> None:
    k0, d0, k1, d1, _ = easy_pair(500, 64, seed=2, noise=0.08)
    ref = TorchGlueReference(xfeat_net)
    loop = TorchGlueStages(xfeat_net)
    for depth, width in ((-1, -1), (0.95, 0.95), (0.95, -1), (-1, 0.99)):
        a = ref(_query(k0, d0, k1, d1, depth=depth, width=width))
        b = run_glue(loop, _query(k0, d0, k1, d1, depth=depth, width=width))
        assert a.layers_run == b.layers_run and a.points_kept == b.points_kept
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)


class ScriptedStages:
    """Fake stages: identity layers, confidences scripted per layer, match i <-> i."""

    n_layers = 4

    def __init__(self, token: list[float], matchable: list[np.ndarray]) -> None:
        self.token = token
        self.matchable = matchable
        self.calls: list[str] = []

    def encode(self, kpts: np.ndarray, desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.arange(len(kpts), dtype=np.float32)[:, None]
        return ids, np.zeros((2, len(kpts), 1), np.float32)

    def layer(self, index, x0, x1, enc0, enc1):  # type: ignore[no-untyped-def]
        self.calls.append(f"layer{index}")
        return x0, x1

    def confidence(self, index, x0, x1):  # type: ignore[no-untyped-def]
        ids0, ids1 = x0[:, 0].astype(int), x1[:, 0].astype(int)
        t = np.float32(self.token[index])
        m = self.matchable[index]
        return GlueConfidence(np.full(len(x0), t), m[ids0], np.full(len(x1), t), m[ids1])

    def assign(self, index, x0, x1):  # type: ignore[no-untyped-def]
        self.calls.append(f"assign{index}")
        ids0, ids1 = x0[:, 0].astype(int), x1[:, 0].astype(int)
        where = {v: i for i, v in enumerate(ids1)}
        match0 = np.array([where.get(v, 0) for v in ids0], np.int64)
        mutual = np.array([v in where for v in ids0])
        return match0, np.full(len(x0), 0.9, np.float32), mutual


def test_host_loop_exit_and_pruning_decisions() -> None:
    n = 10
    keep_all = np.ones(n, np.float32)
    half = np.where(np.arange(n) < 5, 1.0, 0.001).astype(np.float32)
    points = (np.zeros((n, 2)), np.zeros((n, 1)), np.zeros((n, 2)), np.zeros((n, 1)))
    # confident enough only after layer 1 (threshold there 0.8 + 0.1 e^-1 = 0.837)
    stages = ScriptedStages([0.5, 0.95, 0.99], [half, keep_all, keep_all])
    out = run_glue(stages, _query(*points, depth=0.95, width=0.95))
    assert stages.calls == ["layer0", "layer1", "assign1"]
    assert out.layers_run == 2
    # layer 0 tokens (0.5) are below its threshold: unsure points are never pruned
    assert out.points_kept == (20, 20)
    # without early exit the same unsure points are pruned by matchability alone
    stages = ScriptedStages([0.5, 0.5, 0.5], [half, keep_all, keep_all])
    out = run_glue(stages, _query(*points, depth=-1, width=0.95))
    assert out.layers_run == 4 and out.points_kept == (20, 10, 10, 10)
    np.testing.assert_array_equal(out.indices, np.stack([np.arange(5)] * 2, -1))
    # confident but unmatchable points are pruned when early exit is on as well
    stages = ScriptedStages([0.95, 0.5, 0.5], [half, keep_all, keep_all])
    out = run_glue(stages, _query(*points, depth=1.0, width=0.95))
    assert out.points_kept == (20, 10, 10, 10)
    # pruning everything on one side stops with no matches
    none = np.zeros(n, np.float32)
    stages = ScriptedStages([0.95, 0.5, 0.5], [none, keep_all, keep_all])
    out = run_glue(stages, _query(*points, depth=1.0, width=0.95))
    assert isinstance(out, GlueResult) and len(out.indices) == 0 and out.layers_run == 1
