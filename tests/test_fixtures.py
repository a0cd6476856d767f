"""The pytest wiring (fixtures/ and reports/plugin.py), exercised in throw-away pytest sessions."""

import argparse
import json
import shlex
import tomllib
from pathlib import Path

import pytest

from fixtures.options import _seed_count, _seed_offset
from fixtures.runs import setting_params
from harness import settings

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]
INI = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]

CLAIM_TESTS = '''
import pytest
from fixtures.runs import setting_params
from harness.stats import Criterion, Evidence

@pytest.mark.claim(id="Z1", source="made up")
@pytest.mark.parametrize("setting", setting_params(("smoke", "gpu")))
def test_z1(setting, trained_runs, record_evidence):
    runs = trained_runs(setting)
    ev = record_evidence(Evidence("Z1", setting, "made up", (Criterion("runs", len(runs), 2, ">="),),
                                  tuple(r.seed for r in runs)))
    assert ev.passed, ev.explain()
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


def test_default_run_deselects_gpu_and_a_later_m_selects_it(session, pytester):
    pytester.makepyfile(test_t="import pytest\n@pytest.mark.gpu\ndef test_g(): pass\n"
                               "@pytest.mark.slow\ndef test_s(): pass\ndef test_u(): pass\n")
    session().assert_outcomes(passed=1, deselected=2)
    result = session("-m", "gpu")
    result.assert_outcomes(skipped=1, deselected=2)
    result.stdout.fnmatch_lines(["*gpu tier: CUDA is not available*Run them anyway with --device cpu*"])


def test_markers_are_strict_and_registered():
    # --strict-markers turns a misspelt marker into a collection error (pytest's own check).
    assert "--strict-markers" in INI["addopts"]
    assert {m.split(":")[0].split("(")[0] for m in INI["markers"]} == {"smoke", "slow", "gpu", "claim"}


def test_seed_count_option_rejects_fewer_than_two():
    with pytest.raises(argparse.ArgumentTypeError, match=r"'1' is invalid: expected an int >= 2"):
        _seed_count("1")
    with pytest.raises(argparse.ArgumentTypeError, match=r"'x' is invalid"):
        _seed_count("x")
    assert _seed_count("7") == 7
    with pytest.raises(argparse.ArgumentTypeError, match=r"'-1' is invalid: expected a non-negative int"):
        _seed_offset("-1")


def test_trained_runs_trains_once_prints_progress_and_reports(session, pytester, tmp_path):
    pytester.makepyfile(test_claim=CLAIM_TESTS)
    report = tmp_path / "report"
    first = session("-m", "smoke", "-k", "digits", "--seeds", "2", "--seed-offset", "3", f"--report-dir={report}")
    first.assert_outcomes(passed=1, deselected=7)
    first.stdout.fnmatch_lines(["ensemble-claims: device=cpu (auto; no CUDA), seeds=2 from 3, torch *",
                                "ensemble-claims: runs-dir=*runs, data-root=*",
                                "[[]train[]] digits-mlp seed=3: 16 epochs in *s on cpu, test acc 0.*",
                                "[[]train[]] digits-mlp seed=4: *",
                                "*claim verdicts*", "Z1 *digits-mlp*runs 2 >= 2*PASS*passed"])
    results = json.loads((report / "results.json").read_text())
    (record,) = results["claims"]
    assert record["outcome"] == "passed" and record["evidence"]["verdict"] == "PASS"
    assert record["evidence"]["marker"] == {"id": "Z1", "source": "made up"}
    second = session("-m", "smoke", "-k", "digits", "--seeds", "2", "--seed-offset", "3")
    second.assert_outcomes(passed=1, deselected=7)
    assert "[train]" not in second.stdout.str()  # served from the store


def test_cifar_setting_skips_naming_the_folder_tried(session, pytester, tmp_path):
    pytester.makepyfile(test_claim=CLAIM_TESTS)
    result = session("-m", "gpu", "-k", "cifar10-smallcnn", "--device", "cpu", f"--data-root={tmp_path}")
    result.assert_outcomes(skipped=1, deselected=7)
    result.stdout.fnmatch_lines([f"*no cifar10 data in {tmp_path}/cifar-10-batches-py*--data-root*"])


def test_setting_params_mark_tiers_and_known_failures():
    params = {p.id: p for p in setting_params(("smoke", "gpu"), xfail={"digits-mlp": "measured 0.1 < 0.5"})}
    assert set(params) == set(settings.names("smoke")) | set(settings.names("gpu"))
    marks = {m.name: m for m in params["digits-mlp"].marks}
    assert marks["xfail"].kwargs == {"strict": True, "reason": "does not reproduce: measured 0.1 < 0.5"}
    assert "smoke" in marks and [m.name for m in params["cifar10-smallcnn"].marks] == ["gpu"]
    with pytest.raises(ValueError, match=r"xfail names unknown settings \['nope'\]"):
        setting_params(xfail={"nope": "x"})
