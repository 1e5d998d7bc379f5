"""A grid over several seeds: each seed is a plain grid, and the summary's figures are those runs' figures."""

from __future__ import annotations

import json
import statistics

import pytest
from typer.testing import CliRunner

import textkd
from textkd.cli import app
from textkd.config import Config, DataConfig, StudentConfig, TrainConfig
from textkd.errors import ConfigError
from textkd.models.io import save_model
from textkd.seeds import parse_seeds, summarise_seeds


@pytest.fixture(scope="module")
def teacher_dir(tiny_teacher, tiny_tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher")
    save_model(tiny_teacher, tiny_tokenizer, path, extra={"kind": "teacher"})
    return path


def _config(seed: int = 0) -> Config:
    train = TrainConfig(epochs=1, batch_size=8, lr=1e-3, patience=0, progress=False, device="cpu", seed=seed)
    student = StudentConfig(preset="bilstm", num_layers=1, hidden_size=8, train=train)
    return Config(data=DataConfig(max_len=32), student=student)


def _figures(results) -> list[tuple]:
    return [(r.method, r.test_metrics["accuracy"], r.test_metrics["confusion_matrix"]) for r in results]


def test_each_seed_is_the_plain_grid_at_that_seed_and_the_summary_holds_its_figures(teacher_dir, tiny_splits, tmp_path):
    out = textkd.distill_seeds(
        _config(), teacher_dir, tmp_path, seeds="5,6", methods=["none", "soft"], splits=tiny_splits
    )
    assert list(out.results) == [5, 6] and out.path == tmp_path / "seeds_bilstm.json"
    single = textkd.distill(
        _config(seed=6), teacher_dir, tmp_path / "alone", methods=["none", "soft"], splits=tiny_splits
    )
    assert _figures(out.results[6]) == _figures(single)  # seed 6 here is the grid trained at seed 6 alone
    assert json.loads((tmp_path / "seed6" / "comparison_bilstm.json").read_text())["shared"]["seed"] == 6
    saved = json.loads(out.path.read_text())
    accuracy = {seed: {r.method: r.test_metrics["accuracy"] for r in rows} for seed, rows in out.results.items()}
    soft = saved["methods"]["soft"]["accuracy"]
    assert soft["mean"] == pytest.approx(statistics.fmean(accuracy[s]["soft"] for s in (5, 6)), abs=1e-6)
    assert soft["std"] == pytest.approx(statistics.stdev(accuracy[s]["soft"] for s in (5, 6)), abs=1e-6)
    gains = saved["gain_over_none"]["soft"]["accuracy"]["per_seed"]
    assert gains == {str(s): pytest.approx(accuracy[s]["soft"] - accuracy[s]["none"], abs=1e-6) for s in (5, 6)}
    assert saved["seeds"] == [5, 6] and "none" not in saved["gain_over_none"]


def test_summary_without_none_has_no_gain_and_one_seed_no_spread():
    summary = summarise_seeds({1: {"soft": {"accuracy": 0.9, "macro_f1": 0.8}}}, "bilstm")
    assert summary["gain_over_none"] == {}
    spread = {"mean": 0.9, "std": None, "min": 0.9, "max": 0.9, "per_seed": {1: 0.9}}
    assert summary["methods"]["soft"]["accuracy"] == spread


@pytest.mark.parametrize(
    ("text", "message"),
    [("42,x", "whole numbers separated by commas"), (" , ", "no seeds given"), ("1,2,1", "listed twice")],
)
def test_bad_seeds_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_seeds(text)


def test_cli_seeds_prints_the_spread_and_the_gain(teacher_dir, tiny_dataset, tmp_path):
    pairs = zip(tiny_dataset.texts, tiny_dataset.labels, strict=True)
    rows = "text,label\n" + "".join(f'"{t}",{tiny_dataset.label_names[y]}\n' for t, y in pairs)
    (tmp_path / "train.csv").write_text(rows, encoding="utf-8")
    data = ["--data", "files", "--data.train", tmp_path / "train.csv", "--data.test", tmp_path / "train.csv"]
    fast = ["--train.epochs", "1", "--train.progress", "false", "--train.device", "cpu", "--data.max_len", "32"]
    args = ["distill", "--teacher", teacher_dir, "--student", "bilstm", "--compare", "none,soft", "--seeds", "1,2"]
    result = CliRunner().invoke(app, [str(a) for a in [*args, "-o", tmp_path / "grid", *data, *fast]])
    assert result.exit_code == 0, result.output
    assert "bilstm over 2 seeds (1, 2)" in result.output and "bilstm / soft / seed 2" in result.output
    summary = json.loads((tmp_path / "grid" / "seeds_bilstm.json").read_text())
    assert f"{summary['methods']['soft']['accuracy']['mean'] * 100:.2f}" in result.output
    assert f"{summary['gain_over_none']['soft']['accuracy']['seeds_above_zero']} of 2" in result.output
    bad = CliRunner().invoke(app, [str(a) for a in [*args[:-1], "3,3", "-o", tmp_path / "g2", *data, *fast]])
    assert bad.exit_code == 2 and "listed twice" in bad.output
