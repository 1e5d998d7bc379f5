"""CPU benchmark on tiny offline models: every documented field, per backend and thread setting; the CLI."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from rich.table import Table
from typer.testing import CliRunner

from textkd.cli import app
from textkd.errors import ConfigError, ModelLoadError
from textkd.evaluation.bench import bench, render_bench
from textkd.export.onnx import ensure_export
from textkd.models.classifier import label_maps
from textkd.models.io import save_model
from textkd.models.students.bilstm import BiLSTMClassifier, BiLSTMConfig

TINY = {"warmup": 1, "runs": 3, "batch_size": 8, "throughput_texts": 16}


@pytest.fixture(scope="module")
def models(tiny_teacher, tiny_tokenizer, tiny_label_names, tmp_path_factory):
    """A tiny teacher and a tiny BiLSTM student, saved."""
    root = tmp_path_factory.mktemp("bench")
    save_model(tiny_teacher, tiny_tokenizer, root / "teacher", extra={"kind": "teacher"})
    torch.manual_seed(0)
    config = BiLSTMConfig(
        vocab_size=len(tiny_tokenizer),
        embedding_dim=16,
        hidden_size=16,
        num_layers=1,
        **label_maps(4, tiny_label_names),
    )
    save_model(BiLSTMClassifier(config), tiny_tokenizer, root / "bilstm", extra={"kind": "student"})
    return root / "teacher", root / "bilstm"


@pytest.fixture(scope="module")
def result(models, tiny_texts, tmp_path_factory):
    return bench(list(models), texts=tiny_texts, workdir=tmp_path_factory.mktemp("exports"), **TINY)


def test_bench_reports_every_field(result, models):
    assert [m["name"] for m in result["models"]] == ["teacher", "bilstm"]
    for entry in result["models"]:
        assert entry["params"] > 0 and entry["size_mb"] > 0 and entry["drift"] in (True, False)
        assert set(entry["backends"]) == {"torch", "onnx", "onnx-int8"}
        for figures in entry["backends"].values():
            assert figures["size_mb"] > 0
            assert set(figures["threads"]) == {"1", "all"}
            assert figures["threads"]["1"]["threads"] == 1
            for timing in figures["threads"].values():
                assert 0 < timing["p50_ms"] <= timing["p95_ms"] and timing["throughput"] > 0
    teacher = result["models"][0]
    assert teacher["speedup_vs_first"]["torch"] == 1.0
    assert teacher["backends"]["onnx-int8"]["size_mb"] < teacher["backends"]["onnx"]["size_mb"]
    assert result["settings"]["runs"] == 3 and result["machine"]["cpu_count"] >= 1
    assert len(result["results"]) == 2 * 3 * 2  # models x backends x thread settings
    row = result["results"][0]
    assert row["backend"] == "torch" and row["threads"] == 1 and row["batch_size"] == 1
    assert row["p50_ms"] > 0 and row["throughput_per_s"] > 0 and row["throughput_batch_size"] == 8


def test_bench_writes_json_next_to_each_model(result, models):
    for model_dir, entry in zip(models, result["models"], strict=True):
        written = json.loads((model_dir / "bench.json").read_text())
        assert written["models"] == [json.loads(json.dumps(entry))]


def test_render_bench_has_a_row_per_model_and_backend(result):
    table = render_bench(result)
    assert isinstance(table, Table) and table.row_count == 6


def test_bench_restores_torch_threads(models, tiny_texts):
    before = torch.get_num_threads()
    bench([models[1]], texts=tiny_texts, backends=["torch"], threads=[1], **TINY)
    assert torch.get_num_threads() == before


def test_existing_export_is_reused_until_the_weights_change(models, tiny_texts, tmp_path):
    first = ensure_export(models[1], tmp_path / "onnx", parity_texts=tiny_texts[:4])
    stamp = (first / "model.onnx").stat().st_mtime_ns
    assert ensure_export(models[1], tmp_path / "onnx", parity_texts=tiny_texts[:4]) == first
    assert (first / "model.onnx").stat().st_mtime_ns == stamp
    (first / "export.json").write_text(json.dumps({"source_sha256": "other weights"}))
    ensure_export(models[1], tmp_path / "onnx", parity_texts=tiny_texts[:4])
    assert json.loads((first / "export.json").read_text())["source_sha256"] != "other weights"


def test_an_export_folder_is_benchmarked_without_torch(models, tiny_texts, tmp_path):
    export_dir = ensure_export(models[1], tmp_path / "onnx", int8=False, parity_texts=tiny_texts[:4])
    out = bench([export_dir], texts=tiny_texts, backends=["torch", "onnx"], threads=[1], **TINY)
    entry = out["models"][0]
    assert "skipped" in entry["backends"]["torch"] and entry["params"] > 0
    assert entry["backends"]["onnx"]["threads"]["1"]["p50_ms"] > 0
    assert render_bench(out).row_count == 2


def test_bench_rejects_bad_choices(models, tiny_texts, tmp_path):
    with pytest.raises(ModelLoadError, match="no such model directory"):
        bench([tmp_path / "missing"])  # not "does not record its dataset"
    with pytest.raises(ConfigError, match="unknown backends"):
        bench([models[0]], texts=tiny_texts, backends=["tensorrt"])
    with pytest.raises(ConfigError, match="bad thread counts"):
        bench([models[0]], texts=tiny_texts, threads=[0])
    with pytest.raises(ConfigError, match="does not record its dataset"):
        bench([models[0]])


def test_cli_bench_reads_the_models_own_test_set(
    tiny_teacher, tiny_tokenizer, tiny_texts, tiny_labels, tiny_label_names, tmp_path
):
    for split, rows in (("train", range(24)), ("test", range(24, 40))):
        with open(tmp_path / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows([tiny_texts[i], tiny_label_names[tiny_labels[i]]] for i in rows)
    data = {"name": "files", "train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv"), "max_len": 16}
    save_model(tiny_teacher, tiny_tokenizer, tmp_path / "teacher", extra={"kind": "teacher", "data": data})
    args = ["bench", str(tmp_path / "teacher"), "--runs", "2", "--threads", "1", "--backends", "torch,onnx"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["settings"]["texts"] == 16 and set(out["models"][0]["backends"]) == {"torch", "onnx"}
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0 and "teacher" in table.output
    bad = CliRunner().invoke(app, [*args[:2], "--threads", "one"])
    assert bad.exit_code == 2 and "error:" in bad.output
