"""The command itself: help for every group, version, config show, and one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import cli_env

GROUPS = ["data", "tokenizer", "train", "resume", "eval", "chat", "learn", "slurm", "config", "doctor", "bench",
          "report", "speedrun"]


def test_top_help_lists_every_group(run_cli):
    r = run_cli("--help")
    assert r.returncode == 0
    for g in GROUPS:
        assert g in r.stdout


@pytest.mark.parametrize("group", GROUPS)
def test_group_help_renders(run_cli, group):
    r = run_cli(group, "--help")
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout


def test_version(run_cli):
    from nanochat_cli import __version__

    r = run_cli("--version")
    assert r.returncode == 0 and __version__ in r.stdout


def test_python_dash_m_and_help_does_not_import_torch():
    code = ("import sys; from nanochat_cli.cli import app; "
            "assert 'torch' not in sys.modules and 'datasets' not in sys.modules and 'wandb' not in sys.modules, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('torch','datasets','wandb'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env())
    assert r.returncode == 0, r.stderr


def test_config_show_json_round_trips(run_cli):
    from nanochat_cli.config import Config

    r = run_cli("config", "show", "--profile", "a100x8", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    cfg = Config(**doc["config"])
    assert cfg.model.depth == 20 and doc["sources"]["model.depth"] == "profile"


def test_config_show_names_env_and_flag_sources(run_cli):
    r = run_cli("config", "show", "--json", env={"NANOCHAT_MODEL__DEPTH": "7"})
    doc = json.loads(r.stdout)
    assert doc["config"]["model"]["depth"] == 7 and doc["sources"]["model.depth"] == "env"
    r = run_cli("config", "show", "--profile", "a100x8")
    assert "profile" in r.stdout


def test_flag_overrides_env(run_cli, home):
    # `train base --depth` is a flag; its effect is visible through the config the command builds. The
    # command itself may not run here, so resolve the same flags through load_config directly as well.
    from nanochat_cli.config_sources import load_config

    r = load_config(flags={"model.depth": 3}, environ={"NANOCHAT_MODEL__DEPTH": "7"})
    assert r.config.model.depth == 3 and r.source_of("model.depth") == "flag"


def test_profiles_lists_all(run_cli):
    r = run_cli("config", "profiles", "--json")
    names = {p["name"] for p in json.loads(r.stdout)}
    assert {"cpu-tiny", "cpu-small", "a100x8", "h100x8"} <= names


def _write(home, name, text):
    p = home / name
    p.write_text(text)
    return str(p)


BAD_INPUTS = [
    # (args, env, file contents or None, text expected in the one line)
    (["config", "show", "--profile", "no-such"], {}, None, "unknown profile"),
    (["config", "show", "--profile", "cpu-tiy"], {}, None, "did you mean 'cpu-tiny'"),
    (["config", "show", "--config", "{file}"], {}, "[model\ndepth = 3", "not valid TOML"),
    (["config", "show", "--config", "{file}"], {}, "[model]\ndept = 3\n", "did you mean 'model.depth'"),
    (["config", "show", "--config", "{file}"], {}, "[trian]\nseed = 1\n", "did you mean 'train'"),
    (["config", "show", "--config", "{file}"], {}, "model = 3\n", "must be a table"),
    (["config", "show", "--config", "{file}"], {}, "[model]\ndepth = \"deep\"\n", "model.depth"),
    (["config", "show", "--config", "/nonexistent/x.toml"], {}, None, "does not exist"),
    (["config", "show"], {"NANOCHAT_MODEL__DEPTH": "abc"}, None, "NANOCHAT_MODEL__DEPTH"),
    (["config", "show"], {"NANOCHAT_TRAIN__DEVICE": "tpu"}, None, "train.device"),
    (["config", "show"], {"NANOCHAT_MODEL__DEPTHH": "3"}, None, "did you mean 'model.depth'"),
    (["config", "show"], {"NANOCHAT_MODEL__N_KV_HEADS": "3"}, None, "n_kv_heads"),
    (["config", "show"], {"NANOCHAT_TRAIN__DEVICE_BATCH_SIZE": "3"}, None, "total_batch_size"),
    (["config", "show"], {"NANOCHAT_TRAIN__WARMUP_RATIO": "0.9"}, None, "warmup_ratio"),
    (["config", "show"], {"NANOCHAT_SLURM__TIME": "forever"}, None, "slurm.time"),
    (["config", "show"], {"NANOCHAT_TOKENIZER__VOCAB_SIZE": "100"}, None, "tokenizer.vocab_size"),
    (["config", "show", "--no-such-flag"], {}, None, "No such option"),
    (["config", "nope"], {}, None, "No such command"),
    (["train", "base", "--depth", "-1"], {}, None, "model.depth"),
    (["train", "base", "--device-batch-size", "many"], {}, None, "many"),
    (["train", "base", "--seed", "99999999999999999999999"], {}, None, "between 0 and 4294967295"),
    (["chat", "-t", "inf", "-p", "hi"], {}, None, "chat.temperature (from a flag): must be a finite number"),
    (["chat", "-t", "nan", "-p", "hi"], {}, None, "must be a finite number"),
    (["chat", "-t", "-1", "-p", "hi"], {}, None, "must be between 0 and 100"),
    (["eval", "chat", "--max-problems", "0"], {}, None, "-1 (all) or a count of at least 1"),
    (["config", "show", "--profile", ""], {}, None, "--profile is empty"),
    (["config", "show"], {"NANOCHAT_PROFILE": ""}, None, "NANOCHAT_PROFILE is empty"),
    (["config", "show"], {"NANOCHAT_HOME": ""}, None, "home (from env NANOCHAT_HOME): it is set but empty"),
    (["--home", "", "config", "show"], {}, None, "home (from --home): it is set but empty"),
    (["config", "show", "--config", ""], {}, None, "--config is empty"),
    (["bench", "train", "--batch", "99999999999999999999"], {}, None, "between 1 and 65536"),
]


@pytest.mark.parametrize("args,env,contents,needle", BAD_INPUTS, ids=[" ".join(a[0]) + f"-{i}"
                                                                      for i, a in enumerate(BAD_INPUTS)])
def test_bad_input_is_one_line_exit_2(run_cli, home, args, env, contents, needle):
    if contents is not None:
        args = [a.replace("{file}", _write(home, "bad.toml", contents)) for a in args]
    r = run_cli(*args, env=env)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert needle in lines[0], lines[0]


def test_an_empty_home_writes_nothing_in_the_current_directory(run_cli, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for args, env in ((["data", "fetch", "base", "--profile", "cpu-tiny"], {"NANOCHAT_HOME": ""}),
                      (["--home", "", "data", "fetch", "base", "--profile", "cpu-tiny"], {})):
        r = run_cli(*args, env=env, cwd=cwd)
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert "set but empty" in r.stderr and list(cwd.iterdir()) == []


def test_a_misspelled_variable_warns_once_and_the_command_goes_on(run_cli):
    r = run_cli("config", "show", "--json", env={"NANOCHAT_TRAINN__SEED": "1", "NANOCHAT_DEBUG": "1"})
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["warning: NANOCHAT_TRAINN__SEED is not a nanochat setting and is ignored; "
                                     "did you mean NANOCHAT_TRAIN__SEED?"]
    assert json.loads(r.stdout)["config"]["train"]["seed"] == 42


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: "
                                                             "can't allocate memory: you tried to allocate 5242880000 "
                                                             "bytes.\nError code 12")])
def test_out_of_memory_is_one_line_naming_the_batch(monkeypatch, capsys, home, exc):
    import nanochat_cli.config_sources
    from nanochat_cli.cli import main

    def too_big(**_):
        raise exc

    monkeypatch.setattr(nanochat_cli.config_sources, "load_config", too_big)
    with pytest.raises(SystemExit) as e:
        main(["config", "show"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and err.startswith("Error: out of memory"), err
    assert "lower the batch size" in err


def test_other_runtime_errors_still_show_their_traceback(monkeypatch, home):
    import nanochat_cli.config_sources
    from nanochat_cli.cli import main

    def bug(**_):
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(nanochat_cli.config_sources, "load_config", bug)
    with pytest.raises(RuntimeError, match="a bug of ours"):
        main(["config", "show"])
