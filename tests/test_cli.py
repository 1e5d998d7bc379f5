"""The command line through typer's CliRunner: data commands, bad input (exit 2, one line), a tiny pipeline."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import textkd
from textkd.cli import app
from textkd.data.loading import DataWarning
from textkd.errors import ConfigError
from textkd.models.io import save_model

runner = CliRunner()
ROWS = "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(12))


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("data", "teacher", "distill", "evaluate", "predict"):
        assert command in result.output


def test_starting_the_cli_loads_neither_matplotlib_nor_sklearn():
    # Each adds about 0.4 s to every command's start; they are imported where a figure or a metric is made.
    code = "import sys, textkd.cli; print(sorted({'matplotlib', 'sklearn'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_version_names_textkd_torch_and_transformers():
    import torch
    import transformers

    import textkd

    result = invoke("--version")
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith(f"textkd {textkd.__version__} (torch {torch.__version__}, ")
    assert f"transformers {transformers.__version__}" in line and "\n" not in line
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert f'\nversion = "{textkd.__version__}"\n' in pyproject  # one version, in both places


def test_data_list_and_show_embedded():
    listed = invoke("data", "list")
    assert listed.exit_code == 0 and "bbc-news" in listed.output and "banking77" in listed.output
    shown = invoke("data", "show", "bbc-news", "--json")
    assert shown.exit_code == 0, shown.output
    stats = json.loads(shown.output)
    assert stats["num_labels"] == 5
    assert sum(s["rows"] for s in stats["splits"].values()) == 2225


def test_tables_written_to_a_pipe_are_not_cut(monkeypatch):
    import io

    from textkd import cli
    from textkd.utils import PIPED_WIDTH, results_console

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr("sys.stdout", io.StringIO())  # not a terminal
    assert results_console().width == PIPED_WIDTH
    monkeypatch.setattr(cli, "console", results_console())
    shown = invoke("data", "show", "bbc-news")
    assert shown.exit_code == 0, shown.output
    assert "length (words) p50/p90/p95/p99/max" in shown.output and "…" not in shown.output
    monkeypatch.setenv("COLUMNS", "100")
    assert results_console().width == 100


@pytest.mark.realdata
def test_data_show_banking77(data_dir):
    result = invoke("data", "show", "banking77", "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    assert "3,080" in result.output and "77" in result.output
    assert "validation carved from train" in result.output


BAD_INPUTS = {
    "missing file": (None, "file not found"),
    "empty file": ("  \n", "file is empty"),
    "missing column": ("sentence,intent\n" + ROWS, "no column 'text'"),
    "not utf-8": (b"text,label\nok,a\n\xff\xfe bad,b\n" + ROWS.encode(), "UTF-8"),
    "single class": ("text,label\n" + "".join(f"t{i},a\n" for i in range(8)), "single class"),
    "malformed json line": ('{"text": "a", "label": "x"}\n{"text": "b", "label"\n', "JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_train_file_exits_2_with_one_line(case, tmp_path):
    content, needle = BAD_INPUTS[case]
    suffix = ".jsonl" if "json" in case else ".csv"
    train = tmp_path / f"train{suffix}"
    if content is not None:
        _write(train, content)
    test = _write(tmp_path / "test.csv", "text,label\n" + ROWS)
    result = invoke("data", "show", "--train", train, "--test", test)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert str(train) in lines[0] and needle.lower() in lines[0].lower()
    assert "Traceback" not in result.output


def test_empty_texts_refused_or_dropped(tmp_path):
    train = _write(tmp_path / "train.csv", "text,label\n" + ROWS + '"   ",a\n')
    test = _write(tmp_path / "test.csv", "text,label\n" + ROWS)
    refused = invoke("data", "show", "--train", train, "--test", test, "--empty-texts", "error")
    assert refused.exit_code == 2 and f"{train}:14" in refused.output
    with pytest.warns(DataWarning, match="dropped 1 empty or whitespace-only text"):
        dropped = invoke("data", "show", "--train", train, "--test", test, "--json")
    assert dropped.exit_code == 0
    kept = json.loads(dropped.output)["splits"]
    assert kept["train"]["rows"] + kept["validation"]["rows"] == ROWS.count("\n")  # validation is carved from train


def test_unknown_label_in_test_names_file_and_line(tmp_path):
    train = _write(tmp_path / "train.csv", "text,label\n" + ROWS)
    test = _write(tmp_path / "test.csv", "text,label\nfine,a\nodd one,zzz\n")
    result = invoke("data", "show", "--train", train, "--test", test)
    assert result.exit_code == 2
    assert f"{test}:3" in result.output and "zzz" in result.output


def test_unknown_override_suggests(tmp_path):
    result = invoke("teacher", "--train.epoch", "3")
    assert result.exit_code == 2
    assert "did you mean 'teacher.train.epochs'" in result.output


def test_tiny_pipeline_from_the_cli(tiny_teacher, tiny_tokenizer, tiny_bert_dir, tiny_dataset, tmp_path):
    pairs = zip(tiny_dataset.texts, tiny_dataset.labels, strict=True)
    rows = "".join(f'"{t}",{tiny_dataset.label_names[y]}\n' for t, y in pairs)
    train = _write(tmp_path / "train.csv", "text,label\n" + rows)
    test = _write(tmp_path / "test.csv", "text,label\n" + rows)
    data = [
        "--data",
        "files",
        "--data.train",
        train,
        "--data.test",
        test,
        "--data.validation_fraction",
        "0.25",
        "--data.max_len",
        "32",
    ]
    fast = ["--train.epochs", "2", "--train.batch_size", "8", "--train.progress", "false", "--train.device", "cpu"]
    teacher = tmp_path / "teacher"
    result = invoke("teacher", "--backbone", tiny_bert_dir, "-o", teacher, *data, *fast)
    assert result.exit_code == 0, result.output
    assert (teacher / "config.yaml").is_file() and (teacher / "eval_test.json").is_file()

    students = tmp_path / "students"
    result = invoke(
        "distill",
        "--teacher",
        teacher,
        "--student",
        "bert-tiny-2l-128",
        "--compare",
        "none,soft",
        "-o",
        students,
        "--student.num_layers",
        "1",
        "--student.hidden_size",
        "32",
        "--student.encoder-dropout",
        "0.2",
        *data,
        *fast,
    )
    assert result.exit_code == 0, result.output
    assert (students / "bert-tiny-2l-128-soft" / "model.safetensors").is_file()
    encoder = json.loads((students / "bert-tiny-2l-128-soft" / "config.json").read_text())["encoder"]
    assert encoder["hidden_dropout_prob"] == encoder["attention_probs_dropout_prob"] == 0.2

    # A model card beside every evaluated model: its test figures next to the teacher's, and its labels.
    soft = students / "bert-tiny-2l-128-soft"
    card = (soft / "README.md").read_text(encoding="utf-8")
    test_figures = json.loads((soft / "eval_test.json").read_text())
    teacher_figures = json.loads((teacher / "eval_test.json").read_text())
    assert card.startswith("---\nlibrary_name: textkd\npipeline_tag: text-classification\n")
    assert f"| accuracy | {test_figures['accuracy']:.4f} | {teacher_figures['accuracy']:.4f} |" in card
    assert f"| agreement with the teacher | {test_figures['agreement_with_teacher']:.4f} | |" in card
    assert "Loss: `0.7 * kd_kl_div(T=4.0) + 0.3 * cross_entropy`" in card
    labels = card.split(f"## Labels ({len(tiny_dataset.label_names)})\n\n")[1].split("\n")[0]
    assert sorted(labels.split(", ")) == sorted(f"`{name}`" for name in tiny_dataset.label_names)
    assert "knowledge-distillation" not in (teacher / "README.md").read_text(encoding="utf-8")
    (soft / "README.md").unlink()
    rewritten = invoke("card", soft)
    assert rewritten.exit_code == 0, rewritten.output
    assert (soft / "README.md").read_text(encoding="utf-8") == card

    evaluated = invoke("evaluate", students / "bert-tiny-2l-128-soft", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert {"accuracy", "macro_f1", "weighted_f1", "ece", "per_class", "confusion_matrix"} <= set(
        json.loads(evaluated.output)
    )

    texts = tmp_path / "texts.txt"
    texts.write_text("the band played a new song\nrain is expected\n")
    predicted = invoke("predict", teacher, "the coach praised the team", "--file", texts, "--top-k", "2", "--json")
    assert predicted.exit_code == 0, predicted.output
    out = json.loads(predicted.output)
    assert set(out) >= {"model", "backend", "latency_ms", "predictions"}
    assert len(out["predictions"]) == 3
    first = out["predictions"][0]
    assert first["text"] == "the coach praised the team" and len(first["labels"]) == 2
    assert {"label", "score"} == set(first["labels"][0])
    assert first["labels"][0]["score"] >= first["labels"][1]["score"]


def test_predict_missing_model_is_one_line(tmp_path):
    result = invoke("predict", tmp_path / "nope", "hello")
    assert result.exit_code == 2 and "no such model directory" in result.output


def test_predict_reads_texts_from_stdin(tiny_teacher, tiny_tokenizer, tmp_path):
    save_model(tiny_teacher, tiny_tokenizer, tmp_path / "m")
    result = runner.invoke(
        app,
        ["predict", str(tmp_path / "m"), "--file", "-", "--json"],
        input="rain is expected\n\n  the coach praised the team  \n",
    )
    assert result.exit_code == 0, result.output
    texts = [p["text"] for p in json.loads(result.output)["predictions"]]
    assert texts == ["rain is expected", "the coach praised the team"]


def test_predict_writes_csv_tsv_and_jsonl_files_in_input_order(tiny_teacher, tiny_tokenizer, tmp_path):
    import csv

    save_model(tiny_teacher, tiny_tokenizer, tmp_path / "m")
    texts = ["rain is expected", 'the coach said "well done", twice', "a new song"]
    expected = json.loads(invoke("predict", tmp_path / "m", *texts, "--top-k", "2", "--json").output)["predictions"]
    for suffix, delimiter in ((".csv", ","), (".tsv", "\t")):
        result = invoke("predict", tmp_path / "m", *texts, "--top-k", "2", "--output", tmp_path / f"p{suffix}")
        assert result.exit_code == 0, result.output
        assert f"3 predictions -> {tmp_path / f'p{suffix}'}" in result.output
        with open(tmp_path / f"p{suffix}", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter=delimiter))
        assert list(rows[0]) == ["text", "label", "score", "label_2", "score_2"]
        assert [row["text"] for row in rows] == texts
        assert [(row["label"], row["label_2"]) for row in rows] == [
            (p["labels"][0]["label"], p["labels"][1]["label"]) for p in expected
        ]
        assert [float(row["score"]) for row in rows] == pytest.approx(
            [p["labels"][0]["score"] for p in expected], abs=1e-6
        )
    result = invoke("predict", tmp_path / "m", *texts, "--top-k", "2", "-o", tmp_path / "p.jsonl")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["text"] for line in lines] == texts
    assert json.loads(lines[1])["labels"] == expected[1]["labels"]


def test_predict_output_must_be_a_table_and_not_with_json(tiny_teacher, tiny_tokenizer, tmp_path):
    result = invoke("predict", tmp_path / "nope", "hello", "--output", tmp_path / "p.xlsx")
    assert result.exit_code == 2 and "cannot write predictions to a .xlsx file" in result.output
    assert "name a .csv, .tsv, .jsonl file" in result.output
    result = invoke("predict", tmp_path / "nope", "hello", "--output", tmp_path / "p.csv", "--json")
    assert result.exit_code == 2 and "--output writes the predictions to a file; --json prints them" in result.output
    with pytest.raises(ConfigError, match=r"cannot write predictions to a suffix-less file"):
        textkd.write_predictions([], tmp_path / "p")


def test_card_refuses_a_folder_that_is_not_an_evaluated_model(tiny_teacher, tiny_tokenizer, tmp_path):
    result = invoke("card", tmp_path)
    assert result.exit_code == 2 and "not a textkd model folder" in result.output
    save_model(tiny_teacher, tiny_tokenizer, tmp_path / "m")
    result = invoke("card", tmp_path / "m")
    assert result.exit_code == 2 and "has not been evaluated on test yet" in result.output
    assert not (tmp_path / "m" / "README.md").exists()


def test_saved_teacher_loads_in_plain_transformers(tiny_teacher, tiny_tokenizer, tmp_path):
    from transformers import AutoModelForSequenceClassification, pipeline

    save_model(tiny_teacher, tiny_tokenizer, tmp_path / "m")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m")
    assert model.config.id2label[0] == "weather"
    clf = pipeline("text-classification", model=str(tmp_path / "m"))
    assert clf("rain today")[0]["label"] in tiny_teacher.config.label2id


def test_teacher_refit_from_the_cli(tiny_bert_dir, tiny_dataset, tmp_path):
    pairs = zip(tiny_dataset.texts, tiny_dataset.labels, strict=True)
    rows = "".join(f'"{t}",{tiny_dataset.label_names[y]}\n' for t, y in pairs)
    train = _write(tmp_path / "train.csv", "text,label\n" + rows)
    teacher = tmp_path / "teacher"
    result = invoke(
        "teacher",
        "--backbone",
        tiny_bert_dir,
        "-o",
        teacher,
        "--refit",
        "--data",
        "files",
        "--data.train",
        train,
        "--data.test",
        train,
        "--data.max_len",
        "32",
        "--train.epochs",
        "2",
        "--train.batch_size",
        "8",
        "--train.progress",
        "false",
        "--train.device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert (teacher / "selection" / "eval_test.json").is_file() and (teacher / "eval_test.json").is_file()
    assert json.loads((teacher / "textkd_model.json").read_text())["refit"]["rows"] == len(tiny_dataset)
    assert "refit: true" in (teacher / "config.yaml").read_text()


def test_evaluate_output_names_the_weakest_classes_and_largest_confusions():
    from rich.console import Console

    from textkd.cli import _metrics_table
    from textkd.evaluation.metrics import classification_metrics

    names = ["a", "b", "c", "d", "e", "f", "g"]
    gold = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # g never occurs: it is not a class "in the data"
    pred = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 1, 1]  # every f is read as b
    metrics = classification_metrics(gold, pred, label_names=names)
    metrics.update({"split": "file", "dataset": "/tmp/data/march.csv", "rows": len(gold)})
    console = Console(record=True, width=120)
    console.print(_metrics_table(metrics))
    text = console.export_text()
    assert "march.csv (12 rows)" in text and "/tmp/data" not in text
    assert "lowest F1 (5 of 6 classes in the data)" in text
    weakest = text.split("lowest F1")[1].split("largest confusions")[0]
    assert weakest.index(" f ") < weakest.index(" b ") and " g " not in weakest  # f (0.0) first, then b (0.667)
    assert "│ f    │ b         │    2 │" in text.split("largest confusions")[1]
    few = classification_metrics([0, 1], [0, 1], label_names=["x", "y"])
    few.update({"split": "test", "dataset": "tiny", "rows": 2})
    console = Console(record=True, width=120)
    console.print(_metrics_table(few))
    assert "lowest F1" not in console.export_text()


def test_print_config_writes_a_recipe_that_loads_back_and_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--teacher", "t", "--student", "bilstm", "--train.epochs", "3", "--student.dropout", "0.1"]
    result = invoke("distill", *args, "--kd.temperature", "8", "--print-config")
    assert result.exit_code == 0, result.output
    recipe = _write(tmp_path / "recipe.yaml", result.output)
    cfg = textkd.load_config(recipe)
    assert cfg.student.preset == "bilstm" and cfg.student.dropout == 0.1 and cfg.distill.temperature == 8.0
    assert cfg.student.train.epochs == 3 and cfg.teacher.train.epochs != 3  # --train.X is the student's here
    assert cfg == textkd.load_config(
        overrides={
            "student.preset": "bilstm",
            "student.train.epochs": 3,
            "student.dropout": 0.1,
            "distill.temperature": 8,
        }
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]  # no teacher was read, no run folder
    teacher = invoke("teacher", recipe, "--train.epochs", "2", "--print-config")
    assert textkd.load_config(_write(tmp_path / "t.yaml", teacher.output)).teacher.train.epochs == 2
    run = invoke("run", recipe, "--run.methods", "none,soft", "--print-config")
    assert textkd.load_config(_write(tmp_path / "r.yaml", run.output)).run.methods == ["none", "soft"]


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        (["distill", "--teacher", "t"], ["--train.epochs", "0"], "student.train.epochs must be >= 1, got 0"),
        (["teacher"], ["--teacher.dropout", "1.5"], r"teacher.dropout must be in \[0, 1\)"),
        (["sweep", "--teacher", "t"], ["--student.dropout", "-1"], r"student.dropout must be in \[0, 1\)"),
        (["run"], ["--run.methods", "none,sof"], "unknown method 'sof' in run.methods"),
        (["distill", "--teacher", "t"], ["--kd.kd-loss", "msee"], "unknown distill.kd_loss 'msee'"),
        (["distill", "--teacher", "t", "--student", "bilstn"], [], "unknown student preset 'bilstn'"),
        (["run"], ["--run.students", "bilstm,tinybert-4l-31"], "unknown student preset 'tinybert-4l-31'"),
        (["run"], ["--run.students", "bilstm", "--run.student_overrides", '{"bilstm": {"pooling": "cls"}}'], "'cls'"),
    ],
)
def test_print_config_checks_the_values_first(command, args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(*command, *args, "--print-config")
    assert result.exit_code == 2
    assert re.search(message, result.output) and "data:" not in result.output
