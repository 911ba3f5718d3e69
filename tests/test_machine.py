"""The machine a report names: CPU always, GPU name, memory, driver and backends when torch ran."""

import subprocess
import sys
from types import SimpleNamespace

import pytest

from thermocheck import machine


def test_cpu_only_run_records_the_cpu_and_no_torch():
    code = ("import json, sys; from thermocheck.machine import device_info; "
            "i = device_info(); assert 'torch' not in sys.modules, 'imported torch'; "
            "print(json.dumps(i))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert '"accelerator": "cpu"' in out.stdout
    assert '"torch"' not in out.stdout


def _fake_torch(cuda: bool) -> SimpleNamespace:
    props = SimpleNamespace(name="NVIDIA H200", total_memory=141 * 2**30, major=9, minor=0,
                            multi_processor_count=132)
    cudnn = SimpleNamespace(version=lambda: 90100, is_available=lambda: True, benchmark=True,
                            deterministic=False, allow_tf32=False)
    return SimpleNamespace(
        __version__="2.11.0+cu128", version=SimpleNamespace(cuda="12.8"),
        backends=SimpleNamespace(cudnn=cudnn, cuda=SimpleNamespace(
            matmul=SimpleNamespace(allow_tf32=False))),
        get_float32_matmul_precision=lambda: "highest", get_num_threads=lambda: 16,
        cuda=SimpleNamespace(is_available=lambda: cuda, device_count=lambda: 1,
                             get_device_properties=lambda i: props))


def test_gpu_run_records_name_memory_driver_and_backends(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(cuda=True))
    monkeypatch.setattr(machine, "_nvidia_driver", lambda: "570.86.15")
    info = machine.device_info()
    assert info["accelerator"] == "cuda"
    assert info["gpus"][0]["name"] == "NVIDIA H200"
    assert info["gpus"][0]["memory_gib"] == pytest.approx(141.0)
    assert info["driver"] == "570.86.15"
    assert info["torch"]["cuda_build"] == "12.8" and info["torch"]["cudnn"] == 90100
    assert info["torch"]["cudnn_benchmark"] is True
    line = machine.describe(info)
    assert "NVIDIA H200" in line and "570.86.15" in line and "CUDA 12.8" in line


def test_torch_on_cpu_records_backends_but_no_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(cuda=False))
    info = machine.device_info()
    assert info["accelerator"] == "cpu" and "gpus" not in info
    assert info["torch"]["torch"] == "2.11.0+cu128"
