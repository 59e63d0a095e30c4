"""Finished cells on disk, so that an interrupted matrix runs only the cells it is missing.

The driver (never a worker) stores each cell's result as it arrives, under the
cell's key: a hash of everything the result depends on, the *content* of the
model's checkpoint included (a retrained model with the same file name is a
new cell). Files are written atomically; a damaged entry only costs
recomputing its cell.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from recsec_lib.arena.cells import CellResult, MatrixCell
from recsec_lib.common.files import atomic_path, write_json_atomic

SEPARATOR = "\x1f"  # joins arm label, view and figure name in the .npz (labels may hold any printable text)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (first 16 hex digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


class CellCache:
    """``folder/<key>.npz`` (per-user figures) and ``folder/<key>.json`` (which surrogate each view used)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._digests: dict[str, str] = {}

    def key(self, cell: MatrixCell) -> str:
        checkpoint = cell.checkpoint
        if checkpoint not in self._digests:
            self._digests[checkpoint] = file_digest(checkpoint)
        text = f"{cell.key}|{self._digests[checkpoint]}"
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def get(self, cell: MatrixCell) -> CellResult | None:
        """The stored result of ``cell``, or None (absent or unreadable)."""
        key = self.key(cell)
        arrays, sidecar = self.folder / f"{key}.npz", self.folder / f"{key}.json"
        if not (arrays.is_file() and sidecar.is_file()):
            return None
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            figures: dict[tuple[str, str], dict[str, np.ndarray]] = {}
            with np.load(arrays, allow_pickle=False) as data:
                for name in data.files:
                    label, view, figure = name.split(SEPARATOR)
                    figures.setdefault((label, view), {})[figure] = data[name]
            shared = {(label, view): surrogate for label, view, surrogate in meta["shared"]}
            return CellResult(figures, shared, meta["surrogates"])
        except (OSError, ValueError, KeyError):
            return None

    def put(self, cell: MatrixCell, result: CellResult) -> None:
        """Store ``result`` atomically (the arrays first: an entry counts only once its sidecar exists)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self.key(cell)
        arrays = {SEPARATOR.join((label, view, figure)): values
                  for (label, view), figures in result.figures.items() for figure, values in figures.items()}
        with atomic_path(self.folder / f"{key}.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        write_json_atomic(self.folder / f"{key}.json",
                          {"cell": cell.key, "shared": [[label, view, name] for (label, view), name
                                                        in result.shared.items()],
                           "surrogates": result.surrogates})


def cached_runner(cache: CellCache, run_cells):
    """A cell runner that returns stored results and runs (and stores) only the missing cells."""

    def run(cells, function, on_done=None):
        results: dict[int, CellResult] = {}
        missing = []
        for index, cell in enumerate(cells):
            stored = cache.get(cell)
            if stored is None:
                missing.append(index)
            else:
                results[index] = stored

        def done(cell, result):
            cache.put(cell, result)
            if on_done is not None:
                on_done(cell, result)

        fresh = run_cells([cells[i] for i in missing], function, done) if missing else []
        results.update(zip(missing, fresh))
        return [results[index] for index in range(len(cells))]

    return run
