"""The defense frontier: every defense's utility cost against its protection, with intervals.

An *arm* is one served configuration: a model behind the box (the undefended
target, or a GRO-trained one) plus an output defense (``output_defenses``).
For each arm the question is asked as the STUDY's protocol asks it:

* utility — HR@10/NDCG@10 of the list the user is served (seen items filtered;
  unfiltered labelled), and retention = arm / reference NDCG@10, where the
  reference is the arm that differs only by the defense: "None" for an output
  defense on the undefended target, the λ = 0 GRO control for a GRO arm and
  for a combination (GRO + tail perturbation): the same training loop without
  the swap loss, so fine-tuning effects cancel;
* protection — surrogates extracted from the arm's box by every attacker the
  plan has (generator × seed; plus, where the defense can be known and worked
  around, the *knowing* attacker of ``output_defenses``), scored on the real
  test inputs: the surrogate's HR@10/NDCG@10 (filtered and unfiltered) and its
  Agr@10 with the undefended target. The fall of the surrogate's NDCG@10 (and
  of its Agr@10) relative to the reference arm's naive attacker carries a 95%
  bootstrap interval over test users and seeds (``intervals``); a fall whose
  interval holds 0 is "no effect".

An arm's protection is its WORST attacker's (the smallest fall): a defense is
only as good as against the attacker who copes with it best.

Attack queries are shared where the defense only changes the answers: for a
defense that keeps the list's item set (and always for the "random"
generator) one query pass through the undefended box serves every such arm of
that model (``output_defenses.defend_attack_data``); other arms query their own
box. Surrogates trained on identical data are trained once (e.g. the knowing
attacker of every "tail-*:M" defense trains on the exact top M).

``promoted_item`` — the item whose share of served top-10 lists (test users)
rose most over the None arm, and that share: the signature of GRO's
"lowest_index" rule, which pushes one fixed item into every list.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsec_lib.attack.queries import generate_queries
from recsec_lib.attack.blackbox import BlackBoxRecommender
from recsec_lib.data.dataset import SequenceDataset
from recsec_lib.recommend.intervals import bootstrap_interval
from recsec_lib.models.base import SequentialRecommender
from recsec_lib.gro.defenses import ranked_lists
from recsec_lib.gro.output_defenses import DefendedBox, OutputDefense, defend_attack_data, knowing_view
from recsec_lib.common.files import write_text_atomic
from recsec_lib.common.plots import PlotFigure, new_figure, save_png
from recsec_lib.attack.surrogate import SurrogateSettings, fit_surrogate
from recsec_lib.common.tables import markdown_table

FAMILIES = ("none", "paper", "output", "gro-control", "gro", "combo")
UNDEFENDED = "undefended"  # the models key of the undefended target


@dataclass(frozen=True)
class Arm:
    """One served configuration of the frontier."""

    label: str  # unique; shown in tables and plots
    model: str  # key of the model behind the box (UNDEFENDED or a GRO target's key)
    output: OutputDefense  # what the box does to the ranked list before serving it
    reference: str  # label of the arm this one is compared with ("" for the None arm itself)
    family: str  # none | paper | output | gro-control | gro | combo
    lam: float | None = None  # GRO's λ (0 for the control)
    rule: str = ""  # GRO's zero-gradient rule (keep | lowest_index)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"parameter 'family' must be one of {FAMILIES}, got {self.family!r}")


@dataclass(frozen=True)
class AttackPlan:
    """The attackers every arm faces: each generator × each seed, same budget and surrogate training."""

    generators: tuple[str, ...] = ("autoregressive",)
    seeds: tuple[int, ...] = (0, 1, 2)
    num_sequences: int = 5000
    seq_len: int = 200
    k: int = 100  # the box ranks k items (before the output defense)
    arch: str = "sasrec"  # surrogate architecture
    surrogate: SurrogateSettings = SurrogateSettings()  # its seed is replaced by each attack seed
    box_filter_seen: bool = True

    def __post_init__(self) -> None:
        if not self.generators or not self.seeds:
            raise ValueError("parameters 'generators' and 'seeds' need at least one value each")


# Told about every extracted surrogate (e.g. to save one), with the arm, attacker, generator and seed.
SurrogateSink = Callable[[Arm, str, str, int, SequentialRecommender], None]


def per_user_hits(lists: np.ndarray, targets: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """([U] HR@k, [U] NDCG@k) per user, read from ranked lists [U, >=k] (the true item's served position)."""
    lists = np.asarray(lists)[:, :k]
    hits = lists == np.asarray(targets)[:, None]  # [U, k]
    found = hits.any(axis=1)
    position = hits.argmax(axis=1)
    return found.astype(np.float64), np.where(found, 1.0 / np.log2(position + 2.0), 0.0)


def per_user_agreement(top_a: np.ndarray, top_b: np.ndarray, k: int = 10) -> np.ndarray:
    """[U] |topk(a) ∩ topk(b)| / k per user (Agr@k before averaging)."""
    a, b = np.asarray(top_a)[:, :k], np.asarray(top_b)[:, :k]
    return (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1) / k


@torch.inference_mode()
def _padded_histories(histories: list[np.ndarray]) -> np.ndarray:
    """[U, H] right-padded with 0 (only used as a set of forbidden ids)."""
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


def evaluate_frontier(
    models: Mapping[str, SequentialRecommender],  # UNDEFENDED and the GRO targets, by key
    arms: Sequence[Arm],  # the first arm must be the None arm (undefended, no output defense)
    dataset: SequenceDataset,
    plan: AttackPlan,
    device: torch.device | str = "cpu",
    replicates: int = 1000,  # bootstrap replicates of every interval
    seed: int = 0,  # serving randomness (Random, tail shuffles) and the bootstrap
    progress: Callable[[str], None] | None = None,
    on_surrogate: SurrogateSink | None = None,
) -> pd.DataFrame:
    """One row per (arm, attacker, generator) with utility, protection and their intervals.

    Columns: identification (arm, family, model, output, lam, rule, reference,
    attacker, generator, seeds, worst); target figures (``target_{valid,test}_{hr10,ndcg10}``,
    ``target_test_{hr10,ndcg10}_unfiltered``, ``retention_{valid,test}`` with
    ``retention_test_low/high``, ``retention_vs_none_test``); surrogate figures
    (``surrogate_test_{hr10,ndcg10}`` and ``_unfiltered``, ``agr10_test``; the
    falls ``surrogate_test_ndcg10_drop`` and ``agr10_test_drop`` with ``_low``/``_high``,
    ``surrogate_test_ndcg10_drop_min_seed``, and for GRO arms the validation
    figures ``surrogate_valid_ndcg10_drop`` (+ interval) used to choose λ);
    ``promoted_item``, ``promoted_share``, ``promoted_share_none``; ``verdict``.
    ``worst`` marks each arm's attacker with the smallest NDCG@10 fall.
    """
    labels = [arm.label for arm in arms]
    if len(set(labels)) != len(labels):
        raise ValueError(f"arm labels must be unique, got {labels}")
    if not arms or arms[0].family != "none" or arms[0].model != UNDEFENDED or arms[0].output.kind != "none":
        raise ValueError("the first arm must be the None arm (the undefended target, no output defense)")
    by_label = {arm.label: arm for arm in arms}
    for arm in arms[1:]:
        if arm.reference not in by_label:
            raise ValueError(f"arm {arm.label!r}: reference {arm.reference!r} is not an arm")
        if arm.model not in models:
            raise ValueError(f"arm {arm.label!r}: no model {arm.model!r}")
    say = progress or (lambda message: None)
    num_items = dataset.num_items
    splits = {name: dataset.split(name) for name in ("valid", "test")}

    # ---- utility: the lists each arm serves to real users --------------------------------------------------
    lists: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for key in {arm.model for arm in arms}:
        for name, (inputs, _) in splits.items():
            lists[key, name] = ranked_lists(models[key], inputs, plan.k, device)
    forbidden = {name: _padded_histories(inputs) for name, (inputs, _) in splits.items()}
    reference_top10 = {name: lists[UNDEFENDED, name][0][:, :10] for name in splits}  # what the attacker wants
    utility: dict[str, dict[str, np.ndarray]] = {}
    served_top10: dict[str, np.ndarray] = {}
    for index, arm in enumerate(arms):
        rng = np.random.default_rng(seed + index)
        figures = {}
        for name, (_, targets) in splits.items():
            filtered, unfiltered = lists[arm.model, name]
            served = arm.output.apply(filtered, rng, num_items, forbidden[name])
            figures[f"{name}_hr"], figures[f"{name}_ndcg"] = per_user_hits(served, targets)
            if name == "test":
                served_top10[arm.label] = served[:, :10]
                served_unf = arm.output.apply(unfiltered, rng, num_items, None)
                figures["test_hr_unf"], figures["test_ndcg_unf"] = per_user_hits(served_unf, targets)
        utility[arm.label] = figures

    # ---- protection: every attacker against every arm ---------------------------------------------------
    # results[(arm label, attacker, generator)] = list over seeds of {split_metric: [U]}
    results: dict[tuple[str, str, str], list[dict[str, np.ndarray]]] = {}
    groups = _query_groups(arms, plan)
    for generator in plan.generators:
        for attack_seed in plan.seeds:
            trained: dict[tuple, dict[str, np.ndarray]] = {}  # surrogates on identical data are trained once
            steered: dict[tuple[str, int], object] = {}  # (model, M): queries steered by the exact top M
            for (model_key, own_label), members in groups.items():
                own = bool(own_label)
                box = BlackBoxRecommender(models[model_key], k=plan.k, filter_seen=plan.box_filter_seen,
                                          device=device, seed=attack_seed)
                queried = DefendedBox(box, members[0].output, seed=attack_seed) if own else box
                say(f"queries: {model_key}{' + ' + members[0].output.spec if own else ''}, {generator}, "
                    f"seed {attack_seed}")
                data = generate_queries(queried, num_items, generator, plan.num_sequences, plan.seq_len,
                                        seed=attack_seed)
                for arm in members:
                    view = data if own else defend_attack_data(data, arm.output, seed=attack_seed)
                    attackers = [("naive", view, (arm.output.spec, 0))]
                    known = knowing_view(view, arm.output)
                    if known is not None:
                        same_as = ("none", arm.output.knowing_list_len) if not own else (arm.output.spec, -1)
                        attackers.append(("knowing", known, same_as))
                    if own and arm.output.knowing_list_len:
                        # An attacker who knows that only the top M are real also steers its walk by them (the
                        # autoregressive generator draws its next item from the answer): its queries are those
                        # of a box serving the top M only, which the tail defense serves unchanged.
                        size = arm.output.knowing_list_len
                        if (model_key, size) not in steered:
                            say(f"queries: {model_key} + top:{size} (knowing walk), {generator}, seed {attack_seed}")
                            steered[model_key, size] = generate_queries(
                                DefendedBox(box, OutputDefense("top", size), seed=attack_seed), num_items, generator,
                                plan.num_sequences, plan.seq_len, seed=attack_seed)
                        attackers.append(("knowing-walk", steered[model_key, size], ("top", size)))
                    for attacker, attack_data, identity in attackers:
                        cache_key = (model_key, own_label, identity)
                        if cache_key not in trained:
                            say(f"surrogate: {arm.label}, {attacker} attacker, {generator}, seed {attack_seed}")
                            surrogate = _fit(attack_data, plan, attack_seed, num_items,
                                             models[UNDEFENDED].max_len, device)
                            if on_surrogate is not None:
                                on_surrogate(arm, attacker, generator, attack_seed, surrogate)
                            # validation figures choose GRO's λ: needed for the arms of GRO-trained models only
                            trained[cache_key] = _score_surrogate(surrogate, splits, reference_top10, device,
                                                                  with_valid=model_key != UNDEFENDED)
                        results.setdefault((arm.label, attacker, generator), []).append(trained[cache_key])
    return _rows(arms, by_label, utility, served_top10, results, plan, num_items, replicates, seed)


def _query_groups(arms: Sequence[Arm], plan: AttackPlan) -> dict[tuple[str, str], list[Arm]]:
    """Arms that can share one query pass, keyed (model, ""): their answers are transformed after the fact;
    and (model, arm label) for each arm that needs its own queries (its defense changes the list's item set
    while the autoregressive generator reads the answers to choose its next query)."""
    groups: dict[tuple[str, str], list[Arm]] = {}
    answers_steer = "autoregressive" in plan.generators
    for arm in arms:
        own = answers_steer and not arm.output.keeps_item_set
        groups.setdefault((arm.model, arm.label if own else ""), []).append(arm)
    return groups


def _fit(data, plan: AttackPlan, attack_seed: int, num_items: int, max_len: int, device) -> SequentialRecommender:
    """A fresh surrogate of ``plan.arch`` (reading ``max_len`` items, as the box) distilled with the attack seed."""
    from recsec_lib.models.registry import build_model

    settings = replace(plan.surrogate, seed=attack_seed)
    torch.manual_seed(attack_seed)
    model = build_model(plan.arch, num_items=num_items, max_len=max(max_len, plan.seq_len))
    return fit_surrogate(data, model, settings, device=device, progress=False).model


def _score_surrogate(surrogate, splits, reference_top10, device, with_valid: bool) -> dict[str, np.ndarray]:
    """Per-user figures of one surrogate: test (filtered, unfiltered, Agr@10) and, if asked, validation."""
    out = {}
    for name in ("valid", "test") if with_valid else ("test",):
        inputs, targets = splits[name]
        filtered, unfiltered = ranked_lists(surrogate, inputs, 10, device)
        out[f"{name}_hr"], out[f"{name}_ndcg"] = per_user_hits(filtered, targets)
        out[f"{name}_agr10"] = per_user_agreement(filtered, reference_top10[name])
        if name == "test":
            out["test_hr_unf"], out["test_ndcg_unf"] = per_user_hits(unfiltered, targets)
    return out


def _stack(runs: list[dict[str, np.ndarray]], key: str) -> np.ndarray:
    return np.stack([run[key] for run in runs])  # [S, U]


def _rows(arms, by_label, utility, served_top10, results, plan, num_items, replicates, seed) -> pd.DataFrame:
    none = arms[0]
    rows = []
    for arm in arms:
        ref = by_label.get(arm.reference, none) if arm.reference else none
        item, share, share_none = promoted_item(served_top10[arm.label], served_top10[none.label], num_items)
        attackers = sorted({(a, g) for (label, a, g) in results if label == arm.label}, key=lambda x: (x[1], x[0]))
        for attacker, generator in attackers:
            runs = results[arm.label, attacker, generator]
            ref_runs = results[ref.label, "naive", generator]
            u, ru = utility[arm.label], utility[ref.label]
            row = {"arm": arm.label, "family": arm.family, "model": arm.model, "output": arm.output.spec,
                   "lam": arm.lam, "rule": arm.rule, "reference": ref.label, "attacker": attacker,
                   "generator": generator, "seeds": len(runs)}
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

            ndcg, ref_ndcg = _stack(runs, "test_ndcg"), _stack(ref_runs, "test_ndcg")
            row["surrogate_test_hr10"] = float(_stack(runs, "test_hr").mean())
            row["surrogate_test_ndcg10"] = float(ndcg.mean())
            row["surrogate_test_hr10_unfiltered"] = float(_stack(runs, "test_hr_unf").mean())
            row["surrogate_test_ndcg10_unfiltered"] = float(_stack(runs, "test_ndcg_unf").mean())
            row.update(bootstrap_interval(ndcg, ref_ndcg, "drop", replicates, seed=seed)
                       .as_dict("surrogate_test_ndcg10_drop"))
            per_seed = 1.0 - ndcg.mean(axis=1) / max(ref_ndcg.mean(), 1e-12)  # [S]
            row["surrogate_test_ndcg10_drop_min_seed"] = float(per_seed.min())
            agr, ref_agr = _stack(runs, "test_agr10"), _stack(ref_runs, "test_agr10")
            row.update(bootstrap_interval(agr, None, "mean", replicates, seed=seed).as_dict("agr10_test"))
            row.update(bootstrap_interval(agr, ref_agr, "drop", replicates, seed=seed).as_dict("agr10_test_drop"))
            if "valid_ndcg" in runs[0] and "valid_ndcg" in ref_runs[0]:
                row["surrogate_valid_ndcg10"] = float(_stack(runs, "valid_ndcg").mean())
                row.update(bootstrap_interval(_stack(runs, "valid_ndcg"), _stack(ref_runs, "valid_ndcg"), "drop",
                                              replicates, seed=seed).as_dict("surrogate_valid_ndcg10_drop"))
            row.update({"promoted_item": item, "promoted_share": share, "promoted_share_none": share_none})
            row["verdict"] = verdict(row["surrogate_test_ndcg10_drop_low"], row["surrogate_test_ndcg10_drop_high"],
                                     is_reference=arm.label == ref.label)
            rows.append(row)
    table = pd.DataFrame(rows)
    table["worst"] = False
    for label, part in table.groupby("arm", sort=False):
        table.loc[part["surrogate_test_ndcg10_drop"].idxmin(), "worst"] = True
    return table


def verdict(low: float, high: float, is_reference: bool = False) -> str:
    """"protects" when the whole interval of the fall is above 0, "helps the attacker" when below, else "no effect"."""
    if is_reference:
        return "reference"
    if low > 0:
        return "protects"
    if high < 0:
        return "helps the attacker"
    return "no effect"


# ---- tables and the plot ------------------------------------------------------------------------------------
GRO_ARM_COLUMNS = {
    "arm": "arm", "rule": "zero-gradient rule", "lam": "λ", "attacker": "attacker", "generator": "generator",
    "seeds": "seeds", "target_test_hr10": "target HR@10", "target_test_ndcg10": "target NDCG@10",
    "target_test_hr10_unfiltered": "target HR@10 unfiltered",
    "target_test_ndcg10_unfiltered": "target NDCG@10 unfiltered",
    "surrogate_test_hr10": "surrogate HR@10", "surrogate_test_ndcg10": "surrogate NDCG@10",
    "surrogate_test_hr10_unfiltered": "surrogate HR@10 unfiltered",
    "surrogate_test_ndcg10_unfiltered": "surrogate NDCG@10 unfiltered", "agr10_test": "Agr@10",
    "promoted_share": "lists with the most-promoted item",
}


def _interval_text(row, key: str) -> str:
    return f"{100 * row[key]:.1f} [{100 * row[key + '_low']:.1f}, {100 * row[key + '_high']:.1f}]"


def gro_arms_table(table: pd.DataFrame) -> pd.DataFrame:
    """The GRO arms (λ = 0 control, then each rule and λ), every attacker, test figures in %, intervals in text."""
    part = table[table["family"].isin(["none", "gro-control", "gro"])]
    out = part[list(GRO_ARM_COLUMNS)].rename(columns=GRO_ARM_COLUMNS).copy()
    for column in list(GRO_ARM_COLUMNS.values())[6:]:
        out[column] = (100 * out[column].astype(float)).round(2)
    out["retention % [95% CI]"] = [_interval_text(row, "retention_test") for _, row in part.iterrows()]
    out["surrogate NDCG@10 fall % [95% CI]"] = [_interval_text(row, "surrogate_test_ndcg10_drop")
                                                for _, row in part.iterrows()]
    out["Agr@10 fall % [95% CI]"] = [_interval_text(row, "agr10_test_drop") for _, row in part.iterrows()]
    out["compared with"] = part["reference"].to_numpy()
    out["verdict"] = part["verdict"].to_numpy()
    return out.reset_index(drop=True)


def frontier_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per arm at its WORST attacker: retention, falls with intervals, Agr@10, promoted share, verdict."""
    worst = table[table["worst"]]
    return pd.DataFrame({
        "defense": worst["arm"].to_numpy(), "family": worst["family"].to_numpy(),
        "worst attacker": (worst["attacker"] + ", " + worst["generator"]).to_numpy(),
        "retention % [95% CI]": [_interval_text(row, "retention_test") for _, row in worst.iterrows()],
        "surrogate NDCG@10 fall % [95% CI]": [_interval_text(row, "surrogate_test_ndcg10_drop")
                                              for _, row in worst.iterrows()],
        "Agr@10 fall % [95% CI]": [_interval_text(row, "agr10_test_drop") for _, row in worst.iterrows()],
        "Agr@10 %": (100 * worst["agr10_test"]).round(1).to_numpy(),
        "promoted-item share %": (100 * worst["promoted_share"]).round(1).to_numpy(),
        "compared with": worst["reference"].to_numpy(), "verdict": worst["verdict"].to_numpy(),
    })


REFERENCE_FAMILIES = ("none", "gro-control")  # arms that other arms are measured against


@dataclass(frozen=True)
class FrontierTarget:
    """The issue's goal for a defense: keep users' NDCG@10 and take protection from the attacker."""

    min_retention: float = 0.99  # NDCG@10 retention, test, vs the arm's reference
    min_fall: float = 0.30  # worst-case fall of the surrogate's NDCG@10 (or of its Agr@10), test


def best_frontier_arm(table: pd.DataFrame, target: FrontierTarget = FrontierTarget()) -> dict:
    """Among arms (worst attacker) keeping ``min_retention``, the one with the largest protective fall.

    The fall counted is max(NDCG@10 fall, Agr@10 fall), each only when its
    interval is above 0. Returns {"arm", "retention", "fall", "fall_low",
    "measure", "target_met"}; "arm" is None when no arm keeps the retention.
    None and the λ = 0 control are references, not defenses, and are never
    chosen: fine-tuning alone can move Agr@10 (the surrogate copies a model that
    just changed), which is the control's noise, not protection.
    """
    worst = table[table["worst"] & ~table["family"].isin(REFERENCE_FAMILIES)]
    kept = worst[worst["retention_test"] >= target.min_retention]
    best = {"arm": None, "retention": float("nan"), "fall": 0.0, "fall_low": float("nan"), "measure": "",
            "target_met": False}
    for _, row in kept.iterrows():
        for measure, key in (("surrogate NDCG@10", "surrogate_test_ndcg10_drop"), ("Agr@10", "agr10_test_drop")):
            fall = float(row[key]) if row[f"{key}_low"] > 0 else 0.0
            if best["arm"] is None or fall > best["fall"]:
                best = {"arm": row["arm"], "retention": float(row["retention_test"]), "fall": fall,
                        "fall_low": float(row[f"{key}_low"]), "measure": measure,
                        "target_met": fall >= target.min_fall}
    return best


def read_frontier_rows(path: str | os.PathLike) -> pd.DataFrame:
    """frontier_all.csv as written: the arm called "None" stays the text "None" (pandas would read it as missing)."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def save_frontier_tables(table: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """frontier_all.csv (every attacker row), frontier.md (worst attacker per arm), gro_arms.csv|md."""
    out_dir = Path(out_dir)
    paths = {"all_csv": out_dir / "frontier_all.csv", "frontier_markdown": out_dir / "frontier.md",
             "gro_csv": out_dir / "gro_arms.csv", "gro_markdown": out_dir / "gro_arms.md"}
    write_text_atomic(paths["all_csv"], table.to_csv(index=False))
    write_text_atomic(paths["frontier_markdown"], markdown_table(frontier_table(table)))
    gro = gro_arms_table(table)
    write_text_atomic(paths["gro_csv"], gro.to_csv(index=False))
    write_text_atomic(paths["gro_markdown"], markdown_table(gro, float_format="{:.2f}"))
    return paths


_MARKERS = {"none": "s", "paper": "D", "output": "o", "gro-control": "P", "gro": "^", "combo": "v"}


def frontier_figure(table: pd.DataFrame, target: FrontierTarget = FrontierTarget(), title: str = "") -> PlotFigure:
    """Utility retention (x) vs the WORST attacker's surrogate NDCG@10 fall (y), 95% intervals on both.

    One point per arm; the shaded corner is the issue's target (retention ≥
    ``target.min_retention``, fall ≥ ``target.min_fall``). ``table``: every
    attacker row (``frontier_all.csv``), of which the ``worst`` ones are drawn.
    A plain ``Figure`` (no pyplot backend is switched): notebooks show it as is.
    """
    worst = table[table["worst"].astype(str).str.lower() == "true"]  # bool, or text read back from CSV
    fig = new_figure(7.5, 5.2)
    ax = fig.subplots()
    for family, part in worst.groupby("family", sort=False):
        x = 100 * part["retention_test"].to_numpy(dtype=float)
        y = 100 * part["surrogate_test_ndcg10_drop"].to_numpy(dtype=float)
        xerr = [x - 100 * part["retention_test_low"].to_numpy(dtype=float),
                100 * part["retention_test_high"].to_numpy(dtype=float) - x]
        yerr = [y - 100 * part["surrogate_test_ndcg10_drop_low"].to_numpy(dtype=float),
                100 * part["surrogate_test_ndcg10_drop_high"].to_numpy(dtype=float) - y]
        ax.errorbar(x, y, xerr=np.clip(xerr, 0, None), yerr=np.clip(yerr, 0, None), fmt=_MARKERS.get(family, "o"),
                    capsize=2, label=family, alpha=0.85)
        for label, xi, yi in zip(part["arm"], x, y):
            ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.fill_between([100 * target.min_retention, 101], 100 * target.min_fall, max(100, ax.get_ylim()[1]),
                    color="tab:green", alpha=0.12, label=f"target: ≥{target.min_retention:.0%} kept, "
                                                         f"≥{target.min_fall:.0%} fall")
    ax.set_xlabel("utility kept: served NDCG@10, % of the reference arm (test)")
    bottom = ax.get_ylim()[0]
    clipped = bottom < -100  # a fall below -100% is a surrogate twice as good: show the axis to there only
    ax.set_ylim(bottom=max(bottom, -100))
    ax.set_ylabel("protection: fall of the surrogate's NDCG@10, %\n(worst attacker, 95% CI"
                  + (", clipped at -100%)" if clipped else ")"))
    ax.set_title(title or "Defense frontier (upper right is better)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return fig  # constrained layout (new_figure): no tight_layout


def plot_frontier(table: pd.DataFrame, path: str | os.PathLike, target: FrontierTarget = FrontierTarget(),
                  title: str = "") -> Path:
    """Save ``frontier_figure`` as a PNG, atomically."""
    return save_png(frontier_figure(table, target, title), path)
