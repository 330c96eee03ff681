"""Config precedence, provenance and validation (issue 3)."""

from __future__ import annotations

import json

import pytest

from nanochat_cli.config import Config, config_to_toml_dict
from nanochat_cli.config_sources import dump_toml, load_config, profile_names
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
    per_micro = cfg.train.device_batch_size * cfg.model.seq_len * cfg.world_size
    assert cfg.train.total_batch_size % per_micro == 0 and cfg.train.total_batch_size >= per_micro


def test_gpu_profiles_use_the_speedrun_numbers():
    for name in ("a100x8", "h100x8"):
        cfg = load_config(profile=name, environ={}).config
        assert cfg.model.depth == 20 and cfg.model.width == 1280 and cfg.model.n_heads == 10
        assert cfg.model.seq_len == 2048 and cfg.tokenizer.vocab_size == 65536
        assert cfg.train.total_batch_size == 524_288 and cfg.train.target_param_data_ratio == 20
        assert cfg.train.device_batch_size * cfg.model.seq_len * cfg.world_size == 524_288  # grad accum 1


def test_precedence_each_level(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[model]\ndepth = 5\nseq_len = 128\n[train]\nseed = 1\n")
    env = {"NANOCHAT_MODEL__SEQ_LEN": "64", "NANOCHAT_TRAIN__SEED": "2"}
    r = load_config(profile="cpu-small", config_file=f, flags={"train.seed": 3}, environ=env)
    c = r.config
    assert c.model.aspect_ratio == 48 and r.source_of("model.aspect_ratio") == "profile"   # profile over default
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
    ({"rl.samples_per_problem": 12, "rl.device_batch_size": 8}, "rl.samples_per_problem"),
    ({"rl.problems_per_step": 3, "dist.nproc": 2}, "rl.problems_per_step"),
    ({"rl.task": "mmlu"}, "rl.task"),
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


@pytest.mark.parametrize("seed", [-1, 2**32, 99999999999999999999999])
def test_seed_is_bounded_to_what_torch_numpy_and_random_accept(seed):
    with pytest.raises(UsageError) as e:
        load_config(flags={"train.seed": seed}, environ={})
    assert "train.seed" in e.value.one_line() and "between 0 and 4294967295" in e.value.one_line()
    assert load_config(flags={"train.seed": 2**32 - 1}, environ={}).config.train.seed == 2**32 - 1


@pytest.mark.parametrize("value,needle", [("inf", "finite"), ("nan", "finite"), ("-0.5", "between 0 and 100"),
                                          ("1e-300", "use 0 for greedy")])
def test_temperature_must_be_finite_and_usable(value, needle):
    with pytest.raises(UsageError) as e:
        load_config(environ={"NANOCHAT_CHAT__TEMPERATURE": value})
    assert "chat.temperature" in e.value.one_line() and needle in e.value.one_line()
    assert load_config(environ={"NANOCHAT_CHAT__TEMPERATURE": "0"}).config.chat.temperature == 0


def test_no_float_setting_takes_inf_or_nan():
    with pytest.raises(UsageError, match="train.matrix_lr .*finite"):
        load_config(environ={"NANOCHAT_TRAIN__MATRIX_LR": "inf"})


@pytest.mark.parametrize("key", ["eval.chat_max_problems", "eval.core_max_per_task", "eval.speedrun_max_problems"])
@pytest.mark.parametrize("value", [0, -2])
def test_problem_counts_are_all_or_at_least_one(key, value):
    with pytest.raises(UsageError) as e:
        load_config(flags={key: value}, environ={})
    assert key in e.value.one_line() and "-1 (all) or a count of at least 1" in e.value.one_line()
    assert load_config(flags={key: 1}, environ={}).config.eval.model_dump()[key.split(".")[1]] == 1


@pytest.mark.parametrize("text,seconds", [("90", 5400), ("90:30", 5430), ("48:00:00", 172800), ("2-0", 172800),
                                          ("1-12", 129600), ("1-12:30", 131400), ("1-12:30:15", 131415)])
def test_slurm_time_accepts_every_slurm_form(text, seconds):
    from nanochat_cli.config import slurm_time_seconds

    assert slurm_time_seconds(text) == seconds
    assert load_config(flags={"slurm.time": text}, environ={}).config.slurm.time == text


@pytest.mark.parametrize("text,needle", [("99:99:99", "99 minutes"), ("1:00:60", "60 seconds"),
                                         ("1-24:00:00", "24 hours"), ("1-1:60", "60 minutes"),
                                         ("1:2:3:4", "not a Slurm time"), ("UNLIMITED", "finite limit"),
                                         ("\u0663:00:00", "not a Slurm time"), ("99999999999", "not a Slurm time"),
                                         ("40000000", "longer than Slurm")])
def test_slurm_time_rejects_what_is_not_a_clock(text, needle):
    with pytest.raises(UsageError) as e:
        load_config(flags={"slurm.time": text}, environ={})
    assert "slurm.time" in e.value.one_line() and needle in e.value.one_line()


@pytest.mark.parametrize("kwargs,needle", [({"profile": ""}, "--profile is empty"),
                                           ({"environ": {"NANOCHAT_PROFILE": ""}}, "NANOCHAT_PROFILE is empty"),
                                           ({"environ": {"NANOCHAT_PROFILE": " "}}, "NANOCHAT_PROFILE is empty")])
def test_an_empty_profile_name_is_an_error_listing_the_profiles(kwargs, needle):
    with pytest.raises(UsageError) as e:
        load_config(**{"environ": {}, **kwargs})
    assert needle in e.value.one_line() and "cpu-tiny" in e.value.one_line() and "a100x8" in e.value.one_line()
    assert e.value.exit_code == 2


def test_home_must_be_a_non_empty_path_to_a_directory(tmp_path):
    for environ, flags in (({"NANOCHAT_HOME": ""}, {}), ({}, {"home": ""}), ({}, {"home": "  "})):
        with pytest.raises(UsageError, match="home .*empty, which would write every file into the current dir"):
            load_config(flags=flags, environ=environ)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="exists and is not a directory"):
        load_config(flags={"home": str(tmp_path / "file")}, environ={})
    with pytest.raises(UsageError, match="unknown user"):
        load_config(flags={"home": "~no-such-user-here/x"}, environ={})
    assert load_config(flags={"home": str(tmp_path / "new")}, environ={}).config.home == tmp_path / "new"


def test_unread_nanochat_variables_warn_with_the_nearest_name():
    r = load_config(environ={"NANOCHAT_TRAINN__SEED": "1", "NANOCHAT_FOO": "1", "NANOCHAT_DTYPE": "float32",
                             "NANOCHAT_HOME": "/tmp/x", "NANOCHAT_PROFILE": "cpu-tiny", "NANOCHAT_DEBUG": "1",
                             "NANOCHAT_TRAIN__SEED": "3"})
    assert r.config.train.seed == 3  # warnings never change or stop the config
    assert r.warnings == [
        "NANOCHAT_DTYPE is not a nanochat setting and is ignored; did you mean NANOCHAT_TRAIN__DTYPE?",
        "NANOCHAT_FOO is not a nanochat setting and is ignored; settings are NANOCHAT_<SECTION>__<KEY> "
        "(e.g. NANOCHAT_TRAIN__SEED; `nanochat config show` lists the keys)",
        "NANOCHAT_TRAINN__SEED is not a nanochat setting and is ignored; did you mean NANOCHAT_TRAIN__SEED?"]


def test_the_forks_variables_are_aliases_with_one_notice(tmp_path):
    r = load_config(environ={"NANOCHAT_BASE_DIR": str(tmp_path / "fork"), "WANDB_RUN": "d20-fork"})
    assert r.config.home == tmp_path / "fork" and r.config.track.run == "d20-fork"
    assert r.layers.source_of("home") == "env" and r.layers.source_of("track.run") == "env"
    assert r.warnings == ["NANOCHAT_BASE_DIR is read as NANOCHAT_HOME; WANDB_RUN is read as NANOCHAT_TRACK__RUN "
                          "(the fork's names; set NANOCHAT_HOME and NANOCHAT_TRACK__RUN instead)"]
    # the new names win, and say so
    r = load_config(environ={"NANOCHAT_BASE_DIR": "/a", "NANOCHAT_HOME": str(tmp_path), "WANDB_RUN": "x",
                             "NANOCHAT_TRACK__RUN": "mine"})
    assert r.config.home == tmp_path and r.config.track.run == "mine"
    assert r.warnings == ["NANOCHAT_BASE_DIR is ignored because NANOCHAT_HOME is set; WANDB_RUN is ignored because "
                          "NANOCHAT_TRACK__RUN is set (the fork's names; set NANOCHAT_HOME and NANOCHAT_TRACK__RUN "
                          "instead)"]
    assert load_config(environ={}).warnings == []


def test_the_notice_is_one_line_on_stderr(run_cli):
    r = run_cli("config", "show", "--json", env={"WANDB_RUN": "fork-run"})
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["warning: WANDB_RUN is read as NANOCHAT_TRACK__RUN (the fork's names; set "
                                     "NANOCHAT_TRACK__RUN instead)"]
    assert '"fork-run"' in r.stdout


@pytest.mark.parametrize("key", ["data.base_url", "data.hf_endpoint", "data.words_url", "data.eval_bundle_url"])
@pytest.mark.parametrize("url,needle", [("", "http:// or https://"), ("not a url", "http:// or https://"),
                                        ("ftp://host/x", "http:// or https://"), ("http://[::1", "not a URL"),
                                        ("http://h:99999/x", "not a URL"), ("https:///path", "with a host")])
def test_download_urls_are_http_urls_with_a_host(key, url, needle):
    """A typo here would otherwise cost every retry and its backoff (a minute or more) before failing."""
    with pytest.raises(UsageError) as e:
        load_config(flags={key: url}, environ={})
    assert key in e.value.one_line() and needle in e.value.one_line()
    assert load_config(flags={key: "http://127.0.0.1:8080/mirror"}, environ={})


@pytest.mark.parametrize("var", ["NANOCHAT_MODEL__FILE", "NANOCHAT_SLURM__VENV", "NANOCHAT_SLURM__LOG_DIR"])
def test_an_empty_path_is_not_the_current_directory(var):
    with pytest.raises(UsageError, match="set but empty"):
        load_config(environ={var: ""})


def test_a_toml_number_is_slurm_minutes(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[slurm]\ntime = 90\n")
    assert load_config(config_file=f, environ={}).config.slurm.time == "90"


@pytest.mark.parametrize("key,value", [("train.device_batch_size", 2**70), ("sft.device_batch_size", 65537),
                                       ("mid.device_batch_size", 10**9), ("train.total_batch_size", 2**40)])
def test_batch_sizes_have_a_ceiling_before_torch_overflows(key, value):
    with pytest.raises(UsageError, match=f"{key} .*must be between 1 and"):
        load_config(flags={key: value}, environ={})
