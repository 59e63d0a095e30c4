"""Figures get written from every accepted metrics shape; bad files give errors naming them."""

import json

import pandas as pd
import pytest

from recsec_lib.cli import main
from recsec_lib.recommend.visualize import load_metrics, parse_metrics, visualize_metrics

HISTORY = [
    {"epoch": 2, "loss": 7.5, "valid_hr@10": 0.12, "valid_ndcg@10": 0.06, "seconds": 3.0},
    {"epoch": 1, "loss": 8.0, "valid_hr@10": 0.05, "valid_ndcg@10": 0.02, "seconds": 3.1},
]
TRAIN_METRICS = {
    "models": {
        "sasrec": {"history": HISTORY, "test": {"hr@10": 0.31, "ndcg@10": 0.18, "HR@1": 0.07, "filter_seen": True},
                   "config": {"hidden": 64}, "stop_reason": "patience"},
        "narm": {"history": HISTORY[:1], "test_hr@10": 0.25, "test_ndcg10": 0.14},
    },
    "settings": {"epochs": 200, "models": ["sasrec", "narm"]},  # as the train stage writes it
    "wall_seconds": 12.0,
}


def write(path, payload):
    path.write_text(json.dumps(payload))
    return path


def is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_both_figures_written(tmp_path):
    paths = visualize_metrics(write(tmp_path / "metrics.json", TRAIN_METRICS), tmp_path / "figs")
    assert [p.name for p in paths] == ["training_curves.png", "model_comparison.png"]
    assert all(is_png(p) for p in paths)
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["model_comparison.png", "training_curves.png"]


def test_shapes_are_read():
    records = parse_metrics(TRAIN_METRICS)
    assert [r.name for r in records] == ["sasrec", "narm"]
    assert [row["epoch"] for row in records[0].history] == [1.0, 2.0]  # sorted by epoch
    assert records[0].test == {"hr@10": 0.31, "ndcg@10": 0.18, "hr@1": 0.07}
    assert records[1].test == {"hr@10": 0.25, "ndcg@10": 0.14}
    # A bare history, a single model, a name -> model mapping, headline keys.
    assert parse_metrics(HISTORY, default_name="sasrec")[0].name == "sasrec"
    assert parse_metrics({"model": "bert4rec", "history": HISTORY})[0].name == "bert4rec"
    assert [r.name for r in parse_metrics({"sasrec": {"test": {"hr@10": 0.3}}, "seed": 42})] == ["sasrec"]
    headline = parse_metrics({"sasrec_test_hr10": 0.3, "sasrec_test_ndcg10": 0.17, "profile": "cpu"})
    assert headline[0].name == "sasrec" and headline[0].test == {"hr@10": 0.3, "ndcg@10": 0.17}


def test_history_only_gives_curves_only(tmp_path):
    paths = visualize_metrics(write(tmp_path / "history.json", HISTORY), tmp_path)
    assert [p.name for p in paths] == ["training_curves.png"]


def test_cli_writes_pngs(tmp_path, capsys):
    metrics = write(tmp_path / "metrics.json", TRAIN_METRICS)
    assert main(["visualize", "--metrics-file", str(metrics), "--output-dir", str(tmp_path / "out")]) == 0
    assert "training_curves.png" in capsys.readouterr().out


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_metrics(tmp_path / "nope.json")


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "models": {,\n}')
    with pytest.raises(ValueError, match=r"broken\.json:2"):
        load_metrics(path)


@pytest.mark.parametrize("payload, match", [
    ({"seed": 42}, "no training history"),
    ("text", "expected a JSON object or list"),
    ([{"loss": 1.0}], r"\[0\]: expected an object with a numeric 'epoch'"),
    ({"models": {"sasrec": {"history": {"epoch": 1}}}}, r"models\.sasrec\.history: expected a list"),
])
def test_bad_contents_name_the_file(tmp_path, payload, match):
    path = write(tmp_path / "odd.json", payload)
    with pytest.raises(ValueError, match=match) as info:
        load_metrics(path)
    assert "odd.json" in str(info.value)


def test_cli_error_is_one_line(tmp_path, capsys):
    assert main(["visualize", "--metrics-file", str(tmp_path / "gone.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "gone.json" in err


# ---- the study's figures (recsec_lib.common.plots), drawn by the stages and again by the notebooks ------------------

def study_tables():
    """The smallest tables of the shapes the train, attack, GRO and SEAT stages save."""
    import pandas as pd

    history = pd.DataFrame({"model": ["sasrec"] * 2 + ["meanemb"] * 2, "epoch": [1, 2, 1, 2],
                            "loss": [8.0, 7.5, 8.2, 8.0], "valid_hr@10": [0.05, 0.12, float("nan"), 0.04],
                            "valid_ndcg@10": [0.02, 0.06, float("nan"), 0.02]})
    curve = pd.DataFrame({"generator": ["random", "random", "autoregressive", "autoregressive"],
                          "budget_sequences": [20, 40, 20, 40], "agr1": [0.2, 0.3, 0.25, 0.35],
                          "agr10": [0.6, 0.7, 0.65, 0.75]})
    defenses = frontier_rows()
    sweep = pd.DataFrame({"attack": ["random"] * 4, "detector": ["seat", "seat", "volume", "volume"],
                          "accounts": [1, 4, 1, 4], "flagged_fraction": [1.0, 0.25, 1.0, 0.0]})
    roc = pd.DataFrame({"detector": ["seat"] * 3, "fpr": [0.0, 0.01, 1.0], "tpr": [0.0, 0.9, 1.0]})
    return history, curve, defenses, sweep, roc


def test_study_figures_are_shown_by_ipython_as_png():
    """A notebook cell that ends with a plots.* call shows the figure (image/png), whatever the backend."""
    from IPython.core.formatters import DisplayFormatter

    from recsec_lib.arena.figures import frontier_figure
    from recsec_lib.common import plots

    history, curve, defenses, sweep, roc = study_tables()
    figures = [plots.training_curves(history), plots.budget_curve(curve), frontier_figure(frontier_rows()),
               plots.roc_curves(roc, {"seat": 0.9}, 0.01),
               plots.surrogate_training(curve.assign(surrogate="sasrec", epoch=[1, 2, 1, 2], valid_agr10=0.5))]
    for fig in figures:
        data, _ = DisplayFormatter().format(fig)
        assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"


def frontier_rows():
    """Two arms of matrix.csv, each at its strongest attacker."""
    row = {"family": "output", "worst": True, "worst_agr": True, "attacker": "naive", "retention_test": 1.0,
           "retention_test_low": 0.99, "retention_test_high": 1.0, "surrogate_test_ndcg10_drop": 0.1,
           "surrogate_test_ndcg10_drop_low": -0.2, "surrogate_test_ndcg10_drop_high": 0.3}
    return pd.DataFrame([{**row, "arm": "top-10"}, {**row, "arm": "gro keep λ=1", "family": "gro",
                                                     "retention_test": 0.8}])


def zoo_table():
    """zoo.csv of two attackers."""
    return pd.DataFrame({"attack": ["chain", "random"], "accounts_seat": [4, 40], "accounts_volume": [16, 16],
                         "agr10": [0.2, 0.15]})


def test_stages_save_figures_without_switching_the_notebook_backend(tmp_path):
    """The stages used to call matplotlib.use("Agg"), which left every later plt.show() in a notebook empty."""
    import matplotlib

    from recsec_lib.common import plots
    from recsec_lib.arena.figures import plot_frontier
    from recsec_lib.seat.plots import zoo_costs
    from recsec_lib.study.stages import attack, train

    history, curve, defenses, sweep, roc = study_tables()
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # stands in for the notebook's inline backend
    try:
        train.plot_curves({name: rows for name, rows in history.groupby("model")}, tmp_path / "curves.png")
        attack.plot_budget_curve(curve, tmp_path / "budget_curve.png")
        plot_frontier(frontier_rows(), tmp_path / "frontier.png")
        plots.save_png(zoo_costs(zoo_table()), tmp_path / "zoo.png")
        plots.save_png(plots.roc_curves(roc, {"seat": 0.9}, 0.01), tmp_path / "roc.png")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["budget_curve.png", "curves.png", "frontier.png", "roc.png",
                                                          "zoo.png"]
    assert all(is_png(p) for p in tmp_path.iterdir())


# ---- figures a reader can read (issue 26, item 3) ---------------------------------------------------------------

def crowded_frontier_rows():
    """Nine arms of matrix.csv, most of them near (100% kept, 0 fall), as a real run puts them."""
    rows = []
    spots = [(1.0, 0.0), (0.49, 0.31), (0.985, 0.0), (1.0, 0.023), (1.02, 0.146), (0.988, -0.092), (0.992, -0.019),
             (0.987, -0.17), (0.992, -0.183)]
    families = ["none", "paper", "output", "output", "gro-control", "gro", "gro", "combo", "combo"]
    for number, ((kept, fall), family) in enumerate(zip(spots, families), start=1):
        rows.append({"arm": f"arm number {number} with a long name", "family": family, "worst": True,
                     "worst_agr": True, "attacker": "knowing", "retention_test": kept,
                     "retention_test_low": kept - 0.01, "retention_test_high": kept + 0.01,
                     "surrogate_test_ndcg10_drop": fall, "surrogate_test_ndcg10_drop_low": fall - 0.1,
                     "surrogate_test_ndcg10_drop_high": fall + 0.1})
    return pd.DataFrame(rows)


LONG_TITLE = ("Defense frontier (upper right is better)\nsasrec, GRO fine-tuned, whole epochs, ≤1 epoch(s); attack "
              "500×100 autoregressive, 4 views, 3 seeds, surrogates of 20 epochs")


def test_no_figure_clips_a_title_label_or_legend():
    """The published frontier's subtitle was cut at both edges; the zoo's and the ROC's labels are long too."""
    from recsec_lib.arena.figures import frontier_figure
    from recsec_lib.common import plots
    from recsec_lib.seat.plots import zoo_costs

    history, curve, defenses, sweep, roc = study_tables()
    roc = pd.concat([roc, roc.assign(detector="seat+cap"), roc.assign(detector="prada")])
    figures = {"training": plots.training_curves(history), "budget": plots.budget_curve(curve.assign(seq_len=200)),
               "frontier": frontier_figure(crowded_frontier_rows(), title=LONG_TITLE),
               "roc": plots.roc_curves(roc, {"seat": 0.9, "seat+cap": 0.9, "prada": 0.8}, 0.001),
               "zoo": zoo_costs(zoo_table().assign(queries=[400, 400], accounts_prada=[1, None])),
               "surrogate": plots.surrogate_training(curve.assign(surrogate="sasrec", epoch=[1, 2, 1, 2],
                                                                  valid_agr10=0.5))}
    for name, fig in figures.items():
        assert plots.clipped_texts(fig) == [], name


def test_clipped_texts_finds_a_title_wider_than_its_figure():
    from recsec_lib.common import plots

    fig = plots.PlotFigure(figsize=(3, 2))  # no constrained layout, no wrapping
    fig.subplots().set_title("a title far too long for a figure three inches wide, cut at both of its edges")
    assert ("a title far too long for a figure three inches wide, cut at both of its edges"
            in plots.clipped_texts(fig))
    assert all(len(line) <= 40 for line in plots.wrapped("word " * 30, 3.0, 10).splitlines())


def test_frontier_numbers_do_not_overlap_and_the_legend_names_every_point():
    """'top-10 only' was written on 'tail resampled', and the control on None."""
    from matplotlib.text import Annotation

    from recsec_lib.arena.figures import frontier_figure
    from recsec_lib.common import plots

    fig = frontier_figure(crowded_frontier_rows(), title=LONG_TITLE)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # drawn as saved
    renderer = canvas.get_renderer()
    labels = [artist for artist in fig.get_axes()[0].get_children() if isinstance(artist, Annotation)]
    numbers = sorted(int(n) for label in labels for n in label.get_text().split(", "))
    assert numbers == list(range(1, 10))  # every point is numbered once
    boxes = [label.get_window_extent(renderer) for label in labels]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    legend = [text.get_text() for text in fig.get_axes()[0].get_legend().get_texts()]
    assert all(any(entry.startswith(f"{n}: ") for entry in legend) for n in range(1, 10))


def test_the_zoo_figure_draws_prada_and_beyond_the_grid_without_zero_on_a_log_axis():
    from recsec_lib.seat.plots import zoo_costs

    table = zoo_table().assign(queries=[400, 400], accounts_prada=[1, None])
    fig = zoo_costs(table)
    left = fig.get_axes()[0]
    texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    assert "0 = beyond the grid" not in " ".join(texts)
    assert "prada" in [t.get_text() for t in fig.legends[0].get_texts()]
    hatched = [bar for bar in left.patches if bar.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_width() == 200  # the largest count the grid tried for 400 queries
    assert "beyond" in texts
    assert left.get_xscale() == "log" and "log scale" in left.get_xlabel()


def test_roc_curves_are_drawn_distinguishably_and_axes_say_their_units():
    from recsec_lib.common import plots

    roc = pd.DataFrame({"detector": ["seat"] * 3 + ["seat+cap"] * 3, "fpr": [0.0, 0.01, 1.0] * 2,
                        "tpr": [0.0, 0.9, 1.0] * 2})
    axis = plots.roc_curves(roc, {"seat": 0.9, "seat+cap": 0.9}, 0.001).get_axes()[0]
    lines = [line for line in axis.get_lines() if line.get_label() and not line.get_label().startswith("calibrated")]
    assert len({(line.get_linestyle(), line.get_marker()) for line in lines}) == len(lines) == 2
    assert "%" in axis.get_xlabel() and "log scale" in axis.get_xlabel() and "%" in axis.get_ylabel()
    budget = plots.budget_curve(pd.DataFrame({"generator": ["random"] * 3, "budget_sequences": [250, 500, 1000],
                                              "agr1": [0.2] * 3, "agr10": [0.5] * 3, "seq_len": [200] * 3}))
    axis = budget.get_axes()[0]
    assert axis.get_xscale() == "log" and "log scale" in axis.get_xlabel() and "200 queries" in axis.get_xlabel()
    assert "%" in axis.get_ylabel()


def test_a_figure_shown_in_a_notebook_has_alternative_text_and_its_natural_width():
    """nbconvert warned 'Alternative text is missing' for every figure; notebook CSS shrank them."""
    from recsec_lib.common import plots

    history, curve, *_ = study_tables()
    fig = plots.budget_curve(curve)
    page = fig._repr_html_()
    assert 'alt="Line chart: the surrogate' in page and f'width="{int(6.4 * plots.DPI)}"' in page
    plain = plots.new_figure(2.0, 1.0)
    axis = plain.subplots()
    axis.set_title("a title")
    axis.set_xlabel("epoch")
    assert plots.alt_text(plain) == "Figure: a title; x: epoch"
