"""harness.corruptions: measured corruption levels against [HD19]'s constants, determinism, errors."""

import pytest
import torch

from harness.corruptions import SEVERITIES, corrupt

SEVERITY_LEVELS = range(1, 6)


def grey(n: int = 64, channels: int = 3, side: int = 16, value: float = 0.5) -> torch.Tensor:
    return torch.full((n, channels, side, side), value, dtype=torch.float64)


@pytest.mark.parametrize("severity", SEVERITY_LEVELS)
def test_gaussian_noise_has_the_published_standard_deviation(severity):
    x = grey()
    noise = corrupt(x, "gaussian_noise", severity, seed=0) - x  # 0.5 +- 0.1 never reaches the clip
    c = SEVERITIES["gaussian_noise"][severity - 1]
    assert noise.std().item() == pytest.approx(c, rel=0.02)
    assert abs(noise.mean().item()) < 0.1 * c


@pytest.mark.parametrize("severity", SEVERITY_LEVELS)
def test_shot_noise_is_poisson_with_the_published_rate(severity):
    x = grey()
    c = SEVERITIES["shot_noise"][severity - 1]
    counts = corrupt(x, "shot_noise", severity, seed=0) * c
    # Poisson(0.5 c) / c: integer counts, mean 0.5 c and variance 0.5 c (below the clip at c).
    assert torch.allclose(counts, counts.round(), atol=1e-6)
    assert counts.mean().item() == pytest.approx(0.5 * c, rel=0.01)
    assert counts.var().item() == pytest.approx(0.5 * c, rel=0.05)


@pytest.mark.parametrize("severity", SEVERITY_LEVELS)
def test_impulse_noise_replaces_the_published_fraction_half_by_0_half_by_1(severity):
    x = grey(n=256)
    out = corrupt(x, "impulse_noise", severity, seed=0)
    c = SEVERITIES["impulse_noise"][severity - 1]
    assert (out != x).double().mean().item() == pytest.approx(c, rel=0.05)
    assert (out == 0).double().mean().item() == pytest.approx(c / 2, rel=0.08)


@pytest.mark.parametrize("severity", SEVERITY_LEVELS)
def test_speckle_noise_scales_with_the_pixel(severity):
    x = grey(value=0.4)
    noise = corrupt(x, "speckle_noise", severity, seed=0) - x
    assert noise.std().item() == pytest.approx(0.4 * SEVERITIES["speckle_noise"][severity - 1], rel=0.02)


@pytest.mark.parametrize("severity", SEVERITY_LEVELS)
def test_contrast_shrinks_deviations_from_the_channel_mean(severity):
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = corrupt(x, "contrast", severity, seed=0)
    mean = x.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(out - mean, (x - mean) * SEVERITIES["contrast"][severity - 1], atol=1e-12)


@pytest.mark.parametrize("severity", SEVERITY_LEVELS)
def test_brightness_raises_the_hsv_value_and_keeps_hue_and_saturation(severity):
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.6
    out = corrupt(x, "brightness", severity, seed=0)
    c = SEVERITIES["brightness"][severity - 1]
    assert torch.allclose(out.amax(dim=1), (x.amax(dim=1) + c).clamp(max=1.0), atol=1e-12)
    # Saturation (max - min) / max is unchanged.
    saturation = lambda t: (t.amax(1) - t.amin(1)) / t.amax(1)  # noqa: E731
    assert torch.allclose(saturation(out), saturation(x), atol=1e-9)
    black = corrupt(torch.zeros(1, 3, 4, 4, dtype=torch.float64), "brightness", severity, seed=0)
    assert torch.allclose(black, torch.full_like(black, c))


def test_pixelate_makes_blocks_and_keeps_a_constant_image():
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    out = corrupt(x, "pixelate", 5, seed=0)  # 16 -> int(16 * 0.65) = 10 -> 16
    assert len(torch.unique(out[0, 0])) <= 100
    assert torch.equal(corrupt(grey(), "pixelate", 3, seed=0), grey())


@pytest.mark.parametrize("name", sorted(SEVERITIES))
def test_same_shape_dtype_range_and_a_pure_function_of_the_seed(name):
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    out = corrupt(x, name, 3, seed=7)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, corrupt(x, name, 3, seed=7))
    assert torch.equal(x, torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(3)))  # input untouched


def test_severity_grows_the_damage():
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for name in SEVERITIES:
        damage = [(corrupt(x, name, s, seed=0) - x).abs().mean().item() for s in SEVERITY_LEVELS]
        assert damage[0] < damage[-1], name


@pytest.mark.parametrize("call, message", [
    (lambda x: corrupt(x, "fog", 1, seed=0), r"unknown corruption 'fog'; known corruptions: brightness, contrast"),
    (lambda x: corrupt(x, "gaussian_noise", 0, seed=0), r"severity=0 is invalid: expected an int in 1..5"),
    (lambda x: corrupt(x, "gaussian_noise", 6, seed=0), r"severity=6"),
    (lambda x: corrupt(x, "gaussian_noise", 2.0, seed=0), r"severity=2.0"),
    (lambda x: corrupt(x * 2, "gaussian_noise", 1, seed=0), r"images must lie in \[0, 1\]"),
    (lambda x: corrupt(x - 1, "gaussian_noise", 1, seed=0), r"images must lie in \[0, 1\]"),
    (lambda x: corrupt(x[0], "gaussian_noise", 1, seed=0), r"shape \(N, C, H, W\)"),
    (lambda x: corrupt((x * 255).long(), "gaussian_noise", 1, seed=0), r"float tensor"),
])
def test_bad_input_is_a_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5)))
