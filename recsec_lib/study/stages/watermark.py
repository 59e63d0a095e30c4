"""Watermark stage: prove a copy. Embed a secret watermark in the target, then verify it through top-k boxes only.

Reads the train stage's target ``<run>/train/<target_model>.pt`` (and its training rows' windows). The
computations live in ``recsec_lib.watermark`` (key, embedding, the exact test, black-box verification, the
knowing attacker's strip attempts); the attackers are the registered ones (``attack.generators.GENERATORS`` ×
``attack.views.VIEWS``); this module only orchestrates. Writes into ``<run>/watermark/``:

* ``key.json`` — the watermark key (the owner's secret: whoever holds it can verify, and strip the mark knowingly);
* ``marked.pt`` — the watermarked target (what the box serves in this stage);
* ``utility.csv`` — NDCG@10 (full ranking, seen items filtered) of the unmarked and the marked target on the test
  users, and the share kept with its 95% paired-bootstrap interval over test users;
* ``verification.csv`` — one row per suspect: its group (``marked``: the marked box itself; ``served``: the marked
  box behind an output defense; ``surrogate``: extracted through the marked box by a registered generator × view;
  ``knowing``: an attacker who knows the scheme but not the key tries to strip the mark; ``independent``: a model
  that never saw the mark), its Agr@10 with the marked target, the hits of the watermark's and the decoys' queries,
  the exact p-value and whether ownership is claimed (p < alpha);
* ``p_values.png`` — the p-values by group (stolen copies against independent models);
* ``metrics.json`` — all figures, settings, timings; headline keys merged.

Every verification sends the key's watermark and decoy queries to a top-k box (``answer_batch``) and applies the
exact test of ``watermark.statistics``; nothing reads a suspect's weights. Surrogates and independent models stop
on fixed epochs with their seeds (never on the clock). Headline figures take the worst case: the largest p-value
of any stolen copy, the smallest of any independent model.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsec_lib.arena.cells import data_key, walk_key
from recsec_lib.attack.agreement import evaluate_extraction
from recsec_lib.attack.blackbox import BlackBoxRecommender
from recsec_lib.attack.generators import GENERATORS
from recsec_lib.attack.queries import AttackData
from recsec_lib.attack.surrogate import SurrogateSettings, fit_surrogate
from recsec_lib.attack.views import VIEWS, training_data, undefended
from recsec_lib.common import plots
from recsec_lib.common.files import write_csv_atomic
from recsec_lib.common.settings import SettingsBase
from recsec_lib.defenses.output import DefendedBox, parse_output_defense
from recsec_lib.models.registry import MODEL_NAMES, build_model
from recsec_lib.recommend.checkpoints import load_checkpoint, read_checkpoint_payload, save_checkpoint
from recsec_lib.recommend.training import TrainConfig, stored_trajectory, train_model
from recsec_lib.study import runs
from recsec_lib.study.stages.context import StudyContext, seed_everything
from recsec_lib.watermark.cost import per_user_ndcg, utility_retention
from recsec_lib.watermark.embed import EmbedSettings, embed_watermark, step_seconds
from recsec_lib.watermark.key import POOLS, KeySettings, make_key, save_key
from recsec_lib.watermark.knowing import drop_rare_items, fine_tune
from recsec_lib.watermark.plots import p_value_figure
from recsec_lib.watermark.verify import VerifySettings, verify_ownership

STAGE = "watermark"
log = logging.getLogger(__name__)
STOLEN = ("surrogate", "knowing")  # groups of models derived from the marked box


@dataclass(frozen=True)
class Settings(SettingsBase):
    target_model: str = "sasrec"  # reads <run>/train/<target_model>.pt
    k: int = 100  # returned list length of the black box
    # the key (its seed is the secret; 0 = the run's seed + 1, reproducible; a real owner draws a fresh one)
    key_seed: int = 0
    num_pairs: int = 256  # watermark pairs (and verification queries)
    decoys: int = 40  # decoy keys the exact test compares the real hits with
    context_len: int = 0  # verification queries hold 0..context_len random items before the trigger
    trigger_pool: str = "all"  # all | rare (the items the unmarked target recommends least)
    # all | rare. "rare" (the half of the catalogue the unmarked target recommends least): on ML-1M (run study1206c's
    # target, lr 5e-3) the mark took with NDCG@10 kept 99.5% [98.7, 100.3], the marked box's decoys hit 1 in 10,240
    # and an autoregressive surrogate was verified (p 1e-10); with "all" continuations (popular items, in many
    # histories, and the output layer is tied to the input embedding) the same lr kept only ~91-93%. A knowing
    # attacker may drop rare items: the stage measures whether that strips the mark.
    continuation_pool: str = "rare"
    rare_fraction: float = 0.5  # share of the catalogue a "rare" pool keeps
    # the embedding (a fine-tuning of the trained target; see watermark.embed)
    embed_epochs: int = 1
    embed_batch_size: int = 128
    watermark_rows: int = 256  # watermark rows per step
    # Adam's step on the continuations' rows: at 1e-3 one epoch (~78 steps on ML-1M) moved them too little and the
    # mark did not take (run study1206c: the marked box 0 of 256, p = 1); 1e-2 took harder but kept 98.8% [97.7, 99.8]
    embed_lr: float = 5e-3
    max_context: int = 20  # random items before the trigger in a watermark row
    objective: str = "teacher"  # teacher (stay close to the unmarked target) | own (its own loss)
    trainable: str = "continuations"  # continuations | items | all: what the embedding may move
    guard_rank: int = 20  # ordinary users' lists keep the key's items out of their top guard_rank (0 = no guard)
    cost_steps: int = 8  # ordinary and embedding steps timed in alternation for the cost ratio
    # the decision
    alpha: float = 0.01  # claim ownership only when p < alpha
    cutoff: int = 10  # a hit = the continuation among the first `cutoff` returned ids
    min_agreement: float = 0.3  # the verified share counts the stolen copies with at least this Agr@10
    # the attackers (surrogates stop on `surrogate_epochs` with each attack's seed)
    generators: tuple[str, ...] = ("random", "autoregressive", "chain", "chain-mix")  # attack.generators
    views: tuple[str, ...] = ("naive", "top-10", "knowing", "drop-promoted")  # attack.views
    attack_seeds: tuple[int, ...] = (0,)
    attack_sequences: int = 250  # walks of the every-prefix attackers (sets the budget)
    attack_seq_len: int = 200  # queries per walk
    chain_count: int = 20  # chain attackers: this many long walks
    surrogate_arch: str = "sasrec"
    surrogate_epochs: int = 20
    other_archs: tuple[str, ...] = ("narm",)  # surrogates of another architecture, on other_arch_generator's data
    other_arch_generator: str = "autoregressive"  # the generator whose naive data they learn from
    # the attacker who knows the scheme but not the key (watermark.knowing), on the naive data of these generators
    knowing_generators: tuple[str, ...] = ("autoregressive",)
    rare_fractions: tuple[float, ...] = (0.5,)  # drops the least seen share of items from its queries and lists
    fine_tune_epochs: tuple[int, ...] = (1,)  # fine-tunes its surrogate on benign-like sequences (every other user)
    output_defenses: tuple[str, ...] = ("top:10", "tail-resample:10")  # the marked box verified behind these
    # models that never saw the mark: "arch:seed" or "arch:seed:even|odd" (trained on half of the users), plus the
    # train stage's other models and surrogates of the unmarked target by `unmarked_generators`
    independent: tuple[str, ...] = ("sasrec:1", "sasrec:2", "sasrec:3:even", "sasrec:4:odd", "narm:1",
                                    "narm:2:odd", "meanemb:1", "bert4rec:1")
    independent_epochs: int = 3
    unmarked_generators: tuple[str, ...] = ("random", "autoregressive", "chain-mix")
    cpu_threads: int = 0  # torch CPU threads during the stage; 0 = torch's default

    PROFILES = {
        "smoke": {"k": 10, "num_pairs": 16, "decoys": 8, "embed_epochs": 4, "embed_batch_size": 32,
                  "watermark_rows": 32, "max_context": 5, "cost_steps": 2, "generators": ("random", "autoregressive"),
                  "views": ("naive", "top-10"), "attack_sequences": 20, "attack_seq_len": 8, "chain_count": 4,
                  "surrogate_epochs": 2, "output_defenses": ("top:5",), "independent": ("sasrec:1", "meanemb:2:odd"),
                  "independent_epochs": 1, "unmarked_generators": ("random",), "cpu_threads": 1},
        # Sized for about 13-14 minutes on 2 idle cores (ML-1M). Measured since: run study1206c's stage took 6,630 s
        # while the machine was shared with a test suite and a GRO run (embed 320 s, surrogates 5,595 s); alone, on one
        # thread, its embedding takes ~65 s and an autoregressive surrogate ~52 s. Phase 1's ML-1M runs on the shared
        # machine (/work/ckpt/watermark/*.log: a SASRec epoch 450 s there against the ~35 s the lead measured on 2 idle
        # cores, a factor of ~13) give, divided by 13: embedding one epoch ~55 s; a 2-epoch SASRec ~53 s, NARM ~113 s,
        # MeanEmbedding ~76 s, BERT4Rec ~86 s on every user, half that on half of the users; a SEAT zoo surrogate of 20
        # epochs on 40,000 queries ~20 s (seat stage). So: 4 generators x 3 distinct view plans (naive = knowing on an
        # undefended box) + 2 knowing-scheme copies + 2 unmarked surrogates = 16 surrogates ~5.5 min; 8 independent
        # models (7 on half of the users) ~4.7 min; ~30 verifications of 10,752 queries ~2 min; embedding, its timing
        # and NDCG ~1.5 min. 12 independent models with the target and the baseline.
        "cpu": {"attack_sequences": 200,
                "independent": ("sasrec:1", "sasrec:2:even", "sasrec:3:odd", "narm:1:odd", "narm:2:even",
                                "meanemb:1:even", "meanemb:2:odd", "bert4rec:1:even"),
                "independent_epochs": 2, "unmarked_generators": ("random", "autoregressive")},
        "full": {"attack_seeds": (0, 1, 2), "attack_sequences": 5000, "surrogate_epochs": 100,
                 "rare_fractions": (0.25, 0.5), "fine_tune_epochs": (1, 3), "independent_epochs": 20,
                 "independent": ("sasrec:1", "sasrec:2", "sasrec:3:even", "sasrec:4:odd", "narm:1", "narm:2:odd",
                                 "meanemb:1", "meanemb:2:even", "bert4rec:1", "bert4rec:2:odd")},
    }

    def __post_init__(self) -> None:
        for name in ("trigger_pool", "continuation_pool"):
            if getattr(self, name) not in POOLS:
                raise ValueError(f"watermark setting {name!r} must be one of {POOLS}, got {getattr(self, name)!r}")
        for name in ("k", "num_pairs", "decoys", "embed_epochs", "cutoff", "attack_sequences", "attack_seq_len",
                     "surrogate_epochs", "independent_epochs", "cost_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"watermark setting {name!r} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"watermark setting 'alpha' must be in (0, 1), got {self.alpha}")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ValueError(f"watermark setting 'min_agreement' must be in [0, 1], got {self.min_agreement}")
        for name in (*self.generators, *self.knowing_generators, *self.unmarked_generators, self.other_arch_generator):
            GENERATORS.get(name)  # raises naming the known generators
        for name in self.views:
            VIEWS.get(name)
        for arch in (self.surrogate_arch, *self.other_archs):
            if arch not in MODEL_NAMES:
                raise ValueError(f"watermark setting 'surrogate_arch'/'other_archs': unknown architecture {arch!r} "
                                 f"(known: {MODEL_NAMES})")
        for spec in self.output_defenses:
            parse_output_defense(spec)
        for spec in self.independent:
            parse_independent(spec)
        for fraction in self.rare_fractions:
            if not 0.0 < fraction < 1.0:
                raise ValueError(f"watermark setting 'rare_fractions' must hold values in (0, 1), got {fraction}")
        if any(epochs < 1 for epochs in self.fine_tune_epochs):
            raise ValueError(f"watermark setting 'fine_tune_epochs' must hold values >= 1, got {self.fine_tune_epochs}")
        self.embed_settings("all")  # the embedding's own checks, named by its setting

    def key_settings(self) -> KeySettings:
        return KeySettings(num_pairs=self.num_pairs, context_len=self.context_len, decoys=self.decoys,
                           trigger_pool=self.trigger_pool, continuation_pool=self.continuation_pool,
                           rare_fraction=self.rare_fraction)

    def embed_settings(self, windows: str, seed: int = 0) -> EmbedSettings:
        return EmbedSettings(epochs=self.embed_epochs, batch_size=self.embed_batch_size,
                             watermark_rows=self.watermark_rows, lr=self.embed_lr, max_context=self.max_context,
                             windows=windows, objective=self.objective, trainable=self.trainable,
                             guard_rank=self.guard_rank, seed=seed)

    def verify_settings(self) -> VerifySettings:
        return VerifySettings(cutoff=self.cutoff, alpha=self.alpha)

    def generator_parameters(self, name: str) -> dict:
        """The registered generator ``name``'s parameters as this stage sets them (others keep their defaults)."""
        known = {"chains": self.chain_count, "min_length": min(20, self.attack_seq_len),
                 "probe_queries": min(64, self.attack_seq_len)}
        names = {f.name for f in fields(GENERATORS.get(name))}
        return {key: value for key, value in known.items() if key in names}


def parse_independent(spec: str) -> tuple[str, int, int | None]:
    """"arch:seed" or "arch:seed:even|odd" -> (arch, seed, user half or None); ValueError naming the setting."""
    parts = str(spec).split(":")
    halves = {"even": 0, "odd": 1}
    if len(parts) not in (2, 3) or parts[0] not in MODEL_NAMES or not parts[1].strip().isdigit() \
            or (len(parts) == 3 and parts[2] not in halves):
        raise ValueError(f"watermark setting 'independent': {spec!r} is not 'arch:seed' or 'arch:seed:even|odd' "
                         f"(arch one of {MODEL_NAMES})")
    return parts[0], int(parts[1]), halves[parts[2]] if len(parts) == 3 else None


def user_half(dataset, half: int):
    """``dataset`` restricted to every other user (half 0: even users, 1: odd users): disjoint training data."""
    users = np.arange(half, dataset.num_users, 2)
    sequences = [dataset.sequence(int(u)) for u in users]
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in sequences])
    return dataclasses.replace(dataset, user_raw_ids=dataset.user_raw_ids[users], items_flat=np.concatenate(sequences),
                               offsets=offsets, fingerprint=f"{dataset.fingerprint}-half{half}")


def box_of(model, k: int, device) -> BlackBoxRecommender:
    """The study's top-k box around ``model``: seen items filtered unless the catalogue is too small for it (the
    tiny smoke data), as the SEAT stage's box; answers are not kept (verification sends ~10,000 queries)."""
    filter_seen = k + model.max_len <= model.num_items
    return BlackBoxRecommender(model, k=k, filter_seen=filter_seen, keep_answers=False, device=device)


def run(ctx: StudyContext, settings: Settings | None = None) -> dict:
    settings = settings or Settings.for_profile(ctx.profile)
    threads = torch.get_num_threads()
    if settings.cpu_threads:
        torch.set_num_threads(settings.cpu_threads)
    try:
        return _run(ctx, settings)
    finally:
        torch.set_num_threads(threads)


class _Suspects:
    """Verifies suspects one after another and keeps the table's rows."""

    def __init__(self, key, settings: Settings, marked, dataset, device) -> None:
        self.key, self.settings, self.marked, self.dataset, self.device = key, settings, marked, dataset, device
        self.rows: list[dict] = []

    def agreement(self, model) -> float:
        return float(evaluate_extraction(self.marked, model, self.dataset, ks=(10,), device=self.device)["agr@10"])

    def check(self, group: str, suspect: str, box=None, model=None, **extra) -> dict:
        """Verify ``box`` (or a top-k box around ``model``); Agr@10 with the marked target when a model is given."""
        started = time.perf_counter()
        if box is None:
            box = box_of(model, self.settings.k, self.device)
        result = verify_ownership(box, self.key, self.settings.verify_settings())
        row = {"group": group, "suspect": suspect, "agr10": self.agreement(model) if model is not None else None,
               **{k: v for k, v in result.as_dict().items() if k != "alpha"}, **extra,
               "seconds": round(time.perf_counter() - started, 2)}
        self.rows.append(row)
        log.info("watermark %s / %s: %s", group, suspect, result.summary())
        return row


def _run(ctx: StudyContext, settings: Settings) -> dict:
    out = ctx.stage_dir(STAGE)
    seconds: dict[str, float] = {}
    with runs.stage_timer() as timer:
        seed_everything(ctx.seed)
        dataset = ctx.load_dataset()
        device = ctx.torch_device()
        target_path = ctx.run_dir / "train" / f"{settings.target_model}.pt"
        if not target_path.is_file():
            raise FileNotFoundError(f"watermark stage: the target checkpoint {target_path} does not exist "
                                    f"(run the train stage with {settings.target_model!r} among its models first)")
        target = load_checkpoint(target_path, dataset=dataset, device=device).model
        state = read_checkpoint_payload(target_path).get("training_state") or {}
        windows = stored_trajectory(state.get("train_config", {}))["windows"]

        # 1. The key and the embedding; what it costs users (NDCG@10 kept) and the owner (training time).
        started = time.perf_counter()
        key_seed = settings.key_seed or ctx.seed + 1
        key = make_key(target, dataset, key_seed, settings.key_settings())
        save_key(out / "key.json", key)
        embed = settings.embed_settings(windows, seed=ctx.seed)
        seed_everything(ctx.seed)
        embedded = embed_watermark(target, dataset, key, embed, device=device, progress=False)
        marked = embedded.model
        save_checkpoint(out / "marked.pt", marked, settings.target_model, dataset,
                        metrics={"watermark_key_seed": key_seed, "history": embedded.history})
        plain_step, mark_step = step_seconds(target, dataset, key, embed, steps=settings.cost_steps, device=device)
        seconds["embed"] = time.perf_counter() - started
        reference_ndcg, marked_ndcg = per_user_ndcg(target, dataset), per_user_ndcg(marked, dataset)
        kept = utility_retention(marked_ndcg, reference_ndcg, seed=ctx.seed)
        utility = pd.DataFrame([{"model": "unmarked target", "ndcg10": reference_ndcg.mean()},
                                {"model": "marked target", "ndcg10": marked_ndcg.mean(),
                                 **kept.as_dict("kept")}])
        write_csv_atomic(out / "utility.csv", utility)

        # 2. The marked box itself, and behind each output defense.
        suspects = _Suspects(key, settings, marked, dataset, device)
        marked_box = box_of(marked, settings.k, device)
        suspects.check("marked", "the marked box", box=marked_box)
        for spec in settings.output_defenses:
            defended = DefendedBox(box_of(marked, settings.k, device), parse_output_defense(spec), seed=ctx.seed)
            suspects.check("served", f"marked box behind {spec}", box=defended)

        # 3. Surrogates extracted through the marked box: every generator × view × seed (views sharing one
        #    training set share one surrogate), then the attacker who knows the scheme.
        started = time.perf_counter()
        naive_data: dict[tuple[str, int], AttackData] = {}
        naive_models: dict[tuple[str, int], torch.nn.Module] = {}
        for seed in settings.attack_seeds:
            for generator in settings.generators:
                trained = _extract(marked_box, generator, seed, settings, target.max_len, device)
                for plan_key, (views, data, model) in trained.items():
                    suspects.check("surrogate", f"{generator} · {' = '.join(views)} · seed {seed}", model=model,
                                   generator=generator, view="/".join(views), seed=seed)
                    if "naive" in views:
                        naive_data[generator, seed], naive_models[generator, seed] = data, model
            generator = settings.other_arch_generator
            if settings.other_archs and (generator, seed) not in naive_data:
                naive_data[generator, seed] = _collect(marked_box, generator, seed, settings)
            for arch in settings.other_archs:
                model = _fit(naive_data[generator, seed], seed, settings, target.max_len, device, arch=arch)
                suspects.check("surrogate", f"{generator} · naive · {arch} surrogate · seed {seed}", model=model,
                               generator=generator, view="naive", seed=seed, arch=arch)
        seconds["surrogates"] = time.perf_counter() - started
        started = time.perf_counter()
        benign = dataset.train_sequences()[1::2]  # benign-like sequences the knowing attacker fine-tunes on
        for seed in settings.attack_seeds:
            for generator in settings.knowing_generators:
                if (generator, seed) not in naive_data:
                    naive_data[generator, seed] = _collect(marked_box, generator, seed, settings)
                data = naive_data[generator, seed]
                triggers, continuations = key.pairs(0)
                for fraction in settings.rare_fractions:
                    stripped, rare = drop_rare_items(data, fraction)
                    model = _fit(stripped, seed, settings, target.max_len, device)
                    suspects.check("knowing",
                                   f"{generator} · drops the {fraction:.0%} least seen items · seed {seed}",
                                   model=model, generator=generator, view="drop-rare", seed=seed,
                                   continuations_judged_rare=float(np.isin(continuations, rare).mean()),
                                   triggers_judged_rare=float(np.isin(triggers, rare).mean()))
                base = naive_models.get((generator, seed)) or _fit(data, seed, settings, target.max_len, device)
                for epochs in settings.fine_tune_epochs:
                    tuned = build_model(settings.surrogate_arch, dataset.num_items,
                                        max(target.max_len, settings.attack_seq_len))
                    tuned.load_state_dict(base.state_dict())
                    fine_tune(tuned, benign, epochs=epochs, seed=seed)
                    suspects.check("knowing", f"{generator} · fine-tuned {epochs} epoch(s) on benign-like sequences "
                                   f"· seed {seed}", model=tuned, generator=generator, view="fine-tune", seed=seed)
        seconds["knowing"] = time.perf_counter() - started

        # 4. Models that never saw the watermark: all must be cleared.
        started = time.perf_counter()
        suspects.check("independent", f"unmarked target ({settings.target_model})", model=target)
        for other in sorted((ctx.run_dir / "train").glob("*.pt")):
            if other.stem == settings.target_model or "_epoch" in other.stem:
                continue
            model = load_checkpoint(other, dataset=dataset, device=device).model
            suspects.check("independent", f"train stage's {other.stem}", model=model, arch=other.stem)
        for spec in settings.independent:
            arch, seed, half = parse_independent(spec)
            data = dataset if half is None else user_half(dataset, half)
            seed_everything(seed)
            model = build_model(arch, dataset.num_items, target.max_len)
            config = TrainConfig(epochs=settings.independent_epochs, patience=0, seed=seed, weight_decay=0.0,
                                 windows="newest")
            model = train_model(model, data, config, device=device, progress=False).model
            suspects.check("independent", f"{arch} seed {seed}" + ("" if half is None else
                                                                     f", {('even', 'odd')[half]} users only"),
                           model=model, arch=arch, seed=seed)
        unmarked_box = box_of(target, settings.k, device)
        for generator in settings.unmarked_generators:
            seed = settings.attack_seeds[0]
            model = _fit(_collect(unmarked_box, generator, seed, settings), seed, settings, target.max_len, device)
            suspects.check("independent", f"{generator} surrogate of the unmarked target", model=model,
                           generator=generator, seed=seed)
        seconds["independent"] = time.perf_counter() - started

        table = pd.DataFrame(suspects.rows)
        write_csv_atomic(out / "verification.csv", table)
        plots.save_png(p_value_figure(table, settings.alpha), out / "p_values.png")

    metrics = results(table, settings, kept, reference_ndcg.mean(), marked_ndcg.mean(), embedded, plain_step,
                      mark_step, key, key_seed, target_path, seconds, timer)
    headline = {name: metrics.get(name) for name in HEADLINE_KEYS}
    runs.write_stage_metrics(ctx.run_dir, STAGE, metrics, headline)
    return metrics


HEADLINE_KEYS = ("watermark_utility_retention", "watermark_utility_retention_low", "watermark_utility_retention_high",
                 "watermark_verified_share", "watermark_false_claims", "watermark_independent_models",
                 "watermark_min_p_independent", "watermark_max_p_surrogate", "watermark_knowing_attacker_verified",
                 "watermark_cost_in_undefended_epochs", "watermark_marked_box_p_value", "watermark_marked_box_verified")


def _collect(box, generator: str, seed: int, settings: Settings, steer: int = 0) -> AttackData:
    """The generator's walk through ``box`` with ``seed`` (``steer`` ranks when it has that parameter)."""
    parameters = settings.generator_parameters(generator)
    if steer and "steer" in {f.name for f in fields(GENERATORS.get(generator))}:
        parameters["steer"] = steer
    return GENERATORS.build(generator, **parameters).collect(
        box, settings.attack_sequences * settings.attack_seq_len, settings.attack_seq_len, seed=seed,
        account=f"attacker/{generator}/{seed}").training


def _fit(data: AttackData, seed: int, settings: Settings, max_len: int, device, order_weight: float = 1.0,
         arch: str = ""):
    """A fresh surrogate (``arch``, default ``surrogate_arch``) distilled from ``data`` for ``surrogate_epochs``
    fixed epochs with ``seed``."""
    surrogate = SurrogateSettings(epochs=settings.surrogate_epochs, patience=0, min_epochs=0, seed=seed,
                                  order_weight=order_weight)
    torch.manual_seed(seed)
    model = build_model(arch or settings.surrogate_arch, num_items=data.num_items,
                        max_len=max(max_len, settings.attack_seq_len))
    return fit_surrogate(data, model, surrogate, device=device, progress=False).model


def _extract(box, generator: str, seed: int, settings: Settings, max_len: int, device) -> dict:
    """{training-set key: (views, training data, surrogate)}: one surrogate per distinct plan of the views."""
    knowledge = undefended(settings.k)
    steers = "steer" in {f.name for f in fields(GENERATORS.get(generator))}
    walks: dict[tuple, AttackData] = {}
    out: dict[tuple, tuple[list[str], AttackData, object]] = {}
    for view in settings.views:
        plan = VIEWS.get(view)().plan(knowledge)
        wkey = walk_key(plan, "none", steers)
        dkey = data_key(wkey, plan.lists, "none")
        if dkey in out:
            out[dkey][0].append(view)
            continue
        if wkey not in walks:
            steer = 0 if wkey[0] == "fixed" or wkey[1] >= settings.k else wkey[1]
            walks[wkey] = _collect(box, generator, seed, settings, steer=steer)
        data = training_data(walks[wkey], plan.lists)
        out[dkey] = ([view], data, _fit(data, seed, settings, max_len, device, plan.lists.order_weight))
    return out


def results(table: pd.DataFrame, settings: Settings, kept, reference_ndcg: float, marked_ndcg: float, embedded,
            plain_step: float, mark_step: float, key, key_seed: int, target_path: Path, seconds: dict,
            timer: dict) -> dict:
    """metrics.json of the stage: the headline figures (worst cases), the table as records, settings, timing."""
    stolen = table[table["group"].isin(STOLEN)]
    strong = stolen[stolen["agr10"].astype(float) >= settings.min_agreement]
    independent = table[table["group"] == "independent"]
    knowing = table[table["group"] == "knowing"]
    cost = settings.embed_epochs * mark_step / plain_step if plain_step > 0 else None
    marked_p = float(table.loc[table["group"] == "marked", "p_value"].iloc[0])
    knowing_rows = []  # what each strip attempt costs the attacker: Agr@10 against its plain (naive) surrogate
    records = table.to_dict(orient="records")
    for row in knowing.to_dict(orient="records"):
        plain = [r["agr10"] for r in records if r["group"] == "surrogate" and r.get("generator") == row["generator"]
                 and r.get("seed") == row["seed"] and "naive" in str(r.get("view")).split("/")
                 and not isinstance(r.get("arch"), str)]
        naive_agr = float(plain[0]) if plain else None
        knowing_rows.append({"suspect": row["suspect"], "agr10": float(row["agr10"]), "naive_agr10": naive_agr,
                             "agr10_paid": None if naive_agr is None else naive_agr - float(row["agr10"]),
                             "p_value": float(row["p_value"]), "claimed": bool(row["claimed"])})
    metrics = {
        "watermark_utility_retention": kept.point,
        "watermark_utility_retention_low": kept.low,
        "watermark_utility_retention_high": kept.high,
        # None: no stolen copy reached min_agreement (nothing to count)
        "watermark_verified_share": float(strong["claimed"].mean()) if len(strong) else None,
        "watermark_false_claims": int(independent["claimed"].sum()),
        "watermark_independent_models": int(len(independent)),
        "watermark_min_p_independent": float(independent["p_value"].min()) if len(independent) else None,
        "watermark_max_p_surrogate": float(stolen["p_value"].max()) if len(stolen) else None,
        # None: the knowing attacker did not run
        "watermark_knowing_attacker_verified": bool(knowing["claimed"].all()) if len(knowing) else None,
        "watermark_cost_in_undefended_epochs": cost,
        "headline_note": (
            f"verified share: stolen copies (surrogates and the knowing attacker's) with Agr@10 >= "
            f"{settings.min_agreement:g} claimed at p < {settings.alpha:g}; max p over every stolen copy whatever its "
            "Agr@10; min p over every independent model; knowing attacker verified = every one of its copies claimed; "
            "utility kept: marked / unmarked test NDCG@10, 95% paired bootstrap over test users (not over embedding "
            "seeds); cost: embedding epochs x (embedding step / ordinary step), timed in alternation"),
        "knowing_attacker": knowing_rows,
        "stolen_copies": int(len(stolen)), "stolen_copies_above_min_agreement": int(len(strong)),
        "unmarked_ndcg10": float(reference_ndcg), "marked_ndcg10": float(marked_ndcg),
        # the marked box itself, undefended: when it is not claimed the mark did not take, and no copy can carry it
        "watermark_marked_box_p_value": marked_p,
        "watermark_marked_box_verified": marked_p < settings.alpha,
        "verification": table.replace({np.nan: None}).to_dict(orient="records"),
        "embedding": {"seconds": round(embedded.seconds, 2), "history": embedded.history,
                      "plain_step_seconds": plain_step, "embed_step_seconds": mark_step},
        "key": {"seed": key_seed, "num_pairs": key.num_pairs, "decoys": key.decoys, "context_len": key.context_len,
                "notes": key.notes},
        "target_checkpoint": str(target_path),
        "settings": asdict(settings),
        "part_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "wall_seconds": timer["wall_seconds"],
        "peak_memory_mb": timer["peak_memory_mb"],
    }
    metrics["targets"] = {
        "ndcg_kept_ge_0.99": kept.point >= 0.99, "ndcg_kept_low_ge_0.98": kept.low >= 0.98,
        "marked_box_verified": metrics["watermark_marked_box_verified"],
        "every_strong_copy_verified": metrics["watermark_verified_share"] == 1.0,
        "no_false_claims": metrics["watermark_false_claims"] == 0,
        "at_least_12_independent_models": metrics["watermark_independent_models"] >= 12,
        "embedding_cost_le_1.5_epochs": cost is not None and cost <= 1.5,
    }
    return metrics
