"""The watermark stage on synthetic data: its files, its headline keys, its settings and its error paths."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recsec_lib.common.settings import SettingsError
from recsec_lib.study.stages import watermark as stage


@pytest.fixture(scope="module")
def watermark_run(tmp_path_factory):
    """The smoke profile's watermark stage on a run whose train stage left a small SASRec (synthetic data)."""
    import torch

    from recsec_lib.models.registry import build_model
    from recsec_lib.recommend.checkpoints import save_checkpoint
    from recsec_lib.recommend.sequences import pad_left
    from recsec_lib.study.stages.context import StudyContext

    root = tmp_path_factory.mktemp("watermark_run")
    ctx = StudyContext(run_dir=root / "run", dataset="synthetic", data_dir=root / "data", seed=0, device="cpu",
                       profile="smoke")
    dataset = ctx.load_dataset()
    torch.manual_seed(0)
    model = build_model("sasrec", num_items=dataset.num_items, max_len=20)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    seqs = torch.from_numpy(pad_left(dataset.train_sequences(), 21))
    for _ in range(10):
        loss = model.training_loss(seqs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_checkpoint(ctx.run_dir / "train" / "sasrec.pt", model, "sasrec", dataset)
    settings = stage.Settings.for_profile("smoke")
    return ctx, settings, stage.run(ctx, settings)


def test_stage_writes_its_files_and_headline(watermark_run):
    ctx, settings, metrics = watermark_run
    out = ctx.run_dir / "watermark"
    for name in ("key.json", "marked.pt", "utility.csv", "verification.csv", "p_values.png", "metrics.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    headline = json.loads((ctx.run_dir / "headline.json").read_text())
    for key in stage.HEADLINE_KEYS:
        assert key in headline and headline[key] == metrics[key], key
    table = pd.read_csv(out / "verification.csv")
    assert set(table["group"]) == {"marked", "served", "surrogate", "knowing", "independent"}
    # every suspect answered the same real and decoy queries
    assert (table["queries"] == settings.num_pairs).all()
    assert (table["decoy_queries"] == settings.num_pairs * settings.decoys).all()
    independent = table[table["group"] == "independent"]
    # the target, the two trained independent models, one surrogate of the unmarked target
    assert metrics["watermark_independent_models"] == len(independent) == 4
    assert metrics["watermark_false_claims"] == int(independent["claimed"].sum())
    assert metrics["watermark_min_p_independent"] == pytest.approx(independent["p_value"].min())
    stolen = table[table["group"].isin(stage.STOLEN)]
    assert metrics["watermark_max_p_surrogate"] == pytest.approx(stolen["p_value"].max())
    # naive and top-10 share a plan when the box returns 10 ids: one surrogate per generator, plus other archs
    assert len(table[table["group"] == "surrogate"]) == len(settings.generators) + len(settings.other_archs)
    assert set(table.loc[table["group"] == "surrogate", "arch"].dropna()) == set(settings.other_archs)
    paid = metrics["knowing_attacker"]
    assert len(paid) == len(table[table["group"] == "knowing"]) and all(r["naive_agr10"] is not None for r in paid)
    assert all(r["agr10_paid"] == pytest.approx(r["naive_agr10"] - r["agr10"]) for r in paid)
    assert 0.0 < metrics["watermark_utility_retention"] <= 2.0
    assert metrics["watermark_utility_retention_low"] <= metrics["watermark_utility_retention"]
    assert isinstance(metrics["watermark_knowing_attacker_verified"], bool)
    assert set(metrics["targets"]) >= {"no_false_claims", "ndcg_kept_ge_0.99"}


def test_stage_verifies_the_marked_box(watermark_run):
    """The marked box answers the watermark's queries far above the decoys' (what the embedding is for)."""
    _, settings, metrics = watermark_run
    marked = [row for row in metrics["verification"] if row["group"] == "marked"][0]
    assert marked["hits"] / marked["queries"] > marked["decoy_hits"] / marked["decoy_queries"]
    assert metrics["watermark_marked_box_p_value"] == marked["p_value"]
    assert metrics["watermark_marked_box_verified"] == (marked["p_value"] < settings.alpha)


def test_settings_profiles_and_overrides():
    assert set(stage.Settings.PROFILES) == {"smoke", "cpu", "full"}
    cpu = stage.Settings.for_profile("cpu")
    # the cpu profile tests at least 12 independent models: 8 trained, the target, the baseline, 2 surrogates
    assert len(cpu.independent) + 2 + len(cpu.unmarked_generators) >= 12
    changed = cpu.with_overrides(generators="random,chain", rare_fractions="0.25,0.5", fine_tune_epochs="1,3")
    assert changed.generators == ("random", "chain") and changed.rare_fractions == (0.25, 0.5)
    assert changed.fine_tune_epochs == (1, 3)
    with pytest.raises(SettingsError, match="did you mean 'generators'"):
        cpu.with_overrides(generator="random")


@pytest.mark.parametrize("values, message", [
    ({"generators": ("nosuch",)}, "nosuch"),
    ({"views": ("blind",)}, "blind"),
    ({"independent": ("sasrec",)}, "'independent'.*'sasrec'"),
    ({"independent": ("gpt:1",)}, "'independent'.*'gpt:1'"),
    ({"independent": ("sasrec:1:left",)}, "'independent'.*'sasrec:1:left'"),
    ({"alpha": 1.5}, "'alpha'"),
    ({"continuation_pool": "popular"}, "'continuation_pool'"),
    ({"rare_fractions": (1.0,)}, "'rare_fractions'"),
    ({"fine_tune_epochs": (0,)}, "'fine_tune_epochs'"),
    ({"output_defenses": ("blur:3",)}, "blur"),
    ({"num_pairs": 0}, "'num_pairs'"),
    ({"trainable": "nothing"}, "'trainable'"),
    ({"other_archs": ("gpt",)}, "'other_archs'.*'gpt'"),
])
def test_bad_settings_name_the_setting(values, message):
    with pytest.raises((ValueError, KeyError), match=message):
        stage.Settings(**values)


def test_missing_target_names_the_file(tmp_path):
    from recsec_lib.study.stages.context import StudyContext

    ctx = StudyContext(run_dir=tmp_path / "run", dataset="synthetic", data_dir=tmp_path / "data", seed=0,
                       device="cpu", profile="smoke")
    with pytest.raises(FileNotFoundError, match=r"train/sasrec\.pt does not exist"):
        stage.run(ctx, stage.Settings.for_profile("smoke"))


def test_the_box_filters_seen_items_only_where_the_catalogue_allows_it():
    """The smoke study's target reads 200 items of a 60-item catalogue: its box cannot filter seen items."""
    from recsec_lib.models.registry import build_model

    long_reader, short_reader = build_model("sasrec", 60, 200), build_model("sasrec", 60, 20)
    assert not stage.box_of(long_reader, 10, "cpu").filter_seen
    assert stage.box_of(short_reader, 10, "cpu").filter_seen


def test_user_half_splits_the_users():
    from recsec_lib.data.synthetic import make_synthetic_dataset

    dataset = make_synthetic_dataset(num_users=11, num_items=20)
    even, odd = stage.user_half(dataset, 0), stage.user_half(dataset, 1)
    assert even.num_users == 6 and odd.num_users == 5
    assert list(even.sequence(1)) == list(dataset.sequence(2)) and list(odd.sequence(0)) == list(dataset.sequence(1))
    assert even.fingerprint != dataset.fingerprint
