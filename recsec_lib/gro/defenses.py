"""Comparing defenses against model extraction: None, Random, Reverse and GRO at several λ.

For every defense the same question is asked twice (STUDY.md, GRO's table):

* utility — how good is the list the service actually *serves*? For Random and
  Reverse the served list is the transformed top-k, so HR@10/NDCG@10 are read
  from the served order (the true item's position in the returned list), with
  the history's items filtered as the black box does. Retention = defended
  NDCG@10 / undefended NDCG@10.
* protection — an attacker extracts a surrogate from that black box (the same
  attack, budget and generator for every row, supplied by the caller as
  ``extract``); we report the surrogate's own HR@10/NDCG@10 and its Agr@10 with
  the UNDEFENDED target's rankings, which is what the attacker wanted to steal.

Every figure is computed on the validation split (used to choose λ) and on the
test split (reported). The best λ is chosen on validation only: the largest
drop of the surrogate's validation NDCG@10 among the λ whose validation
retention is at least ``min_retention`` (95%).

The GRO training itself is in ``gro_training`` (losses in ``gro_loss``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsec_lib.common import plots
from recsec_lib.attack.blackbox import BlackBoxRecommender, apply_defense
from recsec_lib.recommend.checkpoints import save_checkpoint
from recsec_lib.data.dataset import SequenceDataset
from recsec_lib.recommend.evaluation import evaluate_model
from recsec_lib.gro.training import GROConfig, GROResult, defend_target
from recsec_lib.recommend.metrics import agreement_at_k, topk_items
from recsec_lib.models.base import SequentialRecommender
from recsec_lib.common.files import write_text_atomic
from recsec_lib.common.tables import markdown_table
from recsec_lib.recommend.sequences import batches, pad_left

# The caller's attack: given the black box to attack, return the extracted surrogate.
Extractor = Callable[[BlackBoxRecommender], SequentialRecommender]
# Told about every surrogate as soon as it is extracted (e.g. to save it), with the defense it broke.
SurrogateSink = Callable[["DefenseCase", SequentialRecommender], None]

SPLITS = ("valid", "test")


@dataclass(frozen=True)
class DefenseCase:
    """One row of the comparison: which model sits behind the box and how its lists are transformed."""

    label: str  # shown in tables and plots, e.g. "GRO λ=0.1"
    defense: str  # the box's output transform: none | random | reverse
    model: SequentialRecommender  # the model behind the box (the GRO-trained target for GRO rows)
    lam: float | None = None  # GRO's λ; None for the other defenses


def checkpoint_name(lam: float, method: str = "gro", rule: str = "keep") -> str:
    """File name of a defended target: gro_lam1.pt (zero-gradient rule "keep"), gro_lowestindex_lam1.pt
    (the authors' rule), or seedvariant_lam5.pt for the ablation."""
    suffix = "" if rule == "keep" else f"_{rule.replace('_', '')}"
    return f"{method.replace('-', '')}{suffix}_lam{lam:g}.pt"


def surrogate_checkpoint_name(lam: float, method: str = "gro", rule: str = "keep") -> str:
    """File name of the surrogate extracted from a defended target's box: surrogate_gro_lam1.pt.

    Named after the defended target's file so that the report can pair the two
    without reading the GRO stage's code.
    """
    return f"surrogate_{checkpoint_name(lam, method, rule)}"


def train_defended_targets(
    undefended: SequentialRecommender,
    dataset: SequenceDataset,
    lambdas: tuple[float, ...],
    config: GROConfig,
    out_dir: str | os.PathLike,
    device: torch.device | str = "cpu",
    from_scratch: bool = False,
    progress: bool = True,
    sequences: list[np.ndarray] | None = None,
) -> dict[float, GROResult]:
    """GRO-train one target per λ (``config`` with its ``lam`` replaced) and save each as a checkpoint.

    Checkpoints go to ``out_dir/<checkpoint_name(λ)>``, resumable training
    states to ``out_dir/state/``. ``undefended`` is not changed. With
    ``config.patience > 0`` each target is early-stopped on its validation
    NDCG@10 as served (full ranking, history filtered), like the undefended one.
    ``sequences`` are the training rows (default: ``dataset.train_sequences()``;
    pass ``sequences.training_windows(...)`` to train on the rows the undefended
    target was trained on).
    """
    out_dir = Path(out_dir)
    results = {}
    rows = dataset.train_sequences() if sequences is None else sequences

    def validate(model: SequentialRecommender) -> float:
        return evaluate_model(model, dataset, "valid", device=device, ks=(10,), sampled=False,
                              unfiltered=False)["ndcg@10"]

    for lam in lambdas:
        lam_config = replace(config, lam=float(lam))
        name = checkpoint_name(lam, config.method, config.zero_gradient_rule)
        result = defend_target(undefended, rows, lam_config, device=device,
                               from_scratch=from_scratch, state_path=out_dir / "state" / name, progress=progress,
                               validate=validate if config.patience or config.kept_epoch == "best" else None)
        save_checkpoint(out_dir / name, result.target, None, dataset,
                        metrics={"lam": float(lam), "method": config.method, "config": asdict(lam_config),
                                 "history": result.history, "best_epoch": result.best_epoch,
                                 "stop_reason": result.stop_reason})
        results[float(lam)] = result
    return results


def defense_cases(undefended: SequentialRecommender, defended: Mapping[float, SequentialRecommender],
                  method: str = "gro") -> list[DefenseCase]:
    """None, Random, Reverse on the undefended target, then one row per λ (ascending) of ``method``."""
    cases = [DefenseCase("None", "none", undefended), DefenseCase("Random", "random", undefended),
             DefenseCase("Reverse", "reverse", undefended)]
    for lam in sorted(defended):
        label = "GRO" if method == "gro" else method
        cases.append(DefenseCase(f"{label} λ={lam:g}", "none", defended[lam], lam=float(lam)))
    return cases


@torch.inference_mode()
def ranked_lists(model: SequentialRecommender, histories: list[np.ndarray], k: int,
                 device: torch.device | str = "cpu", batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """([U, k] history filtered, [U, k] unfiltered) top-k of each history, best first, from ONE scoring pass.

    The model reads the last max_len items; the filtered lists exclude every
    item of the full history (the rule of ``attack.agreement.evaluate_extraction``,
    so the attack stage's figures and these are comparable).
    """
    model.eval()
    filtered = np.empty((len(histories), k), dtype=np.int64)
    unfiltered = np.empty((len(histories), k), dtype=np.int64)
    for chunk in batches(len(histories), batch_size):
        part = histories[chunk]
        seqs = torch.from_numpy(pad_left(part, model.max_len)).to(device)  # [b, L]
        history = torch.from_numpy(pad_left(part, max(len(s) for s in part))).to(device)  # [b, H]
        scores = model(seqs)  # [b, n + 1]
        filtered[chunk] = topk_items(scores, k, exclude=history).cpu().numpy()
        unfiltered[chunk] = topk_items(scores, k).cpu().numpy()
    return filtered, unfiltered


def top_lists(model: SequentialRecommender, histories: list[np.ndarray], k: int,
              device: torch.device | str = "cpu", filter_seen: bool = True, batch_size: int = 512) -> np.ndarray:
    """[U, k] each history's top-k items as the black box ranks them (before its defense); see ``ranked_lists``."""
    filtered, unfiltered = ranked_lists(model, histories, k, device, batch_size)
    return filtered if filter_seen else unfiltered


def list_metrics(lists: np.ndarray, targets: np.ndarray, ks: tuple[int, ...] = (10,)) -> dict[str, float]:
    """HR@k and NDCG@k read from ranked lists [U, >=k]: the true item's position in the list as served."""
    lists = np.asarray(lists)
    targets = np.asarray(targets)
    if lists.ndim != 2 or len(lists) != len(targets):
        raise ValueError(f"lists must be [U, k] with U = {len(targets)} targets, got shape {lists.shape}")
    out = {}
    for k in ks:
        if k > lists.shape[1]:
            raise ValueError(f"cut-off {k} is longer than the lists ({lists.shape[1]})")
        hits = lists[:, :k] == targets[:, None]  # [U, k]
        position = hits.argmax(axis=1)  # [U] 0-based, meaningful where hit
        found = hits.any(axis=1)
        out[f"hr@{k}"] = float(found.mean())
        out[f"ndcg@{k}"] = float(np.where(found, 1.0 / np.log2(position + 2.0), 0.0).mean())
    return out


def evaluate_defenses(
    undefended: SequentialRecommender,
    defended: Mapping[float, SequentialRecommender],
    dataset: SequenceDataset,
    extract: Extractor,
    k: int = 100,
    device: torch.device | str = "cpu",
    seed: int = 0,
    min_retention: float = 0.95,
    box_filter_seen: bool = True,
    method: str = "gro",
    progress: Callable[[str], None] | None = None,
    on_surrogate: SurrogateSink | None = None,
) -> pd.DataFrame:
    """One row per defense (None, Random, Reverse, GRO per λ) with utility and protection figures.

    Columns (each for split in valid, test): ``target_{split}_hr10``,
    ``target_{split}_ndcg10`` (served lists, seen items filtered),
    ``retention_{split}``, ``surrogate_{split}_hr10``, ``surrogate_{split}_ndcg10``,
    ``surrogate_{split}_ndcg10_drop`` (fraction of the None row's figure lost),
    ``agr1_{split}``, ``agr10_{split}`` (surrogate vs the undefended target), plus
    the test figures without seen-item filtering (``*_unfiltered``), and
    ``best`` (the chosen λ's row, see ``choose_best_lambda``).

    ``method`` names how ``defended`` was trained (gro | seed-variant), for labels.
    ``box_filter_seen`` is passed to the attacked black box (it can only filter
    when k + max_len <= num_items, which tiny test data may not allow).
    ``on_surrogate(case, surrogate)`` is called for every extracted surrogate,
    so a caller can keep one (the report shows its lists) without this
    function holding every surrogate in memory or knowing where files go.
    """
    splits = {name: dataset.split(name) for name in SPLITS}
    cache: dict[tuple, np.ndarray] = {}

    def ranked(model: SequentialRecommender, split: str, filter_seen: bool = True) -> np.ndarray:
        """[U, k] lists of ``model`` before any defense; None, Random and Reverse share one model's lists."""
        key = (id(model), split, filter_seen)
        if key not in cache:
            cache[key] = top_lists(model, splits[split][0], k, device, filter_seen=filter_seen)
        return cache[key]

    # What the attacker wants to steal: the undefended target's top-10 on real inputs.
    reference = {name: ranked(undefended, name)[:, :10] for name in SPLITS}
    rows = []
    for index, case in enumerate(defense_cases(undefended, defended, method)):
        if progress:
            progress(f"defense {case.label}")
        row: dict[str, object] = {"defense": case.label, "method": method if case.lam is not None else case.defense,
                                  "lam": case.lam}
        serve_rng = np.random.default_rng(seed + index)
        for name, (_, targets) in splits.items():
            figures = list_metrics(apply_defense(ranked(case.model, name), case.defense, serve_rng), targets)
            row[f"target_{name}_hr10"], row[f"target_{name}_ndcg10"] = figures["hr@10"], figures["ndcg@10"]
        targets = splits["test"][1]
        served = apply_defense(ranked(case.model, "test", filter_seen=False), case.defense, serve_rng)
        figures = list_metrics(served, targets)
        row["target_test_hr10_unfiltered"], row["target_test_ndcg10_unfiltered"] = figures["hr@10"], figures["ndcg@10"]

        box = BlackBoxRecommender(case.model, k=k, defense=case.defense, filter_seen=box_filter_seen,
                                  device=device, seed=seed + index)
        surrogate = extract(box)
        if on_surrogate is not None:
            on_surrogate(case, surrogate)
        for name, (inputs, targets) in splits.items():
            stolen = top_lists(surrogate, inputs, 10, device)  # [U, 10], history filtered
            figures = list_metrics(stolen, targets)
            row[f"surrogate_{name}_hr10"], row[f"surrogate_{name}_ndcg10"] = figures["hr@10"], figures["ndcg@10"]
            row[f"agr1_{name}"] = agreement_at_k(stolen, reference[name], 1)
            row[f"agr10_{name}"] = agreement_at_k(stolen, reference[name], 10)
        inputs, targets = splits["test"]
        figures = list_metrics(top_lists(surrogate, inputs, 10, device, filter_seen=False), targets)
        row["surrogate_test_hr10_unfiltered"] = figures["hr@10"]
        row["surrogate_test_ndcg10_unfiltered"] = figures["ndcg@10"]
        rows.append(row)

    table = pd.DataFrame(rows)
    for name in SPLITS:
        none_target = table.loc[0, f"target_{name}_ndcg10"]
        none_surrogate = table.loc[0, f"surrogate_{name}_ndcg10"]
        table[f"retention_{name}"] = table[f"target_{name}_ndcg10"] / none_target if none_target > 0 else math.nan
        table[f"surrogate_{name}_ndcg10_drop"] = (
            1.0 - table[f"surrogate_{name}_ndcg10"] / none_surrogate if none_surrogate > 0 else math.nan)
    best = choose_best_lambda(table, min_retention)
    table["best"] = (table["lam"] == best["lam"]) if best["lam"] is not None else False
    return table


NO_PROTECTIVE_LAMBDA = "no protective λ"


def choose_best_lambda(table: pd.DataFrame, min_retention: float = 0.95) -> dict:
    """The GRO λ > 0 with the largest validation fall of the surrogate's NDCG@10 among those that keep
    validation retention >= ``min_retention`` AND protect on validation; validation figures only, never test.

    "Protect" means a positive validation fall, and when the table carries its
    interval (``surrogate_valid_ndcg10_drop_low``), a fall whose whole 95%
    interval is above 0: a λ that only moves the surrogate within the noise is
    not chosen. λ = 0 (the control) is never a candidate. With a column
    ``worst`` only the worst attacker's rows count.

    Returns {"lam", "constraint_met", "retention_valid", "drop_valid", "reason",
    "shown_lam"}. When no λ protects, "lam" is None and "reason" is
    "no protective λ"; "shown_lam" is then the λ whose figures are reported so
    that the shortfall stays visible (the largest validation fall among the λ
    keeping the floor, else the highest validation retention).
    """
    gro = table[table["lam"].notna() & (table["lam"] > 0)]  # trained-defense rows (GRO or the seed variant)
    if "worst" in gro.columns:
        gro = gro[gro["worst"].astype(bool)]
    empty = {"lam": None, "constraint_met": False, "retention_valid": math.nan, "drop_valid": math.nan,
             "reason": "no GRO λ was trained", "shown_lam": None}
    if gro.empty:
        return empty
    eligible = gro[gro["retention_valid"] >= min_retention]
    protective = eligible[eligible["surrogate_valid_ndcg10_drop"] > 0]
    if "surrogate_valid_ndcg10_drop_low" in protective.columns:
        protective = protective[protective["surrogate_valid_ndcg10_drop_low"] > 0]
    if len(protective):
        chosen = protective.loc[protective["surrogate_valid_ndcg10_drop"].idxmax()]
        return {"lam": float(chosen["lam"]), "constraint_met": True,
                "retention_valid": float(chosen["retention_valid"]),
                "drop_valid": float(chosen["surrogate_valid_ndcg10_drop"]),
                "reason": f"largest protective validation fall with validation retention >= {min_retention:.0%}",
                "shown_lam": float(chosen["lam"])}
    shown = (eligible.loc[eligible["surrogate_valid_ndcg10_drop"].idxmax()] if len(eligible)
             else gro.loc[gro["retention_valid"].idxmax()])
    return {"lam": None, "constraint_met": False, "retention_valid": float(shown["retention_valid"]),
            "drop_valid": float(shown["surrogate_valid_ndcg10_drop"]), "reason": NO_PROTECTIVE_LAMBDA,
            "shown_lam": float(shown["lam"])}


# Columns of the paper-style table (GRO's Table: target and surrogate HR/NDCG@10, %), test split.
PAPER_COLUMNS = {
    "defense": "defense",
    "target_test_hr10": "target HR@10",
    "target_test_ndcg10": "target NDCG@10",
    "retention_test": "retention",
    "surrogate_test_hr10": "surrogate HR@10",
    "surrogate_test_ndcg10": "surrogate NDCG@10",
    "agr10_test": "Agr@10",
}


def paper_table(table: pd.DataFrame) -> pd.DataFrame:
    """Test-split figures in percent, one row per defense, labelled like the paper's table."""
    out = table[list(PAPER_COLUMNS)].rename(columns=PAPER_COLUMNS).copy()
    for column in out.columns[1:]:
        out[column] = (100.0 * out[column].astype(float)).round(2)
    out.loc[table["best"].to_numpy(dtype=bool), "defense"] += " (best λ)"
    return out


def save_tables(table: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """defenses.csv (every column) and defenses.md (the paper-style table), atomically."""
    out_dir = Path(out_dir)
    paths = {"csv": out_dir / "defenses.csv", "markdown": out_dir / "defenses.md"}
    write_text_atomic(paths["csv"], table.to_csv(index=False))
    write_text_atomic(paths["markdown"], markdown_table(paper_table(table), float_format="{:.2f}"))
    return paths


def plot_utility_vs_protection(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """PNG: target NDCG@10 retention (x) vs surrogate NDCG@10 drop (y), test split, one point per row."""
    return plots.save_png(plots.utility_vs_protection(table), path)
