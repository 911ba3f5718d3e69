"""What a report records about the machine that produced it: CPU, accelerator, torch backends.

Reports that compare runs across machines (a CPU tier against a GPU nightly) must say where each
ran: the accelerator's name and memory, its driver, the CUDA and cuDNN versions torch was built
against, and the backend switches that change results (TF32, cuDNN autotuning, determinism).

Nothing here imports torch: when torch is not already loaded the run did not use it, and the
report says so instead of paying a second of import for a field nobody reads.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from typing import Any

__all__ = ["cpu_budget", "describe", "device_info"]


def cpu_budget() -> int:
    """The CPUs this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _cpu_name() -> str:
    """The processor's model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    """The NVIDIA driver version reported by ``nvidia-smi``, or None where it is not installed."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def _torch_backends(torch: Any) -> dict[str, Any]:
    """torch's version and the backend switches that change numbers or speed."""
    cudnn = torch.backends.cudnn
    return {
        "torch": str(torch.__version__),
        "cuda_build": torch.version.cuda,
        "cudnn": cudnn.version() if cudnn.is_available() else None,
        "cudnn_benchmark": bool(cudnn.benchmark),
        "cudnn_deterministic": bool(cudnn.deterministic),
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "num_threads": torch.get_num_threads(),
    }


def _gpus(torch: Any) -> list[dict[str, Any]]:
    """Name, memory and compute capability of every visible CUDA device."""
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        gpus.append({"index": i, "name": props.name,
                     "memory_gib": round(props.total_memory / 2**30, 2),
                     "compute_capability": f"{props.major}.{props.minor}",
                     "multiprocessors": props.multi_processor_count})
    return gpus


def device_info() -> dict[str, Any]:
    """The machine's CPU and, when torch is loaded, its accelerators and backend flags.

    ``{"cpu": …, "cpu_count": …, "accelerator": "cuda" | "cpu", "gpus": [...],
    "driver": …, "torch": {...}}``; the torch fields are absent when the run never imported torch.
    """
    info: dict[str, Any] = {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "accelerator": "cpu"}
    torch = sys.modules.get("torch")
    if torch is None:
        return info
    info["torch"] = _torch_backends(torch)
    if torch.cuda.is_available():
        info.update(accelerator="cuda", gpus=_gpus(torch), driver=_nvidia_driver())
    return info


def describe(info: dict[str, Any]) -> str:
    """One line for a human: ``NVIDIA H200 (139.8 GiB), driver 570.1, CUDA 12.8, cuDNN 90100``
    on a GPU run, the CPU's name otherwise."""
    if info.get("accelerator") == "cuda" and info.get("gpus"):
        gpu, backends = info["gpus"][0], info.get("torch", {})
        count = f"{len(info['gpus'])} × " if len(info["gpus"]) > 1 else ""
        return (f"{count}{gpu['name']} ({gpu['memory_gib']} GiB), driver {info.get('driver')}, "
                f"CUDA {backends.get('cuda_build')}, cuDNN {backends.get('cudnn')}")
    return f"{info.get('cpu')} ({info.get('cpu_count')} CPUs)"
