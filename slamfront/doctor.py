"""What optional parts are usable on this machine, and why not. Used by ``slamfront doctor``."""

from __future__ import annotations

import importlib
import shutil
from dataclasses import dataclass

from slamfront.frontend.export import onnx_dir
from slamfront.frontend.runtime.availability import runtime_report
from slamfront.weights import PUBLISHED, cache_dir, user_cache, weights_status


@dataclass(frozen=True)
class Check:
    name: str
    usable: bool
    detail: str


def _version_of(module_name: str) -> tuple[object | None, str]:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or a broken native library
        return None, f"not importable ({type(exc).__name__}: {exc})"
    version = getattr(module, "__version__", None)
    return module, f"version {version}" if version else "importable"


def _weights_checks() -> list[Check]:
    """Each published weights file: where it was found and whether its sha256 is right."""
    checks = []
    for name in PUBLISHED:
        status = weights_status(name)
        if status.path is None:
            detail = f"{name}: not here yet; downloaded into {cache_dir()} on first use"
        elif status.sha256_ok:
            detail = f"{name}: {status.path} ({status.origin}), sha256 ok"
        else:
            detail = (
                f"{name}: {status.path} ({status.origin}) has the WRONG sha256 "
                "(truncated or another file): delete it"
            )
        checks.append(Check("weights", bool(status.sha256_ok), detail))
    return checks


def _cache_checks() -> list[Check]:
    """The ONNX export and TensorRT engine caches: where, and what they hold."""
    checks = []
    for name, folder in (
        ("onnx cache", onnx_dir(None)),
        ("tensorrt cache", user_cache("tensorrt")),
    ):
        if not folder.is_dir():
            checks.append(Check(name, False, f"{folder}: empty; filled on first use"))
            continue
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        files = [f for e in entries for f in ([e] if e.is_file() else e.rglob("*")) if f.is_file()]
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        listed = ", ".join(e.name for e in entries[:6]) + (", ..." if len(entries) > 6 else "")
        detail = f"{folder}: {len(entries)} exports, {size_mb:.0f} MB ({listed})"
        checks.append(Check(name, bool(entries), detail if entries else f"{folder}: empty"))
    return checks


def diagnose() -> list[Check]:
    """Probe torch/CUDA, ONNX Runtime, TensorRT, pycuda, gtsam, rerun, pyrealsense2, ray,
    rosbags, the weights files and the export caches."""
    checks: list[Check] = []
    torch, detail = _version_of("torch")
    cuda = False
    if torch is not None:
        cuda = bool(torch.cuda.is_available())  # type: ignore[attr-defined]
        devices = (
            ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))  # type: ignore[attr-defined]
            if cuda
            else "no CUDA device"
        )
        checks.append(Check("torch", True, f"{detail}; {devices}"))
    else:
        checks.append(Check("torch", False, detail))
    checks.append(Check("cuda", cuda, "CUDA device present" if cuda else "no CUDA device"))
    ort, detail = _version_of("onnxruntime")
    if ort is not None:
        providers = ", ".join(ort.get_available_providers())  # type: ignore[attr-defined]
        checks.append(Check("onnxruntime", True, f"{detail}; providers {providers}"))
    else:
        checks.append(Check("onnxruntime", False, detail))
    trt, detail = _version_of("tensorrt")
    trt_ok = trt is not None and cuda
    if trt is not None and not cuda:
        detail += "; unusable without a CUDA device"
    checks.append(Check("tensorrt", trt_ok, detail))
    pycuda, detail = _version_of("pycuda.driver")
    checks.append(Check("pycuda", pycuda is not None, detail))
    gtsam, detail = _version_of("gtsam")
    checks.append(Check("gtsam", gtsam is not None, detail))
    rerun, detail = _version_of("rerun")
    if rerun is not None:
        binary = shutil.which("rerun")
        detail += f"; viewer binary {binary}" if binary else "; no `rerun` viewer binary on PATH"
    checks.append(Check("rerun", rerun is not None, detail))
    rs, detail = _version_of("pyrealsense2")
    if rs is not None:
        try:
            count = len(rs.context().query_devices())  # type: ignore[attr-defined]
            detail += f"; {count} device(s) connected"
        except Exception as exc:
            detail += f"; cannot list devices ({exc})"
    checks.append(Check("pyrealsense2", rs is not None, detail))
    ray, detail = _version_of("ray")
    checks.append(Check("ray", ray is not None, detail))
    rosbags, detail = _version_of("rosbags")  # bag: sources
    checks.append(Check("rosbags", rosbags is not None, detail))
    checks += _weights_checks()
    checks += _cache_checks()
    report = runtime_report()  # the choice the extractor and matcher builders make
    checks.append(
        Check(
            "runtime=auto", report.auto_choice != "none", f"{report.auto_choice} ({report.reason})"
        )
    )
    return checks
