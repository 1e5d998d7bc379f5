"""Benchmark scripts: records name the commit checked out when the script started; `distill_grid --resume`
reaches the students."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(script: str, name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_common():
    return _load("_common.py", "bench_common")


def test_record_keeps_the_commit_read_at_start(tmp_path, monkeypatch):
    common = _load_common()
    monkeypatch.setattr(common, "COMMIT_AT_START", "abc1234")
    monkeypatch.setattr(common, "git_commit", lambda: "moved00")  # HEAD moved while the benchmark ran
    path = common.write_results("probe", {"accuracy": 0.5}, tmp_path)
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["commit"] == "abc1234"
    assert record["benchmark"] == "probe" and record["accuracy"] == 0.5


@pytest.mark.parametrize("flag", [[], ["--resume"]])
def test_distill_grid_passes_resume_to_every_student(flag, tiny_splits, tmp_path, monkeypatch):
    grid = _load("distill_grid.py", "bench_distill_grid")
    calls = []
    monkeypatch.setattr(grid.textkd, "load_data", lambda data_cfg: tiny_splits)
    monkeypatch.setattr(grid.textkd, "distill", lambda *args, **kwargs: calls.append(kwargs) or [])
    monkeypatch.setattr(sys, "argv", ["distill_grid.py", str(ROOT / "recipes" / "banking77.yaml"), "--name", "probe",
                                      "--teacher", str(tmp_path / "teacher"), "--out", str(tmp_path / "out"),
                                      "--student", "bilstm:soft", "--student", "tinybert-4l-312:none", *flag])
    grid.main()
    assert [call["resume"] for call in calls] == [bool(flag)] * 2
