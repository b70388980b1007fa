"""What optional parts are usable on this machine, and why not. Used by ``slamfront doctor``."""

from __future__ import annotations

import importlib
import shutil
from dataclasses import dataclass

from slamfront.frontend.runtime.availability import runtime_report


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


def diagnose() -> list[Check]:
    """Probe torch/CUDA, ONNX Runtime, TensorRT, pycuda, gtsam, rerun, pyrealsense2, ray and
    rosbags."""
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
    report = runtime_report()  # the choice the extractor and matcher builders make
    checks.append(
        Check(
            "runtime=auto", report.auto_choice != "none", f"{report.auto_choice} ({report.reason})"
        )
    )
    return checks
