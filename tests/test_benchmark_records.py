"""Benchmark scripts: records name the commit checked out when the script started; `distill_grid --resume`
reaches the students; every committed record in benchmarks/results/ keeps the record contract."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(script: str, name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_common():
    return _load("_common.py", "bench_common")


RECORDS = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
# What every record names, each as the keys that may carry it (one record per run, or a list of runs); the machine
# is checked apart, at the top level.
NAMED = {
    "dataset": ("dataset",),
    "teacher": ("teacher",),
    "student preset": ("student", "student_preset"),
    "method": ("method",),
    "time": ("wall_s", "total_wall_s", "epoch_s"),
}


def _dicts(value):
    """Every dict inside a JSON value, the value itself first."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _dicts(item)


def contract_problems(record: dict, filename: str) -> list[str]:
    """What a result record lacks against the benchmarks' contract (empty when it keeps it)."""
    dicts = list(_dicts(record))
    found = set().union(*(d.keys() for d in dicts))
    problems = [f"names no {what} ({' / '.join(keys)})" for what, keys in NAMED.items() if not found & set(keys)]
    if not isinstance(record.get("machine"), dict):
        problems.append("has no top-level machine description")
    for row in (d for d in dicts if "accuracy" in d):
        for key in ("accuracy", "macro_f1"):
            value = row.get(key, "missing")
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                problems.append(f"{key} is {value!r}, not a fraction in [0, 1]")
    if filename.startswith("load_test") and not isinstance(record.get("requests_per_s"), (int, float)):
        problems.append("a load test without requests_per_s")
    if "vs_peer" in filename and not (isinstance(record.get("speedup"), (int, float)) or record.get("quick")):
        problems.append("a comparison with the peer without its speedup")
    return problems


@pytest.mark.parametrize("path", RECORDS, ids=lambda path: path.stem)
def test_every_committed_record_keeps_the_contract(path):
    assert contract_problems(json.loads(path.read_text(encoding="utf-8")), path.name) == []


def test_the_contract_check_names_what_a_record_lacks():
    record = {
        "machine": {"label": "CPU x2"},
        "dataset": "banking77",
        "runs": [{"teacher": "t", "student": "bilstm", "method": "soft", "accuracy": 91.2, "wall_s": 1.0}],
    }
    assert contract_problems(record, "cpu_probe.json") == [
        "accuracy is 91.2, not a fraction in [0, 1]",
        "macro_f1 is 'missing', not a fraction in [0, 1]",
    ]
    del record["runs"][0]["wall_s"]
    assert contract_problems(record, "load_test_probe.json")[0] == "names no time (wall_s / total_wall_s / epoch_s)"
    assert contract_problems(record, "load_test_probe.json")[-1] == "a load test without requests_per_s"


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
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "distill_grid.py",
            str(ROOT / "recipes" / "banking77.yaml"),
            "--name",
            "probe",
            "--teacher",
            str(tmp_path / "teacher"),
            "--out",
            str(tmp_path / "out"),
            "--student",
            "bilstm:soft",
            "--student",
            "tinybert-4l-312:none",
            *flag,
        ],
    )
    grid.main()
    assert [call["resume"] for call in calls] == [bool(flag)] * 2


def _gpu_vs_peer_argv(tmp_path, name: str, *extra: str) -> list[str]:
    """gpu_vs_peer.py's command line with dummy inputs, writing `<tmp_path>/<name>.json`."""
    outputs = ["--out", str(tmp_path / "out"), "--results-dir", str(tmp_path), "--name", name]
    return ["gpu_vs_peer.py", "--minilm", "m", "--data-dir", "d", *extra, *outputs]


def test_gpu_vs_peer_repeats_flip_the_order_and_report_medians(tmp_path, monkeypatch):
    bench = _load("gpu_vs_peer.py", "bench_gpu_vs_peer")
    calls, walls = [], {"textkd": iter([10.0, 30.0, 20.0]), "peer": iter([50.0, 40.0, 90.0])}

    def fake(who):
        def run(args):
            calls.append((who, Path(args.out).name))
            total = next(walls[who])
            job = {"accuracy": 0.9, "macro_f1": 0.8, "wall_s": total / 3}
            return {"teacher": job, "student_kd": job, "student_nokd": job, "total_wall_s": total}

        return run

    monkeypatch.setattr(bench, "run_textkd", fake("textkd"))
    monkeypatch.setattr(bench, "run_peer", fake("peer"))
    monkeypatch.setattr(sys, "argv", _gpu_vs_peer_argv(tmp_path, "r", "--repeats", "3"))
    bench.main()
    assert calls == [
        ("textkd", "repeat0"),
        ("peer", "repeat0"),
        ("peer", "repeat1"),
        ("textkd", "repeat1"),
        ("textkd", "repeat2"),
        ("peer", "repeat2"),
    ]
    record = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert record["runs"]["textkd"]["total_wall_s"] == 20.0 and record["runs"]["peer"]["total_wall_s"] == 50.0
    assert record["speedup"] == 2.5  # the ratio of the medians, not the median of the ratios (5, 4/3, 4.5)
    assert [round(r["speedup"], 3) for r in record["per_repeat"]] == [5.0, 1.333, 4.5]
    assert record["runs"]["textkd"]["student_kd"]["same_accuracy_every_repeat"]


def test_gpu_vs_peer_rejects_an_order_without_both_pipelines(monkeypatch):
    bench = _load("gpu_vs_peer.py", "bench_gpu_vs_peer")
    monkeypatch.setattr(sys, "argv", ["gpu_vs_peer.py", "--minilm", "m", "--data-dir", "d", "--order", "textkd"])
    with pytest.raises(SystemExit, match="must name textkd and peer once each"):
        bench.main()


def test_gpu_bundle_stores_fp16_weights_that_load_back_as_fp32(tiny_bert_dir, tmp_path):
    bundle = _load("gpu_bundle.py", "bench_gpu_bundle")
    copy = bundle.fp16_copy(tiny_bert_dir, tmp_path / "minilm")
    from safetensors.torch import load_file

    original, halved = load_file(tiny_bert_dir / "model.safetensors"), load_file(copy / "model.safetensors")
    assert original.keys() == halved.keys()
    assert {v.dtype for k, v in halved.items() if original[k].is_floating_point()} == {torch.float16}
    assert (copy / "config.json").is_file()
    assert 0 < bundle.encoder_drift(tiny_bert_dir, copy) < 1e-2


def test_gpu_bundle_names_a_missing_dataset(tiny_bert_dir, tmp_path, monkeypatch):
    bundle = _load("gpu_bundle.py", "bench_gpu_bundle")
    monkeypatch.setattr(
        sys,
        "argv",
        ["gpu_bundle.py", "--minilm", str(tiny_bert_dir), "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")],
    )
    with pytest.raises(SystemExit, match="no banking77/ under"):
        bundle.main()


def test_gpu_vs_peer_quick_records_no_speedup(tmp_path, monkeypatch):
    bench = _load("gpu_vs_peer.py", "bench_gpu_vs_peer")
    job = {"accuracy": 0.1, "macro_f1": 0.1, "wall_s": 1.0}
    monkeypatch.setattr(bench, "run_textkd", lambda args: {**dict.fromkeys(bench.JOBS, job), "total_wall_s": 3.0})
    monkeypatch.setattr(bench, "run_peer", lambda args: {**dict.fromkeys(bench.JOBS, job), "total_wall_s": 9.0})
    monkeypatch.setattr(sys, "argv", _gpu_vs_peer_argv(tmp_path, "q", "--quick", "--repeats", "2"))
    bench.main()
    record = json.loads((tmp_path / "q.json").read_text(encoding="utf-8"))
    assert record["speedup"] is None and [r["speedup"] for r in record["per_repeat"]] == [None, None]
