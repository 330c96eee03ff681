"""`nanochat slurm render`: required sbatch lines, valid bash, exit 2 for values that could reach a shell
unquoted, injection attempts that stay inert when the script runs, and the job's step logic (doctor
first, skip finished phases, `resume` after a requeue) exercised with stub srun/torchrun/nanochat."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs_read_only_mount

REQUIRED_SBATCH = ["--job-name=nanochat", "--nodes=1", "--ntasks-per-node=1", "--gpus-per-node=8",
                   "--cpus-per-task=32", "--exclusive", "--time=12:00:00", "--open-mode=append", "--requeue",
                   "--signal=B:USR2@300", "--mail-type=BEGIN,END,FAIL,REQUEUE"]
REQUIRED_ENV = ["HF_HUB_OFFLINE=1", "HF_DATASETS_OFFLINE=1", "WANDB_MODE=offline", "PYTHONFAULTHANDLER=1",
                "NCCL_DEBUG=WARN", "OMP_NUM_THREADS=4", "PET_SIGNALS_TO_HANDLE=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR2"]


def render(run_cli, out: Path, *args: str, env=None, cwd=None):
    return run_cli("slurm", "render", "--out", str(out), *args, env=env, cwd=cwd)


def sbatch_lines(text: str) -> list[str]:
    return [ln.split(None, 1)[1] for ln in text.splitlines() if ln.startswith("#SBATCH ")]


def test_a100x8_speedrun_has_every_required_line(run_cli, home, tmp_path):
    r = render(run_cli, tmp_path / "o", "--profile", "a100x8", "--run", "speedrun")
    assert r.returncode == 0, r.stderr
    script = tmp_path / "o" / "nanochat.sbatch"
    assert r.stdout.strip() == f"sbatch {script}"
    text = script.read_text()
    lines = sbatch_lines(text)
    for want in REQUIRED_SBATCH:
        assert want in lines, want
    logs = home / "runs" / "speedrun" / "logs"
    assert f"--output={logs}/%x-%j.out" in lines and f"--error={logs}/%x-%j.err" in lines
    assert logs.is_dir()  # sbatch fails silently when the log dir is missing
    assert not any(ln.startswith("--mail-user") for ln in lines)  # no .env.local here
    for want in REQUIRED_ENV + [f"NANOCHAT_HOME={home}", f"HF_HOME={home}/datasets", f"WANDB_DIR={home}/wandb",
                                f"TIKTOKEN_CACHE_DIR={home}/tiktoken", "NANOCHAT_PROFILE=a100x8"]:
        assert f"export {want}\n" in text, want
    assert 'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in text
    assert "MASTER_PORT=$(( 20000 + SLURM_JOB_ID % 20000 ))" in text
    for want in ("srun --export=ALL --nodes=1 --ntasks-per-node=1", "torchrun --nnodes=1 --nproc-per-node=8",
                 "--rdzv-backend=c10d", '--rdzv-id="$SLURM_JOB_ID"', '--no-python -- "$@"', "trap on_usr2 USR2",
                 'scontrol requeue "$SLURM_JOB_ID"', "nanochat doctor --phase tokenizer,base,mid,sft,rl,eval\n",
                 "launch nanochat train base\n", "launch nanochat train mid\n", "launch nanochat train sft\n",
                 "launch nanochat resume --phase base --run speedrun\n"):
        assert want in text, want
    # the whole pipeline, in order: doctor, canary, tokenizer (train when missing, eval), the phases, the
    # evaluations of what was trained, the report
    order = ["nanochat doctor --phase", "launch nanochat doctor --canary\n",
             "run_here nanochat tokenizer train --if-missing\n", "run_here nanochat tokenizer eval\n",
             "launch nanochat train base\n", "launch nanochat train mid\n", "launch nanochat train sft\n",
             "launch nanochat eval core -i base --run speedrun\n", "launch nanochat eval chat -i mid --run speedrun\n",
             "launch nanochat eval chat -i sft --run speedrun\n", "run_here nanochat report --run speedrun\n"]
    assert [text.index(w) for w in order] == sorted(text.index(w) for w in order)
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_from_mid_and_per_phase_chain(run_cli, tmp_path):
    r = render(run_cli, tmp_path / "m", "--profile", "a100x8", "--from", "mid", "--time", "04:00:00")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "m" / "nanochat.sbatch").read_text()
    assert "nanochat doctor --phase mid,sft,rl,eval\n" in text and "train base" not in text
    assert "nanochat tokenizer" not in text and "eval core" not in text  # mid and SFT: their checkpoint's tokenizer
    assert "launch nanochat eval chat -i mid --run " in text and "run_here nanochat report --run " in text
    assert "--time=04:00:00" in sbatch_lines(text)

    r = render(run_cli, tmp_path / "p", "--profile", "a100x8", "--per-phase", "--phases", "base,mid")
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert files == ["nanochat-base.sbatch", "nanochat-mid.sbatch"]
    base = (tmp_path / "p" / "nanochat-base.sbatch").read_text()
    mid = (tmp_path / "p" / "nanochat-mid.sbatch").read_text()
    # the first job checks the whole chain and runs the canary and tokenizer; the last evaluates and reports
    assert "nanochat doctor --phase tokenizer,base,mid,eval\n" in base and "doctor --canary" in base
    assert "eval core" not in base and "report" not in base.split("--- preflight")[1]
    assert "--job-name=nanochat-mid" in sbatch_lines(mid) and "nanochat doctor --phase mid,eval\n" in mid
    assert "doctor --canary" not in mid and "nanochat tokenizer" not in mid
    assert "launch nanochat eval core -i base --run " in mid and "launch nanochat eval chat -i mid --run " in mid
    assert "--dependency=afterok:$jid" in r.stdout
    for f in (tmp_path / "p").iterdir():
        subprocess.run(["bash", "-n", str(f)], check=True)


def test_multi_node_validates_the_world_and_exports_it(run_cli, tmp_path):
    r = render(run_cli, tmp_path / "a", "--profile", "a100x8", "--nodes", "2")
    assert r.returncode == 2 and "is not a multiple of" in r.stderr and "slurm.nodes = 2" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "a").exists()
    # SFT too: its 32 conversations per step do not split over 2 × 8 ranks of 4 (it used to fail only when
    # SFT started, hours into the job)
    r = render(run_cli, tmp_path / "b", "--profile", "a100x8", "--nodes", "2",
               env={"NANOCHAT_TRAIN__DEVICE_BATCH_SIZE": "16"})
    assert r.returncode == 2 and "sft.examples_per_step 32" in r.stderr and "slurm.nodes = 2" in r.stderr
    r = render(run_cli, tmp_path / "b", "--profile", "a100x8", "--nodes", "2",
               env={"NANOCHAT_TRAIN__DEVICE_BATCH_SIZE": "16", "NANOCHAT_SFT__EXAMPLES_PER_STEP": "64"})
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "b" / "nanochat.sbatch").read_text()
    assert "--nodes=2" in sbatch_lines(text) and "torchrun --nnodes=2 --nproc-per-node=8" in text
    assert "export NANOCHAT_DIST__NNODES=2\n" in text
    assert "export NANOCHAT_TRAIN__DEVICE_BATCH_SIZE=16\n" in text  # the job resolves the same config


def test_mail_settings_come_from_env_local_below_the_real_env(run_cli, tmp_path):
    (tmp_path / ".env.local").write_text("# mine\nexport NANOCHAT_SLURM__MAIL_USER=ada@uni.example\n"
                                         "NANOCHAT_SLURM__MAIL_TYPE='END,FAIL'\nNANOCHAT_SLURM__ACCOUNT=proj42\n")
    r = render(run_cli, tmp_path / "o", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = sbatch_lines((tmp_path / "o" / "nanochat.sbatch").read_text())
    assert {"--mail-user=ada@uni.example", "--mail-type=END,FAIL", "--account=proj42"} <= set(lines)
    r = render(run_cli, tmp_path / "o2", cwd=tmp_path, env={"NANOCHAT_SLURM__MAIL_USER": "bob@uni.example"})
    assert "--mail-user=bob@uni.example" in sbatch_lines((tmp_path / "o2" / "nanochat.sbatch").read_text())
    r = run_cli("config", "show", "--json", cwd=tmp_path)
    assert '"slurm.mail_user": "env.local"' in r.stdout


BAD = [
    ({"NANOCHAT_SLURM__JOB_NAME": "x$(touch /tmp/PWNED)"}, [], "slurm.job_name"),
    ({"NANOCHAT_SLURM__JOB_NAME": "a;touch b"}, [], "slurm.job_name"),
    ({"NANOCHAT_SLURM__JOB_NAME": "a'b\"c"}, [], "slurm.job_name"),
    ({"NANOCHAT_SLURM__JOB_NAME": "a\n#SBATCH --wrap=touch x"}, [], "slurm.job_name"),
    ({"NANOCHAT_SLURM__PARTITION": "gpu --wrap=x"}, [], "slurm.partition"),
    ({"NANOCHAT_SLURM__MAIL_USER": "a@b;touch x"}, [], "slurm.mail_user"),
    ({"NANOCHAT_SLURM__MAIL_TYPE": "END,SOMETIMES"}, [], "slurm.mail_type"),
    ({"NANOCHAT_SLURM__MODULES": '["cuda; touch x"]'}, [], "slurm.modules"),
    ({"NANOCHAT_SLURM__ENV": '["1BAD=x"]'}, [], "slurm.env"),
    ({"NANOCHAT_SLURM__LOG_DIR": "/tmp/a b"}, [], "slurm.log_dir"),
    ({"NANOCHAT_SLURM__RDZV_HOST": "$(touch x)"}, [], "slurm.rdzv_host"),
    ({}, ["--time", "forever"], "slurm.time"),
    ({}, ["--time", "12:00:00\n#SBATCH --x"], "slurm.time"),
    ({}, ["--run", "../../etc"], "run name"),
    ({}, ["--run", "a b"], "run name"),
    ({}, ["--run", "test"], "placeholder"),
    ({}, ["--phases", "base,pretrain"], "--phases"),
    ({}, ["--phases", "sft,base"], "pipeline order"),
    ({}, ["--from", "chat"], "--from"),
    ({}, ["--phases", "mid", "--from", "mid"], "cannot be combined"),
    ({}, ["--command", "eval 'core"], "--command"),
    ({}, ["--nodes", "0"], "slurm.nodes"),
    ({}, ["--time", "00:05:00"], "signal_seconds"),
    ({}, ["--time", "99:99:99"], "99 minutes, but minutes after the first field must be below 60"),
    ({}, ["--time", "1-24"], "24 hours"),
    ({}, ["--phases", ""], "unknown phase(s) ''"),
    ({}, ["--from", ""], "unknown phase(s) '' for --from"),
    ({}, ["--command", ""], "--command is empty"),
    ({}, ["--command", "  "], "--command is empty"),
    ({}, ["--out", ""], "--out is empty"),
    ({"NANOCHAT_SLURM__VENV": ""}, [], "slurm.venv"),
    ({"NANOCHAT_SLURM__LOG_DIR": ""}, [], "slurm.log_dir"),
    ({"NANOCHAT_SLURM__CPUS_PER_TASK": "99999999999"}, [], "between 1 and 4096"),
    ({"NANOCHAT_SLURM__EXTRA_DIRECTIVES": '["constraint=a100"]'}, [], "slurm.extra_directives"),
    ({"NANOCHAT_SLURM__EXTRA_DIRECTIVES": '["-C a100"]'}, [], "start with --"),
    ({"NANOCHAT_SLURM__EXTRA_DIRECTIVES": '["--mem=0\\n#SBATCH --wrap=x"]'}, [], "slurm.extra_directives"),
    ({"NANOCHAT_SLURM__EXTRA_DIRECTIVES": '["--comment=$(touch x)"]'}, [], "slurm.extra_directives"),
    ({"NANOCHAT_SLURM__EXTRA_DIRECTIVES": '["--comment=a;b"]'}, [], "slurm.extra_directives"),
    ({"NANOCHAT_SLURM__EXTRA_DIRECTIVES": '["--time=1"]'}, [], "set slurm.time instead"),
]


@pytest.mark.parametrize("env,args,needle", BAD, ids=[b[2] + str(i) for i, b in enumerate(BAD)])
def test_invalid_values_exit_2_and_write_nothing(home, tmp_path, monkeypatch, capsys, env, args, needle):
    from nanochat_cli.cli import main  # in-process: 22 cases at ~5 ms instead of ~1 s each

    monkeypatch.chdir(tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SystemExit) as exc:
        main(["slurm", "render", "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert needle in err and err.startswith("Error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists() and not (home / "runs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # nothing in the cwd either


def test_extra_directives_and_exclusive(home, tmp_path):
    from nanochat_cli.config_sources import load_config
    from nanochat_cli.slurm.render import render_jobs

    env = {"NANOCHAT_HOME": str(home), "NANOCHAT_SLURM__EXCLUSIVE": "false",
           "NANOCHAT_SLURM__EXTRA_DIRECTIVES": '["--constraint=a100_80gb", "--mem=0", "--exclude=node[3-4]", '
                                               '"--gres=gpu:a100:8", "--hint=nomultithread"]'}
    resolved = load_config(profile="a100x8", environ=env)
    [job] = render_jobs(resolved, ("base",), "site").scripts
    lines = sbatch_lines(job.text)
    assert "--exclusive" not in lines
    assert lines[-5:] == ["--constraint=a100_80gb", "--mem=0", "--exclude=node[3-4]", "--gres=gpu:a100:8",
                          "--hint=nomultithread"]  # after the rendered ones, in the order given
    default = render_jobs(load_config(profile="a100x8", environ={"NANOCHAT_HOME": str(home)}), ("base",), "site")
    assert "--exclusive" in sbatch_lines(default.scripts[0].text)


def test_one_bad_value_through_the_real_command(run_cli, tmp_path):
    r = render(run_cli, tmp_path / "o", env={"NANOCHAT_SLURM__JOB_NAME": "x$(touch y)"})
    assert r.returncode == 2 and "slurm.job_name" in r.stderr and "Traceback" not in r.stderr


# --- running the rendered script with stand-ins for Slurm and the CLI ----------------------------------

STUB_SRUN = '#!/bin/bash\nwhile [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n'
STUB_TORCHRUN = '#!/bin/bash\nwhile [ "$1" != --no-python ]; do shift; done\nshift\n[ "$1" = -- ] && shift\nexec "$@"\n'
STUB_SCONTROL = ('#!/bin/bash\nif [ "$1 $2" = "show hostnames" ]; then echo node1; echo node2; exit 0; fi\n'
                 'echo "scontrol $*" >> "$STUB_LOG"\n')
# Records each call's argv as one JSON line and the NANOCHAT_HOME it saw; exit code from STUB_RC_<word>.
STUB_NANOCHAT = f"""#!{sys.executable}
import json, os, sys
if sys.argv[1] == "workers-outcome":  # the real one: reads the records a (stub) worker left
    os.execv(sys.executable, [sys.executable, "-m", "nanochat_cli", *sys.argv[1:]])
record = os.environ.get("STUB_RECORD_" + sys.argv[1]) if "NANOCHAT_LAUNCH_DIR" in os.environ else None
if record:  # a worker under the job's torchrun: leave its exit record; torchrun then exits 1
    code, line = record.split(":", 1)
    with open(os.path.join(os.environ["NANOCHAT_LAUNCH_DIR"], "rank-0.json"), "w") as f:
        json.dump({{"rank": 0, "code": int(code), "line": line, "time": 1.0, "first_failure": True}}, f)
with open(os.environ["STUB_LOG"], "a") as f:
    f.write(json.dumps(["nanochat", *sys.argv[1:]]) + "\\n")
with open(os.environ["STUB_LOG"] + ".home", "w") as f:
    f.write(os.environ["NANOCHAT_HOME"])
sys.exit(1 if record else int(os.environ.get("STUB_RC_" + sys.argv[1], "0")))
"""


def stub_dir(tmp_path: Path) -> Path:
    d = tmp_path / "stubs"
    d.mkdir()
    for name, body in [("srun", STUB_SRUN), ("torchrun", STUB_TORCHRUN), ("scontrol", STUB_SCONTROL),
                       ("nanochat", STUB_NANOCHAT)]:
        (d / name).write_text(body)
        (d / name).chmod(0o755)
    return d


def run_script(script: Path, stubs: Path, tmp_path: Path, **env) -> tuple[subprocess.CompletedProcess, list[str]]:
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    full = {"PATH": f"{stubs}:/usr/bin:/bin", "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "node[1-2]",
            "STUB_LOG": str(log), "HOME": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
            **env}
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=full, timeout=60, cwd=tmp_path)
    calls = [" ".join(json.loads(ln)) for ln in log.read_text().splitlines()] if log.exists() else []
    return r, calls


def test_injection_attempts_in_paths_and_values_stay_inert(run_cli, tmp_path):
    marker = tmp_path / "PWNED"
    evil = f"x$(touch {marker})`touch {marker}`;touch {marker};'\"\nnext"
    evil_home = tmp_path / ("home " + evil)
    venv = tmp_path / ("venv " + evil)
    stubs = stub_dir(tmp_path)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text(f"export PATH={shlex.quote(str(stubs))}:$PATH\n")
    env = {"NANOCHAT_HOME": str(evil_home), "NANOCHAT_SLURM__VENV": str(venv),
           "NANOCHAT_SLURM__LOG_DIR": str(tmp_path / "logs"),
           "NANOCHAT_SLURM__ENV": '["NCCL_SOCKET_IFNAME=' + evil.replace('"', '\\"').replace("\n", "\\n") + '"]',
           "NANOCHAT_TRACK__PROJECT": evil}
    r = render(run_cli, tmp_path / "o", "--command", f"config show --x {shlex.quote(evil)}", env=env)
    assert r.returncode == 0, r.stderr
    script = tmp_path / "o" / "nanochat.sbatch"
    subprocess.run(["bash", "-n", str(script)], check=True)
    r, calls = run_script(script, tmp_path / "nothing-on-path", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not marker.exists()
    # the values arrived intact, as single arguments
    assert (tmp_path / "calls.log.home").read_text() == str(evil_home)
    argv = [json.loads(ln) for ln in (tmp_path / "calls.log").read_text().splitlines()]
    assert argv == [["nanochat", "doctor", "--phase", "none"], ["nanochat", "config", "show", "--x", evil]]
    text = script.read_text()
    assert "NCCL_SOCKET_IFNAME=" in text and "NANOCHAT_TRACK__PROJECT=" in text
    assert not marker.exists()


def test_doctor_failure_stops_the_job_with_exit_3(run_cli, tmp_path):
    r = render(run_cli, tmp_path / "o", "--profile", "a100x8")
    script = tmp_path / "o" / "nanochat.sbatch"
    r, calls = run_script(script, stub_dir(tmp_path), tmp_path, STUB_RC_doctor="3")
    assert r.returncode == 3
    assert calls == ["nanochat doctor --phase tokenizer,base,mid,sft,rl,eval"]
    assert "preflight failed (nanochat doctor exit 3)" in r.stderr and "no GPU time was spent" in r.stderr


PIPELINE = ["nanochat doctor --phase tokenizer,base,mid,sft,rl,eval", "nanochat doctor --canary",
            "nanochat tokenizer train --if-missing", "nanochat tokenizer eval", "nanochat train base",
            "nanochat train mid", "nanochat train sft", "nanochat train rl", "nanochat eval bpb -i base --run drill",
            "nanochat eval chat -i mid --run drill", "nanochat eval chat -i sft --run drill",
            "nanochat eval chat -i rl --run drill", "nanochat report --run drill"]


def test_restart_skips_finished_steps_and_continues_the_interrupted_one(run_cli, home, tmp_path):
    r = render(run_cli, tmp_path / "o", "--run", "drill")
    script = tmp_path / "o" / "nanochat.sbatch"
    stubs = stub_dir(tmp_path)
    r, calls = run_script(script, stubs, tmp_path, STUB_RC_train="0")
    assert r.returncode == 0, r.stderr
    assert calls == PIPELINE  # cpu-tiny evaluates base by bpb (no CORE bundle download)
    state = home / "runs" / "drill" / "slurm-state" / "steps"  # the run's, not the job's: a resubmit skips too
    done = "".join(f"started {s}\ndone {s}\n" for s in ("canary", "tokenizer", "tokenizer-eval", "base", "mid"))
    state.write_text(done + "started sft\n")  # the job was requeued during sft
    r, calls = run_script(script, stubs, tmp_path, SLURM_RESTART_COUNT="1")
    assert r.returncode == 0, r.stderr
    # the requeued step continues its own phase of its own run (never another run sharing the home)
    assert calls == [PIPELINE[0], "nanochat resume --phase sft --run drill", *PIPELINE[7:]]
    assert "sft: restarted after a requeue: nanochat resume --phase sft --run drill" in r.stdout
    assert "tokenizer: already done for run drill; skipped" in r.stdout
    state.write_text(done + "started sft\ndone sft\nstarted rl\ndone rl\nstarted eval-base\ndone eval-base\nstarted eval-mid\n")
    r, calls = run_script(script, stubs, tmp_path, SLURM_RESTART_COUNT="2")  # requeued during an eval
    assert calls == [PIPELINE[0], "nanochat eval chat -i mid --run drill", *PIPELINE[10:]]
    assert "eval-mid: restarted after a requeue: nanochat eval chat -i mid --run drill" in r.stdout
    r, calls = run_script(script, stubs, tmp_path, SLURM_RESTART_COUNT="3", STUB_RC_train="1")
    assert calls == [PIPELINE[0]] and r.returncode == 0  # all done already


def test_a_failing_step_fails_the_job_with_the_workers_own_code_and_line(run_cli, home, tmp_path):
    render(run_cli, tmp_path / "o", "--run", "drill")
    script = tmp_path / "o" / "nanochat.sbatch"
    r, calls = run_script(script, stub_dir(tmp_path), tmp_path, STUB_RC_train="1")
    assert r.returncode == 1 and calls[-1] == "nanochat train base"
    assert "base failed with exit 1" in r.stderr
    # torchrun says 1 for any failure; the workers' record says what it was (a failed canary: 3), once
    (home / "runs" / "drill" / "slurm-state" / "steps").unlink()  # a fresh submission
    r, calls = run_script(script, tmp_path / "stubs", tmp_path,
                          STUB_RECORD_doctor="3:canary failed on 2 × cpu: the loss did not fall")
    assert r.returncode == 3 and calls == PIPELINE[:2], r.stderr
    assert r.stderr.count("Error: canary failed on 2 × cpu: the loss did not fall\n") == 1
    assert "canary failed with exit 3" in r.stderr


def _one_line_exit_2(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


def test_out_that_is_a_file_is_exit_2_and_writes_nothing(run_cli, home, tmp_path):
    (tmp_path / "f").write_text("keep me")
    err = _one_line_exit_2(render(run_cli, tmp_path / "f", "--run", "r1"))
    assert "the sbatch directory" in err and "is a file, not a directory" in err and "--out DIR" in err
    err = _one_line_exit_2(render(run_cli, tmp_path / "f" / "sub", "--run", "r1"))
    assert "cannot be created" in err
    assert (tmp_path / "f").read_text() == "keep me" and not (home / "runs").exists()


def test_a_log_dir_that_is_a_file_creates_no_out_dir(run_cli, tmp_path):
    (tmp_path / "logs").write_text("")
    err = _one_line_exit_2(render(run_cli, tmp_path / "o", "--run", "r1",
                                  env={"NANOCHAT_SLURM__LOG_DIR": str(tmp_path / "logs")}))
    assert "job log directory" in err and "slurm.log_dir" in err
    assert not (tmp_path / "o").exists()


@needs_read_only_mount
def test_a_read_only_out_is_exit_2(run_cli, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    err = _one_line_exit_2(run_cli("slurm", "render", "--out", str(ro / "o"), "--run", "r1", read_only_dir=ro))
    assert "Read-only file system" in err and "--out DIR" in err
