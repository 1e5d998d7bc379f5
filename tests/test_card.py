"""Model cards: written from a model folder's files, a user's own README.md kept, latency added after bench."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from textkd.errors import ModelLoadError
from textkd.evaluation.bench import bench
from textkd.evaluation.card import is_textkd_card, refresh_model_card, render_model_card, write_model_card
from textkd.models.classifier import label_maps
from textkd.models.io import save_model
from textkd.models.students.bilstm import BiLSTMClassifier, BiLSTMConfig


def _evaluated(folder, accuracy: float, **extra) -> None:
    figures = {"accuracy": accuracy, "macro_f1": accuracy - 0.01, "rows": 40, "dataset": "tiny", **extra}
    (folder / "eval_test.json").write_text(json.dumps(figures), encoding="utf-8")


@pytest.fixture
def pair(tiny_teacher, tiny_tokenizer, tiny_label_names, tmp_path):
    """An evaluated tiny teacher and a BiLSTM student distilled from it (as far as the folders tell)."""
    teacher = tmp_path / "teacher"
    save_model(tiny_teacher, tiny_tokenizer, teacher, extra={"kind": "teacher", "backbone": "tiny-bert"})
    _evaluated(teacher, 0.9)
    torch.manual_seed(0)
    config = BiLSTMConfig(
        vocab_size=len(tiny_tokenizer), embedding_dim=8, hidden_size=8, num_layers=1, **label_maps(4, tiny_label_names)
    )
    student = tmp_path / "bilstm-soft"
    save_model(
        BiLSTMClassifier(config),
        tiny_tokenizer,
        student,
        extra={
            "kind": "student",
            "preset": "bilstm",
            "method": "soft",
            "teacher": str(teacher),
            "loss": "0.7 * kd_kl_div(T=4.0) + 0.3 * cross_entropy",
            "transfer_set": {"labelled_rows": 30, "teacher_labelled_rows": 600},
        },
    )
    _evaluated(student, 0.85, agreement_with_teacher=0.875)
    (student / "metrics.jsonl").write_text(
        '{"epoch": 1, "val_macro_f1": 0.5}\n{"epoch": 2, "val_macro_f1": 0.7}\n{"epoch": 3, "val_macro_f1": 0.6}\n',
        encoding="utf-8",
    )
    return teacher, student


def test_the_card_sets_the_student_beside_its_teacher(pair, tiny_label_names):
    teacher, student = pair
    card = render_model_card(student)
    assert card.startswith("---\nlibrary_name: textkd\n") and "- knowledge-distillation\n" in card
    assert "A `bilstm` student (" in card and "from the teacher `teacher` (`tiny-bert` backbone)" in card
    assert "| accuracy | 0.8500 | 0.9000 |" in card and "| macro-F1 | 0.8400 | 0.8900 |" in card
    assert "| agreement with the teacher | 0.8750 | |" in card
    assert "(epoch 2 of 3)" in card and "On the tiny test split (40 texts)" in card
    assert "| transfer set | 30 labelled rows + 600 texts labelled by the teacher |" in card
    assert f"## Labels ({len(tiny_label_names)})" in card
    assert "latency" not in card  # not measured yet
    assert "| early-stopping patience |" not in card  # the folder records no config.yaml: no settings invented
    settings = {
        "data": {"max_len": 32},
        "student": {
            "preset": "bilstm",
            "train": {"epochs": 3, "patience": 0, "class_weights": "balanced"},
            "dropout": 0.1,
            "pooling": "max",
            "head": "mlp",
            "embedding_init": "teacher",
        },
        "distill": {"method": "soft", "temperature": 4.0, "alpha": 0.7, "augment": 0},
    }
    (student / "config.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    card = render_model_card(student)
    for row in (
        "| epochs | 3 |",
        "| early-stopping patience | 0 (no early stop) |",
        "| KD term | kl |",
        "| temperature T | 4.0 |",
        "| max tokens | 32 |",
        "| dropout | 0.1 |",
        "| pooling | max |",
        "| head | mlp |",
        "| embedding initialisation | teacher |",
        "| class weights | balanced |",
    ):
        assert row in card
    assert "encoder dropout" not in card  # unset: the preset's
    assert "augmented copies" not in card
    assert "teacher |" not in render_model_card(teacher).split("## Training")[0]  # a teacher has no teacher column


def test_a_student_whose_teacher_is_gone_still_gets_a_card(pair):
    teacher, student = pair
    (teacher / "eval_test.json").unlink()
    card = render_model_card(student)
    assert "| accuracy | 0.8500 |\n" in card and "agreement with the teacher" not in card


def test_refused_for_a_folder_that_is_not_an_evaluated_model(pair, tmp_path):
    _, student = pair
    with pytest.raises(ModelLoadError, match="no such model directory"):
        write_model_card(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a textkd model folder"):
        write_model_card(tmp_path / "empty")
    (student / "eval_test.json").unlink()
    with pytest.raises(ModelLoadError, match="has not been evaluated on test yet"):
        write_model_card(student)


def test_a_readme_of_the_users_own_is_kept_unless_forced(pair):
    _, student = pair
    own = student / "README.md"
    own.write_text("# my notes\n", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="README.md that textkd did not write"):
        write_model_card(student)
    assert refresh_model_card(student) is None and own.read_text(encoding="utf-8") == "# my notes\n"
    assert refresh_model_card(student, create=True) is None  # what training calls: the user's README stays
    write_model_card(student, force=True)
    assert is_textkd_card(own)


def test_bench_adds_the_latency_to_an_existing_card(pair, tiny_texts, tmp_path):
    teacher, student = pair
    write_model_card(student)
    bench(
        [str(student)],
        texts=tiny_texts,
        workdir=tmp_path / "exports",
        backends=["torch"],
        threads=[1],
        warmup=1,
        runs=3,
        batch_size=8,
        throughput_texts=16,
    )
    p50 = json.loads((student / "bench.json").read_text())["results"][0]["p50_ms"]
    card = (student / "README.md").read_text(encoding="utf-8")
    assert f"| CPU latency p50, batch 1, 1 thread (ms) | {p50:.2f} | - |" in card
    assert not (teacher / "README.md").exists()  # bench writes no card where there was none
