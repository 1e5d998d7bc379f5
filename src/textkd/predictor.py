"""Load a saved model once, classify texts many times: the one inference path of predict, bench and serve.

A `Predictor` wraps a backend that maps token ids to logits. The PyTorch backend reads a textkd model
folder; the ONNX Runtime backend (textkd.export.onnx) reads an exported folder with `model.onnx` and needs
no torch at inference. Both share tokenisation, batching and the label map.

Example:
    >>> clf = Predictor("runs/bbc/teacher")  # doctest: +SKIP
    >>> clf.predict(["Shares fell 5% today"], top_k=2)  # doctest: +SKIP
    [[{'label': 'business', 'score': 0.97}, {'label': 'politics', 'score': 0.01}]]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from textkd.errors import ConfigError, ModelLoadError
from textkd.utils import require_model_dir

ONNX_FILE = "model.onnx"


class Backend(Protocol):
    """Turns padded token ids into logits."""

    name: str
    tokenizer: Any  # a Hugging Face tokenizer (text -> input_ids)
    labels: list[str]  # class names in logit order

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """(B, L) int64 ids and mask -> (B, C) float32 logits."""
        ...


class TorchBackend:
    """A textkd model folder run with PyTorch (eval mode, no gradients)."""

    name = "torch"

    def __init__(self, model_dir: str | Path, *, device: str = "cpu", trust_pickle: bool = False) -> None:
        import torch

        from textkd.models.io import load_model

        self._torch = torch
        self.model, self.tokenizer = load_model(model_dir, trust_pickle=trust_pickle)
        self.model.to(device).eval()
        self.device = device
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(len(config.id2label))]

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.from_numpy(input_ids).to(self.device),
                attention_mask=torch.from_numpy(attention_mask).to(self.device),
            )
        return out.logits.float().cpu().numpy()


def as_texts(texts: str | Any) -> list[str]:
    """A list of texts: a single string is one text (iterating it would give its characters).

    Example:
        >>> as_texts("card not working"), as_texts(("a", "b"))
        (['card not working'], ['a', 'b'])
    """
    return [texts] if isinstance(texts, str) else list(texts)


def is_onnx_dir(path: str | Path) -> bool:
    return (Path(path) / ONNX_FILE).is_file()


def load_backend(model_dir: str | Path, backend: str = "auto", **kwargs: Any) -> Backend:
    """The backend for `model_dir`: "onnx" when it holds model.onnx (or asked for), else "torch"."""
    path = require_model_dir(model_dir)
    if backend == "auto":
        backend = "onnx" if is_onnx_dir(path) else "torch"
    if backend == "onnx":
        from textkd.export.onnx import OnnxBackend

        return OnnxBackend(path, variant=kwargs.get("variant", "fp32"), threads=kwargs.get("threads"))
    if backend == "torch":
        return TorchBackend(path, device=kwargs.get("device", "cpu"), trust_pickle=kwargs.get("trust_pickle", False))
    raise ModelLoadError(f"unknown backend {backend!r}", hint="use auto, torch or onnx")


class Predictor:
    """Classify texts with a saved model: top-k labels and probabilities.

    Args:
        model_dir: a textkd model folder, an ONNX export folder, or a Hugging Face hub repo id (downloaded once,
            see `textkd.hub.model_folder`).
        backend: "auto" (ONNX when the folder holds model.onnx), "torch" or "onnx".
        max_len: tokens per text (default: the model's training setting, else 128).
        batch_size: texts per forward pass.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        backend: str = "auto",
        max_len: int | None = None,
        batch_size: int = 64,
        **backend_kwargs: Any,
    ) -> None:
        from textkd.hub import model_folder

        self.model_dir = model_folder(model_dir)
        self.backend = load_backend(self.model_dir, backend, **backend_kwargs)
        self.tokenizer = self.backend.tokenizer
        self.labels: list[str] = list(self.backend.labels)
        self.max_len = max_len or trained_max_len(self.model_dir) or 128
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask (B, L) int64, padded to the longest text."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_len, padding=True, return_tensors="np")
        return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)

    def logits(self, texts: str | list[str], *, progress: bool = False) -> np.ndarray:
        """(N, C) float32 logits, computed in length-sorted batches, returned in input order.

        A single string is one text (N = 1), never a sequence of characters. `progress` shows a bar on stderr.
        """
        from textkd.training.progress import rows_progress

        texts = as_texts(texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        with rows_progress("classifying", len(texts), enabled=progress) as advance:
            for start in range(0, len(texts), self.batch_size):
                rows = order[start : start + self.batch_size]
                ids, mask = self.encode([texts[i] for i in rows])
                out[rows] = self.backend.logits(ids, mask)
                advance(len(rows))
        return out

    def predict_proba(self, texts: str | list[str], *, progress: bool = False) -> np.ndarray:
        """(N, C) class probabilities."""
        logits = self.logits(texts, progress=progress)
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        return shifted / shifted.sum(-1, keepdims=True)

    def predict(self, texts: str | list[str], top_k: int = 3, *, progress: bool = False) -> list[list[dict[str, Any]]]:
        """For each text, the `top_k` labels as [{"label", "score"}] by decreasing probability (a single string
        gives a list of one)."""
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}", hint="the number of labels to return per text")
        probs = self.predict_proba(texts, progress=progress)
        k = min(top_k, len(self.labels))
        top = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
        return [
            [{"label": self.labels[j], "score": float(row[j])} for j in idx]
            for row, idx in zip(probs, top, strict=True)
        ]


def trained_max_len(model_dir: Path) -> int | None:
    """The max_len the model was trained with, from its textkd_model.json, if recorded."""
    from textkd.models.io import read_marker

    try:
        info = read_marker(model_dir) or {}
    except (OSError, ValueError):  # an unreadable marker records nothing
        return None
    return (info.get("data") or {}).get("max_len") or info.get("max_len")
