"""The report stage's side-by-side recommendations (issue #7), on a tiny hand-built run folder.

The run folder holds untrained models saved under the names the train, attack
and GRO stages use, so the test checks how the report finds and pairs them,
not what trained models recommend.
"""

from __future__ import annotations

import html
import json

import pandas as pd
import pytest
import torch

from recsec_lib.recommend.checkpoints import save_checkpoint
from recsec_lib.data.prepare import prepare_dataset
from recsec_lib.models.registry import build_model
from recsec_lib.study import paper
from recsec_lib.study.stages import report as stage
from recsec_lib.study.stages.context import StudyContext

torch.set_num_threads(1)

# File -> seed of the (untrained) model saved there: different seeds give different lists.
CHECKPOINTS = {
    "train/sasrec.pt": 1,
    "attack/surrogate_sasrec_sasrec_autoregressive_40.pt": 2,
    "gro/gro_lam1.pt": 3,
}
COLUMNS = ["undefended target", "surrogate", "GRO target λ=1 (chosen on validation)"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The synthetic dataset, generated once for every test of this module."""
    folder = tmp_path_factory.mktemp("data")
    prepare_dataset("synthetic", data_dir=folder, mirror=None)
    return folder


def make_run(run_dir, data_dir, skip: tuple[str, ...] = ()) -> StudyContext:
    """A run folder as the smoke chain leaves it (budgets 20/40, best λ = 1), minus the files in ``skip``."""
    dataset = prepare_dataset("synthetic", data_dir=data_dir, mirror=None)
    for name, seed in CHECKPOINTS.items():
        if name not in skip:
            torch.manual_seed(seed)
            save_checkpoint(run_dir / name, build_model("sasrec", dataset.num_items, 20, hidden=16), "sasrec",
                            dataset)
    stage_metrics = {
        "attack": {"settings": {"target_model": "sasrec", "budgets": [20, 40], "generators": ["autoregressive"],
                                "seq_len": 8, "k": 10, "epochs": 3, "patience": 0},
                   "headline": {"attack_budget_sequences": 40}},
        "gro": {"settings": {"target_model": "sasrec", "method": "gro"},
                "lambda_choices": {"keep": {"lam": 1.0, "shown_lam": 1.0}}},
    }
    for name, metrics in stage_metrics.items():
        (run_dir / name).mkdir(parents=True, exist_ok=True)
        (run_dir / name / "metrics.json").write_text(json.dumps(metrics))
    return StudyContext(run_dir=run_dir, dataset="synthetic", data_dir=data_dir, profile="smoke", device="cpu")


def test_report_compares_target_surrogate_and_gro_target(tmp_path, data_dir):
    ctx = make_run(tmp_path / "run", data_dir)
    metrics = stage.run(ctx, stage.Settings.for_profile("smoke").with_overrides(compare_k=5, compare_users=2))
    comparison = metrics["comparison"]
    assert comparison["columns"] == COLUMNS and comparison["skipped"] == {}
    assert comparison["checkpoints"]["surrogate"] == "attack/surrogate_sasrec_sasrec_autoregressive_40.pt"
    out = ctx.run_dir / "report"
    frame = pd.read_csv(out / "compare.csv")
    assert list(frame.columns[:2]) == ["example", "rank"]
    assert [c for c in frame.columns if c in COLUMNS] == COLUMNS
    assert len(frame) == 5 * len(comparison["examples"])
    assert sum(label.startswith("user ") for label in comparison["examples"]) == 2
    assert len(comparison["examples"]) > 2  # themed histories too
    markdown = (out / "compare.md").read_text()
    assert "| rank | " + " | ".join(COLUMNS) + " |" in markdown and "Not shown" not in markdown
    assert (out / "compare_examples.csv").is_file()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["comparison"]["files"]["markdown"] == "compare.md"
    assert [s["title"] for s in saved["sections"]] == ["Training and test quality"]  # only the quality table here


def test_the_abstract_states_the_headline_the_stage_leaves(tmp_path, data_dir):
    """Issue 26: the abstract's numbers equal headline.json; the stage adds the intervals it computes there."""
    ctx = make_run(tmp_path / "run", data_dir)
    (ctx.run_dir / "headline.json").write_text(json.dumps({"profile": "smoke", "dataset": "synthetic",
                                                           "attack_budget_sequences": 40, "attack_seq_len": 8}))
    metrics = stage.run(ctx, stage.Settings.for_profile("smoke").with_overrides(compare_k=5,
                                                                                 bootstrap_replicates=50))
    headline = json.loads((ctx.run_dir / "headline.json").read_text())
    assert headline["attack_main_generator"] == "autoregressive"
    assert headline["attack_main_agr10_low"] <= headline["attack_main_agr10"] <= headline["attack_main_agr10_high"]
    record = json.loads((ctx.run_dir / "report" / "paper.json").read_text())
    facts = [fact for sentence in record["abstract"] for fact in sentence["facts"] if fact["source"] == "headline"]
    assert {fact["key"] for fact in facts} >= {"attack_main_agr10", "attack_main_surrogate_ndcg10",
                                               "attack_budget_sequences"}
    for fact in facts:
        value = headline[fact["key"]]
        expected = [value, headline[fact["key"] + "_low"], headline[fact["key"] + "_high"]] \
            if fact["kind"] == "interval" else value
        assert fact["value"] == expected, fact
    rows = pd.read_csv(ctx.run_dir / "report" / "attack_intervals.csv")
    assert rows["checkpoint"].tolist() == ["attack/surrogate_sasrec_sasrec_autoregressive_40.pt"]
    assert metrics["paper"]["not_measured"] == [q.key for q in paper.QUESTIONS]  # no stage tables in this run folder
    page = (ctx.run_dir / "report" / "paper.html").read_text()
    assert "not measured in this run" in page and str(tmp_path) not in page


@pytest.mark.parametrize("missing, column", [
    ("gro/gro_lam1.pt", "GRO target λ=1 (chosen on validation)"),
])
def test_a_missing_gro_checkpoint_only_omits_its_column(tmp_path, data_dir, missing, column):
    ctx = make_run(tmp_path / "run", data_dir, skip=(missing,))
    comparison = stage.run(ctx, stage.Settings().with_overrides(compare_k=5))["comparison"]
    assert comparison["columns"] == [c for c in COLUMNS if c != column]
    assert list(comparison["skipped"]) == [column] and missing in comparison["skipped"][column]
    frame = pd.read_csv(ctx.run_dir / "report" / "compare.csv")
    assert column not in frame.columns and "undefended target" in frame.columns
    assert f"Not shown: {column}" in (ctx.run_dir / "report" / "compare.md").read_text()


def test_a_run_with_no_checkpoint_still_gets_a_comparison_page(tmp_path, data_dir):
    ctx = StudyContext(run_dir=tmp_path / "run", dataset="synthetic", data_dir=data_dir, profile="smoke",
                       device="cpu")
    comparison = stage.run(ctx, stage.Settings())["comparison"]
    assert comparison["columns"] == [] and len(comparison["skipped"]) == 3
    assert comparison["skipped"]["GRO target"] == "the GRO stage has not run"
    assert "No model of this run could be compared" in (ctx.run_dir / "report" / "compare.md").read_text()


def test_targets_follow_the_profile_and_the_study_time_is_totalled_after_the_report():
    """The 2-hour budget is the cpu profile's, the 20-minute one the full profile's; a run's own report comes
    before the runner totals the stage times, so it says so instead of 'not measured'."""
    from recsec_lib.study.report import target_table

    def wall_rows(headline):
        table = target_table(headline)
        return table[table.key == "study_wall_seconds"][["target", "status"]].values.tolist()

    assert wall_rows({"profile": "cpu", "study_wall_seconds": 7000.0}) == [["<= 7200", "met"]]
    assert wall_rows({"profile": "full", "study_wall_seconds": 1500.0}) == [["<= 1200", "MISSED"]]
    assert wall_rows({"profile": "smoke"}) == []
    assert wall_rows({"profile": "cpu"}) == [["<= 7200", "totalled after the report"]]


def test_the_targets_of_detection_and_of_the_gro_curve_use_strict_bounds_where_the_issues_do():
    """Issue 24 asks for more than 1.2x the caps (1.2 exactly is missed); issue 28's best point needs the low end
    of its fall against the null above 0."""
    from recsec_lib.study.report import target_table

    def rows(headline):
        table = target_table({"profile": "cpu", **headline}).set_index("key")
        return {key: (table.loc[key, "target"], table.loc[key, "status"])
                for key in ("detect_best_cost_increase_over_caps", "gro_best_point_fall_vs_null_low")}

    assert rows({"detect_best_cost_increase_over_caps": 1.2, "gro_best_point_fall_vs_null_low": 0.0}) == {
        "detect_best_cost_increase_over_caps": ("> 1.2", "MISSED"), "gro_best_point_fall_vs_null_low": ("> 0", "MISSED")}
    assert rows({"detect_best_cost_increase_over_caps": 1.25, "gro_best_point_fall_vs_null_low": 0.01}) == {
        "detect_best_cost_increase_over_caps": ("> 1.2", "met"), "gro_best_point_fall_vs_null_low": ("> 0", "met")}
    assert rows({})["gro_best_point_fall_vs_null_low"][1].startswith("no point to judge")
    # a fall counts only beyond the training noise (issue 28 item 3): results/gro-budget/'s λ = 0.1 point had a
    # low end of 0.0003 against a floor of 0.0075, "within training noise", and the table must not say "met"
    noisy = {"gro_best_point_fall_vs_null_low": 0.0003, "gro_noise_floor": 0.0075}
    assert rows(noisy)["gro_best_point_fall_vs_null_low"] == ("> 0", "MISSED")
    assert rows({**noisy, "gro_best_point_fall_vs_null_low": 0.02})["gro_best_point_fall_vs_null_low"][1] == "met"


def test_the_report_says_how_the_gro_targets_were_trained():
    from recsec_lib.study.report import gro_training_sentence

    scratch = {"settings": {"from_scratch": True, "max_batches_per_epoch": 0, "positions_per_sequence": 20,
                            "epochs": 200},
               "gro_kept_epochs": {"1": {"best_epoch": 61, "epochs_run": 71, "stop_reason": "early_stop"}}}
    assert gro_training_sentence(scratch) == (
        "GRO targets were trained from scratch (whole epochs, at most 200 epochs; student and swap loss on the last "
        "20 positions of each row): λ=1: epoch 61 of 71 kept (early_stop).")
    # The GRO stage records its utility-matched nulls beside the GRO runs: snapshots, with an epoch and no kept
    # GRO epoch (the cpu report's prevention section read "not measured in full: the run lacks best_epoch").
    with_nulls = {"settings": {"from_scratch": False, "positions_per_sequence": 10, "epochs": 1},
                  "gro_kept_epochs": {"gro keep λ=1": {"best_epoch": 1, "epochs_run": 1, "stop_reason": "epochs"},
                                      "null epoch 3": {"epoch": 3, "snapshot": "train/sasrec_epoch3.pt",
                                                       "trained": "nothing: a snapshot of the target's training"},
                                      "null epoch 8": {"epoch": 8, "trained": "nothing"}}}
    assert gro_training_sentence(with_nulls) == (
        "GRO targets were fine-tuned from the undefended target (whole epochs, at most 1 epoch; student and swap "
        "loss on the last 10 positions of each row): gro keep λ=1: epoch 1 of 1 kept (epochs). The utility-matched "
        "nulls were not trained here: they are snapshots of the target's own training (epochs 3, 8).")
    finetune = {"settings": {"from_scratch": False, "max_batches_per_epoch": 12, "positions_per_sequence": 0,
                             "epochs": 1}}  # a run from before the kept epochs were recorded
    assert gro_training_sentence(finetune) == (
        "GRO targets were fine-tuned from the undefended target (12 batches per epoch, at most 1 epoch; student "
        "and swap loss on every position).")


def test_counts_agree_in_number():
    """The smoke report said 'the attacker needs 1 accounts against SEAT'."""
    from recsec_lib.study.paper import accounts_words
    from recsec_lib.study.report import counted, gro_training_sentence

    assert [accounts_words(1.0), accounts_words(4.0), accounts_words(1200.0)] == ["1 account", "4 accounts",
                                                                                 "1,200 accounts"]
    assert accounts_words(float("inf")) == "more accounts than the grid tried"
    assert [counted(1, "epoch"), counted(2.0, "epoch")] == ["1 epoch", "2 epochs"]
    assert [counted(1, "batch", "batches"), counted(3, "batch", "batches")] == ["1 batch", "3 batches"]
    one = {"settings": {"from_scratch": False, "max_batches_per_epoch": 1, "positions_per_sequence": 1, "epochs": 1}}
    assert "(1 batch per epoch, at most 1 epoch; student and swap loss on the last position of each row)" \
        in gro_training_sentence(one)


def test_html_tables_are_whole_without_index_or_nan_and_print_counts_as_counts(tmp_path):
    """pandas' notebook display cut the 24-column defenses table with '...', showed its index and NaN cells,
    and printed counts read back from CSV as 384.0."""
    from recsec_lib.common.tables import html_table, read_table

    frame = pd.DataFrame({f"column {i}": [0.123456 * i] * 70 for i in range(30)})
    frame["accounts_needed"] = [384.0, float("nan")] * 35  # a count column with a gap is float in a CSV
    frame.insert(0, "defense", ["None", "GRO λ=1"] * 35)
    frame.to_csv(tmp_path / "wide.csv", index=False)
    page = html_table(read_table(tmp_path / "wide.csv"))
    assert page.count("<tr>") == 71 and page.count("<td") == 70 * 32 and page.count("<th ") == 32
    assert "..." not in page and "NaN" not in page and "nan" not in page
    assert ">384<" in page and "384.0" not in page and ">—<" in page  # the gap shows as a dash
    assert ">None<" in page  # the undefended row keeps its name
    assert ">0.1235<" in page
    assert html_table(frame, columns=("defense", "accounts_needed")).count("<th ") == 2


def png(width_inches: float = 2.0) -> bytes:
    from recsec_lib.common import plots

    fig = plots.new_figure(width_inches, 1.0)
    fig.subplots().plot([0, 1])
    return plots.png_bytes(fig)


def test_report_sections_put_each_figure_beside_its_table_in_stage_order(tmp_path):
    """The report used to show the stages' tables in one place and every figure at the end, uncaptioned."""
    from recsec_lib.study.report import SECTIONS, UNCAPTIONED, present_sections, section_html, stage_groups

    run = tmp_path / "run"
    files = {"seat/roc.png": png(), "seat/single_account.csv": "detector,detected\nseat,3\n",
             "gro/utility_vs_protection.png": png(), "gro/frontier.png": png(),
             "gro/frontier.csv": "defense,utility kept % [95% CI],verdict (NDCG@10)\nNone,,reference\n"
                                 "GRO λ=1,97.0 [96.0 98.0],no effect\n",
             "train/curves.png": png(12.0), "report/quality.csv": "model,hr@10\nsasrec,0.3\n",
             "attack/budget_curve.csv": "generator,budget_sequences,agr10\nrandom,20,0.6\n", "attack/empty.csv": ""}
    for name, content in files.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(content if isinstance(content, bytes) else content.encode())

    sections = present_sections(run)
    assert [(s.stage, s.table, s.figure) for s in sections] == [
        ("train", "report/quality.csv", "train/curves.png"),
        ("attack", "attack/budget_curve.csv", ""),  # its figure is missing: the table alone
        ("gro", "gro/frontier.csv", "gro/frontier.png"),
        ("gro", "", "gro/utility_vs_protection.png"),  # a figure no section names still shows, in its stage
        ("seat", "seat/single_account.csv", "seat/roc.png"),
    ]
    assert sections[3].caption == UNCAPTIONED
    assert all(len(s.caption) > 40 and s.caption != UNCAPTIONED for s in SECTIONS)
    assert [heading for heading, _ in stage_groups(sections)] == ["Recommenders", "Model extraction", "Defense: GRO",
                                                                  "Detection: SEAT"]

    block = section_html(run, sections[2])
    figure = block[block.index("<figure"):block.index("</figure>")]
    assert '<img src="data:image/png;base64,' in figure and "<figcaption" in figure
    assert html.escape(sections[2].caption)[:40] in figure
    assert block.index("</figure>") < block.index("<table")  # the table follows the figure, in the same block
    assert ">None<" in block and ">—<" in block and "NaN" not in block
    assert "From gro/frontier.csv, gro/frontier.png." in block
    assert str(tmp_path) not in block  # paths relative to the run folder, never this machine's
    assert f'alt="{html.escape(sections[2].title)}.' in figure  # alternative text: the title and the caption
    wide = section_html(run, sections[0])
    assert 'width="1440"' in wide and "width:1440px" in wide  # its natural width (12 in at 120 dpi), not shrunk
    table_only = section_html(run, sections[1])
    assert "<figure" not in table_only and html.escape(sections[1].caption)[:40] in table_only


def test_stages_are_listed_in_the_order_they_run(tmp_path):
    from recsec_lib.study.report import collect_stage_metrics, timing_table

    for stage in ("seat", "analyze", "watermark", "attack", "data", "train", "gro", "report"):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "metrics.json").write_text(json.dumps({"wall_seconds": 1.0}))
    assert list(collect_stage_metrics(tmp_path)) == ["data", "analyze", "train", "attack", "gro", "seat", "watermark"]
    assert timing_table(collect_stage_metrics(tmp_path), {}).stage.tolist()[:3] == ["data", "analyze", "train"]


def test_a_standalone_page_nests_under_the_report_headings():
    from recsec_lib.study.report import demote_headings

    page = "# Recommendations side by side\n\nColumns: a # b\n\n## action/sci-fi\n###### deep\n"
    assert demote_headings(page, 2) == ("### Recommendations side by side\n\nColumns: a # b\n\n#### action/sci-fi\n"
                                        "###### deep\n")


def test_a_figure_and_table_from_memory_make_the_same_kind_of_block():
    """What a notebook (or a later stage) can use for a table and figure it has in hand rather than in files."""
    from recsec_lib.common import plots
    from recsec_lib.study.report import figure_table_html

    fig = plots.new_figure(2.0, 1.0)
    fig.subplots().plot([0, 1])
    block = figure_table_html("Attacker zoo", "Each attacker's fidelity at the main budget.",
                              table=pd.DataFrame({"attacker": ["random"], "queries": [320.0]}), figure=fig,
                              stage="seat")
    assert block.startswith('<section class="recsec-section" data-stage="seat"><h4>Attacker zoo</h4>')
    assert '<img src="data:image/png;base64,' in block and ">320<" in block and "From" not in block
    assert "Each attacker" in block[block.index("<figcaption"):block.index("</figcaption>")]
