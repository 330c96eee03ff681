"""Config precedence, provenance and validation (issue 3)."""

from __future__ import annotations

import json

import pytest

from nanochat_cli.config import Config, config_to_toml_dict, dump_toml, load_config, profile_names
from nanochat_cli.errors import UsageError


def test_default_profile_is_cpu_tiny():
    r = load_config(environ={})
    assert r.config.profile == "cpu-tiny"
    assert r.source_of("model.depth") == "profile"
    assert r.source_of("model.softcap") == "default"


@pytest.mark.parametrize("name", profile_names())
def test_every_profile_validates_and_round_trips(name):
    cfg = load_config(profile=name, environ={}).config
    again = Config(**json.loads(json.dumps(config_to_toml_dict(cfg))))
    assert again == cfg
    assert cfg.grad_accum_steps >= 1


def test_gpu_profiles_use_the_speedrun_numbers():
    for name in ("a100x8", "h100x8"):
        cfg = load_config(profile=name, environ={}).config
        assert cfg.model.depth == 20 and cfg.model.width == 1280 and cfg.model.n_heads == 10
        assert cfg.model.seq_len == 2048 and cfg.tokenizer.vocab_size == 65536
        assert cfg.train.total_batch_size == 524_288 and cfg.train.target_param_data_ratio == 20
        assert cfg.grad_accum_steps == 1  # 32 x 2048 x 8 GPUs = 524,288


def test_precedence_each_level(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[model]\ndepth = 5\nseq_len = 128\n[train]\nseed = 1\n")
    env = {"NANOCHAT_MODEL__SEQ_LEN": "64", "NANOCHAT_TRAIN__SEED": "2"}
    r = load_config(profile="cpu-small", config_file=f, flags={"train.seed": 3}, environ=env)
    c = r.config
    assert c.model.aspect_ratio == 64 and r.source_of("model.aspect_ratio") == "profile"   # profile over default
    assert c.model.depth == 5 and r.source_of("model.depth") == "file"                     # file over profile
    assert c.model.seq_len == 64 and r.source_of("model.seq_len") == "env"                 # env over file
    assert c.train.seed == 3 and r.source_of("train.seed") == "flag"                       # flag over env
    assert c.model.softcap == 15.0 and r.source_of("model.softcap") == "default"


def test_width_rounds_up_to_whole_heads():
    c = load_config(profile="a100x8", flags={"model.depth": 7}, environ={}).config
    assert c.model.width == 512 and c.model.n_heads == 4       # 7 x 64 = 448 -> 4 heads of 128
    assert load_config(flags={"model.depth": 5}, environ={}).config.model.width == 320  # cpu-tiny heads of 64


def test_nested_env_and_home():
    r = load_config(environ={"NANOCHAT_TRAIN__DEVICE_BATCH_SIZE": "4", "NANOCHAT_HOME": "/tmp/x"})
    assert r.config.train.device_batch_size == 4
    assert str(r.config.home) == "/tmp/x" and r.source_of("home") == "env"


def test_profile_from_env_variable():
    assert load_config(environ={"NANOCHAT_PROFILE": "a100x8"}).config.model.depth == 20
    # an explicit --profile wins over the variable
    r = load_config(profile="cpu-tiny", environ={"NANOCHAT_PROFILE": "a100x8"})
    assert r.config.profile == "cpu-tiny" and r.config.model.depth != 20


def test_none_flags_are_not_set():
    r = load_config(flags={"model.depth": None}, environ={})
    assert r.source_of("model.depth") == "profile"


@pytest.mark.parametrize("flags,needle", [
    ({"model.depth": 0}, "model.depth"),
    ({"model.head_dim": 4}, "model.head_dim"),
    ({"train.device_batch_size": 3}, "total_batch_size"),
    ({"train.device": "tpu"}, "train.device"),
    ({"model.n_kv_heads": 3}, "n_kv_heads"),
])
def test_invalid_values_name_the_field(flags, needle):
    with pytest.raises(UsageError) as e:
        load_config(flags=flags, environ={})
    assert needle in e.value.one_line() and e.value.exit_code == 2


def test_unknown_key_suggests(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[model]\ndept = 3\n")
    with pytest.raises(UsageError) as e:
        load_config(config_file=f, environ={})
    assert "did you mean 'model.depth'" in e.value.one_line()


def test_dump_toml_round_trips(tmp_path):
    import tomllib

    cfg = load_config(profile="a100x8", environ={}).config
    data = tomllib.loads(dump_toml(config_to_toml_dict(cfg)))
    assert Config(**data) == cfg
