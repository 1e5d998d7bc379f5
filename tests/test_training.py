"""The training loop: learning, selection, checkpoints and exact resumption on tiny offline models."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from textkd.config import TrainConfig
from textkd.data.batching import ModelInputs, epoch_batches
from textkd.data.tokenize import encode
from textkd.errors import ConfigError
from textkd.models.classifier import TextkdClassifier
from textkd.training.trainer import Trainer
from textkd.utils import read_jsonl


def _inputs(dataset, tokenizer) -> ModelInputs:
    return ModelInputs({"": encode(dataset.texts, tokenizer, 32)}, dataset.labels)


def _cfg(**kw) -> TrainConfig:
    base = {
        "epochs": 4,
        "batch_size": 8,
        "lr": 3e-3,
        "warmup_ratio": 0.0,
        "patience": 0,
        "progress": False,
        "device": "cpu",
        "seed": 7,
    }
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_teacher_overfits_16_examples(tiny_teacher, tiny_tokenizer, tiny_dataset, tmp_path):
    sixteen = tiny_dataset.subset(range(16))
    model = copy.deepcopy(tiny_teacher)
    trainer = Trainer(
        model, tiny_tokenizer, _cfg(epochs=40, lr=5e-3, batch_size=4), tmp_path, label_names=tiny_dataset.label_names
    )
    inputs = _inputs(sixteen, tiny_tokenizer)
    trainer.fit(inputs, inputs)
    metrics = trainer.evaluate_inputs(inputs)
    assert metrics["accuracy"] == 1.0


def test_best_model_and_metrics_file(tiny_teacher, tiny_tokenizer, tiny_splits, tmp_path):
    trainer = Trainer(
        copy.deepcopy(tiny_teacher), tiny_tokenizer, _cfg(), tmp_path, label_names=tiny_splits.label_names
    )
    result = trainer.fit(_inputs(tiny_splits.train, tiny_tokenizer), _inputs(tiny_splits.validation, tiny_tokenizer))
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert {"train_loss", "train_ce", "val_accuracy", "val_macro_f1", "lr"} <= set(rows[0])
    best = max(rows, key=lambda r: r["val_macro_f1"])
    assert result.best_epoch == best["epoch"]
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "checkpoint" / "state.json").is_file()


class _Crash(Exception):
    pass


class _CrashingTrainer(Trainer):
    """Dies right after the checkpoint of epoch `crash_after` is written (a crash mid-run)."""

    crash_after = 2

    def _end_epoch(self, *args, **kwargs):
        super()._end_epoch(*args, **kwargs)
        if args[3].epoch == self.crash_after:
            raise _Crash


def test_resume_matches_uninterrupted_run(tiny_teacher, tiny_tokenizer, tiny_splits, tmp_path):
    train, val = _inputs(tiny_splits.train, tiny_tokenizer), _inputs(tiny_splits.validation, tiny_tokenizer)
    names = tiny_splits.label_names
    Trainer(copy.deepcopy(tiny_teacher), tiny_tokenizer, _cfg(), tmp_path / "a", label_names=names).fit(train, val)

    with pytest.raises(_Crash):
        _CrashingTrainer(copy.deepcopy(tiny_teacher), tiny_tokenizer, _cfg(), tmp_path / "b", label_names=names).fit(
            train, val
        )
    torch.manual_seed(12345)  # the resumed run must not depend on the RNG state it starts in
    fresh = copy.deepcopy(tiny_teacher)
    Trainer(fresh, tiny_tokenizer, _cfg(), tmp_path / "b", label_names=names).fit(train, val, resume=True)

    a = load_file(tmp_path / "a" / "checkpoint" / "model.safetensors")
    b = load_file(tmp_path / "b" / "checkpoint" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    rows_a, rows_b = read_jsonl(tmp_path / "a" / "metrics.jsonl"), read_jsonl(tmp_path / "b" / "metrics.jsonl")
    timing = {"wall_s", "train_s"}
    strip = [{k: v for k, v in r.items() if k not in timing} for r in rows_a]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in rows_b]


def test_early_stopping_stops(tiny_teacher, tiny_tokenizer, tiny_splits, tmp_path):
    # lr 1e-12 moves no float32 weight (an lr of 0 is refused as a config no run can use)
    trainer = Trainer(
        copy.deepcopy(tiny_teacher),
        tiny_tokenizer,
        _cfg(epochs=30, lr=1e-12, patience=2),
        tmp_path,
        label_names=tiny_splits.label_names,
    )
    result = trainer.fit(_inputs(tiny_splits.train, tiny_tokenizer), _inputs(tiny_splits.validation, tiny_tokenizer))
    assert result.epochs_run == 3  # epoch 1 is best, two more without improvement


def test_epoch_batches_deterministic_and_complete():
    lengths = np.random.default_rng(0).integers(1, 60, size=1000)
    a = epoch_batches(lengths, 32, seed=1, epoch=3)
    b = epoch_batches(lengths, 32, seed=1, epoch=3)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert sorted(np.concatenate(a).tolist()) == list(range(1000))
    assert not all((x == y).all() for x, y in zip(a, epoch_batches(lengths, 32, seed=1, epoch=4), strict=True))
    # bucketing: far less padding than random batches
    padded = sum(len(x) * lengths[x].max() for x in a)
    unbucketed = sum(len(x) * lengths[x].max() for x in epoch_batches(lengths, 32, seed=1, epoch=3, bucket=False))
    assert padded < 0.75 * unbucketed


@pytest.mark.slow
def test_compiled_training_matches_eager(tiny_splits, tiny_tokenizer, tmp_path):
    """train.compile (torch.compile) and train.pad_multiple change speed, not the result."""
    from textkd.models.backbones import scratch_bert_config

    inputs = ModelInputs({"": encode(tiny_splits.train.texts, tiny_tokenizer, 32)}, tiny_splits.train.labels)
    val = ModelInputs({"": encode(tiny_splits.validation.texts, tiny_tokenizer, 32)}, tiny_splits.validation.labels)
    weights = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        encoder = {
            **scratch_bert_config(tiny_tokenizer, 1, 32, 2, 64),
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
        }
        model = TextkdClassifier.from_scratch(encoder, 4, tiny_splits.label_names, dropout=0.0)
        cfg = TrainConfig(
            epochs=1, batch_size=8, lr=1e-3, progress=False, device="cpu", compile=compiled, pad_multiple=8
        )
        Trainer(model, tiny_tokenizer, cfg, tmp_path / str(compiled)).fit(inputs, val)
        weights[compiled] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for key, value in weights[False].items():
        torch.testing.assert_close(weights[True][key], value, rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="train.pad_multiple must be >= 1, got 0"):
        Trainer(model, tiny_tokenizer, TrainConfig(pad_multiple=0, device="cpu"), tmp_path / "x").fit(inputs, val)


def test_adamw_is_fused_on_the_cpu_and_decays_only_matrices(tiny_teacher):
    from textkd.training.trainer import _make_optimizer

    optimizer = _make_optimizer(tiny_teacher, _cfg(weight_decay=0.05), torch.device("cpu"))
    assert optimizer.defaults["fused"] is True  # 10x faster steps than the per-tensor loop on a CPU
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    trainable = sum(p.requires_grad for p in tiny_teacher.parameters())
    assert len(decay["params"]) + len(no_decay["params"]) == trainable


def test_weight_average_matches_a_float64_reference_and_restores_the_weights():
    from textkd.training.averaging import WeightAverage

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    average = WeightAverage(model, decay=0.99)
    reference = {k: v.double().clone() for k, v in model.state_dict().items()}
    for step in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        average.update(model, step)
        d = min(0.99, (1 + step) / (10 + step))  # warm-up: early steps move the average further
        reference = {k: d * reference[k] + (1 - d) * v.double() for k, v in model.state_dict().items()}
    for key, value in reference.items():
        torch.testing.assert_close(average.shadow[key].double(), value, rtol=1e-5, atol=1e-6)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    with average.applied(model):
        torch.testing.assert_close(model[0].weight, average.shadow["0.weight"])
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, trained[key], rtol=0, atol=0)  # the trained weights come back
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\), got 1.0"):
        WeightAverage(model, decay=1.0)


def test_ema_run_saves_the_average_and_resumes_exactly(tiny_teacher, tiny_tokenizer, tiny_splits, tmp_path):
    from textkd.models.io import load_model

    train, val = _inputs(tiny_splits.train, tiny_tokenizer), _inputs(tiny_splits.validation, tiny_tokenizer)
    names = tiny_splits.label_names
    cfg = _cfg(ema_decay=0.9)
    trainer = Trainer(copy.deepcopy(tiny_teacher), tiny_tokenizer, cfg, tmp_path / "a", label_names=names)
    result = trainer.fit(train, val)
    averaged = load_file(tmp_path / "a" / "checkpoint" / "average.safetensors")
    raw = load_file(tmp_path / "a" / "checkpoint" / "model.safetensors")
    assert not torch.equal(
        averaged["encoder.embeddings.word_embeddings.weight"], raw["model.encoder.embeddings.word_embeddings.weight"]
    )  # the average is not the weights
    val_f1 = [r["val_macro_f1"] for r in read_jsonl(tmp_path / "a" / "metrics.jsonl")]
    with trainer.averaged_weights():  # the last row's figure is the average's, not the trained weights'
        assert trainer.evaluate_inputs(val)["macro_f1"] == pytest.approx(val_f1[-1])
    saved, _ = load_model(tmp_path / "a")  # the saved model is the best epoch's average
    trainer.model = saved
    assert trainer.evaluate_inputs(val)["macro_f1"] == pytest.approx(val_f1[result.best_epoch - 1])
    if result.best_epoch == cfg.epochs:
        for key, value in saved.state_dict().items():
            torch.testing.assert_close(value, averaged[key], rtol=0, atol=0)

    with pytest.raises(_Crash):
        _CrashingTrainer(copy.deepcopy(tiny_teacher), tiny_tokenizer, cfg, tmp_path / "b", label_names=names).fit(
            train, val
        )
    Trainer(copy.deepcopy(tiny_teacher), tiny_tokenizer, cfg, tmp_path / "b", label_names=names).fit(
        train, val, resume=True
    )
    resumed = load_file(tmp_path / "b" / "checkpoint" / "average.safetensors")
    for key in averaged:
        torch.testing.assert_close(resumed[key], averaged[key], rtol=0, atol=0)
    assert [r["val_macro_f1"] for r in read_jsonl(tmp_path / "b" / "metrics.jsonl")] == val_f1

    with pytest.raises(ConfigError, match=r"train.ema_decay must be in \[0, 1\)"):
        Trainer(copy.deepcopy(tiny_teacher), tiny_tokenizer, _cfg(ema_decay=1.5), tmp_path / "c").fit(train, val)


@pytest.mark.parametrize("progress", [False, True])
def test_the_loss_is_read_mid_epoch_only_for_a_shown_bar(
    progress, tiny_teacher, tiny_tokenizer, tiny_splits, tmp_path, monkeypatch
):
    """Reading the summed loss syncs the host with the device; with the bar off it happens once per epoch."""
    from textkd.training.progress import TrainProgress

    calls = []
    monkeypatch.setattr(TrainProgress, "update_step", lambda self, step, loss: calls.append(step))
    train = tiny_splits.train
    inputs = ModelInputs({"": encode(list(train.texts) * 3, tiny_tokenizer, 32)}, np.tile(train.labels, 3))
    assert len(inputs) >= 50  # batch size 1: at least two mid-epoch updates when the bar is shown
    trainer = Trainer(
        copy.deepcopy(tiny_teacher),
        tiny_tokenizer,
        _cfg(epochs=1, batch_size=1, progress=progress),
        tmp_path,
        label_names=tiny_splits.label_names,
    )
    trainer.fit(inputs, None)
    assert calls[-1] == len(inputs)
    assert (len(calls) > 1) is progress


def _scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = {path.parent for path in log_dir.rglob("events.out.tfevents.*")}
    out: dict[str, list[tuple[int, float]]] = {}
    for run in runs:
        events = EventAccumulator(str(run)).Reload()
        for tag in events.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
    return out


def test_tensorboard_gets_every_epoch_row_and_the_loss_every_n_steps(
    tiny_teacher, tiny_tokenizer, tiny_splits, tmp_path
):
    pytest.importorskip("tensorboard")
    train, val = _inputs(tiny_splits.train, tiny_tokenizer), _inputs(tiny_splits.validation, tiny_tokenizer)
    cfg = _cfg(epochs=2, report_to=["tensorboard"], log_every=2)
    Trainer(
        copy.deepcopy(tiny_teacher),
        tiny_tokenizer,
        cfg,
        tmp_path,
        label_names=tiny_splits.label_names,
        save_info={"kind": "teacher", "data": {"name": "tiny"}},
    ).fit(train, val)
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    scalars = _scalars(tmp_path / "logs")
    for key in ("val_macro_f1", "train_loss", "lr"):
        assert [step for step, _ in scalars[key]] == [row["step"] for row in rows]
        np.testing.assert_allclose([value for _, value in scalars[key]], [row[key] for row in rows], rtol=1e-6)
    steps_per_epoch = rows[0]["step"]
    assert [step for step, _ in scalars["step/train_loss"]] == list(range(2, 2 * steps_per_epoch + 1, 2))
    assert all(np.isfinite(value) for _, value in scalars["step/lr"])


def test_an_unknown_or_missing_tracker_is_refused(tiny_teacher, tiny_tokenizer, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="train.report_to: unknown tracker 'tensorbord'"):
        Trainer(copy.deepcopy(tiny_teacher), tiny_tokenizer, _cfg(report_to=["tensorbord"]), tmp_path)
    import accelerate.tracking

    monkeypatch.setattr(accelerate.tracking, "get_available_trackers", lambda: [])
    with pytest.raises(ConfigError, match="train.report_to names wandb, which is not installed.*pip install wandb"):
        Trainer(copy.deepcopy(tiny_teacher), tiny_tokenizer, _cfg(report_to=["wandb"]), tmp_path)


def test_balanced_class_weights_come_from_the_gold_labels_and_weight_the_loss(
    tiny_teacher, tiny_tokenizer, tiny_splits, tmp_path
):
    from textkd.losses.functional import balanced_class_weights

    train = tiny_splits.train
    rows = [i for i, y in enumerate(train.labels) if y == 0] + [i for i, y in enumerate(train.labels) if y != 0][:3]
    inputs = _inputs(train.subset(rows), tiny_tokenizer)  # label 0 common, the other three once each
    inputs.labels[-1] = -100  # a teacher-labelled row: no gold label, not counted
    model = copy.deepcopy(tiny_teacher)
    trainer = Trainer(model, tiny_tokenizer, _cfg(epochs=1, class_weights="balanced"), tmp_path)
    trainer.fit(inputs, None)
    gold = inputs.labels[inputs.labels >= 0]
    counts = np.bincount(gold, minlength=4)
    assert counts[0] > 1 and counts[1:].tolist() == [1, 1, 0]
    expected = torch.tensor([len(gold) / (3 * c) if c else 0.0 for c in counts], dtype=torch.float32)
    torch.testing.assert_close(trainer.class_weights, expected)
    torch.testing.assert_close(balanced_class_weights(inputs.labels, 4), expected)
    batch = inputs.batch(np.arange(len(inputs)))
    model.eval()
    loss = trainer.compute_loss(model, batch).total
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    weighted = torch.nn.functional.cross_entropy(logits, batch["labels"], weight=expected, reduction="sum")
    torch.testing.assert_close(loss, weighted / len(gold))  # divided by the labelled rows, not the weights
    unweighted = Trainer(model, tiny_tokenizer, _cfg(), tmp_path / "plain").compute_loss(model, batch).total
    assert not torch.isclose(loss, unweighted)


def test_unknown_class_weights_are_refused(tiny_teacher, tiny_tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="train.class_weights must be one of none, balanced, got 'inverse'"):
        Trainer(tiny_teacher, tiny_tokenizer, _cfg(class_weights="inverse"), tmp_path)
