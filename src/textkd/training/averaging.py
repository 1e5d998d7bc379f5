"""An exponential moving average of a model's weights (Polyak averaging), evaluated and saved in its place.

Small students trained from random initialisation on a few thousand rows change their validation predictions
by a point or more from one epoch to the next, even late in the schedule. The average of the weights over
the last few hundred steps is a smoother model, sometimes a better one (Polyak & Juditsky 1992; the
`ModelEma` of timm; on banking77 it helped some students and not others, see benchmarks/README.md).
With `train.ema_decay > 0` the trainer keeps the average next to the trained weights,
evaluates the average after every epoch, and saves it when it is the best so far; training continues from the
raw weights.

Example:
    >>> model = torch.nn.Linear(2, 1)
    >>> average = WeightAverage(model, decay=0.9)
    >>> with torch.no_grad():
    ...     _ = model.weight.add_(1.0)
    >>> average.update(model, step=100)  # decay min(0.9, 101 / 110) = 0.9: the average moves 10% of the way
    >>> bool(torch.allclose(average.shadow["weight"], model.weight - 0.9))
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

AVERAGE_FILE = "average.safetensors"


class WeightAverage:
    """The moving average of every floating-point parameter and buffer of `model`.

    The decay warms up as min(decay, (1 + step) / (10 + step)) (timm's `ModelEma` warm-up), so the early
    average is not dominated by the random initial weights.

    Args:
        model: the trained module (not a DDP wrapper); its `state_dict` keys name the averaged tensors.
        decay: weight of the old average per optimiser step, in (0, 1); 0.999 averages over ~1,000 steps.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = {
            name: tensor.detach().clone() for name, tensor in model.state_dict().items() if tensor.is_floating_point()
        }

    def decay_at(self, step: int) -> float:
        """The decay used by the update after optimiser step `step` (0-based)."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """Move the average towards `model`'s current weights: avg += (1 - decay) * (weights - avg)."""
        weight = 1.0 - self.decay_at(step)
        current = model.state_dict()
        # One multi-tensor call (as torch.optim.swa_utils does): one fused kernel per step on a GPU instead of
        # one per tensor; element-wise the same lerp.
        torch._foreach_lerp_(list(self.shadow.values()), [current[name] for name in self.shadow], weight)

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """Inside the block `model` holds the averaged weights; its own weights come back afterwards."""
        current = model.state_dict()
        saved = {name: current[name].detach().clone() for name in self.shadow}
        with torch.no_grad():
            for name, average in self.shadow.items():
                current[name].copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, tensor in saved.items():
                    current[name].copy_(tensor)

    def save(self, folder: str | Path) -> None:
        """Write the average into a checkpoint folder (resuming a run restores it)."""
        tensors = {name: tensor.detach().contiguous().cpu().clone() for name, tensor in self.shadow.items()}
        save_file(tensors, str(Path(folder) / AVERAGE_FILE))

    def load(self, folder: str | Path) -> bool:
        """Restore the average saved in `folder`; False when the folder holds none."""
        path = Path(folder) / AVERAGE_FILE
        if not path.is_file():
            return False
        saved = load_file(str(path))
        missing = set(self.shadow) - set(saved)
        if missing:
            raise ValueError(f"{path} lacks {len(missing)} averaged tensors, e.g. {sorted(missing)[0]!r}")
        for name, average in self.shadow.items():
            average.copy_(saved[name].to(average.device, average.dtype))
        return True
