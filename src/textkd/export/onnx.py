"""ONNX export of a saved textkd model, its int8 variant, the parity check, and the ONNX Runtime backend.

`export_onnx(model_dir, out)` writes a self-contained folder:

    out/
      model.onnx         fp32 graph: input_ids, attention_mask (int64, [batch, sequence]) -> logits [batch, C]
      model.int8.onnx    with int8=True: dynamic quantisation (int8 weights, activations quantised at run time)
      tokenizer.json ... the model's tokenizer, as `save_pretrained` writes it
      labels.json        class names in logit order
      textkd_model.json  the model's marker (dataset, max_len, method) + "export": {...}
      export.json        what was exported and how it compares with PyTorch (see `check_parity`)

Both graphs live in one folder so that one export serves both; `OnnxBackend(out)` runs model.onnx and
`OnnxBackend(out, variant="int8")` the int8 graph (only when asked). Running the folder needs
onnxruntime, tokenizers and numpy, no torch and no textkd:

    >>> import json, numpy as np, onnxruntime as ort, tokenizers  # doctest: +SKIP
    >>> tok = tokenizers.Tokenizer.from_file("out/tokenizer.json"); tok.no_padding()  # doctest: +SKIP
    >>> ids = np.array([tok.encode("Stocks fell today").ids])  # doctest: +SKIP
    >>> logits, = ort.InferenceSession("out/model.onnx").run(None, {"input_ids": ids,  # doctest: +SKIP
    ...     "attention_mask": np.ones_like(ids)})
    >>> json.load(open("out/labels.json"))[int(logits.argmax())]  # doctest: +SKIP

Exporter: the TorchScript exporter (`dynamo=False`). On torch 2.13 it traces BERT in well under a second at
the requested opset, with exact dynamic batch and sequence axes; the torch.export-based exporter takes
seconds, raises the opset to 18, and cannot trace the BiLSTM. BERT is traced with eager attention on a padded
example batch, so no "mask is all ones" shortcut of the SDPA path is frozen into the graph.

BiLSTM: a packed sequence (`pack_padded_sequence`) does not export reliably (the TorchScript exporter
crashes for "last" pooling; torch.export cannot trace packing), so the export graph runs the same LSTM
weights per direction on the padded batch instead (`MaskedBiLSTM`). Padding is on the right, so the forward
direction reaches every real token before any padding; the backward direction reads each text reversed
within its own length. Outputs at real positions equal the packed model's, hence identical logits.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from textkd.errors import ConfigError, ModelLoadError, TextkdError
from textkd.utils import atomic_write_json

try:  # exporting needs torch; running an export (OnnxBackend) does not
    import torch
    from torch import nn

    _Module = nn.Module
except ImportError:  # pragma: no cover - an inference-only install
    torch = None
    _Module = object

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
LABELS_FILE = "labels.json"
EXPORT_FILE = "export.json"
MARKER = "textkd_model.json"
EXPORT_DIRNAME = "onnx"  # default export folder inside a model folder
VARIANTS = {"fp32": ONNX_FILE, "int8": INT8_FILE}
OPSETS = range(14, 21)  # the TorchScript exporter's range (scaled_dot_product_attention needs >= 14)
MIN_INT8_AGREEMENT = 0.99  # int8 argmax agreement with PyTorch below this is drift
MAX_FP32_DIFF = 1e-3  # fp32 logits further than this from PyTorch mean a broken export
PARITY_ROWS = 1000  # test texts checked by default (evenly spaced, so label-sorted files are covered)
INPUT_NAMES = ["input_ids", "attention_mask"]
DYNAMIC_AXES = {
    "input_ids": {0: "batch", 1: "sequence"},
    "attention_mask": {0: "batch", 1: "sequence"},
    "logits": {0: "batch"},
}
FALLBACK_TEXTS = [
    "The stock market fell sharply this morning.",
    "I lost my card, can you block it?",
    "What will the weather be like tomorrow?",
    "The team won the final match.",
    "Please transfer 100 euros to my savings account.",
    "A new album topped the charts this week.",
    "How do I reset my password",
    "ok",
]


class ExportDriftError(TextkdError):
    """The exported model's predictions differ from PyTorch's more than allowed (see export.json)."""


# --------------------------------------------------------------------------------------------- runtime


class OnnxTokenizer:
    """A folder's `tokenizer.json` run by the `tokenizers` library, called like a Hugging Face tokenizer.

    Only what `Predictor.encode` uses: a batch of texts, truncated to `max_length`, padded on the right to
    the longest, as int64 numpy arrays. No transformers or torch import.

    Example:
        >>> tok = OnnxTokenizer("runs/bank/student/onnx")  # doctest: +SKIP
        >>> tok(["hello there"], truncation=True, max_length=16)["input_ids"].shape  # doctest: +SKIP
        (1, 4)
    """

    def __init__(self, folder: str | Path) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.no_padding()  # saved tokenizers may carry a fixed padding length
        self._tokenizer.no_truncation()
        self._truncation: int | None = None
        self._lock = threading.Lock()
        config = _read_json(folder / "tokenizer_config.json") or {}
        pad = config.get("pad_token") or "[PAD]"
        pad = pad.get("content", "[PAD]") if isinstance(pad, dict) else pad
        self.pad_token_id = self._tokenizer.token_to_id(pad) or 0

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size()

    def __call__(
        self, texts: str | list[str], *, truncation: bool = True, max_length: int | None = None, **_: Any
    ) -> dict[str, np.ndarray]:
        """{"input_ids", "attention_mask"}: (B, L) int64, L = the longest text's tokens (padding is implied)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        limit = max_length if truncation else None
        with self._lock:  # truncation is tokenizer state; set and use it together
            if limit != self._truncation:
                self._tokenizer.no_truncation() if limit is None else self._tokenizer.enable_truncation(limit)
                self._truncation = limit
            encodings = self._tokenizer.encode_batch(texts)
        width = max((len(e.ids) for e in encodings), default=0)
        ids = np.full((len(texts), width), self.pad_token_id, dtype=np.int64)  # (B, L)
        mask = np.zeros((len(texts), width), dtype=np.int64)  # (B, L)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        return {"input_ids": ids, "attention_mask": mask}


class OnnxBackend:
    """An export folder run with ONNX Runtime on the CPU: the `Backend` of `textkd.predictor`.

    Args:
        export_dir: a folder written by `export_onnx`, or a model folder holding one in `onnx/`.
        variant: "fp32" (model.onnx) or "int8" (model.int8.onnx).
        threads: intra-op threads; None lets ONNX Runtime use every physical core.

    Example:
        >>> backend = OnnxBackend("runs/bank/student/onnx", variant="int8", threads=1)  # doctest: +SKIP
        >>> enc = backend.tokenizer(["block my card"], truncation=True, max_length=64)  # doctest: +SKIP
        >>> backend.logits(enc["input_ids"], enc["attention_mask"]).shape  # doctest: +SKIP
        (1, 77)
    """

    def __init__(self, export_dir: str | Path, *, variant: str = "fp32", threads: int | None = None) -> None:
        import onnxruntime as ort

        if variant not in VARIANTS:
            raise ConfigError(f"unknown ONNX variant {variant!r}", hint="use fp32 or int8")
        self.folder = resolve_export_dir(export_dir)
        self.path = self.folder / VARIANTS[variant]
        if not self.path.is_file():
            raise ModelLoadError(
                f"no {self.path.name} in the export folder",
                path=self.folder,
                hint="export again with --int8" if variant == "int8" else "run `textkd export`",
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default, one per physical core
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.name = "onnx" if variant == "fp32" else "onnx-int8"
        self.variant = variant
        self.threads = threads
        self.tokenizer = load_export_tokenizer(self.folder)
        self.labels = read_labels(self.folder)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """(B, L) int64 ids and mask -> (B, C) float32 logits."""
        feed = {
            "input_ids": input_ids.astype(np.int64, copy=False),
            "attention_mask": attention_mask.astype(np.int64, copy=False),
        }
        return self.session.run(["logits"], feed)[0]


def resolve_export_dir(path: str | Path) -> Path:
    """`path` if it holds model.onnx, else its `onnx/` subfolder if that does; else `ModelLoadError`."""
    path = Path(path)
    for folder in (path, path / EXPORT_DIRNAME):
        if (folder / ONNX_FILE).is_file():
            return folder
    raise ModelLoadError(
        f"no {ONNX_FILE} here or in {EXPORT_DIRNAME}/", path=path, hint=f"run `textkd export {path}` first"
    )


def load_export_tokenizer(folder: str | Path) -> Any:
    """The folder's tokenizer: `OnnxTokenizer` when it has tokenizer.json, else transformers' AutoTokenizer."""
    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        return OnnxTokenizer(folder)
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot load the tokenizer: {err}", path=folder) from None


def read_labels(folder: str | Path) -> list[str]:
    """Class names in logit order: labels.json, else config.json's id2label."""
    folder = Path(folder)
    labels = _read_json(folder / LABELS_FILE)
    if labels is None:
        id2label = (_read_json(folder / "config.json") or {}).get("id2label")
        if not id2label:
            raise ModelLoadError(
                f"no {LABELS_FILE} (nor config.json id2label)", path=folder, hint="export the model again"
            )
        labels = [id2label[str(i)] for i in range(len(id2label))]
    return [str(name) for name in labels]


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"unreadable JSON: {err}", path=path) from None


# ------------------------------------------------------------------------------------------ torch graphs


class LogitsOnly(_Module):
    """(input_ids, attention_mask) -> logits of any textkd / transformers classifier (the ONNX signature)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, C)


class MaskedBiLSTM(_Module):
    """A `BiLSTMClassifier`'s forward pass without packing, for export; same weights, same logits.

    Each layer runs two one-directional LSTMs holding the bidirectional LSTM's weights: forward on the padded
    batch as is, backward on each text reversed within its own length (then reversed back). Positions past
    a text's length are zeroed, as `pad_packed_sequence` leaves them.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        lstm = model.lstm
        self.directions = nn.ModuleList()
        for layer in range(lstm.num_layers):
            for suffix in ("", "_reverse"):
                width = lstm.input_size if layer == 0 else 2 * lstm.hidden_size
                direction = nn.LSTM(width, lstm.hidden_size, batch_first=True)
                weights = {
                    f"{k}_l0": getattr(lstm, f"{k}_l{layer}{suffix}")
                    for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                }
                direction.load_state_dict(weights)
                self.directions.append(direction)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        lengths = attention_mask.sum(dim=1).clamp(min=1)  # (B,); an empty text still takes one step
        steps = torch.arange(input_ids.size(1), device=input_ids.device).unsqueeze(0)  # (1, L)
        real = steps < lengths.unsqueeze(1)  # (B, L)
        reverse = torch.where(real, lengths.unsqueeze(1) - 1 - steps, steps)  # (B, L): t -> len - 1 - t
        hidden = self.model.embeddings(input_ids)  # (B, L, E)
        for layer in range(len(self.directions) // 2):
            forward_out, _ = self.directions[2 * layer](hidden)  # (B, L, H)
            backward_out, _ = self.directions[2 * layer + 1](_take_steps(hidden, reverse))  # (B, L, H)
            hidden = torch.cat([forward_out, _take_steps(backward_out, reverse)], dim=-1)  # (B, L, 2H)
        hidden = hidden * real.unsqueeze(-1).to(hidden.dtype)  # (B, L, 2H)
        size = hidden.size(-1) // 2
        # Final states as packing returns them: forward at each text's last token, backward at its first.
        last = _take_steps(hidden[..., :size], (lengths - 1).unsqueeze(1)).squeeze(1)  # (B, H)
        final_hidden = torch.stack([last, hidden[:, 0, size:]])  # (2, B, H): the top layer's two directions
        pooled = self.model.pool(hidden, attention_mask, final_hidden)  # (B, 2H)
        return self.model.classify(pooled)  # (B, C)


def _take_steps(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (B, L, D) gathered along time by index (B, K) -> (B, K, D)."""
    return values.gather(1, index.unsqueeze(-1).expand(-1, -1, values.size(-1)))


def exportable(model: nn.Module) -> nn.Module:
    """The module traced for export: `MaskedBiLSTM` for a BiLSTM student, else `LogitsOnly`."""
    wrapper = MaskedBiLSTM(model) if _graph_name(model) == "MaskedBiLSTM" else LogitsOnly(model)
    return wrapper.eval()


def _graph_name(model: nn.Module) -> str:
    from textkd.models.students.bilstm import BiLSTMClassifier

    return "MaskedBiLSTM" if isinstance(model, BiLSTMClassifier) else "LogitsOnly"


# -------------------------------------------------------------------------------------------- export


def export_onnx(
    model_dir: str | Path,
    output_dir: str | Path | None = None,
    *,
    int8: bool = False,
    opset: int = 17,
    parity_texts: list[str] | None = None,
    allow_drift: bool = False,
) -> dict[str, Any]:
    """Export a saved textkd model to ONNX (+ int8), check parity with PyTorch, write export.json.

    Args:
        model_dir: a folder saved by textkd (teacher, transformer or BiLSTM student), any BERT-like sequence
            classifier folder, or a hub repo id (downloaded once, `textkd.hub.model_folder`).
        output_dir: the export folder (default `<model_dir>/onnx`); an earlier export there is replaced.
        int8: also write model.int8.onnx (dynamic quantisation, QInt8 weights).
        opset: ONNX opset, 14 to 20.
        parity_texts: texts for the parity check; default up to 1000 of the model's test texts (with gold
            labels, so accuracy is reported), else a few built-in sentences.
        allow_drift: keep a drifting export without raising (it is still marked `"drift": true`).

    Returns:
        The export.json dict: files and sizes (MiB), where the parity texts came from (`parity_texts`), the
        parity figures of `check_parity` (`fp32`, `int8`, `accuracy`, ...), `drift` and `drift_reasons`.

    Raises:
        ExportDriftError: after writing everything, when int8 argmax agreement with PyTorch is below 0.99 or
            fp32 logits differ by more than 1e-3, unless `allow_drift`.

    Example:
        >>> info = export_onnx("runs/bank/student", int8=True)  # doctest: +SKIP
        >>> info["int8"]["argmax_agreement"]  # doctest: +SKIP
        0.998
    """
    if torch is None:  # pragma: no cover - an inference-only install
        raise ModelLoadError("exporting needs PyTorch", hint="pip install torch")
    from textkd.hub import model_folder
    from textkd.models.io import load_model, read_marker

    started = time.perf_counter()
    model_dir = model_folder(model_dir)
    out = Path(output_dir) if output_dir is not None else model_dir / EXPORT_DIRNAME
    _check_target(model_dir, out, opset)
    model, tokenizer = load_model(model_dir)
    marker = read_marker(model_dir) or {}
    _write_folder(model, tokenizer, marker, out, int8=int8, opset=opset, source=model_dir)
    texts, gold, source = parity_rows(marker, parity_texts, read_labels(out))
    max_len = (marker.get("data") or {}).get("max_len") or 128
    parity = check_parity(model, out, texts, gold, max_len=max_len, reference_tokenizer=tokenizer)
    reasons = drift_reasons(parity)
    info = {
        **_export_facts(model, marker, model_dir, out, opset, max_len),
        "parity_texts": source,
        **parity,
        "drift": bool(reasons),
        "drift_reasons": reasons,
        "allow_drift": allow_drift,
        "export_s": round(time.perf_counter() - started, 2),
    }
    atomic_write_json(out / EXPORT_FILE, info)
    if reasons and not allow_drift:
        raise ExportDriftError(
            "; ".join(reasons), path=out, hint="use model.onnx (fp32), or pass --allow-drift to keep the export"
        )
    return info


def _export_facts(model, marker: dict, model_dir: Path, out: Path, opset: int, max_len: int) -> dict[str, Any]:
    """What export.json records besides the parity check."""
    import onnxruntime

    from textkd.models.io import count_parameters

    return {
        "format": 1,
        "model_dir": str(model_dir),
        "output_dir": str(out),
        "source_sha256": weights_sha256(model_dir),
        "kind": marker.get("kind"),
        "preset": marker.get("preset"),
        "method": marker.get("method"),
        "architecture": type(model).__name__,
        "graph": _graph_name(model),
        "exporter": "torchscript",
        "opset": opset,
        "params": count_parameters(model),
        "max_len": max_len,
        "files": {p.name: round(p.stat().st_size / 2**20, 4) for p in sorted(out.glob("*.onnx"))},
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    }


def _check_target(model_dir: Path, out: Path, opset: int) -> None:
    if opset not in OPSETS:
        raise ConfigError(f"opset {opset} is not supported", hint=f"use {OPSETS.start} to {OPSETS.stop - 1}")
    source, target = model_dir.resolve(), out.resolve()
    if target == source or target in source.parents:
        raise ConfigError(
            "the export folder must not be the model folder or contain it",
            path=out,
            hint=f"use the default {model_dir / EXPORT_DIRNAME}",
        )
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not (out / ONNX_FILE).is_file()):
        raise ConfigError(
            "the export folder exists and is not an earlier export", path=out, hint="choose an empty or new folder"
        )


def _write_folder(model, tokenizer, marker: dict, out: Path, *, int8: bool, opset: int, source: Path) -> None:
    """Write every file except export.json into a staging folder, then swap it in for `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
    try:
        trace_to_onnx(model, staging / ONNX_FILE, opset=opset)
        if int8:
            quantize_int8(staging / ONNX_FILE, staging / INT8_FILE)
        tokenizer.save_pretrained(staging)
        config = model.config
        atomic_write_json(staging / LABELS_FILE, [config.id2label[i] for i in range(len(config.id2label))])
        files = sorted({p.name for p in staging.iterdir()} | {MARKER, EXPORT_FILE})
        export = {
            "format": "onnx",
            "opset": opset,
            "int8": int8,
            "source": str(source),
            "inputs": INPUT_NAMES,
            "output": "logits",
        }
        atomic_write_json(staging / MARKER, {**marker, "files": files, "export": export})
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def trace_to_onnx(model: nn.Module, path: str | Path, *, opset: int = 17) -> None:
    """Write `model`'s (input_ids, attention_mask) -> logits graph to `path`, dynamic batch and sequence.

    Example:
        >>> trace_to_onnx(model, "model.onnx")  # doctest: +SKIP
    """
    import contextlib

    from textkd.models.classifier import TextkdClassifier, eager_attention

    vocab = model.get_input_embeddings().num_embeddings
    input_ids = torch.full((2, 8), min(5, vocab - 1), dtype=torch.long)  # (B, L)
    attention_mask = torch.ones_like(input_ids)  # (B, L)
    attention_mask[1, 5:] = 0  # a padded row, so the mask's path is part of the traced graph
    is_bert = isinstance(model, TextkdClassifier)
    context = eager_attention(model.config.encoder) if is_bert else contextlib.nullcontext()
    with context, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(
            exportable(model),
            (input_ids, attention_mask),
            str(path),
            input_names=INPUT_NAMES,
            output_names=["logits"],
            dynamic_axes=DYNAMIC_AXES,
            opset_version=opset,
            dynamo=False,
        )
    model.eval()


def quantize_int8(source: str | Path, target: str | Path) -> None:
    """Dynamic int8 quantisation of an fp32 ONNX graph: QInt8 weights (MatMul, Gather, LSTM), per channel.

    Per-channel scales matter: on a MiniLM banking77 teacher they raised int8/fp32 argmax agreement from
    94.4% to 98.0% (per tensor) at the same size.
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice is logged on every call
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


def weights_sha256(model_dir: str | Path) -> str | None:
    """sha256 of the folder's model.safetensors: tells whether an export still matches its model."""
    path = Path(model_dir) / "model.safetensors"
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_export(
    model_dir: str | Path,
    output_dir: str | Path | None = None,
    *,
    int8: bool = True,
    parity_texts: list[str] | None = None,
) -> Path:
    """An export folder for `model_dir`: the folder itself if it is one, an up-to-date export, or a new one.

    An existing export is reused when its export.json names the same weights (sha256) and it has the
    int8 graph if asked for. A new export never raises on drift; export.json records it.

    Example:
        >>> ensure_export("runs/bank/teacher")  # doctest: +SKIP
        PosixPath('runs/bank/teacher/onnx')
    """
    model_dir = Path(model_dir)
    if (model_dir / ONNX_FILE).is_file():
        return model_dir
    out = Path(output_dir) if output_dir is not None else model_dir / EXPORT_DIRNAME
    info = _read_json(out / EXPORT_FILE) if (out / ONNX_FILE).is_file() else None
    current = info is not None and info.get("source_sha256") == weights_sha256(model_dir)
    if current and (not int8 or (out / INT8_FILE).is_file()):
        return out
    export_onnx(model_dir, out, int8=int8, parity_texts=parity_texts, allow_drift=True)
    return out


# -------------------------------------------------------------------------------------------- parity


def parity_rows(
    marker: dict[str, Any], texts: list[str] | None, labels: list[str]
) -> tuple[list[str], np.ndarray | None, str]:
    """Texts for the parity check, gold label ids in the model's order (or None), and where they came from.

    Given `texts` win; else up to `PARITY_ROWS` evenly spaced test texts of the model's dataset; else
    `FALLBACK_TEXTS` (the dataset is not recorded or cannot be loaded).
    """
    if texts is not None:
        if not texts:
            raise ConfigError("parity_texts is empty", hint="pass some texts, or None for the model's test set")
        return list(texts), None, f"{len(texts)} given texts"
    try:
        from textkd.api import load_data
        from textkd.config import DataConfig, from_dict

        splits = load_data(from_dict(DataConfig, marker["data"]))
    except (KeyError, TypeError, TextkdError) as err:
        return list(FALLBACK_TEXTS), None, f"{len(FALLBACK_TEXTS)} built-in sentences (no test set: {err})"
    test = splits.test
    rows = np.unique(np.linspace(0, len(test) - 1, num=min(PARITY_ROWS, len(test))).round().astype(int))
    index = {name: i for i, name in enumerate(labels)}
    lookup = np.array([index.get(name, -1) for name in test.label_names], dtype=np.int64)
    gold = lookup[test.labels[rows]]
    return [test.texts[i] for i in rows], gold, f"{splits.name} test: {len(rows)} of {len(test)}, evenly spaced"


def check_parity(
    model: nn.Module,
    export_dir: str | Path,
    texts: list[str],
    gold: np.ndarray | None = None,
    *,
    max_len: int = 128,
    batch_size: int = 64,
    reference_tokenizer: Any = None,
) -> dict[str, Any]:
    """Compare the export's logits with PyTorch's on `texts` (same token ids, same batches).

    Returns:
        {"parity_rows", "tokenizer_identical" (export tokenizer == `reference_tokenizer`, or None),
        "fp32": {"max_abs_diff", "mean_abs_diff", "argmax_agreement"}, "int8": {...} when exported,
        "accuracy": {"torch", "onnx", "onnx-int8"} over rows with a gold label (when `gold` is given)}.
    """
    backends = {"onnx": OnnxBackend(export_dir)}
    if (Path(export_dir) / INT8_FILE).is_file():
        backends["onnx-int8"] = OnnxBackend(export_dir, variant="int8")
    tokenizer = backends["onnx"].tokenizer
    batches = encode_batches(tokenizer, texts, max_len, batch_size)
    logits = {"torch": _torch_logits(model, batches, len(texts))}
    for name, backend in backends.items():
        logits[name] = _batched_logits(backend.logits, batches, len(texts))
    result: dict[str, Any] = {"parity_rows": len(texts), "tokenizer_identical": None}
    if reference_tokenizer is not None:
        result["tokenizer_identical"] = _same_ids(reference_tokenizer, batches, texts, max_len)
    for name, key in (("onnx", "fp32"), ("onnx-int8", "int8")):
        if name in logits:
            diff = np.abs(logits[name] - logits["torch"])  # (N, C)
            result[key] = {
                "max_abs_diff": float(diff.max(initial=0.0)),
                "mean_abs_diff": float(diff.mean()),
                "argmax_agreement": argmax_agreement(logits[name], logits["torch"]),
            }
    if gold is not None and (gold >= 0).any():
        known = gold >= 0
        result["accuracy"] = {k: float((v.argmax(-1)[known] == gold[known]).mean()) for k, v in logits.items()}
    return result


def argmax_agreement(logits: np.ndarray, reference: np.ndarray) -> float:
    """Share of rows whose top class is the same in both (N, C) arrays."""
    return float((logits.argmax(-1) == reference.argmax(-1)).mean()) if len(logits) else 1.0


def drift_reasons(parity: dict[str, Any]) -> list[str]:
    """Why an export is not faithful to PyTorch (empty when it is)."""
    reasons = []
    fp32 = parity["fp32"]
    if fp32["max_abs_diff"] > MAX_FP32_DIFF:
        reasons.append(f"fp32 ONNX logits differ from PyTorch by up to {fp32['max_abs_diff']:.2g}")
    int8 = parity.get("int8")
    if int8 is not None and int8["argmax_agreement"] < MIN_INT8_AGREEMENT:
        reasons.append(
            f"int8 predictions agree with PyTorch on {int8['argmax_agreement']:.1%} of "
            f"{parity['parity_rows']} texts (< {MIN_INT8_AGREEMENT:.0%})"
        )
    return reasons


def encode_batches(
    tokenizer: Any, texts: list[str], max_len: int, batch_size: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Length-sorted batches as (rows, input_ids (B, L), attention_mask (B, L)), as `Predictor` forms them."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    batches = []
    for start in range(0, len(texts), batch_size):
        rows = order[start : start + batch_size]
        enc = tokenizer(
            [texts[i] for i in rows], truncation=True, max_length=max_len, padding=True, return_tensors="np"
        )
        batches.append((rows, enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)))
    return batches


def _batched_logits(forward, batches, rows: int) -> np.ndarray:
    out = None
    for index, ids, mask in batches:
        logits = forward(ids, mask)  # (B, C)
        out = np.zeros((rows, logits.shape[-1]), dtype=np.float32) if out is None else out
        out[index] = logits
    return out


def _torch_logits(model: nn.Module, batches, rows: int) -> np.ndarray:
    def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()

    return _batched_logits(forward, batches, rows)


def _same_ids(reference_tokenizer: Any, batches, texts: list[str], max_len: int) -> bool:
    for rows, ids, _ in batches:
        enc = reference_tokenizer(
            [texts[i] for i in rows], truncation=True, max_length=max_len, padding=True, return_tensors="np"
        )
        if enc["input_ids"].shape != ids.shape or not (enc["input_ids"] == ids).all():
            return False
    return True
