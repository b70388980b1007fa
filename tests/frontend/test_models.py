"""The networks load the published state dicts as they are and reject anything else."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from slamfront.errors import WeightsError
from slamfront.frontend.models.checkpoint import read_checkpoint
from slamfront.frontend.models.disk import load_disk
from slamfront.frontend.models.superpoint_v1 import SuperPointV1Net, load_superpoint_v1
from slamfront.frontend.models.xfeat import load_xfeat


def _check_dense(
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    size: tuple[int, int],
    dim: int,
    desc_stride: int,
) -> None:
    heatmap, _, descriptors = outputs
    h, w = size
    assert heatmap.shape == (1, 1, h, w)
    assert descriptors.shape == (1, dim, h // desc_stride, w // desc_stride)
    norms = descriptors.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert torch.isfinite(heatmap).all()


def test_xfeat_loads_published_weights(shared_weights: Path) -> None:
    net = load_xfeat(shared_weights / "xfeat" / "xfeat.pt")
    image = torch.rand(1, 1, 64, 96)
    with torch.inference_mode():
        outputs = net(image)
    _check_dense(outputs, (64, 96), 64, 8)
    heatmap, reliability, _ = outputs
    assert reliability.shape == (1, 1, 8, 12)
    assert float(reliability.min()) >= 0.0 and float(reliability.max()) <= 1.0
    # Each 8x8 cell's probabilities plus the dustbin sum to one, so a cell sums to <= 1.
    cell_sums = F.avg_pool2d(heatmap, 8) * 64
    assert float(cell_sums.max()) <= 1.0 + 1e-5
    assert float(heatmap.min()) >= 0.0


def test_xfeat_in_the_lighterglue_file_has_the_same_layers(shared_weights: Path) -> None:
    """The LighterGlue file carries XFeat under ``extractor.model.net.``: the same conv weights;
    only BatchNorm running statistics differ (they moved while LighterGlue was trained)."""
    plain = load_xfeat(shared_weights / "xfeat" / "xfeat.pt").state_dict()
    bundled = load_xfeat(shared_weights / "xfeat" / "xfeat-lighterglue.pt").state_dict()
    assert plain.keys() == bundled.keys()
    running = {k for k in plain if "running_" in k or "num_batches" in k}
    for key in plain.keys() - running:
        assert torch.equal(plain[key], bundled[key]), key
    assert any(not torch.equal(plain[k], bundled[k]) for k in running)


def test_xfeat_cell_conv_equals_the_unfolded_1x1_conv(shared_weights: Path) -> None:
    net = load_xfeat(shared_weights / "xfeat" / "xfeat.pt")
    image = torch.randn(1, 1, 32, 64)
    with torch.inference_mode():
        unfolded = net.keypoint_head[0](F.pixel_unshuffle(image, 8))
        fused = net._first_keypoint_layer(image)
    assert torch.allclose(unfolded, fused, atol=1e-5)


def test_disk_loads_published_weights(shared_weights: Path) -> None:
    net = load_disk(shared_weights / "disk" / "disk-depth-save.pth")
    with torch.inference_mode():
        outputs = net(torch.rand(1, 3, 48, 64))
    _check_dense(outputs, (48, 64), 128, 1)


def _mismatch(state: dict[str, torch.Tensor], tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_xfeat_key_and_shape_mismatches_name_the_key(shared_weights: Path, tmp_path: Path) -> None:
    state = torch.load(shared_weights / "xfeat" / "xfeat.pt", weights_only=True)
    missing = {k: v for k, v in state.items() if k != "block3.1.layer.0.weight"}
    with pytest.raises(WeightsError, match=r"'block3\.1\.layer\.0\.weight'.*missing"):
        load_xfeat(_mismatch(missing, tmp_path, "missing.pt"))
    reshaped = dict(state)
    reshaped["block2.0.layer.0.weight"] = torch.zeros(24, 24, 5, 5)
    with pytest.raises(WeightsError, match=r"'block2\.0\.layer\.0\.weight' has shape"):
        load_xfeat(_mismatch(reshaped, tmp_path, "reshaped.pt"))
    extra = dict(state)
    extra["block9.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match=r"unexpected key 'block9\.weight'"):
        load_xfeat(_mismatch(extra, tmp_path, "extra.pt"))


def test_disk_file_of_another_network_is_rejected(shared_weights: Path) -> None:
    with pytest.raises(WeightsError, match=r"unet\.path_down\.0\.1\.3\.weight"):
        load_disk(shared_weights / "xfeat" / "xfeat.pt")


def test_truncated_checkpoint_is_a_weights_error(shared_weights: Path, tmp_path: Path) -> None:
    data = (shared_weights / "xfeat" / "xfeat.pt").read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"cut\.pt"):
        load_xfeat(cut)


def test_nan_weights_are_rejected(shared_weights: Path, tmp_path: Path) -> None:
    state = torch.load(shared_weights / "xfeat" / "xfeat.pt", weights_only=True)
    state["heatmap_head.2.bias"] = torch.tensor([float("nan")])
    with pytest.raises(WeightsError, match=r"heatmap_head\.2\.bias.*NaN"):
        load_xfeat(_mismatch(state, tmp_path, "nan.pt"))


def test_superpoint_v1_official_key_names(tmp_path: Path) -> None:
    """Loading and shape checks only: the weights are random (no real SuperPoint weights may be
    stored here), so this says nothing about detection quality."""
    torch.manual_seed(0)
    state = SuperPointV1Net().state_dict()
    expected = {f"conv{i}{ab}.{p}" for i in "1234" for ab in "ab" for p in ("weight", "bias")}
    expected |= {f"conv{h}{ab}.{p}" for h in "PD" for ab in "ab" for p in ("weight", "bias")}
    assert set(state) == expected
    assert tuple(state["convPb.weight"].shape) == (65, 256, 1, 1)
    assert tuple(state["convDb.weight"].shape) == (256, 256, 1, 1)
    path = _mismatch(state, tmp_path, "superpoint_v1.pth")
    net = load_superpoint_v1(path)
    with torch.inference_mode():
        _check_dense(net(torch.rand(1, 1, 48, 64)), (48, 64), 256, 8)
    wrapped = _mismatch({f"module.{k}": v for k, v in state.items()}, tmp_path, "wrapped.pth")
    load_superpoint_v1(wrapped)
    bad = dict(state)
    bad["convDa.weight"] = torch.zeros(256, 64, 3, 3)
    with pytest.raises(WeightsError, match=r"'convDa\.weight' has shape \(256, 64, 3, 3\)"):
        load_superpoint_v1(_mismatch(bad, tmp_path, "bad.pth"))


def test_a_checkpoint_that_would_run_code_is_refused_without_advice_to_run_it(
    tmp_path: Path,
) -> None:
    """torch's message suggested loading with weights_only=False (running the file's
    code); the error keeps only what is wrong with the file."""
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", b"cos\nsystem\n(S'true'\ntR.")
        archive.writestr("evil/version", "3\n")
    with pytest.raises(WeightsError) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a readable torch checkpoint: ")
    assert "os.system" in message and "weights_only" not in message and "\n" not in message
