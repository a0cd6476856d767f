"""harness.raycluster: Ray addresses, token authentication and the one error of a failed connection.

The integration tests start real clusters with ``ray start --head --block`` (token authentication on,
then off) on free ports, each in its own temporary folder so that ``auto`` finds it and no other, and
connect to them as a user would: ``HOST:PORT``, ``ray://HOST:PORT``, ``auto`` and ``$RAY_ADDRESS``.
They stop the cluster they started, by its process group, even when a test fails: ``ray stop``
would also stop every other Ray cluster on the machine (another test session's, a colleague's).
"""

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import raycluster, settings
from harness.raycluster import (RayConnectionError, Target, auth_mode, explain, find_token, resolve_address,
                                split_host_port)
from harness.sweep import Job, Outcome, run_ray

ROOT = Path(__file__).resolve().parents[1]
DIGITS = settings.get("digits-mlp")
AUTH_VARIABLES = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
# Generous: `ray start` takes ~5 s on an idle machine, much longer on a loaded 2-core CI runner.
START_TIMEOUT = 120


# ----------------------------------------------------------------------------------------------
# Pure parts


@pytest.mark.parametrize("address, environ, expected", [
    (None, {}, Target(None, "default", "local")),
    ("10.0.0.5:6379", {}, Target("10.0.0.5:6379", "--ray-address", "gcs")),
    ("ray://10.0.0.5:10001", {}, Target("ray://10.0.0.5:10001", "--ray-address", "client")),
    ("auto", {}, Target("auto", "--ray-address", "auto")),
    (None, {"RAY_ADDRESS": "10.0.0.5:6379"}, Target("10.0.0.5:6379", "$RAY_ADDRESS", "gcs")),
    ("auto", {"RAY_ADDRESS": "ray://h:1"}, Target("ray://h:1", "$RAY_ADDRESS", "client")),  # as ray.init
    ("h:1", {"RAY_ADDRESS": "other:2"}, Target("h:1", "--ray-address", "gcs")),
    ("local", {"RAY_ADDRESS": ""}, Target(None, "--ray-address", "local")),
])
def test_resolve_address(address, environ, expected):
    assert resolve_address(address, environ) == expected


@pytest.mark.parametrize("address, host, port", [
    ("127.0.0.1:6379", "127.0.0.1", 6379), ("ray://head:10001", "head", 10001), ("[::1]:6379", "::1", 6379),
])
def test_split_host_port(address, host, port):
    assert split_host_port(address) == (host, port)


@pytest.mark.parametrize("address", ["head", "head:", ":6379", "head:port", "head:70000", "ray://head"])
def test_split_host_port_names_a_bad_address(address):
    with pytest.raises(ValueError, match=rf"Ray address '{address}' is invalid: expected HOST:PORT"):
        split_host_port(address)


def test_find_token_follows_rays_order(tmp_path):
    home = tmp_path / "home"
    assert find_token({}, home) is None
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("abc\n")
    assert find_token({}, home) == str(home / ".ray" / "auth_token")
    token_file = tmp_path / "token"
    assert find_token({"RAY_AUTH_TOKEN_PATH": str(token_file)}, home) is None  # set: the only file Ray reads
    token_file.write_text("abc")
    assert find_token({"RAY_AUTH_TOKEN_PATH": str(token_file)}, home) == f"$RAY_AUTH_TOKEN_PATH ({token_file})"
    assert find_token({"RAY_AUTH_TOKEN": "abc", "RAY_AUTH_TOKEN_PATH": str(token_file)}, home) == "$RAY_AUTH_TOKEN"


@pytest.mark.parametrize("environ, token, mode", [
    ({}, None, "disabled"), ({}, "$RAY_AUTH_TOKEN", "token"), ({"RAY_AUTH_MODE": "disabled"}, "$RAY_AUTH_TOKEN",
                                                               "disabled"),
    ({"RAY_AUTH_MODE": "Token"}, None, "token"),
])
def test_auth_mode_is_token_whenever_a_token_is_found_unless_set(environ, token, mode):
    assert auth_mode(environ, token) == mode


def test_explain_says_what_was_tried_and_how_to_fix_it():
    message = explain(Target("h:1", "$RAY_ADDRESS", "gcs"), "token", "$RAY_AUTH_TOKEN", "it broke", "do this")
    assert message == ("cannot connect to the Ray cluster at h:1 (from $RAY_ADDRESS): it broke.\n"
                       "  tried: a cluster's GCS address, token authentication on, token from $RAY_AUTH_TOKEN\n"
                       "  fix: do this")


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports that nothing listens on (bound together, so that none repeats)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def driver_env(monkeypatch, tmp_path):
    """A driver environment without Ray's variables or a default token; Ray's cached auth state reset after."""
    pytest.importorskip("ray")
    for name in AUTH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.ray/auth_token of the machine's user
    yield monkeypatch
    import ray

    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.undo()
    raycluster._refresh_auth_config()  # the next test's (or module's) Ray must not reuse this token


@pytest.mark.parametrize("address", ["{}", "ray://{}"])
def test_nothing_at_the_address_is_one_error_naming_it(driver_env, address):
    if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        pytest.skip("ray:// needs Ray Client: pip install 'ray[client]' (grpcio)")
    port = _free_ports(1)[0]
    address = address.format(f"127.0.0.1:{port}")
    with pytest.raises(RayConnectionError, match=rf"(?s)at {address} \(from --ray-address\): nothing accepts "
                                                 rf"connections at 127.0.0.1:{port}.*fix: give the head node's address"):
        raycluster.preflight(address)


@pytest.mark.parametrize("kind", ["client", "gcs", "local"])
def test_a_failed_init_leaves_the_process_disconnected(kind, monkeypatch):
    # Seen with ray://: a Ray Client server that failed to start left the driver in client mode,
    # and every later ray.init in the process (other tests' clusters) failed.
    calls = []

    def init(**kwargs):
        calls.append("init")
        raise RuntimeError("Starting Ray client server failed")

    fake_ray = SimpleNamespace(init=init, shutdown=lambda: calls.append("shutdown"),
                               exceptions=SimpleNamespace(RayError=RuntimeError))
    target = raycluster.Target(address=None if kind == "local" else "127.0.0.1:1", source="--ray-address", kind=kind)
    monkeypatch.setattr(raycluster, "preflight", lambda address, flag: (target, "disabled", None))
    expected = RuntimeError if kind == "local" else RayConnectionError
    with pytest.raises(expected, match="Starting Ray client server failed"):
        raycluster.connect(fake_ray, target.address)
    assert calls == ["init", "shutdown"]


def test_token_mode_without_a_token_says_where_tokens_come_from(driver_env):
    driver_env.setenv("RAY_AUTH_MODE", "token")
    with pytest.raises(RayConnectionError, match=r"RAY_AUTH_MODE=token but no token was found.*\n.*\n  fix: give "
                                                 r"this process the cluster's token: RAY_AUTH_TOKEN=<token>"):
        raycluster.preflight(f"127.0.0.1:{_free_ports(1)[0]}")


def test_a_malformed_address_is_one_error(driver_env):
    with pytest.raises(RayConnectionError, match="Ray address 'head' is invalid"):
        raycluster.preflight("head")


def test_the_command_line_reports_a_wrong_address_in_one_message(driver_env, tmp_path, capsys):
    from harness.sweep import main

    address = f"127.0.0.1:{_free_ports(1)[0]}"
    with pytest.raises(SystemExit) as exit_info:
        main(["digits-mlp", "--seeds", "0", f"--runs-dir={tmp_path / 'runs'}", "--executor", "ray",
              "--ray-address", address])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert f"error: cannot connect to the Ray cluster at {address}" in err and "Traceback" not in err


# ----------------------------------------------------------------------------------------------
# Real clusters


@dataclass(frozen=True)
class Cluster:
    """A ``ray start --head`` cluster: its GCS and Ray Client addresses, its temp root and token."""

    gcs: str
    client: str
    tmpdir: str
    token: str | None


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _stop(proc: subprocess.Popen) -> None:
    """Stop the cluster that ``proc`` (``ray start --block``, a session leader) started, and only it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # --block then stops the processes it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:  # whatever of its process group outlived it (a GCS slow to stop, a worker)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_until_up(proc: subprocess.Popen, tmpdir: str, ports: list[int], log: Path) -> None:
    address_file = Path(tmpdir) / "ray" / "ray_current_cluster"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if address_file.exists() and all(raycluster._reachable("127.0.0.1", p, 1.0) for p in ports):
            return
        time.sleep(0.5)
    raise RuntimeError(f"ray start did not come up in {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module", params=["token", "disabled"], ids=["auth-on", "auth-off"])
def cluster(request, tmp_path_factory):
    """A 2-CPU head node on free ports, token authentication on (a fresh token) or off."""
    pytest.importorskip("ray")
    base = tmp_path_factory.mktemp(f"cluster-{request.param}")
    # Short: Ray's unix sockets live below it, and a socket path may not exceed 107 characters.
    tmpdir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    gcs, client, dashboard, agent = _free_ports(4)
    token = secrets.token_hex(16) if request.param == "token" else None
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARIABLES}
    env.update(HOME=str(base / "home"), RAY_TMPDIR=tmpdir, RAY_AUTH_MODE=request.param, OMP_NUM_THREADS="1")
    if token:
        env["RAY_AUTH_TOKEN"] = token
    client_port = ["--ray-client-server-port", str(client)] if importlib.util.find_spec("grpc") else []
    log = base / "ray-start.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [_ray_cli(), "start", "--head", "--block", "--port", str(gcs), *client_port, "--dashboard-port",
             str(dashboard), "--dashboard-agent-listen-port", str(agent), "--include-dashboard=false",
             "--num-cpus=2", "--disable-usage-stats"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    try:
        _wait_until_up(proc, tmpdir, [gcs, client] if client_port else [gcs], log)
        yield Cluster(f"127.0.0.1:{gcs}", f"ray://127.0.0.1:{client}" if client_port else "", tmpdir, token)
    finally:
        _stop(proc)
        shutil.rmtree(tmpdir, ignore_errors=True)


def _driver(driver_env, cluster: Cluster) -> None:
    driver_env.setenv("RAY_TMPDIR", cluster.tmpdir)  # where `auto` finds the last `ray start`
    if cluster.token:
        driver_env.setenv("RAY_AUTH_TOKEN", cluster.token)


def reports_where(job: Job, runs_dir: str, device: str, data_root: str | None, threads: int) -> Outcome:
    """A task that trains nothing: where it ran. The address forms are about connecting, not training."""
    return Outcome(job.setting.name, job.seed, "trained", accuracy=0.0, where=f"{socket.gethostname()} "
                                                                               f"(pid {os.getpid()})")


@pytest.mark.integration
@pytest.mark.parametrize("form", ["HOST:PORT", "ray://HOST:PORT", "auto", "RAY_ADDRESS"])
def test_every_address_form_runs_the_sweeps_tasks_on_the_cluster(cluster, driver_env, tmp_path, form):
    import ray

    _driver(driver_env, cluster)
    address = {"HOST:PORT": cluster.gcs, "ray://HOST:PORT": cluster.client, "auto": "auto", "RAY_ADDRESS": None}[form]
    if form == "ray://HOST:PORT" and not cluster.client:
        pytest.skip("ray:// needs Ray Client: pip install 'ray[client]' (grpcio)")
    if form == "RAY_ADDRESS":
        driver_env.setenv("RAY_ADDRESS", cluster.gcs)
    # Tasks defined in this test module travel by value: workers need not import it.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # Seeds of two cohorts (harness.cohort): one task each (a cohort's other seeds would be read from the store).
    seeds = [0, DIGITS.recipe.cohort]
    outcomes = list(run_ray([Job(DIGITS, s) for s in seeds], str(tmp_path), address=address, cpus_per_run=1,
                            task=reports_where))
    assert sorted(o.seed for o in outcomes) == seeds and all(o.status == "trained" for o in outcomes)
    assert all(f"(pid {os.getpid()})" not in o.where for o in outcomes)  # they ran in the cluster's workers
    assert not ray.is_initialized()  # run_ray disconnected


@pytest.mark.integration
def test_a_token_mode_driver_also_joins_a_cluster_without_auth(cluster, driver_env, tmp_path):
    if cluster.token:
        pytest.skip("the cluster without authentication is the other parameter")
    _driver(driver_env, cluster)
    driver_env.setenv("RAY_AUTH_TOKEN", "a-token-nobody-asked-for")
    target = raycluster.connect(pytest.importorskip("ray"), cluster.gcs, logging_level="ERROR", log_to_driver=False)
    assert target.kind == "gcs"


@pytest.mark.integration
@pytest.mark.parametrize("token, problem", [
    (None, "the cluster asks for a token and this process sent none"),
    ("wrong", "the cluster refused the token"),
])
def test_a_missing_or_wrong_token_is_one_error_saying_how_to_give_it(cluster, driver_env, token, problem):
    if not cluster.token:
        pytest.skip("only a cluster with token authentication refuses a token")
    _driver(driver_env, cluster)
    driver_env.delenv("RAY_AUTH_TOKEN")
    if token:
        driver_env.setenv("RAY_AUTH_TOKEN", token)
    with pytest.raises(RayConnectionError, match=rf"(?s)at {cluster.gcs} \(from --ray-address\): {problem}\..*"
                                                 r"fix: give this process the cluster's token"):
        raycluster.connect(pytest.importorskip("ray"), cluster.gcs)


@pytest.mark.integration
def test_a_ray_client_port_given_as_a_gcs_address_is_named(cluster, driver_env):
    if not cluster.client:
        pytest.skip("no Ray Client server without grpcio")
    _driver(driver_env, cluster)
    with pytest.raises(RayConnectionError, match="not a Ray GCS.*\n.*\n  fix: use the --port given to `ray start"):
        raycluster.preflight(cluster.client.removeprefix("ray://"))


def _run(args: list[str], cluster: Cluster, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in AUTH_VARIABLES}
    base.update(HOME=str(tmp_path / "home"), RAY_TMPDIR=cluster.tmpdir, OMP_NUM_THREADS="1", **env)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=600)


@pytest.mark.integration
def test_pytest_executor_ray_with_an_address_and_a_token(cluster, tmp_path):
    env = {"RAY_AUTH_TOKEN": cluster.token} if cluster.token else {}
    result = _run(["-m", "pytest", "-p", "no:cacheprovider", "--executor", "ray", "--ray-address", cluster.gcs,
                   f"--runs-dir={tmp_path / 'runs'}", "claims/test_window.py", "-m", "smoke", "-k",
                   "negative and digits"], cluster, tmp_path, **env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("[train] digits-mlp seed=") == DIGITS.n_seeds and "(pid " in result.stdout


@pytest.mark.integration
def test_pytest_without_the_token_fails_once_at_start_up(cluster, tmp_path):
    if not cluster.token:
        pytest.skip("only a cluster with token authentication refuses a driver")
    result = _run(["-m", "pytest", "-p", "no:cacheprovider", "--executor", "ray", f"--runs-dir={tmp_path / 'runs'}",
                   "claims/test_window.py", "-m", "smoke"], cluster, tmp_path, RAY_ADDRESS=cluster.gcs)
    assert result.returncode != 0
    assert result.stderr.count("cannot connect to the Ray cluster") == 1, result.stderr[-3000:]
    assert f"at {cluster.gcs} (from $RAY_ADDRESS): the cluster asks for a token" in result.stderr
