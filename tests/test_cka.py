"""Tests of harness.cka: known values and the debiased estimator's domain.

CKA is also checked against a slow reference, and for each property the registry claims, in
test_metrics.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.cka import linear_cka

# Slack for known values: a few ulps of float64 rounding, nothing more.
ROUNDING = 1e-12


def test_cka_is_one_under_rotation_and_scale_and_debiased_is_one_for_copies():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 4))
    rotation = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    assert linear_cka(x, 3.0 * x @ rotation) == pytest.approx(1.0, abs=ROUNDING)
    assert linear_cka(x, x, debiased=True) == pytest.approx(1.0, abs=ROUNDING)
    assert linear_cka(x, rng.standard_normal((50, 3)), debiased=True) == pytest.approx(0.0, abs=0.1)


def test_debiased_cka_needs_four_examples():
    with pytest.raises(ValueError, match=r"N >= 4 examples .* got N=3"):
        linear_cka(np.eye(3), np.eye(3), debiased=True)
    assert linear_cka(np.eye(3), np.eye(3)) == pytest.approx(1.0)
