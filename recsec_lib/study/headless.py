"""The whole study without Jupyter: every stage's ``run`` in order.

``recsec study`` (and ``python -m recsec_lib study``) runs the same library
functions as the notebooks, with each stage's settings taken from the profile,
for machines that have only the scientific stack. It builds the same run folder
as ``run_all.sh`` minus the executed notebooks and HTML.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from recsec_lib.study import runs
from recsec_lib.study.stage_cache import run_cached
from recsec_lib.study.stages.context import StudyContext, seed_everything

STAGE_ORDER = ("data", "analyze", "train", "attack", "gro", "seat", "watermark", "report")


def stage_module(name: str):
    """The module ``recsec_lib.study.stages.<name>``, or a clear error for an unknown stage."""
    if name not in STAGE_ORDER:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGE_ORDER)}")
    return importlib.import_module(f"recsec_lib.study.stages.{name}")


def run_study(outputs: Path, run_id: str, dataset: str, profile: str, seed: int = 42, device: str = "auto",
              data_dir: Path = Path("data"), mirror: Path | None = None, stages: tuple[str, ...] = STAGE_ORDER,
              force: bool = False, progress=print, workers: int = 1, cluster: str = "", threads: int = 1) -> Path:
    """Run ``stages`` in order into ``<outputs>/<run_id>``; returns the finished run folder.

    Holds the run's lock (``runs.run_lock``) throughout, as ``run_all.sh`` does.
    """
    modules = [(name, stage_module(name)) for name in stages]
    with runs.run_lock(outputs, run_id):
        run_dir = runs.create_run_folder(outputs, run_id, {
            "common": {"run_id": run_id, "dataset": dataset, "profile": profile, "seed": seed, "device": device,
                       "data_dir": str(data_dir), "mirror": str(mirror or ""), "force": force,
                       "workers": workers, "cluster": cluster, "threads": threads},
            "stages": list(stages), "runner": "recsec study (no notebooks)",
        })
        ctx = StudyContext(run_dir=run_dir, dataset=dataset, data_dir=data_dir, mirror=mirror, seed=seed,
                           device=device, profile=profile, force=force, workers=workers, cluster=cluster,
                           threads=threads)
        runs.stamp_headline(run_dir, profile, dataset)
        for name, module in modules:
            progress(f"  {name}: running ...")
            seed_everything(seed)
            start = time.perf_counter()
            run_cached(module, ctx, module.Settings.for_profile(profile))
            seconds = time.perf_counter() - start
            runs.merge_headline(run_dir / "headline.json", {f"stage_seconds_{name}": round(seconds, 1)})
            progress(f"  {name}: done in {seconds:.0f} s")
        return runs.finish_run_folder(run_dir)
