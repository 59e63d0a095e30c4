"""A pooled-traffic test: does a window of the service's traffic, all accounts together, look like benign traffic?

Per-account statistics lose to an attacker who spreads its queries thin; a
test on the pooled traffic does not care how many accounts sent a window's
queries, only what they are. The statistic is the squared maximum mean
discrepancy (MMD², unbiased estimate, Gaussian kernel) between the features of
a window's queries (their SEAT encodings) and a fixed reference sample of
benign queries:

    MMD²(X, Y) = mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j),
    k(a, b) = exp(-|a - b|² / (2 σ²)),  σ = the median distance within the reference (``median_bandwidth``).

A window is ``window`` queries made of ``users_per_window`` accounts' stretches
of consecutive queries (a window of real traffic holds several bursts of a
few users, not independent queries); an attack window replaces a share of
them with a stretch of the attacker's own log. The alarm threshold is the
MMD² that at most ``target_fpr`` of benign calibration windows exceed
(reference and calibration windows drawn from different calibration users);
the false-alarm rate is then measured on held-out users' windows, and the
power against an attacker at each traffic share. The test raises an alarm on
the service, not on an account: what to do then (tighter per-account limits,
gating) is a defense decision, reported apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsec_lib.seat.calibration import limit_for_fpr


def gaussian_kernel(a: np.ndarray, b: np.ndarray, bandwidth: float) -> np.ndarray:
    """[len(a), len(b)] exp(-|a_i - b_j|² / (2 bandwidth²))."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T  # [n, m]
    return np.exp(-np.maximum(squared, 0.0) / (2.0 * bandwidth * bandwidth))


def _mean_off_diagonal(kernel: np.ndarray) -> float:
    n = len(kernel)
    return float((kernel.sum() - np.trace(kernel)) / (n * (n - 1)))


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, bandwidth: float, yy: float | None = None) -> float:
    """Unbiased MMD² between samples x [n, D] and y [m, D] (n, m >= 2); ``yy``: y's own term, if known."""
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"mmd2_unbiased needs at least 2 points per sample, got {len(x)} and {len(y)}")
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if yy is None:
        yy = _mean_off_diagonal(gaussian_kernel(y, y, bandwidth))
    return _mean_off_diagonal(gaussian_kernel(x, x, bandwidth)) + yy - 2.0 * float(
        gaussian_kernel(x, y, bandwidth).mean())


def median_bandwidth(x: np.ndarray, max_points: int = 1000, seed: int = 0) -> float:
    """The median distance between distinct points of (a sample of) x: the usual kernel width."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) > max_points:
        x = x[np.random.default_rng(seed).choice(len(x), size=max_points, replace=False)]
    squared = (x * x).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2.0 * x @ x.T
    upper = np.sqrt(np.maximum(squared[np.triu_indices(len(x), k=1)], 0.0))
    value = float(np.median(upper)) if len(upper) else 0.0
    if value <= 0:
        raise ValueError("median_bandwidth: the points are all equal; no kernel width can be read from them")
    return value


def traffic_windows(features: np.ndarray, account: np.ndarray, window: int, users_per_window: int,
                    num_windows: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``num_windows`` windows of ``window`` feature rows: ``users_per_window`` random accounts, each a random
    stretch of window / users_per_window consecutive queries (its whole log when shorter; more accounts are
    drawn until the window is full). ``features`` [Q, D] and ``account`` [Q] in log order."""
    if window < 2 or users_per_window < 1 or num_windows < 1:
        raise ValueError(f"window >= 2, users_per_window >= 1 and num_windows >= 1 needed, got {window}, "
                         f"{users_per_window}, {num_windows}")
    order = np.argsort(account, kind="stable")
    accounts, starts, counts = np.unique(account[order], return_index=True, return_counts=True)
    if counts.sum() < window:
        raise ValueError(f"the traffic has {counts.sum()} queries, fewer than one window of {window}")
    stretch = max(1, window // users_per_window)
    out = []
    for _ in range(num_windows):
        rows: list[np.ndarray] = []
        have = 0
        while have < window:
            a = int(rng.integers(len(accounts)))
            length = min(stretch, int(counts[a]), window - have)
            first = int(rng.integers(0, counts[a] - length + 1))
            rows.append(order[starts[a] + first:starts[a] + first + length])
            have += length
        out.append(features[np.concatenate(rows)])
    return out


@dataclass(frozen=True, eq=False)
class PooledTest:
    """A calibrated pooled-traffic test (build it with ``calibrate_pooled``)."""

    reference: np.ndarray  # [R, D] benign reference features
    bandwidth: float
    reference_term: float  # the reference's own MMD term (precomputed)
    window: int  # queries per window
    users_per_window: int
    threshold: float  # a window whose MMD² exceeds this raises the alarm
    target_fpr: float  # per window
    calibration_fpr: float

    def statistic(self, window_features: np.ndarray) -> float:
        return mmd2_unbiased(window_features, self.reference, self.bandwidth, self.reference_term)


def calibrate_pooled(reference: np.ndarray, features: np.ndarray, account: np.ndarray, window: int,
                     users_per_window: int, target_fpr: float, num_windows: int, seed: int = 0) -> PooledTest:
    """Threshold the MMD² of benign calibration windows (``features``/``account``: calibration traffic of
    users other than the reference's) at ``target_fpr`` per window."""
    rng = np.random.default_rng(seed)
    reference = np.asarray(reference, dtype=np.float64)
    bandwidth = median_bandwidth(reference, seed=seed)
    term = _mean_off_diagonal(gaussian_kernel(reference, reference, bandwidth))
    probe = PooledTest(reference, bandwidth, term, window, users_per_window, np.inf, target_fpr, 0.0)
    values = [probe.statistic(w) for w in traffic_windows(features, account, window, users_per_window,
                                                          num_windows, rng)]
    threshold, achieved = limit_for_fpr(values, target_fpr)
    return PooledTest(reference, bandwidth, term, window, users_per_window, threshold, target_fpr, achieved)


def window_alarms(test: PooledTest, features: np.ndarray, account: np.ndarray, num_windows: int, seed: int = 0,
                  attack: np.ndarray | None = None, share: float = 0.0) -> tuple[int, int]:
    """(windows that raised the alarm, windows): benign windows of ``features``/``account``, with a share
    ``share`` of each window's queries replaced by a random stretch of consecutive ``attack`` feature rows."""
    if not 0 <= share <= 1:
        raise ValueError(f"share must be in [0, 1], got {share}")
    rng = np.random.default_rng(seed)
    windows = traffic_windows(features, account, test.window, test.users_per_window, num_windows, rng)
    alarms = 0
    for w in windows:
        taken = int(round(share * test.window))
        if taken and attack is not None:
            if len(attack) < taken:
                raise ValueError(f"the attack has {len(attack)} queries, fewer than {taken} per window")
            first = int(rng.integers(0, len(attack) - taken + 1))
            w = np.concatenate([w[:test.window - taken], attack[first:first + taken]])
        alarms += test.statistic(w) > test.threshold
    return int(alarms), len(windows)
