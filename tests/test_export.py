"""ONNX export on tiny offline models: parity with PyTorch at any batch and length, int8, the folder, drift."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import textkd
from textkd.cli import app
from textkd.errors import ConfigError, DataError, ModelLoadError
from textkd.export import onnx as onnx_export
from textkd.export.onnx import ExportDriftError, MaskedBiLSTM, OnnxBackend, OnnxTokenizer, export_onnx
from textkd.models.classifier import label_maps
from textkd.models.io import load_model, save_model
from textkd.models.students.bilstm import BiLSTMClassifier, BiLSTMConfig
from textkd.predictor import Predictor

SHAPES = [(1, 1), (1, 7), (3, 12), (8, 40)]  # (batch, length): none of them the traced (2, 8)


def tiny_bilstm(
    vocab_size: int, labels: list[str], pooling: str = "mean", num_layers: int = 2, head: str = "linear"
) -> BiLSTMClassifier:
    torch.manual_seed(0)
    config = BiLSTMConfig(
        vocab_size=vocab_size,
        embedding_dim=16,
        hidden_size=16,
        num_layers=num_layers,
        pooling=pooling,
        head=head,
        **label_maps(len(labels), labels),
    )
    return BiLSTMClassifier(config).eval()


def padded_batch(batch: int, length: int, vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids (B, L), right-padded to random lengths; the first row is full length."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[0] = length
    mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).long()  # (B, L)
    ids = torch.randint(5, vocab_size, (batch, length), generator=generator) * mask  # (B, L)
    return ids, mask


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and lose seconds to them on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def teacher_dir(tiny_teacher, tiny_tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "teacher"
    save_model(tiny_teacher, tiny_tokenizer, path, extra={"kind": "teacher"})
    return path


@pytest.fixture(scope="module", params=[("mean", "linear"), ("last", "mlp")], ids=["mean-linear", "last-mlp"])
def bilstm_dir(request, tiny_tokenizer, tiny_label_names, tmp_path_factory):
    pooling, head = request.param
    path = tmp_path_factory.mktemp("export") / f"bilstm-{pooling}-{head}"
    model = tiny_bilstm(len(tiny_tokenizer), tiny_label_names, pooling=pooling, head=head)
    save_model(model, tiny_tokenizer, path, extra={"kind": "student", "preset": "bilstm"})
    return path


@pytest.fixture(scope="module")
def teacher_export(teacher_dir, tiny_texts):
    info = export_onnx(teacher_dir, int8=True, parity_texts=tiny_texts, allow_drift=True)
    return teacher_dir / "onnx", info


@pytest.mark.parametrize("pooling", ["mean", "max", "last"])
@pytest.mark.parametrize(("num_layers", "head"), [(1, "linear"), (2, "linear"), (2, "mlp")])
def test_masked_bilstm_equals_packed_forward(pooling, num_layers, head):
    model = tiny_bilstm(60, ["a", "b", "c"], pooling=pooling, num_layers=num_layers, head=head)
    wrapper = MaskedBiLSTM(model).eval()
    for batch, length in SHAPES:
        ids, mask = padded_batch(batch, length, 60)
        with torch.no_grad():
            torch.testing.assert_close(wrapper(ids, mask), model(ids, mask).logits, rtol=0, atol=1e-5)


def test_teacher_export_matches_pytorch_at_every_shape(teacher_export, teacher_dir):
    out, info = teacher_export
    assert info["fp32"]["max_abs_diff"] < 1e-4
    _check_dynamic_parity(teacher_dir, out)


def test_bilstm_export_matches_pytorch_at_every_shape(bilstm_dir, tiny_texts):
    info = export_onnx(bilstm_dir, parity_texts=tiny_texts)
    assert info["graph"] == "MaskedBiLSTM"
    assert info["fp32"]["max_abs_diff"] < 1e-4
    assert info["fp32"]["argmax_agreement"] == 1.0
    _check_dynamic_parity(bilstm_dir, bilstm_dir / "onnx")


def _check_dynamic_parity(model_dir, out):
    model, tokenizer = load_model(model_dir)
    backend = OnnxBackend(out)
    for seed, (batch, length) in enumerate(SHAPES):
        ids, mask = padded_batch(batch, length, len(tokenizer), seed=seed)
        with torch.no_grad():
            expected = model(input_ids=ids, attention_mask=mask).logits.numpy()
        np.testing.assert_allclose(backend.logits(ids.numpy(), mask.numpy()), expected, rtol=0, atol=1e-4)


def test_export_folder_is_self_contained(teacher_export, tiny_label_names):
    out, info = teacher_export
    names = {p.name for p in out.iterdir()}
    assert {
        "model.onnx",
        "model.int8.onnx",
        "labels.json",
        "textkd_model.json",
        "export.json",
        "tokenizer.json",
    } <= names
    assert json.loads((out / "labels.json").read_text()) == tiny_label_names
    marker = json.loads((out / "textkd_model.json").read_text())
    assert marker["kind"] == "teacher" and marker["export"]["int8"] is True
    assert json.loads((out / "export.json").read_text())["fp32"] == info["fp32"]
    assert info["tokenizer_identical"] is True


def test_int8_export_reports_agreement(teacher_export, teacher_dir, tiny_texts):
    out, info = teacher_export
    int8 = info["int8"]
    assert 0.0 <= int8["argmax_agreement"] <= 1.0 and int8["max_abs_diff"] >= 0.0
    assert info["files"]["model.int8.onnx"] < info["files"]["model.onnx"]
    backend = OnnxBackend(out, variant="int8", threads=1)
    assert backend.name == "onnx-int8"
    ids, mask = padded_batch(4, 9, 100)
    assert backend.logits(ids.numpy(), mask.numpy()).shape == (4, 4)


def test_exported_folder_predicts_like_pytorch(teacher_export, teacher_dir, tiny_texts):
    out, _ = teacher_export
    onnx_predictor = Predictor(out)
    assert onnx_predictor.backend.name == "onnx"
    torch_top = [p[0]["label"] for p in Predictor(teacher_dir, backend="torch").predict(tiny_texts)]
    assert [p[0]["label"] for p in onnx_predictor.predict(tiny_texts)] == torch_top
    result = textkd.predict(out, tiny_texts[:2], top_k=2)
    assert result["backend"] == "onnx" and len(result["predictions"][0]["labels"]) == 2
    # A model folder with an export in onnx/ also runs on ONNX Runtime when asked.
    assert Predictor(teacher_dir, backend="onnx").predict(tiny_texts[:1])[0][0]["label"] == torch_top[0]


def test_a_single_string_is_one_text_not_its_characters(teacher_dir, tiny_texts):
    predictor = Predictor(teacher_dir, backend="torch")
    text = tiny_texts[0]
    assert len(text) > 1
    one = predictor.predict(text, top_k=2)
    assert one == predictor.predict([text], top_k=2) and len(one) == 1
    assert predictor.logits(text).shape == (1, len(predictor.labels))
    result = textkd.predict(teacher_dir, text)
    assert [p["text"] for p in result["predictions"]] == [text]
    with pytest.raises(DataError, match="no texts to predict"):
        textkd.predict(teacher_dir, [])


def test_predict_shows_progress_on_stderr_for_many_texts(teacher_dir, tiny_texts, capsys, monkeypatch):
    predictor = Predictor(teacher_dir, backend="torch", batch_size=4)
    quiet = predictor.logits(tiny_texts)
    assert np.array_equal(predictor.logits(tiny_texts, progress=True), quiet)
    assert "classifying" in capsys.readouterr().err
    from textkd import cli

    monkeypatch.setattr(cli, "PREDICT_PROGRESS_TEXTS", len(tiny_texts))
    result = CliRunner().invoke(app, ["predict", str(teacher_dir), *tiny_texts, "--json"])
    assert result.exit_code == 0
    assert "classifying" in result.stderr and json.loads(result.stdout)["predictions"][0]["text"] == tiny_texts[0]
    few = CliRunner().invoke(app, ["predict", str(teacher_dir), *tiny_texts[:-1], "--json"])
    assert few.exit_code == 0 and "classifying" not in few.stderr


def test_predict_reads_the_text_column_of_a_table_file(teacher_dir, tiny_texts, tmp_path):
    rows = "".join(f"{i},{json.dumps(text)}\n" for i, text in enumerate(tiny_texts[:3]))
    (tmp_path / "q.csv").write_text("id,query\n" + rows, encoding="utf-8")
    (tmp_path / "q.txt").write_text("id,query\n" + rows, encoding="utf-8")  # not a table: one text per line
    result = CliRunner().invoke(
        app, ["predict", str(teacher_dir), "--file", str(tmp_path / "q.csv"), "--text-column", "query", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert [p["text"] for p in json.loads(result.stdout)["predictions"]] == tiny_texts[:3]
    lines = CliRunner().invoke(app, ["predict", str(teacher_dir), "--file", str(tmp_path / "q.txt"), "--json"])
    assert len(json.loads(lines.stdout)["predictions"]) == 4
    missing = CliRunner().invoke(app, ["predict", str(teacher_dir), "--file", str(tmp_path / "q.csv")])
    assert missing.exit_code == 2 and "no column 'text'" in missing.output


def test_counts_below_one_are_refused(teacher_dir, tiny_texts, tmp_path):
    with pytest.raises(ConfigError, match="top_k must be >= 1, got 0"):  # it silently returned one label
        Predictor(teacher_dir).predict(tiny_texts[:2], top_k=0)
    (tmp_path / "corpus.txt").write_text("\n".join(tiny_texts) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="batch_size must be >= 1, got 0"):  # a ValueError from range()
        textkd.label(teacher_dir, tmp_path / "corpus.txt", tmp_path / "out", batch_size=0)
    with pytest.raises(ConfigError, match="chunk_size must be >= 1, got 0"):
        textkd.label(teacher_dir, tmp_path / "corpus.txt", tmp_path / "out", chunk_size=0)
    for args in (
        ["predict", str(teacher_dir), "hi", "--top-k", "0"],
        ["serve", str(teacher_dir), "--port", "99999"],
        ["label", str(teacher_dir), "--texts", str(tmp_path / "corpus.txt"), "--batch-size", "0"],
        ["evaluate", str(teacher_dir), "--max-len", "0"],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "Invalid value" in result.output, (args, result.output)


def test_evaluate_cuts_texts_at_the_models_training_length(tiny_teacher, tiny_tokenizer, tiny_splits, tmp_path):
    path = save_model(tiny_teacher, tiny_tokenizer, tmp_path / "m", extra={"kind": "teacher", "data": {"max_len": 5}})
    assert Predictor(path).max_len == 5
    trained = textkd.evaluate(path, splits=tiny_splits, write=False)
    assert trained["max_len"] == 5
    assert trained["accuracy"] == textkd.evaluate(path, splits=tiny_splits, max_len=5, write=False)["accuracy"]
    assert textkd.evaluate(path, splits=tiny_splits, max_len=9, write=False)["max_len"] == 9  # asked for
    plain = save_model(tiny_teacher, tiny_tokenizer, tmp_path / "plain", extra={"kind": "teacher"})
    assert textkd.evaluate(plain, splits=tiny_splits, write=False)["max_len"] == 128  # nothing recorded


def test_evaluate_a_labelled_file_of_your_own(tiny_teacher, tiny_tokenizer, tiny_splits, tmp_path):
    path = save_model(tiny_teacher, tiny_tokenizer, tmp_path / "m", extra={"kind": "teacher", "data": {"max_len": 16}})
    test = tiny_splits.test
    names = [test.label_names[i] for i in test.labels]
    names[0] = str(int(test.labels[0]))  # an integer id is read as an index into the model's labels
    rows = [json.dumps({"query": text, "intent": name}) for text, name in zip(test.texts, names, strict=True)]
    (tmp_path / "new.jsonl").write_text("\n".join([*rows, json.dumps({"query": " ", "intent": "x"})]) + "\n")
    with pytest.warns(UserWarning, match="dropped 1 empty"):
        metrics = textkd.evaluate_file(path, tmp_path / "new.jsonl", text_column="query", label_column="intent")
    expected = textkd.evaluate(path, splits=tiny_splits, write=False)
    assert metrics["rows"] == len(test) and metrics["max_len"] == 16 and metrics["split"] == "file"
    assert metrics["accuracy"] == expected["accuracy"] and metrics["confusion_matrix"] == expected["confusion_matrix"]
    assert sorted(p.name for p in path.glob("eval_*.json")) == []  # nothing written into the model folder
    exported = export_onnx(path, tmp_path / "onnx", parity_texts=test.texts[:4])["output_dir"]
    with pytest.warns(UserWarning, match="dropped 1 empty"):
        deployed = textkd.evaluate_file(exported, tmp_path / "new.jsonl", text_column="query", label_column="intent")
    assert deployed["backend"] == "onnx" and deployed["max_len"] == 16  # the export keeps the training length
    assert deployed["confusion_matrix"] == metrics["confusion_matrix"]

    (tmp_path / "typo.csv").write_text(f"text,label\n{test.texts[0]},{test.label_names[0]}s\n")
    with pytest.raises(
        DataError,
        match=rf"typo.csv:2: label '{test.label_names[0]}s' is not one of the "
        rf"model's {test.num_labels} labels",
    ) as caught:
        textkd.evaluate_file(path, tmp_path / "typo.csv")
    assert caught.value.hint == f"did you mean {test.label_names[0]!r}?"

    with pytest.raises(ConfigError, match="'oos' is not one of the model's labels"):
        textkd.evaluate_file(path, tmp_path / "new.jsonl", out_of_scope_label="oos")
    with pytest.warns(UserWarning, match="dropped 1 empty"):
        cli = CliRunner().invoke(
            app,
            [
                "evaluate",
                str(path),
                "--file",
                str(tmp_path / "new.jsonl"),
                "--text-column",
                "query",
                "--label-column",
                "intent",
                "--oos-label",
                test.label_names[0],
                "--json",
            ],
        )
    assert cli.exit_code == 0, cli.output
    scored = json.loads(cli.stdout)
    assert (
        scored["accuracy"] == expected["accuracy"]
        and scored["oos_recall"] == expected["per_class"][test.label_names[0]]["recall"]
    )
    both = CliRunner().invoke(app, ["evaluate", str(path), "--file", str(tmp_path / "new.jsonl"), "--split", "train"])
    assert both.exit_code == 2 and "--file replaces the dataset" in both.output


RAW_RUNTIME = """
import json, sys
sys.modules["torch"] = None  # prove the folder runs without torch (and without textkd)
import numpy as np, onnxruntime as ort, tokenizers
folder = sys.argv[1]
tok = tokenizers.Tokenizer.from_file(folder + "/tokenizer.json")
tok.no_padding()
ids = np.array([tok.encode(sys.argv[2]).ids], dtype=np.int64)
(logits,) = ort.InferenceSession(folder + "/model.onnx").run(None, {"input_ids": ids,
                                                                  "attention_mask": np.ones_like(ids)})
print(json.load(open(folder + "/labels.json"))[int(logits.argmax())])
"""


def test_exported_folder_runs_without_torch(teacher_export, tiny_texts):
    out, _ = teacher_export
    run = subprocess.run(
        [sys.executable, "-c", RAW_RUNTIME, str(out), tiny_texts[0]], capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == Predictor(out).predict(tiny_texts[:1])[0][0]["label"]


def test_onnx_tokenizer_matches_transformers(teacher_export, tiny_tokenizer):
    out, _ = teacher_export
    texts = ["Heavy RAIN expected today!", "", "a", "天气很好 today", "the stock market " * 30]
    expected = tiny_tokenizer(texts, truncation=True, max_length=16, padding=True, return_tensors="np")
    got = OnnxTokenizer(out)(texts, truncation=True, max_length=16, padding=True, return_tensors="np")
    np.testing.assert_array_equal(got["input_ids"], expected["input_ids"])
    np.testing.assert_array_equal(got["attention_mask"], expected["attention_mask"])


def test_int8_drift_raises_after_writing_everything(teacher_dir, tiny_texts, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "argmax_agreement", lambda *_: 0.5)
    with pytest.raises(ExportDriftError, match="int8 predictions agree with PyTorch on 50.0%"):
        export_onnx(teacher_dir, tmp_path / "out", int8=True, parity_texts=tiny_texts)
    written = json.loads((tmp_path / "out" / "export.json").read_text())
    assert written["drift"] is True and (tmp_path / "out" / "model.int8.onnx").is_file()
    info = export_onnx(teacher_dir, tmp_path / "out", int8=True, parity_texts=tiny_texts, allow_drift=True)
    assert info["drift"] is True and info["allow_drift"] is True


def test_export_refuses_unsafe_targets(teacher_dir, tmp_path):
    with pytest.raises(ConfigError, match="must not be the model folder"):
        export_onnx(teacher_dir, teacher_dir)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an earlier export"):
        export_onnx(teacher_dir, tmp_path)
    with pytest.raises(ConfigError, match="opset 9"):
        export_onnx(teacher_dir, tmp_path / "new", opset=9)


def test_backend_errors_name_the_folder(teacher_dir, tiny_texts, tmp_path):
    export_onnx(teacher_dir, tmp_path / "fp32", parity_texts=tiny_texts[:4])
    with pytest.raises(ModelLoadError, match="no model.int8.onnx"):
        OnnxBackend(tmp_path / "fp32", variant="int8")
    with pytest.raises(ModelLoadError, match="textkd export"):
        OnnxBackend(tmp_path)


def test_cli_export_and_drift_exit_code(teacher_dir, tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(teacher_dir), "-o", str(tmp_path / "cli"), "--int8", "--allow-drift"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "model.int8.onnx").is_file() and "max |logit diff|" in result.output
    monkeypatch.setattr(onnx_export, "argmax_agreement", lambda *_: 0.5)
    result = runner.invoke(app, ["export", str(teacher_dir), "-o", str(tmp_path / "cli"), "--int8"])
    assert result.exit_code == 2
    assert "error:" in result.output and "int8" in result.output
