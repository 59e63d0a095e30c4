"""Figures get written from every accepted metrics shape; bad files give errors naming them."""

import json

import pytest

from recsec_lib.cli import main
from recsec_lib.visualize import load_metrics, parse_metrics, visualize_metrics

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
