"""ONNX export of the front-end networks (``slamfront export``), cached on disk.

Each network becomes one single-file ONNX model (weights inside, no external data) with a
dynamic input height and width. Exports are keyed by everything baked into the graph — the
weights' sha256, the detection parameters and :data:`GRAPH_VERSION` (bumped whenever the
graph code changes) — so a cache entry is never stale; runtimes export on demand. Each file's
content hash is recorded beside it, and an entry whose content no longer matches (a truncated
file) is exported again.

The extractor graph is :class:`~slamfront.frontend.models.keypoints.SparseDetector`:
input ``image`` (1, C, H, W) float32 in [0, 1] with H, W multiples of the network stride;
outputs ``keypoints`` (K, 2), ``scores`` (K,), ``descriptors`` (K, D), ``valid`` (K,) bool.

Matcher graphs are exported by the matcher's own module; :func:`export_models` is the one
place that lists what ``slamfront export`` writes, and is where they are added.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slamfront.errors import SlamfrontError
from slamfront.frontend.models.specs import (
    ARCHITECTURES,
    MODEL_SPECS,
    WEIGHT_FILES,
    extractor_weights,
)
from slamfront.frontend.runtime.cache_digest import digest_path, is_intact, record_digest
from slamfront.frontend.runtime.extractor_base import INPUT_NAME, OUTPUT_NAMES
from slamfront.frontend.runtime.lightglue_export import graphs_digest, lightglue_graphs
from slamfront.weights import make_cache_folder, sha256_of, user_cache

if TYPE_CHECKING:
    from slamfront.config import Config, ExtractorConfig

log = logging.getLogger(__name__)

GRAPH_VERSION = 3
"""Version of the exported extractor graph code; part of every cache key."""
OPSET = 18
_MAX_BLOCKS = 512
"""Largest input side supported by the exported graph, in strides (32 * 512 = 16384 px)."""


@dataclass(frozen=True)
class ExportedModel:
    """One exported network: what it is, where it is, and its file's sha256."""

    name: str
    path: Path
    sha256: str


def onnx_dir(configured: str | None) -> Path:
    """``configured``, else ``$XDG_CACHE_HOME/slamfront/onnx`` (``~/.cache`` by default)."""
    return user_cache("onnx", configured)


def extractor_onnx_name(cfg: ExtractorConfig, weights_sha256: str) -> str:
    """File name carrying the cache key of the extractor graph of ``cfg``."""
    mode = "sub" if cfg.subpixel else "int"
    return (
        f"{cfg.model}-{weights_sha256[:16]}-k{cfg.max_keypoints}-t{cfg.detection_threshold:g}"
        f"-n{cfg.nms_radius_px}-b{cfg.border_px}-{mode}-g{GRAPH_VERSION}.onnx"
    )


def extractor_onnx_path(cfg: ExtractorConfig) -> Path:
    """Where the extractor graph of ``cfg`` lives in the ONNX cache (it may not exist yet)."""
    return onnx_dir(cfg.onnx_dir) / extractor_onnx_name(cfg, sha256_of(extractor_weights(cfg)))


def ensure_extractor_onnx(cfg: ExtractorConfig) -> Path:
    """The cached extractor graph of ``cfg``, exported first if it is not there yet or its
    content no longer has the hash recorded at export (a truncated or damaged file)."""
    path = extractor_onnx_path(cfg)
    if is_intact(path):
        return path
    if path.exists():
        log.warning("%s: damaged or unverified ONNX cache entry; exporting it again", path)
    return export_extractor(cfg, path)


def export_extractor(cfg: ExtractorConfig, path: str | os.PathLike[str] | None = None) -> Path:
    """Export the extractor graph of ``cfg`` to ``path`` (default: its cache path), atomically."""
    import onnx
    import torch

    from slamfront.frontend.models.detector import build_detector  # imports torch

    if cfg.model not in MODEL_SPECS:
        raise SlamfrontError(f"extractor model {cfg.model!r} has no network to export")
    spec = MODEL_SPECS[cfg.model]
    weights_sha = sha256_of(extractor_weights(cfg))
    target = Path(path) if path is not None else extractor_onnx_path(cfg)
    cached = target.parent == extractor_onnx_path(cfg).parent
    make_cache_folder(target.parent, "extractor.onnx_dir" if cached else "the export folder")
    log.info("exporting the %s extractor to ONNX (once; cached as %s)", cfg.model, target)
    detector = build_detector(cfg)
    example = torch.rand(1, spec.input_channels, 4 * spec.stride_px, 5 * spec.stride_px)
    rows = torch.export.Dim("rows", min=1, max=_MAX_BLOCKS)
    cols = torch.export.Dim("cols", min=1, max=_MAX_BLOCKS)
    dynamic = {"image": {2: spec.stride_px * rows, 3: spec.stride_px * cols}}
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        # The exporter reports progress on stdout and warns about optional packages; the
        # library does not print, so both are captured and sent to the debug log.
        captured = io.StringIO()
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(captured),
            torch.inference_mode(False),
        ):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                detector,
                (example,),
                str(raw),
                dynamo=True,
                external_data=False,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes=dynamic,
                verbose=False,
            )
        log.debug("exporter output:\n%s", captured.getvalue())
        model = onnx.load(str(raw))
        metadata = {
            "slamfront.kind": "extractor",
            "slamfront.model": cfg.model,
            "slamfront.weights_sha256": weights_sha,
            "slamfront.graph_version": str(GRAPH_VERSION),
            "slamfront.max_keypoints": str(cfg.max_keypoints),
            "slamfront.detection_threshold": repr(cfg.detection_threshold),
            "slamfront.nms_radius_px": str(cfg.nms_radius_px),
            "slamfront.border_px": str(cfg.border_px),
            "slamfront.subpixel": str(cfg.subpixel),
            "slamfront.stride_px": str(spec.stride_px),
            "slamfront.input_channels": str(spec.input_channels),
        }
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        final = Path(tmp) / "final.onnx"
        onnx.save(model, str(final))
        digest_path(target).unlink(missing_ok=True)  # no stale hash beside a new file
        os.replace(final, target)
        record_digest(target)
    return target


def export_models(
    config: Config, out_dir: str | os.PathLike[str] | None = None
) -> list[ExportedModel]:
    """Everything ``slamfront export`` writes for ``config`` (into ``out_dir`` or the cache).

    The extractor graph (ORB has none) and, for LightGlue matchers, the folders of its stage
    graphs (plain and masked).
    """
    exported: list[ExportedModel] = []
    extractor = config.extractor
    if extractor.model in MODEL_SPECS:
        target = None
        if out_dir is not None:
            target = Path(out_dir) / extractor_onnx_name(
                extractor, sha256_of(extractor_weights(extractor))
            )
        path = export_extractor(extractor, target)
        exported.append(ExportedModel(f"extractor/{extractor.model}", path, sha256_of(path)))
    exported.extend(_export_matcher(config, out_dir))
    return exported


def _export_matcher(config: Config, out_dir: str | os.PathLike[str] | None) -> list[ExportedModel]:
    """LightGlue's stage graphs (one folder per variant: plain for ONNX Runtime, masked for
    TensorRT); see ``slamfront.frontend.runtime.lightglue_export``."""
    model = config.extractor.model
    if config.matcher.model != "lightglue" or model not in ARCHITECTURES:
        return []
    if config.matcher.weights is None and model not in WEIGHT_FILES:
        return []
    exported = []
    for masked in (False, True):
        graphs = lightglue_graphs(config.matcher, model, masked=masked, root=out_dir)
        name = f"matcher/lightglue-{model}" + ("-masked" if masked else "")
        exported.append(ExportedModel(name, graphs.folder, graphs_digest(graphs)))
    return exported


__all__ = [
    "GRAPH_VERSION",
    "ExportedModel",
    "ensure_extractor_onnx",
    "export_extractor",
    "export_models",
    "extractor_onnx_name",
    "extractor_onnx_path",
    "onnx_dir",
]
