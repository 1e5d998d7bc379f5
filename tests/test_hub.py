"""The Hugging Face hub: a teacher by repo id, downloaded once into textkd's cache and distilled from (its own
label order followed), and a trained model pushed with its card. The hub is faked with local folders and
recorded calls (no network here)."""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification
from typer.testing import CliRunner

import textkd
from conftest import TINY_BERT
from textkd import api
from textkd.cli import app
from textkd.config import Config, DataConfig, StudentConfig, TrainConfig
from textkd.errors import DataError, HubError, ModelLoadError
from textkd.hub import HUB_FILES, hub_repo_id, model_folder, push_to_hub
from textkd.models.io import load_model


def _hub_classifier(folder: Path, tokenizer, label_names: list[str]) -> Path:
    """A plain transformers BertForSequenceClassification, as a hub repo holds it (with a pickle to skip)."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=128,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
        **TINY_BERT,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "pytorch_model.bin").write_bytes(b"not downloaded")
    return folder


@pytest.fixture()
def fake_hub(tmp_path, monkeypatch):
    """`huggingface_hub.snapshot_download` served from local folders: {repo_id: folder}; calls are recorded."""
    import huggingface_hub

    repos: dict[str, Path] = {}
    calls: list[dict] = []

    def snapshot_download(repo_id, local_dir, allow_patterns, **kwargs):
        calls.append({"repo_id": repo_id, "allow_patterns": list(allow_patterns), **kwargs})
        if repo_id not in repos:
            raise huggingface_hub.errors.OfflineModeIsEnabled(
                f"Cannot reach https://huggingface.co/api/models/{repo_id}: offline mode is enabled."
            )
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        for path in repos[repo_id].iterdir():
            if any(fnmatch.fnmatch(path.name, pattern) for pattern in allow_patterns):
                shutil.copy(path, Path(local_dir) / path.name)
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setenv("TEXTKD_CACHE_DIR", str(tmp_path / "cache"))
    return repos, calls


def test_a_local_folder_is_used_as_it_is(tmp_path, fake_hub):
    _, calls = fake_hub
    assert model_folder(tmp_path) == tmp_path
    assert model_folder("runs/does/not/exist") == Path("runs/does/not/exist")  # a path, not a repo id
    assert calls == []


def test_a_hub_repo_is_downloaded_once_without_pickles(tmp_path, fake_hub, tiny_tokenizer, tiny_label_names):
    repos, calls = fake_hub
    repos["my-org/tiny-clf"] = _hub_classifier(tmp_path / "repo", tiny_tokenizer, tiny_label_names)
    folder = model_folder("my-org/tiny-clf")
    assert folder == tmp_path / "cache" / "models" / "my-org--tiny-clf"
    assert (folder / "model.safetensors").is_file() and not (folder / "pytorch_model.bin").exists()
    assert calls[0]["allow_patterns"] == HUB_FILES
    assert hub_repo_id(folder) == "my-org/tiny-clf" and hub_repo_id(tmp_path / "repo") is None
    model, _ = load_model(folder)
    assert model.config.id2label[0] == tiny_label_names[0]
    assert model_folder("my-org/tiny-clf") == folder and len(calls) == 1  # the copy is reused offline


def test_hub_errors_say_what_to_check(tmp_path, fake_hub, tiny_tokenizer, tiny_label_names):
    repos, _ = fake_hub
    with pytest.raises(
        ModelLoadError,
        match=r"no such model directory, and no Hugging Face hub repo "
        r"'my-org/missing' could be downloaded \(Cannot reach .*offline mode",
    ):
        model_folder("my-org/missing")
    pickle_only = _hub_classifier(tmp_path / "pickle", tiny_tokenizer, tiny_label_names)
    (pickle_only / "model.safetensors").unlink()
    repos["my-org/pickle-only"] = pickle_only
    with pytest.raises(ModelLoadError, match="has no model.safetensors"):
        model_folder("my-org/pickle-only")


def test_a_teacher_in_another_label_order_is_followed(tmp_path, tiny_tokenizer, tiny_splits, tiny_label_names):
    order = tiny_label_names[::-1]
    model, _ = load_model(_hub_classifier(tmp_path / "t", tiny_tokenizer, order))
    aligned = api.align_labels(model, tiny_splits, tmp_path / "t")
    assert aligned.label_names == order
    for split in ("train", "validation", "test"):
        before, after = tiny_splits.split(split), aligned.split(split)
        assert after.texts == before.texts
        assert [order[i] for i in after.labels] == [tiny_label_names[i] for i in before.labels]


def test_a_teacher_with_other_labels_is_refused(tmp_path, tiny_tokenizer, tiny_splits, tiny_label_names):
    other, _ = load_model(_hub_classifier(tmp_path / "o", tiny_tokenizer, [*tiny_label_names[:3], "politics"]))
    with pytest.raises(DataError, match=r"teacher only: \['politics'\]; dataset only: \['music'\]"):
        api.align_labels(other, tiny_splits, tmp_path / "o")
    generic, _ = load_model(_hub_classifier(tmp_path / "g", tiny_tokenizer, [f"LABEL_{i}" for i in range(4)]))
    with pytest.raises(DataError, match="generic labels") as caught:
        api.align_labels(generic, tiny_splits, tmp_path / "g")
    assert "set id2label to the dataset's label names" in caught.value.hint


def test_distil_from_a_hub_repo_id(tmp_path, fake_hub, tiny_tokenizer, tiny_splits, tiny_label_names):
    repos, calls = fake_hub
    order = tiny_label_names[::-1]
    repos["my-org/tiny-clf"] = _hub_classifier(tmp_path / "repo", tiny_tokenizer, order)
    train = TrainConfig(epochs=1, batch_size=8, lr=1e-3, patience=0, progress=False, device="cpu", seed=1)
    cfg = Config(
        data=DataConfig(max_len=32), student=StudentConfig(preset="bilstm", num_layers=1, hidden_size=16, train=train)
    )
    [result] = api.distill(cfg, "my-org/tiny-clf", tmp_path / "grid", methods=["soft"], splits=tiny_splits)
    student, _ = load_model(result.output_dir)
    assert [student.config.id2label[i] for i in range(4)] == order  # the student speaks the teacher's order
    cached = tmp_path / "cache" / "models" / "my-org--tiny-clf" / ".textkd-cache"
    assert any(cached.iterdir())  # teacher outputs live beside the downloaded weights
    assert len(calls) == 1
    test = json.loads((result.output_dir / "eval_test.json").read_text())
    assert test["rows"] == len(tiny_splits.test) and 0.0 <= test["accuracy"] <= 1.0
    assert sum(test["per_class"][name]["support"] for name in order) == len(tiny_splits.test)
    assert (
        "from the teacher [`my-org/tiny-clf`](https://huggingface.co/my-org/tiny-clf)"
        in (result.output_dir / "README.md").read_text()
    )


def test_ensemble_members_must_share_the_first_teachers_order(
    tmp_path, tiny_teacher, tiny_tokenizer, tiny_splits, tiny_label_names
):
    from textkd.models.io import save_model

    first = tmp_path / "first"
    save_model(tiny_teacher, tiny_tokenizer, first, extra={"kind": "teacher"})
    reversed_order = _hub_classifier(tmp_path / "reversed", tiny_tokenizer, tiny_label_names[::-1])
    train = TrainConfig(epochs=1, batch_size=8, progress=False, device="cpu")
    cfg = Config(
        data=DataConfig(max_len=32), student=StudentConfig(preset="bilstm", num_layers=1, hidden_size=16, train=train)
    )
    cfg.distill.teachers = [str(reversed_order)]
    with pytest.raises(DataError, match="lists the dataset's labels in another order than the first teacher"):
        api.distill(cfg, first, tmp_path / "grid", methods=["soft"], splits=tiny_splits)


def test_evaluate_a_hub_model_by_label_name(tmp_path, fake_hub, tiny_tokenizer, tiny_splits, tiny_label_names):
    repos, _ = fake_hub
    repos["my-org/tiny-clf"] = _hub_classifier(tmp_path / "repo", tiny_tokenizer, tiny_label_names[::-1])
    metrics = api.evaluate("my-org/tiny-clf", splits=tiny_splits, max_len=32)
    assert metrics["rows"] == len(tiny_splits.test)
    written = tmp_path / "cache" / "models" / "my-org--tiny-clf" / "eval_test.json"
    assert json.loads(written.read_text())["accuracy"] == metrics["accuracy"]


def test_predict_with_a_hub_model(tmp_path, fake_hub, tiny_tokenizer, tiny_label_names):
    repos, _ = fake_hub
    repos["my-org/tiny-clf"] = _hub_classifier(tmp_path / "repo", tiny_tokenizer, tiny_label_names[::-1])
    out = api.predict("my-org/tiny-clf", ["heavy rain is expected today"], top_k=4)
    assert sorted(entry["label"] for entry in out["predictions"][0]["labels"]) == sorted(tiny_label_names)
    predictor = textkd.Predictor("my-org/tiny-clf")  # load once, classify many times
    assert predictor.model_dir == tmp_path / "cache" / "models" / "my-org--tiny-clf"
    assert predictor.labels == tiny_label_names[::-1]


def test_serve_a_hub_model(tmp_path, fake_hub, tiny_tokenizer, tiny_label_names):
    from fastapi.testclient import TestClient

    from textkd.serving import create_app

    repos, _ = fake_hub
    repos["my-org/tiny-clf"] = _hub_classifier(tmp_path / "repo", tiny_tokenizer, tiny_label_names[::-1])
    with TestClient(create_app("my-org/tiny-clf")) as client:
        assert client.get("/labels").json() == {"labels": tiny_label_names[::-1]}
        answer = client.post("/predict", json={"texts": ["heavy rain is expected today"], "top_k": 1})
        assert answer.status_code == 200 and answer.json()["predictions"][0]["labels"][0]["label"] in tiny_label_names


def test_export_and_bench_a_hub_model(tmp_path, fake_hub, tiny_tokenizer, tiny_label_names):
    from textkd.evaluation.bench import bench
    from textkd.export.onnx import export_onnx

    repos, _ = fake_hub
    repos["my-org/tiny-clf"] = _hub_classifier(tmp_path / "repo", tiny_tokenizer, tiny_label_names)
    folder = tmp_path / "cache" / "models" / "my-org--tiny-clf"
    info = export_onnx("my-org/tiny-clf", parity_texts=["heavy rain is expected today"])
    assert Path(info["output_dir"]) == folder / "onnx" and info["fp32"]["argmax_agreement"] == 1.0
    out = bench(
        ["my-org/tiny-clf"],
        texts=["heavy rain", "the bank raised rates"],
        backends=["torch", "onnx"],
        threads=[1],
        warmup=1,
        runs=3,
        throughput_texts=4,
    )
    assert out["models"][0]["model"] == str(folder) and (folder / "bench.json").is_file()
    assert {row["backend"] for row in out["results"]} == {"torch", "onnx"}


def test_bench_a_hub_textkd_model_on_its_recorded_dataset(
    tmp_path, fake_hub, tiny_teacher, tiny_tokenizer, tiny_texts, tiny_labels, tiny_label_names
):
    # A repo pushed by textkd carries textkd_model.json: `bench REPO --data-dir D` reads its dataset from there.
    from textkd.models.io import save_model

    rows = [f"{text},{tiny_label_names[label]}" for text, label in zip(tiny_texts[:24], tiny_labels[:24], strict=True)]
    (tmp_path / "split.csv").write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    repos, _ = fake_hub
    data = {"name": "files", "train": str(tmp_path / "split.csv"), "test": str(tmp_path / "split.csv")}
    repos["my-org/textkd-clf"] = save_model(
        tiny_teacher, tiny_tokenizer, tmp_path / "repo", extra={"kind": "teacher", "data": data}
    )
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "my-org/textkd-clf",
            "--data-dir",
            str(tmp_path),
            "--runs",
            "2",
            "--threads",
            "1",
            "--backends",
            "torch",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["settings"]["texts"] == 24


# ------------------------------------------------------------------------------------------------ push


@pytest.fixture()
def fake_upload(monkeypatch):
    """HfApi.create_repo and upload_folder recorded; the uploaded files are listed with the hub's own filter."""
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects

    pushed: dict = {}

    def create_repo(self, repo_id, *, private=None, exist_ok=False, **kwargs):
        pushed.update(repo_id=repo_id, private=private, exist_ok=exist_ok, token=self.token)
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, ignore_patterns=None, commit_message=None, **kwargs):
        files = sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file())
        pushed.update(files=list(filter_repo_objects(files, ignore_patterns=ignore_patterns)), message=commit_message)
        if pushed.get("fail"):
            raise OSError("401 Client Error: Unauthorized for url: https://huggingface.co/api/repos/create")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return pushed


@pytest.fixture()
def student_dir(tmp_path, tiny_tokenizer, tiny_splits, tiny_label_names) -> Path:
    """An evaluated bilstm student with training leftovers beside it: a checkpoint and a cache folder."""
    teacher = _hub_classifier(tmp_path / "teacher", tiny_tokenizer, tiny_label_names)
    train = TrainConfig(epochs=1, batch_size=8, lr=1e-3, patience=0, progress=False, device="cpu", seed=1)
    cfg = Config(
        data=DataConfig(max_len=32), student=StudentConfig(preset="bilstm", num_layers=1, hidden_size=16, train=train)
    )
    [result] = api.distill(cfg, teacher, tmp_path / "grid", methods=["soft"], splits=tiny_splits)
    for leftover in ("checkpoint/state.pt", ".textkd-cache/x/logits.npy"):
        (result.output_dir / leftover).parent.mkdir(parents=True, exist_ok=True)
        (result.output_dir / leftover).write_bytes(b"state")
    (result.output_dir / "README.md").unlink()
    return result.output_dir


def test_push_uploads_the_model_and_its_card_not_training_state(student_dir, fake_upload):
    url = push_to_hub(student_dir, "my-org/tiny-bilstm", private=True, token="hf_x")
    assert url == "https://huggingface.co/my-org/tiny-bilstm"
    assert (fake_upload["repo_id"], fake_upload["private"], fake_upload["exist_ok"], fake_upload["token"]) == (
        "my-org/tiny-bilstm",
        True,
        True,
        "hf_x",
    )
    files = fake_upload["files"]
    assert {
        "README.md",
        "model.safetensors",
        "config.json",
        "textkd_model.json",
        "eval_test.json",
        "metrics.jsonl",
    } <= set(files)
    assert not [f for f in files if f.startswith(("checkpoint/", ".textkd-cache/"))]
    assert "library_name: textkd" in (student_dir / "README.md").read_text()  # the card was written first
    assert "textkd" in fake_upload["message"]


def test_push_errors(student_dir, fake_upload, tmp_path):
    with pytest.raises(ModelLoadError, match="no such model directory"):
        push_to_hub(tmp_path / "missing", "my-org/x")
    with pytest.raises(ModelLoadError, match="not a textkd model folder"):
        push_to_hub(tmp_path, "my-org/x")
    with pytest.raises(HubError, match="'my-org/a/b' is not a hub repo id"):
        push_to_hub(student_dir, "my-org/a/b")
    fake_upload["fail"] = True
    with pytest.raises(HubError, match=r"could not push to 'my-org/x' \(401 Client Error") as caught:
        push_to_hub(student_dir, "my-org/x")
    assert "hf auth login" in caught.value.hint


def test_push_command(student_dir, fake_upload):
    result = CliRunner().invoke(app, ["push", str(student_dir), "my-org/tiny-bilstm"])
    assert result.exit_code == 0, result.output
    assert "pushed to https://huggingface.co/my-org/tiny-bilstm" in result.output
    assert fake_upload["private"] is False
    fake_upload["fail"] = True
    result = CliRunner().invoke(app, ["push", str(student_dir), "my-org/tiny-bilstm"])
    assert result.exit_code == 2 and "could not push" in result.output
