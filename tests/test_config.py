from __future__ import annotations

import pytest
import yaml

from textkd.config import (
    Config,
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
