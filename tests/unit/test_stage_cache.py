"""The stage cache: an identical stage is reused, a changed setting or --force recomputes."""

from __future__ import annotations

import json
import types
from dataclasses import dataclass

from recsec_lib.study import runs
from recsec_lib.study.stage_cache import run_cached
from recsec_lib.study.stages.context import StudyContext


@dataclass(frozen=True)
class Settings:
    epochs: int = 1


def make_stage(calls: list, name: str = "toy", meanwhile=None):
    """A fake stage module ``name`` that counts its runs and writes a file and a headline key; ``meanwhile()``
    runs in the middle (another stage writing the run's headline at the same time)."""
    module = types.ModuleType(f"recsec_lib.study.stages.{name}")

    def run(ctx, settings):
        calls.append(settings.epochs)
        out = ctx.stage_dir(name)
        (out / "result.txt").write_text(str(settings.epochs * 10))
        if meanwhile:
            meanwhile(ctx)
        metrics = {"value": settings.epochs * 10}
        runs.write_stage_metrics(ctx.run_dir, name, metrics, {f"{name}_value": settings.epochs * 10})
        return metrics

    module.run = run
    return module


def context(tmp_path, name, force=False):
    return StudyContext(run_dir=tmp_path / "outputs" / name, dataset="synthetic", data_dir=tmp_path / "data",
                        force=force)


def test_second_identical_run_is_served_from_the_cache(tmp_path):
    calls: list = []
    stage = make_stage(calls)
    first = run_cached(stage, context(tmp_path, "a"), Settings(1))
    second_ctx = context(tmp_path, "b")
    second = run_cached(stage, second_ctx, Settings(1))
    assert calls == [1]
    assert first["cache"] == "miss" and second["cache"] == "hit"
    assert (second_ctx.run_dir / "toy" / "result.txt").read_text() == "10"
    assert json.loads((second_ctx.run_dir / "headline.json").read_text())["toy_value"] == 10


def test_changed_settings_and_force_recompute(tmp_path):
    calls: list = []
    stage = make_stage(calls)
    run_cached(stage, context(tmp_path, "a"), Settings(1))
    changed = run_cached(stage, context(tmp_path, "b"), Settings(2))
    forced = run_cached(stage, context(tmp_path, "c", force=True), Settings(1))
    assert calls == [1, 2, 1]
    assert changed["cache"] == "miss" and forced["cache"] == "forced"


def test_a_changed_earlier_stage_invalidates_later_ones(tmp_path):
    calls: list = []
    stage = make_stage(calls)
    ctx_a = context(tmp_path, "a")
    ctx_a.run_dir.mkdir(parents=True)
    runs.write_json_atomic(ctx_a.run_dir / "stage_keys.json", {"train": "k1"})
    run_cached(stage, ctx_a, Settings(1))
    ctx_b = context(tmp_path, "b")
    ctx_b.run_dir.mkdir(parents=True)
    runs.write_json_atomic(ctx_b.run_dir / "stage_keys.json", {"train": "k2"})
    assert run_cached(stage, ctx_b, Settings(1))["cache"] == "miss"
    assert calls == [1, 1]




def test_a_stage_is_keyed_by_the_stages_it_reads_only(tmp_path):
    """GRO reads train, not attack (stages.STAGE_INPUTS): a new attack result leaves GRO's cache valid, a new
    target does not."""
    calls: list = []
    stage = make_stage(calls, "gro")
    for name, keys in (("a", {"train": "t1", "attack": "a1"}), ("b", {"train": "t1", "attack": "a2"}),
                       ("c", {"train": "t2", "attack": "a2"})):
        ctx = context(tmp_path, name)
        ctx.run_dir.mkdir(parents=True)
        runs.write_json_atomic(ctx.run_dir / "stage_keys.json", keys)
        run_cached(stage, ctx, Settings(1))
    assert calls == [1, 1]  # b was a hit, c a miss


def test_the_cache_keeps_only_the_stages_own_headline_keys(tmp_path):
    """With stages at once (run_all.sh --jobs), another stage's keys can land in headline.json while this one
    runs; a later hit must not bring them back (they may be stale by then)."""
    calls: list = []
    other = lambda ctx: runs.merge_headline(ctx.run_dir / "headline.json", {"attack_value": 1})  # noqa: E731
    run_cached(make_stage(calls, "gro", meanwhile=other), context(tmp_path, "a"), Settings(1))
    second = context(tmp_path, "b")
    assert run_cached(make_stage(calls, "gro"), second, Settings(1))["cache"] == "hit"
    assert json.loads((second.run_dir / "headline.json").read_text()) == {"gro_value": 10}
