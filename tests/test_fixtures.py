"""The pytest wiring (fixtures/ and reports/plugin.py), exercised in throw-away pytest sessions."""

import argparse
import json
import shlex
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fixtures.options import _seed_count, _seed_offset, worker_threads
from fixtures.runs import setting_params
from harness import settings

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]
INI = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]

CLAIM_TESTS = '''
import pytest
from fixtures.runs import setting_params
from harness import findings
from harness.evidence import Criterion, Evidence

# A made-up claim whose interval is [n, n + 8] on n seeds: for ">= 8", inconclusive below 8 seeds.
findings.FINDINGS = findings.FINDINGS + (findings.Finding("Z3", "digits-mlp", "declared for the test", departure="none"),
                                         findings.Finding("Z7", "digits-mlp", "undecidable for the test", "undecidable",
                                                          departure="none"))


def made_up(claim, setting, runs, level, threshold=2, direction=">="):
    n = float(len(runs))
    return Evidence(claim, setting, "made up", (Criterion("runs", n, threshold, direction, (n, n + 8), level),),
                    tuple(r.seed for r in runs))


@pytest.mark.claim(id="Z1")
@pytest.mark.parametrize("setting", setting_params(("smoke", "gpu")))
def test_z1(setting, decide_claim):
    decide_claim(setting, lambda runs, level: made_up("Z1", setting, runs, level))


@pytest.mark.claim(id="Z2")
def test_z2_grows_seeds(decide_claim):
    decide_claim("digits-mlp", lambda runs, level: made_up("Z2", "digits-mlp", runs, level, threshold=8))


@pytest.mark.claim(id="Z3")
@pytest.mark.parametrize("direction", ["<", ">="])
def test_z3_declared(direction, decide_claim):
    decide_claim("digits-mlp", lambda runs, level: made_up("Z3", "digits-mlp", runs, level, direction=direction))


@pytest.mark.claim(id="Z4")
def test_z4_refuted(decide_claim):
    decide_claim("digits-mlp", lambda runs, level: made_up("Z4", "digits-mlp", runs, level, direction="<"))


@pytest.mark.claim(id="Z5")
def test_z5_inconclusive_at_the_cap(decide_claim):
    decide_claim("digits-mlp", lambda runs, level: made_up("Z5", "digits-mlp", runs, level, threshold=8))


@pytest.mark.claim(id="Z7")
def test_z7_undecidable(decide_claim):
    decide_claim("digits-mlp", lambda runs, level: made_up("Z7", "digits-mlp", runs, level))


@pytest.mark.claim(id="Z6")
def test_z6_wrong_claim(decide_claim):
    decide_claim("digits-mlp", lambda runs, level: made_up("Z1", "digits-mlp", runs, level))
'''


@pytest.fixture
def session(pytester, tmp_path, monkeypatch):
    """A pytest project using the harness's plugins and the repository's own ini options.

    Each session runs in a subprocess: in-process runs restore ``sys.modules`` afterwards, and
    torch does not survive being imported twice in one interpreter.
    """
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest((ROOT / "conftest.py").read_text())
    markers = "\n    ".join(INI["markers"])
    pytester.makeini(f"[pytest]\naddopts = {shlex.join(INI['addopts'])}\nmarkers =\n    {markers}\n")
    runs = tmp_path / "runs"
    # Plugins the sessions do not need are left out: each costs import time in every subprocess.
    quiet = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:xdist")
    return lambda *args: pytester.runpytest_subprocess(*quiet, f"--runs-dir={runs}", *args)


@pytest.mark.parametrize("workers, cores, threads", [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 16, 8), (3, 16, 5)])
def test_each_xdist_worker_gets_an_equal_share_of_the_cores(workers, cores, threads):
    assert worker_threads(workers, cores) == threads


@pytest.mark.integration
def test_xdist_workers_share_the_cores_and_hand_the_share_to_subprocesses(session, pytester, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pytester.makepyfile(test_t=(
        "import os, subprocess, sys, torch\n"
        "from fixtures.options import worker_threads\n"
        "def test_threads():\n"
        "    share = worker_threads(2, len(os.sched_getaffinity(0)))\n"
        "    assert torch.get_num_threads() == share and os.environ['OMP_NUM_THREADS'] == str(share)\n"
        "    child = subprocess.run([sys.executable, '-c', 'import torch; print(torch.get_num_threads())'],\n"
        "                           capture_output=True, text=True, check=True)\n"
        "    assert int(child.stdout) == share\n"))
    # The session fixture leaves xdist out; this one loads it again (-p xdist after -p no:xdist).
    session("-p", "xdist", "-n", "2").assert_outcomes(passed=1)


@pytest.mark.integration
def test_default_run_deselects_gpu_and_a_later_m_selects_it(session, pytester):
    pytester.makepyfile(test_t="import pytest\n@pytest.mark.gpu\ndef test_g(): pass\n"
                               "@pytest.mark.slow\ndef test_s(): pass\n"
                               "@pytest.mark.integration\ndef test_i(): pass\ndef test_u(): pass\n")
    session().assert_outcomes(passed=1, deselected=3)
    result = session("-m", "gpu")
    result.assert_outcomes(skipped=1, deselected=3)
    result.stdout.fnmatch_lines(["*gpu tier: CUDA is not available*Run them anyway with --device cpu*"])
    session("-m", "integration").assert_outcomes(passed=1, deselected=3)


@pytest.mark.integration
def test_settings_modules_register_settings_and_bad_names_are_usage_errors(session, pytester, monkeypatch):
    pytester.makepyfile(
        my_settings="from harness import settings\n"
                    "settings.register(settings.get('digits-mlp').replace(name='my-copy'))\n",
        test_t="import pytest\nfrom fixtures.runs import setting_params\n"
               "@pytest.mark.parametrize('setting', setting_params(('smoke',)))\ndef test_s(setting): pass\n")
    result = session("--settings-module", "my_settings", "-m", "smoke", "-v")
    result.stdout.fnmatch_lines(["*test_s?my-copy? PASSED*"])
    result.assert_outcomes(passed=3)  # the built-in smoke settings of every claim, and the registered copy
    session("--settings-module", "my_settings", "-m", "smoke", "--setting", "my-copy").assert_outcomes(
        passed=1, deselected=2)
    monkeypatch.setenv("ENSEMBLE_CLAIMS_SETTINGS", "my_settings")
    session("-m", "smoke", "--setting", "my-copy").assert_outcomes(passed=1, deselected=2)
    monkeypatch.delenv("ENSEMBLE_CLAIMS_SETTINGS")
    missing = session("--settings-module", "no_such_module")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*--settings-module no_such_module: ModuleNotFoundError: No module named *"])
    unknown = session("--setting", "my-copy")  # registered by no module in this session
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    unknown.stderr.fnmatch_lines(["*--setting: unknown setting 'my-copy'; known settings: *digits-mlp*"])


@pytest.mark.integration
def test_a_conftest_may_register_settings_for_the_tests_beside_it(session, pytester):
    pytester.mkpydir("mine")
    pytester.path.joinpath("mine", "conftest.py").write_text(
        "from harness import settings\nsettings.register(settings.get('digits-mlp').replace(name='from-conftest'))\n")
    pytester.path.joinpath("mine", "test_t.py").write_text(
        "import pytest\nfrom fixtures.runs import setting_params\n"
        "@pytest.mark.parametrize('setting', setting_params(('smoke',)))\ndef test_s(setting): pass\n")
    result = session("mine", "-m", "smoke", "-v")
    result.stdout.fnmatch_lines(["*test_s?from-conftest? PASSED*"])


def test_markers_are_strict_and_registered():
    # --strict-markers turns a misspelt marker into a collection error (pytest's own check).
    assert "--strict-markers" in INI["addopts"]
    assert {m.split(":")[0].split("(")[0] for m in INI["markers"]} == {"smoke", "slow", "gpu", "integration", "claim"}


def test_seed_count_option_rejects_fewer_than_four():
    with pytest.raises(argparse.ArgumentTypeError, match=r"'3' is invalid: expected an int >= 4"):
        _seed_count("3")
    with pytest.raises(argparse.ArgumentTypeError, match=r"'x' is invalid"):
        _seed_count("x")
    assert _seed_count("7") == 7
    with pytest.raises(argparse.ArgumentTypeError, match=r"'-1' is invalid: expected a non-negative int"):
        _seed_offset("-1")


@pytest.mark.integration
def test_trained_runs_trains_once_prints_progress_and_reports(session, pytester, tmp_path):
    pytester.makepyfile(test_claim=CLAIM_TESTS)
    report = tmp_path / "report"
    first = session("-k", "z1 and digits", "--seeds", "4", "--seed-offset", "3", f"--report-dir={report}")
    first.assert_outcomes(passed=1, deselected=14)
    first.stdout.fnmatch_lines(["ensemble-claims: device=cpu (auto; no CUDA), seeds=4 from 3, torch *",
                                "ensemble-claims: runs-dir=*runs, data-root=*",
                                "[[]train[]] digits-mlp: 4 runs to train now, ~* MB*",
                                "[[]train[]] in all ~* MB now in *runs*",
                                # seeds 3-6 lie in the cohorts of five 0-4 and 5-9 (harness.cohort)
                                "[[]train[]] digits-mlp seeds 0-4: 16 epochs in *s on cpu as one cohort (vmap), test acc 0.*",
                                "[[]train[]] digits-mlp seeds 5-9: *",
                                "*claim verdicts*", "Z1 *digits-mlp*runs: 4 [[]4, 12[]] >= 2*reproduces*4*passed"])
    results = json.loads((report / "results.json").read_text())
    (record,) = results["claims"]
    assert record["outcome"] == "passed" and record["evidence"]["outcome"] == "reproduces"
    assert record["evidence"]["marker"] == {"id": "Z1"} and record["evidence"]["finding"] is None
    second = session("-k", "z1 and digits", "--seeds", "4", "--seed-offset", "3")
    second.assert_outcomes(passed=1, deselected=14)
    assert "[train]" not in second.stdout.str()  # served from the store


@pytest.mark.integration
def test_decisions_grow_seeds_and_are_judged_against_the_findings(session, pytester, tmp_path):
    pytester.makepyfile(test_claim=CLAIM_TESTS)
    report = tmp_path / "report"
    result = session("-k", "z2 or z3 or z4 or z6 or z7", f"--report-dir={report}", "--junitxml",
                     str(tmp_path / "j.xml"))
    result.assert_outcomes(passed=1, failed=3, xfailed=2, deselected=9)
    result.stdout.fnmatch_lines([
        "[[]decide[]] Z2 digits-mlp: inconclusive on 5 seeds (runs: 5 [[]5, 13[]] >= 8 *); deciding again on more seeds",
        "*declared finding now reproduces: remove (Z3, digits-mlp) from harness/findings.py*",
        f"Z4 refuted on digits-mlp over 5 seeds (0-4; looks 5; cap {settings.get('digits-mlp').max_seeds})",
        "*ValueError: the evidence decides claim 'Z1' but the test is marked claim(id='Z6')*",
    ])
    assert "record_property is incompatible" not in result.stdout.str()
    records = {r["nodeid"].split("::")[1]: r for r in json.loads((report / "results.json").read_text())["claims"]}
    assert records["test_z2_grows_seeds"]["evidence"]["looks"] == [5, 10]
    declared = records["test_z3_declared[<]"]
    assert declared["outcome"] == "xfailed" and declared["evidence"]["finding"]["why"] == "declared for the test"
    assert "declared finding, refuted on 5 seeds: runs: 5 [5, 13] < 2" in declared["skip_reason"]
    undecidable = records["test_z7_undecidable"]  # reproduces, but its verdict is not judged
    assert undecidable["outcome"] == "xfailed" and undecidable["evidence"]["outcome"] == "reproduces"
    assert undecidable["skip_reason"].startswith("declared undecidable here, reproduces on 5 seeds: runs: 5 [5, 13] >= 2")
    # JUnit: the verdicts are JSON testsuite properties (reports/junit.py), {"test": ..., "value": ...}.
    suite_properties = ET.parse(tmp_path / "j.xml").getroot().find("testsuite/properties")
    verdicts = {json.loads(p.get("value"))["value"] for p in suite_properties if p.get("name") == "verdict"}
    assert {"refuted", "reproduces"} <= verdicts


@pytest.mark.integration
def test_inconclusive_at_the_cap_fails_with_the_numbers(session, pytester):
    pytester.makepyfile(test_claim=CLAIM_TESTS)
    result = session("-k", "z5", "--seeds", "4")
    result.assert_outcomes(failed=1, deselected=14)
    result.stdout.fnmatch_lines(["Z5 inconclusive on digits-mlp over 4 seeds (0-3; looks 4; cap 4)",
                                 "  inconclusive  runs: 4 [[]4, 12[]] >= 8 (95% one-sided)"])


@pytest.mark.integration
def test_cifar_setting_skips_naming_the_folder_tried(session, pytester, tmp_path):
    pytester.makepyfile(test_claim=CLAIM_TESTS)
    result = session("-m", "gpu", "-k", "cifar10-smallcnn", "--device", "cpu", f"--data-root={tmp_path}")
    result.assert_outcomes(skipped=1, deselected=14)
    result.stdout.fnmatch_lines([f"*no cifar10 data in {tmp_path}/cifar-10-batches-py*--data-root*"])


def test_setting_params_mark_tiers():
    params = {p.id: p for p in setting_params(("smoke", "gpu"))}
    every_claim = {n for n in settings.names("smoke") + settings.names("gpu") if settings.get(n).claims is None}
    assert set(params) == every_claim
    # A setting made for some claims joins those claims' parametrisation only.
    assert "synthetic16-binary-mlp" not in params
    assert "synthetic16-binary-mlp" in {p.id for p in setting_params(("smoke",), claim="A2")}
    assert "synthetic16-binary-mlp" not in {p.id for p in setting_params(("smoke",), claim="T1")}
    assert [m.name for m in params["digits-mlp"].marks] == ["smoke"]
    assert [m.name for m in params["cifar10-smallcnn"].marks] == ["gpu"]


def test_training_plan_counts_missing_runs_and_skips_absent_cifar_data(tmp_path):
    from fixtures.runs import training_plan
    from harness.store import RunStore

    from fixtures.runs import bytes_per_run
    from harness.diskspace import format_bytes

    store = RunStore(tmp_path / "runs")
    digits = settings.get("digits-mlp")
    store.path(digits, 1).mkdir(parents=True)  # seed 1 is stored
    plan = training_plan(["digits-mlp", "cifar10-smallcnn"], store, 4, 0, str(tmp_path / "no-data"))
    assert plan[0].startswith("digits-mlp: 3 runs to train now") and len(plan) == 2
    assert plan[1].startswith(f"in all ~{format_bytes(3 * bytes_per_run(digits))} now in {store.root} (")
    assert training_plan(["digits-mlp"], store, 4, 1000, "")[0].startswith("digits-mlp: 4 runs")
    assert training_plan(["digits-mlp"], store, 1, 1, "") == []  # nothing to train: nothing printed


def test_training_plan_without_seeds_counts_the_growth_to_max_seeds(tmp_path):
    from fixtures.runs import bytes_per_run, training_plan
    from harness.diskspace import format_bytes
    from harness.store import RunStore

    digits = settings.get("digits-mlp")
    store = RunStore(tmp_path / "runs")
    per_run = bytes_per_run(digits)
    line, total = training_plan(["digits-mlp"], store, None, 0, "")
    assert line.endswith(f"; up to ~{format_bytes(digits.max_seeds * per_run)} if decisions grow to "
                         f"{digits.max_seeds} seeds")
    assert total.startswith(f"in all ~{format_bytes(digits.n_seeds * per_run)} now, up to "
                            f"~{format_bytes(digits.max_seeds * per_run)} if decisions grow their seeds, in {store.root}")


# ----------------------------------------------------------------------------------------------
# The data check (fixtures.options): missing or damaged CIFAR data is said once, before any test.

import torch  # noqa: E402 - this section's own import, kept with its tests


def truncate(path: Path, keep: int = 3_000) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.fixture
def fake_cifar10(tmp_path):
    from fake_cifar import write_cifar10

    return write_cifar10(tmp_path / "data")


def test_data_check_says_missing_and_damaged_data_and_stops_only_tests_that_run(tmp_path, fake_cifar10):
    from fixtures.options import data_check

    needs = {"cifar10": {"cifar10-smallcnn": False, "cifar10-resnet20": True}}
    lines, errors = data_check(needs, tmp_path / "none")
    assert errors == [] and len(lines) == 1
    assert lines[0].startswith(f"CIFAR-10 data not found: no folder {tmp_path / 'none' / 'cifar-10-batches-py'}.")
    assert lines[0].endswith("The tests of cifar10-smallcnn, cifar10-resnet20 skip.")
    assert data_check(needs, fake_cifar10["root"]) == ([], [])

    for name in ("data_batch_3", "test_batch"):
        truncate(fake_cifar10["folder"] / name)
    lines, errors = data_check(needs, fake_cifar10["root"])
    assert lines == [] and [e.split(" ")[:2] for e in errors] == [
        ["--data-root:", str(fake_cifar10["folder"] / "data_batch_3")],
        ["--data-root:", str(fake_cifar10["folder"] / "test_batch")]]
    # Where every test of the data skips anyway (no CUDA), the damage is said, and the session goes on.
    lines, errors = data_check({"cifar10": {"cifar10-smallcnn": False}}, fake_cifar10["root"])
    assert errors == [] and len(lines) == 2
    assert lines[0].startswith(f"{fake_cifar10['folder'] / 'data_batch_3'} is truncated")
    assert lines[0].endswith("(the tests of cifar10-smallcnn skip for now)")


@pytest.mark.integration
@pytest.mark.skipif(torch.cuda.is_available(), reason="the gpu tier's CUDA skip needs a machine without CUDA")
def test_missing_cifar_data_is_said_once_before_the_cuda_skip(session, pytester, tmp_path):
    pytester.makepyfile(test_claim=CLAIM_TESTS)
    result = session("-m", "gpu", "-k", "z1", f"--data-root={tmp_path / 'none'}")
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and outcomes["skipped"] > 0 and "passed" not in outcomes and "failed" not in outcomes
    folder = tmp_path / "none" / "cifar-10-batches-py"
    result.stdout.fnmatch_lines([f"[[]data[]] CIFAR-10 data not found: no folder {folder}. *--data-root*"
                                 "The tests of cifar10-smallcnn, *skip.",
                                 "test_claim.py s*",  # the line comes before the first test
                                 "*gpu tier: CUDA is not available*"])
    assert sum("[data]" in line for line in result.outlines) == 1


@pytest.mark.integration
def test_damaged_cifar_data_stops_the_session_with_one_line_per_file(session, pytester, fake_cifar10):
    pytester.makepyfile(test_claim=CLAIM_TESTS)
    truncate(fake_cifar10["folder"] / "data_batch_3")
    result = session("-m", "gpu", "-k", "z1 and cifar10-smallcnn", "--device", "cpu", "--dry-run",
                     f"--data-root={fake_cifar10['root']}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --data-root: {fake_cifar10['folder'] / 'data_batch_3'} is truncated "
                                 "(the pickle ends early: *; the file has 3,000 bytes). Fix: re-extract "
                                 f"cifar-10-python.tar.gz (*) into {fake_cifar10['root']}: tar -xzf *"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "test_claim.py" not in result.stdout.str()  # stopped before any test ran


# ----------------------------------------------------------------------------------------------
# A full disk (harness.diskspace.DiskFullError) stops the session once; the estimate bounds a real store.

FULL_DISK_TESTS = """
import harness.diskspace

harness.diskspace.free_bytes = lambda path: 1000  # every store of this session: 1000 bytes free


def test_first(trained_runs):
    trained_runs("digits-mlp")


def test_second(trained_runs):
    trained_runs("digits-mlp")


def test_third(sample_predictions):
    pass
"""


@pytest.mark.integration
def test_a_full_disk_stops_the_session_once_with_the_fix(session, pytester, tmp_path):
    pytester.makepyfile(test_full=FULL_DISK_TESTS)
    result = session()
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 1
    assert output.count("has too little disk space") == 1, output
    result.stdout.fnmatch_lines([f"*[[]disk[]] the run store {tmp_path / 'runs'} has too little disk space for "
                                 "training digits-mlp seeds 0-4 (a cohort of 5 seeds): 1.0 kB free there, ~* needed. "
                                 "Fix: free space on that disk, or put the run store on a disk with room: --runs-dir=DIR*"])
    assert "test_second" not in output and "test_third" not in output  # nothing after the first ran
    assert "Traceback" not in output


ESTIMATE_TESTS = """
import dataclasses
from pathlib import Path

from fixtures.runs import bytes_per_run
from fixtures.samples import FAR_SCALES, N_FAR_SAMPLES, n_samples
from harness import settings
from harness.catalog import X1_CORRUPTIONS
from harness.corruptions import SEVERITIES
from harness.subspace import ENSEMBLE_SAMPLES, ENSEMBLE_SCALES, PLANE_SAMPLES, PLANE_SCALES

BAND_SCALES = dataclasses.replace(PLANE_SCALES, random=0.3)  # S2's second draw at PLANE_SAMPLES
SLACK = 1.1  # the estimate is at most this much above what the store holds


def test_the_estimate_bounds_what_the_claims_write(run_store, trained_runs, sample_predictions,
                                                  weight_average_predictions, window_predictions,
                                                  shifted_predictions):
    name = "digits-mlp"
    runs = trained_runs(name)
    # What the claim tests derive from each run, every draw and the whole X1 grid.
    sample_predictions(name, runs, ENSEMBLE_SCALES, n_samples(name, ENSEMBLE_SAMPLES))
    for scales in (PLANE_SCALES, BAND_SCALES):
        sample_predictions(name, runs, scales, n_samples(name, PLANE_SAMPLES))
    sample_predictions(name, runs, FAR_SCALES, N_FAR_SAMPLES)
    weight_average_predictions(name, runs)
    window_predictions(name, runs)
    for corruption in X1_CORRUPTIONS:
        for severity in range(1, len(SEVERITIES[corruption]) + 1):
            shifted_predictions(name, runs, corruption, severity)
    files = [f for f in Path(run_store.root).rglob("*") if f.is_file()]
    written = sum(f.stat().st_blocks * 512 for f in files)  # what the files occupy on the disk
    estimate = len(runs) * bytes_per_run(settings.get(name))
    assert written <= estimate <= SLACK * written, (written, estimate)
"""


@pytest.mark.integration
def test_the_disk_estimate_bounds_a_real_store_with_its_derived_predictions(session, pytester):
    pytester.makepyfile(test_estimate=ESTIMATE_TESTS)
    result = session("--dry-run")
    result.assert_outcomes(passed=1)
