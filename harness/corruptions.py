"""Common corruptions of images in [0, 1], after Hendrycks & Dietterich's CIFAR-10-C.

Hendrycks and Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019 ([HD19]); the constants per severity 1-5 are those of their CIFAR-10-C
generator (hendrycks/robustness, ImageNet-C/create_c/make_cifar_c.py), written here once in
:data:`SEVERITIES`. The corruptions that need nothing but torch:

``gaussian_noise``  x + N(0, c^2)
``shot_noise``      Poisson(x c) / c
``impulse_noise``   a fraction c of the values set to 0 or 1 (salt and pepper, half each)
``speckle_noise``   x + x N(0, c^2)
``contrast``        (x - m) c + m, m the image's mean per channel
``brightness``      the HSV value V raised by c (clipped to 1), hue and saturation kept
``pixelate``        box-averaged down to int(S c) pixels a side, then back up to S

each clipped to [0, 1]. The blurs, weather effects, elastic transform and JPEG need image
libraries and are not here. Random corruptions draw from one CPU generator seeded by ``seed``,
then move to the images' device, so that the result depends on the seed only, on any device.

Examples
--------
>>> import torch
>>> x = torch.full((2, 3, 8, 8), 0.5)
>>> corrupt(x, "contrast", 5, seed=0).shape
torch.Size([2, 3, 8, 8])
>>> sorted(SEVERITIES)[:3]
['brightness', 'contrast', 'gaussian_noise']
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from harness.validation import check_int

__all__ = ["SEVERITIES", "corrupt"]

# [HD19]'s CIFAR-10-C constants for severities 1-5.
SEVERITIES: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # noise standard deviation
    "shot_noise": (500, 250, 100, 75, 50),  # photons per unit intensity
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # fraction of values replaced
    "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),  # multiplicative noise standard deviation
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # contrast kept
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to the HSV value
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # side kept before upsampling
}


def _gaussian_noise(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    return x + c * torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)


def _shot_noise(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    return torch.poisson(x.cpu().double() * c, generator=g).to(x.device, x.dtype) / c


def _impulse_noise(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    u = torch.rand(x.shape, generator=g, dtype=torch.float64).to(x.device)
    # u < c/2: pepper (0); c/2 <= u < c: salt (1); else unchanged.
    return torch.where(u < c / 2, torch.zeros_like(x), torch.where(u < c, torch.ones_like(x), x))


def _speckle_noise(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    return x + x * c * torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)


def _contrast(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * c + mean


def _brightness(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    # RGB = V f(H, S): raising V to V' with H and S kept scales the pixel by V' / V. A black pixel
    # (V = 0, S = 0 by convention) becomes the grey (V', V', V').
    value = x.amax(dim=1, keepdim=True)
    raised = (value + c).clamp(max=1.0)
    return torch.where(value > 0, x * raised / value.clamp_min(torch.finfo(x.dtype).tiny), raised.expand_as(x))


def _pixelate(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    size = x.shape[-1]
    small = F.interpolate(x, size=(int(size * c), int(size * c)), mode="area")
    return F.interpolate(small, size=(size, size), mode="nearest")


_CORRUPTIONS: dict[str, Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]] = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
    "speckle_noise": _speckle_noise, "contrast": _contrast, "brightness": _brightness, "pixelate": _pixelate,
}


def corrupt(images: torch.Tensor, name: str, severity: int, *, seed: int) -> torch.Tensor:
    """``images`` under corruption ``name`` at ``severity``, clipped to [0, 1].

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W), float, values in [0, 1]
    name : str
        A key of :data:`SEVERITIES`.
    severity : int in 1..5
    seed : int
        Seed of the corruption's randomness (drawn on the CPU: the same on every device).

    Returns
    -------
    torch.Tensor, same shape, dtype and device as ``images``

    Raises
    ------
    ValueError
        An unknown name (the message lists the known ones), a severity outside 1-5, images that are
        not a float (N, C, H, W) tensor in [0, 1].
    """
    if name not in _CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known corruptions: {', '.join(sorted(_CORRUPTIONS))}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"severity={severity!r} is invalid: expected an int in 1..5")
    seed = check_int("seed", seed, 0)
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor of shape (N, C, H, W); got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    if images.numel() and (images.min() < 0 or images.max() > 1 or images.isnan().any()):
        raise ValueError("images must lie in [0, 1] (raw images, before standardisation); got values in "
                         f"[{images.min().item():g}, {images.max().item():g}]")
    generator = torch.Generator().manual_seed(seed)
    out = _CORRUPTIONS[name](images, SEVERITIES[name][severity - 1], generator)
    return out.clamp(0.0, 1.0).to(images.dtype)
