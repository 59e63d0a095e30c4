"""Detection on real data: benign false positives with real timing, and the attacker who chooses its parameters.

    export RECSEC_DATA_MIRROR=/work/shared/data OMP_NUM_THREADS=1
    nice -n 10 .venv/bin/python benchmarks/detection_real.py --part cal     [--cache DIR] [--cal-per-form 250]
    nice -n 10 .venv/bin/python benchmarks/detection_real.py --part heldout [--per-form 370]
    nice -n 10 .venv/bin/python benchmarks/detection_real.py --part fpr
    nice -n 10 .venv/bin/python benchmarks/detection_real.py --part search  --attackers chain --chains 1 --tag c1
    nice -n 10 .venv/bin/python benchmarks/detection_real.py --part search  --attackers public --tag public
    nice -n 10 .venv/bin/python benchmarks/detection_real.py --part verdict   (every cached search combined)
    nice -n 10 .venv/bin/python benchmarks/detection_real.py --part fidelity  (Agr@10 of the cached settings)

ML-1M is the service's catalogue (5-core, the study's protocol); the target
behind the black box is ``--target`` (an ML-1M SASRec checkpoint; top-100,
seen items filtered). Everything is seeded; each part prints its tables and
caches what the next part reads under ``--cache``.

``--part cal`` / ``heldout`` / ``fpr`` (each run under ~15 minutes on a busy
2-core machine; ``fpr`` only prints from the cache): the SEAT encoder
(trained on the encoder users, as the stage does), then two disjoint benign
populations (``seat.populations``): ML-1M
calibration / held-out users in every benign form, timed by the real gaps of
ML-100K calibration / held-out users, plus those ML-100K users at their own
rating times. Every detector is calibrated on the calibration population at
``--fpr`` and measured on the held-out one: the FPR per form with exact 95%
(Clopper–Pearson) intervals. Also: the caps calibrated the first version's
way (first forms, Exponential 30-minute gaps) on the real-timing users; the
pooled MMD test's false alarms per window; the per-query suspicion score's
benign cost (share of queries that would be served a perturbed list).

``--part search``: the attacker's grid (``seat.search``) against every
calibrated detector: chain attackers (chains x random_mix, uniform mixing) and
the public-data attacker (ML-100K histories mapped to ML-1M by title, as
streams), each over the three splits and four pacing windows (24 h, 72 h,
7 d, 30 d); accounts needed per grid point, the minimum per detector with the
point that reached it, the verdict against issue 24's targets; and per attack
sample the pooled test's alarm rate at several traffic shares and the share of
its queries the suspicion score would gate.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsec_lib.data.prepare import prepare_dataset
from recsec_lib.seat import traffic as tr
from recsec_lib.seat.benign import ALL_FORMS, benign_traffic
from recsec_lib.seat.calibration import SeatOptions
from recsec_lib.seat.detectors import benign_frame, calibrate, get_detector
from recsec_lib.seat.encoder import EncoderConfig, EncoderTraining, load_encoder, save_encoder, train_encoder
from recsec_lib.seat.fpr import accounts_to_show, clopper_pearson, rate_table
from recsec_lib.seat.inputs import load_box
from recsec_lib.seat.populations import benign_population, load_real_timing
from recsec_lib.seat.replay import prepare_traffic
from recsec_lib.seat.statistics import MonitorContext, account_statistics, benign_statistics

DETECTORS = ("seat-pairs", "seat", "seat+cap", "caps", "volume", "rate", "handoff", "caps+handoff",
             "seat+cap+handoff")
pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 30)
pd.set_option("display.max_rows", 400)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def setup(args):
    mirror = Path(os.environ["RECSEC_DATA_MIRROR"])
    dataset = prepare_dataset("ml-1m", data_dir=Path(args.data_dir), mirror=mirror)
    box, target = load_box(Path(args.target), dataset, 100, "cpu")
    split = tr.split_users(dataset.num_users, 0.5, 0.25)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / "encoder.pt"
    if path.is_file():
        encoder = load_encoder(path)
    else:
        say("training the SEAT encoder (300 steps, the stage's default)")
        encoder, _ = train_encoder([dataset.sequence(int(u))[:-2] for u in split.encoder],
                                   EncoderConfig(num_items=dataset.num_items), EncoderTraining(seed=0),
                                   progress=False)
        save_encoder(encoder, path)
    real = load_real_timing(dataset, mirror / "ml-100k", mirror / "ml-1m" / "movies.dat")
    return dataset, box, target, split, encoder, real, cache


def prepared(traffic, encoder, dataset, target, box):
    return prepare_traffic(traffic, encoder, dataset.num_items, target, box.k, box.filter_seen, 0)


def _population(args, name: str):
    dataset, box, target, split, encoder, real, cache = setup(args)
    users, timed, seed, per_form = ((split.calibration, real.calibration, 0, args.cal_per_form) if name == "cal"
                                    else (split.test, real.held_out, 1, args.per_form))
    started = time.perf_counter()
    population = benign_population(dataset, users, timed, per_form=per_form or None, seed=seed)
    features = prepared(population.traffic, encoder, dataset, target, box)
    say(f"{name}: {len(population.traffic.names):,} accounts, {population.traffic.num_queries:,} queries, features "
        f"and follow values in {time.perf_counter() - started:.0f} s")
    return dataset, split, real, cache, population, features


def part_cal(args) -> None:
    """Calibration population: statistics, every detector's limits, the pooled test, the suspicion score."""
    dataset, split, real, cache, cal, features = _population(args, "cal")
    r = real.report
    print(f"ML-100K -> ML-1M by title: {r.mapped_to_catalogue} of {r.source_movies} movies map to an ML-1M title "
          f"(movies.dat), {r.mapped_to_dataset} to an item of the 5-core dataset; {r.ratings_mapped:,} of "
          f"{r.ratings:,} ratings mapped; users kept (>= 5 mapped ratings): {len(real.calibration)} calibration, "
          f"{len(real.held_out)} held out")
    started = time.perf_counter()
    stats = benign_statistics(cal.traffic, features, SeatOptions(), num_items=dataset.num_items, with_prada=False)
    say(f"calibration statistics in {time.perf_counter() - started:.0f} s")
    calibrations = {d: calibrate(d, stats, args.fpr) for d in DETECTORS}
    print(f"Calibration: {len(cal.traffic.names):,} accounts {cal.accounts()}, {cal.traffic.num_queries:,} queries; "
          f"target FPR {args.fpr} per detector; SEAT threshold {stats.threshold:.4f}")
    for d, c in calibrations.items():
        print(f"  {d:>17}: limits {dict((k, round(v, 3)) for k, v in c.limits.items())}, calibration FPR "
              f"{c.calibration_fpr:.4%}")
    # The first version's calibration of the caps: first forms, Exponential 30-minute gaps, no real timing.
    old = benign_traffic([dataset.sequence(int(u)) for u in split.calibration], split.calibration.tolist(),
                         ALL_FORMS, dataset.max_len, seed=0, max_accounts_per_form=args.cal_per_form or None)
    old_caps = calibrate("caps", account_statistics(old, None, MonitorContext(seat=SeatOptions()),
                                                    ["volume", "rate"]), args.fpr)
    print(f"  caps the first version's way (first forms, Exponential gaps): limits {dict(old_caps.limits)}")
    pooled_test, suspicion = fit_signals(args, cal, features, split, dataset)
    with open(cache / "calibration.pkl", "wb") as handle:  # this tool's own cache, read by the later parts
        pickle.dump({"stats": stats, "calibrations": calibrations, "old_caps": old_caps, "pooled": pooled_test,
                     "suspicion": suspicion, "fpr": args.fpr, "accounts": cal.accounts()}, handle)
    say("cal part done")


def fit_signals(args, cal, features, split, dataset):
    from recsec_lib.seat import pooled
    from recsec_lib.seat.suspicion import fit_suspicion

    rng = np.random.default_rng(0)
    encodings = features.seat[features.rows]  # [Q, D]
    account = cal.traffic.account
    half = np.isin(account, rng.permutation(len(cal.traffic.names))[:len(cal.traffic.names) // 2])
    reference = encodings[half][rng.choice(int(half.sum()), size=2000, replace=False)]
    test = pooled.calibrate_pooled(reference, encodings[~half], account[~half], window=args.window,
                                   users_per_window=args.window_users, target_fpr=args.window_fpr,
                                   num_windows=args.windows, seed=1)
    print(f"Pooled MMD test: windows of {args.window} queries from {args.window_users} accounts' stretches, "
          f"reference 2,000 queries of half the calibration accounts, threshold {test.threshold:.5f} at "
          f"{args.window_fpr:.1%} of {args.windows} windows of the other half (bandwidth {test.bandwidth:.3f})")
    sample = rng.choice(cal.traffic.num_queries, size=min(200_000, cal.traffic.num_queries), replace=False)
    histories = [dataset.sequence(int(u)) for u in split.calibration]  # the defender's calibration users
    suspicion = fit_suspicion(histories, dataset.num_items, query_windows(cal.traffic, features, 20)[sample],
                              encodings[sample], gate_rate=args.gate_rate, tail=20, seed=0)
    print(f"Suspicion score: threshold {suspicion.threshold:.3f} gates {suspicion.gate_rate:.2%} of 200,000 "
          f"calibration queries (target {args.gate_rate:.1%})")
    return test, suspicion


def part_heldout(args) -> None:
    """Held-out population: its statistics (cached), the pooled test's false alarms, the suspicion cost."""
    from recsec_lib.seat import pooled
    from recsec_lib.seat.suspicion import suspicion_scores

    dataset, split, real, cache, test, features = _population(args, "heldout")
    saved = pickle.load(open(cache / "calibration.pkl", "rb"))
    started = time.perf_counter()
    stats = benign_statistics(test.traffic, features, SeatOptions(), num_items=dataset.num_items, with_prada=False,
                              threshold=saved["stats"].threshold)
    say(f"held-out statistics in {time.perf_counter() - started:.0f} s")
    encodings = features.seat[features.rows]
    alarms, windows = pooled.window_alarms(saved["pooled"], encodings, test.traffic.account, args.windows, seed=2)
    ci = clopper_pearson(alarms, windows)
    print(f"Pooled MMD test on held-out benign windows: {alarms}/{windows} false alarms = {100 * ci.rate:.2f}% "
          f"[{100 * ci.low:.2f}, {100 * ci.high:.2f}] per window (calibrated at {args.window_fpr:.1%})")
    suspicion = saved["suspicion"]
    gated = suspicion_scores(suspicion, query_windows(test.traffic, features, 20), encodings) > suspicion.threshold
    frame = pd.DataFrame({"kind": np.array(test.traffic.kinds)[test.traffic.account], "gated": gated,
                          "account": test.traffic.account})
    per_form = frame.groupby("kind").agg(queries=("gated", "size"), gated_share=("gated", "mean"))
    per_form["accounts_ever_gated"] = frame.groupby(["kind", "account"])["gated"].any().groupby("kind").mean()
    per_form.loc["all"] = [len(frame), gated.mean(), frame.groupby("account")["gated"].any().mean()]
    print(f"Per-query suspicion score's benign cost on held-out queries (gate at {suspicion.threshold:.3f}): share "
          f"of queries served a perturbed list; share of accounts that see one at least once")
    print(per_form.to_string(float_format=lambda v: f"{v:.4f}"))
    keep = np.isin(test.traffic.account, np.random.default_rng(5).permutation(len(test.traffic.names))[:1000])
    with open(cache / "heldout.pkl", "wb") as handle:
        pickle.dump({"stats": stats, "accounts": test.accounts(), "pooled_false_alarms": (alarms, windows),
                     "suspicion_cost": per_form, "benign_windows": (encodings[keep], test.traffic.account[keep])},
                    handle)
    say("heldout part done")


def part_fpr(args) -> None:
    """The false-positive table from the cached statistics (fast)."""
    cache = Path(args.cache)
    saved = pickle.load(open(cache / "calibration.pkl", "rb"))
    held = pickle.load(open(cache / "heldout.pkl", "rb"))
    stats, calibrations = held["stats"], saved["calibrations"]
    frame = pd.concat([benign_frame(c, stats) for c in calibrations.values()])
    table = rate_table(frame)
    table.to_csv(cache / "fpr_table.csv", index=False)
    print(f"Held-out benign accounts: {len(stats.names):,} ({held['accounts']}); an interval can show <= 0.1% with "
          f">= {accounts_to_show(0.001):,} accounts and <= 1% with >= {accounts_to_show(0.01)}")
    print(f"Calibration accounts: {sum(saved['accounts'].values()):,} ({saved['accounts']}); target {saved['fpr']}")
    for d, c in calibrations.items():
        print(f"  {d:>17}: limits {dict((k, round(v, 3)) for k, v in c.limits.items())}, calibration FPR "
              f"{c.calibration_fpr:.4%}")
    wide = table.assign(cell=[f"{f}/{a} {100 * r:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}]" for f, a, r, lo, hi in
                              zip(table.flagged, table.accounts, table.rate, table.low, table.high)])
    print("\nFalse positives on held-out benign accounts: flagged/accounts rate% [95% Clopper-Pearson interval]")
    pivot = wide.pivot(index="kind", columns="detector", values="cell")
    for group in (DETECTORS[:5], DETECTORS[5:]):
        print(pivot[[d for d in group if d in pivot]].to_string())
    old_caps = saved["old_caps"]
    flagged = get_detector("caps").flagged(old_caps, stats)
    print(f"\nCaps calibrated the first version's way (first forms, Exponential 30-min gaps; limits "
          f"{dict(old_caps.limits)}) on held-out ML-100K users at their own times:")
    for kind in ("ml100k", "ml100k-submit"):
        mine = np.array(stats.kinds) == kind
        ci = clopper_pearson(int(flagged[mine].sum()), int(mine.sum()))
        print(f"  {kind}: {ci.flagged}/{ci.accounts} flagged = {100 * ci.rate:.1f}% [{100 * ci.low:.1f}, "
              f"{100 * ci.high:.1f}]")


def query_windows(traffic, features, tail: int) -> np.ndarray:
    """[Q] -> the left-padded newest ``tail`` items of each query (via its distinct key)."""
    return traffic.windows(features.keys, tail)[features.rows]


# --- the attacker's search --------------------------------------------------------------------------------


def attack_sample(traffic, encoder, dataset, target, box):
    from recsec_lib.seat.follow import follow_flags, query_follow
    from recsec_lib.seat.replay import featurize
    from recsec_lib.seat.search import AttackSample

    flags = follow_flags(target, list(traffic.sources), [traffic.width(s) for s in range(len(traffic.sources))],
                         box.k, box.filter_seen)
    features = featurize(traffic, encoder, dataset.num_items, follow=query_follow(traffic, flags))
    return AttackSample(traffic, features, flags)


def part_search(args) -> None:
    """One attacker family's grid (``--attackers``, narrowed by ``--chains`` / ``--mixes`` / ``--weights`` /
    ``--streams``); its table, its samples' signal figures and its training data go to the cache under
    ``--tag``, and ``--part verdict`` combines every tag."""
    from recsec_lib.seat import pooled
    from recsec_lib.seat.public_data import public_streams, public_traffic
    from recsec_lib.seat.search import AttackSpace, GeneratorCollector, generator_space, search_attacker
    from recsec_lib.seat.suspicion import suspicion_scores

    dataset, box, target, split, encoder, real, cache = setup(args)
    saved = pickle.load(open(cache / "calibration.pkl", "rb"))
    held = pickle.load(open(cache / "heldout.pkl", "rb"))
    wanted = args.detectors.split(",")
    calibrations = {d: c for d, c in saved["calibrations"].items() if d in wanted}
    context = MonitorContext(saved["stats"].threshold, encoder.config.dim, dataset.num_items, SeatOptions())
    splits = tuple(args.splits.split(","))
    horizons = tuple(float(h) for h in args.horizons.split(","))
    signal_rows = []

    def sample_of(label, setting, traffic):
        started = time.perf_counter()
        sample = attack_sample(traffic, encoder, dataset, target, box)
        signals_of(label, setting, sample)
        say(f"{label} {setting}: {traffic.num_queries:,} queries, {len(traffic.sources)} sources; features, follow "
            f"and signals in {time.perf_counter() - started:.0f} s")
        return sample

    def signals_of(label, setting, sample):
        attack = sample.features.seat[sample.features.rows]
        row = {"attacker": label, "setting": ", ".join(f"{k}={v}" for k, v in setting.items())}
        benign_features, benign_account = held["benign_windows"]  # held-out benign accounts' queries
        for share in (0.02, 0.05, 0.1, 0.25, 0.5):
            alarms, windows = pooled.window_alarms(saved["pooled"], benign_features, benign_account,
                                                   args.windows // 4, seed=3, attack=attack, share=share)
            row[f"pooled_alarm@{share:g}"] = alarms / windows
        scores = suspicion_scores(saved["suspicion"], sample.traffic.windows(sample.features.keys, 20)[
            sample.features.rows], attack)
        row["gated_share"] = float((scores > saved["suspicion"].threshold).mean())
        signal_rows.append(row)

    results = []
    for attacker in args.attackers.split(","):
        if attacker == "public":
            histories = [h.items for h in real.calibration + real.held_out]
            space = AttackSpace({"streams": tuple(int(v) for v in args.streams.split(","))}, splits, horizons)

            def collect(setting, histories=histories):
                streams = public_streams(histories, setting["streams"], seed=0)
                return sample_of("public", setting, public_traffic(streams, box.max_query_len, args.budget, "public"))
            collector = None
        else:  # a registered generator (attack.generators), its own choices narrowed to a reduced grid
            narrowed = {"chains": tuple(int(v) for v in args.chains.split(",")),
                        "random_mix": tuple(float(v) for v in args.mixes.split(",")),
                        "mix_weights": tuple(args.weights.split(","))}
            space = generator_space(attacker, splits, horizons, **narrowed)
            state = {}

            def make(traffic, attacker=attacker, state=state):
                return sample_of(attacker, state["setting"], traffic)
            collector = GeneratorCollector(attacker, box, args.budget, 200, seed=11, sample=make)

            def collect(setting, collector=collector, state=state, attacker=attacker):
                state["setting"] = setting
                started = time.perf_counter()
                key = collector.key(setting)
                path = cache / f"sample_{attacker}_{args.budget}_{'_'.join(f'{k}{v}' for k, v in key)}.pkl"
                if path.is_file():  # this tool's own cache of a collected sample (walks, features, follow)
                    sample = pickle.load(open(path, "rb"))
                    signals_of(attacker, setting, sample)
                else:
                    sample = collector(setting)
                    with open(path, "wb") as handle:
                        pickle.dump(sample, handle)
                say(f"{attacker} {setting} ready in {time.perf_counter() - started:.0f} s")
                return sample
        started = time.perf_counter()
        result = search_attacker(collect, space, calibrations, context, label=attacker, progress=say)
        results.append(result)
        say(f"{attacker}: {space.size} grid points x {len(calibrations)} detectors in "
            f"{time.perf_counter() - started:.0f} s")
        if collector is not None:  # the surrogates' training data, for --part fidelity
            for key, collected in collector.collected.items():
                label = "_".join(f"{k}{v}" for k, v in key)
                data = collected.training
                np.savez_compressed(cache / f"training_{attacker}_{label}.npz", sequences=data.sequences,
                                    answers=data.answers.astype(np.int16),
                                    answered=np.ones(data.sequences.shape, bool) if data.answered is None
                                    else data.answered)
    table = pd.concat([r.table for r in results], ignore_index=True)
    table.to_csv(cache / f"search_{args.tag}.csv", index=False)
    pd.DataFrame(signal_rows).to_csv(cache / f"signals_{args.tag}.csv", index=False)
    print(f"search {args.tag}: {len(table)} rows; budget {args.budget:,} queries per attacker")
    print_search(table, pd.DataFrame(signal_rows))


def print_search(table: pd.DataFrame, signals: pd.DataFrame) -> None:
    from recsec_lib.seat.search import cheapest

    print("\nAccounts needed per detector: minimum over the grid, and the point that reached it")
    print(cheapest(table)[["detector", "accounts_needed", "attacker", "setting", "split", "horizon_h", "queries",
                           "sources"]].to_string(index=False))
    print("\nMinimum per attacker family and setting (over splits and windows):")
    print(table.groupby(["attacker", "setting", "detector"], sort=False)["accounts_needed"].min()
          .unstack("detector")[[d for d in DETECTORS if d in set(table.detector)]].to_string())
    print("\nEvery grid point (accounts needed; NaN = flagged at every N of the grid):")
    grid_table = table.set_index(["attacker", "setting", "split", "horizon_h", "detector"])[
        "accounts_needed"].unstack("detector")
    print(grid_table[[d for d in DETECTORS if d in grid_table]].to_string())
    print("\nPer attack sample: pooled-test alarm rate per window when the attacker sends this share of the window's "
          "queries; share of its queries the suspicion score would gate")
    print(signals.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def part_verdict(args) -> None:
    """Every cached search combined: the worst case per detector, the best detector, the targets."""
    from recsec_lib.seat.search import cheapest
    from recsec_lib.seat.verdict import detection_headline, verdict_sentence

    cache = Path(args.cache)
    tables = sorted(cache.glob("search_*.csv"))
    if not tables:
        raise SystemExit(f"no search tables in {cache}: run --part search first")
    table = pd.concat([pd.read_csv(p) for p in tables], ignore_index=True)
    signals = pd.concat([pd.read_csv(p) for p in sorted(cache.glob("signals_*.csv"))], ignore_index=True)
    print(f"searches combined: {[p.stem for p in tables]}")
    print_search(table, signals)
    fpr = pd.read_csv(cache / "fpr_table.csv")
    best = cheapest(table)
    parameters = [c for c in ("chains", "random_mix", "mix_weights", "streams") if c in table]
    headline = detection_headline(best, fpr, candidates=[d for d in DETECTORS if d in set(table.detector)],
                                  parameters=parameters)
    print("\nVerdict:", verdict_sentence(headline))
    print(json.dumps(headline, indent=1, default=str))


def part_fidelity(args) -> None:
    """Agr@10 of the surrogate each cached chain setting trains (fixed epochs, seeded): cost to fidelity."""
    from recsec_lib.attack.agreement import evaluate_extraction
    from recsec_lib.attack.queries import AttackData
    from recsec_lib.attack.surrogate import SurrogateSettings, fit_surrogate
    from recsec_lib.models.registry import build_model

    dataset, box, target, split, encoder, real, cache = setup(args)
    wanted = [w for w in args.settings.split(";") if w]
    for path in sorted(cache.glob("training_*.npz")):
        if wanted and not any(w in path.stem for w in wanted):
            continue
        started = time.perf_counter()
        saved = np.load(path)
        data = AttackData(saved["sequences"], saved["answers"].astype(np.int64), path.stem, dataset.num_items, 0,
                          answered=saved["answered"])
        torch.manual_seed(0)
        model = build_model("sasrec", num_items=dataset.num_items, max_len=target.max_len)
        settings = SurrogateSettings(epochs=args.surrogate_epochs, min_epochs=args.surrogate_epochs, patience=0,
                                     filter_seen=box.filter_seen, seed=0)
        result = fit_surrogate(data, model, settings, progress=False)
        figures = evaluate_extraction(target, result.model, dataset)
        print(f"{path.stem}: {data.num_sequences} training rows, {len(result.history)} epochs -> Agr@1 "
              f"{figures['agr@1']:.4f}, Agr@10 {figures['agr@10']:.4f} ({time.perf_counter() - started:.0f} s)",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("cal", "heldout", "fpr", "search", "verdict", "fidelity"), required=True)
    parser.add_argument("--target", default="/work/ckpt/detect/sasrec_snapshot.pt")
    parser.add_argument("--data-dir", default="/work/ckpt/data")
    parser.add_argument("--cache", default="/work/ckpt/detect/real")
    parser.add_argument("--fpr", type=float, default=0.001, help="target false-positive rate per detector")
    parser.add_argument("--per-form", type=int, default=370, help="held-out ML-1M accounts per form")
    parser.add_argument("--cal-per-form", type=int, default=250, help="calibration ML-1M accounts per form")
    parser.add_argument("--window", type=int, default=500, help="pooled test: queries per window")
    parser.add_argument("--window-users", type=int, default=10, help="pooled test: accounts per window")
    parser.add_argument("--window-fpr", type=float, default=0.01, help="pooled test: false alarms per window")
    parser.add_argument("--windows", type=int, default=1000, help="pooled test: windows to calibrate / measure")
    parser.add_argument("--gate-rate", type=float, default=0.01, help="suspicion: calibration queries gated")
    parser.add_argument("--budget", type=int, default=40_000, help="queries per attacker")
    parser.add_argument("--attackers", default="chain,public", help="registered generators and/or public")
    parser.add_argument("--tag", default="all", help="search: the name its cached table gets")
    parser.add_argument("--weights", default="uniform,popularity", help="chain: mixing distributions")
    parser.add_argument("--settings", default="", help="fidelity: ';'-separated parts of training file names")
    parser.add_argument("--surrogate-epochs", type=int, default=20)
    parser.add_argument("--chains", default="1,5,20")
    parser.add_argument("--mixes", default="0.0,0.5")
    parser.add_argument("--streams", default="1,8,10000")
    parser.add_argument("--splits", default="contiguous,by-stream,round-robin")
    parser.add_argument("--horizons", default="24,72,168,720")
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    {"cal": part_cal, "heldout": part_heldout, "fpr": part_fpr, "search": part_search, "verdict": part_verdict,
     "fidelity": part_fidelity}[args.part](args)


if __name__ == "__main__":
    main()
