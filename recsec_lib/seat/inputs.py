"""What the SEAT stage reads from a study run: the target behind the black box and saved query logs."""

from __future__ import annotations

from pathlib import Path

from recsec_lib.attack import traffic as tr


def load_box(checkpoint: Path, dataset, k: int, device):
    """(the study's black box around the target checkpoint, the loaded target model).

    The service filters seen items unless the catalogue is too small for it (the tiny smoke data).
    """
    from recsec_lib.attack.blackbox import BlackBoxRecommender
    from recsec_lib.recommend.checkpoints import load_checkpoint

    if not checkpoint.is_file():
        raise FileNotFoundError(f"target checkpoint {checkpoint} does not exist: run the train stage first "
                                "(or set target_path)")
    loaded = load_checkpoint(checkpoint, dataset=dataset, device=device)
    filter_seen = k + loaded.model.max_len <= dataset.num_items
    box = BlackBoxRecommender(loaded.model, k=k, filter_seen=filter_seen, keep_answers=False, device=device)
    return box, loaded.model


def read_log(path: Path):
    """The records of a query log: a QueryLog .npz or JSON lines (``recsec_lib.attack.querylog``)."""
    from recsec_lib.attack.querylog import QueryLog, load_log

    if not path.is_file():
        raise FileNotFoundError(f"query log {path} does not exist")
    return QueryLog.load(path) if path.suffix == ".npz" else load_log(path)


def logged_attacks(attack_dir: Path, max_len: int) -> list[tuple[str, tr.Traffic]]:
    """Query logs the attack stage saved (QueryLog .npz or JSON lines); other files are skipped."""
    found = []
    if not attack_dir.is_dir():
        return found
    for path in sorted(attack_dir.glob("*.npz")) + sorted(attack_dir.glob("*.jsonl")):
        try:
            records = read_log(path)
            found.append((path.name, tr.traffic_from_records(records, max_len, kind=f"log:{path.stem}")))
        except (ValueError, KeyError, OSError):
            continue  # not a query log (e.g. collected training pairs)
    return found
