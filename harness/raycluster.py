"""Connect to a Ray cluster: where the address comes from, Ray's token authentication, one clear error.

Addresses (``--ray-address`` of ``python -m harness.sweep`` and of pytest, else ``$RAY_ADDRESS``):

- ``HOST:PORT``: the GCS of a cluster, the ``--port`` of ``ray start --head`` (default 6379);
- ``ray://HOST:PORT``: its Ray Client server (``--ray-client-server-port``, default 10001; needs
  ``pip install 'ray[client]'``, which adds grpcio);
- ``auto``: the cluster that the last ``ray start`` on this machine started;
- none of them: a local cluster, started here and shut down at the end.

Token authentication. A cluster started with ``RAY_AUTH_MODE=token`` (or, from Ray 2.5x, any
``ray start`` on a machine that has ``~/.ray/auth_token``) refuses drivers without its token. Ray
looks for the token in ``$RAY_AUTH_TOKEN``, then the file ``$RAY_AUTH_TOKEN_PATH``, then
``~/.ray/auth_token``, but sends it only in token mode, and turns token mode on by itself only for
``auto``: ``ray.init("HOST:PORT")`` went out without the token and failed after 20 s with a bare
``ConnectionError``. :func:`connect` turns token mode on whenever a token is found and
``RAY_AUTH_MODE`` is unset (a cluster without authentication accepts a token-mode driver: checked
on Ray 2.60); ``RAY_AUTH_MODE=disabled`` keeps it off. It then checks that something answers at the
address and, for a GCS address, that the cluster accepts the token (0.5 s instead of Ray's 20 s), and
raises :class:`RayConnectionError` saying what was tried and how to fix it.

>>> resolve_address(None, {"RAY_ADDRESS": "10.0.0.5:6379"})
Target(address='10.0.0.5:6379', source='$RAY_ADDRESS', kind='gcs')
>>> auth_mode({}, token="$RAY_AUTH_TOKEN")
'token'
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ADDRESS_ENV", "AUTH_MODE_ENV", "CLIENT_INSTALL", "RayConnectionError", "Target", "TOKEN_ENV",
           "TOKEN_PATH_ENV", "auth_mode", "connect", "explain", "find_token", "preflight", "resolve_address", "split_host_port"]

ADDRESS_ENV = "RAY_ADDRESS"
AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = Path(".ray") / "auth_token"  # under the home folder, as Ray reads it
CLIENT_INSTALL = "pip install 'ray[client]'"
# Seconds to wait for a TCP connection to the address: a live cluster answers in milliseconds, and a
# wrong address should fail before Ray's own 20-30 s of retries.
REACH_TIMEOUT = 5.0

HOW_TO_ADDRESS = ("give the head node's address as --ray-address HOST:PORT (or RAY_ADDRESS=HOST:PORT), with the "
                  "--port of `ray start --head` (default 6379), or ray://HOST:PORT for its Ray Client server "
                  "(default port 10001), or auto on the head node itself")
HOW_TO_TOKEN = (f"give this process the cluster's token: {TOKEN_ENV}=<token> or {TOKEN_PATH_ENV}=<file> (on the "
                "head node `ray get-auth-token` prints it); token mode is then on unless "
                f"{AUTH_MODE_ENV}=disabled")


class RayConnectionError(ConnectionError):
    """No connection to the Ray cluster; the message says what was tried and how to fix it."""


@dataclass(frozen=True)
class Target:
    """Where to connect.

    Attributes
    ----------
    address : str or None
        What ``ray.init`` gets; None starts a local cluster.
    source : str
        Where the address came from: ``"--ray-address"``, ``"$RAY_ADDRESS"`` or ``"default"``.
    kind : {"gcs", "client", "auto", "local"}
        A cluster's GCS (``HOST:PORT``), its Ray Client server (``ray://``), the last ``ray start``
        on this machine, or a new local cluster.
    """

    address: str | None
    source: str
    kind: str


def resolve_address(address: str | None, environ: Mapping[str, str], flag: str = "--ray-address") -> Target:
    """The address to connect to: ``address``, else ``$RAY_ADDRESS``, else a local cluster.

    ``auto`` given as ``address`` yields to ``$RAY_ADDRESS`` when that is set, as in ``ray.init``.
    """
    env = (environ.get(ADDRESS_ENV) or "").strip()
    given = (address or "").strip()
    if given and not (given == "auto" and env):
        chosen, source = given, flag
    elif env:
        chosen, source = env, f"${ADDRESS_ENV}"
    else:
        return Target(None, "default", "local")
    if chosen == "auto":
        return Target(chosen, source, "auto")
    if chosen == "local":
        return Target(None, source, "local")
    return Target(chosen, source, "client" if chosen.startswith("ray://") else "gcs")


def split_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``ray://HOST:PORT`` as ``(host, port)``.

    Raises
    ------
    ValueError
        When ``address`` is not of that form (naming it).
    """
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"Ray address {address!r} is invalid: expected HOST:PORT, ray://HOST:PORT or auto")
    return host.strip("[]"), int(port)  # [::1]:6379 -> ::1


def find_token(environ: Mapping[str, str], home: Path | None = None) -> str | None:
    """Where Ray will read the auth token from, in Ray's order, or None when there is none.

    Returns
    -------
    str or None
        ``"$RAY_AUTH_TOKEN"``, ``"$RAY_AUTH_TOKEN_PATH (<file>)"`` or ``"<home>/.ray/auth_token"``:
        a description for messages, never the token itself.
    """
    if environ.get(TOKEN_ENV, "").strip():
        return f"${TOKEN_ENV}"
    path = environ.get(TOKEN_PATH_ENV, "").strip()
    if path:
        # Ray reads only this file once the variable is set: a missing one is no token at all.
        return f"${TOKEN_PATH_ENV} ({path})" if _has_text(Path(path).expanduser()) else None
    default = (home or Path.home()) / DEFAULT_TOKEN_FILE
    return str(default) if _has_text(default) else None


def _has_text(path: Path) -> bool:
    try:
        return bool(path.read_text().strip())
    except OSError:
        return False


def auth_mode(environ: Mapping[str, str], token: str | None) -> str:
    """The auth mode to connect in: ``$RAY_AUTH_MODE`` when set, else ``"token"`` when a token was found."""
    explicit = environ.get(AUTH_MODE_ENV, "").strip().lower()
    if explicit:
        return explicit
    return "token" if token else "disabled"


def explain(target: Target, mode: str, token: str | None, problem: str, fix: str) -> str:
    """The one message of a failed connection: what was tried, what went wrong, how to fix it."""
    kinds = {"gcs": "a cluster's GCS address", "client": "a Ray Client server",
             "auto": "the cluster of the last `ray start` on this machine", "local": "a new local cluster"}
    auth = (f"token authentication on, token from {token}" if mode == "token" and token else
            "token authentication on, but no token found" if mode == "token" else
            f"token authentication off ({AUTH_MODE_ENV}={mode})" if mode != "disabled" or token else
            "token authentication off (no token found)")
    where = target.address or "a local cluster"
    return (f"cannot connect to the Ray cluster at {where} (from {target.source}): {problem}.\n"
            f"  tried: {kinds[target.kind]}, {auth}\n"
            f"  fix: {fix}")


def _reachable(host: str, port: int, timeout: float = REACH_TIMEOUT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _refresh_auth_config() -> None:
    """Make this process's Ray read the auth variables again.

    Ray caches its config (the auth mode among it) when imported and the token when first used; a
    change of the environment after ``import ray`` is otherwise ignored. Ray's own
    ``_enable_token_auth`` does the same. Versions without token authentication have neither.
    """
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _check_gcs(target: Target, mode: str, token: str | None) -> None:
    """Ask the GCS at ``target`` for nothing, to learn fast whether it is one and takes the token."""
    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError, RpcError
    except ImportError:  # another Ray version: ray.init's own error will be wrapped instead
        return
    try:
        GcsClient(address=target.address).internal_kv_get(b"ensemble-claims-probe", None, timeout=REACH_TIMEOUT)
    except AuthenticationError:
        problem = ("the cluster refused the token" if mode == "token" and token else
                   "the cluster asks for a token and this process sent none")
        raise RayConnectionError(explain(target, mode, token, problem, HOW_TO_TOKEN)) from None
    except RpcError as err:
        raise RayConnectionError(explain(
            target, mode, token, f"something answers there but it is not a Ray GCS ({err})",
            "use the --port given to `ray start --head` (default 6379); a Ray Client server port needs "
            "ray://HOST:PORT")) from None


def preflight(address: str | None = None, *, flag: str = "--ray-address") -> tuple[Target, str, str | None]:
    """Everything :func:`connect` does before ``ray.init``: resolve the address, set up token auth, probe.

    Cheap (no driver is started), so that a pytest session can fail once at start-up rather than
    in every test that asks for runs.

    Returns
    -------
    (Target, str, str or None)
        Where to connect, the auth mode, and where the token comes from (:func:`find_token`).

    Raises
    ------
    RayConnectionError
        Nothing at the address, the cluster refused the token, or Ray Client is not installed.
    """
    environ = os.environ
    target = resolve_address(address, environ, flag)
    token = find_token(environ)
    mode = auth_mode(environ, token)
    if target.kind == "local":
        return target, mode, token
    if mode == "token" and not environ.get(AUTH_MODE_ENV):
        environ[AUTH_MODE_ENV] = "token"  # for Ray and for this process's children, as Ray does for auto
    _refresh_auth_config()
    if mode == "token" and not token:
        raise RayConnectionError(explain(target, mode, token, f"{AUTH_MODE_ENV}=token but no token was found",
                                         HOW_TO_TOKEN))
    if target.kind == "client" and importlib.util.find_spec("grpc") is None:
        raise RayConnectionError(explain(target, mode, token, "ray:// addresses need Ray Client, which is not "
                                         "installed", f"{CLIENT_INSTALL}, or give the GCS address HOST:PORT"))
    if target.kind != "auto":
        try:
            host, port = split_host_port(target.address)
        except ValueError as err:
            raise RayConnectionError(explain(target, mode, token, str(err), HOW_TO_ADDRESS)) from None
        if not _reachable(host, port):
            raise RayConnectionError(explain(target, mode, token, f"nothing accepts connections at {host}:{port}",
                                             HOW_TO_ADDRESS))
    if target.kind == "gcs":
        _check_gcs(target, mode, token)
    return target, mode, token


def connect(ray, address: str | None = None, *, flag: str = "--ray-address", **init_kwargs) -> Target:
    """``ray.init`` for ``address`` (else ``$RAY_ADDRESS``, else a local cluster), with token auth.

    Parameters
    ----------
    ray : module
        The ``ray`` module.
    address : str or None
        ``HOST:PORT``, ``ray://HOST:PORT``, ``auto``, ``local`` or None.
    flag : str
        The option the address came from, for messages.
    **init_kwargs
        Passed to ``ray.init``.

    Returns
    -------
    Target
        Where it connected.

    Raises
    ------
    RayConnectionError
        As :func:`preflight`, or when ``ray.init`` fails all the same.
    """
    target, mode, token = preflight(address, flag=flag)
    try:
        ray.init(address=target.address, **init_kwargs)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as err:
        # A failed init can leave the process half connected (a Ray Client session that never
        # started): every later ray.init in this process then fails on Ray's own assertions.
        ray.shutdown()
        if target.kind == "local":
            raise
        # Ray's own errors here name neither the auth mode nor the token source, which are most
        # often what is wrong once the address answers.
        fix = HOW_TO_ADDRESS if target.kind == "auto" else f"{HOW_TO_TOKEN}; or {HOW_TO_ADDRESS}"
        raise RayConnectionError(explain(target, mode, token, f"Ray said: {err}", fix)) from None
    return target
