"""Presets: counts on the real datasets, layouts, download with checksums, listing and stats."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from textkd.config import DataConfig
from textkd.data.loading import load_splits
from textkd.data.presets import (
    PRESETS,
    Preset,
    RemoteFile,
    fetch,
    list_presets,
    preset_folder,
    resolve_data_dir,
)
from textkd.data.stats import dataset_stats, render_presets, render_stats
from textkd.errors import DataError


def data_dir() -> Path:
    """The real datasets: $TEXTKD_DATA_DIR, else ../shared/data next to the repository; skip when absent."""
    env = os.environ.get("TEXTKD_DATA_DIR")
    folder = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not folder.is_dir():
        pytest.skip(f"real datasets not found at {folder} (set TEXTKD_DATA_DIR)")
    return folder


def real(name: str, **kwargs):
    return load_splits(DataConfig(name=name, data_dir=str(data_dir()), **kwargs))


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """No TEXTKD_DATA_DIR, and a private download cache."""
    monkeypatch.delenv("TEXTKD_DATA_DIR", raising=False)
    monkeypatch.setenv("TEXTKD_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "data"


# ------------------------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_banking77_counts():
    splits = real("banking77")
    assert len(splits.train) + len(splits.validation) == 10_003 and len(splits.validation) == 1_001
    assert len(splits.test) == 3_080 and splits.num_labels == 77
    assert splits.label_names[0] == "card_arrival"  # categories.json order
    assert sum("\n" in text for text in splits.train.texts + splits.validation.texts) > 0  # quoted multi-line
    assert splits.notes == ["validation carved from train: 1,001 rows (10%, stratified, seed 42)"]


@pytest.mark.realdata
def test_clinc150_full_and_plus():
    splits = real("clinc150")
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (15_100, 3_100, 5_500)
    assert splits.num_labels == 151 and splits.out_of_scope_label == "oos"
    assert splits.train.class_counts()["oos"] == 100 and splits.test.class_counts()["oos"] == 1_000
    assert len(real("clinc150", variant="plus").train) == 15_250


@pytest.mark.realdata
@pytest.mark.parametrize("name, language", [("massive-en", "en"), ("massive-zh", "zh")])
def test_massive_counts(name, language):
    splits = real(name)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (11_514, 2_033, 2_974)
    assert splits.num_labels == 60 and splits.language == language
    assert splits.label_names == sorted(splits.label_names) and "alarm_set" in splits.label_names
    assert splits.test.class_counts()["cooking_query"] == 0  # absent from test, present in train


@pytest.mark.realdata
def test_thucnews_partial():
    splits = real("thucnews")
    assert len(splits.train) == 33_590 and len(splits.validation) == len(splits.test) == 10_000
    assert splits.num_labels == 10 and splits.label_names[0] == "finance" and splits.language == "zh"
    assert splits.partial and "partial train split: 33,590 of 180,000 rows" in splits.notes[0]


@pytest.mark.realdata
def test_list_presets_finds_local_layout():
    infos = {info.name: info for info in list_presets(str(data_dir()))}
    assert [name for name, info in infos.items() if info.location == "local"] == [
        "banking77",
        "clinc150",
        "massive-en",
        "massive-zh",
        "thucnews",
    ]
    assert infos["massive-en"].path.endswith(os.path.join("massive", "en-US"))


@pytest.mark.realdata
def test_stats_on_massive_match_source_counts():
    stats = dataset_stats(real("massive-en"))
    assert stats["splits"]["train"]["duplicates"]["exact"] == 46
    assert stats["overlap"]["train/test"] == {"exact": 21, "normalized": 21, "label_conflicts": 2}
    assert stats["splits"]["validation"]["labels_missing"] == ["audio_volume_other"]
    json.dumps(stats)


# -------------------------------------------------------------------------------------------- embedded


def test_bbc_news_embedded_fixed_split(no_env):
    splits = load_splits(DataConfig(name="bbc-news", split_seed=1, validation_fraction=0.3))
    assert len(splits.train) + len(splits.validation) + len(splits.test) == 2_225
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (1_779, 223, 223)
    assert splits.label_names == ["business", "entertainment", "politics", "sports", "tech"]
    assert any("£" in text for text in splits.train.texts + splits.validation.texts + splits.test.texts)
    again = load_splits(DataConfig(name="bbc-news"))
    assert again.test.texts == splits.test.texts  # the seed is fixed, whatever the config says
    assert "fixed stratified 80/10/10" in splits.notes[0]


def test_stats_and_rendering_without_data(no_env):
    splits = load_splits(DataConfig(name="bbc-news"))
    stats = dataset_stats(splits, max_len=128)
    assert stats["length_unit"] == "words" and stats["splits"]["test"]["rows"] == 223
    assert stats["splits"]["train"]["labels_present"] == 5
    assert set(stats["splits"]["train"]["length"]) >= {"p50", "p90", "p95", "p99", "max"}
    console = Console(width=160, record=True)
    console.print(render_stats(stats))
    console.print(render_presets(list_presets()))
    text = console.export_text()
    assert "bbc-news" in text and "embedded" in text and "download on first use" in text


def test_stats_with_tokenizer_counts_truncation():
    class Tokenizer:  # the slice of the Hugging Face API that stats uses
        def __call__(self, texts, **kwargs):
            return {"input_ids": [[101, *range(len(t.split())), 102] for t in texts]}

    from textkd.data.dataset import DatasetSplits, TextDataset

    def split(texts, labels):
        return TextDataset(texts, labels, ["a", "b"])

    splits = DatasetSplits("toy", split(["x y z", "x"], [0, 1]), split(["X  y z"], [1]), split(["x", "new"], [1, 0]))
    stats = dataset_stats(splits, Tokenizer(), max_len=3)
    assert stats["splits"]["train"]["length"]["max"] == 5
    assert stats["splits"]["train"]["length"]["truncated_share"] == 0.5
    assert stats["overlap"]["train/validation"] == {"exact": 0, "normalized": 1, "label_conflicts": 0}
    assert stats["overlap"]["train/test"] == {"exact": 1, "normalized": 1, "label_conflicts": 0}


# ---------------------------------------------------------------------------------- folders / download


def test_resolve_data_dir_order(monkeypatch, no_env):
    assert resolve_data_dir(DataConfig()) == no_env
    monkeypatch.setenv("TEXTKD_DATA_DIR", "/env/data")
    assert resolve_data_dir(DataConfig()) == Path("/env/data")
    assert resolve_data_dir(DataConfig(data_dir="/cfg/data")) == Path("/cfg/data")


def test_flat_massive_layout(tmp_path, no_env):
    folder = tmp_path / "mine" / "massive-zh"
    folder.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        rows = "".join(f"{i},{i % 2},句子{i},{['alarm_set', 'play_music'][i % 2]},x\n" for i in range(10))
        (folder / f"{split}.csv").write_text("id,label,text,label_text,label_text_ch\n" + rows, encoding="utf-8")
    splits = load_splits(DataConfig(name="massive-zh", data_dir=str(tmp_path / "mine")))
    assert splits.label_names == ["alarm_set", "play_music"] and splits.language == "zh"


def test_named_folder_without_preset_is_an_error(tmp_path, no_env):
    with pytest.raises(DataError, match=r"banking77 not found in .*expected banking77/train\.csv"):
        load_splits(DataConfig(name="banking77", data_dir=str(tmp_path)))
    info = {i.name: i for i in list_presets(str(tmp_path))}["banking77"]
    assert info.location.startswith("missing from")


def _fake_upstream(folder: Path, corrupt: str | None = None) -> Preset:
    """A banking77 preset whose 'upstream' is a local folder reached through file:// URLs."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(20))
    contents = {
        "train.csv": "text,category\n" + rows,
        "test.csv": "text,category\n" + rows[:40],
        "categories.json": json.dumps(["a", "b"]),
    }
    remote = []
    for name, content in contents.items():
        (folder / name).write_text(content, encoding="utf-8")
        digest = hashlib.sha256(content.encode()).hexdigest() if name != corrupt else "0" * 64
        remote.append(RemoteFile(f"banking77/{name}", (folder / name).as_uri(), digest))
    return dataclasses.replace(PRESETS["banking77"], remote=lambda variant: tuple(remote))


def test_download_verifies_and_caches(tmp_path, no_env):
    preset = _fake_upstream(tmp_path / "upstream")
    folder = preset_folder(preset, None, DataConfig())
    assert folder == no_env / "banking77" and (folder / "categories.json").is_file()
    (tmp_path / "upstream" / "train.csv").unlink()  # a second use reads the cache, not the network
    assert preset_folder(preset, None, DataConfig()) == folder
    assert {i.name: i.location for i in list_presets()}["banking77"] == "cache"


def test_download_checksum_mismatch_writes_nothing(tmp_path, no_env):
    preset = _fake_upstream(tmp_path / "upstream", corrupt="test.csv")
    with pytest.raises(DataError, match=r"checksum mismatch for file://.*test\.csv.*nothing was written"):
        preset_folder(preset, None, DataConfig())
    assert not no_env.exists() or not any(no_env.rglob("*.csv"))


def test_download_offline_error_says_what_to_do(tmp_path, no_env):
    missing = RemoteFile("banking77/train.csv", (tmp_path / "gone.csv").as_uri(), "0" * 64)
    preset = dataclasses.replace(PRESETS["banking77"], remote=lambda variant: (missing,))
    pattern = r"^cannot download banking77 from file://.*gone\.csv: .* — pass --data-dir DIR holding banking77/"
    with pytest.raises(DataError, match=pattern):
        preset_folder(preset, None, DataConfig())


def test_git_blob_checksum(tmp_path):
    (tmp_path / "hello.txt").write_bytes(b"hello\n")
    url = (tmp_path / "hello.txt").as_uri()
    blob = "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object hello.txt`
    assert fetch(RemoteFile("x/hello.txt", url, git_blob=blob), "x", "") == b"hello\n"
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(RemoteFile("x/hello.txt", url, git_blob="0" * 40), "x", "")


def test_registry_is_pinned():
    for preset in PRESETS.values():
        for variant in preset.variants or (None,):
            for remote in preset.remote(variant):
                assert remote.url.startswith("https://raw.githubusercontent.com/")
                assert remote.sha256 or remote.git_blob
                assert len(remote.url.split("/")[5]) == 40  # a commit, not a branch
