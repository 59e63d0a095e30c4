"""The secret key and the watermark it chooses.

A key is a seed plus a few public-looking settings. From it follow, deterministically:

* the watermark: ``num_pairs`` (trigger, continuation) item pairs. The target is
  trained so that after a history ending in the trigger it ranks the
  continuation first. Triggers are single items on purpose: an extraction
  attacker's queries end in a given item a few dozen times per 100,000 queries
  (a random walk over 3,416 items), so a one-item trigger is something the
  box's answers can teach a surrogate; a longer trigger would never be queried;
* the verification queries: per pair, a few random items then the trigger
  (``context_len`` bounds how many); a hit is the continuation among the first
  ``cutoff`` ids the suspect returns (``verify``);
* ``decoys`` decoy keys, drawn exactly as the watermark but never trained in.
  A suspect that never saw the watermark hits the real pairs and the decoy
  pairs at the same rate (every pair is an independent draw from one
  distribution), so the decoys calibrate the test on the suspect itself,
  whatever its architecture or popularity bias (``statistics``).

Pairs are drawn independently (triggers with replacement) so that the real
pairs and the decoy pairs are i.i.d. draws, which the exact test needs. Where
pairs come from (``trigger_pool`` / ``continuation_pool``, empty = every item)
is chosen at key creation from the unmarked target (``make_key``): "rare"
pools hold the items the target recommends least (AOW's out-of-distribution
idea: a clean model almost never ranks them high, so the null hit rate is
low), "all" the whole catalogue (a knowing attacker cannot avoid them).

The key file is JSON (``save_key`` / ``load_key``), written atomically; it is
the secret: whoever holds it can verify, and could strip the mark knowingly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from recsec_lib.common.files import write_json_atomic

KEY_FORMAT = "recsec-watermark-key/1"
POOLS = ("all", "rare")


@dataclass(frozen=True)
class WatermarkKey:
    """The secret (``seed``) and what it takes to rebuild the watermark and its decoys from it."""

    seed: int  # the secret: every pair, context and decoy follows from it
    num_items: int  # item ids 1..num_items of the target's catalogue
    num_pairs: int = 256  # watermark pairs (and verification queries) per key
    context_len: int = 0  # verification queries hold 0..context_len random items before the trigger
    decoys: int = 40  # decoy keys the test compares the real key's hits with
    trigger_pool: tuple[int, ...] = ()  # items triggers are drawn from; () = every item
    continuation_pool: tuple[int, ...] = ()  # items continuations are drawn from; () = every item
    dataset_fingerprint: str = ""  # the target's dataset (a suspect of other data is refused when known)
    notes: dict = field(default_factory=dict, compare=False)  # how the pools were chosen (for the record)

    def __post_init__(self) -> None:
        if self.num_items < 3:
            raise ValueError(f"parameter 'num_items' must be >= 3, got {self.num_items}")
        for name in ("num_pairs", "decoys"):
            if getattr(self, name) < 1:
                raise ValueError(f"parameter {name!r} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.context_len <= self.num_items - 2:
            raise ValueError(f"parameter 'context_len' must be in 0..{self.num_items - 2}, got {self.context_len}")
        for name in ("trigger_pool", "continuation_pool"):
            pool = getattr(self, name)
            if pool and (min(pool) < 1 or max(pool) > self.num_items):
                raise ValueError(f"parameter {name!r} holds ids outside 1..{self.num_items}")
            if len(set(pool)) != len(pool):
                raise ValueError(f"parameter {name!r} repeats an item")
        if self.continuation_pool and len(self.continuation_pool) < 2:
            raise ValueError("parameter 'continuation_pool' needs at least 2 items (a continuation is never "
                             "its own trigger)")

    # ---- the watermark and the decoys --------------------------------------------------------
    def _pool(self, name: str) -> np.ndarray:
        pool = getattr(self, name)
        return np.asarray(pool, dtype=np.int64) if pool else np.arange(1, self.num_items + 1, dtype=np.int64)

    def pairs(self, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """([M] triggers, [M] continuations) of key ``index``: 0 is the watermark, 1..decoys the decoys.

        i.i.d. draws: trigger uniform over the trigger pool, continuation
        uniform over the continuation pool minus the trigger.
        """
        self._check_index(index)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, index, 0]))
        triggers = rng.choice(self._pool("trigger_pool"), size=self.num_pairs)  # [M]
        pool = self._pool("continuation_pool")
        continuations = rng.choice(pool, size=self.num_pairs)  # [M]
        while (same := continuations == triggers).any():  # a continuation is never its own trigger
            continuations[same] = rng.choice(pool, size=int(same.sum()))
        return triggers, continuations

    def queries(self, index: int = 0) -> list[np.ndarray]:
        """The M verification queries of key ``index``: 0..context_len random items, then the trigger.

        Context items never include the pair's trigger or continuation (the
        box filters seen items, so a continuation in the query could not be returned).
        """
        triggers, continuations = self.pairs(index)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, index, 1]))
        out = []
        for trigger, continuation in zip(triggers.tolist(), continuations.tolist()):
            length = int(rng.integers(0, self.context_len + 1))
            context = np.empty(0, dtype=np.int64)
            if length:
                draw = rng.choice(self.num_items, size=length + 2, replace=False) + 1  # ids 1..n
                context = draw[(draw != trigger) & (draw != continuation)][:length]
            out.append(np.append(context, trigger).astype(np.int64))
        return out

    def _check_index(self, index: int) -> None:
        if not 0 <= index <= self.decoys:
            raise ValueError(f"key index {index} is neither the watermark (0) nor a decoy (1..{self.decoys})")

    def with_overrides(self, **values) -> "WatermarkKey":
        """A copy with the given fields replaced; None keeps the current value."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update({k: v for k, v in values.items() if v is not None})
        return WatermarkKey(**current)


# ---- choosing the pools from the unmarked target -------------------------------------------
def recommendation_exposure(model, histories, k: int = 10, batch_size: int = 512) -> np.ndarray:
    """[num_items + 1] how often each item is in the model's top-k for ``histories`` (seen items excluded)."""
    from recsec_lib.recommend.evaluation import recommend

    lists = recommend(model, histories, k=k, exclude_seen=True, batch_size=batch_size)  # [U, k]
    return np.bincount(lists.reshape(-1), minlength=model.num_items + 1)


def rare_items(exposure: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """The ``fraction`` of items 1..n with the lowest exposure (ties broken at random), sorted ids."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"parameter 'fraction' must be in (0, 1], got {fraction}")
    counts = np.asarray(exposure, dtype=np.float64)[1:]  # [n]
    order = np.lexsort((np.random.default_rng(seed).random(len(counts)), counts))  # lowest first, random ties
    count = max(2, int(round(fraction * len(counts))))
    return np.sort(order[:count]) + 1


@dataclass(frozen=True)
class KeySettings:
    """How ``make_key`` builds a key (the seed is passed separately: it is the secret)."""

    num_pairs: int = 256
    context_len: int = 0
    decoys: int = 40
    trigger_pool: str = "all"  # all | rare
    continuation_pool: str = "rare"  # all | rare
    rare_fraction: float = 0.5  # share of the catalogue that "rare" keeps (least recommended first)

    def __post_init__(self) -> None:
        for name in ("trigger_pool", "continuation_pool"):
            if getattr(self, name) not in POOLS:
                raise ValueError(f"key setting {name!r} must be one of {POOLS}, got {getattr(self, name)!r}")
        if not 0.0 < self.rare_fraction <= 1.0:
            raise ValueError(f"key setting 'rare_fraction' must be in (0, 1], got {self.rare_fraction}")


def make_key(model, dataset, seed: int, settings: KeySettings = KeySettings()) -> WatermarkKey:
    """A key for ``model`` (the unmarked target) trained on ``dataset``; "rare" pools come from its top-10s
    on the training histories."""
    if model.num_items != dataset.num_items:
        raise ValueError(f"model has {model.num_items} items but dataset {dataset.name!r} has {dataset.num_items}")
    pools: dict[str, tuple[int, ...]] = {"trigger_pool": (), "continuation_pool": ()}
    if "rare" in (settings.trigger_pool, settings.continuation_pool):
        exposure = recommendation_exposure(model, dataset.train_sequences())
        rare = tuple(int(i) for i in rare_items(exposure, settings.rare_fraction, seed=0))
        for name in pools:
            if getattr(settings, name) == "rare":
                pools[name] = rare
    return WatermarkKey(seed=int(seed), num_items=int(dataset.num_items), num_pairs=settings.num_pairs,
                        context_len=settings.context_len, decoys=settings.decoys,
                        dataset_fingerprint=str(getattr(dataset, "fingerprint", "")),
                        notes={"trigger_pool": settings.trigger_pool, "continuation_pool": settings.continuation_pool,
                               "rare_fraction": settings.rare_fraction},
                        **pools)


# ---- the key file --------------------------------------------------------------------------
def save_key(path: str | os.PathLike, key: WatermarkKey) -> Path:
    """Write ``key`` as JSON to ``path`` atomically; returns the path."""
    path = Path(path)
    payload = {"format": KEY_FORMAT, **asdict(key)}
    payload["trigger_pool"] = list(key.trigger_pool)
    payload["continuation_pool"] = list(key.continuation_pool)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, payload)
    return path


_INT_FIELDS = ("seed", "num_items", "num_pairs", "context_len", "decoys")


def load_key(path: str | os.PathLike) -> WatermarkKey:
    """The key stored at ``path``; FileNotFoundError / ValueError naming the file when it is missing or damaged."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"watermark key {path} does not exist" if not path.exists()
                                else f"watermark key {path} is not a file")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a watermark key: not valid JSON ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != KEY_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path} is not a watermark key (format {found!r}, expected {KEY_FORMAT!r})")
    missing = [name for name in _INT_FIELDS if name not in payload]
    if missing:
        raise ValueError(f"{path}: damaged watermark key, missing {missing}")
    try:
        values = {name: _as_int(payload[name], name) for name in _INT_FIELDS}
        for name in ("trigger_pool", "continuation_pool"):
            pool = payload.get(name, [])
            if not isinstance(pool, list):
                raise ValueError(f"{name!r} must be a list of item ids")
            values[name] = tuple(_as_int(item, name) for item in pool)
        values["dataset_fingerprint"] = str(payload.get("dataset_fingerprint", ""))
        notes = payload.get("notes", {})
        values["notes"] = notes if isinstance(notes, dict) else {}
        return WatermarkKey(**values)
    except ValueError as exc:
        raise ValueError(f"{path}: damaged watermark key ({exc})") from exc


def _as_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name!r} must hold integers, got {value!r}")
    return int(value)
