"""What every stage of the study needs to know about the run it belongs to.

The notebooks build one ``StudyContext`` from their papermill parameters and
pass it to the library's stage functions; ``recsec study`` builds the same
object without Jupyter. It is a frozen dataclass so a stage cannot change the
run's settings behind the others' backs.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROFILES = ("smoke", "cpu", "full")
DATASETS = ("ml-1m", "ml-100k", "ml-20m", "synthetic")
DEVICES = ("auto", "cpu", "cuda")


class DeviceUnavailableError(ValueError):
    """``cuda`` was asked for on a machine where torch has no CUDA device: one line, before any work."""


def check_device(device: str, option: str = "--device") -> None:
    """Refuse ``device == "cuda"`` when torch cannot use CUDA, naming ``option`` and what to give instead.

    The one check behind every ``--device`` (``run_all.sh``, ``recsec study`` and
    each ``recsec`` command call it before any stage or data loading starts), so
    that a machine without a GPU gets one line instead of a traceback from deep
    inside a stage (or a notebook's traceback from papermill).
    """
    if device != "cuda":
        return
    import torch

    if torch.cuda.is_available():
        return
    why = ("this torch build has no CUDA support" if torch.version.cuda is None
           else "torch finds no usable CUDA device")
    raise DeviceUnavailableError(f"{option} cuda: {why} (torch {torch.__version__}); use --device cpu, or "
                                 f"--device auto to take a GPU only when there is one")


@dataclass(frozen=True)
class StudyContext:
    run_dir: Path  # the run folder (outputs/<run-id>.partial while running)
    dataset: str = "ml-1m"  # one of DATASETS; "synthetic" is generated tiny data
    data_dir: Path = Path("data")  # downloads and the processed cache
    mirror: Path | None = None  # local folder with MovieLens copies (RECSEC_DATA_MIRROR)
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda
    profile: str = "cpu"  # smoke | cpu | full
    force: bool = False  # recompute stages even when a cached result exists
    # Where a stage's independent cells run (common.executor): workers at once (1 = serially here; with a
    # cluster, 0 = as many as it has CPUs), a Ray cluster ("" = none, "local", "auto", "ray://HOST:PORT"),
    # and torch threads per cell (the same in every back-end, so the numbers do not depend on it).
    workers: int = 1
    cluster: str = ""
    threads: int = 1

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"parameter 'profile' must be one of {PROFILES}, got {self.profile!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"parameter 'dataset' must be one of {DATASETS}, got {self.dataset!r}")
        if self.device not in DEVICES:
            raise ValueError(f"parameter 'device' must be one of {DEVICES}, got {self.device!r}")
        object.__setattr__(self, "run_dir", Path(self.run_dir))
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.mirror is not None and str(self.mirror) != "":
            object.__setattr__(self, "mirror", Path(self.mirror))
        else:
            env = os.environ.get("RECSEC_DATA_MIRROR")
            object.__setattr__(self, "mirror", Path(env) if env else None)

    def executor(self):
        """The ``common.executor.ExecutorConfig`` of this run (checked: workers × threads fit the cores)."""
        from recsec_lib.common.executor import executor_config

        return executor_config(self.workers or None, self.cluster or None, self.threads)

    def stage_dir(self, stage: str) -> Path:
        """``<run_dir>/<stage>``, created on first use."""
        path = self.run_dir / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def load_dataset(self):
        """The processed dataset of this run (built or read from the cache)."""
        from recsec_lib.data.prepare import prepare_dataset

        return prepare_dataset(self.dataset, data_dir=self.data_dir, mirror=self.mirror)

    def torch_device(self):
        """The torch.device this run computes on ('auto' = CUDA when available)."""
        import torch

        check_device(self.device, option="parameter 'device'")
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) so a run can be repeated."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
