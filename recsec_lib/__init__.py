"""recsec: model-extraction attacks and defenses on sequential recommenders.

The library holds all computation of the study; the notebooks in ``notebooks/``
only set parameters, call it and plot. It imports neither papermill nor Jupyter.
"""

__version__ = "0.1.0"

# First of all, tqdm.auto without its "IProgress not found" warning (see progress.py for why).
from recsec_lib.common import progress as _progress  # noqa: E402,F401
