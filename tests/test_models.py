from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, pipeline

from textkd.config import StudentConfig, TeacherConfig
from textkd.errors import ConfigError, ModelLoadError
from textkd.models import (
    BiLSTMClassifier,
    TextkdClassifier,
    build_student,
    build_teacher,
    count_parameters,
    default_teacher_layers,
    load_model,
    model_size_mb,
    read_marker,
    resolve_backbone,
    save_model,
)
from textkd.models.io import MARKER
from textkd.models.students import teacher_embedding_matrix

TEXTS = ["heavy rain is expected today", "goal", "the bank raised interest rates this week"]


def batch(tokenizer, texts=TEXTS, pad_to=None):
    if pad_to is None:
        return tokenizer(texts, padding=True, return_tensors="pt")
    return tokenizer(texts, padding="max_length", max_length=pad_to, return_tensors="pt")


def logits(model, encoded):
    with torch.no_grad():
        return model(**encoded).logits


def make_student(preset, tiny_teacher, tiny_tokenizer, names, texts, **overrides):
    torch.manual_seed(0)
    cfg = StudentConfig(preset=preset, **overrides)
    model, tokenizer = build_student(cfg, tiny_teacher, tiny_tokenizer, names, texts)
    return model.eval(), tokenizer


STUDENTS = {
    "transformer-random": ("bert-tiny-2l-128", {"num_layers": 1, "hidden_size": 32}),
    "transformer-teacher-layers": ("bert-tiny-2l-128", {"init": "teacher-layers"}),
    "transformer-own-wordpiece": ("bert-tiny-2l-128", {"num_layers": 1, "tokenizer": "wordpiece"}),
    "bilstm": ("bilstm", {"num_layers": 1, "hidden_size": 16}),
    "bilstm-teacher-embeddings": ("bilstm", {"hidden_size": 16, "embedding_init": "teacher"}),
    "bilstm-char": ("bilstm", {"num_layers": 1, "hidden_size": 16, "tokenizer": "char"}),
}


@pytest.fixture(params=sorted(STUDENTS))
def student(request, tiny_teacher, tiny_tokenizer, tiny_label_names, tiny_texts):
    preset, overrides = STUDENTS[request.param]
    return make_student(preset, tiny_teacher, tiny_tokenizer, tiny_label_names, tiny_texts, **overrides)


# ------------------------------------------------------------------------------------------- teacher


def test_teacher_output_contract(tiny_teacher, tiny_tokenizer):
    encoded = batch(tiny_tokenizer)
    out = tiny_teacher(**encoded, labels=torch.tensor([0, 1, 2]), output_hidden_states=True)
    assert out.logits.shape == (3, 4) and out.pooled.shape == (3, 32)
    assert out.loss is not None and out.loss.ndim == 0
    assert len(out.hidden_states) == 3 and out.hidden_states[0].shape == (
        3,
        encoded["input_ids"].shape[1],
        32,
    )
    assert out.attentions is None


def test_output_attentions_returns_maps_and_keeps_sdpa(tiny_teacher, tiny_tokenizer):
    encoded = batch(tiny_tokenizer)
    length = encoded["input_ids"].shape[1]
    with torch.no_grad():
        out = tiny_teacher(**encoded, output_attentions=True)
    assert len(out.attentions) == 2
    assert all(a.shape == (3, 2, length, length) for a in out.attentions)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(3, 2, length))
    assert tiny_teacher.config.encoder._attn_implementation == "sdpa"  # switched for that call only
    torch.testing.assert_close(out.logits, logits(tiny_teacher, encoded), atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_ignores_padding(pooling, tiny_bert_dir, tiny_tokenizer):
    model = TextkdClassifier.from_backbone(str(tiny_bert_dir), 4, pooling=pooling).eval()
    short, padded = batch(tiny_tokenizer), batch(tiny_tokenizer, pad_to=24)
    assert padded["input_ids"].shape[1] > short["input_ids"].shape[1]
    torch.testing.assert_close(logits(model, padded), logits(model, short), atol=1e-5, rtol=0)


def test_from_backbone_loads_the_encoder_weights(tiny_bert_dir, tiny_teacher):
    from safetensors.torch import load_file

    saved = load_file(tiny_bert_dir / "model.safetensors")
    for name, tensor in tiny_teacher.encoder.state_dict().items():
        if name in saved:
            torch.testing.assert_close(tensor, saved[name], atol=0, rtol=0)
    assert "embeddings.word_embeddings.weight" in saved


def test_build_teacher_from_scratch(tiny_texts, tiny_label_names):
    cfg = TeacherConfig(backbone="scratch", num_layers=1, hidden_size=32, num_heads=2, intermediate_size=64)
    model, tokenizer = build_teacher(cfg, tiny_label_names, tiny_texts)
    assert model.config.encoder.vocab_size == len(tokenizer)
    assert model.config.id2label[3] == "music" and model.config.head == "mlp"
    assert logits(model.eval(), batch(tokenizer)).shape == (3, 4)


def test_build_teacher_chinese_scratch_uses_char_tokenizer(tiny_label_names):
    cfg = TeacherConfig(backbone="scratch", num_layers=1, hidden_size=32, num_heads=2, intermediate_size=64)
    _, tokenizer = build_teacher(cfg, tiny_label_names, ["苹果iPhone发布", "iPhone很好"], language="zh")
    assert tokenizer.tokenize("苹果iPhone") == ["苹", "果", "iphone"]


def test_resolve_backbone():
    assert (resolve_backbone("minilm-l6") + "/config.json").endswith("model/config.json")
    assert resolve_backbone("bert-base-uncased") == "bert-base-uncased"
    assert resolve_backbone("/some/local/dir") == "/some/local/dir"


def test_hub_backbone_offline_raises_model_load_error(monkeypatch, tiny_label_names):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="cannot load 'bert-base-uncased' from the Hugging Face hub"):
        build_teacher(TeacherConfig(backbone="bert-base-uncased"), tiny_label_names, [])


def test_missing_local_backbone_raises(tiny_label_names, tmp_path):
    with pytest.raises(ModelLoadError, match="no such model directory"):
        build_teacher(TeacherConfig(backbone=str(tmp_path / "nope")), tiny_label_names, [])


@pytest.mark.slow
def test_minilm_backbone_loads_offline(tiny_label_names):
    model, tokenizer = build_teacher(TeacherConfig(backbone="minilm-l6"), tiny_label_names, [])
    assert model.config.encoder.hidden_size == 384 and model.config.encoder.num_hidden_layers == 6
    assert tokenizer.tokenize("Hello world") == ["hello", "world"]


# ------------------------------------------------------------------------------------------ students


def test_student_presets_build_with_their_shapes(tiny_teacher, tiny_tokenizer, tiny_label_names, tiny_texts):
    model, _ = make_student("tinybert-4l-312", tiny_teacher, tiny_tokenizer, tiny_label_names, tiny_texts)
    encoder = model.config.encoder
    assert (encoder.num_hidden_layers, encoder.hidden_size, encoder.num_attention_heads) == (4, 312, 12)
    assert encoder.intermediate_size == 1200 and model.config.head == "linear"
    assert encoder.vocab_size == len(tiny_tokenizer)


def test_unknown_preset_suggests_a_key(tiny_teacher, tiny_tokenizer, tiny_label_names):
    with pytest.raises(ConfigError, match="did you mean 'bilstm'"):
        build_student(StudentConfig(preset="bilstn"), tiny_teacher, tiny_tokenizer, tiny_label_names, [])


def test_student_forward_contract(student, tiny_tokenizer):
    model, tokenizer = student
    out = model(**batch(tokenizer), labels=torch.tensor([0, 1, 2]))
    assert out.logits.shape == (3, 4) and out.loss is not None and out.pooled.shape[0] == 3
    assert model.config.textkd_role == "student"


def test_default_teacher_layers():
    assert default_teacher_layers(6) == [0, 2, 4]
    assert default_teacher_layers(12) == [0, 2, 4, 6, 8, 10]
    assert default_teacher_layers(2) == [0]
    with pytest.raises(ConfigError, match="1..6 layers"):
        default_teacher_layers(6, 7)


@pytest.mark.parametrize("layers", [None, [1]])
def test_teacher_layers_student_copies_chosen_layers(layers, tiny_teacher, tiny_tokenizer, tiny_label_names):
    model, tokenizer = make_student(
        "bert-tiny-2l-128",
        tiny_teacher,
        tiny_tokenizer,
        tiny_label_names,
        [],
        init="teacher-layers",
        teacher_layers=layers,
    )
    chosen = layers or [0]
    assert tokenizer is tiny_tokenizer and model.config.textkd_teacher_layers == chosen
    assert model.config.encoder.num_hidden_layers == len(chosen)
    pairs = [(model.encoder.embeddings, tiny_teacher.encoder.embeddings), (model.head, tiny_teacher.head)]
    pairs += [(model.encoder.encoder.layer[i], tiny_teacher.encoder.encoder.layer[t]) for i, t in enumerate(chosen)]
    for student_module, teacher_module in pairs:
        teacher_state = teacher_module.state_dict()
        for name, tensor in student_module.state_dict().items():
            torch.testing.assert_close(tensor, teacher_state[name], atol=0, rtol=0)


def test_teacher_layers_student_needs_the_teacher_width(tiny_teacher, tiny_tokenizer, tiny_label_names):
    cfg = StudentConfig(preset="bert-tiny-2l-128", init="teacher-layers", hidden_size=128)
    with pytest.raises(ConfigError, match="student hidden_size 128 != teacher hidden_size 32"):
        build_student(cfg, tiny_teacher, tiny_tokenizer, tiny_label_names, [])


def test_teacher_layers_out_of_range(tiny_teacher, tiny_tokenizer, tiny_label_names):
    cfg = StudentConfig(preset="bert-tiny-2l-128", init="teacher-layers", teacher_layers=[0, 5])
    with pytest.raises(ConfigError, match=r"indices 0..1"):
        build_student(cfg, tiny_teacher, tiny_tokenizer, tiny_label_names, [])


def test_checkpoint_student_loads_a_local_bert(tiny_bert_dir, tiny_label_names):
    cfg = StudentConfig(preset="bert-tiny-2l-128", init=str(tiny_bert_dir))
    model, tokenizer = build_student(cfg, None, None, tiny_label_names, [])
    assert model.config.encoder.hidden_size == 32 and model.config.head == "linear"
    assert tokenizer.tokenize("the today") == ["the", "today"]


@pytest.mark.parametrize("init", ["random", "teacher-layers", "checkpoint"])
def test_encoder_dropout_reaches_every_encoder_layer_and_survives_save(
    init, tiny_teacher, tiny_tokenizer, tiny_label_names, tiny_bert_dir, tmp_path
):
    init = str(tiny_bert_dir) if init == "checkpoint" else init
    overrides = {"num_layers": 1, "hidden_size": 32} if init == "random" else {}
    model, tokenizer = make_student(
        "bert-tiny-2l-128",
        tiny_teacher,
        tiny_tokenizer,
        tiny_label_names,
        [],
        init=init,
        encoder_dropout=0.3,
        **overrides,
    )
    rates = {m.p for m in model.encoder.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.3}
    assert model.head[0].p == 0.1  # the head keeps the preset's dropout
    save_model(model, tokenizer, tmp_path / "student")
    loaded, _ = load_model(tmp_path / "student")
    assert {m.p for m in loaded.encoder.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}
    default, _ = make_student(
        "bert-tiny-2l-128", tiny_teacher, tiny_tokenizer, tiny_label_names, [], init=init, **overrides
    )
    assert {m.p for m in default.encoder.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}


@pytest.mark.parametrize(
    ("preset", "p", "message"),
    [("bert-tiny-2l-128", 1.0, r"must be in \[0, 1\)"), ("bilstm", 0.2, "a BiLSTM's dropout is student.dropout")],
)
def test_encoder_dropout_errors(preset, p, message, tiny_teacher, tiny_tokenizer, tiny_label_names):
    cfg = StudentConfig(preset=preset, encoder_dropout=p)
    with pytest.raises(ConfigError, match=message):
        build_student(cfg, tiny_teacher, tiny_tokenizer, tiny_label_names, ["a b"])


@pytest.mark.parametrize("init", ["bilstm", "random", "teacher-layers", "checkpoint"])
def test_student_dropout_overrides_the_preset_and_survives_save(
    init, tiny_teacher, tiny_tokenizer, tiny_label_names, tiny_bert_dir, tmp_path
):
    def rates(model):
        if isinstance(model, BiLSTMClassifier):
            return {model.dropout.p, model.lstm.dropout}
        return {m.p for m in model.head.modules() if isinstance(m, torch.nn.Dropout)}

    preset = "bilstm" if init == "bilstm" else "bert-tiny-2l-128"
    shapes = {"bilstm": {"num_layers": 2, "hidden_size": 16}, "random": {"num_layers": 1, "hidden_size": 32}}
    overrides = shapes.get(init, {}) | {"init": {"bilstm": "random", "checkpoint": str(tiny_bert_dir)}.get(init, init)}
    args = (preset, tiny_teacher, tiny_tokenizer, tiny_label_names, ["a b"])
    default, _ = make_student(*args, **overrides)
    assert rates(default) == {0.2 if preset == "bilstm" else 0.1}  # the preset's (the tiny teacher's head: 0.1)
    model, tokenizer = make_student(*args, dropout=0.35, **overrides)
    assert rates(model) == {0.35}
    others = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} - rates(model)
    assert others <= {0.1}  # a transformer's encoder keeps its own (student.encoder_dropout sets that)
    save_model(model, tokenizer, tmp_path / "student")
    assert rates(load_model(tmp_path / "student")[0]) == {0.35}


def test_student_dropout_must_be_a_probability():
    from textkd.config import Config, check_config

    with pytest.raises(ConfigError, match=r"student.dropout must be in \[0, 1\), got 1.0"):
        check_config(Config(student=StudentConfig(dropout=1.0)))
    check_config(Config(student=StudentConfig(dropout=0.0)))


@pytest.mark.parametrize(
    ("init", "pooling"), [("bilstm", "max"), ("bilstm", "last"), ("random", "cls"), ("teacher-layers", "cls")]
)
def test_student_pooling_overrides_the_preset_and_survives_save(
    init, pooling, tiny_teacher, tiny_tokenizer, tiny_label_names, tmp_path
):
    preset = "bilstm" if init == "bilstm" else "bert-tiny-2l-128"
    shape = {"num_layers": 1, "hidden_size": 16} if init != "teacher-layers" else {}
    args = (preset, tiny_teacher, tiny_tokenizer, tiny_label_names, ["a b"])
    init = "random" if init == "bilstm" else init
    default, _ = make_student(*args, init=init, **shape)
    assert default.config.pooling == "mean"  # every preset's, and the tiny teacher's
    model, tokenizer = make_student(*args, init=init, pooling=pooling, **shape)
    assert model.config.pooling == pooling
    encoded = batch(tokenizer)  # the shorter texts are padded
    with torch.no_grad():
        out = model(**encoded, output_hidden_states=True)
    if pooling == "max":  # the largest value over each text's real tokens, never a padding position
        real = encoded["attention_mask"].bool()
        expected = torch.stack([h[m].max(dim=0).values for h, m in zip(out.hidden_states[-1], real, strict=True)])
        torch.testing.assert_close(out.pooled, expected)
    save_model(model, tokenizer, tmp_path / "student")
    loaded, _ = load_model(tmp_path / "student")
    assert loaded.config.pooling == pooling
    torch.testing.assert_close(logits(loaded.eval(), encoded), out.logits)


@pytest.mark.parametrize("init", ["bilstm", "random", "teacher-layers"])
def test_student_head_overrides_the_preset_and_survives_save(
    init, tiny_teacher, tiny_tokenizer, tiny_label_names, tmp_path
):
    def linears(model):  # the Linear layers from the sentence vector to the logits
        if isinstance(model, BiLSTMClassifier):
            return [m for m in (model.head_hidden, model.classifier) if m is not None]
        return [m for m in model.head if isinstance(m, torch.nn.Linear)]

    preset = "bilstm" if init == "bilstm" else "bert-tiny-2l-128"
    shape = {"num_layers": 1, "hidden_size": 16} if init != "teacher-layers" else {}
    args = (preset, tiny_teacher, tiny_tokenizer, tiny_label_names, ["a b"])
    init = "random" if init == "bilstm" else init
    default_head = "mlp" if init == "teacher-layers" else "linear"  # the tiny teacher's, else every preset's
    default, _ = make_student(*args, init=init, **shape)
    assert len(linears(default)) == (2 if default_head == "mlp" else 1)
    other = "linear" if default_head == "mlp" else "mlp"
    model, tokenizer = make_student(*args, init=init, head=other, **shape)
    assert model.config.head == other
    width = model.pooled_size if isinstance(model, BiLSTMClassifier) else model.config.encoder.hidden_size
    shapes = [tuple(m.weight.shape) for m in linears(model)]
    assert shapes == ([(width, width)] if other == "mlp" else []) + [(len(tiny_label_names), width)]
    encoded = batch(tokenizer)
    save_model(model, tokenizer, tmp_path / "student")
    loaded, _ = load_model(tmp_path / "student")
    torch.testing.assert_close(logits(loaded.eval(), encoded), logits(model, encoded))


@pytest.mark.parametrize(
    ("preset", "key", "value", "message"),
    [
        ("bilstm", "pooling", "cls", "student.pooling 'cls' is not a BiLSTM student's pooling"),
        ("bert-tiny-2l-128", "pooling", "max", "student.pooling 'max' is not a transformer student's pooling"),
        ("bilstm", "head", "deep", "student.head 'deep' is not a BiLSTM student's head"),
        ("bert-tiny-2l-128", "head", "deep", "student.head 'deep' is not a transformer student's head"),
    ],
)
def test_student_pooling_and_head_errors(preset, key, value, message, tiny_teacher, tiny_tokenizer, tiny_label_names):
    cfg = StudentConfig(preset=preset, **{key: value})
    with pytest.raises(ConfigError, match=message):
        build_student(cfg, tiny_teacher, tiny_tokenizer, tiny_label_names, ["a b"])


def test_a_bilstm_saved_before_heads_existed_loads_with_a_linear_head(
    tiny_teacher, tiny_tokenizer, tiny_label_names, tmp_path
):
    model, tokenizer = make_student("bilstm", tiny_teacher, tiny_tokenizer, tiny_label_names, [], hidden_size=16)
    save_model(model, tokenizer, tmp_path / "student")
    config_path = tmp_path / "student" / "config.json"
    config = json.loads(config_path.read_text())
    del config["head"]  # as textkd wrote it before student.head
    config_path.write_text(json.dumps(config))
    loaded, _ = load_model(tmp_path / "student")
    assert loaded.config.head == "linear" and loaded.head_hidden is None
    encoded = batch(tokenizer)
    torch.testing.assert_close(logits(loaded.eval(), encoded), logits(model, encoded))


def test_bilstm_teacher_embeddings_are_projected(tiny_teacher, tiny_tokenizer, tiny_label_names):
    model, _ = make_student(
        "bilstm", tiny_teacher, tiny_tokenizer, tiny_label_names, [], hidden_size=16, embedding_init="teacher"
    )
    expected = teacher_embedding_matrix(tiny_teacher, 300)
    torch.testing.assert_close(model.embeddings.weight.detach(), expected / expected.std())  # the random init's scale
    assert model.embeddings.weight.std().item() == pytest.approx(1.0, abs=1e-4)
    same_width = teacher_embedding_matrix(tiny_teacher, 32)
    torch.testing.assert_close(same_width, tiny_teacher.get_input_embeddings().weight.detach())
    narrow = teacher_embedding_matrix(tiny_teacher, 8)  # top 8 principal directions of the centred table
    assert narrow.shape == (len(tiny_tokenizer), 8) and narrow.std(0)[0] >= narrow.std(0)[-1]


def test_bilstm_teacher_embeddings_need_the_teacher_tokenizer(tiny_teacher, tiny_tokenizer, tiny_label_names):
    cfg = StudentConfig(preset="bilstm", tokenizer="wordpiece", embedding_init="teacher")
    with pytest.raises(ConfigError, match="needs the teacher's tokenizer"):
        build_student(cfg, tiny_teacher, tiny_tokenizer, tiny_label_names, ["a b"])


def test_bilstm_zh_preset_metadata():
    from textkd.models import get_student_preset

    preset = get_student_preset("bilstm-zh")
    assert (preset.embedding_dim, preset.hidden_size, preset.num_layers, preset.dropout) == (256, 512, 4, 0.3)
    assert preset.max_len == 32


@pytest.mark.parametrize("pooling", ["mean", "max", "last"])
def test_bilstm_logits_do_not_depend_on_padding(pooling, tiny_tokenizer, tiny_label_names):
    torch.manual_seed(0)
    model, _ = build_student(
        StudentConfig(preset="bilstm", num_layers=2, hidden_size=16),
        None,
        tiny_tokenizer,
        tiny_label_names,
        [],
    )
    model.config.pooling = pooling
    model.eval()
    short, padded = batch(tiny_tokenizer), batch(tiny_tokenizer, pad_to=30)
    torch.testing.assert_close(logits(model, padded), logits(model, short), atol=1e-5, rtol=0)
    # Each text alone (no padding at all) gives the same logits as inside the padded batch.
    alone = torch.cat([logits(model, batch(tiny_tokenizer, [text])) for text in TEXTS])
    torch.testing.assert_close(alone, logits(model, short), atol=1e-5, rtol=0)


def test_bilstm_hidden_states(tiny_tokenizer, tiny_label_names):
    model, _ = build_student(
        StudentConfig(preset="bilstm", num_layers=1, hidden_size=16),
        None,
        tiny_tokenizer,
        tiny_label_names,
        [],
    )
    encoded = batch(tiny_tokenizer)
    out = model(**encoded, output_hidden_states=True, output_attentions=True)
    length = encoded["input_ids"].shape[1]
    assert out.hidden_states[0].shape == (3, length, 300) and out.hidden_states[1].shape == (3, length, 32)
    assert out.pooled.shape == (3, 32) and out.attentions is None


# ---------------------------------------------------------------------------------------------- I/O


def test_teacher_save_load_gives_identical_logits(tiny_teacher, tiny_tokenizer, tmp_path):
    save_model(tiny_teacher, tiny_tokenizer, tmp_path / "teacher", extra={"dataset": "tiny"})
    marker = read_marker(tmp_path / "teacher")
    assert {k: marker[k] for k in ("format", "kind", "dataset")} == {"format": 1, "kind": "teacher", "dataset": "tiny"}
    assert marker["files"] == ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    model, tokenizer = load_model(tmp_path / "teacher")
    assert isinstance(model, TextkdClassifier) and not model.training
    encoded = batch(tokenizer)
    torch.testing.assert_close(logits(model, encoded), logits(tiny_teacher, encoded), atol=0, rtol=0)
    assert sorted(p.name for p in (tmp_path / "teacher").iterdir()) == sorted(
        ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER]
    )


def test_student_save_load_gives_identical_logits(student, tmp_path):
    model, tokenizer = student
    save_model(model, tokenizer, tmp_path / "student")
    assert read_marker(tmp_path / "student")["kind"] == "student"
    loaded, loaded_tokenizer = load_model(tmp_path / "student")
    assert type(loaded) is type(model)
    # file-buffer offsets are realigned: CPU kernels pick their path by alignment (1-ulp drift otherwise)
    assert all(p.data_ptr() % 64 == 0 for p in loaded.parameters())
    encoded = batch(loaded_tokenizer)
    torch.testing.assert_close(logits(loaded, encoded), logits(model, encoded), atol=0, rtol=0)


@pytest.mark.parametrize("kind", ["teacher", "bilstm"])
def test_saved_dir_loads_with_auto_classes_and_pipeline(kind, tiny_teacher, tiny_tokenizer, tiny_label_names, tmp_path):
    if kind == "teacher":
        model = tiny_teacher
    else:
        model, _ = make_student("bilstm", tiny_teacher, tiny_tokenizer, tiny_label_names, [], hidden_size=16)
    save_model(model, tiny_tokenizer, tmp_path / kind)
    auto = AutoModelForSequenceClassification.from_pretrained(tmp_path / kind).eval()
    assert type(auto) is type(model)
    assert auto.config.id2label == dict(enumerate(tiny_label_names))
    classify = pipeline("text-classification", model=str(tmp_path / kind))
    predictions = classify(TEXTS)
    expected = logits(model, batch(tiny_tokenizer)).argmax(-1).tolist()
    assert [p["label"] for p in predictions] == [tiny_label_names[i] for i in expected]


def test_save_replaces_an_existing_dir_atomically(tiny_teacher, tiny_tokenizer, tmp_path, monkeypatch):
    target = tmp_path / "model"
    save_model(tiny_teacher, tiny_tokenizer, target, extra={"round": 1})
    save_model(tiny_teacher, tiny_tokenizer, target, extra={"round": 2})
    assert read_marker(target)["round"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging or old dirs left behind

    def broken_save(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(tiny_tokenizer), "save_pretrained", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model(tiny_teacher, tiny_tokenizer, target, extra={"round": 3})
    assert read_marker(target)["round"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_save_into_a_run_dir_keeps_other_files(tiny_teacher, tiny_tokenizer, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    save_model(tiny_teacher, None, run, extra={"round": 1})
    assert not (run / "tokenizer.json").exists() and read_marker(run)["round"] == 1
    save_model(tiny_teacher, tiny_tokenizer, run, extra={"round": 2})
    assert (run / "tokenizer.json").exists()
    save_model(tiny_teacher, None, run, extra={"round": 3})
    assert not (run / "tokenizer.json").exists()  # a file of the previous save that the new one lacks
    assert (run / "metrics.jsonl").read_text() == '{"epoch": 1}\n' and (run / "checkpoint").is_dir()
    assert read_marker(run)["round"] == 3 and not (run / ".textkd_saving").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_interrupted_save_is_refused(tiny_teacher, tiny_tokenizer, tmp_path):
    save_model(tiny_teacher, tiny_tokenizer, tmp_path / "m")
    (tmp_path / "m" / ".textkd_saving").touch()
    with pytest.raises(ModelLoadError, match="save into it was interrupted"):
        load_model(tmp_path / "m")


def test_pickle_checkpoint_is_refused_unless_trusted(tiny_teacher, tiny_tokenizer, tmp_path):
    path = tmp_path / "legacy"
    save_model(tiny_teacher, tiny_tokenizer, path)
    torch.save(tiny_teacher.state_dict(), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="pickle checkpoint .*pytorch_model.bin.* arbitrary code"):
        load_model(path)
    model, _ = load_model(path, trust_pickle=True)
    encoded = batch(tiny_tokenizer)
    torch.testing.assert_close(logits(model, encoded), logits(tiny_teacher, encoded), atol=0, rtol=0)


def test_pt_file_is_refused_and_missing_dirs_raise(tiny_teacher, tiny_tokenizer, tmp_path):
    path = tmp_path / "pt"
    save_model(tiny_teacher, tiny_tokenizer, path)
    torch.save(tiny_teacher.state_dict(), path / "best.pt")
    (path / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="best.pt"):
        load_model(path)
    model, _ = load_model(path, trust_pickle=True)
    assert isinstance(model, TextkdClassifier)
    with pytest.raises(ModelLoadError, match="no such model directory"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no model.safetensors"):
        load_model(tmp_path / "empty")


def test_count_parameters_and_size(tiny_teacher, tiny_tokenizer, tmp_path):
    n = count_parameters(tiny_teacher)
    assert n == sum(p.numel() for p in tiny_teacher.parameters())
    frozen = copy.deepcopy(tiny_teacher)
    frozen.encoder.requires_grad_(False)
    assert count_parameters(frozen, trainable_only=True) == sum(p.numel() for p in frozen.head.parameters())
    save_model(tiny_teacher, tiny_tokenizer, tmp_path / "m")
    size = model_size_mb(tmp_path / "m")
    assert size == pytest.approx((tmp_path / "m" / "model.safetensors").stat().st_size / 2**20)
    assert n * 4 / 2**20 <= size < n * 4 / 2**20 + 0.1
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model_type"] == "textkd-classifier"


def test_bilstm_is_registered():
    from transformers import AutoConfig

    assert AutoConfig.for_model("textkd-bilstm").__class__.__name__ == "BiLSTMConfig"
    assert BiLSTMClassifier.config_class.model_type == "textkd-bilstm"


def test_invalid_shapes_and_options_raise_config_errors(tiny_teacher, tiny_tokenizer, tiny_label_names):
    from textkd.models import TextkdClassifierConfig, own_tokenizer

    with pytest.raises(ConfigError, match="unknown pooling 'max'"):
        TextkdClassifierConfig(encoder={"hidden_size": 32, "num_attention_heads": 2}, pooling="max")
    with pytest.raises(ConfigError, match="unknown tokenizer 'bpe'"):
        own_tokenizer("bpe", ["a"], 10)
    with pytest.raises(ConfigError, match="unknown student.tokenizer 'foo'") as caught:  # the student has 3 kinds
        build_student(
            StudentConfig(preset="bilstm", tokenizer="foo"), tiny_teacher, tiny_tokenizer, tiny_label_names, ["a text"]
        )
    assert caught.value.hint == "use teacher, wordpiece or char"
    cfg = StudentConfig(preset="tinybert-4l-312", hidden_size=32)  # 12 heads do not divide 32
    with pytest.raises(ConfigError, match="hidden_size 32 is not a multiple of num_heads 12"):
        build_student(cfg, tiny_teacher, tiny_tokenizer, tiny_label_names, [])
