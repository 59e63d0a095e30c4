"""Evidence for the ownership watermark on ML-1M: its cost, who it catches, whom it clears, the knowing attacker.

    OMP_NUM_THREADS=1 RECSEC_DATA_MIRROR=/work/shared/data nice -n 10 .venv/bin/python \\
        benchmarks/watermark_evidence.py --target /work/ckpt/sasrec_ml1m.pt --part design

Parts (each one a separate run of about 15 minutes on a busy 2-core machine; every
trained piece is cached in --work-dir, so a part rerun prints its figures again cheaply):

* ``design``      — key/embedding variants: NDCG@10 kept (interval over test users), embedding time against an
                    undefended epoch, the owner's white-box hit rate at several context lengths, and whether an
                    autoregressive attacker's surrogate carries the mark (p-value, Agr@10);
* ``attacks``     — the chosen design against the random, autoregressive, chain and chain-mix attackers (SASRec
                    surrogates, fixed epochs);
* ``robustness``  — a NARM surrogate, a surrogate fine-tuned afterwards on benign-like sequences (1 and 3 epochs),
                    the marked box behind top-10-only and tail-resample:10 (itself, and surrogates extracted
                    through it by an attacker who knows the output defense);
* ``independent`` — models that never saw the watermark (other seeds, architectures, user halves, surrogates of
                    the unmarked target) must all be cleared: their p-values;
* ``knowing``     — an attacker who knows the scheme but not the key drops rare items from its queries and lists.

Every verification goes through a top-k box (``answer_batch``) with the key's watermark and decoy queries and the
exact test of ``recsec_lib.watermark.statistics`` (claim only at p < 0.01). The key seeds here are fixed so that
the figures are reproducible; a real owner draws a fresh secret seed (``recsec watermark embed`` does).
Results accumulate in <work-dir>/results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from recsec_lib.attack.agreement import evaluate_extraction
from recsec_lib.attack.blackbox import BlackBoxRecommender
from recsec_lib.attack.queries import AttackData
from recsec_lib.attack.surrogate import SurrogateSettings, fit_surrogate
from recsec_lib.common.files import write_json_atomic
from recsec_lib.data.prepare import prepare_dataset
from recsec_lib.defenses.output import DefendedBox, parse_output_defense
from recsec_lib.models.registry import build_model
from recsec_lib.recommend.checkpoints import load_checkpoint, save_checkpoint
from recsec_lib.recommend.training import TrainConfig, time_training_epoch, train_model
from recsec_lib.attack.generators import GENERATORS
from recsec_lib.watermark.cost import per_user_ndcg, utility_retention
from recsec_lib.watermark.embed import EmbedSettings, embed_watermark, step_seconds, watermark_rank
from recsec_lib.watermark.key import KeySettings, load_key, make_key, save_key
from recsec_lib.watermark.knowing import drop_rare_items, fine_tune
from recsec_lib.watermark.verify import verify_ownership

KEY_SEED = 20250601  # fixed for reproducibility only (see the docstring)
# Design variants: (key settings, embed settings). --variant picks the one the other parts use.
VARIANTS = {
    # one more epoch of the target's own training with 64 watermark rows per step
    "own-rare": (KeySettings(num_pairs=256, decoys=40, continuation_pool="rare"),
                 EmbedSettings(objective="own", watermark_rows=64)),
    "own-all": (KeySettings(num_pairs=256, decoys=40, continuation_pool="all"),
                EmbedSettings(objective="own", watermark_rows=64)),
    # self-distillation from the unmarked target with 256 watermark rows per step
    "teacher-rare": (KeySettings(num_pairs=256, decoys=40, continuation_pool="rare"),
                     EmbedSettings(objective="teacher", watermark_rows=256)),
    "teacher-all": (KeySettings(num_pairs=256, decoys=40, continuation_pool="all"),
                    EmbedSettings(objective="teacher", watermark_rows=256)),
}


class Evidence:
    def __init__(self, args):
        self.args = args
        self.work = args.work_dir
        self.work.mkdir(parents=True, exist_ok=True)
        self.dataset = prepare_dataset("ml-1m", data_dir=args.data_dir, mirror=args.mirror)
        self.target = load_checkpoint(args.target, dataset=self.dataset).model
        state = (load_checkpoint(args.target).training_state or {}).get("train_config", {})
        self.windows = state.get("windows", "newest")
        self.results_path = self.work / "results.json"
        self.results = json.loads(self.results_path.read_text()) if self.results_path.exists() else {}
        self.budget, self.seq_len, self.chains = args.budget, args.seq_len, args.chains
        self.surrogate_settings = SurrogateSettings(epochs=args.surrogate_epochs, patience=0, min_epochs=0,
                                                    seed=args.seed)
        self._ndcg_reference = None

    # ---- caching --------------------------------------------------------------------------------
    def record(self, section: str, name: str, row: dict) -> None:
        """Merge one row into results.json (re-read first: parts may run side by side)."""
        if self.results_path.exists():
            self.results = json.loads(self.results_path.read_text())
        self.results.setdefault(section, {})[name] = row
        write_json_atomic(self.results_path, self.results)

    def reference_ndcg(self) -> np.ndarray:
        if self._ndcg_reference is None:
            self._ndcg_reference = per_user_ndcg(self.target, self.dataset)
        return self._ndcg_reference

    def marked(self, variant: str):
        """(key, marked model, embedding record) of a design variant, cached."""
        key_settings, embed_settings = VARIANTS[variant]
        embed_settings = embed_settings.with_overrides(windows=self.windows, seed=self.args.seed)
        key_path, model_path = self.work / f"key_{variant}.json", self.work / f"marked_{variant}.pt"
        info_path = self.work / f"marked_{variant}.json"
        if key_path.exists() and model_path.exists() and info_path.exists():
            return load_key(key_path), load_checkpoint(model_path).model, json.loads(info_path.read_text())
        key = make_key(self.target, self.dataset, KEY_SEED, key_settings)
        torch.manual_seed(self.args.seed)
        result = embed_watermark(self.target, self.dataset, key, embed_settings)
        plain, mark = step_seconds(self.target, self.dataset, key, embed_settings, steps=16)
        epoch = time_training_epoch(self.target, self.dataset, windows=self.windows, max_batches=16)
        info = {"embed_seconds": result.seconds, "undefended_epoch_seconds": epoch, "history": result.history,
                "plain_step_seconds": plain, "embed_step_seconds": mark,
                "cost_in_undefended_epochs": embed_settings.epochs * mark / plain,
                "key_settings": dataclasses.asdict(key_settings), "embed_settings": dataclasses.asdict(embed_settings)}
        save_key(key_path, key)
        save_checkpoint(model_path, result.model, None, self.dataset, metrics={"watermark": variant})
        write_json_atomic(info_path, info)
        return key, result.model, info

    def attack(self, name: str, box, tag: str, seed: int) -> AttackData:
        path = self.work / f"attack_{tag}_{name}_{seed}.npz"
        if path.exists():
            with np.load(path) as saved:
                return AttackData(saved["sequences"], saved["answers"], saved["generator"].item(),
                                  int(saved["num_items"]), int(saved["seed"]), saved["answered"])
        fields = GENERATORS.get(name).__dataclass_fields__
        parameters = {key: value for key, value in {"chains": self.chains, "min_length": min(20, self.seq_len)}.items()
                      if key in fields}
        data = GENERATORS.build(name, **parameters).collect(box, self.budget, self.seq_len, seed=seed).training
        np.savez_compressed(path, sequences=data.sequences, answers=data.answers, generator=np.array(data.generator),
                            num_items=np.array(data.num_items), seed=np.array(data.seed),
                            answered=data.answered if data.answered is not None
                            else np.ones(data.sequences.shape, bool))
        return data

    def surrogate(self, data: AttackData, tag: str, arch: str = "sasrec"):
        path = self.work / f"surrogate_{tag}.pt"
        if path.exists():
            return load_checkpoint(path).model
        torch.manual_seed(self.args.seed)
        model = build_model(arch, self.dataset.num_items, self.target.max_len)
        fit = fit_surrogate(data, model, self.surrogate_settings, progress=False)
        save_checkpoint(path, fit.model, None, self.dataset, metrics={"history": fit.history})
        return fit.model

    def verify(self, box_or_model, key, k: int = 100):
        box = box_or_model if hasattr(box_or_model, "answer_batch") else BlackBoxRecommender(box_or_model, k=k)
        return verify_ownership(box, key)

    def agreement(self, reference, model) -> float:
        return evaluate_extraction(reference, model, self.dataset, ks=(10,))["agr@10"]

    def report(self, section: str, name: str, key, suspect, reference=None, extra: dict | None = None) -> dict:
        """Verify ``suspect`` (model or box), measure its Agr@10 with ``reference`` when given; record and print."""
        tick = time.perf_counter()
        result = self.verify(suspect, key)
        row = {**result.as_dict(), **(extra or {})}
        if reference is not None:
            row["agr@10"] = self.agreement(reference, suspect)
        row["seconds"] = round(time.perf_counter() - tick, 1)
        self.record(section, name, row)
        agr = f"Agr@10 {row['agr@10']:.3f}; " if "agr@10" in row else ""
        print(f"[{section}] {name}: {agr}{result.summary()}", flush=True)
        return row


# ---- parts -------------------------------------------------------------------------------------------
def part_design(ev: Evidence) -> None:
    reference = ev.reference_ndcg()
    print(f"unmarked target: test NDCG@10 {reference.mean():.4f}")
    for variant in ev.args.variants:
        key, marked, info = ev.marked(variant)
        kept = utility_retention(per_user_ndcg(marked, ev.dataset), reference)
        white = {}
        for context in (0, 10, 50, 150):
            probe = key.with_overrides(context_len=context)
            white[f"rank_hit@10_context{context}"] = float((watermark_rank(marked, probe) < 10).mean())
            white[f"decoy_rank_hit@10_context{context}"] = float((watermark_rank(marked, probe, 1) < 10).mean())
        clean = {"clean_target_" + k: v for k, v in ev.verify(ev.target, key).as_dict().items()
                 if k in ("hits", "decoy_hits", "p_value")}
        box = BlackBoxRecommender(marked, k=100)
        own = ev.verify(box, key)
        data = ev.attack("autoregressive", box, f"design-{variant}", seed=ev.args.seed)
        surrogate = ev.surrogate(data, f"design-{variant}-autoregressive")
        stolen = ev.verify(surrogate, key)
        row = {**kept.as_dict("ndcg_kept"), "embed_seconds": info["embed_seconds"],
               "undefended_epoch_seconds": info["undefended_epoch_seconds"],
               "time_ratio": info["embed_seconds"] / info["undefended_epoch_seconds"],
               "cost_in_undefended_epochs": info["cost_in_undefended_epochs"], **white, **clean,
               "marked_box_p": own.p_value, "marked_box_hits": own.hits,
               "surrogate_autoregressive_p": stolen.p_value, "surrogate_autoregressive_hits": stolen.hits,
               "surrogate_autoregressive_decoy_hits": stolen.decoy_hits, "queries": stolen.queries,
               "decoy_queries": stolen.decoy_queries,
               "surrogate_autoregressive_agr@10": ev.agreement(marked, surrogate)}
        ev.record("design", variant, row)
        print(f"[design] {variant}: NDCG@10 kept {kept.point:.4f} ({kept.low:.4f}..{kept.high:.4f}); embedding "
              f"{info['embed_seconds']:.0f} s (an undefended epoch timed after it: "
              f"{info['undefended_epoch_seconds']:.0f} s, ratio {row['time_ratio']:.2f}); step times in alternation "
              f"give {row['cost_in_undefended_epochs']:.2f} undefended epochs; white-box hit@10 by context "
              + ", ".join(f"{c}: {white[f'rank_hit@10_context{c}']:.2f}/{white[f'decoy_rank_hit@10_context{c}']:.3f}"
                          for c in (0, 10, 50, 150))
              + f"; unmarked target p {clean['clean_target_p_value']:.3g}; marked box: {own.summary()}; "
              f"autoregressive surrogate (Agr@10 {row['surrogate_autoregressive_agr@10']:.3f}): {stolen.summary()}",
              flush=True)


def part_attacks(ev: Evidence) -> None:
    key, marked, _ = ev.marked(ev.args.variant)
    box = BlackBoxRecommender(marked, k=100)
    for name in ev.args.attackers:
        data = ev.attack(name, box, ev.args.variant, seed=ev.args.seed)
        surrogate = ev.surrogate(data, f"{ev.args.variant}-{name}")
        ev.report("attacks", name, key, surrogate, reference=marked,
                  extra={"attack_queries": ev.args.budget, "training_rows": data.num_sequences})


def part_robustness(ev: Evidence) -> None:
    key, marked, _ = ev.marked(ev.args.variant)
    box = BlackBoxRecommender(marked, k=100)
    data = ev.attack("autoregressive", box, ev.args.variant, seed=ev.args.seed)
    narm = ev.surrogate(data, f"{ev.args.variant}-autoregressive-narm", arch="narm")
    ev.report("robustness", "narm surrogate (autoregressive)", key, narm, reference=marked)
    # fine-tuned afterwards on benign-like sequences: the training part of every other user
    base = ev.surrogate(data, f"{ev.args.variant}-autoregressive")
    benign = ev.dataset.train_sequences()[1::2]
    tuned = build_model("sasrec", ev.dataset.num_items, ev.target.max_len)
    tuned.load_state_dict(base.state_dict())
    for epoch in range(1, 4):
        path = ev.work / f"surrogate_{ev.args.variant}-autoregressive-finetuned{epoch}.pt"
        if path.exists():
            tuned = load_checkpoint(path).model
        else:
            fine_tune(tuned, benign, epochs=1, seed=ev.args.seed + epoch)
            save_checkpoint(path, tuned, None, ev.dataset)
        if epoch in (1, 3):
            ev.report("robustness", f"autoregressive surrogate fine-tuned {epoch} epoch(s) on benign-like sequences",
                      key, tuned, reference=marked)
    for spec in ("top:10", "tail-resample:10"):
        defense = parse_output_defense(spec)
        defended = DefendedBox(BlackBoxRecommender(marked, k=100), defense, seed=ev.args.seed)
        ev.report("robustness", f"marked box behind {spec}", key, defended)
        served = ev.attack("autoregressive", DefendedBox(BlackBoxRecommender(marked, k=100), defense,
                                                         seed=ev.args.seed), f"{ev.args.variant}-{spec}",
                           seed=ev.args.seed)
        # the attacker knows the defense: behind tail-resample:10 it trains on ranks 1..10 only
        view = AttackData(served.sequences, np.ascontiguousarray(served.answers[:, :, :10]), served.generator,
                          served.num_items, served.seed, served.answered)
        surrogate = ev.surrogate(view, f"{ev.args.variant}-{spec}-autoregressive")
        ev.report("robustness", f"surrogate extracted through {spec} (autoregressive, knowing)", key, surrogate,
                  reference=marked)


def half_users(dataset, half: int):
    """The dataset restricted to every other user (half 0: even users, 1: odd users)."""
    users = np.arange(half, dataset.num_users, 2)
    seqs = [dataset.sequence(u) for u in users]
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    return dataclasses.replace(dataset, user_raw_ids=dataset.user_raw_ids[users], items_flat=np.concatenate(seqs),
                               offsets=offsets, fingerprint=f"{dataset.fingerprint}-half{half}")


INDEPENDENT = (  # (name, architecture, seed, user half or None, epochs)
    ("sasrec seed 1", "sasrec", 1, None, 2), ("sasrec seed 2", "sasrec", 2, None, 2),
    ("sasrec even users", "sasrec", 3, 0, 3), ("sasrec odd users", "sasrec", 4, 1, 3),
    ("narm seed 1", "narm", 1, None, 2), ("narm odd users", "narm", 2, 1, 3),
    ("meanemb seed 1", "meanemb", 1, None, 3), ("meanemb even users", "meanemb", 2, 0, 4),
    ("bert4rec seed 1", "bert4rec", 1, None, 2),
)


def independent_model(ev: Evidence, name: str, arch: str, seed: int, half: int | None, epochs: int):
    """A few-epoch model that never saw the watermark (cached)."""
    path = ev.work / f"independent_{name.replace(' ', '_')}.pt"
    if path.exists():
        return load_checkpoint(path).model
    data = ev.dataset if half is None else half_users(ev.dataset, half)
    torch.manual_seed(seed)
    model = build_model(arch, data.num_items, ev.target.max_len)
    tick = time.perf_counter()
    model = train_model(model, data, TrainConfig(epochs=epochs, patience=0, seed=seed, weight_decay=0.0,
                                                 windows="newest"), progress=False).model
    save_checkpoint(path, model, None, data, metrics={"epochs": epochs})
    print(f"[independent] trained {name} ({epochs} epochs) in {time.perf_counter() - tick:.0f} s", flush=True)
    return model


def part_train_independent(ev: Evidence) -> None:
    """Only train the independent models (they need no key): can run before the target is final."""
    for spec in INDEPENDENT:
        independent_model(ev, *spec)


def part_independent(ev: Evidence) -> None:
    key, marked, _ = ev.marked(ev.args.variant)
    ev.report("independent", "unmarked target", key, ev.target)
    for name, arch, seed, half, epochs in INDEPENDENT:
        model = independent_model(ev, name, arch, seed, half, epochs)
        ev.report("independent", name, key, model, extra={"arch": arch, "epochs": epochs})
    clean_box = BlackBoxRecommender(ev.target, k=100)
    for name in ("random", "autoregressive", "chain-mix"):
        data = ev.attack(name, clean_box, "unmarked", seed=ev.args.seed)
        surrogate = ev.surrogate(data, f"unmarked-{name}")
        ev.report("independent", f"{name} surrogate of the unmarked target", key, surrogate, reference=ev.target)
    p_values = sorted(row["p_value"] for row in ev.results["independent"].values())
    print(f"[independent] {len(p_values)} models, claims at p < 0.01: {sum(p < 0.01 for p in p_values)}; "
          f"p-values: {', '.join(f'{p:.3g}' for p in p_values)}")


def part_knowing(ev: Evidence) -> None:
    key, marked, _ = ev.marked(ev.args.variant)
    box = BlackBoxRecommender(marked, k=100)
    for name in ev.args.attackers:
        data = ev.attack(name, box, ev.args.variant, seed=ev.args.seed)
        for fraction in ev.args.rare_fractions:
            stripped, rare = drop_rare_items(data, fraction)
            surrogate = ev.surrogate(stripped, f"{ev.args.variant}-{name}-droprare{fraction:g}")
            triggers, continuations = key.pairs(0)
            ev.report("knowing", f"{name}, drops the {fraction:.0%} rarest items", key, surrogate, reference=marked,
                      extra={"fraction": fraction, "continuations_judged_rare": float(np.isin(continuations, rare).mean()),
                             "triggers_judged_rare": float(np.isin(triggers, rare).mean())})


PARTS = {"design": part_design, "attacks": part_attacks, "robustness": part_robustness,
         "train-independent": part_train_independent, "independent": part_independent, "knowing": part_knowing}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=Path, required=True, help="the unmarked target checkpoint (ML-1M)")
    parser.add_argument("--part", choices=tuple(PARTS), required=True)
    parser.add_argument("--work-dir", type=Path, default=Path("/work/ckpt/watermark/evidence"))
    parser.add_argument("--data-dir", type=Path, default=Path("/work/ckpt/data"))
    parser.add_argument("--mirror", type=Path, default=os.environ.get("RECSEC_DATA_MIRROR"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=tuple(VARIANTS),
                        help="design variants the design part measures")
    parser.add_argument("--variant", default="teacher-all", choices=tuple(VARIANTS),
                        help="the design the other parts use")
    parser.add_argument("--attackers", nargs="+", default=["random", "autoregressive", "chain", "chain-mix"])
    parser.add_argument("--rare-fractions", type=float, nargs="+", default=[0.5])
    parser.add_argument("--budget", type=int, default=50_000, help="queries per attacker")
    parser.add_argument("--seq-len", type=int, default=100, help="walk length of the every-prefix attackers")
    parser.add_argument("--chains", type=int, default=20, help="chains of the chain attackers")
    parser.add_argument("--surrogate-epochs", type=int, default=10, help="fixed surrogate epochs (best held-out kept)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    started = time.perf_counter()
    PARTS[args.part](Evidence(args))
    print(f"part {args.part} took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
