"""The similarity encoder of SEAT, adapted to item sequences.

SEAT (Zhang, Chen, Wagner, AISec 2021) trains an encoder so that a query and
small, adversarially chosen edits of it land close together, while unrelated
queries land far apart. The detector then only has to compare short vectors.

Here a query is a left-padded item sequence. The encoder looks at the most
recent ``window`` items (what a recommender mostly reacts to), embeds them,
averages the embeddings of the non-padding items, passes the mean through a
small MLP and L2-normalises the result, so distances lie in [0, 2]. Mean
pooling keeps the monitor fast (thousands of queries per second on one CPU
core) and has a useful property for detection: sequences of uniformly random
items all average to nearly the same point, so random-generator attack walks
are mutually close even though no two of them share items.

Training (``train_encoder``) uses only data a defender has: windows of the
training sequences of the users reserved for the encoder. Each anchor window
gets a positive made of a few item edits (replace / insert / delete) chosen
greedily among random candidates to push its encoding *away* from the anchor
(the adversarial step); the other anchors of the batch are the negatives of an
InfoNCE loss.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from recsec_lib.recommend.sequences import PAD, pad_left
from recsec_lib.common.files import atomic_path

EDIT_KINDS = ("replace", "insert", "delete")


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of the encoder (saved with its weights)."""

    num_items: int  # item ids are 1..num_items
    window: int = 50  # only the most recent `window` items of a query are encoded
    dim: int = 64  # item embedding and output size
    hidden: int = 128  # width of the MLP after pooling

    def __post_init__(self) -> None:
        for name in ("num_items", "window", "dim", "hidden"):
            if getattr(self, name) <= 0:
                raise ValueError(f"EncoderConfig.{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class EncoderTraining:
    """How the encoder is trained (all counts small enough for a CPU)."""

    steps: int = 300  # optimiser steps
    batch_size: int = 256  # anchors per step (the other anchors are each one's negatives)
    lr: float = 3e-3
    temperature: float = 0.1  # InfoNCE temperature
    min_len: int = 3  # shortest anchor window
    max_edits: int = 4  # a positive differs from its anchor by 1..max_edits edits
    num_candidates: int = 8  # random candidate edits among which each adversarial step picks
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "min_len", "max_edits", "num_candidates"):
            if getattr(self, name) <= 0:
                raise ValueError(f"EncoderTraining.{name} must be positive, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("EncoderTraining.batch_size must be at least 2 (in-batch negatives)")
        if self.temperature <= 0:
            raise ValueError(f"EncoderTraining.temperature must be positive, got {self.temperature}")


class SimilarityEncoder(nn.Module):
    """[B, L] left-padded item ids -> [B, dim] unit vectors."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.num_items + 1, config.dim, padding_idx=PAD)
        self.mlp = nn.Sequential(
            nn.Linear(config.dim, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.dim)
        )
        nn.init.normal_(self.embedding.weight, std=0.1)
        with torch.no_grad():
            self.embedding.weight[PAD].zero_()

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        seqs = seqs[:, -self.config.window:]  # [B, W]
        mask = (seqs != PAD).unsqueeze(-1).float()  # [B, W, 1]
        summed = (self.embedding(seqs) * mask).sum(dim=1)  # [B, D]
        mean = summed / mask.sum(dim=1).clamp(min=1.0)  # [B, D]
        return F.normalize(self.mlp(mean), dim=-1)  # [B, D]


def encode_sequences(encoder: SimilarityEncoder, sequences: Sequence[Sequence[int]],
                     batch_size: int = 4096, device: torch.device | str = "cpu") -> np.ndarray:
    """Encode many sequences (any lengths); returns float32 [len(sequences), dim]."""
    window = encoder.config.window
    out = np.zeros((len(sequences), encoder.config.dim), dtype=np.float32)
    encoder.eval()
    with torch.no_grad():
        for start in range(0, len(sequences), batch_size):
            chunk = sequences[start:start + batch_size]
            batch = torch.as_tensor(pad_left(chunk, window), device=device)  # [b, W]
            out[start:start + len(chunk)] = encoder(batch).cpu().numpy()
    return out


# --- edits and the adversarial step ---------------------------------------------------

def apply_edit(seq: Sequence[int], kind: str, position: int, item: int) -> list[int]:
    """One item edit. ``position`` indexes ``seq``; ``item`` is ignored for deletes.

    A delete that would empty the sequence becomes a replace, so every edit
    leaves at least one item.
    """
    seq = list(seq)
    if kind not in EDIT_KINDS:
        raise ValueError(f"edit kind must be one of {EDIT_KINDS}, got {kind!r}")
    if not 0 <= position <= len(seq):
        raise ValueError(f"edit position {position} outside 0..{len(seq)}")
    if kind == "insert":
        return seq[:position] + [item] + seq[position:]
    position = min(position, len(seq) - 1)
    if kind == "delete" and len(seq) > 1:
        return seq[:position] + seq[position + 1:]
    seq[position] = item
    return seq


def random_edits(seq: Sequence[int], count: int, num_items: int, rng: np.random.Generator) -> list[list[int]]:
    """``count`` independently drawn single edits of ``seq`` (uniform kind, position, item)."""
    edits = []
    for _ in range(count):
        kind = EDIT_KINDS[int(rng.integers(len(EDIT_KINDS)))]
        position = int(rng.integers(len(seq) + (1 if kind == "insert" else 0)))
        edits.append(apply_edit(seq, kind, position, int(rng.integers(1, num_items + 1))))
    return edits


def adversarial_edit_step(encoder: SimilarityEncoder, anchors: torch.Tensor, seqs: Sequence[Sequence[int]],
                          num_candidates: int, rng: np.random.Generator,
                          device: torch.device | str = "cpu") -> tuple[list[list[int]], np.ndarray]:
    """Apply to each sequence the one of ``num_candidates`` random edits that moves it farthest.

    ``anchors`` [B, D] are the encodings the distance is measured from (the
    original, unedited sequences). Returns the edited sequences and their
    distances [B] to the anchors.
    """
    window = encoder.config.window
    candidates = [cand for seq in seqs for cand in random_edits(seq, num_candidates, encoder.config.num_items, rng)]
    with torch.no_grad():
        encoded = encoder(torch.as_tensor(pad_left(candidates, window), device=device))  # [B*C, D]
        encoded = encoded.view(len(seqs), num_candidates, -1)  # [B, C, D]
        distances = (encoded - anchors.unsqueeze(1)).norm(dim=-1)  # [B, C]
        best = distances.argmax(dim=1)  # [B]
    chosen = [candidates[row * num_candidates + int(best[row])] for row in range(len(seqs))]
    return chosen, distances[torch.arange(len(seqs)), best].cpu().numpy()


def adversarial_positives(encoder: SimilarityEncoder, seqs: Sequence[Sequence[int]], num_edits: Sequence[int],
                          num_candidates: int, rng: np.random.Generator,
                          device: torch.device | str = "cpu") -> list[list[int]]:
    """Greedy adversarial positives: up to ``num_edits[i]`` distance-maximising edits of ``seqs[i]``."""
    window = encoder.config.window
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        anchors = encoder(torch.as_tensor(pad_left(seqs, window), device=device))  # [B, D]
    current = [list(s) for s in seqs]
    for step in range(max(num_edits, default=0)):
        active = [i for i, n in enumerate(num_edits) if n > step]
        edited, _ = adversarial_edit_step(encoder, anchors[active], [current[i] for i in active],
                                          num_candidates, rng, device)
        for i, seq in zip(active, edited):
            current[i] = seq
    encoder.train(was_training)
    return current


# --- training -----------------------------------------------------------------------

def sample_windows(sequences: Sequence[np.ndarray], count: int, window: int, min_len: int,
                   rng: np.random.Generator) -> list[list[int]]:
    """``count`` random contiguous windows (length min_len..window) of random sequences."""
    usable = [s for s in sequences if len(s) >= min_len]
    if not usable:
        raise ValueError(f"no training sequence has at least min_len={min_len} items")
    picks = rng.integers(len(usable), size=count)
    windows = []
    for idx in picks:
        seq = usable[int(idx)]
        length = int(rng.integers(min_len, min(window, len(seq)) + 1))
        start = int(rng.integers(len(seq) - length + 1))
        windows.append(seq[start:start + length].tolist())
    return windows


def info_nce(anchors: torch.Tensor, positives: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``positives`` is anchor i's positive, other rows its negatives."""
    logits = anchors @ positives.T / temperature  # [B, B]
    labels = torch.arange(len(anchors), device=anchors.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def train_encoder(sequences: Sequence[np.ndarray], config: EncoderConfig, training: EncoderTraining,
                  device: torch.device | str = "cpu", progress: bool = True) -> tuple[SimilarityEncoder, list[float]]:
    """Train a SimilarityEncoder on the defender's own sequences; returns it and the loss per step."""
    rng = np.random.default_rng(training.seed)
    torch.manual_seed(training.seed)
    encoder = SimilarityEncoder(config).to(device)
    optimiser = torch.optim.Adam(encoder.parameters(), lr=training.lr)
    losses = []
    for _ in tqdm(range(training.steps), desc="SEAT encoder", disable=None if progress else True):
        anchors = sample_windows(sequences, training.batch_size, config.window, training.min_len, rng)
        num_edits = rng.integers(1, training.max_edits + 1, size=len(anchors)).tolist()
        positives = adversarial_positives(encoder, anchors, num_edits, training.num_candidates, rng, device)
        encoder.train()
        z_anchor = encoder(torch.as_tensor(pad_left(anchors, config.window), device=device))  # [B, D]
        z_positive = encoder(torch.as_tensor(pad_left(positives, config.window), device=device))  # [B, D]
        loss = info_nce(z_anchor, z_positive, training.temperature)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    encoder.eval()
    return encoder, losses


# --- saving -------------------------------------------------------------------------

def save_encoder(encoder: SimilarityEncoder, path: str | os.PathLike) -> None:
    """Save config and weights atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        torch.save({"kind": "seat-encoder", "config": asdict(encoder.config),
                    "state_dict": encoder.state_dict()}, tmp)


def load_encoder(path: str | os.PathLike, device: torch.device | str = "cpu") -> SimilarityEncoder:
    """Load an encoder written by ``save_encoder``; a wrong file raises naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SEAT encoder file {path} does not exist")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise ValueError(f"{path}: not a readable torch file ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("kind") != "seat-encoder":
        raise ValueError(f"{path}: not a SEAT encoder file (written by recsec_lib.seat.encoder.save_encoder)")
    encoder = SimilarityEncoder(EncoderConfig(**payload["config"])).to(device)
    encoder.load_state_dict(payload["state_dict"])
    encoder.eval()
    return encoder
