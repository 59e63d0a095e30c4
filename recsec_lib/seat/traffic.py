"""Which real users play which part in evaluating a detector: encoder, calibration, test.

Users are split by internal id (= original MovieLens user id order), never
shuffled, into three disjoint blocks: the first part trains the encoder, the
next is the calibration population, the last part is held out for testing.
The traffic itself (``Traffic``) is defined in ``recsec_lib.attack.traffic``;
benign accounts are built by ``recsec_lib.seat.benign``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UserSplit:
    """Disjoint blocks of internal user ids: encoder training, calibration, test."""

    encoder: np.ndarray
    calibration: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        blocks = {"encoder": self.encoder, "calibration": self.calibration, "test": self.test}
        for name, block in blocks.items():
            if len(block) == 0:
                raise ValueError(f"the {name} block of the user split is empty; use more users or other fractions")
        names = list(blocks)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if np.intersect1d(blocks[a], blocks[b]).size:
                    raise ValueError(f"user split blocks {a!r} and {b!r} overlap")


def split_users(num_users: int, encoder_fraction: float = 0.5, calibration_fraction: float = 0.25) -> UserSplit:
    """First ``encoder_fraction`` of users by id -> encoder, next ``calibration_fraction`` -> calibration, rest -> test."""
    if not (0 < encoder_fraction < 1 and 0 < calibration_fraction < 1 and encoder_fraction + calibration_fraction < 1):
        raise ValueError(f"encoder_fraction ({encoder_fraction}) and calibration_fraction ({calibration_fraction}) "
                         "must be in (0, 1) and sum to less than 1")
    users = np.arange(num_users)
    a = int(round(num_users * encoder_fraction))
    b = a + int(round(num_users * calibration_fraction))
    return UserSplit(encoder=users[:a], calibration=users[a:b], test=users[b:])
