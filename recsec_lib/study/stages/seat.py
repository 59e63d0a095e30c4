"""SEAT stage: detect extraction attacks from the query log, judged against an attacker zoo.

Reads the trained target ``<run>/train/sasrec.pt`` (it answers the attackers'
queries through the study's black box) and, where present, the attack stage's
query logs ``<run>/attack/*.npz`` / ``*.jsonl``. The computations live in
``recsec_lib.seat``; this module only orchestrates. Writes into ``<run>/seat/``:

* ``encoder.pt`` — the similarity encoder (trained on the encoder users only);
* ``calibration.json`` — the frozen thresholds and limits of every detector,
  fitted on benign calibration accounts before any test account exists;
* ``fpr_by_form.csv`` — false positives on held-out benign accounts per form
  (the four first forms and the clients' forms of ``seat.benign``);
* ``zoo.csv``, ``zoo.png`` — per zoo attacker: queries, the surrogate's
  Agr@10, and the accounts it needs per detector ("cost to reach fidelity X");
* ``single_account.csv`` — detection of single-account random and
  autoregressive attacks per budget;
* ``roc.csv``, ``roc.png`` — ROC of the main per-account statistics;
* ``logged_attacks.csv`` — the attack stage's own logs through the detectors;
* ``attack_log_accounts.csv`` — with ``attack_log`` (``recsec seat --attack_data``): the
  verdict per account of that log and detector (query at which it was flagged, or none);
* ``fpr_intervals.csv`` — the searched detectors calibrated on one benign population and measured on a
  disjoint one (every form, the people forms too; with ML-100K in the mirror, timed by real ML-100K gaps and
  with ML-100K users at their own rating times): FPR per form with exact 95% intervals, and whether the
  held-out set is big enough for the interval to show the target (``can_show``);
* ``accounts_needed.csv``, ``search_best.csv``, ``accounts_needed.png`` — the attacker who chooses
  (``seat.search``): accounts needed at every point of its grid (registered generators' own choices, splits
  over accounts, pacing windows; the public-data attacker where ML-100K is present), and per detector the
  minimum with the point that reached it and the surrogate's Agr@10 there;
* ``metrics.json`` — all figures, settings, timings; headline keys merged.

Headline figures are worst cases: the minimum over every zoo attacker (``seat_*`` keys, the zoo's fixed
parameters) and over the attacker's whole searched grid (``detect_best*`` keys, ``seat.verdict``). Without
ML-100K in the mirror (the smoke profile's synthetic data) the real-timing parts are skipped and
``real_timing_skipped`` says why.
Users are split by id: the first half trains the encoder, the next quarter
gives the calibration accounts, the last quarter the test accounts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsec_lib.common import plots
from recsec_lib.common.files import write_csv_atomic
from recsec_lib.common.settings import SettingsBase

from recsec_lib.study import runs
from recsec_lib.attack.traffic import traffic_from_records
from recsec_lib.seat.traffic import split_users
from recsec_lib.attack.generators import GENERATORS
from recsec_lib.seat.benign import ALL_FORMS, EVERY_FORM, BenignShape, benign_traffic
from recsec_lib.seat.calibration import PradaOptions, SeatOptions
from recsec_lib.seat.detectors import DEFAULT_DETECTORS as DETECTORS, benign_frame, calibrate, get_detector
from recsec_lib.seat.statistics import benign_statistics
from recsec_lib.seat.encoder import EncoderConfig, EncoderTraining, load_encoder, save_encoder, train_encoder
from recsec_lib.seat.evaluation import (ACCOUNT_GRID, evaluate, false_positive_table, measure_throughput, roc_auc, roc_curve,
                                        single_account_outcomes)
from recsec_lib.seat.inputs import load_box, logged_attacks, read_log
from recsec_lib.seat.fpr import accounts_to_show, rate_table
from recsec_lib.seat.plots import search_costs, zoo_costs
from recsec_lib.seat.populations import REAL_FORMS, RealTiming, benign_population, load_real_timing
from recsec_lib.seat.public_data import public_collected, public_streams, public_traffic
from recsec_lib.seat.search import (HORIZONS_H, SPLITS, AttackSpace, GeneratorCollector, SearchResult, cheapest,
                                    combine, featured_sample, generator_space, search_attacker)
from recsec_lib.seat.statistics import MonitorContext
from recsec_lib.seat.verdict import detection_headline, verdict_sentence
from recsec_lib.seat.replay import prepare_traffic
from recsec_lib.seat.zoo import SplitStatistics, accounts_needed, fidelity_table, worst_case_headline, zoo_surrogate
from recsec_lib.study.stages.context import StudyContext, seed_everything

STAGE = "seat"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings(SettingsBase):
    fpr: float = 0.001  # target false-positive rate on benign accounts (all of a detector's statistics together)
    target_model: str = "sasrec"  # reads <run>/train/<target_model>.pt
    target_path: str = ""  # another checkpoint instead; "" = the run's
    k: int = 100  # returned list length of the black box
    encoder_path: str = ""  # use this saved encoder instead of training one; "" = train
    attack_log: str = ""  # an extra attack query log (.npz QueryLog or .jsonl) to run through the detectors
    benign_log: str = ""  # a query log of real benign accounts: its false-positive rate is reported too
    # encoder
    encoder_dim: int = 64
    encoder_window: int = 50  # most recent items encoded
    encoder_steps: int = 300
    encoder_batch: int = 256
    max_edits: int = 4  # adversarial edits per positive
    # users and benign traffic
    encoder_fraction: float = 0.5
    calibration_fraction: float = 0.25
    accounts_per_form: int = 0  # benign accounts per form and population; 0 = one per user
    refresh_mean: float = 1.0  # extra repeats of each query in the refresh form (Poisson mean)
    benign_forms: tuple[str, ...] = ALL_FORMS
    # detectors
    pair_quantile: float = 0.01  # SEAT threshold: this quantile of cross-user distances
    max_sessions: int = 64  # session tips SEAT remembers per account
    max_changed: int = 16  # a query continues a session if it drops and adds at most this many items each
    follow_drift: float = 0.8  # the follow CUSUM's drift per growth step
    rate_window_s: float = 3600.0  # the rate cap counts queries per this many seconds
    attack_horizon_hours: float = 24.0  # attackers pace their queries evenly over this long (rate cap)
    # the attacker zoo: every attacker sends attack_sequences * attack_seq_len queries
    zoo: tuple[str, ...] = ("random", "autoregressive", "adaptive-mix", "chain", "chain-mix", "interleaved",
                             "perturbed", "popularity", "one-query")  # registered generators (attack.generators)
    attack_sequences: int = 5000  # walks of the every-prefix attackers (sets the budget)
    attack_seq_len: int = 200  # each walk costs this many queries
    single_budgets: tuple[int, ...] = (10, 25, 50, 100, 250, 500, 1000, 5000)  # walks per single-account run
    adaptive_random_mix: float = 0.5  # adaptive-mix and chain-mix: share of uniformly drawn items
    chain_count: int = 50  # chain attackers: this many long walks
    interleave: int = 8  # interleaved attacker: walks advanced together
    one_query_training_rows: int = 3000  # (walk, answer) pairs the one-query attacker's surrogate trains on
    surrogate_arch: str = "sasrec"
    surrogate_seconds: float = 0.0  # a safety stop per zoo surrogate (recorded in the run when it ends one); 0 = none
    surrogate_epochs: int = 100
    prada_max_queries: int = 0  # queries per attack PRADA is swept on; 0 = all
    cpu_threads: int = 0  # torch CPU threads during the stage; 0 = torch's default. The encoder's
    # matrices are tiny: on a busy 2-core machine 1 thread was ~20x faster than 2 contending ones.
    # The attacker who chooses (seat.search): per detector, accounts needed is the minimum over this grid.
    # registered generators; chain-mix and adaptive-mix are chain and autoregressive with other defaults: the same grid
    search_attackers: tuple[str, ...] = ("random", "autoregressive", "chain", "interleaved", "perturbed", "popularity",
                                         "one-query")
    search_chains: tuple[int, ...] = ()  # narrows the generators' own choices of chains; () = every one they offer
    search_random_mix: tuple[float, ...] = ()  # ... of random_mix
    search_mix_weights: tuple[str, ...] = ()  # ... of mix_weights (uniform, popularity)
    search_splits: tuple[str, ...] = SPLITS  # how the attacker deals its queries over accounts
    search_horizons_h: tuple[float, ...] = HORIZONS_H  # pacing windows the attacker may choose (hours)
    search_detectors: tuple[str, ...] = ("seat-pairs", "seat", "seat+cap", "caps", "volume", "rate", "handoff",
                                         "caps+handoff", "seat+cap+handoff")  # PRADA left out: too slow per split
    public_streams: tuple[int, ...] = (1, 8, 10_000)  # the public-data attacker's choice of streams; () = none
    search_fidelity: bool = True  # train the surrogate at each detector's cheapest point (its Agr@10)
    search_budget_queries: int = 0  # queries each searched attacker sends; 0 = the zoo's (attack_sequences * seq_len)
    # Benign users with real timing (ML-100K from the mirror; skipped with a stated reason without it).
    real_timing: bool = True
    real_calibration_fraction: float = 0.5  # ML-100K users (by id) that calibrate; the rest are held out
    real_min_ratings: int = 5  # ML-100K users with fewer mapped ratings are left out
    population_forms: tuple[str, ...] = EVERY_FORM  # the zoo's forms plus the people forms
    population_calibration_per_form: int = 0  # ML-1M calibration accounts per form; 0 = one per user
    population_held_out_per_form: int = 0  # held-out accounts per form; 0 = one per user (1,510 on ML-1M)

    PROFILES = {
        "smoke": {"k": 5, "encoder_dim": 16, "encoder_window": 10, "encoder_steps": 30, "encoder_batch": 32,
                  "max_edits": 2, "attack_sequences": 40, "attack_seq_len": 8, "single_budgets": (5, 10, 40),
                  "chain_count": 4, "max_sessions": 16, "fpr": 0.01, "cpu_threads": 1,
                  "surrogate_epochs": 2, "accounts_per_form": 20,
                  "search_attackers": ("chain",), "search_chains": (1, 5), "search_random_mix": (0.0, 0.5),
                  "search_mix_weights": ("uniform",), "search_horizons_h": (24.0, 720.0), "public_streams": (1, 50),
                  "population_calibration_per_form": 20, "population_held_out_per_form": 20},
        # Zoo surrogates stop on a number of epochs, never on the clock (the same run twice gives the same Agr@10):
        # 20 epochs of 200 x 200 queries take about the 20 s per surrogate the earlier time cap allowed on 2 cores.
        "cpu": {"attack_sequences": 200, "single_budgets": (10, 50, 200), "chain_count": 20, "accounts_per_form": 200,
                "surrogate_epochs": 20, "prada_max_queries": 20_000, "cpu_threads": 1,
                # The search and the real-timing populations: 8 grid settings of 5,000 queries; 30 calibration and
                # 370 held-out ML-1M accounts per form plus every ML-100K user. 370 per form: with none flagged, an
                # exact 95% interval shows a form's rate <= 1% from 368 accounts, and the 6,826 held-out accounts
                # show the overall <= 0.1% (3,688 needed). household45 (4-5 users an account) reaches only 334 from
                # the test quarter's 1,510 users. Run study1206c held out 60 per form (1,902 in all: neither could
                # be shown); the side run results/seat/ (370 per form) took 216 s for the population step against
                # 77 s, and 2,955 s for the whole stage on a machine shared with GRO runs; alone, after the one-query
                # surrogate learned to score only its answered prefixes, the stage took 1,515 s (e48e325).
                "search_attackers": ("chain", "autoregressive"), "search_chains": (1, 20), "search_random_mix": (0.5,),
                "search_budget_queries": 5_000, "public_streams": (1, 10_000), "population_calibration_per_form": 30,
                "population_held_out_per_form": 370},
        "full": {"encoder_steps": 2000, "one_query_training_rows": 20_000},
    }

    def seat_options(self) -> SeatOptions:
        return SeatOptions(max_sessions=self.max_sessions, max_removed=self.max_changed, max_added=self.max_changed,
                           follow_drift=self.follow_drift, pair_quantile=self.pair_quantile,
                           rate_window_s=self.rate_window_s)

    def check_search(self) -> None:
        """Fail before any work when the search's settings name something unknown (a clear error per setting)."""
        from recsec_lib.seat.detectors import detector_names

        for name in self.search_attackers:
            if name not in GENERATORS.names():
                raise ValueError(f"seat setting search_attackers: unknown generator {name!r}; registered: "
                                 f"{GENERATORS.names()}")
            generator_space(name, self.search_splits, self.search_horizons_h, **self.narrowed(name))
        AttackSpace({}, tuple(self.search_splits), tuple(self.search_horizons_h))  # splits and windows
        unknown = sorted(set(self.search_detectors) - set(detector_names()))
        if unknown or not self.search_detectors:
            raise ValueError(f"seat setting search_detectors: unknown detector(s) {unknown}; registered: "
                             f"{detector_names()}")
        if self.search_budget_queries < 0:
            raise ValueError(f"seat setting search_budget_queries must be >= 0 (0 = the zoo's budget), "
                             f"got {self.search_budget_queries}")
        if any(int(n) < 1 for n in self.public_streams):
            raise ValueError(f"seat setting public_streams: every value must be >= 1, got {self.public_streams}")
        if not 0 < self.real_calibration_fraction < 1:
            raise ValueError(f"seat setting real_calibration_fraction must be in (0, 1), "
                             f"got {self.real_calibration_fraction}")
        unknown = sorted(set(self.population_forms) - set(EVERY_FORM))
        if unknown or not self.population_forms:
            raise ValueError(f"seat setting population_forms: unknown form(s) {unknown}; known: {EVERY_FORM}")

    def narrowed(self, name: str) -> dict[str, tuple]:
        """The search's narrowing of the registered generator ``name``'s choices (only those it offers)."""
        choices = GENERATORS.get(name).choices
        wanted = {"chains": self.search_chains, "random_mix": self.search_random_mix,
                  "mix_weights": self.search_mix_weights}
        return {key: tuple(values) for key, values in wanted.items() if values and key in choices}

    def zoo_parameters(self, name: str) -> dict:
        """The registered generator ``name``'s parameters as this stage sets them (others keep their defaults)."""
        known = {"chains": self.chain_count, "random_mix": self.adaptive_random_mix, "interleave": self.interleave,
                 "training_rows": self.one_query_training_rows, "probe_queries": min(64, self.attack_seq_len),
                 "min_length": min(20, self.attack_seq_len)}
        fields = GENERATORS.get(name).__dataclass_fields__
        return {key: value for key, value in known.items() if key in fields
                and (key != "random_mix" or name in ("adaptive-mix", "chain-mix"))}


def run(ctx: StudyContext, settings: Settings | None = None) -> dict:
    settings = settings or Settings.for_profile(ctx.profile)
    threads = torch.get_num_threads()
    if settings.cpu_threads:
        torch.set_num_threads(settings.cpu_threads)
    try:
        return _run(ctx, settings)
    finally:
        torch.set_num_threads(threads)


def _run(ctx: StudyContext, settings: Settings) -> dict:
    """The stage's steps in order (each a function below); the parts' wall seconds go to ``part_seconds``."""
    seconds: dict[str, float] = {}

    def timed(name, step, *args):
        started = time.perf_counter()
        value = step(*args)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
        log.info("seat step %s: %.1f s", name, time.perf_counter() - started)
        return value

    with runs.stage_timer() as timer:
        seed_everything(ctx.seed)
        inputs = stage_inputs(ctx, settings)  # first: the target checkpoint fails fast
        encoder, losses = timed("encoder", encoder_step, inputs)
        prepared = Prepared(inputs, encoder)
        calibrations = timed("calibration", calibration_step, inputs, prepared)
        benign = timed("benign_test", benign_test_step, inputs, prepared, calibrations)
        zoo = zoo_step(inputs, prepared, calibrations)
        seconds["zoo"] = sum(r["seconds"] for r in zoo.fidelity_rows)
        single_table, aucs = timed("single_account", single_account_step, inputs, zoo.attacks, calibrations,
                                   benign.frame)
        logged_rows, given_accounts = timed("logged_attacks", logged_attacks_step, inputs, prepared, calibrations)
        throughput = measure_throughput(encoder, calibrations["seat"], benign.traffic, seat=inputs.seat_options,
                                        follow=benign.features.follow)
        # The attacker who chooses its parameters, and benign users with real timing (issue 24).
        real, real_skipped = timed("real_timing", real_timing_step, inputs)
        population = timed("population", population_step, inputs, prepared, real)
        search, public_skipped = timed("search", search_step, inputs, encoder, population, real, real_skipped)
        search = timed("search_fidelity", search_fidelity_step, inputs, search, real)
        verdict = verdict_step(inputs, population, search, real, real_skipped, public_skipped)

    metrics = SeatResults(
        settings=settings, calibrations=calibrations, fpr_table=benign.fpr_table, single_table=single_table,
        needed=zoo.needed, zoo_table=zoo.table, throughput=throughput, aucs=aucs, losses=losses,
        target_path=inputs.target_path, test_traffic=benign.traffic, logged_rows=logged_rows,
        benign_log_fpr=benign.log_fpr, seconds=seconds, timer=timer).metrics()
    metrics.update(verdict)
    if settings.attack_log:  # per account and detector: the query at which it was flagged (None: never)
        metrics["attack_log_accounts"] = given_accounts
    headline = {key: metrics.get(key) for key in HEADLINE_KEYS}
    runs.write_stage_metrics(ctx.run_dir, STAGE, metrics, headline)
    return metrics


# --- the steps ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class StageInputs:
    """What every step reads: the run, the settings, the data, the black box and its target."""

    ctx: StudyContext
    settings: Settings
    out: Path  # <run>/seat
    dataset: object  # the SequenceDataset
    box: object  # the study's black box (top-k answers)
    target: object  # the model behind the box
    target_path: Path
    split: object  # traffic.split_users: encoder / calibration / test users
    device: object
    seat_options: SeatOptions
    prada_options: PradaOptions

    @property
    def shape(self) -> BenignShape:
        return BenignShape(refresh_mean=self.settings.refresh_mean)

    @property
    def per_form(self) -> int | None:
        return self.settings.accounts_per_form or None


def stage_inputs(ctx: StudyContext, settings: Settings) -> StageInputs:
    settings.check_search()
    dataset = ctx.load_dataset()
    device = ctx.torch_device()
    target_path = (Path(settings.target_path) if settings.target_path
                   else ctx.run_dir / "train" / f"{settings.target_model}.pt")
    box, target = load_box(target_path, dataset, settings.k, device)
    split = split_users(dataset.num_users, settings.encoder_fraction, settings.calibration_fraction)
    return StageInputs(ctx, settings, ctx.stage_dir(STAGE), dataset, box, target, target_path, split, device,
                       settings.seat_options(), PradaOptions())


class Prepared:
    """``prepared(traffic)``: its SEAT / PRADA features and the follow values the service knows."""

    def __init__(self, inputs: StageInputs, encoder) -> None:
        self.inputs, self.encoder = inputs, encoder

    def __call__(self, traffic):
        i = self.inputs
        return prepare_traffic(traffic, self.encoder, i.dataset.num_items, i.target, i.settings.k, i.box.filter_seen,
                               i.ctx.seed, i.device)


def encoder_step(inputs: StageInputs):
    """1. The encoder, from the encoder users' training sequences only (or a saved one)."""
    settings, dataset = inputs.settings, inputs.dataset
    if settings.encoder_path:
        encoder, losses = load_encoder(settings.encoder_path), []
        if encoder.config.num_items != dataset.num_items:
            raise ValueError(f"encoder {settings.encoder_path} was built for {encoder.config.num_items} items, "
                             f"the dataset has {dataset.num_items}")
    else:
        config = EncoderConfig(num_items=dataset.num_items, window=settings.encoder_window, dim=settings.encoder_dim,
                               hidden=2 * settings.encoder_dim)
        training = EncoderTraining(steps=settings.encoder_steps, batch_size=settings.encoder_batch,
                                   max_edits=settings.max_edits, seed=inputs.ctx.seed)
        encoder, losses = train_encoder([dataset.sequence(int(u))[:-2] for u in inputs.split.encoder], config,
                                        training, device=inputs.device)
    save_encoder(encoder, inputs.out / "encoder.pt")
    return encoder.cpu(), losses


def calibration_step(inputs: StageInputs, prepared: Prepared) -> dict:
    """2. The zoo's detectors calibrated on benign calibration accounts; frozen before any test account exists."""
    settings, dataset, split = inputs.settings, inputs.dataset, inputs.split
    cal_traffic = benign_traffic([dataset.sequence(int(u)) for u in split.calibration], split.calibration.tolist(),
                                 settings.benign_forms, dataset.max_len, seed=inputs.ctx.seed, shape=inputs.shape,
                                 max_accounts_per_form=inputs.per_form)
    stats = benign_statistics(cal_traffic, prepared(cal_traffic), inputs.seat_options, inputs.prada_options,
                              dataset.num_items, inputs.ctx.seed)
    calibrations = {d: calibrate(d, stats, settings.fpr) for d in DETECTORS}
    runs.write_json_atomic(inputs.out / "calibration.json", {
        "user_split": {name: [int(block[0]), int(block[-1])] for name, block in
                       (("encoder", split.encoder), ("calibration", split.calibration), ("test", split.test))},
        "calibration_accounts": len(cal_traffic.names), "calibration_queries": cal_traffic.num_queries,
        "detectors": {d: c.summary() for d, c in calibrations.items()}})
    return calibrations


@dataclass(frozen=True, eq=False)
class BenignTest:
    traffic: object  # the held-out benign Traffic
    features: object  # its TrafficFeatures
    frame: pd.DataFrame  # one row per account and detector (benign_frame)
    fpr_table: pd.DataFrame
    log_fpr: dict | None  # FPR on a given benign log (None without one)


def benign_test_step(inputs: StageInputs, prepared: Prepared, calibrations: dict) -> BenignTest:
    """3. Held-out benign accounts (the zoo's forms): false positives per form."""
    settings, dataset, split = inputs.settings, inputs.dataset, inputs.split
    test_traffic = benign_traffic([dataset.sequence(int(u)) for u in split.test], split.test.tolist(),
                                  settings.benign_forms, dataset.max_len, seed=inputs.ctx.seed + 1, shape=inputs.shape,
                                  max_accounts_per_form=inputs.per_form)
    test_features = prepared(test_traffic)
    test_stats = benign_statistics(test_traffic, test_features, inputs.seat_options, inputs.prada_options,
                                   dataset.num_items, inputs.ctx.seed, threshold=calibrations["seat"].threshold)
    benign = pd.concat([benign_frame(c, test_stats) for c in calibrations.values()])
    fpr_table = false_positive_table(benign)
    write_csv_atomic(inputs.out / "fpr_by_form.csv", fpr_table)
    log_fpr = None
    if settings.benign_log:
        logged = traffic_from_records(read_log(Path(settings.benign_log)), dataset.max_len, kind="log:benign")
        features = prepared(logged)
        log_fpr = {d: float(np.mean([o.flagged_at is not None for o in
                                     evaluate(c, logged, features, inputs.seat_options, inputs.prada_options,
                                              dataset.num_items)]))
                   for d, c in calibrations.items()}
    return BenignTest(test_traffic, test_features, benign, fpr_table, log_fpr)


@dataclass(frozen=True, eq=False)
class ZooResult:
    needed: pd.DataFrame  # attack, detector, accounts_needed, queries
    fidelity_rows: list  # per attack: the surrogate's figures and the seconds spent
    table: pd.DataFrame  # per attack: accounts per detector beside the surrogate's fidelity
    attacks: dict  # random / autoregressive: (Collected, features) for the single-account runs


def zoo_step(inputs: StageInputs, prepared: Prepared, calibrations: dict) -> ZooResult:
    """4. The attacker zoo at its fixed parameters: accounts needed per detector, the surrogate it trains."""
    settings, ctx = inputs.settings, inputs.ctx
    budget = settings.attack_sequences * settings.attack_seq_len
    surrogate_settings = _surrogate_settings(settings, inputs.box.filter_seen, ctx.seed)
    horizon_s = settings.attack_horizon_hours * 3600.0
    needed_rows, fidelity_rows, attacks = [], [], {}
    for offset, name in enumerate(settings.zoo):
        started = time.perf_counter()
        attack = GENERATORS.build(name, **settings.zoo_parameters(name)).collect(
            inputs.box, budget, settings.attack_seq_len, seed=ctx.seed + 10 + offset, account=f"zoo/{name}")
        features = prepared(attack.traffic)
        splits = SplitStatistics(attack, features, calibrations["seat"].threshold, inputs.seat_options,
                                 inputs.dataset.num_items)
        for d, c in calibrations.items():
            needed = accounts_needed(c, attack, features, horizon_s, splits, inputs.seat_options,
                                     inputs.prada_options, inputs.dataset.num_items,
                                     prada_max_queries=settings.prada_max_queries)
            needed_rows.append({"attack": name, "detector": d, "accounts_needed": needed, "queries": attack.queries})
        query_seconds = time.perf_counter() - started
        seed_everything(ctx.seed)
        row = zoo_surrogate(attack, inputs.target, inputs.dataset, settings.surrogate_arch, surrogate_settings,
                            inputs.device)
        fidelity_rows.append({**row, "detect_seconds": round(query_seconds, 1),
                              "seconds": round(time.perf_counter() - started, 1)})
        if name in ("random", "autoregressive"):
            attacks[name] = (attack, features)
        log.info("seat zoo %s: %s", name, fidelity_rows[-1])
    needed = pd.DataFrame(needed_rows)
    zoo_table = fidelity_table(needed, pd.DataFrame(fidelity_rows))
    write_csv_atomic(inputs.out / "zoo.csv", zoo_table)
    plots.save_png(zoo_costs(zoo_table), inputs.out / "zoo.png")
    return ZooResult(needed, fidelity_rows, zoo_table, attacks)


def single_account_step(inputs: StageInputs, attacks: dict, calibrations: dict, benign: pd.DataFrame):
    """5. Single-account runs of the study's two generators, and the ROC of the main statistics."""
    settings = inputs.settings
    single = single_account_outcomes(attacks, calibrations, settings.single_budgets, inputs.seat_options,
                                     inputs.prada_options, inputs.dataset.num_items, settings.prada_max_queries)
    single_table = (single.groupby(["detector", "generator", "budget"])
                    .agg(runs=("name", "size"), detected=("flagged", "sum"),
                         median_queries_to_detect=("flagged_at", "median")).reset_index())
    single_table["detection_rate"] = single_table["detected"] / single_table["runs"]
    write_csv_atomic(inputs.out / "single_account.csv", single_table)
    roc_frames, aucs = [], {}
    for d in DETECTORS:
        if not get_detector(d).judged_without_clock:
            continue
        curve = roc_curve(benign.loc[benign.detector == d, "score"], single.loc[single.detector == d, "score"])
        aucs[d] = roc_auc(curve)
        roc_frames.append(curve.assign(detector=d))
    roc = pd.concat(roc_frames)
    write_csv_atomic(inputs.out / "roc.csv", roc)
    plots.save_png(plots.roc_curves(roc, aucs, settings.fpr), inputs.out / "roc.png")
    return single_table, aucs


def logged_attacks_step(inputs: StageInputs, prepared: Prepared, calibrations: dict):
    """6. The attack stage's own logs (and ``attack_log``), as they were sent, through the detectors."""
    settings = inputs.settings
    logged_rows, given_accounts = [], []  # given_accounts: the verdict per account of --attack_data's log
    logs = logged_attacks(inputs.ctx.run_dir / "attack", inputs.box.max_query_len)
    given = None
    if settings.attack_log:
        path = Path(settings.attack_log)
        given = traffic_from_records(read_log(path), inputs.box.max_query_len, kind="log:given")
        logs.append((path.name, given))
    for file_name, logged in logs:
        features = prepared(logged)
        for d, c in calibrations.items():
            detector = get_detector(d)
            if not detector.judged_without_clock or (detector.slow and settings.prada_max_queries
                                                     and logged.num_queries > settings.prada_max_queries):
                continue  # logs carry no clock for the rate cap; PRADA is slow
            outcomes = evaluate(c, logged, features, inputs.seat_options, inputs.prada_options,
                                inputs.dataset.num_items)
            logged_rows.append({"log": file_name, "detector": d, "accounts": len(outcomes),
                                "queries": logged.num_queries,
                                "flagged_accounts": sum(o.flagged_at is not None for o in outcomes)})
            if logged is given:
                given_accounts += [{"account": o.name, "detector": d, "queries": int(o.queries),
                                    "flagged_at": None if o.flagged_at is None else int(o.flagged_at),
                                    "flagged_by": o.flagged_by} for o in outcomes]
    write_csv_atomic(inputs.out / "logged_attacks.csv", pd.DataFrame(
        logged_rows, columns=["log", "detector", "accounts", "queries", "flagged_accounts"]))
    if settings.attack_log:
        write_csv_atomic(inputs.out / "attack_log_accounts.csv", pd.DataFrame(
            given_accounts, columns=["account", "detector", "queries", "flagged_at", "flagged_by"]
        ).astype({"flagged_at": "Int64"}))
    return logged_rows, given_accounts


def real_timing_step(inputs: StageInputs) -> tuple[RealTiming | None, str]:
    """7. ML-100K's users with their rating times, mapped to the dataset by title and split by id:
    (them, "") or (None, the reason the real-timing parts are skipped)."""
    settings, mirror = inputs.settings, inputs.ctx.mirror
    if not settings.real_timing:
        return None, "switched off (real_timing=False)"
    if mirror is None:
        return None, "no data mirror (RECSEC_DATA_MIRROR unset), so no ML-100K timestamps"
    folder = Path(mirror) / "ml-100k"
    if not ((folder / "u.data").is_file() and (folder / "u.item").is_file()):
        return None, f"the mirror has no ML-100K ({folder} lacks u.data or u.item)"
    movies = Path(mirror) / "ml-1m" / "movies.dat"
    try:
        real = load_real_timing(inputs.dataset, folder, movies if movies.is_file() else None,
                                settings.real_calibration_fraction, settings.real_min_ratings)
    except ValueError as error:  # too few ML-100K users map onto this dataset's titles to split them
        return None, f"ML-100K does not map onto dataset {inputs.ctx.dataset!r} by title ({error})"
    return real, ""


@dataclass(frozen=True, eq=False)
class PopulationResult:
    """The search's detectors calibrated on one benign population and measured on a disjoint one."""

    calibrations: dict  # detector -> Calibration
    threshold: float  # SEAT's distance threshold, from the calibration population
    table: pd.DataFrame  # detector, kind, accounts, flagged, rate, low, high, target, accounts_to_show, can_show
    calibration_accounts: dict  # form -> accounts
    held_out_accounts: dict  # form -> accounts
    timing: str  # how the benign queries are timed


def population_step(inputs: StageInputs, prepared: Prepared, real: RealTiming | None) -> PopulationResult:
    """8. Benign populations for the searched detectors: every form (the people forms too), timed by real
    ML-100K gaps and with ML-100K users at their own times when ``real``; calibrated on the calibration users,
    measured on the held-out users (exact 95% intervals; ``can_show``: the set is big enough for the interval
    to show the target rate — ``fpr`` overall, 1% per form)."""
    settings, dataset, split, seed = inputs.settings, inputs.dataset, inputs.split, inputs.ctx.seed
    cal_per_form = settings.population_calibration_per_form or None
    held_per_form = settings.population_held_out_per_form or None
    if real is not None:
        cal = benign_population(dataset, split.calibration, real.calibration, settings.population_forms,
                                cal_per_form, seed=seed, shape=inputs.shape).traffic
        held = benign_population(dataset, split.test, real.held_out, settings.population_forms, held_per_form,
                                 seed=seed + 1, shape=inputs.shape).traffic
        timing = ("ML-1M users' forms timed by the real gaps between ML-100K users' ratings (calibration donors for "
                  "calibration, held-out donors for held-out); ML-100K users at their own rating times")
    else:
        def synthetic(users, per_form, offset):
            return benign_traffic([dataset.sequence(int(u)) for u in users], users.tolist(),
                                  settings.population_forms, dataset.max_len, seed=seed + offset, shape=inputs.shape,
                                  max_accounts_per_form=per_form)
        cal, held = synthetic(split.calibration, cal_per_form, 0), synthetic(split.test, held_per_form, 1)
        timing = "the benign forms' model times (Exponential gaps): no real timing"
    stats = benign_statistics(cal, prepared(cal), inputs.seat_options, num_items=dataset.num_items, seed=seed,
                              with_prada=False)
    calibrations = {d: calibrate(d, stats, settings.fpr) for d in settings.search_detectors}
    held_stats = benign_statistics(held, prepared(held), inputs.seat_options, num_items=dataset.num_items,
                                   seed=seed, with_prada=False, threshold=stats.threshold)
    table = rate_table(pd.concat([benign_frame(c, held_stats) for c in calibrations.values()]))
    table["target"] = np.where(table["kind"] == "all", settings.fpr, FORM_TARGET)
    table["accounts_to_show"] = [accounts_to_show(t) for t in table["target"]]
    table["can_show"] = table["accounts"] >= table["accounts_to_show"]
    write_csv_atomic(inputs.out / "fpr_intervals.csv", table)

    def counts(traffic):
        kinds, number = np.unique(np.array(traffic.kinds), return_counts=True)
        return dict(zip(kinds.tolist(), [int(n) for n in number]))
    return PopulationResult(calibrations, float(stats.threshold), table, counts(cal), counts(held), timing)


def search_step(inputs: StageInputs, encoder, population: PopulationResult, real: RealTiming | None,
                real_skipped: str = "") -> tuple[SearchResult, str]:
    """9. The attacker who chooses: per registered generator its own ``choices`` (narrowed by the settings), the
    splits over accounts and the pacing windows, on a grid, against every searched detector; the public-data
    attacker (ML-100K histories mapped by title) where ``real``. Returns the combined search and the reason the
    public-data attacker was skipped ("" when searched)."""
    settings, dataset, box = inputs.settings, inputs.dataset, inputs.box
    context = MonitorContext(population.threshold, encoder.config.dim, dataset.num_items, inputs.seat_options)
    budget = search_budget(settings)

    def sample(traffic):
        return featured_sample(traffic, encoder, dataset.num_items, inputs.target, settings.k, box.filter_seen,
                               inputs.device, inputs.ctx.seed)

    results = []
    for offset, name in enumerate(settings.search_attackers):
        collector = GeneratorCollector(name, box, budget, settings.attack_seq_len, inputs.ctx.seed + 100 + offset,
                                       sample, keep=False)
        space = generator_space(name, settings.search_splits, settings.search_horizons_h,
                                **settings.narrowed(name))
        results.append(search_attacker(collector, space, population.calibrations, context, label=name,
                                       progress=log.info))
    public_skipped = "switched off (public_streams is empty)" if not settings.public_streams else ""
    if real is None and not public_skipped:
        public_skipped = f"no ML-100K histories ({real_skipped or 'no real timing'})"
    if not public_skipped:
        histories = [h.items for h in real.calibration + real.held_out]

        def collect(setting):
            streams = public_streams(histories, setting["streams"], seed=inputs.ctx.seed)
            return sample(public_traffic(streams, box.max_query_len, budget, PUBLIC))
        space = AttackSpace({"streams": tuple(settings.public_streams)}, settings.search_splits,
                            settings.search_horizons_h)
        results.append(search_attacker(collect, space, population.calibrations, context, label=PUBLIC,
                                       progress=log.info))
    return combine(results), public_skipped


def search_fidelity_step(inputs: StageInputs, search: SearchResult, real: RealTiming | None = None) -> SearchResult:
    """10. The surrogate's Agr@10 at each detector's cheapest point (the winning setting collected again with the
    same seed; fixed epochs): cost to fidelity. A generator's surrogate trains on what that generator collects;
    the public-data attacker's on a sample of ``one_query_training_rows`` of its (query, answer) pairs
    (``public_data.public_collected``)."""
    settings = inputs.settings
    if not settings.search_fidelity:
        return search
    budget = search_budget(settings)
    surrogate_settings = _surrogate_settings(settings, inputs.box.filter_seen, inputs.ctx.seed)
    measured: dict[tuple, dict] = {}
    table = search.table.copy()
    table["agr10"] = np.nan
    table["agr1"] = np.nan
    parameter_columns = _parameter_columns(table)
    for row in search.best.itertuples(index=False):
        name = row.attacker
        if pd.isna(row.accounts_needed) or (name == PUBLIC and real is None) or (
                name != PUBLIC and name not in settings.search_attackers):
            continue
        if name == PUBLIC:
            setting = {"streams": int(row.streams)}
        else:
            choices = GENERATORS.get(name).choices
            setting = {c: _choice(getattr(row, c), choices[c]) for c in parameter_columns
                       if c in choices and not pd.isna(getattr(row, c))}
        key = (name, tuple(sorted(setting.items())))
        if key not in measured:
            if name == PUBLIC:
                streams = public_streams([h.items for h in real.calibration + real.held_out], setting["streams"],
                                         seed=inputs.ctx.seed)
                collected = public_collected(inputs.box, streams, budget, settings.attack_seq_len,
                                             settings.one_query_training_rows, inputs.ctx.seed, PUBLIC)
            else:
                offset = settings.search_attackers.index(name)
                collected = GENERATORS.build(name, **setting).collect(inputs.box, budget, settings.attack_seq_len,
                                                                      inputs.ctx.seed + 100 + offset, account=name)
            seed_everything(inputs.ctx.seed)
            figures = zoo_surrogate(collected, inputs.target, inputs.dataset, settings.surrogate_arch,
                                    surrogate_settings, inputs.device)
            measured[key] = {"agr10": figures["agr10"], "agr1": figures["agr1"]}
        mask = (table.attacker == name) & (table.setting == row.setting)
        for column, value in measured[key].items():
            table.loc[mask, column] = value
    table["fidelity"] = table["agr10"]
    return SearchResult(table, cheapest(table))


def verdict_step(inputs: StageInputs, population: PopulationResult, search: SearchResult, real: RealTiming | None,
                 real_skipped: str, public_skipped: str) -> dict:
    """11. The worst case per detector over the whole search, the best detector, its false positives with
    intervals, the verdict sentence; writes ``accounts_needed.csv`` (every grid point), ``search_best.csv``
    and ``accounts_needed.png``."""
    settings = inputs.settings
    write_csv_atomic(inputs.out / "accounts_needed.csv", search.table)
    best = search.best
    write_csv_atomic(inputs.out / "search_best.csv", best)
    plots.save_png(search_costs(best), inputs.out / "accounts_needed.png")
    parameters = _parameter_columns(search.table)
    real_forms = [form for form in REAL_FORMS if form in set(population.table.kind)]
    headline = detection_headline(best, population.table, candidates=list(settings.search_detectors),
                                  real_forms=real_forms, parameters=parameters)
    top = best[best.detector == headline["detect_best"]].iloc[0]
    overall = population.table[(population.table.detector == headline["detect_best"])
                               & (population.table.kind == "all")].iloc[0]
    forms = population.table[population.table.kind != "all"]
    out = {**{k: v for k, v in headline.items() if k != "targets"},
           "detect_best_worst_point_text": _point_text(top),
           "detect_best_worst_point_agr10": None if pd.isna(top.get("agr10", np.nan)) else float(top["agr10"]),
           "detect_best_fpr_interval_can_show_target": bool(overall["can_show"]),
           "detect_best_false_positive_accounts_to_show_target": int(overall["accounts_to_show"]),
           "detection_verdict": verdict_sentence(headline),
           "detection_targets": headline["targets"],
           "search_best": best.replace({np.nan: None}).to_dict(orient="records"),
           "search_grid_points": int(len(search.table)),
           "search_note": (
               "accounts needed = the fewest accounts (grid " + ", ".join(map(str, ACCOUNT_GRID)) + ", then "
               "bisection) over which the attacker's queries can be dealt with no account flagged; per detector the "
               "MINIMUM over a grid (every combination tried) of: the registered generators "
               + ", ".join(settings.search_attackers) + " with their own choices" + (
                   f" narrowed to chains {settings.search_chains}" if settings.search_chains else "")
               + (f", random_mix {settings.search_random_mix}" if settings.search_random_mix else "")
               + (f", mix_weights {settings.search_mix_weights}" if settings.search_mix_weights else "")
               + (f"; the public-data attacker (ML-100K histories by title, streams {settings.public_streams})"
                  if not public_skipped else "")
               + f"; splits {settings.search_splits}; pacing windows {settings.search_horizons_h} h; each attacker "
               f"sends {search_budget(settings):,} queries; None = flagged at every N"),
           "real_timing_skipped": real_skipped or None,
           "public_data_attacker_skipped": public_skipped or None,
           "benign_population_timing": population.timing,
           "benign_population_calibration_accounts": population.calibration_accounts,
           "benign_population_held_out_accounts": population.held_out_accounts,
           "benign_population_forms_that_cannot_show_1pct": sorted(
               set(forms.loc[~forms["can_show"].astype(bool), "kind"])),
           "benign_fpr_intervals": population.table.replace({np.nan: None}).to_dict(orient="records")}
    if real is not None:
        report = real.report
        out["ml100k_mapping"] = {**asdict(report), "calibration_users": len(real.calibration),
                                 "held_out_users": len(real.held_out)}
    return out


PUBLIC = "public"  # the public-data attacker's label in the search tables


def search_budget(settings: Settings) -> int:
    """Queries each searched attacker sends."""
    return settings.search_budget_queries or settings.attack_sequences * settings.attack_seq_len
FORM_TARGET = 0.01  # no benign form above 1% (issue 24)


def _point_text(row) -> str:
    """A search point in words: attacker, its setting, the split and the pacing window."""
    setting = f" ({row['setting']})" if isinstance(row.get("setting"), str) and row["setting"] else ""
    return f"{row['attacker']}{setting}, {row['split']} split, paced over {float(row['horizon_h']):g} h"


def _parameter_columns(table: pd.DataFrame) -> list[str]:
    """The generator-parameter columns of a search table (the columns that are not the search's own)."""
    fixed = {"attacker", "split", "horizon_h", "detector", "accounts_needed", "queries", "sources", "fidelity",
             "setting", "agr10", "agr1"}
    return [c for c in table.columns if c not in fixed]


def _choice(value, choices: tuple):
    """A table cell as the generator's own value of that choice (a column with gaps holds 1.0 for 1)."""
    for choice in choices:
        if choice == value:
            return choice
    raise ValueError(f"{value!r} is not among the choices {choices}")

HEADLINE_KEYS = ("seat_detection_rate_single_account", "seat_false_positive_rate", "seat_accounts_needed",
                 "seat_worst_attack", "volume_cap_accounts_needed", "prada_accounts_needed",
                 "seat_monitor_queries_per_second", "seat_cost_increase_over_volume_cap",
                 "seat_plus_cap_accounts_needed", "seat_plus_cap_worst_attack",
                 "seat_plus_cap_cost_increase_over_volume_cap", "seat_plus_cap_cost_increase_over_caps",
                 "caps_accounts_needed", "rate_cap_accounts_needed", "seat_plus_cap_false_positive_rate",
                 # the attacker who chooses its parameters (worst case over the search) and real-timing users
                 "detect_best", "detect_best_accounts_needed_worst", "volume_cap_accounts_needed_worst",
                 "caps_accounts_needed_worst", "detect_best_cost_increase_over_volume_cap",
                 "detect_best_cost_increase_over_caps", "detect_best_false_positive_rate",
                 "detect_best_false_positive_rate_high", "detect_best_worst_form", "detect_best_worst_form_rate",
                 "detect_best_worst_form_rate_high", "detect_best_worst_point_text", "detect_best_worst_point_agr10",
                 "detect_best_fpr_interval_can_show_target", "benign_real_timing_false_positive_rate_caps",
                 "benign_real_timing_false_positive_rate_caps_high", "real_timing_skipped",
                 "public_data_attacker_skipped")


def _surrogate_settings(settings: Settings, filter_seen: bool, seed: int):
    from recsec_lib.attack.surrogate import SurrogateSettings

    return SurrogateSettings(epochs=settings.surrogate_epochs, max_train_seconds=settings.surrogate_seconds,
                             min_epochs=min(15, settings.surrogate_epochs), filter_seen=filter_seen, seed=seed)


@dataclass(frozen=True)
class SeatResults:
    """What the stage's parts measured, gathered by name so that ``metrics()`` can lay out metrics.json."""

    settings: Settings
    calibrations: dict  # detector name -> its Calibration (threshold and limits)
    fpr_table: pd.DataFrame  # held-out benign accounts: detector, kind (form), rate
    single_table: pd.DataFrame  # single-account attacks: detector, generator, budget, runs, detected
    needed: pd.DataFrame  # zoo: attack, detector, accounts_needed, queries
    zoo_table: pd.DataFrame  # zoo: per attack, accounts needed per detector beside the surrogate's fidelity
    throughput: dict  # the SEAT monitor's queries per second
    aucs: dict  # ROC AUC per detector
    losses: list  # the encoder's training losses ([] when a saved encoder was used)
    target_path: object  # the target checkpoint the box served
    test_traffic: object  # the held-out benign Traffic
    logged_rows: list  # logged attacks replayed through each detector
    benign_log_fpr: object  # FPR on a given benign log (None without one)
    seconds: dict  # wall seconds per part
    timer: dict  # the stage's wall seconds and peak memory

    def metrics(self) -> dict:
        """metrics.json of the stage: the headline figures, the tables as records, the settings and the timing."""
        settings, fpr_table, single_table, needed, throughput = (self.settings, self.fpr_table, self.single_table,
                                                                 self.needed, self.throughput)
        seat_single = single_table[single_table.detector == "seat"]
        detection = float(seat_single["detected"].sum() / seat_single["runs"].sum())
        rates = {(r.detector, r.kind): float(r.rate) for r in fpr_table.itertuples()}
        forms = [k for d, k in rates if d == "seat+cap" and k != "all"]
        worst = worst_case_headline(needed)
        per_attack = {f"{r.attack}/{r.detector}": (None if pd.isna(r.accounts_needed) else int(r.accounts_needed))
                      for r in needed.itertuples()}
        metrics = {
            "seat_detection_rate_single_account": detection,
            "seat_false_positive_rate": rates[("seat", "all")],
            "seat_plus_cap_false_positive_rate": rates[("seat+cap", "all")],
            **worst,
            "seat_monitor_queries_per_second": round(throughput["queries_per_second"], 1),
            "accounts_needed_note": (
                "smallest number of accounts over which the attacker's queries can be split (contiguous chunks) with no "
                "account flagged; every headline count is the MINIMUM over all zoo attackers ("
                + ", ".join(settings.zoo) + f"), each sending {settings.attack_sequences * settings.attack_seq_len:,} "
                f"queries; rate cap: attacker paces evenly over {settings.attack_horizon_hours:g} h; None = flagged at "
                "every N of the grid"),
            "accounts_needed_per_attack": per_attack,
            "zoo": self.zoo_table.replace({np.nan: None}).to_dict(orient="records"),
            "false_positive_rate": {d: rates[(d, "all")] for d in DETECTORS},
            "false_positive_rate_by_form": {f"{d}/{k}": v for (d, k), v in rates.items()},
            "seat_plus_cap_worst_form": max(forms, key=lambda k: rates[("seat+cap", k)]) if forms else None,
            "seat_plus_cap_worst_form_rate": max((rates[("seat+cap", k)] for k in forms), default=None),
            "benign_test_accounts": len(self.test_traffic.names),
            "benign_test_queries": self.test_traffic.num_queries,
            "single_account_detection": {f"{r.detector}/{r.generator}/{r.budget}": float(r.detection_rate)
                                         for r in single_table.itertuples()},
            "single_account_runs": int(seat_single["runs"].sum()),
            "roc_auc": self.aucs,
            "calibration": {d: c.summary() for d, c in self.calibrations.items()},
            "throughput": throughput,
            # None: a saved encoder was used
            "encoder_loss_first_last": [self.losses[0], self.losses[-1]] if self.losses else None,
            "logged_attacks": self.logged_rows,
            "benign_log_false_positive_rate": self.benign_log_fpr,
            "target_checkpoint": str(self.target_path),
            "settings": asdict(settings),
            "part_seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "wall_seconds": self.timer["wall_seconds"],
            "peak_memory_mb": self.timer["peak_memory_mb"],
        }
        increase = metrics.get("seat_cost_increase_over_volume_cap")
        plus = metrics.get("seat_plus_cap_cost_increase_over_volume_cap")
        metrics["targets"] = {
            "single_account_detection_ge_0.99": detection >= 0.99,
            "false_positive_rate_le_0.001": metrics["seat_plus_cap_false_positive_rate"] <= 0.001,
            "no_benign_form_above_0.01": (metrics["seat_plus_cap_worst_form_rate"] or 0.0) <= 0.01,
            "worst_case_cost_increase_ge_4x": plus is not None and plus >= 4,
            "seat_alone_worst_case_cost_increase_ge_4x": increase is not None and increase >= 4,
            "seat_adds_to_the_caps_ge_4x": (metrics.get("seat_plus_cap_cost_increase_over_caps") or 0) >= 4,
            "monitor_ge_5000_queries_per_second": throughput["queries_per_second"] >= 5000,
        }
        return metrics
