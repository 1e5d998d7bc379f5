"""Teacher-output cache: run the teacher once per (teacher, split, tokenisation), reuse it everywhere.

A grid of students x methods needs the same teacher logits over the same training texts again and again.
They are computed once, stored as `.npy` files under the teacher's folder, and memory-mapped by every
later run, so a KD epoch costs about what a no-KD epoch costs.

Layout: `<teacher_dir>/.textkd-cache/<key>/{logits.npy, pooled.npy, meta.json}`; `meta.json` is written
last, so a folder without it is an interrupted computation and is recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from textkd.data.batching import ModelInputs
from textkd.training.distributed import process_state, several_processes
from textkd.training.inference import forward_outputs
from textkd.utils import atomic_write_json

CACHE_DIRNAME = ".textkd-cache"
_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


@dataclass
class TeacherOutputs:
    """Teacher outputs for every row of one split, in row order.

    Attributes:
        logits: (N, C) float32.
        pooled: (N, H) float32 sentence vectors, or None when not computed.
        cached: True when read from disk rather than computed in this call.
    """

    logits: np.ndarray
    pooled: np.ndarray | None = None
    cached: bool = False


@contextlib.contextmanager
def entry_lock(path: str | Path):
    """Hold the lock of one cache entry (a folder or file under a teacher's cache) while it is read or built.

    Independent single-process runs sharing a teacher (a grid of students launched in parallel, a `textkd
    label` beside a `textkd distill`) would otherwise build the same entry at once. With the lock, a run that
    needs an entry another run is building waits for it and then reads it; a run that needs other entries
    (the training rows' logits while another run labels a large corpus, say) goes on. The lock file is the
    hidden sibling `.<name>.lock`. Processes of one `accelerate launch` / `torchrun` job do not take it: they
    are ordered by `main_process_first` and label corpora together (a lock held across that collective would
    deadlock). A no-op where `fcntl` is missing (Windows).

    Example:
        >>> with entry_lock(corpus_dir("runs/teacher", "queries.txt", 64)):  # doctest: +SKIP
        ...     outputs = label_corpus(teacher, tok, "queries.txt", corpus_dir("runs/teacher", "queries.txt", 64),
        ...                            max_len=64)
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if fcntl is None or several_processes():
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def teacher_fingerprint(teacher_dir: str | Path) -> str:
    """sha256 of the teacher's weights file (memoised per path, size and mtime)."""
    weights = Path(teacher_dir) / "model.safetensors"
    stat = weights.stat()
    memo_key = (str(weights.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        with open(weights, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _FINGERPRINTS[memo_key] = digest.hexdigest()[:16]
    return _FINGERPRINTS[memo_key]


def cache_key(teacher_dir: str | Path, inputs: ModelInputs, prefix: str) -> str:
    return f"{teacher_fingerprint(teacher_dir)}-{inputs.streams[prefix].key}"


def cache_folder(teacher_dir: str | Path, inputs: ModelInputs, prefix: str = "") -> Path:
    """Where `teacher_outputs` keeps the teacher's outputs over `inputs`."""
    return Path(teacher_dir) / CACHE_DIRNAME / cache_key(teacher_dir, inputs, prefix)


def teacher_outputs(
    teacher: nn.Module,
    inputs: ModelInputs,
    *,
    teacher_dir: str | Path | None,
    prefix: str = "",
    need_pooled: bool = False,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    autocast=None,
) -> TeacherOutputs:
    """Teacher logits (and pooled vectors) for every row of `inputs`, from the cache when possible.

    Args:
        teacher: the fine-tuned teacher (only run on a cache miss).
        inputs: the split; `prefix` names the stream tokenised for the teacher.
        teacher_dir: the teacher's saved folder; None disables the cache (always computed).
        need_pooled: also return (N, H) pooled sentence vectors.

    Example:
        >>> out = teacher_outputs(teacher, train_inputs, teacher_dir="runs/teacher")  # doctest: +SKIP
        >>> out.logits.shape  # (N, C)  # doctest: +SKIP
        (9002, 77)
    """
    folder = None
    if teacher_dir is not None:
        folder = cache_folder(teacher_dir, inputs, prefix)
        found = _read(folder, need_pooled)
        if found is not None:
            return found
    fields = ("logits", "pooled") if need_pooled else ("logits",)
    values = forward_outputs(
        teacher, inputs, batch_size, device=device, fields=fields, prefix=prefix, autocast=autocast
    )
    result = TeacherOutputs(logits=values["logits"], pooled=values.get("pooled"))
    if folder is not None:
        _write(folder, result)
    return result


def _read(folder: Path, need_pooled: bool) -> TeacherOutputs | None:
    if not (folder / "meta.json").is_file():
        return None
    if need_pooled and not (folder / "pooled.npy").is_file():
        return None
    logits = np.load(folder / "logits.npy", mmap_mode="r")
    pooled = np.load(folder / "pooled.npy", mmap_mode="r") if need_pooled else None
    return TeacherOutputs(logits=logits, pooled=pooled, cached=True)


def _write(folder: Path, outputs: TeacherOutputs) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "logits.npy", outputs.logits)
    if outputs.pooled is not None:
        np.save(tmp / "pooled.npy", outputs.pooled)
    meta = {
        "rows": int(outputs.logits.shape[0]),
        "classes": int(outputs.logits.shape[1]),
        "pooled": outputs.pooled is not None,
    }
    atomic_write_json(tmp / "meta.json", meta)
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():  # moved aside, not deleted in place: a kill never leaves meta.json without its arrays
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def clear_cache(teacher_dir: str | Path) -> None:
    """Delete every cached output of a teacher."""
    shutil.rmtree(Path(teacher_dir) / CACHE_DIRNAME, ignore_errors=True)


def read_meta(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "meta.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------- large corpora


def corpus_dir(teacher_dir: str | Path, texts_path: str | Path, max_len: int) -> Path:
    """Where `label_corpus` keeps a corpus's teacher outputs by default (inside the teacher's cache)."""
    from textkd.data.corpus import file_fingerprint

    key = f"{teacher_fingerprint(teacher_dir)}-corpus-{file_fingerprint(texts_path)}-{max_len}"
    return Path(teacher_dir) / CACHE_DIRNAME / key


def label_corpus(
    teacher: nn.Module,
    tokenizer,
    texts_path: str | Path,
    out_dir: str | Path,
    *,
    max_len: int,
    need_pooled: bool = False,
    batch_size: int = 256,
    chunk_size: int = 8192,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> TeacherOutputs:
    """Teacher logits (and pooled vectors) for every text of a corpus file, streamed to memory-mapped .npy.

    The file is read `chunk_size` texts at a time; each chunk is tokenised, run through the teacher and
    written to its rows of `logits.npy` (N, C) (and `pooled.npy` (N, H)), so memory does not grow with the
    corpus. Under `accelerate launch` / `torchrun` every process labels every WORLD_SIZE-th chunk into the
    same files (a shared file system), the main process having created them first: a collective, so every
    process must call it (never inside `main_process_first`). `meta.json` is written
    last: a folder without it is recomputed, one with it is reused.

    Example:
        >>> out = label_corpus(teacher, tok, "unlabeled.txt", "runs/t/.textkd-cache/c", max_len=64)  # doctest: +SKIP
        >>> out.logits.shape  # (N, C), memory-mapped  # doctest: +SKIP
        (1000000, 77)
    """
    from textkd.data.corpus import count_texts, file_fingerprint

    folder = Path(out_dir)
    found = _read(folder, need_pooled)
    if found is not None:
        return found
    state = process_state(device)
    rank, world = (state.process_index, state.num_processes) if state else (0, 1)
    rows = count_texts(texts_path)
    classes = int(teacher.config.num_labels)
    if rank == 0:
        _create_arrays(folder, rows, classes, int(getattr(teacher, "pooled_size", 0) or 0) if need_pooled else None)
    if state:
        state.wait_for_everyone()
    _label_chunks(
        teacher,
        tokenizer,
        texts_path,
        folder,
        rows,
        max_len=max_len,
        need_pooled=need_pooled,
        batch_size=batch_size,
        chunk_size=chunk_size,
        device=state.device if state else device,
        shard=(rank, world),
        progress=progress,
    )
    if state:
        state.wait_for_everyone()
    if rank == 0:
        atomic_write_json(
            folder / "meta.json",
            {
                "rows": rows,
                "classes": classes,
                "pooled": need_pooled,
                "texts": str(texts_path),
                "texts_sha256": file_fingerprint(texts_path),
                "max_len": max_len,
                "processes": world,
            },
        )
    if state:
        state.wait_for_everyone()
    found = _read(folder, need_pooled)
    assert found is not None
    return TeacherOutputs(logits=found.logits, pooled=found.pooled, cached=False)


def _create_arrays(folder: Path, rows: int, classes: int, width: int | None) -> None:
    """Empty `logits.npy` (rows, classes) and, with a width, `pooled.npy` (rows, width); drops a stale meta.json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").unlink(missing_ok=True)
    np.lib.format.open_memmap(folder / "logits.npy", mode="w+", dtype=np.float32, shape=(rows, classes))
    if width is not None:
        np.lib.format.open_memmap(folder / "pooled.npy", mode="w+", dtype=np.float32, shape=(rows, width))


def _label_chunks(
    teacher,
    tokenizer,
    texts_path,
    folder: Path,
    rows: int,
    *,
    max_len: int,
    need_pooled: bool,
    batch_size: int,
    chunk_size: int,
    device,
    shard: tuple[int, int],
    progress: bool,
) -> None:
    """Fill this process's chunks (every `world`-th, from `rank`) of the arrays `_create_arrays` made."""
    from textkd.data.corpus import iter_text_chunks
    from textkd.data.tokenize import encode
    from textkd.training.progress import rows_progress

    rank, world = shard
    logits = np.load(folder / "logits.npy", mmap_mode="r+")
    pooled = np.load(folder / "pooled.npy", mmap_mode="r+") if need_pooled else None
    fields = ("logits", "pooled") if need_pooled else ("logits",)
    with rows_progress(f"labelling {Path(texts_path).name}", rows, enabled=progress and rank == 0) as advance:
        for index, (start, texts) in enumerate(iter_text_chunks(texts_path, chunk_size)):
            if index % world != rank:
                continue
            encoded = encode(texts, tokenizer, max_len, memo=False)
            inputs = ModelInputs({"": encoded}, np.zeros(len(texts), dtype=np.int64))
            values = forward_outputs(teacher, inputs, batch_size, device=device, fields=fields)
            logits[start : start + len(texts)] = values["logits"]
            if pooled is not None:
                pooled[start : start + len(texts)] = values["pooled"]
            advance(len(texts) * world)
    logits.flush()
    if pooled is not None:
        pooled.flush()


def concat_outputs(parts: list[TeacherOutputs], folder: str | Path, *, chunk_rows: int = 65536) -> TeacherOutputs:
    """Teacher outputs of several row sets, one after another, as memory-mapped .npy under `folder`.

    Reused when `folder/meta.json` records the same row count; copies `chunk_rows` rows at a time.
    """
    folder = Path(folder)
    rows = sum(int(p.logits.shape[0]) for p in parts)
    need_pooled = all(p.pooled is not None for p in parts)
    meta = folder / "meta.json"
    if meta.is_file() and read_meta(folder).get("rows") == rows:
        found = _read(folder, need_pooled)
        if found is not None:
            return found
    folder.mkdir(parents=True, exist_ok=True)
    meta.unlink(missing_ok=True)
    names = ("logits", "pooled") if need_pooled else ("logits",)
    for name in names:
        width = getattr(parts[0], name).shape[1]
        out = np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=np.float32, shape=(rows, width))
        at = 0
        for part in parts:
            source = getattr(part, name)
            for start in range(0, source.shape[0], chunk_rows):
                block = np.asarray(source[start : start + chunk_rows], dtype=np.float32)
                out[at : at + len(block)] = block
                at += len(block)
        out.flush()
        del out
    atomic_write_json(meta, {"rows": rows, "classes": int(parts[0].logits.shape[1]), "pooled": need_pooled})
    found = _read(folder, need_pooled)
    assert found is not None
    return found


def combine_teachers(
    parts: list[TeacherOutputs],
    weights: list[float],
    temperature: float,
    folder: str | Path,
    *,
    chunk_rows: int = 65536,
) -> TeacherOutputs:
    """One set of logits whose softened distribution is the weighted mean of several teachers' at T.

    z = T * log(sum_i w_i * softmax(z_i / T)), so softmax(z / T) = sum_i w_i * softmax(z_i / T) exactly at this
    T (hard labels take its argmax). Weights are normalised to sum to 1. Written to `folder/logits.npy`
    (memory-mapped, `chunk_rows` rows at a time) and reused when complete.

    Example:
        >>> a = TeacherOutputs(np.array([[2.0, 0.0]], dtype=np.float32))
        >>> b = TeacherOutputs(np.array([[0.0, 2.0]], dtype=np.float32))
        >>> out = combine_teachers([a, b], [1.0, 1.0], 1.0, "/tmp/textkd-doctest-ensemble")
        >>> np.round(np.exp(out.logits) / np.exp(out.logits).sum(-1, keepdims=True), 3).tolist()
        [[0.5, 0.5]]
    """
    rows = {int(p.logits.shape[0]) for p in parts}
    if len(rows) != 1:
        raise ValueError(f"teachers labelled different numbers of rows: {sorted(rows)}")
    total = float(sum(weights))
    if len(weights) != len(parts) or total <= 0 or min(weights) < 0:
        raise ValueError(f"need one non-negative weight per teacher with a positive sum, got {weights}")
    w = np.asarray(weights, dtype=np.float64) / total
    folder = Path(folder)
    n = rows.pop()
    if (folder / "meta.json").is_file() and read_meta(folder).get("rows") == n:
        found = _read(folder, False)
        if found is not None:
            return found
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").unlink(missing_ok=True)
    classes = parts[0].logits.shape[1]
    out = np.lib.format.open_memmap(folder / "logits.npy", mode="w+", dtype=np.float32, shape=(n, classes))
    for start in range(0, n, chunk_rows):
        mixed = np.zeros((min(chunk_rows, n - start), classes), dtype=np.float64)
        for weight, part in zip(w, parts, strict=True):
            z = np.asarray(part.logits[start : start + chunk_rows], dtype=np.float64) / temperature
            z -= z.max(-1, keepdims=True)
            p = np.exp(z)
            mixed += weight * p / p.sum(-1, keepdims=True)
        out[start : start + len(mixed)] = (temperature * np.log(np.maximum(mixed, 1e-30))).astype(np.float32)
    out.flush()
    del out
    atomic_write_json(
        folder / "meta.json",
        {
            "rows": n,
            "classes": int(classes),
            "pooled": False,
            "teachers": len(parts),
            "weights": w.tolist(),
            "temperature": temperature,
        },
    )
    found = _read(folder, False)
    assert found is not None
    return found
