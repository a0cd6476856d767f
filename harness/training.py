"""Train one run of a setting and return its trajectory.

A :class:`Run` holds, for one seed, the weights at the recipe's saved epochs (epoch 0 is the
initialisation), the flat weights of its subspace-window snapshots, the softmax probabilities on
the evaluation split after every epoch and its logits after the last, the per-epoch training loss
and accuracy, and timings. :func:`train` is the only producer; the run store (``harness.store``)
persists and reloads runs bit for bit.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from harness import data as data_lib
from harness.data import Data
from harness.models import build
from harness.settings import Recipe, Setting
from harness.validation import check_int
from harness.weightspace import weight_vector


class DivergedError(RuntimeError):
    """Training produced a non-finite loss; the run is unusable and is never stored."""


@dataclass(frozen=True)
class Run:
    """One trained trajectory.

    Attributes
    ----------
    setting_key : str
        ``Setting.cache_key()`` of the setting the run belongs to.
    seed, init_seed, data_seed : int
        The run's seed, and the seeds of the initialisation and of the data order / dropout.
    weights : dict[int, dict[str, torch.Tensor]]
        Epoch -> the model's ``state_dict`` at the end of that epoch (CPU, float32), for the
        recipe's saved epochs in increasing order; epoch 0 is the initialisation.
    eval_probs : torch.Tensor, shape (E + 1, N, C), float32
        Softmax outputs on the evaluation split after each epoch 0..E, in eval mode.
    eval_labels : torch.Tensor, shape (N,), int64
    final_logits : torch.Tensor, shape (N, C), float32
        Logits on the evaluation split after the last epoch, in eval mode: the α-trimming
        statistics need the logit gap, which softmax probabilities lose once they saturate.
    window : torch.Tensor, shape (K, D), float32
        The recipe's subspace-window snapshots (:class:`harness.settings.Window`), in training
        order, as flat parameters (``harness.weightspace.weight_vector(state, "all")``: buffers such
        as BatchNorm statistics are not kept); K = 0 when the recipe has no window.
    train_loss, train_acc : torch.Tensor, shape (E,), float64
        Mean training loss and accuracy over each epoch's batches (train mode).
    meta : dict
        JSON-able provenance: device, versions, timings in seconds.
    """

    setting_key: str
    seed: int
    init_seed: int
    data_seed: int
    weights: dict[int, dict[str, torch.Tensor]]
    eval_probs: torch.Tensor
    eval_labels: torch.Tensor
    final_logits: torch.Tensor
    window: torch.Tensor
    train_loss: torch.Tensor
    train_acc: torch.Tensor
    meta: dict = field(default_factory=dict)

    @property
    def epochs(self) -> tuple[int, ...]:
        """Epochs with saved weights, increasing."""
        return tuple(sorted(self.weights))

    @property
    def eval_acc(self) -> torch.Tensor:
        """Accuracy on the evaluation split after each epoch 0..E, shape (E + 1,), float64."""
        return (self.eval_probs.argmax(-1) == self.eval_labels).double().mean(-1)


# ----------------------------------------------------------------------------------------------
# The loop


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} is invalid: CUDA is not available on this machine; use 'cpu'")
    return device


def derive_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for one named random stream of a run ("init", "order", "dropout").

    Separate streams keep, e.g., the dropout masks from reusing the random numbers that drew the
    initial weights when ``init_seed == data_seed``.
    """
    digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def train(
    setting: Setting,
    seed: int,
    *,
    init_seed: int | None = None,
    data_seed: int | None = None,
    device: str | torch.device = "auto",
    data: Data | None = None,
    data_root: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Run:
    """Train one run of ``setting`` and return its trajectory: the per-seed reference loop.

    The run store trains a setting whose ``recipe.cohort`` is above 1 with
    :func:`harness.cohort.train_cohort` instead (its seeds together, other floats); this loop is
    the reference those runs are compared with (tests/test_cohort.py).

    Parameters
    ----------
    setting : Setting
    seed : int
        The run's seed; ``init_seed`` (initial weights) and ``data_seed`` (data order and dropout)
        default to it.
    device : str or torch.device
        "auto" picks CUDA when available.
    data : Data, optional
        Pre-loaded data (moved to ``device``); loaded from ``setting.dataset`` when None.
    data_root : str, optional
        Where CIFAR lives, when ``data`` is None.
    progress : callable, optional
        Receives one line per finished run (time, accuracy) and, for a run that the first epoch
        says will take longer than :data:`PROGRESS_EVERY_S` seconds, a line per epoch with the
        estimated time left.

    Returns
    -------
    Run

    Raises
    ------
    DivergedError
        When an epoch's training loss is NaN or infinite.
    """
    seed = check_int("seed", seed, 0)
    init_seed = check_int("init_seed", seed if init_seed is None else init_seed, 0)
    data_seed = check_int("data_seed", seed if data_seed is None else data_seed, 0)
    device = resolve_device(device)
    data = (data_lib.load(setting.dataset, data_root) if data is None else data).to(device)
    recipe = setting.recipe
    t_start = time.perf_counter()

    # fork_rng: the global RNG drives init and dropout; the caller's RNG state is left untouched.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(derive_seed(init_seed, "init"))
        try:
            model = build(setting.model, data.input_shape, data.num_classes).to(device)
        except ValueError as exc:  # a factory's error must say which setting it belongs to
            raise ValueError(f"setting {setting.name!r}: {exc}") from exc
        torch.manual_seed(derive_seed(data_seed, "dropout"))
        order = torch.Generator().manual_seed(derive_seed(data_seed, "order"))
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)

        saved = set(recipe.saved_epochs)
        weights = {0: _snapshot(model)} if 0 in saved else {}
        probs = [predict_proba(model, data.test.x)]
        train_loss, train_acc = [], []
        eval_seconds = time.perf_counter() - t_start
        n = len(data.train)
        batch_sizes, window_steps = epoch_steps(recipe, n, device)
        window = []
        for epoch in range(1, recipe.epochs + 1):
            snapshot_steps = start_epoch(optimizer, recipe, epoch, window_steps)

            # ---- one epoch over a fresh permutation; the data already lives on the device ----
            model.train()
            perm = torch.randperm(n, generator=order).to(device)
            step_loss, step_logits = [], []
            for step, start in enumerate(range(0, n, recipe.batch_size), start=1):
                idx = perm[start:start + recipe.batch_size]
                logits = model(data.train.x[idx])
                loss = F.cross_entropy(logits, data.train.y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if step in snapshot_steps:
                    window.append(weight_vector(model, "all").float().cpu())
                # Keep references only: one reduction per epoch instead of small ops (and host
                # syncs) every step. A NaN persists to the epoch's mean, so it is still caught.
                step_loss.append(loss.detach())
                step_logits.append(logits.detach())
            mean_loss = (torch.stack(step_loss).double() * batch_sizes).sum().item() / n
            if not math.isfinite(mean_loss):
                raise DivergedError(f"{setting.name} seed={seed}: training loss is {mean_loss} in epoch {epoch} "
                                    f"(lr {recipe.lr_at(epoch):g}); the run is discarded")
            correct = (torch.cat(step_logits).argmax(1) == data.train.y[perm]).sum().item()
            train_loss.append(mean_loss)
            train_acc.append(correct / n)

            # ---- evaluate (eval mode: no dropout) and keep the recipe's checkpoints ----
            t_eval = time.perf_counter()
            test_logits = predict_logits(model, data.test.x)
            probs.append(F.softmax(test_logits, dim=1))
            if epoch in saved:
                weights[epoch] = _snapshot(model)
            eval_seconds += time.perf_counter() - t_eval
            elapsed = time.perf_counter() - t_start
            if epoch == 1:  # a run estimated to take longer than PROGRESS_EVERY_S reports every epoch
                verbose = progress is not None and elapsed * recipe.epochs > PROGRESS_EVERY_S
            if verbose and epoch < recipe.epochs:
                acc = (probs[-1].argmax(1) == data.test.y.cpu()).double().mean().item()
                progress(f"{setting.name} seed={seed} epoch {epoch}/{recipe.epochs}: loss {mean_loss:.3f}, "
                         f"test acc {acc:.3f}, ~{elapsed / epoch * (recipe.epochs - epoch):.0f}s left")

    total = time.perf_counter() - t_start
    run = Run(
        setting_key=setting.cache_key(), seed=seed, init_seed=init_seed, data_seed=data_seed,
        weights=weights, eval_probs=torch.stack(probs), eval_labels=data.test.y.cpu(), final_logits=test_logits,
        window=torch.stack(window) if window else torch.empty(0, weight_vector(model, "all").numel()),
        train_loss=torch.tensor(train_loss, dtype=torch.float64),
        train_acc=torch.tensor(train_acc, dtype=torch.float64),
        meta={"setting": setting.name, "device": str(device), "torch_threads": torch.get_num_threads(),
              "total_seconds": total, "eval_seconds": eval_seconds},
    )
    if progress is not None:
        progress(f"{setting.name} seed={seed}: {recipe.epochs} epochs in {total:.1f}s on {device}, "
                 f"test acc {run.eval_acc[-1].item():.3f}")
    return run


def epoch_steps(recipe: Recipe, n: int, device: torch.device) -> tuple[torch.Tensor, tuple[int, ...]]:
    """An epoch's batch sizes over ``n`` training examples, shape (steps,) float64 on ``device`` (they
    weight the epoch's mean loss), and the steps (1-based) that take the recipe's window snapshots."""
    batch_sizes = torch.tensor([min(recipe.batch_size, n - s) for s in range(0, n, recipe.batch_size)],
                               dtype=torch.float64, device=device)
    return batch_sizes, (() if recipe.window is None else recipe.window.steps(len(batch_sizes)))


def start_epoch(optimizer: torch.optim.Optimizer, recipe: Recipe, epoch: int,
                window_steps: tuple[int, ...]) -> tuple[int, ...]:
    """Set ``epoch``'s learning rate (halved every ``lr_halving_every`` epochs, official) and return
    the steps of this epoch that take window snapshots (none outside the window's epochs)."""
    for group in optimizer.param_groups:
        group["lr"] = recipe.lr_at(epoch)
    return window_steps if epoch in recipe.window_epochs else ()


def final_probs(runs: Sequence[Run]) -> torch.Tensor:
    """The runs' test-split softmax outputs at their last epoch, stacked: shape (S, N, C)."""
    return torch.stack([r.eval_probs[-1] for r in runs])


def seeds_of(runs: Sequence[Run]) -> tuple[int, ...]:
    """The runs' seeds, in order (an Evidence's ``seeds``)."""
    return tuple(r.seed for r in runs)


def model_at(setting: Setting, run: Run, epoch: int) -> torch.nn.Module:
    """The model of ``run`` at a saved ``epoch``, on the CPU, in eval mode."""
    if epoch not in run.weights:
        raise ValueError(f"epoch={epoch} is invalid: run seed={run.seed} keeps the weights of epochs {run.epochs}")
    if run.setting_key != setting.cache_key():
        raise ValueError(f"run seed={run.seed} belongs to setting key {run.setting_key}, not {setting.name}")
    model = build(setting.model, setting.dataset.input_shape, setting.dataset.num_classes)
    model.load_state_dict(run.weights[epoch])
    return model.eval()


PROGRESS_EVERY_S = 10.0  # runs estimated to take longer print a line per epoch
# Evaluation batches. On an accelerator large batches amortise launches; on a CPU batches that fit
# the caches are faster (4,000 32x32 images, 2 threads, channels-last: SmallCNN 0.37 s at 256
# against 0.68 s at 4,096, MediumCNN 3.6 against 4.2 s, ResNet20 4.1 against 6.6 s).
EVAL_BATCH = 4096
CPU_EVAL_BATCH = 256


def inference_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the memory layout that forward passes without gradients run fastest in.

    Image batches (N, C, H, W) go channels-last: on this project's 2-core CPU the same convolutions
    and max-pools then run 2-9x faster (500 32x32 images, one thread: SmallCNN 0.50 -> 0.05-0.10 s,
    MediumCNN 3.9 -> 1.2-2.2 s), and the outputs differ by float rounding only (logits ~1e-6).
    Training keeps the default layout, so the runs it stores do not change.
    """
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def eval_batch_size(model: torch.nn.Module) -> int:
    """:data:`CPU_EVAL_BATCH` for a model on the CPU, else :data:`EVAL_BATCH`."""
    return CPU_EVAL_BATCH if next(model.parameters()).device.type == "cpu" else EVAL_BATCH


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Logits of ``model`` in eval mode.

    Parameters
    ----------
    model : torch.nn.Module
    x : torch.Tensor, shape (N, ...)
    batch_size : int, optional
        Default :func:`eval_batch_size`.

    Returns
    -------
    torch.Tensor, shape (N, C), float32, on the CPU
    """
    batch_size = eval_batch_size(model) if batch_size is None else batch_size
    was_training = model.training
    model.eval()
    x = inference_layout(x)
    out = torch.cat([model(x[i:i + batch_size]).float().cpu() for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def predict_proba(model: torch.nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Softmax outputs of ``model`` in eval mode, shape (N, C), float32, on the CPU (:func:`predict_logits`)."""
    return F.softmax(predict_logits(model, x, batch_size), dim=1)


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
