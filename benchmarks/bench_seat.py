"""Throughput of every detector's online detection on benign and adversarial traffic shapes: queries per second.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_seat.py [--encoder PATH] [--queries 20000] [--batch 1024] [--threads 1]
        [--detectors seat,volume,...]   (default: every registered detector)

Traffic of ML-1M size (3,416 items, queries of up to 200 items), one account
each, shaped like the SEAT stage's attacker zoo (items drawn at random: the
monitor's cost does not depend on which items they are):

* benign: growing prefixes of 150-item histories (one session per account);
* every-prefix: every prefix of 200-item walks (a new session every 200 queries);
* chain: one walk queried through a sliding 200-item window (one long session);
* interleaved: 8 walks advanced together, queries alternating between them;
* perturbed: every-prefix walks with 2 older items replaced in every query;
* one-query: every query a fresh 200-item walk (every query a new session,
  compared with all ``max_sessions`` remembered ones: the monitor's worst case).

Every query's features are computed (no caching of repeats), in batches of
``--batch`` — the SEAT encoding for a detector with a SEAT statistic, PRADA's
bag-of-items vector for PRADA — then the query is fed to each of the
detector's monitors one at a time, as a deployed service would; the follow
value is given as known (the service has its answers). The encoder is
``--encoder`` (e.g. outputs/<run>/seat/encoder.pt) or a freshly initialised
one of the default size (same speed). Limits are never reached, so every
monitor keeps counting to the end. Target: >= 5,000 queries/s for every
detector on every shape. Prints one line per detector and shape, then each
detector's slowest shape. Not a test.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from recsec_lib.attack import traffic as tr
from recsec_lib.seat.benign import benign_traffic
from recsec_lib.seat.calibration import Calibration
from recsec_lib.seat.detectors import detector_names, get_detector
from recsec_lib.seat.encoder import EncoderConfig, SimilarityEncoder, load_encoder
from recsec_lib.seat.evaluation import measure_throughput

ML1M_ITEMS, ML1M_MAX_LEN = 3416, 200


def traffic_shapes(queries: int, seed: int = 0) -> dict[str, tr.Traffic]:
    """One account per shape, about ``queries`` queries each (see the module docstring)."""
    rng = np.random.default_rng(seed)
    walks = list(rng.integers(1, ML1M_ITEMS + 1, size=(queries // ML1M_MAX_LEN + 1, ML1M_MAX_LEN)))
    every_prefix = tr.attack_traffic(walks, ML1M_MAX_LEN, "every-prefix")
    histories = [rng.choice(np.arange(1, ML1M_ITEMS + 1), size=150, replace=False)
                 for _ in range(queries // 150 + 1)]
    benign = benign_traffic(histories, list(range(len(histories))), ["growing"], ML1M_MAX_LEN, seed=seed)
    chain = tr.attack_traffic(list(rng.integers(1, ML1M_ITEMS + 1, size=(1, queries))), ML1M_MAX_LEN, "chain")
    group = every_prefix.source // 8
    order = np.lexsort((every_prefix.source, every_prefix.end, group))
    interleaved = tr.Traffic(("interleaved",), ("interleaved",), every_prefix.sources, every_prefix.account[order],
                             every_prefix.source[order], every_prefix.end[order], ML1M_MAX_LEN)
    perturbed_sources = []
    for j in range(min(queries, every_prefix.num_queries)):
        query = np.array(every_prefix.query(j))
        if len(query) > 1:
            query[rng.integers(0, len(query) - 1, size=2)] = rng.integers(1, ML1M_ITEMS + 1, size=2)
        perturbed_sources.append(query)
    n = len(perturbed_sources)
    perturbed = tr.Traffic(("perturbed",), ("perturbed",), tuple(perturbed_sources), np.zeros(n, dtype=np.int64),
                           np.arange(n), np.array([len(q) for q in perturbed_sources]), ML1M_MAX_LEN)
    fresh = list(np.random.default_rng(seed + 1).integers(1, ML1M_ITEMS + 1, size=(queries, ML1M_MAX_LEN)))
    one_query = tr.Traffic(("one-query",), ("one-query",), tuple(fresh), np.zeros(queries, dtype=np.int64),
                           np.arange(queries), np.full(queries, ML1M_MAX_LEN), ML1M_MAX_LEN)
    return {"benign": benign, "every-prefix": every_prefix, "chain": chain, "interleaved": interleaved,
            "perturbed": perturbed, "one-query": one_query}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="", help="a saved SEAT encoder (default: a fresh one)")
    parser.add_argument("--queries", type=int, default=20_000, help="queries per traffic shape")
    parser.add_argument("--batch", type=int, default=1024, help="queries encoded per batch")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--detectors", default="", help="comma-separated detectors (default: every registered one)")
    args = parser.parse_args()
    if args.queries < ML1M_MAX_LEN:
        parser.error(f"--queries must be at least {ML1M_MAX_LEN}")
    names = [d for d in args.detectors.split(",") if d] or list(detector_names())
    for name in names:
        get_detector(name)  # an unknown name fails before any work
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder = load_encoder(args.encoder) if args.encoder else SimilarityEncoder(EncoderConfig(ML1M_ITEMS))
    shapes = traffic_shapes(args.queries)
    slowest: dict[str, tuple[float, float, str]] = {}
    for name in names:
        detector = get_detector(name)
        # Limits that are never reached, so every monitor keeps counting to the end; a threshold that counts pairs.
        calibration = Calibration(name, {s: 1e9 for s in detector.statistics}, threshold=0.5, target_fpr=0.0,
                                  calibration_fpr=0.0, num_accounts=0)
        for shape, traffic in shapes.items():
            follow = np.ones(traffic.num_queries, dtype=np.int8)  # growth steps' follow checks always run
            result = measure_throughput(encoder, calibration, traffic, max_queries=args.queries,
                                        batch_size=args.batch, follow=follow)
            rate = result["queries_per_second"]
            cpu = result["queries_per_cpu_second"]
            if name not in slowest or cpu < slowest[name][1]:
                slowest[name] = (rate, cpu, shape)
            print(f"{name:>17} {shape:>12}: {result['queries']} queries, {rate:,.0f} queries/s wall, "
                  f"{cpu:,.0f} per CPU second "
                  f"(features {result['encode_queries_per_second']:,.0f}/s, "
                  f"monitors {result['monitor_queries_per_second']:,.0f}/s, batch {args.batch}, "
                  f"{args.threads} thread(s))", flush=True)
    print(f"slowest shape per detector (target >= 5,000 queries/s on one core; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")
    for name, (rate, cpu, shape) in slowest.items():
        print(f"{name:>17}: {cpu:,.0f} queries per CPU second ({rate:,.0f}/s wall) on {shape} "
              f"{'ok' if cpu >= 5000 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
