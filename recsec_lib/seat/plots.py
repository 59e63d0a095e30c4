"""Figures of the SEAT stage (PNG, written atomically)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from recsec_lib import runs  # noqa: E402


def plot_zoo(table: pd.DataFrame, detectors: list[str], path: Path) -> None:
    """Accounts each zoo attacker needs per detector (log scale) beside its surrogate's Agr@10."""
    attacks = table["attack"].tolist()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(attacks) + 1.6), sharey=True)
    height = 0.8 / max(1, len(detectors))
    for i, detector in enumerate(detectors):
        column = f"accounts_{detector}"
        if column in table:
            offset = (i - (len(detectors) - 1) / 2) * height  # the group of bars centred on the attack's tick
            left.barh([a + offset for a in range(len(attacks))], table[column].fillna(0), height=height,
                      label=detector)
    left.set_xscale("log")
    left.set_yticks(range(len(attacks)))
    left.set_yticklabels(attacks)
    left.set_xlabel("accounts needed to stay unflagged (0 = beyond the grid)")
    left.legend(fontsize=7)
    right.barh(range(len(attacks)), table["agr10"], color="grey")
    right.set_xlabel("surrogate Agr@10 (real test inputs)")
    fig.tight_layout()
    save_figure(fig, path)


def plot_roc(roc: pd.DataFrame, aucs: dict, fpr: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for detector, group in roc.groupby("detector"):
        ax.step(group["fpr"], group["tpr"], where="post", label=f"{detector} (AUC {aucs[detector]:.3f})")
    ax.axvline(fpr, color="grey", linestyle=":", label=f"target FPR {fpr:g}")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(0, 1)
    ax.set_xlabel("false-positive rate (benign test accounts)")
    ax.set_ylabel("true-positive rate (single-account attacks)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    """Save a PNG atomically."""
    try:
        with runs.atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)
