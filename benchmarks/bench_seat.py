"""Throughput of SEAT's online detection: queries per second through encoder + monitor.

    .venv/bin/python benchmarks/bench_seat.py [--encoder PATH] [--queries 50000] [--batch 1024] [--threads 1]

Two traffic mixes of ML-1M size (3,416 items, queries of up to 200 items):

* benign: growing-prefix accounts (histories of 150 random items, one query
  after each interaction): the session check mostly hits the current session;
* attack: one account sending random walks of length 50 as growing prefixes:
  a new session every 50 queries, each compared with all remembered sessions.

Every query is encoded (no caching of repeats), in batches of ``--batch``,
then fed to the monitor one at a time, as a deployed service would. The
encoder is ``--encoder`` (e.g. outputs/<run>/seat/encoder.pt) or a freshly
initialised one of the default size (same speed). Target: >= 5,000 queries/s.
Prints one line. Not a test.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from recsec_lib.seat import traffic as tr
from recsec_lib.seat.calibration import Calibration
from recsec_lib.seat.encoder import EncoderConfig, SimilarityEncoder, load_encoder
from recsec_lib.seat.evaluation import measure_throughput

ML1M_ITEMS, ML1M_MAX_LEN = 3416, 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="", help="a saved SEAT encoder (default: a fresh one)")
    parser.add_argument("--queries", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1024, help="queries encoded per batch")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder = load_encoder(args.encoder) if args.encoder else SimilarityEncoder(EncoderConfig(ML1M_ITEMS))
    rng = np.random.default_rng(0)
    users = args.queries // 150 + 1
    histories = [rng.choice(np.arange(1, ML1M_ITEMS + 1), size=150, replace=False) for _ in range(users)]
    mixes = {
        "benign": tr.benign_traffic(histories, list(range(users)), ["growing"], ML1M_MAX_LEN, seed=0),
        "attack": tr.attack_traffic(tr.random_walks(args.queries // 50 + 1, 50, ML1M_ITEMS, seed=0),
                                    ML1M_MAX_LEN, "attack"),
    }
    # A limit that is never reached, so that the monitor keeps counting to the end.
    calibration = Calibration("seat", limit=1e9, threshold=0.5, target_fpr=0.0, calibration_fpr=0.0,
                              num_accounts=0, accounts=frozenset())
    for name, traffic in mixes.items():
        result = measure_throughput(encoder, calibration, traffic, max_queries=args.queries, batch_size=args.batch)
        print(f"seat {name}: {result['queries']} queries, {result['queries_per_second']:,.0f} queries/s "
              f"(encoder {result['encode_queries_per_second']:,.0f}/s, "
              f"monitor {result['monitor_queries_per_second']:,.0f}/s, batch {args.batch}, {args.threads} thread(s))")


if __name__ == "__main__":
    main()
