"""Several processes (`accelerate launch`, `torchrun`): the process state, and running a block main-first."""

from __future__ import annotations

import contextlib
import os

import torch


def several_processes() -> bool:
    """True under `accelerate launch` / `torchrun` with more than one process (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def process_state(device: torch.device | str | None = None):
    """accelerate's `PartialState` when several processes run, else None."""
    if not several_processes():
        return None
    from accelerate import PartialState

    cpu = (device is not None and torch.device(device).type == "cpu") or not torch.cuda.is_available()
    return PartialState(cpu=cpu)


def main_process_first(device: torch.device | str | None = None) -> contextlib.AbstractContextManager:
    """Run the block on the main process first, then on the others (which then find its files).

    The block must not itself wait for all processes (a collective such as `label_corpus`): the processes
    would meet at the wrong barriers.
    """
    state = process_state(device)
    return state.main_process_first() if state is not None else contextlib.nullcontext()
