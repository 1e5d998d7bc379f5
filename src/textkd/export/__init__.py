"""Export: a saved model as a self-contained ONNX folder (fp32 + optional int8), checked against PyTorch.

Example:
    >>> from textkd.export import export_onnx, OnnxBackend
    >>> info = export_onnx("runs/bank/student", int8=True)  # doctest: +SKIP
    >>> OnnxBackend("runs/bank/student/onnx", variant="int8").labels[:2]  # doctest: +SKIP
"""

from __future__ import annotations

from textkd.export.onnx import ExportDriftError, OnnxBackend, ensure_export, export_onnx

__all__ = ["ExportDriftError", "OnnxBackend", "ensure_export", "export_onnx"]
