"""Cost of a one-query attacker's surrogate: every position scored (dense) against the answered ones only (sparse).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_surrogate.py [--rows 3000] [--epochs 2] [--threads 1]

The one-query attacker (``attack.generators.one_query``) sends every walk
once, so each of its training rows answers one prefix in 200. The surrogate's
margin loss used to score all 200 prefixes of a row against the whole
catalogue and mask 199 of them: that product and its gradient were most of
the 977 s that the SEAT stage's one-query zoo surrogate took on ML-1M
(results/seat/, 3,000 rows, 20 epochs). ``_batch_loss`` now scores only the
answered prefixes when they are at most ``SPARSE_ANSWERED_FRACTION`` of the
batch's positions.

Shapes of ML-1M (3,416 items, walks of up to 200 items, top-100 lists; the
cost does not depend on which items): an untrained SASRec target answers a
real ``one-query`` collection, and a SASRec surrogate trains on it twice with
the same seed, once per path. Prints seconds per epoch of each, their ratio,
and the two surrogates' held-out Agr@10 after every epoch (the paths compute
the same loss, so these agree up to float rounding). Surrogates of the SEAT
stage run one per worker on one thread (``cpu_threads``): ``--threads 1``
times that. Not a test.
"""

from __future__ import annotations

import argparse
import time

import torch

import recsec_lib.attack.surrogate as surrogate_module
from recsec_lib.attack.blackbox import BlackBoxRecommender
from recsec_lib.attack.generators import GENERATORS
from recsec_lib.attack.surrogate import SurrogateSettings, fit_surrogate
from recsec_lib.models.registry import build_model

ML1M_ITEMS, ML1M_MAX_LEN, TOP_K = 3416, 200, 100


def timed_fit(data, epochs: int, sparse_fraction: float, seed: int) -> tuple[float, list[float]]:
    """(seconds per epoch, held-out Agr@10 per epoch) of a SASRec surrogate trained on ``data``."""
    surrogate_module.SPARSE_ANSWERED_FRACTION = sparse_fraction
    torch.manual_seed(seed)
    model = build_model("sasrec", num_items=ML1M_ITEMS, max_len=ML1M_MAX_LEN)
    settings = SurrogateSettings(epochs=epochs, patience=0, seed=seed)
    tick = time.perf_counter()
    result = fit_surrogate(data, model, settings, progress=False)
    seconds = (time.perf_counter() - tick) / epochs
    return seconds, [round(entry["valid_agr10"], 4) for entry in result.history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000, help="one-query training rows (the SEAT cpu profile's)")
    parser.add_argument("--epochs", type=int, default=2, help="surrogate epochs per path")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    box = BlackBoxRecommender(build_model("sasrec", num_items=ML1M_ITEMS, max_len=ML1M_MAX_LEN).eval(), k=TOP_K)
    generator = GENERATORS.build("one-query", training_rows=args.rows)
    data = generator.collect(box, args.rows + 64, ML1M_MAX_LEN, seed=args.seed).training
    print(f"one-query rows: {data.num_sequences} of {data.seq_len} positions, one answered each; "
          f"{args.epochs} epochs per path, {args.threads} thread(s), torch {torch.__version__}")
    default = surrogate_module.SPARSE_ANSWERED_FRACTION
    dense_seconds, dense_agr = timed_fit(data, args.epochs, 0.0, args.seed)
    sparse_seconds, sparse_agr = timed_fit(data, args.epochs, default, args.seed)
    surrogate_module.SPARSE_ANSWERED_FRACTION = default
    print(f"dense  (every position scored): {dense_seconds:7.2f} s per epoch; held-out Agr@10 {dense_agr}")
    print(f"sparse (answered ones only):    {sparse_seconds:7.2f} s per epoch; held-out Agr@10 {sparse_agr}")
    print(f"speed-up: {dense_seconds / sparse_seconds:.2f}x")


if __name__ == "__main__":
    main()
