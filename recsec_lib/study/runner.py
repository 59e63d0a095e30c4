"""The study runner behind ``run_all.sh``: notebooks in order, through papermill.

For each selected ``notebooks/NN_<stage>.py`` it (1) converts the jupytext file
to ``.ipynb``, (2) executes it with papermill, injecting the run's parameters,
and (3) exports the executed notebook to HTML with nbconvert. The three tools
run as subprocesses of this environment's Python, so the library itself never
imports Jupyter.

A run is built in ``outputs/<run-id>.partial/`` and renamed to
``outputs/<run-id>/`` once every stage of its plan has finished (the stages it
was started with, plus any added by a later ``--resume``; the plan is
params.json's "stages"). A failed stage leaves its partially executed notebook
in place, and ``--resume <run-id>`` (or the folder's name or path) continues
with the first stage that has not finished (of the plan, unless
``--stage``/``--from``/``--to`` name others).
While a process computes into a run it holds ``outputs/<run-id>.lock``, so a
second ``--resume`` of a live run is refused instead of computing into the
same folder.

The runner's own settings (``COMMON_PARAMETERS``: run folder, dataset, seed,
device, ...) have flags and are the same for every stage; ``-p`` sets only the
notebooks' other parameters. ``--device cuda`` on a machine without CUDA is
refused before anything runs.

A finished run is copied into the tracked ``results/`` (and the README's
results section rewritten) only when asked with ``--publish``: a user's clone
stays clean after ``./run_all.sh``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
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

from recsec_lib.common.allocator import keep_freed_memory
from recsec_lib.common.executor import executor_config
from recsec_lib.study import runs
from recsec_lib.study.notebook_params import check_overrides, read_parameters
from recsec_lib.study.readme_results import update_readme
from recsec_lib.study.stages import stage_inputs
from recsec_lib.study.stages.context import DATASETS, DEVICES, PROFILES, check_device

REPO = Path(__file__).resolve().parent.parent.parent
NOTEBOOK_NAME = re.compile(r"^(\d\d)_([a-z]+)\.py$")
# Parameters every notebook declares; the runner sets them for each stage.
COMMON_PARAMETERS = ("run_dir", "run_id", "dataset", "data_dir", "mirror", "seed", "device", "profile", "force",
                     "workers", "cluster", "threads")
# ``-p`` cannot set them: they are the same for every stage and recorded with the run (``-p dataset
# ml-100k`` would compute ML-100K figures under a synthetic run's headline, ``-p run_dir`` would write
# elsewhere). The flag that sets each instead:
RUNNER_SETTINGS = {"run_dir": "--outputs and --run-id", "run_id": "--run-id", "dataset": "--dataset",
                   "data_dir": "--data-dir", "mirror": "--mirror", "seed": "--seed", "device": "--device",
                   "profile": "--profile", "force": "--force",
                   "workers": "--workers", "cluster": "--cluster", "threads": "--threads"}
# What a run computes: a resumed run keeps the values it was started with (flag per common parameter).
RUN_DEFINING_FLAGS = {"profile": "--profile", "dataset": "--dataset", "seed": "--seed"}
# Where the data comes from and what computes: a resumed run takes the values given again.
RESUMABLE_SETTINGS = ("mirror", "data_dir", "device", "workers", "cluster", "threads")


class StageFailed(RuntimeError):
    """A notebook failed. The message is the one line a user acts on; ``details`` come before it.

    ``details`` holds what explains the failure (the failing cell's traceback,
    the stage's partial notebook and log), printed above the message so that
    the last line on the screen says what to do, not where papermill's
    internals were when the kernel reported the error.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


# Errors of the data layer that mean "no copy of the dataset here and none can be downloaded":
# their message already says what to do (DataUnavailableError names --mirror), so it is shown alone.
DATA_UNAVAILABLE_ERRORS = ("DataUnavailableError",)
# Network errors that, in the data stage, mostly mean "offline": the message gets the same advice.
NETWORK_ERRORS = ("ConnectionError", "URLError", "gaierror", "TimeoutError")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# Warnings the tools print for every stage that say nothing about this run; kept in the logs, not echoed:
EXPECTED_TOOL_WARNINGS = (
    # ipykernel warns whenever its kernel listens on TCP. papermill starts the kernel through jupyter_client,
    # whose transport is TCP on 127.0.0.1 (papermill offers no other); its messages are signed with a key
    # from a connection file only this user can read, so nothing on the loopback can run code in it.
    re.compile(r"^\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption\."),
    # nbconvert's default (lab) HTML template writes no alt attribute for image outputs (it ignores the
    # "alt" metadata the classic template reads), so every figure of a stage gets a placeholder and a warning.
    re.compile(r"^\[NbConvertApp\] WARNING \| Alternative text is missing on \d+ image\(s\)\."),
    # After the last cell, papermill asks the kernel to shut down; on a loaded machine the kernel can miss
    # jupyter_client's short shutdown wait, which then interrupts it before stopping it. The kernel logs this
    # line although the notebook has finished (a stage that failed ends with its own error and exit code).
    re.compile(r"^\[IPKernelApp\] ERROR \| KeyboardInterrupt caught in kernel\.?$"),
)


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


def stage_exports(run_dir: Path, stage: Stage) -> list[Path]:
    """The HTML files a stage's export writes: its page, and for the report the two self-contained reports."""
    files = [run_dir / "html" / f"{stage.label}.html"]
    if stage.name == "report":
        files += [run_dir / "report.html", run_dir / "report_nocode.html"]
    return files


def stage_done(run_dir: Path, stage: Stage) -> bool:
    """A stage counts as finished when its executed notebook, metrics.json and every export exist.

    The notebook writes metrics.json before the exports run, so without the
    exports a stage stopped while exporting was taken as finished on resume and
    its run was published without its report; each export is written under a
    temporary name and renamed (``_export``), so an export that exists is whole.
    """
    return ((run_dir / stage.name / "metrics.json").exists()
            and (run_dir / "notebooks" / f"{stage.label}.ipynb").exists()
            and all(path.exists() for path in stage_exports(run_dir, stage)))


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
    # papermill's own output goes to a log: on a failure it is a wall of papermill's internals
    # ending in the cell's error, which stage_failure() reads from the executed notebook instead
    # (removed first, so that the error of an earlier attempt is never taken for this one's).
    executed.unlink(missing_ok=True)
    _run([*_tool("papermill", str(source_ipynb), str(executed), "-k", kernel, "-f", str(params_file),
                 "--cwd", str(REPO), "--no-progress-bar", "--log-level", "WARNING")], stage, executed,
         log=notebooks / f"{stage.label}.papermill.log")
    seconds = time.perf_counter() - start
    _export(executed, html / f"{stage.label}.html", stage)
    if stage.name == "report":
        # The study's report: one self-contained file with code, one without.
        _export(executed, run_dir / "report.html", stage, "--embed-images")
        _export(executed, run_dir / "report_nocode.html", stage, "--embed-images", "--no-input")
    return seconds


def _export(executed: Path, target: Path, stage: Stage, *flags: str) -> None:
    """Export the executed notebook to ``target`` (.html) through a temporary name, so that it exists only whole."""
    temporary = target.with_name(f"{target.stem}_exporting.html")
    temporary.unlink(missing_ok=True)
    _run([*_tool("nbconvert", "--to", "html", "--log-level", "WARN", *flags, "--output-dir", str(target.parent),
                 "--output", temporary.stem, str(executed))], stage, executed)
    os.replace(temporary, target)


def _run(command: list[str], stage: Stage, executed: Path, log: Path | None = None) -> None:
    """Run one tool; with ``log``, its output goes there and is shown afterwards.

    On success the output is shown without ``EXPECTED_TOOL_WARNINGS`` (the
    papermill log keeps them); on a failure, all of it.
    """
    if log is None:
        result = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
        output = result.stdout
    else:
        with open(log, "w") as handle:
            result = subprocess.run(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
        output = log.read_text(errors="replace")
    if result.returncode != 0 and log is None:  # jupytext or nbconvert: their own output says why
        sys.stderr.write(output)
        raise StageFailed(f"stage {stage.label} failed (exit {result.returncode}) in {command[2]}; "
                          f"the executed notebook is {executed}")
    if result.returncode != 0:
        raise stage_failure(stage, executed, log, result.returncode)
    shown = without_expected_warnings(output)
    if shown:
        sys.stderr.write(shown)
        sys.stderr.flush()


def without_expected_warnings(output: str) -> str:
    """A tool's output without the lines of ``EXPECTED_TOOL_WARNINGS`` (each is one line)."""
    return "".join(line for line in output.splitlines(keepends=True)
                   if not any(pattern.match(line) for pattern in EXPECTED_TOOL_WARNINGS))


def notebook_error(executed: Path) -> dict | None:
    """The error output (ename, evalue, traceback) of the cell that failed in an executed notebook, if any."""
    try:
        notebook = json.loads(executed.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return output
    return None


def stage_failure(stage: Stage, executed: Path, log: Path | None, exit_code: int) -> StageFailed:
    """The StageFailed of a stage whose tool exited non-zero: the cell's error as the last line.

    An error that says what to do (no data and no way to download it) is shown
    alone, with how to continue the run; another error comes with the failing
    cell's traceback; a failure outside any cell (a tool or the kernel died)
    with the end of the tool's log.
    """
    run_id = executed.parent.parent.name.removesuffix(".partial")
    where = f"its partly executed notebook is {executed}" + (f", papermill's log {log}" if log else "")
    error = notebook_error(executed)
    if error is None:
        tail = log.read_text(errors="replace").splitlines()[-20:] if log and log.exists() else []
        return StageFailed(f"stage {stage.label} failed (exit {exit_code}); {where}", details="\n".join(tail))
    name, value = error.get("ename", "Error"), str(error.get("evalue", "")).strip()
    first_line = value.splitlines()[0] if value else ""
    continue_with = f"./run_all.sh --resume {run_id}"
    data_advice = name in DATA_UNAVAILABLE_ERRORS or "RECSEC_DATA_MIRROR" in first_line
    if data_advice or (name in NETWORK_ERRORS and stage.name == "data"):
        advice = ("" if "--mirror" in first_line
                  else "; offline? give a MovieLens copy with --mirror DIR or $RECSEC_DATA_MIRROR")
        return StageFailed(f"{first_line}{advice}; then continue with {continue_with} --mirror DIR",
                           details=f"run_all.sh: stage {stage.label} failed: no data; {where}")
    traceback = "\n".join(ANSI_ESCAPE.sub("", line) for line in error.get("traceback", []))
    return StageFailed(f"stage {stage.label} failed: {name}: {first_line}; {where}; once fixed, continue with "
                       f"{continue_with}", details=traceback)


def publish(run_dir: Path, results_dir: Path, update_readme_section: bool = True) -> None:
    """Copy a finished real run's headline, metrics, report and figures into results/ (or another folder).

    A run published beside the main one (``results/<name>``) leaves the main
    run's figures alone, but the README's results section lists the runs
    published beside it, so that section is regenerated from the folders as
    they now are (the main headline and every side run's); otherwise the
    README would keep describing the side run it replaced.
    """
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
    main_results = results_dir if update_readme_section else results_dir.parent
    if (main_results / "headline.json").is_file():
        refresh_readme(main_results)


def refresh_readme(results_dir: Path) -> None:
    """Regenerate the README's results section from ``results_dir`` and the runs published beside it."""
    readme = results_dir.parent / "README.md"
    extra_runs = {path.name: runs.read_json(path / "headline.json") for path in published_beside(results_dir)}
    if readme.exists() and update_readme(readme, runs.read_json(results_dir / "headline.json"), extra_runs):
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
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="smoke: tiny synthetic data, minutes (README: measured times); cpu: ML-1M sized for a 2-core CPU; "
                             "full: paper-scale settings, for a GPU (default: cpu)")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="dataset (default: ml-1m, or synthetic with --profile smoke)")
    parser.add_argument("--device", choices=DEVICES, default=None, help="auto | cpu | cuda (default: auto)")
    parser.add_argument("--seed", type=int, default=None, help="random seed of every stage (default: 42)")
    parser.add_argument("--workers", type=int, default=None,
                        help="cells of a stage run at once: 1 = one after another (default), N = a pool of N local "
                             "processes; with --cluster, 0 = as many as the cluster has CPUs")
    parser.add_argument("--cluster", default=None, metavar="ADDRESS",
                        help="run the cells on Ray (the optional cluster extra, pip install -e .[cluster]): auto "
                             "(this machine's cluster, else a local one), local, ray://HOST:PORT or HOST:PORT")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per cell, the same in every back-end (default 1); workers × threads must "
                             "fit this machine's cores")
    parser.add_argument("--jobs", type=int, default=1,
                        help="stages run at once: 1 = one after another (default); N = a stage starts as soon as "
                             "the stages it reads have finished (attack, GRO and watermark read only train), up "
                             "to N at a time; each stage keeps its own --workers and --threads, so its figures "
                             "are the same, and only its wall time changes")
    parser.add_argument("--data-dir", default=None, help="downloads and processed cache (default: data)")
    parser.add_argument("--mirror", default=None,
                        help="local folder with MovieLens copies (default: $RECSEC_DATA_MIRROR); with --resume, "
                             "replaces the folder the run was started with")
    parser.add_argument("--outputs", default=None, help="where run folders go (default: outputs; with --resume "
                                                         "PATH, the folder that holds PATH)")
    parser.add_argument("--run-id", default=None, help="name of the run folder (default: <time>-<profile>-<dataset>)")
    parser.add_argument("--stage", default=None, help="run only this stage (name or number)")
    parser.add_argument("--from", dest="start", default=None, help="run from this stage on")
    parser.add_argument("--to", dest="stop", default=None, help="run up to and including this stage")
    parser.add_argument("--resume", default=None, metavar="RUN",
                        help="continue an interrupted run, or add stages to a finished one: RUN is its run id, "
                             "its folder's name (<run-id>.partial) or the folder's path; finished stages are "
                             "skipped; the run keeps its id, --profile, --dataset and --seed, and takes a new "
                             "--mirror, --data-dir or --device")
    parser.add_argument("--force", action="store_true", help="recompute stages instead of reusing cached results")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="set a notebook parameter, e.g. -p epochs 5 (repeatable); the runner's own "
                             f"settings ({', '.join(RUNNER_SETTINGS)}) have flags instead")
    parser.add_argument("--publish", choices=("yes", "auto", "no"), nargs="?", const="yes", default="no",
                        help="copy the finished run into the tracked results/ and rewrite the README's results "
                             "section; only when asked: --publish (or yes) publishes this run, --publish auto "
                             "only a complete, non-smoke ML-1M run (default: no, a run leaves results/ and the "
                             "README alone)")
    parser.add_argument("--publish-dir", default="results",
                        help="where --publish copies the run, relative to the repository (default: results; "
                             "a sub-folder such as results/<name> keeps a partial or extra run beside the "
                             "main one; the README's results section keeps the main run's figures and lists it)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except StageFailed as exc:
        if exc.details:
            print(exc.details, file=sys.stderr)
        print(f"run_all.sh: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, runs.RunInUseError) as exc:
        print(f"run_all.sh: error: {exc}", file=sys.stderr)
        return 2


def refuse_runner_settings(pairs: list[tuple[str, str]]) -> None:
    """Refuse ``-p`` for the runner's own settings (``RUNNER_SETTINGS``), naming the flag to use instead."""
    for name, value in pairs:
        if name in RUNNER_SETTINGS:
            raise ValueError(f"-p {name} {value}: {name!r} is the runner's own setting (the same for every stage "
                             f"and recorded with the run); use {RUNNER_SETTINGS[name]}")


def resume_parameters(run_dir: Path, overrides: dict, settings: dict | None = None) -> tuple[dict, dict]:
    """(common parameters, -p overrides) of a resumed run: the saved ones with the new values on top.

    ``settings`` are runner settings given again when resuming (``RESUMABLE_SETTINGS``:
    ``--mirror`` when the data has moved, ``--data-dir``, ``--device``); they replace
    the saved ones. Every value that changes the run is written back into its
    params.json (and appended to its ``resumed_with`` list), so the folder keeps
    saying which parameters produced what it holds. Overrides of the runner's own
    settings saved by an older runner are dropped: the run's own settings win.
    """
    params_path = run_dir / "params.json"
    saved = runs.read_json(params_path)
    before = {name: value for name, value in saved.get("overrides", {}).items() if name not in RUNNER_SETTINGS}
    for name in sorted(set(saved.get("overrides", {})) - set(before)):
        print(f"run_all.sh: {params_path} sets -p {name}, the runner's own setting: ignored "
              f"(the run's {name} is {saved['common'].get(name)!r})", flush=True)
    merged = {**before, **overrides}
    changed = {name: value for name, value in overrides.items() if before.get(name) != value}
    common = saved["common"]
    new_settings = {name: value for name, value in (settings or {}).items() if common.get(name) != value}
    if changed or new_settings:
        saved = {**saved, "common": {**common, **new_settings}, "overrides": merged,
                 "resumed_with": [*saved.get("resumed_with", []), {**changed, **new_settings}]}
        runs.write_json_atomic(params_path, saved)
    return saved["common"], merged


def check_resumed_flags(args: argparse.Namespace, run_id: str, common: dict) -> None:
    """A resumed run keeps its profile, dataset and seed: refuse a flag that asks for another."""
    for name, flag in RUN_DEFINING_FLAGS.items():
        given = getattr(args, name)
        if given is not None and given != common.get(name):
            raise ValueError(f"--resume {run_id}: the run was started with {flag} {common.get(name)}, not {given}; "
                             f"a run keeps its {flag} (start a new run for another)")


def check_resumed_commit(run_id: str, started: str | None, now: str) -> None:
    """A run started at a clean commit is resumed only at that code: refuse another one.

    The headline names one commit (``stamp_headline`` writes the current one on
    every call), so a run resumed at other code would credit every stage to the
    new commit, the stages computed before included. Commits that differ only
    in results/ and the README (a run's own publication) hold the same code
    (``runs.same_code``). A run started at a dirty or unknown commit is never
    counted as met anyway and may be resumed anywhere.
    """
    if not started or started == "unknown" or started.endswith("-dirty") or started == now:
        return
    if not now.endswith("-dirty") and runs.same_code(started, now):  # e.g. the run's own publication since
        return
    here = now[:12] + ("-dirty" if now.endswith("-dirty") else "")
    raise ValueError(f"--resume {run_id}: the run was started at commit {started[:12]} and this checkout is at "
                     f"{here}; a run's stages come from one version of the code (check out {started[:12]} to "
                     f"resume it, or start a new run)")


def resumed_settings(args: argparse.Namespace) -> dict:
    """The ``RESUMABLE_SETTINGS`` given (again) on the command line, as params.json stores them."""
    settings = {}
    mirror = args.mirror if args.mirror is not None else os.environ.get("RECSEC_DATA_MIRROR", "")
    if mirror:
        settings["mirror"] = str(Path(mirror).resolve())
    if args.data_dir is not None:
        settings["data_dir"] = str(Path(args.data_dir).resolve())
    if args.device is not None:
        settings["device"] = args.device
    for name in ("workers", "cluster", "threads"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    return settings


def resume_target(value: str, outputs: str | None, run_id: str | None) -> tuple[Path, str]:
    """(outputs folder, run id) of ``--resume value``: a run id, a run folder's name or its path.

    ``<id>``, ``<id>.partial``, ``outputs/<id>.partial`` and ``outputs/<id>``
    all name run ``<id>`` (the folder name of an unfinished run used to be taken
    for a run id, so the run ended in ``<id>.partial`` again instead of
    ``<id>``). A path names its outputs folder too; ``--outputs`` may repeat it
    but not name another. A resumed run keeps its id: ``--run-id`` may repeat
    it, another id is refused (it would not rename the run, and silently
    computing into the old one is not what it asks).
    """
    given = Path(value)
    name = runs.check_run_id(given.name.removesuffix(".partial") or value)
    if len(given.parts) > 1:  # a path: its folder is the outputs folder
        folder = given.parent.resolve()
        if outputs is not None and Path(outputs).resolve() != folder:
            raise ValueError(f"--resume {value} is a run in {folder}, but --outputs is {outputs}; give one of them")
    else:
        folder = Path(outputs or "outputs").resolve()
    if run_id is not None and run_id != name:
        raise ValueError(f"--resume {value} continues run {name!r}; --run-id {run_id} names another run, and a "
                         f"resumed run keeps its id (drop --run-id, or start a new run with --run-id {run_id} "
                         f"and no --resume)")
    return folder, name


def unfinished_stages(run_dir: Path, plan: list[Stage]) -> list[Stage]:
    """The stages of a run's plan that have not finished; the run folder is "finished" when there are none."""
    return [stage for stage in plan if not stage_done(run_dir, stage)]


def _main(args: argparse.Namespace) -> int:
    all_stages = discover_stages()
    stages = select_stages(all_stages, args.stage, args.start, args.stop)
    refuse_runner_settings(args.parameter)
    overrides = check_overrides([stage.source for stage in stages], args.parameter, reserved=RUNNER_SETTINGS)
    if args.device is not None:
        check_device(args.device)  # before any folder, lock or stage: one line, exit 2
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1 (stages run at once), got {args.jobs}")
    keep_freed_memory()  # every stage's kernel and worker reuses freed tensor memory (common.allocator: why)
    if args.jobs > 1:
        # Stages at once share the cores: torch's idle OpenMP threads should sleep, not spin (a user's value wins).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if any(getattr(args, name) is not None for name in ("workers", "cluster", "threads")):
        executor_config(args.workers or None, args.cluster, args.threads)  # workers × threads vs cores, the address
    profile = args.profile or "cpu"
    dataset = args.dataset or ("synthetic" if profile == "smoke" else "ml-1m")
    if args.resume:
        outputs, run_id = resume_target(args.resume, args.outputs, args.run_id)
    else:
        outputs = Path(args.outputs or "outputs").resolve()
        run_id = runs.check_run_id(args.run_id or default_run_id(profile, dataset))
    # One process at a time computes into a run folder (a second --resume of a live run would
    # overwrite its results and crash renaming the folder): held until the run is finished or published.
    with runs.run_lock(outputs, run_id) as lock:
        if lock.taken_over_from:
            print(f"run_all.sh: took over the lock {lock.path} of {lock.taken_over_from}, which has ended",
                  flush=True)
        if args.resume:
            named = stages if (args.stage or args.start or args.stop) else []  # stages named now, if any
            run_dir, plan, common, overrides = _resume(args, all_stages, named, overrides, outputs, run_id)
            stages = named or plan
        else:
            common = {
                "run_id": run_id, "dataset": dataset, "data_dir": str(Path(args.data_dir or "data").resolve()),
                "mirror": resumed_settings(args).get("mirror", ""),
                "seed": 42 if args.seed is None else args.seed, "device": args.device or "auto",
                "profile": profile, "force": bool(args.force),
                "workers": 1 if args.workers is None else args.workers, "cluster": args.cluster or "",
                "threads": 1 if args.threads is None else args.threads,
            }
            run_dir = runs.create_run_folder(outputs, run_id, {"common": common, "overrides": overrides,
                                                                "stages": [s.name for s in stages]})
            plan = stages
        return _run_stages(args, all_stages, stages, plan, run_dir, run_id, common, overrides)


def _resume(args: argparse.Namespace, all_stages: list[Stage], named: list[Stage], overrides: dict,
            outputs: Path, run_id: str) -> tuple[Path, list[Stage], dict, dict]:
    """Open a run to resume: (its .partial folder, its plan of stages, common parameters, overrides).

    The plan is the stages the run was started with, plus the stages ``named``
    now with --stage/--from/--to (adding stages to a run makes them part of
    it). Everything is checked before a finished run is renamed back to
    ``<id>.partial``.
    """
    run_dir = outputs / f"{run_id}.partial"
    finished = outputs / run_id
    folder = run_dir if run_dir.exists() else finished
    if not folder.exists():
        raise FileNotFoundError(f"--resume {run_id}: no run folder {run_dir} or {finished}")
    params = runs.read_json(folder / "params.json")
    check_resumed_flags(args, run_id, params["common"])
    environment = folder / "environment.json"
    check_resumed_commit(run_id, runs.read_json(environment).get("git_commit") if environment.exists() else None,
                         runs.git_commit())
    if args.device is None:  # the device the run was started with, unless a new one is given
        check_device(params["common"].get("device", "auto"),
                     option=f"--resume {run_id}: the run was started with --device")
    recorded = recorded_stages(all_stages, params)
    plan = [stage for stage in all_stages if stage in recorded or stage in named]
    if folder == finished:
        finished.rename(run_dir)  # adding stages to a finished run: it is unfinished again until they end
    if plan != recorded:
        runs.write_json_atomic(run_dir / "params.json", {**params, "stages": [stage.name for stage in plan]})
    common, overrides = resume_parameters(run_dir, overrides, resumed_settings(args))
    return run_dir, plan, common, overrides


def run_concurrently(todo: list[tuple[Stage, dict]], one, jobs: int, order: list[str]) -> None:
    """Run ``one(stage, parameters)`` for every entry of ``todo``, up to ``jobs`` at once.

    A stage starts once every stage it reads (``stages.STAGE_INPUTS``) that is
    also in ``todo`` has finished; ready stages start in the study's order. A
    stage not in ``todo`` counts as done (finished earlier, or not asked for:
    the stage then reads what the run folder holds, as with ``--stage``). After
    a failure no new stage starts; those running are let finish, then the first
    failure is raised.
    """
    names = [stage.name for stage, _ in todo]
    waiting = list(todo)
    failures: list[BaseException] = []
    running: dict[concurrent.futures.Future, Stage] = {}
    finished: set[str] = set()

    def ready(stage: Stage) -> bool:
        earlier = order[:order.index(stage.name)] if stage.name in order else []
        return all(name in finished for name in stage_inputs(stage.name, earlier) if name in names)

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        while waiting or running:
            while not failures and len(running) < jobs:
                startable = [entry for entry in waiting if ready(entry[0])]
                if not startable:
                    break
                stage, parameters = startable[0]
                waiting.remove(startable[0])
                running[pool.submit(one, stage, parameters)] = stage
            if not running:
                break  # after a failure: the stages still waiting are not started
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                stage = running.pop(future)
                if future.exception() is not None:
                    failures.append(future.exception())
                else:
                    finished.add(stage.name)
    if failures:
        raise failures[0]


def _run_stages(args: argparse.Namespace, all_stages: list[Stage], stages: list[Stage], plan: list[Stage],
                run_dir: Path, run_id: str, common: dict, overrides: dict) -> int:
    """Run ``stages`` into ``run_dir``; rename it "finished" only when every stage of ``plan`` has finished."""
    common = {**common, "run_dir": str(run_dir), "force": bool(args.force or common["force"])}
    runs.stamp_headline(run_dir, common["profile"], common["dataset"])
    kernel = kernel_name()
    print(f"run_all.sh: run {run_id} ({common['profile']} profile, {common['dataset']}) in {run_dir}", flush=True)
    todo = []
    for stage in stages:
        if args.resume and not args.force and stage_done(run_dir, stage):
            print(f"  {stage.label}: already finished, skipped", flush=True)
            continue
        declared = read_parameters(stage.source)
        missing = [name for name in COMMON_PARAMETERS if name not in declared]
        if missing:
            raise ValueError(f"{stage.source}: the parameters cell lacks {', '.join(missing)}")
        # The runner's settings last: nothing else may change where a stage writes or what it computes on.
        todo.append((stage, {**{k: v for k, v in overrides.items() if k in declared}, **common}))

    def one(stage: Stage, parameters: dict) -> None:
        print(f"  {stage.label}: running ...", flush=True)
        seconds = run_stage(stage, run_dir, parameters, kernel)
        if not stage_done(run_dir, stage):
            expected = [run_dir / stage.name / "metrics.json", *stage_exports(run_dir, stage)]
            missing = ", ".join(str(path) for path in expected if not path.exists())
            raise StageFailed(f"stage {stage.label} ended without writing {missing}; "
                              f"see its notebook {run_dir / 'notebooks' / (stage.label + '.ipynb')}")
        runs.merge_headline(run_dir / "headline.json", {f"stage_seconds_{stage.name}": round(seconds, 1)})
        print(f"  {stage.label}: done in {seconds:.0f} s", flush=True)

    started = time.perf_counter()
    try:
        if args.jobs == 1:
            for stage, parameters in todo:
                one(stage, parameters)
        else:
            run_concurrently(todo, one, args.jobs, [stage.name for stage in all_stages])
    finally:
        if todo:  # the stages' wall time, over every invocation of the run (stages at once overlap)
            runs.add_to_headline(run_dir / "headline.json", runs.RUNNER_WALL_KEY, time.perf_counter() - started)

    unfinished = unfinished_stages(run_dir, plan)
    if unfinished:
        names = ", ".join(stage.label for stage in unfinished)
        verb = "has" if len(unfinished) == 1 else "have"
        print(f"run_all.sh: run {run_id} is not finished: {names} of its plan {verb} not run; it stays in "
              f"{run_dir}; continue with ./run_all.sh --resume {run_id}", flush=True)
        return 0
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
    elif args.publish == "auto":
        print("run_all.sh: not published (--publish auto publishes only a complete, non-smoke ml-1m run)",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
