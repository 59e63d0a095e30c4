"""The ownership test: are the real key's hits more than a model that never saw it would score?

Null hypothesis H0: the suspect is independent of the secret key (it never saw
the watermark, nor anything trained on it). Each verification query, real or
decoy, comes from an independent draw of (trigger, continuation, context) from
one distribution (``key``), so under H0 every query is a hit with the same
probability p_s, whatever p_s is for this suspect (its architecture, data and
popularity bias only move p_s). Given the total number of hits T among the
n_real + n_decoy queries, the real key's hit count is then hypergeometric:
T hits spread at random over the queries. The p-value is its upper tail,

    P(X >= hits),  X ~ Hypergeometric(population = n_real + n_decoy, successes = T, draws = n_real),

the one-sided Fisher exact test of the 2 x 2 table (real / decoy x hit / miss).
It is exact for every suspect and every n (no calibration constant, no normal
approximation); the smallest p-value it can give is 1 / C(n_real + n_decoy, n_real)
when every hit is a real one. The decision claims ownership when p < alpha
(0.01 by default): the false-claim rate is at most alpha per suspect.

What it does not cover: a suspect that is *not* independent of the key without
being derived from the marked model (someone who stole the key file).

``binomial_sf`` and ``clopper_pearson_upper`` serve the secondary reading:
the real hits against a null rate estimated on independent models.
"""

from __future__ import annotations

import math


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def hypergeometric_sf(observed: int, population: int, successes: int, draws: int) -> float:
    """P(X >= observed) for X ~ Hypergeometric(population, successes, draws); exact (log-space sum)."""
    for name, value in (("population", population), ("successes", successes), ("draws", draws)):
        if value < 0:
            raise ValueError(f"parameter {name!r} must be >= 0, got {value}")
    if successes > population or draws > population:
        raise ValueError(f"successes ({successes}) and draws ({draws}) cannot exceed the population ({population})")
    low, high = max(0, draws - (population - successes)), min(draws, successes)
    if observed <= low:
        return 1.0
    if observed > high:
        return 0.0
    total = _log_choose(population, draws)
    terms = [_log_choose(successes, x) + _log_choose(population - successes, draws - x) - total
             for x in range(observed, high + 1)]
    peak = max(terms)
    return min(1.0, math.exp(peak) * sum(math.exp(t - peak) for t in terms))


def ownership_p_value(hits: int, queries: int, decoy_hits: int, decoy_queries: int) -> float:
    """One-sided exact p-value of ``hits`` of ``queries`` real queries against ``decoy_hits`` of ``decoy_queries``."""
    for name, value in (("hits", hits), ("queries", queries), ("decoy_hits", decoy_hits),
                        ("decoy_queries", decoy_queries)):
        if value < 0:
            raise ValueError(f"parameter {name!r} must be >= 0, got {value}")
    if hits > queries or decoy_hits > decoy_queries:
        raise ValueError(f"more hits than queries: {hits}/{queries} real, {decoy_hits}/{decoy_queries} decoy")
    return hypergeometric_sf(hits, queries + decoy_queries, hits + decoy_hits, queries)


def binomial_sf(observed: int, trials: int, rate: float) -> float:
    """P(X >= observed) for X ~ Binomial(trials, rate); exact (log-space sum)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"parameter 'rate' must be in [0, 1], got {rate}")
    if trials < 0:
        raise ValueError(f"parameter 'trials' must be >= 0, got {trials}")
    if observed <= 0:
        return 1.0
    if observed > trials:
        return 0.0
    if rate == 0.0:
        return 0.0
    if rate == 1.0:
        return 1.0
    terms = [_log_choose(trials, x) + x * math.log(rate) + (trials - x) * math.log1p(-rate)
             for x in range(observed, trials + 1)]
    peak = max(terms)
    return min(1.0, math.exp(peak) * sum(math.exp(t - peak) for t in terms))


def clopper_pearson_upper(successes: int, trials: int, confidence: float = 0.99) -> float:
    """The exact one-sided upper confidence bound of a binomial rate (bisection on ``binomial``'s lower tail)."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"parameter 'confidence' must be in (0, 1), got {confidence}")
    if successes == trials:
        return 1.0
    alpha = 1.0 - confidence
    low, high = successes / trials, 1.0
    for _ in range(100):  # P(X <= successes | rate) falls as rate grows: find where it crosses alpha
        mid = (low + high) / 2
        if 1.0 - binomial_sf(successes + 1, trials, mid) > alpha:
            low = mid
        else:
            high = mid
    return high
