"""Which inference runtimes this machine can use, and what ``runtime: auto`` picks.

``auto`` takes TensorRT when it is usable (the ``tensorrt`` package imports, a CUDA device
is visible and there is a way to move buffers: pycuda or torch CUDA; the matcher's engines
take torch CUDA tensors only), else ONNX Runtime on the CPU, else torch. :func:`runtime_report`
gives the reasons, for ``slamfront doctor``.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from slamfront.errors import RuntimeUnavailableError

RUNTIMES = ("torch", "onnxruntime", "tensorrt")


@dataclass(frozen=True)
class RuntimeProbe:
    """One component: usable or not, with a one-line reason or version."""

    name: str
    usable: bool
    detail: str


@dataclass(frozen=True)
class RuntimeReport:
    """The probes and the choice ``runtime: auto`` makes from them."""

    auto_choice: str
    reason: str
    probes: tuple[RuntimeProbe, ...]
    onnxruntime_providers: tuple[str, ...]

    def probe(self, name: str) -> RuntimeProbe:
        for item in self.probes:
            if item.name == name:
                return item
        raise KeyError(name)

    def lines(self) -> list[str]:
        """Human-readable lines (what doctor prints)."""
        out = [f"runtime auto -> {self.auto_choice} ({self.reason})"]
        for item in self.probes:
            mark = "yes" if item.usable else "no "
            out.append(f"  {item.name:<12} {mark}  {item.detail}")
        providers = ", ".join(self.onnxruntime_providers) or "(none)"
        out.append(f"  onnxruntime providers: {providers}")
        return out


def _probe_torch() -> tuple[RuntimeProbe, RuntimeProbe]:
    try:
        import torch
    except ImportError as exc:
        missing = RuntimeProbe("torch", usable=False, detail=f"not importable: {exc}")
        return missing, RuntimeProbe("torch-cuda", usable=False, detail="torch missing")
    cpu = RuntimeProbe("torch", usable=True, detail=f"torch {torch.__version__}")
    if torch.cuda.is_available():
        cuda = RuntimeProbe(
            "torch-cuda", usable=True, detail=f"CUDA device: {torch.cuda.get_device_name(0)}"
        )
    else:
        cuda = RuntimeProbe("torch-cuda", usable=False, detail="torch sees no CUDA device")
    return cpu, cuda


def _probe_onnxruntime() -> tuple[RuntimeProbe, tuple[str, ...]]:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return RuntimeProbe("onnxruntime", usable=False, detail=f"not importable: {exc}"), ()
    providers = tuple(ort.get_available_providers())
    usable = "CPUExecutionProvider" in providers
    detail = f"onnxruntime {ort.__version__}" + ("" if usable else ", no CPU provider")
    return RuntimeProbe("onnxruntime", usable=usable, detail=detail), providers


def _probe_pycuda() -> RuntimeProbe:
    if importlib.util.find_spec("pycuda") is None:
        return RuntimeProbe("pycuda", usable=False, detail="pycuda not installed")
    try:
        driver = importlib.import_module("pycuda.driver")
        driver.init()
        count = driver.Device.count()
    except Exception as exc:  # any driver failure means: not usable
        return RuntimeProbe("pycuda", usable=False, detail=f"CUDA driver unusable: {exc}")
    if count == 0:
        return RuntimeProbe("pycuda", usable=False, detail="no CUDA device")
    return RuntimeProbe("pycuda", usable=True, detail=f"CUDA device: {driver.Device(0).name()}")


def _probe_tensorrt(buffers_ok: bool, buffers_reason: str) -> RuntimeProbe:
    if importlib.util.find_spec("tensorrt") is None:
        return RuntimeProbe("tensorrt", usable=False, detail="tensorrt not installed")
    try:
        trt = importlib.import_module("tensorrt")
    except Exception as exc:
        return RuntimeProbe("tensorrt", usable=False, detail=f"tensorrt does not import: {exc}")
    version = str(getattr(trt, "__version__", "?"))
    if not version.startswith("10."):
        return RuntimeProbe(
            "tensorrt", usable=False, detail=f"tensorrt {version}; this code needs TensorRT 10"
        )
    if not buffers_ok:
        return RuntimeProbe(
            "tensorrt", usable=False, detail=f"tensorrt {version} but {buffers_reason}"
        )
    return RuntimeProbe("tensorrt", usable=True, detail=f"tensorrt {version}")


def runtime_report(*, tensorrt_needs_torch_cuda: bool = False) -> RuntimeReport:
    """Probe torch, CUDA, ONNX Runtime and TensorRT; say what ``auto`` would pick and why.

    ``tensorrt_needs_torch_cuda``: TensorRT counts as usable only when torch sees a CUDA
    device (the matcher's engines run on torch CUDA tensors; the extractor's also on pycuda).
    """
    torch_cpu, torch_cuda = _probe_torch()
    onnx, providers = _probe_onnxruntime()
    pycuda = _probe_pycuda()
    if tensorrt_needs_torch_cuda:
        buffers_ok, reason = torch_cuda.usable, f"no torch CUDA device ({torch_cuda.detail})"
    else:
        buffers_ok = pycuda.usable or torch_cuda.usable
        reason = "no CUDA device (neither pycuda nor torch sees one)"
    tensorrt = _probe_tensorrt(buffers_ok, reason)
    if tensorrt.usable:
        choice, why = "tensorrt", f"{tensorrt.detail} with a CUDA device"
    elif onnx.usable:
        choice, why = "onnxruntime", f"TensorRT not usable: {tensorrt.detail}; ONNX Runtime on CPU"
    elif torch_cpu.usable:
        choice, why = "torch", f"neither TensorRT ({tensorrt.detail}) nor ONNX Runtime usable"
    else:
        choice, why = "none", "no runtime is usable"
    return RuntimeReport(
        auto_choice=choice,
        reason=why,
        probes=(tensorrt, pycuda, torch_cuda, onnx, torch_cpu),
        onnxruntime_providers=providers,
    )


def pick_runtime(requested: str, *, tensorrt_needs_torch_cuda: bool = False) -> str:
    """``requested`` itself, or for ``auto`` the runtime :func:`runtime_report` picks (with
    ``tensorrt_needs_torch_cuda`` as there)."""
    if requested in RUNTIMES:
        return requested
    if requested != "auto":
        raise RuntimeUnavailableError(
            f"unknown runtime {requested!r}; expected auto, {', '.join(RUNTIMES)}"
        )
    if importlib.util.find_spec("tensorrt") is None:
        # The common CPU case, decided without importing torch or probing CUDA.
        onnx, _ = _probe_onnxruntime()
        if onnx.usable:
            return "onnxruntime"
    report = runtime_report(tensorrt_needs_torch_cuda=tensorrt_needs_torch_cuda)
    if report.auto_choice == "none":
        raise RuntimeUnavailableError(f"runtime auto: {report.reason}")
    return report.auto_choice


__all__ = ["RUNTIMES", "RuntimeProbe", "RuntimeReport", "pick_runtime", "runtime_report"]
