"""examples/: the README's "Your own model and data", run as a user would (a pytest subprocess)."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:xdist")


def test_the_example_setting_runs_the_claims_and_p3_skips_saying_why(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    # A subset of the claims keeps this in seconds: a trajectory, a between-runs and a subspace claim
    # (BatchNorm statistics recomputed, dropout in eval mode) and P3 (no permutation spec: skipped).
    result = pytester.runpytest_subprocess(
        str(ROOT / "claims"), "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), *QUIET,
        "-m", "smoke", "--settings-module", "examples.my_settings", "--setting", "my-digits-rescnn",
        "-k", "t1 or i2 or test_s1 or p3", f"--runs-dir={tmp_path / 'runs'}", f"--report-dir={tmp_path / 'report'}")
    result.stdout.fnmatch_lines([
        "ensemble-claims: settings modules examples.my_settings",
        "ensemble-claims: only settings my-digits-rescnn",
        "[[]train[]] my-digits-rescnn: 5 runs to train now, *",
        "[[]train[]] my-digits-rescnn seed=0: 16 epochs in *s on cpu, test acc 0.*",
        "*claim verdicts*",
    ])
    for claim in ("T1", "I2", "S1"):
        result.stdout.fnmatch_lines([f"{claim} *my-digits-rescnn *"])
    result.stdout.fnmatch_lines(["SKIPPED*my-digits-rescnn: P3 aligns hidden units, and harness.symmetry has no "
                                 "permutation spec for the model 'residual-cnn'*"])
    assert "digits-mlp" not in result.stdout.str()  # --setting narrowed the run to the example
    assert (tmp_path / "report" / "results.json").is_file()
