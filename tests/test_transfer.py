"""Large corpora and the transfer set: streamed tokenisation and labelling, augmentation, unlabeled text."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import textkd
from textkd.cli import app
from textkd.config import Config, DataConfig, DistillConfig, StudentConfig, TeacherConfig, TrainConfig
from textkd.data.augment import (
    AugmentSettings,
    augment_texts,
    core_word,
    embedding_neighbours,
    join_words,
    split_words,
)
from textkd.data.batching import ModelInputs
from textkd.data.corpus import concat_encoded, count_texts, encode_file, iter_text_chunks
from textkd.data.tokenize import encode
from textkd.errors import ConfigError, DataError
from textkd.losses.functional import cross_entropy
from textkd.models.io import load_model, save_model
from textkd.training.cache import concat_outputs, label_corpus, teacher_outputs


@pytest.fixture(scope="module")
def teacher_dir(tiny_teacher, tiny_tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher")
    save_model(tiny_teacher, tiny_tokenizer, path, extra={"kind": "teacher", "data": {"max_len": 32}})
    return path


@pytest.fixture()
def corpus(tmp_path, tiny_texts):
    path = tmp_path / "corpus.txt"
    lines = []
    for i, text in enumerate(tiny_texts):
        lines.append(text)
        if i % 9 == 0:
            lines.append("   ")  # blank lines are skipped
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ corpus files


def test_chunks_skip_blank_lines_and_keep_order(corpus, tiny_texts):
    chunks = list(iter_text_chunks(corpus, chunk_size=7))
    assert [start for start, _ in chunks] == list(range(0, 40, 7))
    assert [t for _, texts in chunks for t in texts] == tiny_texts
    assert count_texts(corpus) == 40


def test_corpus_errors(tmp_path):
    with pytest.raises(DataError, match="no such corpus file"):
        list(iter_text_chunks(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nalso fine\n\xff\xfe broken\n")
    with pytest.raises(DataError, match=r"bad.txt:3: not UTF-8"):
        count_texts(bad)
    table = tmp_path / "queries.csv"
    table.write_text("text,label\ncard lost,x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"queries.csv: a corpus is plain text, one text per line, not a .csv table"):
        count_texts(table)  # its header and labels would be labelled as texts


def test_encode_file_matches_encode_and_is_memory_mapped(corpus, tiny_texts, tiny_tokenizer, tmp_path):
    encoded = encode_file(corpus, tiny_tokenizer, 16, tmp_path / "tokens", chunk_size=6)
    reference = encode(tiny_texts, tiny_tokenizer, 16)
    assert isinstance(encoded.offsets, np.memmap) and isinstance(encoded.ids, np.memmap)
    np.testing.assert_array_equal(np.asarray(encoded.offsets), reference.offsets)
    np.testing.assert_array_equal(np.asarray(encoded.ids), reference.ids)
    again = encode_file(corpus, tiny_tokenizer, 16, tmp_path / "tokens")  # reused, not recomputed
    assert again.key == encoded.key
    joined = concat_encoded([reference, encoded], tmp_path / "joined", chunk_rows=5)
    assert len(joined) == 80
    np.testing.assert_array_equal(joined.row(45), reference.row(5))
    batch = ModelInputs({"": joined}, np.zeros(80, dtype=np.int64)).batch(np.array([3, 43]))
    torch.testing.assert_close(batch["input_ids"][0], batch["input_ids"][1])


def test_label_corpus_matches_the_in_memory_cache(teacher_dir, corpus, tiny_texts, tmp_path):
    teacher, tokenizer = load_model(teacher_dir)
    streamed = label_corpus(
        teacher,
        tokenizer,
        corpus,
        tmp_path / "labels",
        max_len=32,
        need_pooled=True,
        batch_size=4,
        chunk_size=6,
        progress=False,
    )
    inputs = ModelInputs({"": encode(tiny_texts, tokenizer, 32)}, np.zeros(40, dtype=np.int64))
    direct = teacher_outputs(teacher, inputs, teacher_dir=None, need_pooled=True)
    assert isinstance(streamed.logits, np.memmap) and streamed.logits.shape == (40, 4)
    np.testing.assert_allclose(np.asarray(streamed.logits), direct.logits, atol=1e-5)
    np.testing.assert_allclose(np.asarray(streamed.pooled), direct.pooled, atol=1e-5)
    assert label_corpus(teacher, tokenizer, corpus, tmp_path / "labels", max_len=32, need_pooled=True).cached
    both = concat_outputs([direct, streamed], tmp_path / "both", chunk_rows=7)
    np.testing.assert_allclose(np.asarray(both.logits[40:]), direct.logits, atol=1e-5)


def test_label_command(teacher_dir, corpus, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "label",
            str(teacher_dir),
            "--texts",
            str(corpus),
            "-o",
            str(tmp_path / "o"),
            "--chunk-size",
            "16",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "40 texts labelled" in result.output
    assert np.load(tmp_path / "o" / "logits.npy").shape == (40, 4)
    assert json.loads((tmp_path / "o" / "meta.json").read_text())["rows"] == 40
    missing = CliRunner().invoke(app, ["label", str(teacher_dir), "--texts", str(tmp_path / "nope.txt")])
    assert missing.exit_code == 2 and "no such corpus file" in missing.output


def test_cross_entropy_ignores_rows_without_gold_labels():
    logits = torch.randn(4, 3, requires_grad=True)
    labels = torch.tensor([0, -100, 2, -100])
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    torch.testing.assert_close(cross_entropy(logits, labels), expected)
    none = cross_entropy(logits, torch.full((4,), -100))
    assert none.item() == 0.0
    none.backward()  # still part of the graph: a batch of teacher-only rows trains on the KD terms alone


# ------------------------------------------------------------------------------------------ augmentation


def test_words_split_and_join_for_english_and_chinese():
    assert split_words("Hello  big world") == ["Hello", "big", "world"]
    assert join_words(split_words("今天天气 good 很好")) == "今天天气good很好"


def test_augmentation_is_deterministic_and_changes_texts():
    texts = ["my card was declined at the shop", "how do I top up my account"]
    settings = AugmentSettings(p_mask=0.2, p_replace=0.3, p_ngram=0.25)
    neighbours = {"card": ["cards", "debit"], "shop": ["store"], "account": ["wallet"]}
    first = list(augment_texts(texts, 5, seed=3, settings=settings, neighbours=neighbours))
    assert first == list(augment_texts(texts, 5, seed=3, settings=settings, neighbours=neighbours))
    assert first != list(augment_texts(texts, 5, seed=4, settings=settings, neighbours=neighbours))
    assert len(first) == 10 and all(t and t not in texts for t in first)
    assert any("[MASK]" in t for t in first)
    assert any(w in t.split() for t in first for w in ("cards", "debit", "store", "wallet"))
    assert any(len(t.split()) < 5 for t in first)  # an n-gram was sampled


def test_replacement_keeps_a_words_punctuation():
    settings = AugmentSettings(p_mask=0.0, p_replace=1.0, p_ngram=0.0)
    neighbours = {"card": ["cards"], "week": ["month"]}
    (copy,) = augment_texts(['Is my "card?" here a week.'], 1, seed=0, settings=settings, neighbours=neighbours)
    assert copy == 'Is my "cards?" here a month.'
    assert core_word("...") == ("...", "", "") and core_word("it's") == ("", "it's", "")


def test_augmentation_settings_are_checked():
    with pytest.raises(ConfigError, match=r"augmentation p_mask must be in \[0, 1\], got 1.5"):
        AugmentSettings(p_mask=1.5)
    with pytest.raises(ConfigError, match="p_mask \\+ p_replace must be <= 1"):
        AugmentSettings(p_mask=0.6, p_replace=0.6)


def test_embedding_neighbours_are_the_nearest_whole_words(teacher_dir):
    teacher, tokenizer = load_model(teacher_dir)
    table = teacher.get_input_embeddings().weight.detach()
    vocab = tokenizer.get_vocab()
    week, album = vocab["week"], vocab["album"]
    with torch.no_grad():  # make "album" the closest word to "week"
        teacher.get_input_embeddings().weight[album] = table[week] * 2.0
    found = embedding_neighbours(teacher, tokenizer, {"week", "Week", "zzz-unknown"}, k=3)
    assert set(found) == {"week"}
    assert found["week"][0] == "album" and "week" not in found["week"] and len(found["week"]) == 3
    assert all(not w.startswith("##") and w not in tokenizer.all_special_tokens for w in found["week"])


# ------------------------------------------------------------------------------------------ transfer set


def _cfg(tiny_bert_dir, **distill) -> Config:
    train = TrainConfig(epochs=1, batch_size=8, lr=1e-3, patience=0, progress=False, device="cpu", seed=3)
    return Config(
        data=DataConfig(max_len=32),
        teacher=TeacherConfig(backbone=str(tiny_bert_dir), train=train),
        student=StudentConfig(preset="bert-tiny-2l-128", num_layers=2, hidden_size=32, train=train),
        distill=DistillConfig(**distill),
    )


def test_distill_with_augmentation_and_unlabeled_text(teacher_dir, tiny_bert_dir, tiny_splits, tmp_path):
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("snow is falling on the city\nthe drummer left the band\n", encoding="utf-8")
    cfg = _cfg(tiny_bert_dir, augment=3, unlabeled=[str(unlabeled)])
    results = textkd.distill(
        cfg, teacher_dir, tmp_path / "grid", methods=["none", "soft", "soft+hidden"], splits=tiny_splits
    )
    by_method = {r.method: r for r in results}
    soft_info = json.loads((by_method["soft"].output_dir / "textkd_model.json").read_text())
    assert soft_info["transfer_set"] == {
        "labelled_rows": 24,
        "teacher_labelled_rows": 24 * 3 + 2,
        "augment": 3,
        "unlabeled": [str(unlabeled)],
    }
    none_info = json.loads((by_method["none"].output_dir / "textkd_model.json").read_text())
    assert none_info["transfer_set"] is None  # the baseline trains on the gold rows only
    steps = {
        m: json.loads((r.output_dir / "metrics.jsonl").read_text().splitlines()[0])["step"]
        for m, r in by_method.items()
    }
    assert steps == {"none": 3, "soft": 13, "soft+hidden": 13}  # 24 rows vs 24 + 74 rows, 8 per step
    rows = json.loads((by_method["soft+hidden"].output_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert np.isfinite(rows["train_loss"]) and rows["train_hidden"] > 0
    summary = json.loads((tmp_path / "grid" / "comparison_bert-tiny-2l-128.json").read_text())
    assert [r["transfer_set"] is None for r in summary["results"]] == [True, False, False]
    assert "teacher-labelled texts" in summary["shared"]["data_order"]
    augmented = sorted((teacher_dir / ".textkd-cache").glob("augment-*.txt"))
    assert len(augmented) == 1 and count_texts(augmented[0]) == 72


def test_transfer_set_errors(teacher_dir, tiny_bert_dir, tiny_splits, tmp_path):
    with pytest.raises(DataError, match="no such unlabeled-text file"):
        textkd.distill(
            _cfg(tiny_bert_dir, unlabeled=[str(tmp_path / "none.txt")]),
            teacher_dir,
            tmp_path / "a",
            methods=["soft"],
            splits=tiny_splits,
        )
    with pytest.raises(ConfigError, match="need the teacher-output cache"):
        textkd.distill(
            _cfg(tiny_bert_dir, augment=1, cache=False),
            teacher_dir,
            tmp_path / "b",
            methods=["soft"],
            splits=tiny_splits,
        )


def test_teacher_is_not_changed_by_neighbour_search(tiny_teacher, tiny_tokenizer):
    teacher = copy.deepcopy(tiny_teacher)
    before = teacher.get_input_embeddings().weight.clone()
    embedding_neighbours(teacher, tiny_tokenizer, {"week"}, k=2)
    torch.testing.assert_close(teacher.get_input_embeddings().weight, before, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------ several teachers


@pytest.fixture(scope="module")
def second_teacher_dir(tiny_teacher, tiny_tokenizer, tmp_path_factory):
    other = copy.deepcopy(tiny_teacher)
    torch.manual_seed(11)
    with torch.no_grad():
        for param in other.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    path = tmp_path_factory.mktemp("teacher2")
    save_model(other, tiny_tokenizer, path, extra={"kind": "teacher"})
    return path


def test_combined_teachers_average_the_softened_distributions(tmp_path):
    from textkd.training.cache import TeacherOutputs, combine_teachers

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(10, 4)).astype(np.float32), rng.normal(size=(10, 4)).astype(np.float32)
    out = combine_teachers([TeacherOutputs(a), TeacherOutputs(b)], [3.0, 1.0], 2.0, tmp_path / "e", chunk_rows=3)
    soft = lambda z: torch.softmax(torch.as_tensor(np.array(z), dtype=torch.float64) / 2.0, -1)  # noqa: E731
    torch.testing.assert_close(soft(out.logits), 0.75 * soft(a) + 0.25 * soft(b), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="one non-negative weight per teacher"):
        combine_teachers([TeacherOutputs(a), TeacherOutputs(b)], [1.0], 2.0, tmp_path / "f")


def test_distill_from_two_teachers(teacher_dir, second_teacher_dir, tiny_bert_dir, tiny_splits, tmp_path):
    from textkd.training.cache import CACHE_DIRNAME

    cfg = _cfg(tiny_bert_dir, teachers=[str(second_teacher_dir)], teacher_weights=[1.0, 1.0], augment=1)
    [result] = textkd.distill(cfg, teacher_dir, tmp_path / "grid", methods=["soft"], splits=tiny_splits)
    info = json.loads((result.output_dir / "textkd_model.json").read_text())
    assert info["teachers"] == [str(teacher_dir), str(second_teacher_dir)]
    ensembles = sorted((teacher_dir / CACHE_DIRNAME).glob("ensemble-*"))
    assert len(ensembles) == 2  # the training rows, and the augmented texts
    rows = sorted(int(np.load(folder / "logits.npy", mmap_mode="r").shape[0]) for folder in ensembles)
    assert rows == [24, 24]
    with pytest.raises(ConfigError, match="soft\\+hidden matches one teacher"):
        textkd.distill(cfg, teacher_dir, tmp_path / "g", methods=["soft+hidden"], splits=tiny_splits)
    mse = _cfg(tiny_bert_dir, teachers=[str(second_teacher_dir)], kd_loss="mse")
    with pytest.raises(ConfigError, match="kd_loss=mse matches one teacher's logits"):
        textkd.distill(mse, teacher_dir, tmp_path / "m", methods=["soft"], splits=tiny_splits)
    bad = _cfg(tiny_bert_dir, teachers=[str(second_teacher_dir)], teacher_weights=[1.0])
    with pytest.raises(ConfigError, match="distill.teacher_weights needs 2 non-negative weights"):
        textkd.distill(bad, teacher_dir, tmp_path / "h", methods=["soft"], splits=tiny_splits)


def test_an_ensemble_transfer_set_is_not_the_main_teachers(
    teacher_dir, second_teacher_dir, tiny_bert_dir, tiny_splits, tmp_path
):
    from textkd.training.cache import CACHE_DIRNAME

    teacher = tmp_path / "teacher"  # a copy with an empty cache
    shutil.copytree(teacher_dir, teacher, ignore=shutil.ignore_patterns(CACHE_DIRNAME))
    cache = teacher / CACHE_DIRNAME
    textkd.distill(_cfg(tiny_bert_dir, augment=1), teacher, tmp_path / "one", methods=["soft"], splits=tiny_splits)
    [alone] = cache.glob("transfer-*")
    both = _cfg(tiny_bert_dir, teachers=[str(second_teacher_dir)], augment=1)
    textkd.distill(both, teacher, tmp_path / "two", methods=["soft"], splits=tiny_splits)
    [joined] = set(cache.glob("transfer-*")) - {alone}  # not the main teacher's joined outputs, reused
    logits = np.load(joined / "teacher" / "logits.npy")
    parts = [np.load(folder / "logits.npy") for folder in sorted(cache.glob("ensemble-*"))]
    assert len(parts) == 2 and logits.shape[0] == sum(len(p) for p in parts)
    assert any(np.array_equal(logits, np.concatenate(order)) for order in (parts, parts[::-1]))
    assert not np.array_equal(logits, np.load(alone / "teacher" / "logits.npy"))


def test_an_entry_lock_makes_a_second_run_wait_for_that_entry_only(tmp_path, monkeypatch):
    import threading

    from textkd.training.cache import entry_lock

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    same, other = threading.Event(), threading.Event()

    def second_run(path, entered):
        with entry_lock(path):
            entered.set()

    with entry_lock(tmp_path / "corpus-a"):
        workers = [
            threading.Thread(target=second_run, args=(tmp_path / "corpus-a", same)),
            threading.Thread(target=second_run, args=(tmp_path / "corpus-b", other)),
        ]
        for worker in workers:
            worker.start()
        assert other.wait(10)  # another entry: not held up
        assert not same.wait(0.5)  # the same entry: blocked while the first run holds it
    assert same.wait(10)
    for worker in workers:
        worker.join()
    assert (tmp_path / ".corpus-a.lock").is_file()


def test_entry_locks_are_not_taken_by_the_processes_of_one_launch(tmp_path, monkeypatch):
    from textkd.training.cache import entry_lock

    monkeypatch.setenv("WORLD_SIZE", "2")  # ordered by main_process_first; a lock would deadlock label_corpus
    with entry_lock(tmp_path / "x"), entry_lock(tmp_path / "x"):
        pass
    assert not (tmp_path / ".x.lock").exists()


def test_a_run_does_not_wait_while_another_labels_a_corpus_it_does_not_need(
    teacher_dir, tiny_bert_dir, tiny_splits, tmp_path, monkeypatch
):
    import threading

    import textkd.api as api_module

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    labelling, release, finished = threading.Event(), threading.Event(), threading.Event()
    real_label_corpus = api_module.label_corpus

    def slow_label_corpus(*args, **kwargs):  # a large corpus: labelling takes until `release`
        labelling.set()
        assert release.wait(120)
        return real_label_corpus(*args, **kwargs)

    monkeypatch.setattr(api_module, "label_corpus", slow_label_corpus)
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("snow is falling on the city\nthe drummer left the band\n", encoding="utf-8")
    labelling_run = threading.Thread(
        target=textkd.distill,
        daemon=True,
        kwargs={
            "cfg": _cfg(tiny_bert_dir, unlabeled=[str(unlabeled)]),
            "teacher_dir": teacher_dir,
            "output_dir": tmp_path / "a",
            "methods": ["soft"],
            "splits": tiny_splits,
        },
    )

    def plain_run():
        textkd.distill(_cfg(tiny_bert_dir), teacher_dir, tmp_path / "b", methods=["soft"], splits=tiny_splits)
        finished.set()

    labelling_run.start()
    try:
        assert labelling.wait(60)
        plain = threading.Thread(target=plain_run, daemon=True)
        plain.start()
        assert finished.wait(120)  # the training rows' logits are another entry: no waiting for the corpus
    finally:
        release.set()
    labelling_run.join(120)
    plain.join(120)
