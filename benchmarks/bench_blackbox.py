"""Throughput of the black box: single-sequence queries per second, answered in batches.

    .venv/bin/python benchmarks/bench_blackbox.py [--checkpoint PATH] [--queries 4096] [--threads 2]

Uses a SASRec of the ML-1M size (3,416 items, max_len 200, the default
config), trained if ``--checkpoint`` is given, freshly initialised otherwise
(its speed is the same). Measures two query mixes, k = 100, seen items
filtered, everything logged:

* full: every query has the full 200 items (the worst case);
* prefixes: lengths uniform in 1..200 (what an autoregressive attack of
  length 200 sends, and a growing-prefix benign stream).

Prints one line per mix. Not a test (it takes about a minute).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from recsec_lib.attack.blackbox import BlackBoxRecommender

ML1M_ITEMS, ML1M_MAX_LEN = 3416, 200


def build_target(checkpoint: str | None):
    if checkpoint:
        from recsec_lib.recommend.checkpoints import load_checkpoint

        return load_checkpoint(checkpoint).model
    from recsec_lib.models.registry import build_model

    torch.manual_seed(0)
    return build_model("sasrec", num_items=ML1M_ITEMS, max_len=ML1M_MAX_LEN)


def measure(box: BlackBoxRecommender, queries: list[np.ndarray], batch: int) -> float:
    """Queries per second answering ``queries`` in calls of ``batch`` (after one warm-up call)."""
    box.answer_batch("warm-up", queries[:256])
    start = time.perf_counter()
    for s in range(0, len(queries), batch):
        box.answer_batch("bench", queries[s:s + batch])
    return len(queries) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None, help="trained SASRec checkpoint (default: untrained)")
    parser.add_argument("--queries", type=int, default=4096, help="queries per mix")
    parser.add_argument("--batch", type=int, default=2048, help="queries per answer_batch call")
    parser.add_argument("--chunk", type=int, default=128, help="queries per forward pass inside the box")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_target(args.checkpoint)
    num_items, max_len = model.num_items, model.max_len
    rng = np.random.default_rng(0)
    mixes = {
        "full": [rng.permutation(num_items)[:max_len] + 1 for _ in range(args.queries)],
        "prefixes": [rng.permutation(num_items)[: rng.integers(1, max_len + 1)] + 1 for _ in range(args.queries)],
    }
    for name, queries in mixes.items():
        box = BlackBoxRecommender(model, k=100, batch_size=args.chunk)
        qps = measure(box, queries, args.batch)
        mean_len = np.mean([len(q) for q in queries])
        print(f"blackbox {name:8s} k=100 items={num_items} max_len={max_len} mean_query_len={mean_len:.0f} "
              f"threads={args.threads} call={args.batch} chunk={args.chunk}: {qps:,.0f} queries/s")


if __name__ == "__main__":
    main()
