"""hardware.py: the one table of GPU peaks (matched most-specific first), GPU kinds of profiles, CPU count."""

from __future__ import annotations

from nanochat_cli.hardware import PEAK_BF16_FLOPS, gpu_peak, peak_flops, peak_flops_of, profile_gpu, usable_cpus


def test_peak_table_has_the_datasheet_numbers_and_specific_names_win():
    peaks = dict(PEAK_BF16_FLOPS)
    assert peaks["H100"] == 989e12 and peaks["A100"] == 312e12
    assert peak_flops_of("NVIDIA H100 PCIe") == 756e12 and peak_flops_of("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops_of("NVIDIA A10G") == 70e12 and peak_flops_of("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops_of("Some Future GPU") is None and peak_flops("cpu") is None


def test_profile_gpu_kinds_and_their_peaks():
    assert profile_gpu("a100x8") == "a100" and profile_gpu("h100x8") == "h100"
    assert profile_gpu("cpu-tiny") is None and profile_gpu("cpu-tiny", "cuda") == "a100"
    assert gpu_peak("a100") == 312e12 and gpu_peak("h100") == 989e12


def test_usable_cpus_is_at_least_one():
    assert usable_cpus() >= 1
