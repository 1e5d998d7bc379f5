"""The Hugging Face hub: a teacher (or any model) by repo id, downloaded once; a trained model pushed with its card.

Downloads keep to config, safetensors and tokenizer files (never pickles) and land in a plain folder under
textkd's cache, so everything that reads a model folder works on them unchanged. Pushing uploads a textkd
model folder (weights, tokenizer, card, figures, the ONNX export if any) and leaves out training state.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from textkd.errors import HubError, ModelLoadError
from textkd.models.io import SAVING, WEIGHTS, read_marker, require_model_dir
from textkd.utils import atomic_write_json, cache_root

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # "name" or "owner/name"
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]  # config, weights, tokenizer; never pickles
HUB_MARKER = "textkd_hub.json"  # in a downloaded folder: {"repo_id": ...}, so cards can name the repo


def model_folder(name: str | Path) -> Path:
    """The folder of a model: `name` itself when it exists, else a Hugging Face hub repo downloaded once.

    A hub repo (any sequence classifier with `model.safetensors`, e.g. a fine-tuned teacher) is downloaded
    into `<cache>/models/<owner>--<name>` (`$TEXTKD_CACHE_DIR`, else `~/.cache/textkd`): a plain folder that
    textkd owns, so cached teacher outputs live beside the weights as for a local teacher. Later calls use
    that copy without the network; delete the folder to fetch the repo again. Only config, safetensors and
    tokenizer files are fetched.

    Example:
        >>> model_folder("runs/banking77/teacher")  # doctest: +SKIP
        PosixPath('runs/banking77/teacher')
        >>> model_folder("my-org/bert-banking77")  # doctest: +SKIP
        PosixPath('/home/me/.cache/textkd/models/my-org--bert-banking77')
    """
    path = Path(name).expanduser()
    if path.exists() or not HUB_ID.fullmatch(str(name)):
        return path
    folder = cache_root() / "models" / str(name).replace("/", "--")
    if not ((folder / WEIGHTS).is_file() and (folder / "config.json").is_file()):
        _download(str(name), folder)
    return folder


def _download(repo_id: str, folder: Path) -> None:
    from huggingface_hub import snapshot_download

    errors: tuple[type[BaseException], ...] = (OSError, ValueError)  # hub HTTP errors, offline, a bad repo id
    try:
        import httpx

        errors += (httpx.HTTPError,)  # network failures below the hub's own errors
    except ImportError:  # pragma: no cover - older huggingface_hub uses requests (OSError)
        pass
    try:
        snapshot_download(repo_id=repo_id, local_dir=folder, allow_patterns=HUB_FILES)
    except errors as err:
        raise ModelLoadError(
            f"no such model directory, and no Hugging Face hub repo {repo_id!r} could be "
            f"downloaded ({_first_line(err)})",
            path=repo_id,
            hint="check the path, or the repo id and the network (HF_TOKEN for a gated repo)",
        ) from None
    if not (folder / WEIGHTS).is_file():
        raise ModelLoadError(
            f"the hub repo {repo_id!r} has no {WEIGHTS} (textkd never downloads pickle weights)",
            path=folder,
            hint="use a repo with safetensors weights, or convert its weights and pass the local folder",
        )
    atomic_write_json(folder / HUB_MARKER, {"repo_id": repo_id})


def hub_repo_id(folder: str | Path) -> str | None:
    """The hub repo a folder was downloaded from by `model_folder`, else None."""
    path = Path(folder) / HUB_MARKER
    return json.loads(path.read_text(encoding="utf-8")).get("repo_id") if path.is_file() else None


PUSH_IGNORE = ["checkpoint/*", "selection/*", ".*", "*.lock"]  # training state, a refit's selection run, caches


def push_to_hub(
    model_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a textkd model folder to the Hugging Face hub, with its model card, and return the repo URL.

    The card (README.md) is written first where textkd owns it (a README of your own is kept). Uploaded:
    weights, config, tokenizer, `textkd_model.json`, `config.yaml`, `metrics.jsonl`, the eval and bench
    figures, `onnx/` if exported and `logs/` if `train.report_to` wrote TensorBoard logs; left out:
    `checkpoint/`, a refit's `selection/`, dot-folders (the teacher-output cache) and lock files. The repo is
    created if needed (`private` then applies).

    Example:
        >>> push_to_hub("runs/banking77/students/bilstm/bilstm-soft", "my-org/banking77-bilstm")  # doctest: +SKIP
        'https://huggingface.co/my-org/banking77-bilstm'
    """
    from huggingface_hub import HfApi

    from textkd import __version__
    from textkd.evaluation.card import refresh_model_card

    folder = require_model_dir(model_dir)
    if read_marker(folder) is None:
        raise ModelLoadError(
            "not a textkd model folder (no textkd_model.json)",
            path=folder,
            hint="push a folder written by `textkd teacher` or `textkd distill`",
        )
    if (folder / SAVING).exists() or not (folder / WEIGHTS).is_file():
        raise ModelLoadError(f"the model folder has no finished {WEIGHTS}", path=folder, hint="save it again")
    if not HUB_ID.fullmatch(repo_id):
        raise HubError(f"{repo_id!r} is not a hub repo id", hint="use owner/name, e.g. my-org/banking77-bilstm")
    refresh_model_card(folder, create=True)
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            ignore_patterns=PUSH_IGNORE,
            commit_message=commit_message or f"Upload {folder.name} (textkd {__version__})",
        )
    except (OSError, ValueError) as err:  # hub HTTP errors (401, 403, 404), network failures, bad arguments
        raise HubError(
            f"could not push to {repo_id!r} ({_first_line(err)})",
            path=folder,
            hint="log in with `hf auth login` or pass --token (a write token), and check the repo id's owner",
        ) from None
    return str(url)


def _first_line(err: BaseException) -> str:
    """The first line of an error's message (hub errors add the server's reply on further lines)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
