"""Hardware detection: bfloat16 on the CPU and GPU, and what precision="auto" picks."""

from __future__ import annotations

import pytest
import torch

from fcnseg.utils.hardware import (
    CpuInfo,
    auto_precision,
    default_channels_last,
    parse_cpuinfo,
    resolve_device,
    resolve_precision,
)

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni

processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni
"""
SAPPHIRE_RAPIDS_FLAGS = frozenset({"avx512f", "amx_tile", "amx_bf16", "amx_int8"})
SKYLAKE_FLAGS = frozenset({"avx2", "avx512f", "avx512bw", "avx512_vnni"})


def test_cpuinfo_is_read_from_the_first_processor() -> None:
    info = parse_cpuinfo(ZEN4)
    assert info.model == "AMD EPYC 9R14"
    assert "avx512_bf16" in info.flags and "sse2" in info.flags
    assert info.native_bf16 and info.bf16_flags == ["avx512_bf16"]


def test_arm_features_line_is_read_as_flags() -> None:
    info = parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert info.flags == {"fp", "asimd", "bf16"}
    assert not info.native_bf16  # ARM bf16 is not among the flags auto trusts


@pytest.mark.parametrize(("flags", "expected"), [
    (ZEN4 and parse_cpuinfo(ZEN4).flags, "bf16"),
    (SAPPHIRE_RAPIDS_FLAGS, "bf16"),
    (SKYLAKE_FLAGS, "fp32"),  # AVX-512 without BF16: bf16 would be emulated, slower than fp32
    (frozenset(), "fp32"),
])
def test_auto_on_the_cpu_needs_native_bf16(flags: frozenset[str], expected: str) -> None:
    assert auto_precision("cpu", cpu=CpuInfo("test", flags)) == expected


@pytest.mark.parametrize(("capability", "expected"), [
    ((9, 0), "bf16"), ((8, 0), "bf16"), ((8, 6), "bf16"),  # Hopper, Ampere
    ((7, 5), "fp16"), ((7, 0), "fp16"), ((6, 0), "fp16"),  # Turing, Volta, Pascal
])
def test_auto_on_a_gpu_is_bf16_from_ampere_and_fp16_before(capability, expected) -> None:
    assert auto_precision("cuda:0", capability=capability) == expected


def test_auto_elsewhere_is_fp32() -> None:
    assert auto_precision("mps") == "fp32"


def test_explicit_precisions_are_kept_and_unknown_ones_named() -> None:
    no_bf16 = CpuInfo("test", frozenset())
    assert resolve_precision("BF16", "cpu", cpu=no_bf16) == "bf16"
    assert resolve_precision("auto", "cpu", cpu=no_bf16) == "fp32"
    assert resolve_precision(None, "cpu", cpu=no_bf16) == "fp32"
    with pytest.raises(ValueError, match="precision: expected one of auto, fp32, bf16, fp16, "
                                         "got 'int8'"):
        resolve_precision("int8", "cpu")


def test_channels_last_by_device_and_precision() -> None:
    assert default_channels_last("cpu", "fp32") and default_channels_last("cpu", "bf16")
    assert default_channels_last(torch.device("cuda"), "bf16")
    assert default_channels_last("cuda:1", "fp16")
    assert not default_channels_last("cuda", "fp32")
    assert not default_channels_last("mps", "bf16")


@pytest.mark.parametrize(("available", "local_rank", "expected"), [
    (True, None, "cuda"), (True, 2, "cuda:2"), (False, None, "cpu"), (False, 2, "cpu")])
def test_auto_is_this_process_gpu_when_there_is_one(monkeypatch, available, local_rank,
                                                    expected) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    assert resolve_device("auto", local_rank) == torch.device(expected)
    assert resolve_device(torch.device("cpu"), local_rank) == torch.device("cpu")


def test_a_gpu_without_cuda_is_one_line_naming_the_gpu_of_the_process(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device, local_rank, name in (("cuda", None, "cuda:0"), ("cuda", 3, "cuda:3"),
                                     ("cuda:1", 3, "cuda:1")):
        with pytest.raises(ValueError) as e:
            resolve_device(device, local_rank)
        assert str(e.value) == (f"device: {name!r} requested but CUDA is not available; "
                                f"use device=cpu")
