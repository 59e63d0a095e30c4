"""Saving and loading trained recommenders, tied to the dataset they were trained on.

A checkpoint is a plain ``torch.save`` dict that ``torch.load(weights_only=True)``
can read (tensors, numbers, strings, lists, dicts only: no pickled classes, so
loading a checkpoint cannot run code):

    format             "recsec-checkpoint/1"
    model_name         registry name ("sasrec", ...)
    config             dataclasses.asdict(model.config): rebuilt into the frozen dataclass
    num_items, max_len
    state_dict         the model's weights (the best epoch's, for a trained model)
    item_raw_ids       [num_items + 1] int64 tensor: internal id -> MovieLens id
    dataset_name, dataset_fingerprint
    metrics            JSON-like dict (test/valid figures, history)
    training_state     None, or what ``training.train_model`` needs to resume

Internal item ids only mean something together with the dataset's id mapping,
so loading against a dataset checks the fingerprint, the catalogue size and
the raw ids, and says which one differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsec_lib.models.base import SequentialRecommender
from recsec_lib.models.registry import build_model, model_name_of

FORMAT = "recsec-checkpoint/1"


@dataclass(frozen=True, eq=False)
class LoadedCheckpoint:
    model: SequentialRecommender  # in eval mode, on the requested device
    model_name: str
    config: object  # the model's frozen config dataclass
    item_raw_ids: np.ndarray  # [num_items + 1]
    dataset_fingerprint: str
    metrics: dict
    dataset_name: str = ""
    training_state: dict | None = None  # only for resuming training


def save_checkpoint(path: str | os.PathLike, model: SequentialRecommender, model_name: str | None,
                    dataset, metrics: dict | None = None, training_state: dict | None = None) -> Path:
    """Write ``model`` (trained on ``dataset``) to ``path`` atomically; returns the path.

    ``model_name`` may be None to take it from the registry. ``dataset`` is a
    SequenceDataset (only its name, fingerprint and item ids are stored).
    """
    path = Path(path)
    model_name = model_name or model_name_of(model)
    if model.num_items != dataset.num_items:
        raise ValueError(f"model has {model.num_items} items but dataset {dataset.name!r} has {dataset.num_items}")
    payload = {
        "format": FORMAT,
        "model_name": model_name,
        "config": dataclasses.asdict(model.config),
        "num_items": int(model.num_items),
        "max_len": int(model.max_len),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "item_raw_ids": torch.as_tensor(np.asarray(dataset.item_raw_ids, dtype=np.int64)),
        "dataset_name": str(dataset.name),
        "dataset_fingerprint": str(dataset.fingerprint),
        "metrics": _plain(metrics or {}),
        "training_state": training_state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        # Through a handle, not the path: torch names the archive's root after a path it is given, and the
        # temporary name is random (the same payload then gives other bytes each time it is saved).
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a checkpoint is an ordinary artefact
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _plain(value: Any) -> Any:
    """Metrics as plain Python values (numpy scalars become floats/ints) so weights_only can load them."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic, torch.Tensor)) and np.ndim(value) == 0:
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def model_digest(path: str | os.PathLike) -> str:
    """SHA-256 (first 16 hex digits) of what a checkpoint's model computes: its name, config, sizes, weights,
    item ids and dataset fingerprint, never its metrics or training state.

    Why not the file's bytes: a resumed stage saves a finished model again with the same weights, and the
    bytes can still differ (pickle shares repeated strings by object identity, and the history read back from
    a training state holds other objects than the one measured live). A matrix cell keyed by this digest is
    reused exactly when the model is the same.
    """
    payload = read_checkpoint_payload(path)
    digest = hashlib.sha256()
    about = {name: payload.get(name) for name in ("model_name", "config", "num_items", "max_len",
                                                   "dataset_fingerprint")}
    digest.update(json.dumps(about, sort_keys=True, default=str).encode())
    tensors = {f"state_dict.{name}": value for name, value in payload["state_dict"].items()}
    tensors["item_raw_ids"] = payload["item_raw_ids"]
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def read_checkpoint_payload(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """The raw checkpoint dict, with clear errors for a missing, empty or foreign file.

    Only ``weights_only`` loading is ever tried: a file that needs full
    unpickling is refused, and the error does not suggest loading it that way
    (a checkpoint from elsewhere could run code when unpickled).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist" if not path.exists()
                                else f"checkpoint {path} is not a file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): not a recsec checkpoint (an interrupted copy or save?)")
    with open(path, "rb") as handle:
        start = handle.read(256)
    if not start.startswith(TORCH_SAVE_STARTS):
        raise ValueError(f"{path} is not a recsec checkpoint: not a torch.save file ({describe_start(start)})")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol: the error below says what the file is
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch.load raises many types (UnpicklingError, EOFError, RuntimeError, ...)
        raise ValueError(f"{path} is not a recsec checkpoint ({load_failure_reason(exc)})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path} is not a recsec checkpoint (format {found!r}, expected {FORMAT!r})")
    return payload


_ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
# What a torch.save file starts with: a zip archive (torch >= 1.6) or a pickle (protocol >= 2, the legacy format).
TORCH_SAVE_STARTS = (b"PK\x03\x04", b"\x80")


def describe_start(start: bytes) -> str:
    """What a file that is not a torch.save file looks like, from its first bytes (for the error message)."""
    try:
        text = start.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.strip() and all(c.isprintable() or c in "\t\r\n" for c in text):
        first = text.strip().splitlines()[0]
        if first.startswith("version https://git-lfs"):
            return "it is a Git LFS pointer, not the file itself: fetch it with git lfs pull"
        return f"it is text, starting {first[:60]!r}"
    return f"it starts with the bytes {start[:8]!r}"


def load_failure_reason(exc: BaseException) -> str:
    """One line saying why ``torch.load`` failed, without torch's advice to retry with ``weights_only=False``.

    torch's own message for a file holding Python objects recommends loading
    it without the safety check; for a file of unknown origin that is exactly
    what must not be done, so that message is replaced by what the file holds.
    Only a pickle that names a class or function ("Unsupported global") holds
    Python objects; a pickle that weights-only loading cannot parse for another
    reason (e.g. a plain ``pickle.dump`` file) is said to be unreadable, not
    dangerous.
    """
    text = _ANSI_CODE.sub("", str(exc))
    if "weights_only" in text or "Weights only load failed" in text:
        found = _UNSUPPORTED_GLOBAL.search(text)
        if found:
            return (f"it holds Python objects such as {found.group(1)} that a recsec checkpoint never contains; "
                    f"it was not loaded, since unpickling them could run code")
        reason = next((line.strip() for line in text.split("WeightsUnpickler error:", 1)[-1].splitlines()
                       if line.strip()), "unreadable")
        return (f"a pickle that weights-only loading cannot read ({reason}), so it was not written by "
                f"recsec's torch.save; it was not unpickled")
    if "zip archive" in text:
        return "a torch.save zip archive that cannot be read (damaged, or cut short by an interrupted copy?)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"torch.load failed: {type(exc).__name__}" + (f": {lines[0]}" if lines else "")


def check_matches_dataset(payload: dict, dataset, path: str | os.PathLike = "checkpoint") -> None:
    """Raise ValueError naming the first difference between the checkpoint's data and ``dataset``."""
    if payload["num_items"] != dataset.num_items:
        raise ValueError(f"{path} was trained on {payload['num_items']} items but dataset {dataset.name!r} has "
                         f"{dataset.num_items}: it belongs to another dataset or preprocessing")
    stored_ids = payload["item_raw_ids"].cpu().numpy()
    if not np.array_equal(stored_ids, np.asarray(dataset.item_raw_ids)):
        raise ValueError(f"{path} maps internal item ids to different MovieLens ids than dataset {dataset.name!r}")
    if payload["dataset_fingerprint"] != dataset.fingerprint:
        raise ValueError(f"{path} was trained on dataset fingerprint {payload['dataset_fingerprint']!r}, but "
                         f"{dataset.name!r} has fingerprint {dataset.fingerprint!r}")


def load_checkpoint(path: str | os.PathLike, dataset=None, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model stored at ``path`` (eval mode, on ``device``).

    With ``dataset`` given, refuse a checkpoint trained on other data.
    """
    payload = read_checkpoint_payload(path, device="cpu")
    if dataset is not None:
        check_matches_dataset(payload, dataset, path)
    config = dict(payload["config"])
    if payload["model_name"] == "sasrec":
        config.setdefault("layout", "pre_ln")  # checkpoints from before the layout option used pre-LN blocks
    try:
        model = build_model(payload["model_name"], payload["num_items"], payload["max_len"], **config)
        model.load_state_dict(payload["state_dict"])
    except (ValueError, RuntimeError, TypeError) as exc:
        reason = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ValueError(f"{path}: the stored model cannot be rebuilt ({reason.strip()})") from exc
    model.to(device).eval()
    return LoadedCheckpoint(
        model=model,
        model_name=payload["model_name"],
        config=model.config,
        item_raw_ids=payload["item_raw_ids"].cpu().numpy(),
        dataset_fingerprint=payload["dataset_fingerprint"],
        metrics=payload["metrics"],
        dataset_name=payload.get("dataset_name", ""),
        training_state=payload.get("training_state"),
    )
