"""Errors of the data layer that callers outside it catch by type (kept free of heavy imports)."""

from __future__ import annotations

MIRROR_ENV = "RECSEC_DATA_MIRROR"


class DataUnavailableError(FileNotFoundError):
    """No copy of the dataset was found locally and none could be downloaded (offline, or downloading off).

    Its message is one line naming ``--mirror`` and ``$RECSEC_DATA_MIRROR``:
    commands and the study runner print it as it is, without a traceback. It
    is a FileNotFoundError, so code that already reports missing files as one
    line handles it too.
    """
