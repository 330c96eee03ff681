"""Device, dtype and compile choice: the logic, with CPU flags injected."""

import pytest
import torch

from nanochat_cli.config_sources import load_config
from nanochat_cli.errors import UsageError
from nanochat_cli.model.precision import (compile_or_eager, cpu_flags, resolve_compile, resolve_device,
                                          resolve_dtype)


def cfg(**flags):
    return load_config(flags=flags).config


def test_auto_dtype_on_cpu_follows_the_bf16_flags(home):
    c = cfg()
    dtype, why = resolve_dtype(c, torch.device("cpu"), flags={"avx2", "avx512f", "avx512_bf16"})
    if torch.backends.mkldnn.is_available():
        assert dtype == torch.bfloat16 and "avx512_bf16" in why
    dtype, why = resolve_dtype(c, torch.device("cpu"), flags={"avx2", "amx_bf16", "amx_tile"})
    assert dtype == (torch.bfloat16 if torch.backends.mkldnn.is_available() else torch.float32)
    dtype, why = resolve_dtype(c, torch.device("cpu"), flags={"avx", "avx2", "fma"})
    assert dtype == torch.float32 and "lacks AVX512-BF16" in why


def test_auto_dtype_on_cuda_is_bf16_and_flag_overrides(home):
    assert resolve_dtype(cfg(), torch.device("cuda"))[0] == torch.bfloat16
    dtype, why = resolve_dtype(cfg(**{"train.dtype": "bfloat16"}), torch.device("cpu"), flags=set())
    assert dtype == torch.bfloat16 and "train.dtype" in why
    assert resolve_dtype(cfg(**{"train.dtype": "float32"}), torch.device("cuda"))[0] == torch.float32


def test_cpu_flags_reads_cpuinfo(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(f) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()


def test_device_choice(home):
    assert resolve_device(cfg(**{"train.device": "cpu"})) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device(cfg()) == torch.device("cpu")
        with pytest.raises(UsageError, match="no CUDA"):
            resolve_device(cfg(**{"train.device": "cuda"}))


def test_compile_choice(home, monkeypatch):
    assert resolve_compile(cfg(**{"train.compile": "off"}), torch.device("cpu"))[0] is False
    from nanochat_cli.model import precision

    monkeypatch.setattr(precision, "compiler_available", lambda: (False, "no C++ compiler found"))
    assert resolve_compile(cfg(**{"train.compile": "auto"}), torch.device("cpu")) == (False, "no C++ compiler found")
    with pytest.raises(UsageError, match="no C\\+\\+ compiler"):
        resolve_compile(cfg(**{"train.compile": "on"}), torch.device("cpu"))


def test_compile_failure_falls_back_to_eager(monkeypatch, caplog):
    def broken_compile(fn, **kw):
        def boom(*a, **k):
            raise RuntimeError("C++ compile error: cc1plus not found")
        return boom

    monkeypatch.setattr(torch, "compile", broken_compile)
    fn = compile_or_eager(lambda x: x + 1, True, "a test function")
    with caplog.at_level("WARNING"):
        assert fn(1) == 2 and fn(2) == 3
    assert sum("running it eagerly" in r.message for r in caplog.records) == 1
