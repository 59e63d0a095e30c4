"""The study machinery: stages, run folders, the notebook runner, the report.

Layer 6: may import every library package (``common``, ``data``, ``models``,
``recommend``, ``attack``, ``gro``, ``seat``); only ``recsec_lib.cli`` sits above it.

* ``stages/``         — one module per study stage (``Settings`` + ``run(ctx, settings)``);
* ``runs``            — run folders: parameters, environment, headline, stage metrics;
* ``stage_cache``     — reusing a stage's result when nothing it depends on changed;
* ``notebook_params`` — reading and checking a notebook's ``parameters`` cell;
* ``runner``          — ``run_all.sh``: notebooks in order through papermill, HTML export;
* ``headless``        — the same stages without Jupyter (``recsec study``);
* ``report`` / ``readme_results`` — the report's tables and findings, the README's results table.
"""
