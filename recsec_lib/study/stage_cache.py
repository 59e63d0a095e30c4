"""Reusing a stage's results across runs when nothing it depends on changed.

A stage's result is keyed by a hash of: the stage name, its settings, the run's
dataset, seed and device, the keys of the stages it reads in the run
(``stages.STAGE_INPUTS``: a retrained target invalidates every attack on it),
and the source code of ``recsec_lib`` (so a code change never serves stale
figures). The stage's folder and the headline keys it wrote (its own
``headline.json``, ``runs.write_stage_metrics``) are stored under
``<outputs>/.cache/<stage>-<key>/`` (written under a temporary name and
renamed), and copied back into a later run with the same key. ``force``
recomputes and replaces the entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

from recsec_lib.study import runs
from recsec_lib.study.stages import STAGE_INPUTS, stage_inputs
from recsec_lib.study.stages.context import StudyContext

LIBRARY = Path(__file__).resolve().parent.parent
KEYS_FILE = "stage_keys.json"  # in the run folder: the key of each stage run so far
NEVER_CACHED = ("data", "report")  # cheap, and read the sources or the whole run: always rebuilt


def code_fingerprint() -> str:
    """Hash of every Python source file of the library."""
    digest = hashlib.sha256()
    for path in sorted(LIBRARY.rglob("*.py")):
        digest.update(str(path.relative_to(LIBRARY)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def stage_key(ctx: StudyContext, stage: str, settings) -> str:
    """The cache key of ``stage`` with ``settings`` in this run."""
    keys_path = ctx.run_dir / KEYS_FILE
    recorded = runs.read_json(keys_path) if keys_path.exists() else {}
    order = [name for name in STAGE_INPUTS if name in recorded] + sorted(set(recorded) - set(STAGE_INPUTS))
    before = order[:order.index(stage)] if stage in order else [name for name in order if name != stage]
    earlier = {name: recorded[name] for name in stage_inputs(stage, before)}
    payload = {
        "stage": stage,
        "settings": dataclasses.asdict(settings),
        "dataset": ctx.dataset, "data": _data_fingerprint(ctx),
        "seed": ctx.seed, "device": ctx.device,
        "earlier_stages": earlier,
        "code": code_fingerprint(),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _data_fingerprint(ctx: StudyContext) -> str:
    """The processed dataset's fingerprint (sources, parameters, counts)."""
    return ctx.load_dataset().fingerprint


def run_cached(stage_module, ctx: StudyContext, settings, cache_root: Path | None = None) -> dict:
    """Run ``stage_module.run(ctx, settings)`` unless an identical earlier result exists.

    Returns the stage's metrics (with ``"cache": "hit" | "miss" | "forced" | "off"``).
    """
    stage = stage_module.__name__.rsplit(".", 1)[-1]
    if stage in NEVER_CACHED:
        return stage_module.run(ctx, settings)
    cache_root = cache_root or ctx.run_dir.parent / ".cache"
    key = stage_key(ctx, stage, settings)
    entry = cache_root / f"{stage}-{key}"
    target = ctx.run_dir / stage
    if entry.exists() and not ctx.force:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(entry / "stage", target)
        runs.merge_headline(ctx.run_dir / "headline.json", runs.read_json(entry / "headline.json"))
        status = "hit"
        metrics = runs.read_json(target / "metrics.json")
    else:
        metrics = stage_module.run(ctx, settings)
        own = target / runs.STAGE_HEADLINE
        _store(entry, target, runs.read_json(own) if own.exists() else {})
        status = "forced" if ctx.force else "miss"
    _record_key(ctx.run_dir, stage, key)
    print(f"stage cache: {stage} {status} ({entry.name})")
    return {**metrics, "cache": status}


def _store(entry: Path, stage_dir: Path, headline: dict) -> None:
    staging = entry.with_name(entry.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copytree(stage_dir, staging / "stage")
    runs.write_json_atomic(staging / "headline.json", headline)
    shutil.rmtree(entry, ignore_errors=True)
    staging.rename(entry)


def _record_key(run_dir: Path, stage: str, key: str) -> None:
    path = run_dir / KEYS_FILE
    with runs.file_lock(path):  # stages running at once record their keys into the same file
        keys = runs.read_json(path) if path.exists() else {}
        keys[stage] = key
        runs.write_json_atomic(path, keys)


__all__ = ["run_cached", "stage_key", "code_fingerprint"]
