"""Every arm against every attacker: utility, protection and their intervals, one row per (arm, attacker).

For each arm the question is asked as the STUDY's protocol asks it:

* utility — HR@10/NDCG@10 of the list the user is served (seen items
  filtered; unfiltered labelled), and retention = arm / reference NDCG@10,
  where the reference is the arm that differs only by the defense ("None" for
  an output defense, the λ = 0 control for a GRO arm: the same training loop
  without the swap loss, so fine-tuning effects cancel);
* protection — surrogates extracted from the arm's box by every attacker of
  the set (``arena.attackers``: generator × view × seed), scored on the real
  test inputs: the surrogate's HR@10/NDCG@10 and its Agr@10 with the
  undefended target's top 10 (what the attacker wants to steal).

Falls are measured against the reference's STRONGEST attacker, per measure:
fall = 1 − (the arm's surrogate figure for this attacker) / (the best figure
any attacker reached against the reference's model, behind any of the output
defenses evaluated: an attacker of the undefended box can truncate, shuffle or
resample the lists itself). The undefended box is attacked by the whole set
too, so an arm is never credited with protection because its reference met a
weaker attacker; and the arm's own worst case
(``worst`` for NDCG@10, ``worst_agr`` for Agr@10: its strongest attacker) is
the row that decides its verdict. Which attacker is strongest is read on the
test figures themselves, which favours the attacker (a headline that errs
towards the defender's worst case). Intervals: 95%, a bootstrap over test
users (paired between arm and reference) and over attack seeds
(``recommend.intervals``); they do not include the training noise of the
defended models (the study's GRO stage trains the control with several seeds
for that).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsec_lib.arena.arms import UNDEFENDED, Arm, check_arms
from recsec_lib.arena.attackers import AttackSet
from recsec_lib.arena.cells import CellResult, DatasetRef, MatrixCell, run_cell, serial
from recsec_lib.recommend.checkpoints import load_checkpoint, model_digest
from recsec_lib.recommend.evaluation import ranked_lists
from recsec_lib.recommend.intervals import bootstrap_interval
from recsec_lib.recommend.metrics import per_user_hits

# run_cells(cells, function, on_done) -> results in the cells' order (serial here; a process pool or Ray elsewhere)
CellRunner = Callable[..., list]


@dataclass
class MatrixResult:
    table: pd.DataFrame  # one row per (arm, attacker view, generator)
    surrogates: list[dict]  # one entry per distinct surrogate trained: which cell, how its training ended
    # the per-user figures the table's rows summarise (for readings with their own intervals, e.g. GRO's curve):
    # arm label -> {"valid_ndcg", "test_ndcg", ...: [U] served figures}
    utility: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # (arm label, view, generator) -> one dict of [U] surrogate figures per attack seed ("test_ndcg", ...)
    runs: dict[tuple[str, str, str], list[dict[str, np.ndarray]]] = field(default_factory=dict)


def padded_histories(histories: list[np.ndarray]) -> np.ndarray:
    """[U, H] right-padded with 0 (only used as a set of items never served)."""
    width = max(len(h) for h in histories)
    out = np.zeros((len(histories), width), dtype=np.int64)
    for row, history in enumerate(histories):
        out[row, : len(history)] = history
    return out


def promoted_item(served_top10: np.ndarray, none_top10: np.ndarray, num_items: int) -> tuple[int, float, float]:
    """(item, its share of served lists, its share under None): the item whose share of top-10 lists rose most.

    served_top10, none_top10: [U, 10] the arm's and the None arm's served top-10 for the same users.
    """
    served_counts = np.bincount(np.asarray(served_top10).ravel(), minlength=num_items + 1)[1:]
    none_counts = np.bincount(np.asarray(none_top10).ravel(), minlength=num_items + 1)[1:]
    # the largest rise; among equal rises the most served item (so the None arm names its most served item)
    item = int(np.argmax((served_counts - none_counts) * (served_counts.sum() + 1) + served_counts)) + 1
    users = len(served_top10)
    return item, float(served_counts[item - 1] / users), float(none_counts[item - 1] / users)


def verdict(low: float, high: float, is_reference: bool = False) -> str:
    """"protects" when the whole interval of the fall is above 0, "helps the attacker" when below, else "no effect"."""
    if is_reference:
        return "reference"
    if low > 0:
        return "protects"
    if high < 0:
        return "helps the attacker"
    return "no effect"


def evaluate(
    models: Mapping[str, str | Path],  # model key -> checkpoint (UNDEFENDED and every model an arm serves)
    arms: Sequence[Arm],  # the first arm must be the None arm
    dataset,  # the SequenceDataset (utility is computed here)
    dataset_ref: DatasetRef,  # how a cell finds the same dataset
    attack: AttackSet,
    device: torch.device | str = "cpu",
    replicates: int = 1000,  # bootstrap replicates of every interval
    seed: int = 0,  # serving randomness of the utility lists and the bootstrap
    with_valid: Sequence[str] = (),  # model keys whose surrogates are also scored on validation (λ choice)
    run_cells: CellRunner = serial,
    on_cell: Callable[[MatrixCell, CellResult], None] | None = None,
    version: str = "",  # the code's fingerprint, part of every cell's key (a stored cell of other code is stale)
) -> MatrixResult:
    """The matrix of ``arms`` × ``attack``'s attackers; see the module docstring."""
    arms = list(arms)
    check_arms(arms, models)
    device = torch.device(device)
    lists = ranked_model_lists(models, arms, dataset, attack.k, device)
    utility, served_top10 = served_utility(arms, lists, dataset, seed)
    reference_top10 = {name: lists[UNDEFENDED, name][0][:, :10] for name in SPLITS}
    cells = build_cells(models, arms, dataset_ref, attack, reference_top10, with_valid, str(device), version)
    results = run_cells(cells, run_cell, on_cell)
    runs: dict[tuple[str, str, str], list[dict[str, np.ndarray]]] = {}
    surrogates = []
    for cell, result in zip(cells, results):
        for (label, view), figures in result.figures.items():
            runs.setdefault((label, view, cell.generator), []).append(figures)
        surrogates += [{"cell": cell.key, **entry} for entry in result.surrogates]
    table = _rows(arms, utility, served_top10, runs, dataset.num_items, replicates, seed)
    return MatrixResult(table, surrogates, utility, runs)


SPLITS = ("valid", "test")


def ranked_model_lists(models, arms, dataset, k: int, device) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(model key, split) -> ([U, k] filtered, [U, k] unfiltered) ranked lists of every model an arm serves."""
    lists = {}
    for key in dict.fromkeys(arm.model for arm in arms):
        model = load_checkpoint(models[key], dataset=dataset, device=device).model
        for name in SPLITS:
            lists[key, name] = ranked_lists(model, dataset.split(name)[0], k, device)
    return lists


def served_utility(arms, lists, dataset, seed: int) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """(per arm: per-user HR/NDCG@10 of the lists it serves; per arm: its served test top 10)."""
    utility, served_top10 = {}, {}
    for index, arm in enumerate(arms):
        rng = np.random.default_rng(seed + index)
        figures = {}
        for name in SPLITS:
            inputs, targets = dataset.split(name)
            filtered, unfiltered = lists[arm.model, name]
            served = arm.output.apply(filtered, rng, dataset.num_items, padded_histories(inputs))
            figures[f"{name}_hr"], figures[f"{name}_ndcg"] = per_user_hits(served, targets)
            if name == "test":
                served_top10[arm.label] = served[:, :10]
                served_unf = arm.output.apply(unfiltered, rng, dataset.num_items, None)
                figures["test_hr_unf"], figures["test_ndcg_unf"] = per_user_hits(served_unf, targets)
        utility[arm.label] = figures
    return utility, served_top10


def build_cells(models, arms, dataset_ref: DatasetRef, attack: AttackSet, reference_top10: dict,
                with_valid: Sequence[str] = (), device: str = "cpu", version: str = "") -> list[MatrixCell]:
    """One cell per model × generator × seed, serving every arm of that model."""
    cells = []
    for key in dict.fromkeys(arm.model for arm in arms):
        outputs = tuple((arm.label, arm.output.spec) for arm in arms if arm.model == key)
        digest = model_digest(models[key])
        for generator in attack.generators:
            for attack_seed in attack.seeds:
                cells.append(MatrixCell(key, str(models[key]), dataset_ref, outputs, generator, attack_seed, attack,
                                        reference_top10, key in with_valid, device, digest, version))
    return cells


def _stack(runs: list[dict[str, np.ndarray]], key: str) -> np.ndarray:
    return np.stack([run[key] for run in runs])  # [S, U]


def _strongest(runs: dict, arms: Sequence[Arm], reference: Arm, key: str) -> tuple[str, str, str]:
    """(arm, view, generator) of the surrogates with the highest mean ``key`` among those extracted from the
    reference's MODEL, whatever the output defense in front of it.

    An output defense is a post-processing of the model's exact lists that an
    attacker facing the undefended box could apply itself (truncate, shuffle,
    resample its tail), so every such attacker belongs to the reference's
    attacker set: a defense is then never credited with protection that an
    attacker of its reference could not have had, and serving less can never
    show as helping the attacker.
    """
    same_model = {arm.label for arm in arms if arm.model == reference.model}
    means = {(label, view, generator): _stack(r, key).mean()
             for (label, view, generator), r in runs.items() if label in same_model}
    return max(means, key=means.get)


def _rows(arms, utility, served_top10, runs, num_items, replicates, seed) -> pd.DataFrame:
    none = arms[0]
    by_label = {arm.label: arm for arm in arms}
    rows = []
    for arm in arms:
        ref = by_label[arm.reference] if arm.reference else none
        item, share, share_none = promoted_item(served_top10[arm.label], served_top10[none.label], num_items)
        best_ndcg, best_agr = _strongest(runs, arms, ref, "test_ndcg"), _strongest(runs, arms, ref, "test_agr10")
        ref_ndcg, ref_agr = runs[best_ndcg], runs[best_agr]
        u, ru = utility[arm.label], utility[ref.label]
        attackers = sorted({(v, g) for (label, v, g) in runs if label == arm.label}, key=lambda x: (x[1], x[0]))
        for view, generator in attackers:
            mine = runs[arm.label, view, generator]
            row = {"arm": arm.label, "family": arm.family, "model": arm.model, "output": arm.output.spec,
                   "lam": arm.lam, "rule": arm.rule, "reference": ref.label, "attacker": view,
                   "generator": generator, "seeds": len(mine),
                   "reference_attacker": " · ".join(best_ndcg), "reference_attacker_agr": " · ".join(best_agr)}
            for name in ("valid", "test"):
                row[f"target_{name}_hr10"] = float(u[f"{name}_hr"].mean())
                row[f"target_{name}_ndcg10"] = float(u[f"{name}_ndcg"].mean())
            row["target_test_hr10_unfiltered"] = float(u["test_hr_unf"].mean())
            row["target_test_ndcg10_unfiltered"] = float(u["test_ndcg_unf"].mean())
            row.update(bootstrap_interval(u["test_ndcg"], ru["test_ndcg"], "ratio", replicates,
                                          seed=seed).as_dict("retention_test"))
            valid_ref = ru["valid_ndcg"].mean()
            row["retention_valid"] = float(u["valid_ndcg"].mean() / valid_ref) if valid_ref > 0 else float("nan")
            none_ndcg = utility[none.label]["test_ndcg"].mean()
            row["retention_vs_none_test"] = float(u["test_ndcg"].mean() / none_ndcg) if none_ndcg > 0 else float("nan")

            ndcg = _stack(mine, "test_ndcg")
            row["surrogate_test_hr10"] = float(_stack(mine, "test_hr").mean())
            row["surrogate_test_ndcg10"] = float(ndcg.mean())
            row["surrogate_test_hr10_unfiltered"] = float(_stack(mine, "test_hr_unf").mean())
            row["surrogate_test_ndcg10_unfiltered"] = float(_stack(mine, "test_ndcg_unf").mean())
            row.update(bootstrap_interval(ndcg, _stack(ref_ndcg, "test_ndcg"), "drop", replicates, seed=seed)
                       .as_dict("surrogate_test_ndcg10_drop"))
            agr = _stack(mine, "test_agr10")
            row.update(bootstrap_interval(agr, None, "mean", replicates, seed=seed).as_dict("agr10_test"))
            row.update(bootstrap_interval(agr, _stack(ref_agr, "test_agr10"), "drop", replicates, seed=seed)
                       .as_dict("agr10_test_drop"))
            if "valid_ndcg" in mine[0]:
                ref_valid = runs[best_ndcg]
                if "valid_ndcg" in ref_valid[0]:
                    row["surrogate_valid_ndcg10"] = float(_stack(mine, "valid_ndcg").mean())
                    row.update(bootstrap_interval(_stack(mine, "valid_ndcg"), _stack(ref_valid, "valid_ndcg"),
                                                  "drop", replicates, seed=seed).as_dict("surrogate_valid_ndcg10_drop"))
            row["time_capped"] = bool(any(bool(run["time_capped"].any()) for run in mine))
            row.update({"promoted_item": item, "promoted_share": share, "promoted_share_none": share_none})
            row["verdict"] = verdict(row["surrogate_test_ndcg10_drop_low"], row["surrogate_test_ndcg10_drop_high"],
                                     is_reference=arm.label == ref.label)
            row["agr_verdict"] = verdict(row["agr10_test_drop_low"], row["agr10_test_drop_high"],
                                         is_reference=arm.label == ref.label)
            rows.append(row)
    table = pd.DataFrame(rows)
    table["worst"] = False
    table["worst_agr"] = False
    for _, part in table.groupby("arm", sort=False):
        table.loc[part["surrogate_test_ndcg10"].idxmax(), "worst"] = True
        table.loc[part["agr10_test"].idxmax(), "worst_agr"] = True
    return table
