from __future__ import annotations

import pytest
import yaml

from textkd.config import (
    Config,
    check_config,
    load_config,
    parse_cli_overrides,
    save_config,
)
from textkd.errors import ConfigError


def test_defaults_are_the_tutorial_settings():
    cfg = Config()
    assert (cfg.distill.temperature, cfg.distill.alpha) == (4.0, 0.7)
    assert cfg.teacher.pooling == "mean" and cfg.teacher.head == "mlp"
    assert cfg.student.train.lr == 3e-4 and cfg.teacher.train.lr == 1e-4


def test_recipe_then_dotted_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  name: banking77\nteacher:\n  train:\n    epochs: 3\n")
    cfg = load_config(recipe, {"teacher.train.lr": "2e-5", "student.train.epochs": "5"})
    assert cfg.data.name == "banking77"
    assert cfg.teacher.train.epochs == 3 and cfg.teacher.train.lr == 2e-5
    # a nested override keeps the section's own defaults (student lr stays 3e-4)
    assert cfg.student.train.epochs == 5 and cfg.student.train.lr == 3e-4


def test_unknown_key_names_it_and_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'teacher\.trian'; did you mean 'teacher\.train'"):
        load_config(overrides={"teacher.trian.lr": 1})
    recipe = tmp_path / "r.yaml"
    recipe.write_text("distill:\n  temprature: 2\n")
    with pytest.raises(ConfigError, match="did you mean 'distill.temperature'"):
        load_config(recipe)


def test_bad_value_type():
    with pytest.raises(ConfigError, match=r"'teacher\.train\.epochs' expects int, got 'ten'"):
        load_config(overrides={"teacher.train.epochs": "ten"})
    with pytest.raises(ConfigError, match="expects bool"):
        load_config(overrides={"teacher.train.bucket": "maybe"})


def test_list_values_from_cli_and_yaml():
    cfg = load_config(overrides={"student.teacher_layers": "0,2,4"})
    assert cfg.student.teacher_layers == [0, 2, 4]
    # YAML's flow style, as a user copies it from a recipe: no bracket left on the first or last item
    cfg = load_config(overrides={"distill.teachers": "[runs/a/teacher, runs/b/teacher]"})
    assert cfg.distill.teachers == ["runs/a/teacher", "runs/b/teacher"]


def test_missing_and_invalid_recipe(tmp_path):
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_config(bad)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(overrides={"data.name": "banking77", "distill.alpha": "0.5"})
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["distill"]["alpha"] == 0.5


def test_parse_cli_overrides_forms_and_alias():
    args = ["--train.lr", "1e-4", "--data.max-len=64", "--train.bucket"]
    out = parse_cli_overrides(args, {"train": "teacher.train"})
    assert out == {"teacher.train.lr": "1e-4", "data.max_len": "64", "teacher.train.bucket": "true"}
    with pytest.raises(ConfigError, match="unexpected argument 'oops'"):
        parse_cli_overrides(["oops"])
    with pytest.raises(ConfigError, match="unknown option --epochs"):
        parse_cli_overrides(["--epochs", "3"])


def test_mapping_overrides_parse_from_the_command_line():
    from textkd.config import load_config

    cfg = load_config(None, {"run.student_overrides": '{"bilstm": {"train.lr": 1.0e-3}}'})
    assert cfg.run.student_overrides == {"bilstm": {"train.lr": 0.001}}
    with pytest.raises(ConfigError, match="'run.student_overrides' expects a mapping, got '3'"):
        load_config(None, {"run.student_overrides": "3"})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"student.train.epochs": 0}, r"student.train.epochs must be >= 1, got 0"),
        ({"teacher.train.batch_size": 0}, r"teacher.train.batch_size must be >= 1, got 0"),
        ({"student.train.eval_batch_size": -1}, r"student.train.eval_batch_size must be >= 1, got -1"),
        ({"student.train.grad_accum": 0}, r"student.train.grad_accum must be >= 1"),
        ({"student.train.patience": -1}, r"student.train.patience must be >= 0"),
        ({"student.train.max_steps": 0}, r"student.train.max_steps must be >= 1"),
        ({"teacher.train.lr": 0}, r"teacher.train.lr must be > 0, got 0.0"),
        ({"student.train.weight_decay": -0.1}, r"student.train.weight_decay must be >= 0"),
        ({"student.train.warmup_ratio": 1.0}, r"student.train.warmup_ratio must be in \[0, 1\), got 1.0"),
        ({"student.train.ema_decay": 1.0}, r"student.train.ema_decay must be in \[0, 1\)"),
        (
            {"teacher.train.mixed_precision": "fp8"},
            r"teacher.train.mixed_precision must be one of auto, no, bf16, fp16",
        ),
        ({"teacher.label_smoothing": 1.0}, r"teacher.label_smoothing must be in \[0, 1\)"),
        ({"distill.augment": -2}, r"distill.augment must be >= 0, got -2"),
        ({"distill.augment_p_ngram": 1.5}, r"distill.augment_p_ngram must be in \[0, 1\], got 1.5"),
        ({"teacher.dropout": 2.0}, r"teacher.dropout must be in \[0, 1\), got 2.0"),
        ({"student.num_layers": 0}, r"student.num_layers must be >= 1, got 0"),  # 0 silently meant the preset's
        ({"student.hidden_size": 0}, r"student.hidden_size must be >= 1, got 0"),
        ({"distill.teacher_weights": [1.0, 2.0]}, r"distill.teacher_weights needs 1 non-negative weights"),  # 1 teacher
        ({"data.max_len": 0}, r"data.max_len must be >= 1, got 0"),
        # Misspelt names, refused before the data or the teacher loads (and by --print-config).
        ({"student.preset": "bilstn"}, r"unknown student preset 'bilstn' — did you mean 'bilstm'\?"),
        ({"student.pooling": "max"}, r"student.pooling 'max' is not a transformer student's pooling"),
        ({"student.preset": "bilstm", "student.pooling": "cls"}, r"'cls' is not a BiLSTM student's pooling"),
        ({"student.head": "mpl"}, r"student.head 'mpl' is not a transformer student's head"),
        ({"student.tokenizer": "bpe"}, r"unknown student.tokenizer 'bpe'"),
        ({"student.embedding_init": "glove"}, r"unknown student.embedding_init 'glove'"),
        ({"teacher.pooling": "max"}, r"teacher.pooling must be one of mean, cls, got 'max'"),
        ({"teacher.head": "mpl"}, r"teacher.head must be one of mlp, linear, got 'mpl'"),
        ({"distill.method": "sofft"}, r"unknown distill.method 'sofft'; did you mean 'soft'\?"),
        ({"distill.kd_loss": "msee"}, r"unknown distill.kd_loss 'msee'; did you mean 'mse'\?"),
        ({"distill.alpha": 1.5}, r"distill.alpha must be in \[0, 1\], got 1.5"),
        ({"distill.temperature_schedule": "cosin"}, r"unknown distill.temperature_schedule 'cosin'"),
        ({"distill.alpha_schedule": "linear"}, r"distill.alpha_schedule is 'linear' but distill.alpha_end is not set"),
    ],
)
def test_check_config_names_the_key_of_a_value_no_run_can_use(override, message):
    cfg = load_config(overrides=override)
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)
    section = next(iter(override)).split(".")[0]
    check_config(cfg, tuple(s for s in ("data", "teacher", "student", "distill") if s != section))  # only its own
    check_config(load_config())  # the defaults pass


def test_distill_and_run_check_the_config_before_any_work(tmp_path):
    from textkd import api, pipeline

    cfg = load_config(overrides={"student.train.epochs": 0, "output_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="student.train.epochs must be >= 1"):
        api.distill(cfg, tmp_path / "no-teacher-here")  # before the teacher is looked for
    per_student = load_config(
        overrides={
            "output_dir": str(tmp_path),
            "run.students": ["bilstm"],
            "run.student_overrides": {"bilstm": {"train.batch_size": 0}},
        }
    )
    with pytest.raises(ConfigError, match="student.train.batch_size must be >= 1, got 0"):
        pipeline.run(per_student)  # before the teacher trains
    assert not list(tmp_path.rglob("teacher"))
