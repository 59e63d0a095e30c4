"""Figures of trained recommenders: training curves and a test-metric comparison.

Input is the ``metrics.json`` the train stage writes (or a bare training
history). The reader accepts the shapes that file takes in practice, so that a
figure can be drawn from any run folder without knowing which version wrote it:

* a list of per-epoch dicts (one model's history);
* one model: ``{"history": [...], "test": {"hr@10": ..}, "model": "sasrec"}``;
* several models: ``{"models": {"sasrec": {...}, "narm": {...}}}`` or
  ``{"sasrec": {...}, "narm": {...}}`` (other keys such as wall_seconds ignored);
* test figures as ``test: {"hr@10": ...}``, flat ``test_hr@10`` / ``test_hr10``
  keys in a model's dict, or headline-style ``sasrec_test_hr10`` keys.

Each history entry is a dict with ``epoch`` and any of ``loss``,
``valid_hr@10``, ``valid_ndcg@10``, ``seconds``.

Figures are drawn on ``matplotlib.figure.Figure`` objects (no pyplot state,
no display needed) and saved atomically.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from recsec_lib.common.files import atomic_path, read_json

# Panels of the training-curve figure: (history key, axis title).
CURVE_PANELS = (("loss", "training loss"), ("valid_hr@10", "validation HR@10"),
                ("valid_ndcg@10", "validation NDCG@10"))
COMPARED_METRICS = ("hr@10", "ndcg@10")
_HEADLINE_KEY = re.compile(r"^(?P<model>[A-Za-z0-9]+)_test_(?P<metric>hr|ndcg)@?(?P<k>\d+)$")
_FLAT_TEST_KEY = re.compile(r"^test_(?P<metric>hr|ndcg|mrr)@?(?P<k>\d*)$")


@dataclass(frozen=True)
class ModelRecord:
    """What the figures need about one trained model."""

    name: str
    history: tuple[dict[str, float], ...] = ()  # per-epoch dicts, in epoch order
    test: dict[str, float] = field(default_factory=dict)  # e.g. {"hr@10": 0.31, "ndcg@10": 0.18}


def load_metrics(path: str | os.PathLike) -> list[ModelRecord]:
    """The models described in a metrics file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file {path} does not exist")
    payload = read_json(path)  # ValueError "<path>:<line>: not valid JSON" when malformed
    records = parse_metrics(payload, source=str(path), default_name=path.stem)
    if not records:
        raise ValueError(f"metrics file {path} holds no training history and no test metrics "
                         f"(expected per-epoch dicts with 'epoch', or 'test' figures such as 'hr@10')")
    return records


def parse_metrics(payload: Any, source: str = "metrics", default_name: str = "model") -> list[ModelRecord]:
    """Models found in a decoded metrics payload (see the module docstring for the shapes)."""
    if isinstance(payload, list):
        return [ModelRecord(default_name, _parse_history(payload, f"{source}: top-level list"))]
    if not isinstance(payload, dict):
        raise ValueError(f"{source}: expected a JSON object or list, got {type(payload).__name__}")
    if _looks_like_model(payload):
        name = str(payload.get("model") or payload.get("model_name") or default_name)
        return [_parse_model(name, payload, source)]
    models = payload.get("models") if isinstance(payload.get("models"), dict) else payload
    prefix = f"{source}: models" if models is not payload else source
    records = [_parse_model(name, entry, f"{prefix}.{name}") for name, entry in models.items()
               if isinstance(entry, dict) and _looks_like_model(entry)]
    known = {record.name for record in records}
    for name, test in _headline_tests(payload).items():
        if name not in known:
            records.append(ModelRecord(name, (), test))
    return records


def _looks_like_model(entry: dict) -> bool:
    return ("history" in entry or isinstance(entry.get("test"), dict)
            or any(_FLAT_TEST_KEY.match(str(key)) for key in entry))


def _parse_model(name: str, entry: dict, where: str) -> ModelRecord:
    history = _parse_history(entry.get("history", []), f"{where}.history")
    test: dict[str, float] = {}
    if isinstance(entry.get("test"), dict):
        test.update({str(k).lower(): float(v) for k, v in entry["test"].items() if _is_number(v)})
    for key, value in entry.items():
        match = _FLAT_TEST_KEY.match(str(key))
        if match and _is_number(value):
            test[f"{match['metric']}@{match['k']}" if match["k"] else match["metric"]] = float(value)
    return ModelRecord(name, history, test)


def _parse_history(rows: Any, where: str) -> tuple[dict[str, float], ...]:
    if not isinstance(rows, list):
        raise ValueError(f"{where}: expected a list of per-epoch objects, got {type(rows).__name__}")
    parsed = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not _is_number(row.get("epoch")):
            raise ValueError(f"{where}[{i}]: expected an object with a numeric 'epoch', got {row!r:.80}")
        parsed.append({str(k): float(v) for k, v in row.items() if _is_number(v)})
    return tuple(sorted(parsed, key=lambda r: r["epoch"]))


def _headline_tests(payload: dict) -> dict[str, dict[str, float]]:
    """``{"sasrec": {"hr@10": ..}}`` from headline-style keys such as ``sasrec_test_hr10``."""
    tests: dict[str, dict[str, float]] = {}
    for key, value in payload.items():
        match = _HEADLINE_KEY.match(str(key))
        if match and _is_number(value):
            tests.setdefault(match["model"], {})[f"{match['metric']}@{match['k']}"] = float(value)
    return tests


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def plot_training_curves(records: list[ModelRecord], path: str | os.PathLike) -> Path:
    """One panel per curve (loss, validation HR@10, NDCG@10), one line per model; saves a PNG."""
    with_history = [r for r in records if r.history]
    if not with_history:
        raise ValueError("no model has a training history to plot")
    panels = [(key, title) for key, title in CURVE_PANELS
              if any(key in row for r in with_history for row in r.history)]
    fig = Figure(figsize=(4.2 * len(panels), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    for axis, (key, title) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for record in with_history:
            points = [(row["epoch"], row[key]) for row in record.history if key in row]
            if points:
                epochs, values = zip(*points)
                axis.plot(epochs, values, marker="o" if len(points) < 30 else None, markersize=3,
                          label=record.name)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    fig.axes[0].legend()
    return _save(fig, path)


def plot_model_comparison(records: list[ModelRecord], path: str | os.PathLike,
                          metrics: tuple[str, ...] = COMPARED_METRICS) -> Path:
    """Grouped bars of the test metrics per model, value printed on each bar; saves a PNG."""
    with_test = [r for r in records if any(m in r.test for m in metrics)]
    if not with_test:
        raise ValueError(f"no model has test metrics {', '.join(metrics)} to compare")
    fig = Figure(figsize=(max(4.5, 1.4 * len(with_test) * len(metrics)), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axis = fig.subplots()
    width = 0.8 / len(metrics)
    for j, metric in enumerate(metrics):
        xs = [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(with_test))]
        values = [r.test.get(metric, math.nan) for r in with_test]
        bars = axis.bar(xs, values, width=width, label=f"test {metric.upper()}")
        axis.bar_label(bars, fmt="%.3f", fontsize=8)
    axis.set_xticks(range(len(with_test)), [r.name for r in with_test])
    axis.set_ylabel("test score")
    axis.set_title("Test quality per model")
    axis.legend()
    axis.margins(y=0.15)
    return _save(fig, path)


def visualize_metrics(metrics_file: str | os.PathLike, output_dir: str | os.PathLike) -> list[Path]:
    """Draw every figure the metrics file allows into ``output_dir``; returns the PNG paths."""
    records = load_metrics(metrics_file)
    output_dir = Path(output_dir)
    written = []
    if any(r.history for r in records):
        written.append(plot_training_curves(records, output_dir / "training_curves.png"))
    if any(any(m in r.test for m in COMPARED_METRICS) for r in records):
        written.append(plot_model_comparison(records, output_dir / "model_comparison.png"))
    if not written:
        raise ValueError(f"metrics file {metrics_file} has neither a training history nor test "
                         f"{'/'.join(COMPARED_METRICS)} figures to plot")
    return written


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    return path
