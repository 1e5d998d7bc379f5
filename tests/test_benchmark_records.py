"""Benchmark records name the commit that was checked out when the script started."""

import importlib.util
import json
from pathlib import Path

COMMON = Path(__file__).resolve().parents[1] / "benchmarks" / "_common.py"


def _load_common():
    spec = importlib.util.spec_from_file_location("bench_common", COMMON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_record_keeps_the_commit_read_at_start(tmp_path, monkeypatch):
    common = _load_common()
    monkeypatch.setattr(common, "COMMIT_AT_START", "abc1234")
    monkeypatch.setattr(common, "git_commit", lambda: "moved00")  # HEAD moved while the benchmark ran
    path = common.write_results("probe", {"accuracy": 0.5}, tmp_path)
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["commit"] == "abc1234"
    assert record["benchmark"] == "probe" and record["accuracy"] == 0.5
