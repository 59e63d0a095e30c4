"""SEAT stage: detect extraction attacks from the query log, against two baselines.

Reads the trained target ``<run>/train/sasrec.pt`` (it answers the attack
queries through the study's black box) and, where present, the attack stage's
query logs ``<run>/attack/*.npz`` / ``*.jsonl``. Writes into ``<run>/seat/``:

* ``encoder.pt`` — the similarity encoder (trained on the encoder users only);
* ``calibration.json`` — the frozen threshold and limits of SEAT, the volume
  cap and PRADA, fitted on calibration accounts before any test account exists;
* ``fpr_by_form.csv`` — false positives on held-out benign accounts per form;
* ``single_account.csv`` — detection of single-account attacks per generator
  and budget, and the queries sent before detection;
* ``accounts_sweep.csv``, ``detection_vs_accounts.png`` — each attack split
  over N accounts: flagged accounts per detector and N;
* ``accounts_needed.csv`` — the smallest N with no flagged account, per detector
  and attack, and SEAT's cost increase over the volume cap;
* ``roc.csv``, ``roc.png`` — ROC of the per-account scores (benign test
  accounts vs attack accounts);
* ``logged_attacks.csv`` — the attack stage's own logs through the detectors;
* ``metrics.json`` — all figures, settings, timings; headline keys merged.

Users are split by id: the first half trains the encoder, the next quarter
gives the calibration accounts, the last quarter the test accounts. The
target itself was trained on every user's training part; that does not matter
here because the detectors never read the answers.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from recsec_lib.common import plots  # noqa: E402

from recsec_lib.study import runs
from recsec_lib.seat import traffic as tr  # noqa: E402
from recsec_lib.seat.calibration import DETECTORS, PradaOptions, SeatOptions, calibrate  # noqa: E402
from recsec_lib.seat.encoder import (EncoderConfig, EncoderTraining, load_encoder, save_encoder,  # noqa: E402
                                    train_encoder)
from recsec_lib.seat.evaluation import (ACCOUNT_GRID, accounts_sweep, evaluate, flag_rates,  # noqa: E402
                                        measure_throughput, outcomes_frame, roc_auc, roc_curve)
from recsec_lib.seat.replay import TrafficFeatures, featurize  # noqa: E402
from recsec_lib.study.stages.context import StudyContext, seed_everything  # noqa: E402

STAGE = "seat"
log = logging.getLogger(__name__)
GENERATORS = ("random", "autoregressive")


@dataclass(frozen=True)
class Settings:
    fpr: float = 0.001  # target false-positive rate on benign accounts
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
    # detectors
    pair_quantile: float = 0.01  # SEAT threshold: this quantile of cross-user distances
    max_sessions: int = 64  # session tips SEAT remembers per account
    # attacks
    attack_sequences: int = 5000  # sequences per generator (the sweep's attack and the pool of runs)
    attack_seq_len: int = 200  # each sequence costs this many queries
    single_budgets: tuple[int, ...] = (10, 25, 50, 100, 250, 500, 1000, 5000)  # sequences per single-account run
    adaptive_random_mix: float = 0.5  # adaptive attacker: share of random items in its walks
    chain_count: int = 50  # adaptive "chain" attacker: this many long walks, one growing session each
    chain_steps: int = 2000  # ... each this long, queried through a sliding window
    prada_max_queries: int = 0  # queries per attack sweep PRADA is run on; 0 = all
    cpu_threads: int = 0  # torch CPU threads during the stage; 0 = torch's default. The encoder's
    # matrices are tiny: on a busy 2-core machine 1 thread was ~20x faster than 2 contending ones.

    @classmethod
    def for_profile(cls, profile: str) -> "Settings":
        if profile == "smoke":
            return cls(k=5, encoder_dim=16, encoder_window=10, encoder_steps=30, encoder_batch=32, max_edits=2,
                       attack_sequences=40, attack_seq_len=8, single_budgets=(5, 10, 40), chain_count=4,
                       chain_steps=40, max_sessions=16, fpr=0.01, cpu_threads=1)
        if profile == "cpu":
            return cls(attack_sequences=1000, single_budgets=(10, 25, 50, 100, 250, 500, 1000),
                       chain_count=20, prada_max_queries=100_000, cpu_threads=1)
        if profile == "full":
            return cls(encoder_steps=2000)
        raise ValueError(f"parameter 'profile' must be smoke, cpu or full, got {profile!r}")

    def with_overrides(self, **values) -> "Settings":
        """A copy with the given fields replaced; None keeps the profile's value."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SEAT setting(s) {unknown}; known: {sorted(known)}")
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def _seat_options(settings: Settings) -> SeatOptions:
    return SeatOptions(max_sessions=settings.max_sessions, pair_quantile=settings.pair_quantile)


def _load_box(ctx: StudyContext, settings: Settings, dataset, device):
    """The study's black box around the trained target."""
    from recsec_lib.attack.blackbox import BlackBoxRecommender
    from recsec_lib.recommend.checkpoints import load_checkpoint

    path = Path(settings.target_path) if settings.target_path else ctx.run_dir / "train" / f"{settings.target_model}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"target checkpoint {path} does not exist: run the train stage first "
                                "(or set target_path)")
    loaded = load_checkpoint(path, dataset=dataset, device=device)
    # The service filters seen items unless the catalogue is too small for it (the tiny smoke data).
    filter_seen = settings.k + loaded.model.max_len <= dataset.num_items
    box = BlackBoxRecommender(loaded.model, k=settings.k, filter_seen=filter_seen, keep_answers=False,
                              device=device, seed=ctx.seed)
    return box, path


def _histories(dataset, users: np.ndarray) -> list[np.ndarray]:
    return [dataset.sequence(int(u)) for u in users]


def _read_log(path: Path):
    """The records of a query log: a QueryLog .npz or JSON lines (``recsec_lib.attack.querylog``)."""
    from recsec_lib.attack.querylog import QueryLog, load_log

    if not path.is_file():
        raise FileNotFoundError(f"query log {path} does not exist")
    return QueryLog.load(path) if path.suffix == ".npz" else load_log(path)


def _logged_attacks(attack_dir: Path, max_len: int) -> list[tuple[str, tr.Traffic]]:
    """Query logs the attack stage saved (QueryLog .npz or JSON lines); other files are skipped."""
    found = []
    if not attack_dir.is_dir():
        return found
    for path in sorted(attack_dir.glob("*.npz")) + sorted(attack_dir.glob("*.jsonl")):
        try:
            records = _read_log(path)
            found.append((path.name, tr.traffic_from_records(records, max_len, kind=f"log:{path.stem}")))
        except (ValueError, KeyError, OSError):
            continue  # not a query log (e.g. collected training pairs)
    return found


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
    out = ctx.stage_dir(STAGE)
    seat_options, prada_options = _seat_options(settings), PradaOptions()
    with runs.stage_timer() as timer:
        seed_everything(ctx.seed)
        dataset = ctx.load_dataset()
        device = ctx.torch_device()
        box, target_path = _load_box(ctx, settings, dataset, device)  # first: a missing target fails fast
        split = tr.split_users(dataset.num_users, settings.encoder_fraction, settings.calibration_fraction)
        per_form = settings.accounts_per_form or None

        # 1. The encoder, from the encoder users' training sequences only.
        log.info("seat: training the encoder")
        config = EncoderConfig(num_items=dataset.num_items, window=settings.encoder_window, dim=settings.encoder_dim,
                               hidden=2 * settings.encoder_dim)
        training = EncoderTraining(steps=settings.encoder_steps, batch_size=settings.encoder_batch,
                                   max_edits=settings.max_edits, seed=ctx.seed)
        if settings.encoder_path:
            encoder, losses = load_encoder(settings.encoder_path), []
            if encoder.config.num_items != dataset.num_items:
                raise ValueError(f"encoder {settings.encoder_path} was built for {encoder.config.num_items} items, "
                                 f"the dataset has {dataset.num_items}")
        else:
            encoder, losses = train_encoder([dataset.sequence(int(u))[:-2] for u in split.encoder], config, training,
                                            device=device)
        save_encoder(encoder, out / "encoder.pt")
        encoder = encoder.cpu()

        # 2. Calibration on calibration accounts; frozen before any test account is built.
        log.info("seat: calibrating on benign calibration accounts")
        cal_traffic = tr.benign_traffic(_histories(dataset, split.calibration), split.calibration.tolist(),
                                        tr.BENIGN_FORMS, dataset.max_len, seed=ctx.seed,
                                        refresh_mean=settings.refresh_mean, max_accounts_per_form=per_form)
        cal_features = featurize(cal_traffic, encoder, dataset.num_items, seed=ctx.seed)
        calibrations = {d: calibrate(d, cal_traffic, cal_features, settings.fpr, seat_options, prada_options,
                                     seed=ctx.seed) for d in DETECTORS}
        runs.write_json_atomic(out / "calibration.json", {
            "user_split": {"encoder": [int(split.encoder[0]), int(split.encoder[-1])],
                           "calibration": [int(split.calibration[0]), int(split.calibration[-1])],
                           "test": [int(split.test[0]), int(split.test[-1])]},
            "calibration_accounts": len(cal_traffic.names),
            "detectors": {d: c.summary() for d, c in calibrations.items()}})
        del cal_traffic, cal_features

        # 3. Held-out benign accounts: false positives per form.
        log.info("seat: false positives on held-out benign accounts")
        test_traffic = tr.benign_traffic(_histories(dataset, split.test), split.test.tolist(), tr.BENIGN_FORMS,
                                         dataset.max_len, seed=ctx.seed + 1, refresh_mean=settings.refresh_mean,
                                         max_accounts_per_form=per_form)
        test_features = featurize(test_traffic, encoder, dataset.num_items, seed=ctx.seed)
        benign = pd.concat([outcomes_frame(evaluate(c, test_traffic, test_features, seat_options, prada_options), d)
                            for d, c in calibrations.items()])
        fpr_table = flag_rates(benign)
        overall = benign.groupby("detector")["flagged"].mean()
        fpr_table = pd.concat([fpr_table, pd.DataFrame({
            "detector": overall.index, "kind": "all", "accounts": benign.groupby("detector").size().values,
            "flagged": benign.groupby("detector")["flagged"].sum().values, "rate": overall.values})])
        fpr_table.to_csv(out / "fpr_by_form.csv", index=False)
        benign_log_fpr = None
        if settings.benign_log:
            logged_benign = tr.traffic_from_records(_read_log(Path(settings.benign_log)), dataset.max_len,
                                                    kind="log:benign")
            features = featurize(logged_benign, encoder, dataset.num_items, seed=ctx.seed)
            benign_log_fpr = {d: float(np.mean([o.flagged_at is not None for o in
                                                evaluate(c, logged_benign, features, seat_options, prada_options)]))
                              for d, c in calibrations.items()}
        throughput = measure_throughput(encoder, calibrations["seat"], test_traffic, seat=seat_options)

        # 4. Attacks through the study's black box.
        log.info("seat: generating attack traffic")
        from recsec_lib.attack.queries import generate_queries

        attacks: dict[str, tr.Traffic] = {}
        query_sources: dict[str, str] = {}
        for offset, generator in enumerate(GENERATORS):
            # The attack stage's own queries when it ran this budget and length: the surrogate it trained on
            # them is then exactly what an attacker splitting these queries over N accounts ends up with.
            data = attack_stage_queries(ctx.run_dir, generator, settings.attack_sequences, settings.attack_seq_len)
            query_sources[generator] = "attack stage" if data is not None else "generated by this stage"
            if data is None:
                data = generate_queries(box, dataset.num_items, generator, settings.attack_sequences,
                                        settings.attack_seq_len, seed=ctx.seed + 10 + offset, progress=False)
            attacks[generator] = tr.attack_traffic(list(data.sequences), box.max_query_len, generator)
        mixed = tr.autoregressive_walks(tr.box_answerer(box, "adaptive-mix"), settings.attack_sequences,
                                        settings.attack_seq_len, dataset.num_items, settings.attack_seq_len,
                                        seed=ctx.seed + 20, random_mix=settings.adaptive_random_mix)
        attacks["adaptive-mix"] = tr.attack_traffic(mixed, box.max_query_len, "adaptive-mix")
        chains = tr.autoregressive_walks(tr.box_answerer(box, "adaptive-chain"), settings.chain_count,
                                         settings.chain_steps, dataset.num_items, settings.attack_seq_len,
                                         seed=ctx.seed + 21)
        attacks["adaptive-chain"] = tr.attack_traffic(chains, settings.attack_seq_len, "adaptive-chain")
        attack_features = {name: featurize(t, encoder, dataset.num_items, seed=ctx.seed) for name, t in attacks.items()}

        # 4a. Single-account attacks of several budgets: disjoint chunks of the generated sequences,
        # each chunk one account (the queries and their encodings are those of the attack above).
        log.info("seat: single-account attacks")
        single_frames = []
        for generator in GENERATORS:
            attack, features = attacks[generator], attack_features[generator]
            for budget in settings.single_budgets:
                runs_count = len(attack.sources) // budget
                if runs_count == 0:
                    continue
                head = _head(attack, int(np.searchsorted(attack.source, runs_count * budget)))
                runs_traffic = head.with_accounts(head.source // budget,
                                                  [f"{generator}/b{budget}/{i}" for i in range(runs_count)],
                                                  [f"{generator}/b{budget}"] * runs_count)
                for d, c in calibrations.items():
                    traffic_d = runs_traffic
                    if d == "prada" and settings.prada_max_queries:  # PRADA is the slow one: fewer runs
                        keep = max(1, settings.prada_max_queries // max(1, head.num_queries // runs_count))
                        traffic_d = _head(runs_traffic, int(np.searchsorted(head.source, keep * budget)))
                    frame = outcomes_frame(evaluate(c, traffic_d, _head_features(features, traffic_d.num_queries),
                                                    seat_options, prada_options), d)
                    frame = frame[frame.queries > 0]  # runs PRADA was not given
                    frame["generator"], frame["budget"] = generator, budget
                    single_frames.append(frame)
        single = pd.concat(single_frames)
        single_table = (single.groupby(["detector", "generator", "budget"])
                        .agg(runs=("name", "size"), detected=("flagged", "sum"),
                             median_queries_to_detect=("flagged_at", "median"),
                             max_queries_to_detect=("flagged_at", "max"))
                        .reset_index())
        single_table["detection_rate"] = single_table["detected"] / single_table["runs"]
        single_table.to_csv(out / "single_account.csv", index=False)

        # 4b. Each attack split over N accounts.
        log.info("seat: splitting attacks over accounts")
        sweep_frames, needed_rows = [], []
        for name, attack in attacks.items():
            for d, c in calibrations.items():
                traffic_d = attack
                if d == "prada" and settings.prada_max_queries and attack.num_queries > settings.prada_max_queries:
                    traffic_d = _head(attack, settings.prada_max_queries)
                needed, frame = accounts_sweep(c, traffic_d, _head_features(attack_features[name], traffic_d.num_queries),
                                               ACCOUNT_GRID, seat_options, prada_options, label=name)
                sweep_frames.append(frame)
                needed_rows.append({"attack": name, "detector": d, "accounts_needed": needed,
                                    "attack_queries": traffic_d.num_queries,
                                    "grid_max": max(n for n in ACCOUNT_GRID if n <= traffic_d.num_queries)})
        sweep = pd.concat(sweep_frames)
        sweep.to_csv(out / "accounts_sweep.csv", index=False)
        needed = pd.DataFrame(needed_rows)
        needed.to_csv(out / "accounts_needed.csv", index=False)
        _plot_sweep(sweep, out / "detection_vs_accounts.png")

        # 4c. The attack stage's own logs, as they were sent.
        log.info("seat: the attack stage's logs")
        logged_rows = []
        logs = _logged_attacks(ctx.run_dir / "attack", box.max_query_len)
        if settings.attack_log:
            path = Path(settings.attack_log)
            logs.append((path.name, tr.traffic_from_records(_read_log(path), box.max_query_len, kind="log:given")))
        for file_name, logged in logs:
            features = featurize(logged, encoder, dataset.num_items, seed=ctx.seed)
            for d, c in calibrations.items():
                outcomes = evaluate(c, logged, features, seat_options, prada_options)
                logged_rows.append({"log": file_name, "detector": d, "accounts": len(outcomes),
                                    "queries": logged.num_queries,
                                    "flagged_accounts": sum(o.flagged_at is not None for o in outcomes)})
        pd.DataFrame(logged_rows, columns=["log", "detector", "accounts", "queries", "flagged_accounts"]).to_csv(
            out / "logged_attacks.csv", index=False)

        # 5. ROC of the per-account scores: benign test accounts vs single-account attack runs.
        log.info("seat: ROC curves")
        roc_frames, aucs = [], {}
        for d in DETECTORS:
            curve = roc_curve(benign.loc[benign.detector == d, "score"], single.loc[single.detector == d, "score"])
            aucs[d] = roc_auc(curve)
            curve["detector"] = d
            roc_frames.append(curve)
        roc = pd.concat(roc_frames)
        roc.to_csv(out / "roc.csv", index=False)
        _plot_roc(roc, aucs, settings.fpr, out / "roc.png")

    metrics = _metrics(settings, calibrations, benign, fpr_table, single_table, needed, throughput, aucs, losses,
                       target_path, test_traffic, logged_rows, benign_log_fpr, timer)
    metrics["attack_query_source"] = query_sources
    metrics["surrogate_quality_when_split"] = surrogate_when_split(ctx.run_dir, settings, needed, query_sources)
    headline = {key: metrics[key] for key in HEADLINE_KEYS}
    runs.write_stage_metrics(ctx.run_dir, STAGE, metrics, headline)
    return metrics


HEADLINE_KEYS = ("seat_detection_rate_single_account", "seat_false_positive_rate", "seat_accounts_needed",
                 "volume_cap_accounts_needed", "prada_accounts_needed", "seat_monitor_queries_per_second",
                 "seat_cost_increase_over_volume_cap")


def attack_stage_queries(run_dir: Path, generator: str, sequences: int, seq_len: int):
    """The attack stage's collected queries of this generator and budget, or None when it has none of that shape."""
    from recsec_lib.attack.queries import AttackData
    from recsec_lib.study.stages.attack import queries_file

    path = run_dir / "attack" / queries_file(generator, sequences)
    if not path.exists():
        return None
    data = AttackData.load(path)
    return data if data.sequences.shape == (sequences, seq_len) else None


def surrogate_when_split(run_dir: Path, settings: Settings, needed: pd.DataFrame, query_sources: dict) -> dict:
    """What the attacker still extracts when it spreads its queries over as many accounts as each detector needs.

    Splitting changes only which account sends a query, not what the attacker
    collects, so its surrogate is the one the attack stage trained on these
    very queries (same generator, budget and length). Reported only where the
    SEAT stage replayed the attack stage's queries; otherwise says why not.
    """
    metrics_path = run_dir / "attack" / "metrics.json"
    curve = runs.read_json(metrics_path).get("budget_curve", []) if metrics_path.exists() else []
    result = {}
    for generator, source in query_sources.items():
        if source != "attack stage":
            result[generator] = {"note": "not measured: the attack stage has no surrogate trained on these queries"}
            continue
        rows = [r for r in curve if r["generator"] == generator and r["budget_sequences"] == settings.attack_sequences
                and r["seq_len"] == settings.attack_seq_len and r["surrogate"] == r["target"]]
        if not rows:
            result[generator] = {"note": "not measured: the attack stage's budget curve lacks this budget"}
            continue
        row = rows[0]
        accounts = {r.detector: (None if pd.isna(r.accounts_needed) else int(r.accounts_needed))
                    for r in needed[needed.attack == generator].itertuples()}
        result[generator] = {"budget_sequences": settings.attack_sequences, "seq_len": settings.attack_seq_len,
                             "accounts_needed": accounts, "agr1": row["agr1"], "agr10": row["agr10"],
                             "surrogate_test_hr10": row["surrogate_test_hr10"],
                             "surrogate_test_ndcg10": row["surrogate_test_ndcg10"]}
    return result


def _head(traffic: tr.Traffic, n: int) -> tr.Traffic:
    """The first n queries of a traffic (same sources)."""
    return tr.Traffic(traffic.names, traffic.kinds, traffic.sources, traffic.account[:n], traffic.source[:n],
                      traffic.end[:n], traffic.max_len)


def _head_features(features: TrafficFeatures, n: int) -> TrafficFeatures:
    """The features of a traffic's first n queries (the same rows)."""
    return replace(features, rows=features.rows[:n])


def _needed(needed: pd.DataFrame, detector: str, attacks=GENERATORS) -> float | None:
    """Accounts the cheapest of ``attacks`` needs to stay undetected by ``detector`` (None: beyond the grid)."""
    values = needed[(needed.detector == detector) & needed.attack.isin(attacks)]["accounts_needed"]
    if values.isna().any():
        known = values.dropna()
        return None if known.empty else float(known.min())
    return float(values.min())


def _metrics(settings, calibrations, benign, fpr_table, single_table, needed, throughput, aucs, losses, target_path,
             test_traffic, logged_rows, benign_log_fpr, timer) -> dict:
    seat_single = single_table[single_table.detector == "seat"]
    detection = float(seat_single["detected"].sum() / seat_single["runs"].sum())
    fpr_all = fpr_table[(fpr_table.kind == "all")].set_index("detector")["rate"]
    seat_n, volume_n, prada_n = (_needed(needed, d) for d in DETECTORS)
    increase = None if seat_n is None or volume_n is None else seat_n / volume_n
    per_attack = {f"{row.attack}/{row.detector}": (None if pd.isna(row.accounts_needed) else int(row.accounts_needed))
                  for row in needed.itertuples()}
    # SEAT deployed together with the volume cap: an account is flagged when either flags it.
    # Accounts needed = the larger of the two (both per-account scores only grow with more queries).
    combined = {}
    for attack in dict.fromkeys(needed["attack"]):
        seat_a, volume_a = per_attack.get(f"{attack}/seat"), per_attack.get(f"{attack}/volume")
        combined[attack] = None if seat_a is None or volume_a is None else max(seat_a, volume_a)
    flagged_by = benign.pivot_table(index="name", columns="detector", values="flagged", aggfunc="first")
    combined_fpr = float((flagged_by["seat"] | flagged_by["volume"]).mean())
    ratios = [combined[a] / per_attack[f"{a}/volume"] for a in combined
              if combined[a] is not None and per_attack.get(f"{a}/volume")]
    metrics = {
        "seat_detection_rate_single_account": detection,
        "seat_false_positive_rate": float(fpr_all["seat"]),
        "seat_accounts_needed": seat_n,
        "volume_cap_accounts_needed": volume_n,
        "prada_accounts_needed": prada_n,
        "seat_monitor_queries_per_second": round(throughput["queries_per_second"], 1),
        "seat_cost_increase_over_volume_cap": increase,
        "accounts_needed_note": ("smallest N in the grid " + str(ACCOUNT_GRID) + " at which no account of the "
                                 "attack split over N accounts is flagged; the cheapest of the random and "
                                 "autoregressive generators; None = flagged at every N tried"),
        "accounts_needed_per_attack": per_attack,
        "seat_plus_cap_accounts_needed_per_attack": combined,
        "seat_plus_cap_false_positive_rate": combined_fpr,
        "seat_plus_cap_cost_increase_worst_attack": min(ratios) if ratios else None,
        "false_positive_rate": {d: float(fpr_all[d]) for d in DETECTORS},
        "false_positive_rate_by_form": {f"{r.detector}/{r.kind}": float(r.rate) for r in fpr_table.itertuples()},
        "benign_test_accounts": len(test_traffic.names),
        "benign_test_queries": test_traffic.num_queries,
        "single_account_detection": {f"{r.detector}/{r.generator}/{r.budget}": float(r.detection_rate)
                                     for r in single_table.itertuples()},
        "single_account_runs": int(seat_single["runs"].sum()),
        "seat_median_queries_to_detect": {
            generator: (None if group["median_queries_to_detect"].isna().all()
                        else float(group["median_queries_to_detect"].median()))
            for generator, group in seat_single.groupby("generator")},
        "roc_auc": aucs,
        "calibration": {d: c.summary() for d, c in calibrations.items()},
        "throughput": throughput,
        "encoder_loss_first_last": [losses[0], losses[-1]] if losses else None,  # None: a saved encoder was used
        "logged_attacks": logged_rows,
        "benign_log_false_positive_rate": benign_log_fpr,
        "target_checkpoint": str(target_path),
        "settings": asdict(settings),
        "wall_seconds": timer["wall_seconds"],
        "peak_memory_mb": timer["peak_memory_mb"],
    }
    metrics["targets"] = {
        "single_account_detection_ge_0.99": detection >= 0.99,
        "false_positive_rate_le_0.001": float(fpr_all["seat"]) <= 0.001,
        "cost_increase_ge_4x": increase is not None and increase >= 4,
    }
    return metrics


def _plot_sweep(sweep: pd.DataFrame, path: Path) -> None:
    plots.save_png(plots.accounts_sweep(sweep), path)


def _plot_roc(roc: pd.DataFrame, aucs: dict, fpr: float, path: Path) -> None:
    plots.save_png(plots.roc_curves(roc, aucs, fpr), path)
