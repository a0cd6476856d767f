"""Fill the run store: train every missing run of some settings, in this process or across a Ray cluster.

Runs are independent, so they spread over processes, GPUs and machines. Each run is written into
the shared store by whoever trains it, with the store's atomic write and per-run lock
(harness.store.RunStore): two sweeps asking for the same run train it once, and ``pytest claims/``
then reads the store.

Your own settings (a module that calls harness.settings.register) are swept after
``--settings-module MODULE`` (repeatable) or ``ENSEMBLE_CLAIMS_SETTINGS=MODULE[,MODULE]``, as in
pytest.

``--executor ray`` connects to ``--ray-address`` (else ``$RAY_ADDRESS``, else a local cluster it
starts): ``HOST:PORT`` (the ``--port`` of ``ray start --head``), ``ray://HOST:PORT`` (its Ray Client
server; ``pip install 'ray[client]'``) or ``auto``. A cluster with token authentication needs its
token here: ``RAY_AUTH_TOKEN=<token>``, ``RAY_AUTH_TOKEN_PATH=<file>`` or ``~/.ray/auth_token``; token
mode is turned on whenever one is found (harness.raycluster), and a failed connection is one error
saying what was tried and how to fix it.

Examples
--------
.. code-block:: console

    $ python -m harness.sweep digits-mlp synthetic16-cnn --seeds 0-9
    $ python -m harness.sweep synthetic32-resnet20 --seeds 0-9 --executor ray --ray-address auto \\
          --runs-dir=/shared/runs --device cuda
    $ RAY_AUTH_TOKEN=$(ray get-auth-token) python -m harness.sweep digits-mlp --seeds 0-9 \\
          --executor ray --ray-address 10.0.0.5:6379
    $ python -m harness.sweep my-setting --seeds 0-3 --settings-module my_settings

>>> parse_seeds(["0-3,7", "10"])
(0, 1, 2, 3, 7, 10)
"""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from harness import raycluster
from harness import settings as settings_lib
from harness.cohort import cohort_seeds
from harness.settings import Setting
from harness.store import RunStore

__all__ = ["EXECUTORS", "SETTINGS_MODULES_ENV", "Job", "Outcome", "check_runs_dir", "import_settings_modules",
           "missing_jobs", "parse_seeds", "run_local", "run_ray", "settings_module_names", "sweep", "train_job"]

EXECUTORS = ("local", "ray")
RAY_INSTALL = "pip install -c constraints.txt -e '.[ray]'"
SETTINGS_MODULES_ENV = "ENSEMBLE_CLAIMS_SETTINGS"  # comma-separated modules, as --settings-module
# A worker that dies (node lost, out of memory, killed) has its run trained again this many times.
RAY_RETRIES = 3


@dataclass(frozen=True)
class Job:
    """One run to train: a setting (the object itself, so that workers need no registry) and a seed."""

    setting: Setting
    seed: int


@dataclass(frozen=True)
class Outcome:
    """What became of a job.

    Attributes
    ----------
    status : {"trained", "cached", "failed"}
    seconds : float
        Wall time of the job where it ran (0 for cached runs).
    accuracy : float or None
        Final test accuracy of the run.
    where : str
        Host and process that trained it.
    error : str
        The failure, ``"Type: message"`` ("" unless failed).
    """

    setting: str
    seed: int
    status: str
    seconds: float = 0.0
    accuracy: float | None = None
    where: str = ""
    error: str = ""

    def line(self) -> str:
        """One line for the terminal."""
        head = f"{self.setting} seed={self.seed}"
        if self.status == "failed":
            return f"{head}: FAILED on {self.where}: {self.error}"
        return f"{head}: {self.status} in {self.seconds:.1f}s on {self.where}, test acc {self.accuracy:.3f}"


def parse_seeds(texts: Sequence[str] | str) -> tuple[int, ...]:
    """Seeds from ranges and lists: ``"0-9"``, ``"0,3,5"``, ``["0-3", "10"]``; sorted, without repeats.

    Raises
    ------
    ValueError
        For anything else (naming the bad part), or no seeds at all.
    """
    seeds = set()
    for text in [texts] if isinstance(texts, str) else texts:
        for part in str(text).replace(" ", "").split(","):
            if not part:
                continue
            low, sep, high = part.partition("-")
            if not (low.isdigit() and (not sep or high.isdigit())) or (sep and int(high) < int(low)):
                raise ValueError(f"seeds: {part!r} is not a seed (7), a range (0-9) or a comma-separated list of them")
            seeds.update(range(int(low), int(high if sep else low) + 1))
    if not seeds:
        raise ValueError("seeds: none given; e.g. --seeds 0-9")
    return tuple(sorted(seeds))


def check_runs_dir(runs_dir: str | os.PathLike) -> Path:
    """Create ``runs_dir`` if needed and check that it can be written; one clear error naming it otherwise.

    Raises
    ------
    ValueError
        When the folder cannot be created or written (or is a file).
    """
    folder = Path(runs_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Unique per call: two sweeps of one process (threads) check the same folder at once.
        probe = folder / f".write-check-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"the run store {str(folder)!r} cannot be created or written ({err.strerror or err}); "
                         "give --runs-dir=DIR a folder you can write") from None
    return folder


def settings_module_names(given: Sequence[str], environ: dict | os._Environ) -> tuple[str, ...]:
    """The settings modules to import: those of $ENSEMBLE_CLAIMS_SETTINGS (comma-separated), then ``given``.

    Without repeats, in that order.
    """
    from_env = [m.strip() for m in environ.get(SETTINGS_MODULES_ENV, "").split(",") if m.strip()]
    return tuple(dict.fromkeys(from_env + [m.strip() for m in given if m.strip()]))


def import_settings_modules(modules: Sequence[str], search_dir: str | os.PathLike | None = None) -> tuple[str, ...]:
    """Import ``modules``, which register settings (harness.settings.register) as they are imported.

    ``search_dir`` (the folder the user ran the command in) goes first on ``sys.path`` when missing:
    ``pytest`` and a console script, unlike ``python -m``, do not put it there.

    Raises
    ------
    ValueError
        Naming the module and its own error, whatever that is: it is what the user must fix.
    """
    if modules and search_dir is not None and str(search_dir) not in sys.path:
        sys.path.insert(0, str(search_dir))
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # the module's own error, whatever it is, is what the user must fix
            raise ValueError(f"--settings-module {module}: {type(exc).__name__}: {exc}") from None
    return tuple(modules)


def missing_jobs(store: RunStore, jobs: Iterable[Job]) -> tuple[list[Outcome], list[Job]]:
    """Split ``jobs`` into the runs already in ``store`` (as cached outcomes) and those to train."""
    cached, missing = [], []
    for job in jobs:
        run = store.load(job.setting, job.seed)
        if run is None:
            missing.append(job)
        else:
            cached.append(Outcome(job.setting.name, job.seed, "cached", accuracy=float(run.eval_acc[-1]),
                                  where="store"))
    return cached, missing


def train_job(job: Job, runs_dir: str, device: str = "auto", data_root: str | None = None,
              threads: int | None = None) -> Outcome:
    """Train ``job`` into the store at ``runs_dir`` (or find it there): what a worker runs.

    ``threads`` sets torch's CPU thread count while training: float reductions, and so the run's
    bits, depend on it, and a Ray worker starts with one thread per CPU it was given. Never raises:
    a failure (a diverged run, bad data, a store this worker cannot see) is returned as a failed
    :class:`Outcome` naming it, so that it does not stop the other jobs.
    """
    where = f"{socket.gethostname()} (pid {os.getpid()})"
    start = time.perf_counter()
    if not Path(runs_dir).is_dir():
        return Outcome(job.setting.name, job.seed, "failed", where=where,
                       error=f"the run store {runs_dir!r} does not exist on {socket.gethostname()}: every worker needs "
                             "the same shared folder at the same path")
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(threads or previous)
        # The store trains a miss (the seed's whole cohort, for a cohort setting) only in the one
        # process that holds its lock; store.trained says whether that was this one.
        store = RunStore(runs_dir)
        run = store.get_or_train(job.setting, [job.seed], device=device, data_root=data_root)[0]
        status = "trained" if (job.setting.name, job.seed) in store.trained else "cached"
    except Exception as err:  # reported per run; the sweep goes on
        return Outcome(job.setting.name, job.seed, "failed", time.perf_counter() - start, where=where,
                       error=f"{type(err).__name__}: {err}")
    finally:
        torch.set_num_threads(previous)
    return Outcome(job.setting.name, job.seed, status, time.perf_counter() - start, float(run.eval_acc[-1]), where)


def run_local(jobs: Sequence[Job], runs_dir: str, device: str = "auto",
              data_root: str | None = None) -> Iterator[Outcome]:
    """Train ``jobs`` one after another in this process (one job per cohort: :func:`cohort_leads`)."""
    leads = cohort_leads(jobs)
    store = RunStore(runs_dir)
    for lead, members in leads.items():
        yield from with_members(train_job(lead, runs_dir, device, data_root), members, store)


def cohort_leads(jobs: Sequence[Job]) -> dict[Job, list[Job]]:
    """The first job of each cohort (:attr:`harness.settings.Recipe.cohort`), with the other jobs of its cohort.

    Training a lead trains its whole cohort (:meth:`harness.store.RunStore.get_or_train`), so the
    other jobs are filled by it; a setting trained seed by seed is its own cohort of one.
    """
    leads: dict[Job, list[Job]] = {}
    first: dict[tuple[str, int], Job] = {}
    for job in jobs:
        key = (job.setting.cache_key(), cohort_seeds(job.seed, job.setting.recipe.cohort)[0])
        if key in first:
            leads[first[key]].append(job)
        else:
            first[key] = job
            leads[job] = []
    return leads


def with_members(lead: Outcome, members: list[Job], store: RunStore) -> Iterator[Outcome]:
    """``lead``'s outcome, then one per member of its cohort: trained or cached with it, failed with it."""
    yield lead
    for job in members:
        run = None if lead.status == "failed" else store.load(job.setting, job.seed)
        if run is None:
            yield Outcome(job.setting.name, job.seed, "failed", where=lead.where,
                          error=lead.error or f"its cohort's run of seed {lead.seed} did not store seed {job.seed}")
        else:
            yield Outcome(job.setting.name, job.seed, lead.status, 0.0, float(run.eval_acc[-1]), lead.where)


def _ray():
    try:
        import ray
    except ImportError:
        raise SystemExit(f"--executor ray needs Ray, an optional extra: {RAY_INSTALL}") from None
    return ray


def run_ray(jobs: Sequence[Job], runs_dir: str, device: str = "auto", data_root: str | None = None, *,
            address: str | None = None, cpus_per_run: float | None = None, gpus_per_run: float | None = None,
            task: Callable[..., Outcome] = train_job) -> Iterator[Outcome]:
    """Train ``jobs`` as Ray tasks, one per run (per cohort: :func:`cohort_leads`), yielding outcomes as they finish.

    Connects to the cluster at ``address`` (``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``; else
    ``RAY_ADDRESS``) with its auth token where one is found (harness.raycluster.connect, which raises
    one :class:`~harness.raycluster.RayConnectionError` saying what was tried); without either,
    starts a local cluster. It disconnects, or shuts the local cluster down, at the end. Each task trains with this process's torch thread count T,
    so that a run is bitwise the one trained here (float reductions depend on T), asks for
    ``cpus_per_run`` CPUs (default T: two runs of T threads on T cores run 4x slower than one after
    the other, measured) and ``gpus_per_run`` GPUs (default: 1 when ``device`` is CUDA, else 0), and
    is retried up to :data:`RAY_RETRIES` times when its worker dies.
    ``task`` is what each runs (:func:`train_job`).
    """
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        raycluster.connect(ray, address, logging_level="ERROR", log_to_driver=False)
    try:
        gpus = gpus_per_run if gpus_per_run is not None else (1.0 if str(device).startswith("cuda") else 0.0)
        threads = torch.get_num_threads()
        cpus = float(threads) if cpus_per_run is None else cpus_per_run
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=RAY_RETRIES)(task)
        leads, store = cohort_leads(jobs), RunStore(runs_dir)
        pending = {remote.remote(job, runs_dir, device, data_root, threads): job for job in leads}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            try:
                outcome = ray.get(done[0])
            except Exception as err:  # the task died more often than it may be retried
                outcome = Outcome(job.setting.name, job.seed, "failed", where="ray", error=f"{type(err).__name__}: {err}")
            yield from with_members(outcome, leads[job], store)
    finally:
        if started:
            ray.shutdown()


def sweep(jobs: Sequence[Job], runs_dir: str, *, executor: str = "local", device: str = "auto",
          data_root: str | None = None, print_fn: Callable[[str], None] = print, **ray_options) -> list[Outcome]:
    """Train every missing run of ``jobs`` into ``runs_dir``; print a line per run and a summary.

    Returns
    -------
    list of Outcome
        Cached ones first, then in the order the runs finished.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r} is invalid: expected one of {EXECUTORS}")
    runs_dir = str(check_runs_dir(runs_dir))
    cached, missing = missing_jobs(RunStore(runs_dir), jobs)
    print_fn(f"[sweep] {len(jobs)} runs: {len(cached)} already in {runs_dir}, {len(missing)} to train ({executor})")
    outcomes = list(cached)
    run = run_local if executor == "local" else run_ray
    for outcome in run(missing, runs_dir, device, data_root, **ray_options):
        print_fn(f"[sweep] {outcome.line()}")
        outcomes.append(outcome)
    failed = [o for o in outcomes if o.status == "failed"]
    trained = sum(o.status == "trained" for o in outcomes)
    print_fn(f"[sweep] trained {trained}, already cached {len(outcomes) - trained - len(failed)}, failed {len(failed)}")
    for o in failed:
        print_fn(f"[sweep]   failed: {o.setting} seed={o.seed}: {o.error}")
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", nargs="+", metavar="SETTING", help="registered setting names")
    parser.add_argument("--seeds", nargs="+", required=True,
                        help="seeds: 0-49, 0,3,5 or several of them; 'all': each setting's 0..max_seeds-1, every run "
                             "its claims can ask for")
    parser.add_argument("--runs-dir", default=os.environ.get("ENSEMBLE_CLAIMS_RUNS_DIR", "runs"),
                        help="the run store (default: $ENSEMBLE_CLAIMS_RUNS_DIR, else runs/)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local")
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS",
                        help="the Ray cluster of --executor ray: HOST:PORT (the --port of `ray start --head`), "
                             "ray://HOST:PORT (its Ray Client server) or auto (default: $RAY_ADDRESS, else a local "
                             "cluster). With token authentication, give its token as $RAY_AUTH_TOKEN, "
                             "$RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token")
    parser.add_argument("--cpus-per-run", type=float, default=None,
                        help="default: torch's thread count here (set OMP_NUM_THREADS=1 for one CPU per run)")
    parser.add_argument("--gpus-per-run", type=float, default=None, help="default: 1 on CUDA, else 0")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=os.environ.get("ENSEMBLE_CLAIMS_DATA_ROOT"))
    parser.add_argument("--settings-module", action="append", default=[], metavar="MODULE",
                        help=f"import MODULE first (repeatable; also ${SETTINGS_MODULES_ENV}, comma-separated): it "
                             "registers your settings with harness.settings.register, which can then be swept")
    args = parser.parse_args(argv)
    try:
        import_settings_modules(settings_module_names(args.settings_module, os.environ), os.getcwd())
        chosen = [settings_lib.get(name) for name in args.settings]
        seeds = None if args.seeds == ["all"] else parse_seeds(args.seeds)
        jobs = [Job(s, seed) for s in chosen for seed in (range(s.max_seeds) if seeds is None else seeds)]
        ray_options = {} if args.executor == "local" else {
            "address": args.ray_address, "cpus_per_run": args.cpus_per_run, "gpus_per_run": args.gpus_per_run}
        outcomes = sweep(jobs, args.runs_dir, executor=args.executor, device=args.device, data_root=args.data_root,
                         **ray_options)
    except (ValueError, KeyError) as err:
        parser.error(str(err.args[0]) if err.args else str(err))
    except raycluster.RayConnectionError as err:  # not a usage error: the cluster or its token
        parser.exit(1, f"{parser.prog}: error: {err}\n")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
