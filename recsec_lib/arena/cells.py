"""The unit of work of the matrix: one model × one generator × one seed, a pure function of its inputs.

A ``MatrixCell`` names everything its result depends on: the checkpoint of the
model behind the box, the dataset (name, folder, mirror: loaded in the worker),
the arms served by that model (their output defenses), the generator, the seed
and the attack set. ``run_cell`` queries the box, trains one surrogate per
distinct training set and returns every (arm, view)'s per-user figures; it
writes nothing, so cells can run in any order, in any process or machine, and
the driver writes the run folder.

Distinct training sets: each view's ``Plan`` against an arm's defense is
written in canonical terms (attack.views), so views and arms that see the same
data share one walk and one surrogate. The top-10 view of the undefended box,
the naive view of a box serving only the top 10, and the knowing view of a box
keeping the top 10 exact all train on the same lists, and get the same
surrogate: a defense can then differ from its reference only through what it
really changes.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

from recsec_lib.arena.attackers import AttackSet
from recsec_lib.attack.blackbox import BlackBoxRecommender
from recsec_lib.attack.generators import GENERATORS
from recsec_lib.attack.queries import AttackData
from recsec_lib.attack.surrogate import fit_surrogate
from recsec_lib.attack.views import VIEWS, Lists, Plan, training_data
from recsec_lib.common.executor import CellStore, ExecutorConfig, run_cells
from recsec_lib.defenses.output import DefendedBox, parse_output_defense, serve_attack_data
from recsec_lib.recommend.evaluation import ranked_lists
from recsec_lib.recommend.metrics import per_user_agreement, per_user_hits


_SAFE = re.compile(r"[^A-Za-z0-9._=,+-]")  # characters a cell key (a file name) may not hold


@dataclass(frozen=True)
class DatasetRef:
    """Where a worker finds the dataset: the processed cache is read, never rebuilt differently."""

    name: str
    data_dir: str = "data"
    mirror: str | None = None

    def load(self):
        from recsec_lib.data.prepare import prepare_dataset

        return prepare_dataset(self.name, data_dir=self.data_dir, mirror=self.mirror)


@dataclass(frozen=True, eq=False)
class MatrixCell:
    """One model × generator × seed, with every arm that model serves."""

    model_key: str  # the model's key in the matrix
    checkpoint: str  # its checkpoint file
    dataset: DatasetRef
    outputs: tuple[tuple[str, str], ...]  # (arm label, output defense spec) of the arms this model serves
    generator: str
    seed: int
    attack: AttackSet
    reference_top10: dict = field(default_factory=dict)  # split -> [U, 10] the undefended target's top 10
    with_valid: bool = False  # also score the validation split (GRO's λ is chosen on it)
    device: str = "cpu"
    checkpoint_digest: str = ""  # the model's content (``checkpoints.model_digest``): a retrained model is another cell
    version: str = ""  # the code's fingerprint: a finished cell of other code is never reused

    @property
    def key(self) -> str:
        """A stable name, also a file name: what the result depends on, hashed, after a readable prefix."""
        payload = {"model": self.model_key, "checkpoint": self.checkpoint, "digest": self.checkpoint_digest,
                   "dataset": asdict(self.dataset), "outputs": self.outputs, "generator": self.generator,
                   "seed": self.seed, "attack": asdict(self.attack), "with_valid": self.with_valid,
                   "device": self.device, "version": self.version}
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
        readable = _SAFE.sub("_", f"{self.model_key.replace('λ', 'lam')}-{self.generator}-seed{self.seed}")
        return f"{readable}-{digest}"


@dataclass
class CellResult:
    """Per (arm label, view): per-user figure arrays; per distinct surrogate: how its training ended."""

    figures: dict[tuple[str, str], dict[str, np.ndarray]]
    shared: dict[tuple[str, str], str]  # (arm label, view) -> the name of the surrogate it used
    surrogates: list[dict]  # one entry per distinct surrogate: name, epochs, stopped, seconds


def walk_key(plan: Plan, spec: str, steers: bool) -> tuple:
    """Which walk a plan needs: ("fixed",) when the generator ignores the answers, else by its steering."""
    if not steers:
        return ("fixed",)
    return ("exact", plan.steer) if plan.steer_exact else ("served", spec, plan.steer)


def data_key(walk: tuple, lists: Lists, spec: str) -> tuple:
    """Which training set: the walk, and the lists (served lists are the defense's own)."""
    return (walk, lists, spec if lists.served else "")


def run_cell(cell: MatrixCell) -> CellResult:
    """Query the cell's model with its generator and seed; one surrogate per distinct training set; score them."""
    device = torch.device(cell.device)
    attack = cell.attack
    dataset = cell.dataset.load()
    from recsec_lib.recommend.checkpoints import load_checkpoint

    model = load_checkpoint(cell.checkpoint, dataset=dataset, device=device).model
    box = BlackBoxRecommender(model, k=attack.k, filter_seen=attack.box_filter_seen, device=device)
    splits = {name: dataset.split(name) for name in (("valid", "test") if cell.with_valid else ("test",))}
    walker_cls = GENERATORS.get(cell.generator)
    steers = "steer" in {f.name for f in fields(walker_cls)}
    walks: dict[tuple, AttackData] = {}
    scored: dict[tuple, dict[str, np.ndarray]] = {}
    names: dict[tuple, str] = {}
    result = CellResult({}, {}, [])

    def walk(key: tuple, spec: str) -> AttackData:
        if key not in walks:
            queried, steer = box, 0
            if key[0] == "served":
                defense = parse_output_defense(spec)
                queried = DefendedBox(box, defense, seed=cell.seed)
                steer = 0 if key[2] >= queried.k else key[2]
            elif key[0] == "exact":
                steer = 0 if key[1] >= attack.k else key[1]
            walker = GENERATORS.build(cell.generator, **({"steer": steer} if steers else {}))
            walks[key] = walker.collect(queried, attack.budget_queries, attack.seq_len, cell.seed,
                                        account=f"attacker/{cell.generator}/{cell.seed}").training
        return walks[key]

    for label, spec in cell.outputs:
        defense = parse_output_defense(spec)
        knowledge = defense.knowledge(attack.k)
        for view in attack.views:
            plan = VIEWS.get(view)().plan(knowledge)
            wkey = walk_key(plan, spec, steers)
            dkey = data_key(wkey, plan.lists, spec)
            if dkey not in scored:
                data = walk(wkey, spec)
                if plan.lists.served and wkey[0] != "served":  # answers collected undefended: serve them now
                    data = serve_attack_data(data, defense, seed=cell.seed)
                training = training_data(data, plan.lists)
                started = time.perf_counter()
                surrogate, info = _fit(training, attack, cell.seed, plan.lists.order_weight, model.max_len, device)
                names[dkey] = f"{label} · {view}"
                result.surrogates.append({"surrogate": names[dkey], "walk": list(map(str, wkey)),
                                          "lists": asdict(plan.lists), "served_spec": spec if plan.lists.served else "",
                                          **info, "seconds": round(time.perf_counter() - started, 2)})
                scored[dkey] = _score(surrogate, splits, cell.reference_top10, device)
                scored[dkey]["time_capped"] = np.array([info["stopped"] == "time_limit"])
            result.figures[label, view] = scored[dkey]
            result.shared[label, view] = names[dkey]
    return result


def _fit(training: AttackData, attack: AttackSet, seed: int, order_weight: float, max_len: int, device):
    """A fresh ``attack.arch`` surrogate distilled with the attack seed; (model, how its training ended)."""
    from recsec_lib.models.registry import build_model

    settings = attack.surrogate_settings(seed, order_weight)
    torch.manual_seed(seed)
    surrogate = build_model(attack.arch, num_items=training.num_items, max_len=max(max_len, attack.seq_len))
    fitted = fit_surrogate(training, surrogate, settings, device=device, progress=False)
    return fitted.model, {"epochs_run": len(fitted.history), "best_epoch": fitted.best_epoch,
                          "stopped": fitted.stopped}


def _score(surrogate, splits, reference_top10, device) -> dict[str, np.ndarray]:
    """Per-user figures of one surrogate: test (filtered, unfiltered, Agr@10) and, if asked, validation."""
    out = {}
    for name, (inputs, targets) in splits.items():
        filtered, unfiltered = ranked_lists(surrogate, inputs, 10, device)
        out[f"{name}_hr"], out[f"{name}_ndcg"] = per_user_hits(filtered, targets)
        out[f"{name}_agr10"] = per_user_agreement(filtered, reference_top10[name])
        if name == "test":
            out["test_hr_unf"], out["test_ndcg_unf"] = per_user_hits(unfiltered, targets)
    return out


def executor_runner(config: ExecutorConfig = ExecutorConfig(), store: CellStore | None = None, desc: str = "cells"):
    """A cell runner for ``matrix.evaluate``: the cells through ``common.executor.run_cells`` (serially, on a
    process pool or on Ray, as ``config`` says), results in the cells' order; with ``store``, finished cells are
    kept on disk as they arrive and a rerun computes only the missing ones."""

    def run(cells, function, on_done=None) -> list:
        results = run_cells(function, cells, config, desc=desc, store=store, on_done=on_done)
        return results.values()

    return run


serial = executor_runner()  # the default: one cell after another, in this process


__all__ = ("CellResult", "DatasetRef", "MatrixCell", "executor_runner", "run_cell", "serial")
