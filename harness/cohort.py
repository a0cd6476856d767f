"""Seed-batched training: the seeds of a cohort train together as one vectorised model.

:func:`train_cohort` trains the seeds of one cohort (:attr:`harness.settings.Recipe.cohort`) with
the recipe of :func:`harness.training.train` and returns one :class:`~harness.training.Run` per
seed, as that function would. What is shared and what stays per seed:

- per seed: the initial weights (drawn as ``train`` draws them: the same stream, the same values),
  the data order (the same permutations as ``train``), the dropout masks (each seed its own
  generator) and its Adam moments (Adam is elementwise over the stacked parameters);
- shared: the optimiser call, the data on the device and, with the ``"vmap"`` engine, every
  forward and backward pass (``torch.func.vmap`` over the stacked parameters).

Two engines compute the same mathematics:

``"vmap"``
    One ``vmap(functional_call)`` over the stacked parameters: on a GPU, small models at batch 128
    are launch-bound and one batched call replaces S; on this project's 2-core CPU the digits MLP
    trains ~9x faster than the per-seed loop at 8 seeds.
``"loop"``
    One functional forward pass per seed: on a CPU, grouped and vmapped convolutions ran slower
    than S separate ones (SmallCNN, 8 seeds: 1.56 s against 1.06 s for 10 steps), so
    convolutional models take this engine there. Its evaluation passes run channels-last
    (:func:`harness.training.inference_layout`); its training passes do not (channels-last
    parameters and gradients cost more in layout copies than they saved, measured).

:func:`engine_for` picks by device and model. Dropout masks do not come from ``nn.Dropout``: its
Bernoulli draws took half of a SmallCNN's CPU training step. :func:`dropout_mask` draws 16-bit
uniform integers, three from each 64-bit random number, and keeps a unit when its integer clears the
drop rate's threshold (rate quantised to 1/65,536; the kept units are scaled by the exact inverse
of the keep probability, so the expected activation is unchanged).

The floats differ from the per-seed reference loop (other dropout masks, other kernels); the
runs are statistically the same (tests/test_cohort.py) and keyed apart (``Recipe.cohort`` is part
of the setting's cache key). A seed always trains with the same cohort, so asking for it alone, with
other seeds, or in another order gives bitwise the same run on the same machine.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from harness import data as data_lib
from harness.data import Data
from harness.models import build
from harness.settings import Setting
from harness.training import (
    CPU_EVAL_BATCH,
    EVAL_BATCH,
    PROGRESS_EVERY_S,
    DivergedError,
    Run,
    derive_seed,
    epoch_steps,
    inference_layout,
    resolve_device,
    start_epoch,
)
from harness.validation import check_int
from harness.weightspace import weight_vector

ENGINES = ("vmap", "loop")
# Integers per mask draw: a drop rate p keeps a unit when its 16-bit uniform integer is >= p * 2^16.
_MASK_LEVELS = 2 ** 16
# Of a 64-bit random_() draw (uniform on [0, 2^63)), the low three 16-bit chunks are uniform.
_CHUNKS_PER_DRAW = 3


def cohort_seeds(seed: int, size: int) -> tuple[int, ...]:
    """The seeds that train together with ``seed`` in cohorts of ``size``: a block aligned to ``size``.

    >>> cohort_seeds(7, 5)
    (5, 6, 7, 8, 9)
    """
    seed, size = check_int("seed", seed, 0), check_int("cohort size", size, 1)
    start = seed // size * size
    return tuple(range(start, start + size))


def engine_for(model: nn.Module, device: torch.device) -> str:
    """``"vmap"`` on CUDA and for models without convolutions, ``"loop"`` for convolutional models on a CPU."""
    has_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    return "loop" if device.type == "cpu" and has_conv else "vmap"


def dropout_mask(shape: Sequence[int], p: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A dropout mask: kept units ``1 / q`` (q the exact keep probability), dropped ones 0.

    Parameters
    ----------
    shape : sequence of int
    p : float
        Drop rate in [0, 1), quantised to 1/65,536.
    generator : torch.Generator
        On the CPU; the mask is drawn there and moved to ``device`` (one stream for every device).
    device : torch.device

    Returns
    -------
    torch.Tensor, shape ``shape``, float32
    """
    n = math.prod(shape)
    threshold = round(p * _MASK_LEVELS)
    draws = torch.empty(-(-n // _CHUNKS_PER_DRAW), dtype=torch.int64).random_(generator=generator)
    # Little-endian int16 view: chunks 0-2 are the low 48 bits. int16 runs from -2^15, so the
    # uniform chunk u in [0, 2^16) is kept when u - 2^15 >= threshold - 2^15.
    chunks = draws.view(torch.int16).view(-1, 4)[:, :_CHUNKS_PER_DRAW].reshape(-1)[:n]
    keep = 1.0 - threshold / _MASK_LEVELS
    mask = (chunks >= threshold - _MASK_LEVELS // 2).to(torch.float32).mul_(1.0 / keep)
    return mask.view(*shape).to(device)


class _MaskedDropout(nn.Module):
    """Stands in for ``nn.Dropout`` in the functional model: multiplies by ``mask`` when one is set."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.mask is None else x * self.mask


def _functional_copy(model: nn.Module) -> tuple[nn.Module, list[_MaskedDropout]]:
    """A parameter-less copy of ``model`` on the meta device whose ``nn.Dropout`` layers take given masks."""
    base = copy.deepcopy(model).to("meta")
    drops = []
    for module in list(base.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Dropout):
                masked = _MaskedDropout(child.p)
                setattr(module, name, masked)
                drops.append(masked)
    return base, drops


def _dropout_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    """Per-example input shape of each ``nn.Dropout`` of ``model``, in module order (one forward pass)."""
    shapes: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda _m, args, _out: shapes.append(tuple(args[0].shape[1:])))
             for m in model.modules() if isinstance(m, nn.Dropout)]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(x[:1])
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return shapes


class _Cohort:
    """The cohort's parameters and its forward pass, by engine.

    ``params`` are the optimiser's leaves: with ``"vmap"`` one stacked (S, ...) tensor per name, with
    ``"loop"`` one tensor per seed and name.
    """

    def __init__(self, models: list[nn.Module], engine: str) -> None:
        self.names = [name for name, _ in models[0].named_parameters()]
        self.engine = engine
        self.base, self.drops = _functional_copy(models[0])
        if engine == "vmap":
            stacked, _ = stack_module_state(models)
            self.stacked = {name: stacked[name] for name in self.names}
            self.leaves = list(self.stacked.values())
            # Masks arrive as vmapped arguments; any other randomness in a user's model differs per seed.
            self._vmapped = vmap(self._call, in_dims=(0, 0, 0), randomness="different")
            self._vmapped_eval = vmap(self._call, in_dims=(0, None, None), randomness="different")
        else:
            self.per_seed = [{name: p.detach().clone().requires_grad_() for name, p in m.named_parameters()}
                             for m in models]
            self.leaves = [p for params in self.per_seed for p in params.values()]

    def _call(self, params: dict, x: torch.Tensor, masks: list | None) -> torch.Tensor:
        for drop, mask in zip(self.drops, masks or [None] * len(self.drops)):
            drop.mask = mask
        return functional_call(self.base, params, (x,))

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
        """Train-mode logits: ``x`` (S, B, ...) -> (S, B, C); ``masks`` one (S, B, ...) per dropout layer."""
        self.base.train()
        if self.engine == "vmap":
            return self._vmapped(self.stacked, x, masks)
        return torch.stack([self._call(params, x[s], [m[s] for m in masks]) for s, params in enumerate(self.per_seed)])

    @torch.no_grad()
    def predict_logits(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Eval-mode logits of every seed on ``x`` (N, ...): shape (S, N, C), float32, on the CPU."""
        self.base.eval()
        chunks = []
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            if self.engine == "vmap":
                chunks.append(self._vmapped_eval(self.stacked, xb, None).float().cpu())
            else:
                xb = inference_layout(xb)
                chunks.append(torch.stack([self._call(p, xb, None) for p in self.per_seed]).float().cpu())
        return torch.cat(chunks, dim=1)

    def state(self, s: int) -> dict[str, torch.Tensor]:
        """Seed ``s``'s state dict: CPU float32 copies in the model's order, standard layout."""
        source = {n: p[s] for n, p in self.stacked.items()} if self.engine == "vmap" else self.per_seed[s]
        return {n: source[n].detach().to("cpu").clone(memory_format=torch.contiguous_format) for n in self.names}


def train_cohort(
    setting: Setting,
    seeds: Sequence[int],
    *,
    device: str | torch.device = "auto",
    data: Data | None = None,
    data_root: str | None = None,
    engine: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Run]:
    """Train ``seeds`` of ``setting`` as one cohort and return their runs, in the order given.

    Parameters
    ----------
    setting : Setting
    seeds : sequence of int
        Distinct non-negative seeds; the run store passes a whole cohort (:func:`cohort_seeds`).
    device : str or torch.device
        "auto" picks CUDA when available.
    data : Data, optional
        Pre-loaded data (moved to ``device``); loaded from ``setting.dataset`` when None.
    data_root : str, optional
        Where CIFAR lives, when ``data`` is None.
    engine : {"vmap", "loop"}, optional
        Default :func:`engine_for` the model and device.
    progress : callable, optional
        One line when the cohort is done and, for a cohort estimated to take longer than
        :data:`harness.training.PROGRESS_EVERY_S` (judged on its second epoch), one per epoch from the
        second on with the time left.

    Returns
    -------
    list of Run
        One per seed, as :func:`harness.training.train` returns it (init and data seeds = the seed).

    Raises
    ------
    ValueError
        For bad seeds or engine, or a model with buffers (BatchNorm: train it with ``cohort=1``).
    DivergedError
        When a seed's training loss is NaN or infinite in some epoch; no run of the cohort is returned.
    """
    seeds = [check_int("seed", s, 0) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds!r} is invalid: expected distinct non-negative ints, at least one")
    device = resolve_device(device)
    data = (data_lib.load(setting.dataset, data_root) if data is None else data).to(device)
    recipe, n_seeds = setting.recipe, len(seeds)
    t_start = time.perf_counter()

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        models = []
        for seed in seeds:  # each seed's initial weights come from its own stream, as in train()
            torch.manual_seed(derive_seed(seed, "init"))
            try:
                models.append(build(setting.model, data.input_shape, data.num_classes).to(device))
            except ValueError as exc:
                raise ValueError(f"setting {setting.name!r}: {exc}") from exc
        if any(True for _ in models[0].buffers()):
            raise ValueError(f"setting {setting.name!r}: recipe.cohort={recipe.cohort} is invalid for a model with "
                             "buffers (BatchNorm running statistics cannot be updated under vmap); use cohort=1")
        engine = engine or engine_for(models[0], device)
        if engine not in ENGINES:
            raise ValueError(f"engine={engine!r} is invalid: expected one of {ENGINES}")
        shapes = _dropout_shapes(models[0], data.train.x)
        cohort = _Cohort(models, engine)
        # Randomness a model draws outside nn.Dropout (a user's factory) comes from this stream.
        torch.manual_seed(derive_seed(seeds[0], f"cohort-{n_seeds}"))
        orders = [torch.Generator().manual_seed(derive_seed(s, "order")) for s in seeds]
        dropouts = [torch.Generator().manual_seed(derive_seed(s, "dropout")) for s in seeds]
        optimizer = torch.optim.Adam(cohort.leaves, lr=recipe.lr)
        eval_batch = CPU_EVAL_BATCH if device.type == "cpu" else EVAL_BATCH

        saved = set(recipe.saved_epochs)
        weights = [{0: cohort.state(s)} if 0 in saved else {} for s in range(n_seeds)]
        probs = [F.softmax(cohort.predict_logits(data.test.x, eval_batch), dim=-1)]
        train_loss, train_acc = [], []
        n = len(data.train)
        batch_sizes, window_steps = epoch_steps(recipe, n, device)
        window = []
        for epoch in range(1, recipe.epochs + 1):
            snapshot_steps = start_epoch(optimizer, recipe, epoch, window_steps)

            # ---- one epoch over each seed's fresh permutation ----
            perms = torch.stack([torch.randperm(n, generator=g) for g in orders]).to(device)  # (S, n)
            step_loss, step_logits = [], []
            for step, start in enumerate(range(0, n, recipe.batch_size), start=1):
                idx = perms[:, start:start + recipe.batch_size]  # (S, B)
                masks = [torch.stack([dropout_mask((idx.shape[1], *shape), drop.p, g, device) for g in dropouts])
                         for shape, drop in zip(shapes, cohort.drops)]
                logits = cohort.forward(data.train.x[idx], masks)  # (S, B, C)
                losses = F.cross_entropy(logits.flatten(0, 1), data.train.y[idx].flatten(),
                                         reduction="none").view(n_seeds, -1).mean(1)  # (S,)
                optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()  # each seed's parameters get the gradient of its own loss
                optimizer.step()
                if step in snapshot_steps:
                    window.append(torch.stack([weight_vector(cohort.state(s), "all").float() for s in range(n_seeds)]))
                step_loss.append(losses.detach())
                step_logits.append(logits.detach())
            mean_loss = (torch.stack(step_loss).double() * batch_sizes[:, None]).sum(0).cpu() / n  # (S,)
            if not torch.isfinite(mean_loss).all():
                bad = [s for s, loss in zip(seeds, mean_loss.tolist()) if not math.isfinite(loss)]
                raise DivergedError(f"{setting.name} seeds={bad}: training loss is not finite in epoch {epoch} "
                                    f"(lr {recipe.lr_at(epoch):g}); the cohort {seeds} is discarded")
            labels = data.train.y[perms]  # (S, n)
            correct = (torch.cat(step_logits, dim=1).argmax(-1) == labels).sum(1).cpu()
            train_loss.append(mean_loss)
            train_acc.append(correct.double() / n)

            # ---- evaluate (eval mode: no dropout) and keep the recipe's checkpoints ----
            test_logits = cohort.predict_logits(data.test.x, eval_batch)
            probs.append(F.softmax(test_logits, dim=-1))
            if epoch in saved:
                for s in range(n_seeds):
                    weights[s][epoch] = cohort.state(s)
            now = time.perf_counter()
            # Judged on the second epoch: the first carries torch.func's one-time set-up (~2 s).
            if epoch == 2:
                per_epoch = now - t_epoch
                verbose = progress is not None and per_epoch * recipe.epochs > PROGRESS_EVERY_S
            if epoch >= 2 and verbose and epoch < recipe.epochs:
                acc = (probs[-1].argmax(-1) == data.test.y.cpu()).double().mean().item()
                progress(f"{setting.name} seeds {seeds[0]}-{seeds[-1]} epoch {epoch}/{recipe.epochs}: "
                         f"mean loss {mean_loss.mean():.3f}, mean test acc {acc:.3f}, "
                         f"~{per_epoch * (recipe.epochs - epoch):.0f}s left")
            t_epoch = now

    total = time.perf_counter() - t_start
    probs_t, loss_t, acc_t = torch.stack(probs, dim=1), torch.stack(train_loss, 1), torch.stack(train_acc, 1)
    n_window = weight_vector(cohort.state(0), "all").numel()
    runs = [Run(
        setting_key=setting.cache_key(), seed=seed, init_seed=seed, data_seed=seed, weights=weights[s],
        eval_probs=probs_t[s], eval_labels=data.test.y.cpu(), final_logits=test_logits[s],
        window=torch.stack([w[s] for w in window]) if window else torch.empty(0, n_window),
        train_loss=loss_t[s], train_acc=acc_t[s],
        meta={"setting": setting.name, "device": str(device), "torch_threads": torch.get_num_threads(),
              "cohort": seeds, "engine": engine, "total_seconds": total / n_seeds, "cohort_seconds": total},
    ) for s, seed in enumerate(seeds)]
    if progress is not None:
        accs = ", ".join(f"{r.eval_acc[-1].item():.3f}" for r in runs)
        progress(f"{setting.name} seeds {seeds[0]}-{seeds[-1]}: {recipe.epochs} epochs in {total:.1f}s on {device} "
                 f"as one cohort ({engine}), test acc {accs}")
    return runs
