"""The study runner behind ``run_all.sh``: notebooks in order, through papermill.

For each selected ``notebooks/NN_<stage>.py`` it (1) converts the jupytext file
to ``.ipynb``, (2) executes it with papermill, injecting the run's parameters,
and (3) exports the executed notebook to HTML with nbconvert. The three tools
run as subprocesses of this environment's Python, so the library itself never
imports Jupyter.

A run is built in ``outputs/<run-id>.partial/`` and renamed to
``outputs/<run-id>/`` once every stage has succeeded. A failed stage leaves its
partially executed notebook in place, and ``--resume <run-id>`` continues with
the first stage that has not finished (of the stages the run was started with,
unless ``--stage``/``--from``/``--to`` name others).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from recsec_lib import runs
from recsec_lib.notebook_params import check_overrides, read_parameters
from recsec_lib.readme_results import update_readme
from recsec_lib.stages.context import DATASETS, DEVICES, PROFILES

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_NAME = re.compile(r"^(\d\d)_([a-z]+)\.py$")
# Parameters every notebook declares; the runner sets them for each stage.
COMMON_PARAMETERS = ("run_dir", "run_id", "dataset", "data_dir", "mirror", "seed", "device", "profile", "force")


class StageFailed(RuntimeError):
    """A notebook failed; the message names the stage and its partial notebook."""


@dataclass(frozen=True)
class Stage:
    number: str  # "02"
    name: str  # "train"
    source: Path  # notebooks/02_train.py

    @property
    def label(self) -> str:
        return f"{self.number}_{self.name}"


def discover_stages(notebooks_dir: Path = REPO / "notebooks") -> list[Stage]:
    """The study's stages in order, from the notebook file names."""
    stages = []
    for path in sorted(notebooks_dir.glob("*.py")):
        match = NOTEBOOK_NAME.match(path.name)
        if match:
            stages.append(Stage(match.group(1), match.group(2), path))
    if not stages:
        raise ValueError(f"no notebooks named NN_<stage>.py in {notebooks_dir}")
    return stages


def select_stages(stages: list[Stage], only: str | None = None, start: str | None = None,
                  stop: str | None = None) -> list[Stage]:
    """Keep one stage (``only``), or the stages from ``start`` up to ``stop``; names or numbers work."""
    def find(key: str, option: str) -> int:
        for index, stage in enumerate(stages):
            if key in (stage.name, stage.number, stage.label):
                return index
        names = ", ".join(stage.name for stage in stages)
        raise ValueError(f"{option} {key!r}: no such stage (stages: {names})")

    if only and (start or stop):
        raise ValueError("give either --stage or --from/--to, not both")
    if only:
        return [stages[find(only, "--stage")]]
    first = find(start, "--from") if start else 0
    last = find(stop, "--to") if stop else len(stages) - 1
    if last < first:
        raise ValueError(f"--to {stop!r} comes before --from {start!r}")
    return stages[first:last + 1]


def recorded_stages(stages: list[Stage], params: dict) -> list[Stage]:
    """The stages a run was started with (``params.json`` "stages"), in order; all of them if none is recorded.

    ``--resume`` without a stage selection continues these, so that resuming a
    run started with ``--to attack`` does not go on into the later stages.
    """
    names = params.get("stages")
    if not names:
        return stages
    unknown = sorted(set(names) - {stage.name for stage in stages})
    if unknown:
        raise ValueError(f"params.json names stage(s) {unknown} that have no notebook")
    return [stage for stage in stages if stage.name in names]


def default_run_id(profile: str, dataset: str) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{profile}-{dataset}"


def _tool(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def kernel_name() -> str:
    """This environment's own kernel ('recsec', installed by scripts/ensure_env.sh) or 'python3'."""
    try:
        listing = subprocess.run(_tool("jupyter", "kernelspec", "list", "--json"),
                                 capture_output=True, text=True, check=True).stdout
        return "recsec" if "recsec" in json.loads(listing)["kernelspecs"] else "python3"
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError):
        return "python3"


def stage_done(run_dir: Path, stage: Stage) -> bool:
    """A stage counts as finished when its executed notebook and metrics.json exist."""
    return (run_dir / stage.name / "metrics.json").exists() and (run_dir / "notebooks" / f"{stage.label}.ipynb").exists()


def run_stage(stage: Stage, run_dir: Path, parameters: dict[str, object], kernel: str) -> float:
    """Convert, execute and export one notebook; returns its wall time in seconds."""
    notebooks = run_dir / "notebooks"
    html = run_dir / "html"
    notebooks.mkdir(parents=True, exist_ok=True)
    html.mkdir(parents=True, exist_ok=True)
    source_ipynb = notebooks / "source" / f"{stage.label}.ipynb"
    executed = notebooks / f"{stage.label}.ipynb"
    params_file = notebooks / "source" / f"{stage.label}.parameters.json"
    source_ipynb.parent.mkdir(parents=True, exist_ok=True)
    runs.write_json_atomic(params_file, parameters)

    start = time.perf_counter()
    _run([*_tool("jupytext", "--quiet", "--to", "ipynb", "--output", str(source_ipynb), str(stage.source))],
         stage, executed)
    _run([*_tool("papermill", str(source_ipynb), str(executed), "-k", kernel, "-f", str(params_file),
                 "--cwd", str(REPO), "--no-progress-bar", "--log-level", "WARNING")], stage, executed)
    seconds = time.perf_counter() - start
    _run([*_tool("nbconvert", "--to", "html", "--log-level", "WARN", "--output-dir", str(html), str(executed))],
         stage, executed)
    if stage.name == "report":
        # The study's report: one self-contained file with code, one without.
        _run([*_tool("nbconvert", "--to", "html", "--log-level", "WARN", "--embed-images", "--output-dir",
                     str(run_dir), "--output", "report", str(executed))], stage, executed)
        _run([*_tool("nbconvert", "--to", "html", "--log-level", "WARN", "--embed-images", "--no-input",
                     "--output-dir", str(run_dir), "--output", "report_nocode", str(executed))], stage, executed)
    return seconds


def _run(command: list[str], stage: Stage, executed: Path) -> None:
    result = subprocess.run(command, cwd=REPO)
    if result.returncode != 0:
        raise StageFailed(f"stage {stage.label} failed (exit {result.returncode}); "
                          f"the partially executed notebook is {executed}")


def publish(run_dir: Path, results_dir: Path, update_readme_section: bool = True) -> None:
    """Copy a finished real run's headline, metrics, report and figures into results/ (or another folder)."""
    staging = results_dir.with_name(results_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "figures").mkdir(parents=True)
    shutil.copy2(run_dir / "headline.json", staging / "headline.json")
    combined = {}
    for metrics in sorted(run_dir.glob("*/metrics.json")):
        combined[metrics.parent.name] = runs.read_json(metrics)
    runs.write_json_atomic(staging / "metrics.json", combined)
    if (run_dir / "report_nocode.html").exists():
        shutil.copy2(run_dir / "report_nocode.html", staging / "report.html")
    for png in sorted(run_dir.glob("*/*.png")):
        shutil.copy2(png, staging / "figures" / f"{png.parent.name}_{png.name}")
    for extra in published_beside(results_dir):  # runs published into sub-folders stay
        shutil.copytree(extra, staging / extra.name)
    old = results_dir.with_name(results_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if results_dir.exists():
        results_dir.rename(old)
    staging.rename(results_dir)
    shutil.rmtree(old, ignore_errors=True)
    readme = results_dir.parent / "README.md"
    extra_runs = {path.name: runs.read_json(path / "headline.json") for path in published_beside(results_dir)}
    if update_readme_section and readme.exists() and update_readme(readme, runs.read_json(results_dir / "headline.json"),
                                                                   extra_runs):
        print(f"run_all.sh: updated the results section of {readme}", flush=True)


def published_beside(results_dir: Path) -> list[Path]:
    """The sub-folders of ``results_dir`` that hold another published run (they have a headline.json)."""
    if not results_dir.is_dir():
        return []
    return sorted(path for path in results_dir.iterdir() if path.is_dir() and (path / "headline.json").is_file())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_all.sh",
        description="Run the study's notebooks in order (papermill) and export them to HTML.",
    )
    parser.add_argument("--profile", choices=PROFILES, default="cpu",
                        help="smoke: tiny synthetic data, about a minute; cpu: ML-1M sized for a 2-core CPU; "
                             "full: paper-scale settings, for a GPU (default: cpu)")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="dataset (default: ml-1m, or synthetic with --profile smoke)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto | cpu | cuda (default: auto)")
    parser.add_argument("--seed", type=int, default=42, help="random seed of every stage (default: 42)")
    parser.add_argument("--data-dir", default="data", help="downloads and processed cache (default: data)")
    parser.add_argument("--mirror", default=os.environ.get("RECSEC_DATA_MIRROR", ""),
                        help="local folder with MovieLens copies (default: $RECSEC_DATA_MIRROR)")
    parser.add_argument("--outputs", default="outputs", help="where run folders go (default: outputs)")
    parser.add_argument("--run-id", default=None, help="name of the run folder (default: <time>-<profile>-<dataset>)")
    parser.add_argument("--stage", default=None, help="run only this stage (name or number)")
    parser.add_argument("--from", dest="start", default=None, help="run from this stage on")
    parser.add_argument("--to", dest="stop", default=None, help="run up to and including this stage")
    parser.add_argument("--resume", default=None, metavar="RUN_ID",
                        help="continue an interrupted run, or add stages to a finished one: finished stages "
                             "are skipped")
    parser.add_argument("--force", action="store_true", help="recompute stages instead of reusing cached results")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="set a notebook parameter, e.g. -p epochs 5 (repeatable)")
    parser.add_argument("--publish", choices=("auto", "yes", "no"), default="auto",
                        help="copy the finished run into results/ (auto: a complete, non-smoke ML-1M run)")
    parser.add_argument("--publish-dir", default="results",
                        help="where --publish copies the run, relative to the repository (default: results; "
                             "a sub-folder such as results/<name> keeps a partial or extra run beside the "
                             "main one; only results/ itself regenerates the README's results section)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except (ValueError, FileNotFoundError, StageFailed, runs.RunInUseError) as exc:
        print(f"run_all.sh: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, StageFailed) else 2


def resume_parameters(run_dir: Path, overrides: dict) -> tuple[dict, dict]:
    """(common parameters, -p overrides) of a resumed run: the saved ones with the new ``overrides`` on top.

    -p values that change the run are written back into its params.json (and
    appended to its ``resumed_with`` list), so the folder keeps saying which
    parameters produced what it holds.
    """
    params_path = run_dir / "params.json"
    saved = runs.read_json(params_path)
    before = saved.get("overrides", {})
    merged = {**before, **overrides}
    changed = {name: value for name, value in overrides.items() if before.get(name) != value}
    if changed:
        saved = {**saved, "overrides": merged, "resumed_with": [*saved.get("resumed_with", []), changed]}
        runs.write_json_atomic(params_path, saved)
    return saved["common"], merged


def _main(args: argparse.Namespace) -> int:
    all_stages = discover_stages()
    stages = select_stages(all_stages, args.stage, args.start, args.stop)
    overrides = check_overrides([stage.source for stage in stages], args.parameter)
    outputs = Path(args.outputs).resolve()
    dataset = args.dataset or ("synthetic" if args.profile == "smoke" else "ml-1m")
    run_id = runs.check_run_id(args.resume or args.run_id or default_run_id(args.profile, dataset))
    # One process at a time computes into a run folder (a second --resume of a live run would
    # overwrite its results and crash renaming the folder): held until the run is finished or published.
    with runs.run_lock(outputs, run_id) as lock:
        if lock.taken_over_from:
            print(f"run_all.sh: took over the lock {lock.path} of {lock.taken_over_from}, which has ended",
                  flush=True)
        return _run_locked(args, all_stages, stages, overrides, outputs, run_id, dataset)


def _run_locked(args: argparse.Namespace, all_stages: list[Stage], stages: list[Stage], overrides: dict,
                outputs: Path, run_id: str, dataset: str) -> int:
    if args.resume:
        run_dir = outputs / f"{args.resume}.partial"
        finished = outputs / args.resume
        if not run_dir.exists() and finished.exists():
            finished.rename(run_dir)  # adding stages to a finished run: it is unfinished again until they end
        if not run_dir.exists():
            raise FileNotFoundError(f"--resume {args.resume}: no run folder {run_dir} or {finished}")
        if not (args.stage or args.start or args.stop):
            stages = recorded_stages(all_stages, runs.read_json(run_dir / "params.json"))
        common, overrides = resume_parameters(run_dir, overrides)
    else:
        common = {
            "run_id": run_id, "dataset": dataset, "data_dir": str(Path(args.data_dir).resolve()),
            "mirror": str(Path(args.mirror).resolve()) if args.mirror else "",
            "seed": args.seed, "device": args.device, "profile": args.profile, "force": bool(args.force),
        }
        run_dir = runs.create_run_folder(outputs, run_id, {"common": common, "overrides": overrides,
                                                            "stages": [s.name for s in stages]})
    common = {**common, "run_dir": str(run_dir), "force": bool(args.force or common["force"])}

    runs.stamp_headline(run_dir, common["profile"], common["dataset"])
    kernel = kernel_name()
    print(f"run_all.sh: run {run_id} ({common['profile']} profile, {common['dataset']}) in {run_dir}", flush=True)
    for stage in stages:
        if args.resume and not args.force and stage_done(run_dir, stage):
            print(f"  {stage.label}: already finished, skipped", flush=True)
            continue
        declared = read_parameters(stage.source)
        missing = [name for name in COMMON_PARAMETERS if name not in declared]
        if missing:
            raise ValueError(f"{stage.source}: the parameters cell lacks {', '.join(missing)}")
        parameters = {**common, **{k: v for k, v in overrides.items() if k in declared}}
        print(f"  {stage.label}: running ...", flush=True)
        seconds = run_stage(stage, run_dir, parameters, kernel)
        runs.merge_headline(run_dir / "headline.json", {f"stage_seconds_{stage.name}": round(seconds, 1)})
        print(f"  {stage.label}: done in {seconds:.0f} s", flush=True)

    final = runs.finish_run_folder(run_dir)
    print(f"run_all.sh: finished; run folder {final}", flush=True)
    if (final / "report.html").exists():
        print(f"run_all.sh: report {final / 'report.html'}", flush=True)

    complete = all(stage_done(final, stage) for stage in all_stages)
    if args.publish == "yes" or (args.publish == "auto" and complete and common["profile"] != "smoke"
                                 and common["dataset"] == "ml-1m"):
        target = REPO / args.publish_dir
        publish(final, target, update_readme_section=target == REPO / "results")
        print(f"run_all.sh: published to {target}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
