"""The in-session "follow" signal: does each newly appended item come from the service's previous answer?

A client that sends one query after each new interaction gets a top-k list
back; an autoregressive extraction walk then appends an item *from that list*,
every time. A real user picks the next movie from the list only now and then.
The service knows its own answers, so a deployed monitor can check this for
free; for the study the answers to every prefix of every source are
recomputed in one causal pass of the target over each source (in windows of
the client's width; a source longer than that is read in half-overlapping
chunks, so a position sees between width/2 and width items of context — the
box itself sees the newest ``width``).

``follow_flags`` gives, per source, ``flags[t]`` = 1 when item ``source[t]`` was
in the target's top-k after ``source[:t]`` (seen items filtered as the box
does), 0 when not. ``query_follow`` turns them into one value per query of a
Traffic: 1 / 0 when the query grows its account's previous query of the same
source (the first new item is then judged), -1 otherwise.
"""

from __future__ import annotations

import numpy as np
import torch

from recsec_lib.attack.traffic import Traffic
from recsec_lib.recommend.sequences import pad_left


def _chunks(length: int, width: int) -> list[tuple[int, int, int]]:
    """(start, stop, first judged position) of windows source[start:stop] (at most ``width`` items) that
    judge positions 1..length-1 once each: a chunk judges positions first..stop, each with >= width/2
    items of context (all of them while the source fits in one window)."""
    half = max(1, width // 2)
    chunks = [(0, min(width, length - 1), 1)]
    start = half
    while chunks[-1][1] < length - 1:
        stop = min(start + width, length - 1)
        chunks.append((start, stop, chunks[-1][1] + 1))
        start += half
    return chunks


def follow_flags(model, sources: list[np.ndarray], widths: list[int], k: int, filter_seen: bool,
                 batch_size: int = 32, device: torch.device | str = "cpu") -> list[np.ndarray]:
    """[len(source)] int8 per source: was ``source[t]`` in the top-k after the window before t (t = 0: 0).

    Sources given as the same array object with the same width are computed once.
    """
    flags: list[np.ndarray | None] = [None] * len(sources)
    distinct: dict[tuple[int, int], int] = {}
    rows: list[tuple[int, int, int, int]] = []  # (source, start, stop, first judged position)
    for s, (source, width) in enumerate(zip(sources, widths)):
        key = (id(source), int(width))
        if key in distinct:
            continue
        distinct[key] = s
        flags[s] = np.zeros(len(source), dtype=np.int8)
        if len(source) >= 2:
            rows += [(s, a, b, first) for a, b, first in _chunks(len(source), int(width))]
    model = model.to(device).eval()
    with torch.inference_mode():
        for begin in range(0, len(rows), batch_size):
            batch = rows[begin:begin + batch_size]
            length = max(b - a for _, a, b, _ in batch)
            seqs = torch.as_tensor(pad_left([sources[s][a:b] for s, a, b, _ in batch], length), device=device)  # [B, W]
            scores = model.all_position_scores(seqs).float()  # [B, W, n+1]
            scores[:, :, 0] = -torch.inf
            if filter_seen:  # position p has seen the row's items at columns <= p
                seen = seqs[:, None, :].expand(-1, length, -1).clone()  # [B, W, W]
                seen[:, torch.triu(torch.ones(length, length, dtype=torch.bool, device=device), diagonal=1)] = 0
                scores.scatter_(2, seen, -torch.inf)
            for row, (s, a, b, first) in enumerate(batch):
                pad = length - (b - a)
                # column pad + p holds source[a + p]; its scores judge the next item source[a + p + 1]
                targets = np.arange(max(first, a + 1), b + 1)  # positions t judged by this chunk
                targets = targets[targets < len(sources[s])]
                if len(targets) == 0:
                    continue
                columns = torch.as_tensor(pad + targets - 1 - a, device=device)
                items = torch.as_tensor(sources[s][targets], device=device)
                row_scores = scores[row, columns]  # [T, n+1]
                target_scores = row_scores.gather(1, items[:, None])  # [T, 1]
                rank = (row_scores > target_scores).sum(dim=1)  # [T]
                hit = (rank < k) & torch.isfinite(target_scores[:, 0])
                flags[s][targets] = hit.cpu().numpy().astype(np.int8)
    for s, (source, width) in enumerate(zip(sources, widths)):
        if flags[s] is None:
            flags[s] = flags[distinct[(id(source), int(width))]]
    return flags  # type: ignore[return-value]


def growth_steps(traffic: Traffic) -> tuple[np.ndarray, np.ndarray]:
    """(queries j [G], the end of the account's previous query [G]) for every query that grows its account's
    previous query of the same source."""
    steps, previous_ends = [], []
    previous: dict[int, int] = {}  # account -> index of its previous query
    for j in range(traffic.num_queries):
        account = int(traffic.account[j])
        p = previous.get(account)
        previous[account] = j
        if p is not None and traffic.source[p] == traffic.source[j] and traffic.end[p] < traffic.end[j]:
            steps.append(j)
            previous_ends.append(int(traffic.end[p]))
    return np.array(steps, dtype=np.int64), np.array(previous_ends, dtype=np.int64)


def query_follow(traffic: Traffic, flags: list[np.ndarray | None]) -> np.ndarray:
    """[Q] int8: 1/0 = the query grew its account's previous query of the same source and its first new
    item was / was not in the answer to that previous query; -1 = not such a growth step."""
    out = np.full(traffic.num_queries, -1, dtype=np.int8)
    steps, previous_ends = growth_steps(traffic)
    for j, e in zip(steps.tolist(), previous_ends.tolist()):
        out[j] = flags[int(traffic.source[j])][e]
    return out


def traffic_follow(model, traffic: Traffic, k: int, filter_seen: bool, device: torch.device | str = "cpu") -> np.ndarray:
    """``query_follow`` with the flags computed by ``model`` for the sources that have growth steps only."""
    steps, _ = growth_steps(traffic)
    needed = sorted(set(traffic.source[steps].tolist()))
    computed = follow_flags(model, [traffic.sources[s] for s in needed], [traffic.width(s) for s in needed], k,
                            filter_seen, device=device)
    flags: list[np.ndarray | None] = [None] * len(traffic.sources)
    for s, f in zip(needed, computed):
        flags[s] = f
    return query_follow(traffic, flags)
