"""Pack what `gpu_vs_peer.py` needs on a GPU machine that cannot download: a folder small enough to carry.

Writes, under `--out` (default `.gpu/`, git-ignored):
    minilm/          the all-MiniLM-L6-v2 folder with its weights stored in fp16 (45 MB instead of 90 MB);
                     textkd and the peer both build fp32 models and copy these weights in, so they are upcast
                     on load (the rounding is checked here: the fp16 copy's encoder output against the original)
    data/banking77/  the dataset's files
    peer_seed1.py    the peer script

Usage:
    python benchmarks/gpu_bundle.py --data-dir ../shared/data --peer ../shared/bench/peer_seed1.py
then, on the GPU machine (the bundle is carried as an ignored folder):
    python benchmarks/gpu_vs_peer.py --minilm .gpu/minilm --data-dir .gpu/data --peer .gpu/peer_seed1.py
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from textkd.models.backbones import resolve_backbone

WEIGHTS = "model.safetensors"


def fp16_copy(source: Path, target: Path) -> Path:
    """Copy a Hugging Face model folder, storing its floating-point safetensors weights in fp16."""
    weights = source / WEIGHTS
    if not weights.is_file():
        raise SystemExit(f"{source} has no {WEIGHTS}: pass an all-MiniLM-L6-v2 folder saved with safetensors")
    shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(WEIGHTS, "*.bin", "onnx"))
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in load_file(weights).items()}
    save_file(tensors, target / WEIGHTS, metadata={"format": "pt"})
    return target


def encoder_drift(original: Path, copy: Path) -> float:
    """Largest absolute difference of the last hidden state, original vs the upcast fp16 copy, on a probe text."""
    from transformers import AutoModel, AutoTokenizer

    batch = AutoTokenizer.from_pretrained(original)(["is my card on its way?"], return_tensors="pt")
    outputs = []
    for folder in (original, copy):
        model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
        with torch.no_grad():
            outputs.append(model(**batch).last_hidden_state)
    return float((outputs[0] - outputs[1]).abs().max())


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--minilm",
        default=resolve_backbone("minilm-l6"),
        help="local all-MiniLM-L6-v2 folder (default: textkd's offline `minilm-l6` backbone)",
    )
    ap.add_argument(
        "--data-dir",
        default=os.environ.get("TEXTKD_DATA_DIR"),
        help="folder holding banking77/ (default $TEXTKD_DATA_DIR)",
    )
    ap.add_argument("--peer", default="../shared/bench/peer_seed1.py", help="the peer script")
    ap.add_argument("--out", default=".gpu")
    ap.add_argument("--limit-mib", type=float, default=64.0, help="fail above this size (one call carries 64 MiB)")
    args = ap.parse_args()
    if not args.minilm or not Path(args.minilm).is_dir():
        raise SystemExit(f"no all-MiniLM-L6-v2 folder at {args.minilm!r}: pass --minilm DIR")
    data = Path(args.data_dir or "") / "banking77"
    if not args.data_dir or not data.is_dir():
        raise SystemExit(f"no banking77/ under {args.data_dir!r}: pass --data-dir DIR or set TEXTKD_DATA_DIR")
    if not Path(args.peer).is_file():
        raise SystemExit(f"no peer script at {args.peer!r}: pass --peer FILE")
    out = Path(args.out)
    minilm = fp16_copy(Path(args.minilm), out / "minilm")
    shutil.copytree(data, out / "data" / "banking77", dirs_exist_ok=True)
    shutil.copy2(args.peer, out / "peer_seed1.py")
    drift = encoder_drift(Path(args.minilm), minilm)
    size = folder_mib(out)
    print(f"{out}: {size:.1f} MiB (limit {args.limit_mib:g}); fp16 encoder drift on a probe text: {drift:.2e}")
    if size > args.limit_mib:
        raise SystemExit(f"the bundle is {size:.1f} MiB, over {args.limit_mib:g} MiB")
    print(
        f"on the GPU: python benchmarks/gpu_vs_peer.py --minilm {minilm} --data-dir {out / 'data'} "
        f"--peer {out / 'peer_seed1.py'}"
    )


if __name__ == "__main__":
    main()
