"""Progress bars: ``tqdm.auto``, imported once here so that it never warns into a notebook.

In a Jupyter kernel without ipywidgets, importing ``tqdm.auto`` warns
"IProgress not found" (a ``TqdmWarning``) and falls back to the text bar. The
warning starts with the path of the file that raised it, inside the virtual
environment, and papermill keeps it in the executed notebook, so a machine
path ended up in every exported HTML page and in the published report.

The fallback itself is what the study wants: text bars with ``disable=None``
stay quiet when the output is not a terminal (a papermill run), and
ipywidgets bars would only add widget state to the HTML. So the package's
``__init__`` imports this module first, which imports ``tqdm.auto`` with that
one warning silenced; every later ``from tqdm.auto import tqdm`` in the
library finds it already imported and warns no more. Where ipywidgets is
installed (an interactive Jupyter session) nothing is silenced and the bars
are widgets.
"""

from __future__ import annotations

import warnings

from tqdm import TqdmWarning

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
