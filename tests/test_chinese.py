"""Chinese end to end (issue 6): character tokenisation of mixed text, and a tiny THUCNews-style run.

The run uses `recipes/thucnews.yaml` itself, shrunk by overrides: a from-scratch character BERT teacher and a
BiLSTM student trained with none, hard, soft and soft+hidden, from header-less `text<TAB>label_id` files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textkd.cli import app
from textkd.data.tokenizers import build_char_tokenizer
from textkd.models.io import load_model

RECIPES = Path(__file__).resolve().parent.parent / "recipes"

_TOPICS = {
    0: ["股市", "基金", "银行", "利率", "股票"],
    1: ["球队", "比赛", "冠军", "足球", "篮球"],
    2: ["游戏", "玩家", "手游", "网游", "电竞"],
}
_FRAMES = ["{w}今日大涨", "{w}迎来新变化", "关于{w}的最新消息", "{w}再创新高", "专家解读{w}走势", "{w}NBA 2024年"]


def _rows(seed: int) -> list[str]:
    rows = []
    for i, frame in enumerate(_FRAMES):
        for label, words in _TOPICS.items():
            word = words[(i + seed) % len(words)]
            rows.append(f"{frame.format(w=word)}\t{label}")
    return rows


def test_char_tokenizer_on_mixed_chinese_english_digits():
    texts = ["2024年GDP增长5.2%", "iPhone 15 Pro发布", "GDP数据公布：增长5.2%", "iPhone销量2024年下降"] * 2
    tokenizer = build_char_tokenizer(texts)
    assert tokenizer.tokenize("2024年GDP增长5.2%") == ["2024", "年", "gdp", "增", "长", "5", ".", "2", "%"]
    assert tokenizer.tokenize("iPhone 15 Pro发布") == ["iphone", "15", "pro", "发", "布"]
    assert tokenizer.tokenize("Phone 2025") == ["p", "##h", "##o", "##n", "##e", "2", "##0", "##2", "##5"]
    assert tokenizer.tokenize("全新") == ["[UNK]", "[UNK]"]  # characters never seen in training


def test_tiny_chinese_distillation_end_to_end(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text("\n".join(_rows(0) * 2) + "\n", encoding="utf-8")
    (data / "dev.txt").write_text("\n".join(_rows(1)) + "\n", encoding="utf-8")
    (data / "test.txt").write_text("\n".join(_rows(2)) + "\n", encoding="utf-8")
    (data / "class.txt").write_text("finance\nsports\ngame", encoding="utf-8")
    args = [
        "run",
        str(RECIPES / "thucnews.yaml"),
        "--output-dir",
        str(tmp_path / "runs"),
        "--name",
        "zh",
        "--data.name",
        "files",
        "--data.train",
        str(data / "train.txt"),
        "--data.validation",
        str(data / "dev.txt"),
        "--data.test",
        str(data / "test.txt"),
        "--data.format",
        "tsv",
        "--data.text-column",
        "0",
        "--data.label-column",
        "1",
        "--data.label-file",
        str(data / "class.txt"),
        "--teacher.num-layers",
        "1",
        "--teacher.hidden-size",
        "32",
        "--teacher.num-heads",
        "2",
        "--teacher.intermediate-size",
        "64",
        "--teacher.train.epochs",
        "2",
        "--teacher.train.batch-size",
        "8",
        "--teacher.train.lr",
        "3e-3",
        "--teacher.train.progress",
        "false",
        "--student.num-layers",
        "1",
        "--student.hidden-size",
        "16",
        "--student.train.epochs",
        "2",
        "--student.train.batch-size",
        "8",
        "--student.train.progress",
        "false",
        "--run.bench",
        "false",
        "--run.export",
        "false",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "zh"
    results = json.loads((run_dir / "results.json").read_text())
    methods = sorted(s["method"] for s in results["students"])
    assert methods == ["hard", "none", "soft", "soft+hidden"]
    teacher, tokenizer = load_model(run_dir / "teacher")
    assert tokenizer.tokenize("足球比赛") == ["足", "球", "比", "赛"]  # the teacher's character vocabulary
    assert teacher.config.id2label == {0: "finance", 1: "sports", 2: "game"}
    for student in results["students"]:
        assert student["preset"] == "bilstm-zh" and 0.0 <= student["accuracy"] <= 1.0
    student_dir = next((run_dir / "students").glob("bilstm-zh-soft-hidden"))
    model, _ = load_model(student_dir)
    assert type(model).__name__ == "BiLSTMClassifier" and model.config.hidden_size == 16


@pytest.mark.realdata
def test_thucnews_recipe_loads_partial_train(data_dir):
    from textkd.config import load_config
    from textkd.data.loading import load_splits

    cfg = load_config(RECIPES / "thucnews.yaml", {"data.data_dir": str(data_dir)})
    splits = load_splits(cfg.data)
    assert splits.partial and len(splits.train) == 33_590 and len(splits.test) == 10_000
    assert splits.language == "zh" and len(splits.label_names) == 10
