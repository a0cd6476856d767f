"""harness.temperature: the calibrating temperature and its mirror on logits with a known calibration."""

import numpy as np
import pytest
import torch

from harness.scoring import expected_calibration_error
from harness.temperature import TEMPERATURES, calibrating_temperature, mirror_temperature


def calibrated_logits(n: int = 4000, classes: int = 3, scale: float = 3.0, seed: int = 0):
    """Logits z with labels drawn from softmax(z): calibrated at T = 1 by construction."""
    g = torch.Generator().manual_seed(seed)
    z = scale * torch.randn(n, classes, generator=g, dtype=torch.float64)
    y = torch.multinomial(torch.softmax(z, dim=1), 1, generator=g).squeeze(1)
    return z, y


def ece_at(z, y, t):
    return expected_calibration_error(torch.softmax(z / t, dim=1), y)


def test_the_calibrating_temperature_undoes_a_known_one():
    z, y = calibrated_logits()
    # Logits sharpened by 2: the NLL-optimal temperature is ~2 (within the sampling noise of 4,000 labels).
    assert calibrating_temperature(2 * z, y) == pytest.approx(2.0, rel=0.1)
    assert calibrating_temperature(z, y) == pytest.approx(1.0, rel=0.1)


def test_the_mirror_of_an_overconfident_model_has_its_ece_on_the_other_side():
    z, y = calibrated_logits()
    sharp = 2 * z
    t_star, t = calibrating_temperature(sharp, y), mirror_temperature(sharp, y)
    assert t > t_star > 1
    grid = np.array(TEMPERATURES)
    beyond = grid[grid > t_star]
    gaps = np.array([ece_at(sharp, y, u) - ece_at(sharp, y, 1.0) for u in beyond])
    crossing = int(np.flatnonzero(gaps >= 0)[0])
    # The grid temperature next to where the ECE past T* reaches the ECE at T = 1, the closer of the two.
    candidates = beyond[max(crossing - 1, 0): crossing + 1]
    assert t in candidates
    assert abs(ece_at(sharp, y, t) - ece_at(sharp, y, 1.0)) == pytest.approx(
        min(abs(ece_at(sharp, y, u) - ece_at(sharp, y, 1.0)) for u in candidates))
    assert (torch.softmax(sharp / t, 1).argmax(1) == sharp.argmax(1)).all()


def test_the_mirror_of_an_underconfident_model_is_sharper():
    z, y = calibrated_logits()
    flat = z / 2
    t = mirror_temperature(flat, y)
    assert t < calibrating_temperature(flat, y) < 1
    assert ece_at(flat, y, t) == pytest.approx(ece_at(flat, y, 1.0), abs=0.01)


def test_without_a_crossing_there_is_no_twin():
    z, y = calibrated_logits()
    # On a grid that stops right after T*, no temperature reaches the ECE of T = 1.
    sharp = 2 * z
    t_star = calibrating_temperature(sharp, y)
    assert mirror_temperature(sharp, y, [0.5, 1.0, t_star, t_star * 1.01]) is None


@pytest.mark.parametrize("logits, grid, message", [
    (torch.zeros(5), TEMPERATURES, "logits"),
    (torch.tensor([[0.0, float("nan")]]), TEMPERATURES, "logits"),
    (torch.zeros(4, 2), (1.0, 0.5), "temperatures"),
    (torch.zeros(4, 2), (0.0, 1.0), "temperatures"),
])
def test_bad_input_is_a_value_error(logits, grid, message):
    with pytest.raises(ValueError, match=message):
        mirror_temperature(logits, torch.zeros(len(logits), dtype=torch.long), grid)


def test_a_model_calibrated_at_the_grid_end_has_no_twin():
    # A near-chance model (as a dry run's): the least-NLL temperature is the grid's largest.
    z = 5 * torch.randn(200, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.randint(0, 10, (200,), generator=torch.Generator().manual_seed(1))
    grid = (0.5, 1.0, 2.0)
    assert calibrating_temperature(z, y, grid) == 2.0
    assert mirror_temperature(z, y, grid) is None
