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
* ``metrics.json`` — all figures, settings, timings; headline keys merged.

Headline figures are worst cases: the minimum over every zoo attacker.
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
from recsec_lib.seat.benign import ALL_FORMS, BenignShape, benign_traffic
from recsec_lib.seat.calibration import PradaOptions, SeatOptions
from recsec_lib.seat.detectors import DEFAULT_DETECTORS as DETECTORS, benign_frame, calibrate, get_detector
from recsec_lib.seat.statistics import benign_statistics
from recsec_lib.seat.encoder import EncoderConfig, EncoderTraining, load_encoder, save_encoder, train_encoder
from recsec_lib.seat.evaluation import (evaluate, false_positive_table, measure_throughput, roc_auc, roc_curve,
                                        single_account_outcomes)
from recsec_lib.seat.inputs import load_box, logged_attacks, read_log
from recsec_lib.seat.plots import zoo_costs
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

    PROFILES = {
        "smoke": {"k": 5, "encoder_dim": 16, "encoder_window": 10, "encoder_steps": 30, "encoder_batch": 32,
                  "max_edits": 2, "attack_sequences": 40, "attack_seq_len": 8, "single_budgets": (5, 10, 40),
                  "chain_count": 4, "max_sessions": 16, "fpr": 0.01, "cpu_threads": 1,
                  "surrogate_epochs": 2, "accounts_per_form": 20},
        # Zoo surrogates stop on a number of epochs, never on the clock (the same run twice gives the same Agr@10):
        # 20 epochs of 200 x 200 queries take about the 20 s per surrogate the earlier time cap allowed on 2 cores.
        "cpu": {"attack_sequences": 200, "single_budgets": (10, 50, 200), "chain_count": 20, "accounts_per_form": 200,
                "surrogate_epochs": 20, "prada_max_queries": 20_000, "cpu_threads": 1},
        "full": {"encoder_steps": 2000, "one_query_training_rows": 20_000},
    }

    def seat_options(self) -> SeatOptions:
        return SeatOptions(max_sessions=self.max_sessions, max_removed=self.max_changed, max_added=self.max_changed,
                           follow_drift=self.follow_drift, pair_quantile=self.pair_quantile,
                           rate_window_s=self.rate_window_s)

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


@dataclass(frozen=True)
class StageInputs:
    """What every step of the stage reads: the run, the settings, the served target and the user split."""

    ctx: StudyContext
    settings: Settings
    out: Path  # the stage folder
    dataset: object  # the SequenceDataset
    device: torch.device
    box: object  # the served top-k box of the target
    target: object  # the target model (the zoo's surrogates are scored against it)
    target_path: Path
    split: object  # UserSplit: encoder, calibration and test users
    seat_options: object
    prada_options: PradaOptions

    @property
    def n_items(self) -> int:
        return self.dataset.num_items

    def prepared(self, traffic, encoder):
        """Features of ``traffic`` as every detector reads them (the encoder's embeddings, the follow score)."""
        return prepare_traffic(traffic, encoder, self.n_items, self.target, self.settings.k, self.box.filter_seen,
                               self.ctx.seed, self.device)


def _run(ctx: StudyContext, settings: Settings) -> dict:
    seconds: dict[str, float] = {}
    with runs.stage_timer() as timer:
        seed_everything(ctx.seed)
        inputs = _stage_inputs(ctx, settings)
        started = time.perf_counter()
        encoder, losses = _encoder_step(inputs)
        seconds["encoder"] = time.perf_counter() - started
        started = time.perf_counter()
        calibrations = _calibration_step(inputs, encoder)
        seconds["calibration"] = time.perf_counter() - started
        started = time.perf_counter()
        test_traffic, test_features, benign, fpr_table, benign_log_fpr = _benign_test_step(inputs, encoder,
                                                                                           calibrations)
        seconds["benign_test"] = time.perf_counter() - started
        needed, zoo_table, attacks, seconds["zoo"] = _zoo_step(inputs, encoder, calibrations)
        single_table, aucs = _single_account_step(inputs, attacks, calibrations, benign)
        logged_rows, given_accounts = _logged_attacks_step(inputs, encoder, calibrations)
        throughput = measure_throughput(encoder, calibrations["seat"], test_traffic, seat=inputs.seat_options,
                                        follow=test_features.follow)

    metrics = SeatResults(
        settings=settings, calibrations=calibrations, fpr_table=fpr_table, single_table=single_table, needed=needed,
        zoo_table=zoo_table, throughput=throughput, aucs=aucs, losses=losses, target_path=inputs.target_path,
        test_traffic=test_traffic, logged_rows=logged_rows, benign_log_fpr=benign_log_fpr, seconds=seconds,
        timer=timer).metrics()
    if settings.attack_log:  # per account and detector: the query at which it was flagged (None: never)
        metrics["attack_log_accounts"] = given_accounts
    headline = {key: metrics.get(key) for key in HEADLINE_KEYS}
    runs.write_stage_metrics(ctx.run_dir, STAGE, metrics, headline)
    return metrics


def _stage_inputs(ctx: StudyContext, settings: Settings) -> StageInputs:
    dataset = ctx.load_dataset()
    device = ctx.torch_device()
    target_path = (Path(settings.target_path) if settings.target_path
                   else ctx.run_dir / "train" / f"{settings.target_model}.pt")
    box, target = load_box(target_path, dataset, settings.k, device)  # first: fails fast
    split = split_users(dataset.num_users, settings.encoder_fraction, settings.calibration_fraction)
    return StageInputs(ctx=ctx, settings=settings, out=ctx.stage_dir(STAGE), dataset=dataset, device=device, box=box,
                       target=target, target_path=target_path, split=split, seat_options=settings.seat_options(),
                       prada_options=PradaOptions())


def _encoder_step(inputs: StageInputs):
    """1. The encoder, from the encoder users' training sequences only; returns (encoder on the CPU, losses)."""
    settings, dataset, n_items = inputs.settings, inputs.dataset, inputs.n_items
    if settings.encoder_path:
        encoder, losses = load_encoder(settings.encoder_path), []
        if encoder.config.num_items != n_items:
            raise ValueError(f"encoder {settings.encoder_path} was built for {encoder.config.num_items} items, "
                             f"the dataset has {n_items}")
    else:
        config = EncoderConfig(num_items=n_items, window=settings.encoder_window, dim=settings.encoder_dim,
                               hidden=2 * settings.encoder_dim)
        training = EncoderTraining(steps=settings.encoder_steps, batch_size=settings.encoder_batch,
                                   max_edits=settings.max_edits, seed=inputs.ctx.seed)
        encoder, losses = train_encoder([dataset.sequence(int(u))[:-2] for u in inputs.split.encoder], config,
                                        training, device=inputs.device)
    save_encoder(encoder, inputs.out / "encoder.pt")
    return encoder.cpu(), losses


def _benign_shape(settings: Settings) -> tuple[BenignShape, int | None]:
    return BenignShape(refresh_mean=settings.refresh_mean), settings.accounts_per_form or None


def _calibration_step(inputs: StageInputs, encoder) -> dict:
    """2. Calibration on benign calibration accounts; frozen before any test account is built."""
    settings, dataset, split, seed = inputs.settings, inputs.dataset, inputs.split, inputs.ctx.seed
    shape, per_form = _benign_shape(settings)
    cal_traffic = benign_traffic([dataset.sequence(int(u)) for u in split.calibration],
                                 split.calibration.tolist(), settings.benign_forms, dataset.max_len,
                                 seed=seed, shape=shape, max_accounts_per_form=per_form)
    stats = benign_statistics(cal_traffic, inputs.prepared(cal_traffic, encoder), inputs.seat_options,
                              inputs.prada_options, inputs.n_items, seed)
    calibrations = {d: calibrate(d, stats, settings.fpr) for d in DETECTORS}
    runs.write_json_atomic(inputs.out / "calibration.json", {
        "user_split": {name: [int(block[0]), int(block[-1])] for name, block in
                       (("encoder", split.encoder), ("calibration", split.calibration), ("test", split.test))},
        "calibration_accounts": len(cal_traffic.names), "calibration_queries": cal_traffic.num_queries,
        "detectors": {d: c.summary() for d, c in calibrations.items()}})
    return calibrations


def _benign_test_step(inputs: StageInputs, encoder, calibrations: dict):
    """3. Held-out benign accounts: false positives per form (and on a given benign log)."""
    settings, dataset, split, seed = inputs.settings, inputs.dataset, inputs.split, inputs.ctx.seed
    shape, per_form = _benign_shape(settings)
    test_traffic = benign_traffic([dataset.sequence(int(u)) for u in split.test], split.test.tolist(),
                                  settings.benign_forms, dataset.max_len, seed=seed + 1, shape=shape,
                                  max_accounts_per_form=per_form)
    test_features = inputs.prepared(test_traffic, encoder)
    test_stats = benign_statistics(test_traffic, test_features, inputs.seat_options, inputs.prada_options,
                                   inputs.n_items, seed, threshold=calibrations["seat"].threshold)
    benign = pd.concat([benign_frame(c, test_stats) for c in calibrations.values()])
    fpr_table = false_positive_table(benign)
    write_csv_atomic(inputs.out / "fpr_by_form.csv", fpr_table)
    benign_log_fpr = None
    if settings.benign_log:
        logged = traffic_from_records(read_log(Path(settings.benign_log)), dataset.max_len, kind="log:benign")
        features = inputs.prepared(logged, encoder)
        benign_log_fpr = {d: float(np.mean([o.flagged_at is not None for o in
                                            evaluate(c, logged, features, inputs.seat_options, inputs.prada_options,
                                                     inputs.n_items)]))
                          for d, c in calibrations.items()}
    return test_traffic, test_features, benign, fpr_table, benign_log_fpr


def _zoo_step(inputs: StageInputs, encoder, calibrations: dict):
    """4. The attacker zoo: traffic, accounts needed per detector, the surrogate each attacker trains.

    Returns (accounts needed per attack and detector, the zoo table, the random and autoregressive attacks with
    their features for step 5, the zoo's seconds)."""
    settings, ctx, box, n_items = inputs.settings, inputs.ctx, inputs.box, inputs.n_items
    budget = settings.attack_sequences * settings.attack_seq_len
    surrogate_settings = _surrogate_settings(settings, box.filter_seen, ctx.seed)
    horizon_s = settings.attack_horizon_hours * 3600.0
    needed_rows, fidelity_rows, attacks = [], [], {}
    for offset, name in enumerate(settings.zoo):
        started = time.perf_counter()
        attack = GENERATORS.build(name, **settings.zoo_parameters(name)).collect(
            box, budget, settings.attack_seq_len, seed=ctx.seed + 10 + offset, account=f"zoo/{name}")
        features = inputs.prepared(attack.traffic, encoder)
        splits = SplitStatistics(attack, features, calibrations["seat"].threshold, inputs.seat_options, n_items)
        for d, c in calibrations.items():
            needed = accounts_needed(c, attack, features, horizon_s, splits, inputs.seat_options,
                                     inputs.prada_options, n_items, prada_max_queries=settings.prada_max_queries)
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
    return needed, zoo_table, attacks, sum(r["seconds"] for r in fidelity_rows)


def _single_account_step(inputs: StageInputs, attacks: dict, calibrations: dict, benign: pd.DataFrame):
    """5. Single-account runs of the study's two generators, and the ROC of the main statistics."""
    settings, out = inputs.settings, inputs.out
    single = single_account_outcomes(attacks, calibrations, settings.single_budgets, inputs.seat_options,
                                     inputs.prada_options, inputs.n_items, settings.prada_max_queries)
    single_table = (single.groupby(["detector", "generator", "budget"])
                    .agg(runs=("name", "size"), detected=("flagged", "sum"),
                         median_queries_to_detect=("flagged_at", "median")).reset_index())
    single_table["detection_rate"] = single_table["detected"] / single_table["runs"]
    write_csv_atomic(out / "single_account.csv", single_table)
    roc_frames, aucs = [], {}
    for d in DETECTORS:
        if not get_detector(d).judged_without_clock:
            continue
        curve = roc_curve(benign.loc[benign.detector == d, "score"], single.loc[single.detector == d, "score"])
        aucs[d] = roc_auc(curve)
        roc_frames.append(curve.assign(detector=d))
    roc = pd.concat(roc_frames)
    write_csv_atomic(out / "roc.csv", roc)
    plots.save_png(plots.roc_curves(roc, aucs, settings.fpr), out / "roc.png")
    return single_table, aucs


def _logged_attacks_step(inputs: StageInputs, encoder, calibrations: dict):
    """6. The attack stage's own logs (and --attack_log's), replayed as they were sent.

    Returns (a row per log and detector, the verdict per account of the given log)."""
    settings, box, out = inputs.settings, inputs.box, inputs.out
    logged_rows, given_accounts = [], []
    logs = logged_attacks(inputs.ctx.run_dir / "attack", box.max_query_len)
    given = None
    if settings.attack_log:
        path = Path(settings.attack_log)
        given = traffic_from_records(read_log(path), box.max_query_len, kind="log:given")
        logs.append((path.name, given))
    for file_name, logged in logs:
        features = inputs.prepared(logged, encoder)
        for d, c in calibrations.items():
            detector = get_detector(d)
            if not detector.judged_without_clock or (detector.slow and settings.prada_max_queries
                                                     and logged.num_queries > settings.prada_max_queries):
                continue  # logs carry no clock for the rate cap; PRADA is slow
            outcomes = evaluate(c, logged, features, inputs.seat_options, inputs.prada_options, inputs.n_items)
            logged_rows.append({"log": file_name, "detector": d, "accounts": len(outcomes),
                                "queries": logged.num_queries,
                                "flagged_accounts": sum(o.flagged_at is not None for o in outcomes)})
            if logged is given:
                given_accounts += [{"account": o.name, "detector": d, "queries": int(o.queries),
                                    "flagged_at": None if o.flagged_at is None else int(o.flagged_at),
                                    "flagged_by": o.flagged_by} for o in outcomes]
    write_csv_atomic(out / "logged_attacks.csv", pd.DataFrame(
        logged_rows, columns=["log", "detector", "accounts", "queries", "flagged_accounts"]))
    if settings.attack_log:
        write_csv_atomic(out / "attack_log_accounts.csv", pd.DataFrame(
            given_accounts, columns=["account", "detector", "queries", "flagged_at", "flagged_by"]
        ).astype({"flagged_at": "Int64"}))
    return logged_rows, given_accounts


HEADLINE_KEYS = ("seat_detection_rate_single_account", "seat_false_positive_rate", "seat_accounts_needed",
                 "seat_worst_attack", "volume_cap_accounts_needed", "prada_accounts_needed",
                 "seat_monitor_queries_per_second", "seat_cost_increase_over_volume_cap",
                 "seat_plus_cap_accounts_needed", "seat_plus_cap_worst_attack",
                 "seat_plus_cap_cost_increase_over_volume_cap", "seat_plus_cap_cost_increase_over_caps",
                 "caps_accounts_needed", "rate_cap_accounts_needed", "seat_plus_cap_false_positive_rate")


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
