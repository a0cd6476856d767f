"""harness.sweep: seeds, the store check, the command line, user settings, and the Ray executor.

The Ray tests share one local 2-CPU cluster (started once, ~5 s) and train digits-mlp runs (~0.2 s
each); they, the concurrent sweeps and the subprocess tests are marked ``integration``. Clusters
started with ``ray start`` and token authentication are tested in test_raycluster.py.
"""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from harness import settings
from harness.store import RunStore
from harness.sweep import (SETTINGS_MODULES_ENV, Job, Outcome, check_runs_dir, main, parse_seeds, run_local, run_ray,
                           settings_module_names, sweep, train_job)

ROOT = Path(__file__).resolve().parents[1]
DIGITS = settings.get("digits-mlp")


# ----------------------------------------------------------------------------------------------
# Pure parts and the command line


@pytest.mark.parametrize("texts, seeds", [
    ("0-3", (0, 1, 2, 3)), ("0,3,5", (0, 3, 5)), (["0-2", "7", "1"], (0, 1, 2, 7)), ("4", (4,)), ("2-2", (2,)),
])
def test_parse_seeds(texts, seeds):
    assert parse_seeds(texts) == seeds


@pytest.mark.parametrize("text", ["", "a", "3-1", "-2", "1-", "1.5", "0-x"])
def test_parse_seeds_rejects_what_is_no_seed(text):
    with pytest.raises(ValueError, match="seeds"):
        parse_seeds(text)


def test_check_runs_dir_creates_the_folder_or_names_it(tmp_path):
    assert check_runs_dir(tmp_path / "a" / "b").is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=f"the run store '{blocker}/runs' cannot be created or written"):
        check_runs_dir(blocker / "runs")


def test_the_command_line_trains_what_is_missing_then_finds_it_cached(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["digits-mlp", "--seeds", "0-1", f"--runs-dir={runs}"]) == 0
    out = capsys.readouterr().out
    assert "[sweep] 2 runs: 0 already in" in out and out.count("digits-mlp seed=") == 2
    assert "[sweep] trained 2, already cached 0, failed 0" in out
    assert main(["digits-mlp", "--seeds", "0,1", f"--runs-dir={runs}"]) == 0
    assert "[sweep] 2 runs: 2 already in" in capsys.readouterr().out


def test_seeds_all_are_each_settings_seeds_up_to_its_cap(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr("harness.sweep.sweep", lambda jobs, *args, **kwargs: asked.extend(jobs) or [])
    assert main(["digits-mlp", "synthetic16-cnn", "--seeds", "all", f"--runs-dir={tmp_path}"]) == 0
    for name in ("digits-mlp", "synthetic16-cnn"):
        assert [j.seed for j in asked if j.setting.name == name] == list(range(settings.get(name).max_seeds))


def test_a_failing_run_is_reported_the_others_land_and_the_exit_status_is_1(tmp_path, capsys):
    runs = tmp_path / "runs"
    status = main(["cifar10-smallcnn", "digits-mlp", "--seeds", "0", f"--runs-dir={runs}",
                   f"--data-root={tmp_path / 'no-data'}"])
    out = capsys.readouterr().out
    assert status == 1
    assert "cifar10-smallcnn seed=0: FAILED" in out and "FileNotFoundError" in out
    assert "trained 1, already cached 0, failed 1" in out
    assert RunStore(runs).load(DIGITS, 0) is not None


def test_bad_arguments_are_usage_errors(tmp_path, capsys):
    for argv in (["nope", "--seeds", "0"], ["digits-mlp", "--seeds", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, f"--runs-dir={tmp_path}"])
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown setting 'nope'" in err and "'x' is not a seed" in err


def test_an_unwritable_runs_dir_is_one_message(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit):
        main(["digits-mlp", "--seeds", "0", f"--runs-dir={blocker / 'runs'}"])
    assert "cannot be created or written" in capsys.readouterr().err


def test_ray_executor_without_ray_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(SystemExit, match=r"needs Ray.*pip install .*\[ray\]"):
        list(run_ray([Job(DIGITS, 0)], str(tmp_path)))


def test_a_store_the_worker_cannot_see_is_named(tmp_path):
    outcome = train_job(Job(DIGITS, 0), str(tmp_path / "elsewhere"))
    assert outcome.status == "failed" and "does not exist on" in outcome.error and "shared folder" in outcome.error


# ----------------------------------------------------------------------------------------------
# User settings: --settings-module and $ENSEMBLE_CLAIMS_SETTINGS


def test_settings_module_names_take_the_environment_then_the_flags_once_each():
    environ = {SETTINGS_MODULES_ENV: " a, b ,,"}
    assert settings_module_names(["c", "a"], environ) == ("a", "b", "c")
    assert settings_module_names([], {}) == ()


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    """Write settings modules into tmp_path, the working folder; registrations and imports undone after."""
    monkeypatch.setattr(settings, "_REGISTRY", dict(settings._REGISTRY))  # registrations stay in the test
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)  # `python -m harness.sweep` finds modules in the folder it runs in
    monkeypatch.delenv(SETTINGS_MODULES_ENV, raising=False)
    written = []

    def write(module: str, body: str) -> str:
        (tmp_path / f"{module}.py").write_text(body)
        written.append(module)
        return module

    yield write
    for module in written:
        sys.modules.pop(module, None)


def _tiny_setting_module(name: str) -> str:
    """A module registering ``name``: digits-mlp under another name (~0.2 s a run)."""
    return ("import dataclasses\n"
            "from harness import settings\n"
            f"settings.register(dataclasses.replace(settings.get('digits-mlp'), name={name!r}, "
            "description='a user setting'))\n")


def test_settings_modules_from_the_flag_and_the_environment_are_swept(user_modules, monkeypatch, tmp_path, capsys):
    runs = tmp_path / "runs"
    from_flag = user_modules("my_flag_settings", _tiny_setting_module("my-flag-tiny"))
    from_env = user_modules("my_env_settings", _tiny_setting_module("my-env-tiny"))
    monkeypatch.setenv(SETTINGS_MODULES_ENV, from_env)
    assert main(["my-flag-tiny", "my-env-tiny", "--seeds", "0", f"--runs-dir={runs}", "--settings-module",
                 from_flag]) == 0
    out = capsys.readouterr().out
    # the two are digits-mlp under other names: one cache key, so one of them is trained, the other found
    assert "my-flag-tiny seed=0" in out and "my-env-tiny seed=0" in out and "failed 0" in out
    for name in ("my-flag-tiny", "my-env-tiny"):
        assert RunStore(runs).load(settings.get(name), 0) is not None


def test_the_environment_alone_makes_a_user_setting_sweepable(user_modules, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(SETTINGS_MODULES_ENV, user_modules("my_only_env_settings", _tiny_setting_module("my-tiny")))
    assert main(["my-tiny", "--seeds", "0-1", f"--runs-dir={tmp_path / 'runs'}"]) == 0
    assert capsys.readouterr().out.count("my-tiny seed=") == 2


def test_a_failing_settings_module_is_a_usage_error_naming_it(user_modules, tmp_path, capsys):
    broken = user_modules("my_broken_settings", "raise RuntimeError('no such factory')\n")
    for argv in (["--settings-module", broken], ["--settings-module", "no_such_settings_module"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["digits-mlp", "--seeds", "0", f"--runs-dir={tmp_path}", *argv])
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--settings-module my_broken_settings: RuntimeError: no such factory" in err
    assert "--settings-module no_such_settings_module: ModuleNotFoundError" in err


def test_without_its_module_a_user_setting_is_unknown(user_modules, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["my-missing-tiny", "--seeds", "0", f"--runs-dir={tmp_path}"])
    assert "unknown setting 'my-missing-tiny'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# Ray, on a local cluster of 2 CPUs


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, logging_level="ERROR", log_to_driver=False)
    # Tasks defined in this test module travel by value: workers need not import it.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def _weights(run):
    return {(e, k): v for e, state in run.weights.items() for k, v in state.items()}


@pytest.mark.integration
def test_runs_trained_through_ray_are_bitwise_those_trained_in_process(ray_cluster, tmp_path):
    jobs = [Job(DIGITS, seed) for seed in (0, 1)]
    via_ray = list(run_ray(jobs, str(check_runs_dir(tmp_path / "ray"))))
    local = list(run_local(jobs, str(check_runs_dir(tmp_path / "local"))))
    assert [o.status for o in via_ray + local] == ["trained"] * 4
    assert all("pid" in o.where for o in via_ray)
    for seed in (0, 1):
        a, b = RunStore(tmp_path / "ray").load(DIGITS, seed), RunStore(tmp_path / "local").load(DIGITS, seed)
        assert all(torch.equal(v, _weights(b)[k]) for k, v in _weights(a).items())
        assert torch.equal(a.eval_probs, b.eval_probs) and torch.equal(a.final_logits, b.final_logits)


@pytest.mark.integration
def test_two_concurrent_sweeps_train_each_run_once(ray_cluster, tmp_path):
    jobs = [Job(DIGITS, seed) for seed in range(4)]
    results, errors = [], []

    def one_sweep():
        try:
            # Two CPUs a task, whatever this process's thread count (1 on a pytest-xdist worker): the
            # sweeps' tasks run one after the other on the 2-CPU cluster, as they always did here. With
            # 1-CPU tasks side by side, one CI run (of 3) reported a failed outcome that 9 stressed
            # runs did not reproduce; the assertion below now prints every outcome and error.
            results.append(sweep(jobs, str(tmp_path / "runs"), executor="ray", print_fn=lambda line: None,
                                 cpus_per_run=2.0))
        except Exception as err:  # a thread's exception would otherwise vanish
            errors.append(err)

    threads = [threading.Thread(target=one_sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    outcomes = [o for result in results for o in result]
    assert len(outcomes) == 8
    assert not [o for o in outcomes if o.status == "failed"], "\n".join(map(str, outcomes))
    trained = sorted(o.seed for o in outcomes if o.status == "trained")
    assert trained == [0, 1, 2, 3]  # each seed trained by one sweep; the other found it cached


def dies_once(job: Job, runs_dir: str, device: str, data_root: str | None, threads: int) -> Outcome:
    """A task whose first attempt kills its worker process, as a lost node or the OOM killer would."""
    marker = Path(runs_dir) / f".died-{job.seed}"
    if not marker.exists():
        marker.write_text("")
        os._exit(1)
    return train_job(job, runs_dir, device, data_root, threads)


@pytest.mark.integration
def test_a_worker_killed_mid_run_is_retried_and_leaves_no_corrupt_entry(ray_cluster, tmp_path):
    runs = check_runs_dir(tmp_path / "runs")
    outcomes = list(run_ray([Job(DIGITS, 0), Job(DIGITS, 1)], str(runs), task=dies_once))
    assert [o.status for o in outcomes] == ["trained", "trained"]
    for seed in (0, 1):
        assert RunStore(runs).load(DIGITS, seed) is not None
    key_dir = runs / DIGITS.cache_key()
    assert not list(key_dir.glob(".tmp-*")) and not (key_dir / ".corrupt").exists()


@pytest.mark.integration
def test_a_failing_run_on_ray_is_reported_while_the_others_land(ray_cluster, tmp_path):
    runs = str(check_runs_dir(tmp_path / "runs"))
    jobs = [Job(settings.get("cifar10-smallcnn"), 0), Job(DIGITS, 0), Job(DIGITS, 1)]
    outcomes = {(o.setting, o.seed): o for o in run_ray(jobs, runs, data_root=str(tmp_path / "no-data"))}
    assert outcomes[("cifar10-smallcnn", 0)].status == "failed"
    assert "FileNotFoundError" in outcomes[("cifar10-smallcnn", 0)].error
    assert outcomes[("digits-mlp", 0)].status == outcomes[("digits-mlp", 1)].status == "trained"


def test_sweep_rejects_an_unknown_executor(tmp_path):
    with pytest.raises(ValueError, match="executor='dask' is invalid"):
        sweep([Job(DIGITS, 0)], str(tmp_path), executor="dask")


# ----------------------------------------------------------------------------------------------
# The command lines a user types


def _pytest(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.integration
@pytest.mark.parametrize("form", ["equals", "environment"])
def test_documented_runs_dir_forms_work_without_a_test_path(tmp_path, form):
    # `pytest --runs-dir DIR` (a space, no test path) makes pytest take DIR for a test path when it
    # picks the rootdir; the README documents --runs-dir=DIR and the environment variable instead.
    runs = tmp_path / "runs"
    args, env = ([f"--runs-dir={runs}"], None) if form == "equals" else ([], {"ENSEMBLE_CLAIMS_RUNS_DIR": str(runs)})
    result = _pytest(*args, "--collect-only", "-m", "smoke", env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"runs-dir={runs}," in result.stdout and "test_window.py" in result.stdout


@pytest.mark.integration
def test_an_unwritable_runs_dir_fails_the_session_once(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _pytest(f"--runs-dir={blocker / 'runs'}", "claims/test_window.py", "-m", "smoke")
    assert result.returncode != 0
    assert result.stderr.count("--runs-dir: the run store") == 1 and "cannot be created or written" in result.stderr


@pytest.mark.integration
def test_pytest_hands_missing_runs_to_the_ray_executor(tmp_path):
    result = _pytest("--executor", "ray", f"--runs-dir={tmp_path / 'runs'}", "claims/test_window.py", "-m", "smoke",
                     "-k", "negative and digits")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "executor=ray" in result.stdout
    # one line per run trained as a Ray task (host and worker pid), then the claim reads the store
    assert result.stdout.count("[train] digits-mlp seed=") == DIGITS.n_seeds and "(pid " in result.stdout
