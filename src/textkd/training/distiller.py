"""Knowledge distillation = the training loop with another `compute_loss`.

The teacher is just a field. Its logits (and pooled vectors) come from the on-disk cache by row index;
it runs online only where the cache cannot serve (layer-mapped hidden states and attention maps for
TinyBERT-style `soft+hidden`). The teacher is frozen: no gradients, eval mode, never in the optimiser.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from textkd.data.batching import STUDENT
from textkd.losses.composite import LossOutput, WeightedSumLoss
from textkd.losses.functional import layer_map
from textkd.losses.schedules import Schedule, applicable_schedules
from textkd.training.cache import TeacherOutputs
from textkd.training.trainer import Trainer


class Distiller(Trainer):
    """Trains a student on a named weighted sum of KD losses (see `textkd.losses.build_loss`).

    Args:
        teacher: the fine-tuned teacher; frozen here.
        loss: the composed objective; its non-zero terms decide which teacher outputs are needed.
        teacher_outputs: cached teacher outputs over the training rows (None: run the teacher online).
        teacher_prefix: the batch stream tokenised for the teacher ("" when it shares the tokenizer).
        student_pooled_dim, teacher_pooled_dim: widths for the learned pooled-vector projection.
        schedules: per-step schedules of "temperature", "alpha" (the KD weight; CE gets 1 - alpha) and
            "hidden_weight" (see `textkd.losses.schedules`); None keeps the loss's fixed values.
        **kwargs: passed to `Trainer`.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        config,
        output_dir,
        *,
        teacher: nn.Module | None,
        loss: WeightedSumLoss,
        teacher_outputs: TeacherOutputs | None = None,
        teacher_prefix: str = STUDENT,
        student_pooled_dim: int | None = None,
        teacher_pooled_dim: int | None = None,
        schedules: dict[str, Schedule] | None = None,
        **kwargs: Any,
    ) -> None:
        self.loss = loss
        self.teacher = teacher
        self.teacher_prefix = teacher_prefix
        self.cached = teacher_outputs
        self.schedules = applicable_schedules(schedules or {}, loss.terms)
        self.schedule_values: dict[str, float] = {}
        # A term whose weight starts at 0 but is scheduled to rise still needs its inputs.
        scheduled = {"kd", "ce"} if "alpha" in self.schedules else set()
        scheduled |= {"hidden"} if "hidden_weight" in self.schedules else set()
        active = {name for name, weight in loss.weights.items() if weight or name in scheduled}
        self.needs_teacher = bool(active - {"ce"})
        self.needs_pooled = "hidden" in active
        self.needs_layers = "layer" in active
        self.needs_attentions = "attention" in active
        extras = nn.ModuleDict()
        if self.needs_pooled:
            extras["pooled_proj"] = nn.Linear(student_pooled_dim, teacher_pooled_dim)  # (B, Hs) -> (B, Ht)
        if self.needs_layers:
            student_width, teacher_width = model.hidden_size, teacher.hidden_size
            extras["hidden_proj"] = nn.Linear(student_width, teacher_width)  # TinyBERT's W_h, shared
        super().__init__(model, tokenizer, config, output_dir, extras=extras, **kwargs)
        if teacher is not None:
            teacher.eval().requires_grad_(False)
        self._device_cache: dict[str, torch.Tensor] = {}

    def on_train_start(self) -> None:
        device = self.accelerator.device
        if self.teacher is not None:
            self.teacher.to(device)
        if self.cached is not None and device.type != "cpu":  # on the CPU, rows are read from the memmap
            # np.array copies the read-only memmap into writable memory (torch warns on read-only arrays).
            self._device_cache["logits"] = torch.from_numpy(np.array(self.cached.logits)).to(device)
            if self.cached.pooled is not None:
                self._device_cache["pooled"] = torch.from_numpy(np.array(self.cached.pooled)).to(device)

    def on_step(self, step: int, total_steps: int) -> None:
        """Set this step's scheduled temperature and weights on the loss (T^2 follows T in `kd_kl_div`)."""
        if not self.schedules:
            return
        values = {name: schedule.value(step, total_steps) for name, schedule in self.schedules.items()}
        if "temperature" in values:
            self.loss.set_param("kd", "temperature", values["temperature"])
        if "alpha" in values:
            self.loss.set_weight("kd", values["alpha"])
            self.loss.set_weight("ce", 1.0 - values["alpha"])
        if "hidden_weight" in values:
            self.loss.set_weight("hidden", values["hidden_weight"])
        self.schedule_values = values

    def epoch_log(self) -> dict[str, Any]:
        """The scheduled values at the epoch's last step, logged next to the loss components."""
        return dict(self.schedule_values)

    def compute_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        student = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=self.needs_layers or None,
            output_attentions=self.needs_attentions or None,
        )
        inputs: dict[str, Any] = {
            "student_logits": student.logits,
            "labels": batch["labels"],
            "label_count": batch.get("label_count"),
            "class_weights": self.class_weights,
            "attention_mask": batch["attention_mask"],
        }
        if not self.needs_teacher:
            return self.loss(**inputs)
        inputs.update(self._teacher_inputs(batch))
        if self.needs_pooled:
            inputs["student_pooled"] = self.extras["pooled_proj"](student.pooled)
        if self.needs_layers:
            inputs["student_hidden_states"] = [self.extras["hidden_proj"](h) for h in student.hidden_states]
        if self.needs_attentions:
            inputs["student_attentions"] = list(student.attentions)
        return self.loss(**inputs)

    def _teacher_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        online = self.cached is None or self.needs_layers or self.needs_attentions
        if not online:
            out = {"teacher_logits": self._cached_rows("logits", batch["index"])}
            if self.needs_pooled:
                out["teacher_pooled"] = self._cached_rows("pooled", batch["index"])
            return out
        return self._run_teacher(batch)

    def _cached_rows(self, name: str, index: torch.Tensor) -> torch.Tensor:
        if name in self._device_cache:
            return self._device_cache[name][index]
        rows = np.asarray(getattr(self.cached, name)[index.cpu().numpy()])
        return torch.from_numpy(rows).to(index.device)

    @torch.no_grad()
    def _run_teacher(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        prefix = self.teacher_prefix
        out = self.teacher(
            input_ids=batch[f"{prefix}input_ids"],
            attention_mask=batch[f"{prefix}attention_mask"],
            output_hidden_states=self.needs_layers or None,
            output_attentions=self.needs_attentions or None,
        )
        result: dict[str, Any] = {"teacher_logits": out.logits.float(), "teacher_pooled": out.pooled}
        student_layers = self.model.num_layers if self.needs_layers or self.needs_attentions else 0
        if self.needs_layers:
            mapping = layer_map(student_layers, len(out.hidden_states) - 1)
            result["teacher_hidden_states"] = [out.hidden_states[i] for i in mapping]
        if self.needs_attentions:
            mapping = layer_map(student_layers, len(out.attentions))
            # attentions have no embedding entry: student layer m (1-based) reads teacher layer mapping[m] - 1
            result["teacher_attentions"] = [out.attentions[i - 1] for i in mapping[1:]]
        return result
