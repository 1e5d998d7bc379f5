"""`textkd run` end to end on tiny offline models: every stage, the report, skipping finished stages on a re-run.

Most tests share one run (a module fixture: 1 teacher, 4 students, their exports and benchmarks; ~3 s idle).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import textkd.api
from textkd import pipeline
from textkd.cli import app
from textkd.errors import ConfigError

TRAIN = {"epochs": 2, "batch_size": 8, "lr": 1e-3, "patience": 0, "progress": False, "device": "cpu", "seed": 3}


def _write_csv(path: Path, texts: list[str], labels: list[str]) -> str:
    lines = ["text,label"] + [f"{t},{label}" for t, label in zip(texts, labels, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _recipe(folder: Path, tiny_bert_dir: Path, tiny_texts, tiny_labels, tiny_label_names) -> Path:
    names = [tiny_label_names[i] for i in tiny_labels]
    splits = {"train": range(24), "validation": range(24, 32), "test": range(32, 40)}
    files = {
        split: _write_csv(folder / f"{split}.csv", [tiny_texts[i] for i in rows], [names[i] for i in rows])
        for split, rows in splits.items()
    }
    recipe = {
        "name": "tiny",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "max_len": 32, **files},
        "teacher": {"backbone": str(tiny_bert_dir), "train": TRAIN},
        "student": {"train": TRAIN},
        "run": {
            "students": ["bert-tiny-2l-128", "bilstm"],
            "methods": ["none", "soft"],
            "bench_runs": 2,
            "bench_warmup": 1,
            "bench_texts": 8,
            "bench_backends": ["torch", "onnx-int8"],
            "student_overrides": {
                "bert-tiny-2l-128": {"num_layers": 2, "hidden_size": 32},
                "bilstm": {"tokenizer": "wordpiece", "num_layers": 1, "hidden_size": 16, "train.epochs": 1},
            },
        },
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def _must_not_run(*args, **kwargs):
    raise AssertionError("a finished stage ran again")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_bert_dir, tiny_texts, tiny_labels, tiny_label_names) -> tuple[Path, Path]:
    """One complete pipeline run (module scope: it trains 1 teacher and 4 students); returns (recipe, run dir)."""
    folder = tmp_path_factory.mktemp("pipeline")
    recipe = _recipe(folder, tiny_bert_dir, tiny_texts, tiny_labels, tiny_label_names)
    return recipe, pipeline.run(pipeline.load_run_config(recipe))


def test_run_writes_every_model_and_the_report(finished_run):
    _, run_dir = finished_run
    assert run_dir.name == "tiny"
    for name in ("bert-tiny-2l-128-none", "bert-tiny-2l-128-soft", "bilstm-none", "bilstm-soft"):
        assert (run_dir / "students" / name / "eval_test.json").is_file()
        assert (run_dir / "students" / name / "bench.json").is_file()
        assert (run_dir / "students" / name / "onnx" / "model.int8.onnx").is_file()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["teacher"]["accuracy"] is not None and len(results["students"]) == 4
    soft = next(r for r in results["students"] if r["name"] == "bilstm / soft")
    assert soft["kd_gain"] is not None and soft["hyperparameters"]["epochs"] == 1  # per-student override
    assert soft["speedup"] > 0 and soft["compression"] > 0 and soft["throughput_per_s"] > 0
    assert set(soft["latency_p50_ms_by_backend"]) == {"torch", "onnx-int8"}
    assert soft["export"]["max_abs_diff"] < 1e-3 and results["teacher"]["export"] is not None
    card = (run_dir / "students" / "bilstm-soft" / "README.md").read_text(encoding="utf-8")  # after the bench
    teacher_p50 = results["teacher"]["latency_p50_ms"]
    assert f"| CPU latency p50, batch 1, 1 thread (ms) | {soft['latency_p50_ms']:.2f} | {teacher_p50:.2f} |" in card
    assert (run_dir / "report.md").is_file() and (run_dir / "report.html").is_file()


def test_second_run_skips_finished_stages(finished_run, monkeypatch):
    recipe, run_dir = finished_run
    monkeypatch.setattr(textkd.api, "train_teacher", _must_not_run)
    monkeypatch.setattr(textkd.api, "distill", _must_not_run)
    monkeypatch.setattr("textkd.evaluation.bench.bench", _must_not_run)
    monkeypatch.setattr("textkd.export.onnx.export_onnx", _must_not_run)
    (run_dir / "report.html").unlink()
    result = CliRunner().invoke(app, ["run", str(recipe)])  # the CLI path: recipe from the extra words
    assert result.exit_code == 0, result.output
    assert "stages already complete: skipped" in result.output and str(run_dir / "report.html") in result.output
    assert (run_dir / "report.html").is_file()


@pytest.mark.parametrize("evaluated", [False, True], ids=["first-run", "rerun-of-a-finished-folder"])
def test_interrupted_stage_resumes_from_its_checkpoint(finished_run, tmp_path, monkeypatch, evaluated):
    recipe, run_dir = finished_run
    shutil.copytree(run_dir, tmp_path / "tiny")
    student = tmp_path / "tiny" / "students" / "bilstm-soft"
    evaluation = (student / "eval_test.json").read_text()
    if not evaluated:  # killed during its first training, after an epoch's checkpoint
        (student / "eval_test.json").unlink()
    # evaluated: a later rerun into the finished folder was killed; its checkpoint must not be taken for done
    (student / "checkpoint").mkdir()
    (student / "checkpoint" / "state.json").write_text("{}")
    calls = []

    def distill(cfg, teacher_dir, output_dir, *, methods, resume, splits):
        calls.append((cfg.student.preset, methods, resume, Path(output_dir)))
        (student / "eval_test.json").write_text(evaluation)

    monkeypatch.setattr(textkd.api, "train_teacher", _must_not_run)
    monkeypatch.setattr(textkd.api, "distill", distill)
    pipeline.run(pipeline.load_run_config(recipe, {"output_dir": str(tmp_path)}))
    assert calls == [("bilstm", ["soft"], True, student.parent)]


def test_changed_recipe_refuses_to_reuse_a_model(finished_run, tmp_path, monkeypatch):
    recipe, run_dir = finished_run
    monkeypatch.setattr(textkd.api, "distill", _must_not_run)
    cfg = pipeline.load_run_config(recipe, {"student.train.lr": "0.5", "output_dir": str(tmp_path)})
    shutil.copytree(run_dir, tmp_path / "tiny")
    with pytest.raises(ConfigError, match=r"different config \(student.train.lr: 0.001 -> 0.5"):
        pipeline.run(cfg)


def test_reused_teacher_is_remembered(finished_run, tmp_path, monkeypatch):
    recipe, run_dir = finished_run
    monkeypatch.setattr(textkd.api, "train_teacher", _must_not_run)
    overrides = {
        "output_dir": str(tmp_path),
        "run.students": "bert-tiny-2l-128",
        "run.methods": "none",
        "run.bench": "false",
        "run.export": "false",
        "teacher.train.lr": "0.5",
    }  # not this teacher's
    reused = pipeline.run(pipeline.load_run_config(recipe, overrides), teacher_dir=run_dir / "teacher", name="reuse")
    manifest = json.loads((reused / "run.json").read_text())
    assert manifest["teacher_dir"] == str((run_dir / "teacher").resolve()) and not (reused / "teacher").exists()
    monkeypatch.setattr(textkd.api, "distill", _must_not_run)
    pipeline.run(pipeline.load_run_config(recipe, overrides), name="reuse")  # the manifest names the teacher
    results = json.loads((reused / "results.json").read_text())
    assert results["teacher"]["accuracy"] == json.loads((run_dir / "results.json").read_text())["teacher"]["accuracy"]


def test_report_command_rebuilds_from_files(finished_run):
    _, run_dir = finished_run
    for name in ("results.json", "report.md", "report.html"):
        (run_dir / name).unlink()
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output
    assert json.loads((run_dir / "results.json").read_text())["name"] == "tiny"


def test_run_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown method 'sfot'"):
        pipeline.run(pipeline.load_run_config(overrides={"run.methods": "none,sfot"}))
    with pytest.raises(ConfigError, match="'bilstn', which is not a student preset"):
        pipeline.run(pipeline.load_run_config(overrides={"run.student_overrides": {"bilstn": {"train.lr": 1}}}))
    with pytest.raises(ConfigError, match="unknown backend 'onnx-int4'"):
        pipeline.run(pipeline.load_run_config(overrides={"run.bench_backends": "torch,onnx-int4"}))
    with pytest.raises(ConfigError, match="run.bench_runs must be >= 1, got 0"):  # not after training
        pipeline.run(pipeline.load_run_config(overrides={"run.bench_runs": 0}))
    with pytest.raises(ConfigError, match="run.bench_warmup must be >= 0, got -1"):
        pipeline.run(pipeline.load_run_config(overrides={"run.bench_warmup": -1}))
    with pytest.raises(ConfigError, match="run.stduents"):
        pipeline.load_run_config(overrides={"run.stduents": "bilstm"})
    missing = tmp_path / "nowhere"
    with pytest.raises(textkd.ModelLoadError, match="not a trained textkd model") as caught:
        pipeline.run(pipeline.load_run_config(overrides={"output_dir": str(tmp_path)}), teacher_dir=missing)
    assert "textkd distill --teacher" in caught.value.hint
