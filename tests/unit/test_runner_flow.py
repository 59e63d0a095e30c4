"""The runner's control flow (locking, resuming, parameters, finishing) on fake stages, without papermill.

``run_stage`` is replaced by a function that writes what a finished notebook
leaves behind (``<stage>/metrics.json``, ``notebooks/<label>.ipynb`` and its HTML exports), so
these tests take a second; the real notebooks run in tests marked ``notebook``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from recsec_lib.study import runner, runs

PARAMETERS_CELL = """\
# %% tags=["parameters"]
run_dir: str = ""  # run folder
run_id: str = ""  # run id
dataset: str = "synthetic"  # dataset
data_dir: str = "data"  # data folder
mirror: str = ""  # mirror folder
seed: int = 42  # seed
device: str = "auto"  # device
profile: str = "smoke"  # profile
force: bool = False  # recompute
workers: int = 1  # cells at once
cluster: str = ""  # Ray cluster
threads: int = 1  # threads per cell
epochs: int = 1  # training epochs
"""


REAL_DISCOVER = runner.discover_stages


@dataclass
class FakeStudy:
    outputs: Path
    calls: list[tuple[str, dict]] = field(default_factory=list)  # (stage name, parameters) per stage run
    fail: set[str] = field(default_factory=set)  # stages that fail
    during: dict[str, Callable[[], None]] = field(default_factory=dict)  # called while a stage runs

    def main(self, *args: str) -> int:
        return runner.main(["--outputs", str(self.outputs), "--publish", "no", *args])


@pytest.fixture
def fake_study(tmp_path, monkeypatch) -> FakeStudy:
    return make_fake_study(tmp_path, monkeypatch, ("00_data", "01_train", "02_report"))


def make_fake_study(tmp_path, monkeypatch, labels) -> FakeStudy:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir(parents=True)
    for label in labels:
        (notebooks / f"{label}.py").write_text(f"# %%\nimport os\n\n{PARAMETERS_CELL}\n# %%\nprint(1)\n")
    study = FakeStudy(outputs=tmp_path / "outputs")

    def fake_run_stage(stage, run_dir, parameters, kernel):
        study.calls.append((stage.name, parameters))
        if stage.name in study.during:
            study.during[stage.name]()
        if stage.name in study.fail:
            raise runner.StageFailed(f"stage {stage.label} failed (exit 1)")
        runs.write_stage_metrics(Path(parameters["run_dir"]), stage.name, {"wall_seconds": 0.1})
        (run_dir / "notebooks").mkdir(exist_ok=True)
        (run_dir / "notebooks" / f"{stage.label}.ipynb").write_text("{}")
        for export in runner.stage_exports(run_dir, stage):
            export.parent.mkdir(exist_ok=True)
            export.write_text("<html></html>")
        return 0.1

    monkeypatch.setattr(runner, "discover_stages", lambda: REAL_DISCOVER(notebooks))
    monkeypatch.setattr(runner, "kernel_name", lambda: "python3")
    monkeypatch.setattr(runner, "run_stage", fake_run_stage)
    return study


def test_a_run_ends_finished_and_leaves_no_lock(fake_study, capsys):
    assert fake_study.main("--profile", "smoke", "--run-id", "r1") == 0
    assert [name for name, _ in fake_study.calls] == ["data", "train", "report"]
    assert sorted(p.name for p in fake_study.outputs.iterdir()) == ["r1"]


def test_resume_of_a_live_run_is_refused(fake_study, capsys):
    """Issue 18.2: a second --resume while the first is computing used to compute into the same folder too."""
    second: list[int] = []
    fake_study.during["train"] = lambda: second.append(fake_study.main("--resume", "dup"))
    assert fake_study.main("--profile", "smoke", "--run-id", "dup") == 0
    assert second == [2]
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"run_all.sh: error: run dup is in use by process {os.getpid()} on ")
    assert str(fake_study.outputs / "dup.lock") in err[-1]
    assert [name for name, _ in fake_study.calls] == ["data", "train", "report"]  # the second run ran nothing
    assert (fake_study.outputs / "dup").is_dir() and not (fake_study.outputs / "dup.partial").exists()


def test_a_lock_held_by_another_process_is_refused(fake_study, capsys):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from recsec_lib.study import runs
        with runs.run_lock({str(fake_study.outputs)!r}, "held"):
            print("locked", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(runner.REPO)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert fake_study.main("--profile", "smoke", "--run-id", "held") == 2
        assert f"run held is in use by process {holder.pid} on " in capsys.readouterr().err
        assert fake_study.calls == [] and not (fake_study.outputs / "held.partial").exists()
    finally:
        holder.kill()
        holder.wait()


def test_the_stale_lock_of_a_killed_run_is_taken_over(fake_study, capsys):
    fake_study.fail.add("train")
    assert fake_study.main("--profile", "smoke", "--run-id", "killed") == 1
    # What a run killed with SIGKILL leaves: its lock file, naming a process that no longer exists.
    killed = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from recsec_lib.study import runs
        with runs.run_lock({str(fake_study.outputs)!r}, "killed"):
            os.kill(os.getpid(), signal.SIGKILL)
        """)], env={**os.environ, "PYTHONPATH": str(runner.REPO)})
    assert killed.wait() == -signal.SIGKILL
    assert f'"pid": {killed.pid}' in (fake_study.outputs / "killed.lock").read_text()
    fake_study.fail.clear()
    assert fake_study.main("--resume", "killed") == 0
    out = capsys.readouterr().out
    assert f"took over the lock {fake_study.outputs / 'killed.lock'} of process {killed.pid} on " in out
    assert (fake_study.outputs / "killed").is_dir() and not (fake_study.outputs / "killed.lock").exists()


def test_a_run_id_must_stay_inside_the_outputs_folder(fake_study, capsys):
    assert fake_study.main("--resume", "..") == 2
    assert "run id '..'" in capsys.readouterr().err


@pytest.mark.parametrize("name", runner.COMMON_PARAMETERS)
def test_p_cannot_set_the_runners_own_settings(fake_study, capsys, name):
    """Issue 18.3: -p dataset ml-100k computed ML-100K figures under a synthetic headline; -p run_dir wrote
    elsewhere."""
    assert fake_study.main("--profile", "smoke", "--run-id", "r1", "-p", name, "x") == 2
    err = capsys.readouterr().err
    assert f"-p {name} x: {name!r} is the runner's own setting" in err and runner.RUNNER_SETTINGS[name] in err
    assert fake_study.calls == [] and not fake_study.outputs.exists()


def test_every_stage_gets_the_runners_settings(fake_study):
    assert fake_study.main("--profile", "smoke", "--run-id", "r1", "--seed", "7", "-p", "epochs", "3") == 0
    for _, parameters in fake_study.calls:
        assert parameters["dataset"] == "synthetic" and parameters["seed"] == 7 and parameters["epochs"] == 3
        assert parameters["run_dir"] == str(fake_study.outputs / "r1.partial")


def test_resume_with_a_new_mirror_uses_it(fake_study, tmp_path, capsys):
    """Issue 18.3: --resume ID --mirror M used the mirror the run was started with."""
    old, new = tmp_path / "old-mirror", tmp_path / "new-mirror"
    fake_study.fail.add("data")
    assert fake_study.main("--profile", "smoke", "--run-id", "r1", "--mirror", str(old)) == 1
    fake_study.fail.clear()
    assert fake_study.main("--resume", "r1", "--mirror", str(new)) == 0
    assert [(name, parameters["mirror"]) for name, parameters in fake_study.calls] == [
        ("data", str(old)), ("data", str(new)), ("train", str(new)), ("report", str(new))]
    params = runs.read_json(fake_study.outputs / "r1" / "params.json")
    assert params["common"]["mirror"] == str(new) and params["resumed_with"] == [{"mirror": str(new)}]


def test_resume_keeps_the_runs_profile_dataset_and_seed(fake_study, capsys):
    assert fake_study.main("--profile", "smoke", "--run-id", "r1") == 0
    assert fake_study.main("--resume", "r1", "--stage", "train", "--profile", "cpu") == 2
    assert "the run was started with --profile smoke, not cpu" in capsys.readouterr().err
    assert (fake_study.outputs / "r1").is_dir() and not (fake_study.outputs / "r1.partial").exists()


def test_a_run_is_finished_only_when_every_stage_of_its_plan_has(fake_study, capsys):
    """Issue 18.3: resuming one stage of a run renamed it finished although other stages had not run."""
    fake_study.fail.add("train")
    assert fake_study.main("--profile", "smoke", "--run-id", "r1") == 1
    fake_study.fail.clear()
    assert fake_study.main("--resume", "r1", "--stage", "report") == 0
    assert (fake_study.outputs / "r1.partial").is_dir() and not (fake_study.outputs / "r1").exists()
    assert "run_all.sh: run r1 is not finished: 01_train of its plan has not run" in capsys.readouterr().out
    assert fake_study.main("--resume", "r1") == 0
    assert [name for name, _ in fake_study.calls] == ["data", "train", "report", "train"]
    assert (fake_study.outputs / "r1").is_dir() and not (fake_study.outputs / "r1.partial").exists()


def test_resume_without_stages_continues_only_the_runs_plan(fake_study):
    fake_study.fail.add("train")
    assert fake_study.main("--profile", "smoke", "--run-id", "r1", "--to", "train") == 1
    fake_study.fail.clear()
    assert fake_study.main("--resume", "r1") == 0
    assert [name for name, _ in fake_study.calls] == ["data", "train", "train"]
    assert (fake_study.outputs / "r1").is_dir()
    assert runs.read_json(fake_study.outputs / "r1" / "params.json")["stages"] == ["data", "train"]


def test_a_stage_added_to_a_finished_run_joins_its_plan(fake_study):
    assert fake_study.main("--profile", "smoke", "--run-id", "r1", "--to", "train") == 0
    assert fake_study.main("--resume", "r1", "--stage", "report") == 0
    assert (fake_study.outputs / "r1").is_dir()
    assert runs.read_json(fake_study.outputs / "r1" / "params.json")["stages"] == ["data", "train", "report"]


def test_a_stage_that_writes_no_metrics_does_not_count_as_finished(fake_study, monkeypatch, capsys):
    monkeypatch.setattr(runner, "run_stage", lambda stage, run_dir, parameters, kernel: 0.1)
    assert fake_study.main("--profile", "smoke", "--run-id", "r1") == 1
    assert "stage 00_data ended without writing" in capsys.readouterr().err
    assert (fake_study.outputs / "r1.partial").is_dir()


def test_runner_settings_saved_as_overrides_by_an_older_runner_are_ignored(fake_study, capsys):
    fake_study.fail.add("train")
    assert fake_study.main("--profile", "smoke", "--run-id", "r1") == 1
    params_path = fake_study.outputs / "r1.partial" / "params.json"
    runs.write_json_atomic(params_path, {**runs.read_json(params_path), "overrides": {"dataset": "ml-100k"}})
    fake_study.fail.clear()
    assert fake_study.main("--resume", "r1") == 0
    assert fake_study.calls[-1][1]["dataset"] == "synthetic"
    assert "sets -p dataset, the runner's own setting: ignored" in capsys.readouterr().out


def executed_notebook(run_dir: Path, label: str, error: dict | None) -> Path:
    """An executed notebook as papermill leaves it when a cell raised ``error`` (None: no cell failed)."""
    path = run_dir / "notebooks" / f"{label}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    outputs = [{"output_type": "error", **error}] if error else []
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": "x", "outputs": []},
                                          {"cell_type": "code", "source": "y", "outputs": outputs}]}))
    return path


OFFLINE = ("ml-1m: no data found (looked in data/ml-1m) and the host cannot be resolved; "
           "give a MovieLens copy with --mirror DIR or $RECSEC_DATA_MIRROR")


@pytest.mark.parametrize("ename, evalue, last_line", [
    ("DataUnavailableError", OFFLINE, f"run_all.sh: error: {OFFLINE}; then continue with ./run_all.sh --resume r1 "
                                      "--mirror DIR"),
    ("ConnectionError", "https://x/ml-1m.zip: download failed after 3 attempts (<urlopen error>)",
     "run_all.sh: error: https://x/ml-1m.zip: download failed after 3 attempts (<urlopen error>); offline? give a "
     "MovieLens copy with --mirror DIR or $RECSEC_DATA_MIRROR; then continue with ./run_all.sh --resume r1 "
     "--mirror DIR"),
])
def test_no_data_ends_in_one_actionable_line(tmp_path, capsys, monkeypatch, ename, evalue, last_line):
    """Offline without a mirror: the last line says what to do, and no traceback precedes it."""
    run_dir = tmp_path / "r1.partial"
    stage = runner.Stage("00", "data", tmp_path / "00_data.py")
    executed = executed_notebook(run_dir, stage.label, {"ename": ename, "evalue": evalue,
                                                        "traceback": ["\x1b[31mTraceback\x1b[0m", "  many lines"]})

    def fail(*args, **kwargs):
        raise runner.stage_failure(stage, executed, None, 1)

    monkeypatch.setattr(runner, "_main", fail)
    assert runner.main([]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == last_line
    assert len(err) == 2 and err[0].startswith("run_all.sh: stage 00_data failed: no data; its partly executed")


def test_another_error_shows_the_cells_traceback_then_the_stage(tmp_path):
    stage = runner.Stage("02", "train", tmp_path / "02_train.py")
    executed = executed_notebook(tmp_path / "r1.partial", stage.label, {
        "ename": "ValueError", "evalue": "parameter 'epochs' must be >= 1, got 0",
        "traceback": ["\x1b[0;31mValueError\x1b[0m  Traceback", "----> 1 run(ctx)"]})
    failure = runner.stage_failure(stage, executed, None, 1)
    assert failure.details == "ValueError  Traceback\n----> 1 run(ctx)"  # colours stripped
    assert str(failure) == (f"stage 02_train failed: ValueError: parameter 'epochs' must be >= 1, got 0; its partly "
                            f"executed notebook is {executed}; once fixed, continue with ./run_all.sh --resume r1")


def test_a_failure_outside_any_cell_shows_the_end_of_the_log(tmp_path):
    stage = runner.Stage("02", "train", tmp_path / "02_train.py")
    executed = executed_notebook(tmp_path / "r1.partial", stage.label, None)
    log = executed.with_suffix(".papermill.log")
    log.write_text("\n".join(f"line {i}" for i in range(30)) + "\nRuntimeError: Kernel died\n")
    failure = runner.stage_failure(stage, executed, log, 1)
    assert failure.details.splitlines() == [*(f"line {i}" for i in range(11, 30)), "RuntimeError: Kernel died"]
    assert "line 10\n" not in failure.details and str(failure).startswith("stage 02_train failed (exit 1); ")


@pytest.mark.notebook
def test_a_real_notebook_without_data_ends_in_one_line(tmp_path, monkeypatch, capsys):
    """Through jupytext and papermill: papermill's traceback wall stays in the log, the advice is the last line."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    header = "# ---\n# jupyter:\n#   kernelspec:\n#     display_name: Python 3\n#     language: python\n" \
             "#     name: python3\n# ---\n\n"
    (notebooks / "00_data.py").write_text(
        f"{header}# %%\nimport os\n\n{PARAMETERS_CELL}\n# %%\n"
        f"class DataUnavailableError(FileNotFoundError):\n    pass\n\n\nraise DataUnavailableError({OFFLINE!r})\n")
    monkeypatch.setattr(runner, "discover_stages", lambda: REAL_DISCOVER(notebooks))
    code = runner.main(["--outputs", str(tmp_path / "outputs"), "--publish", "no", "--profile", "smoke",
                        "--run-id", "r1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1] == f"run_all.sh: error: {OFFLINE}; then continue with ./run_all.sh --resume r1 --mirror DIR"
    assert not any("Traceback" in line for line in err)
    log = tmp_path / "outputs" / "r1.partial" / "notebooks" / "00_data.papermill.log"
    assert "PapermillExecutionError" in log.read_text()


# Issue 26.4: rough edges a new user hits.

@pytest.fixture
def no_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_device_cuda_without_cuda_is_one_line_before_any_stage(fake_study, capsys, no_cuda):
    """It used to fail inside the first notebook, with the notebook's traceback."""
    assert fake_study.main("--profile", "smoke", "--run-id", "gpu", "--device", "cuda") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("run_all.sh: error: --device cuda: ") and "use --device cpu" in err[0]
    assert fake_study.calls == [] and not fake_study.outputs.exists()


def test_resuming_a_cuda_run_without_cuda_is_refused_before_any_stage(fake_study, capsys, no_cuda):
    fake_study.fail.add("train")
    with pytest.MonkeyPatch.context() as patch:  # started on a machine with a GPU
        import torch

        patch.setattr(torch.cuda, "is_available", lambda: True)
        assert fake_study.main("--profile", "smoke", "--run-id", "r", "--device", "cuda") == 1
    fake_study.fail.clear()
    fake_study.calls.clear()
    capsys.readouterr()
    assert fake_study.main("--resume", "r") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("run_all.sh: error: --resume r: the run was started with "
                                                 "--device cuda: ")
    assert fake_study.calls == []
    assert fake_study.main("--resume", "r", "--device", "cpu") == 0  # a new device is taken
    assert [name for name, _ in fake_study.calls] == ["train", "report"]


@pytest.mark.parametrize("how", ["r.partial", "{outputs}/r.partial", "{outputs}/r.partial/", "r"])
def test_resume_takes_the_folder_name_or_path_and_ends_finished(fake_study, capsys, how, monkeypatch):
    """`--resume r.partial` used to be taken for the run id 'r.partial': the run ended in r.partial again."""
    fake_study.fail.add("train")
    assert fake_study.main("--profile", "smoke", "--run-id", "r") == 1
    fake_study.fail.clear()
    assert fake_study.main("--resume", how.format(outputs=fake_study.outputs)) == 0
    assert sorted(p.name for p in fake_study.outputs.iterdir()) == ["r"]
    assert f"run folder {fake_study.outputs / 'r'}" in capsys.readouterr().out


def test_resume_by_path_finds_the_outputs_folder(fake_study, capsys, monkeypatch):
    fake_study.fail.add("train")
    assert fake_study.main("--profile", "smoke", "--run-id", "r") == 1
    fake_study.fail.clear()
    monkeypatch.chdir(fake_study.outputs.parent)
    assert runner.main(["--publish", "no", "--resume", "outputs/r.partial"]) == 0  # no --outputs: the path's folder
    assert sorted(p.name for p in fake_study.outputs.iterdir()) == ["r"]
    assert runner.main(["--publish", "no", "--outputs", "elsewhere", "--resume", "outputs/r"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"run_all.sh: error: --resume outputs/r is a run in {fake_study.outputs}, but --outputs is elsewhere; "
        f"give one of them")


def test_resume_refuses_another_run_id(fake_study, capsys):
    """--run-id was silently ignored by --resume."""
    fake_study.fail.add("train")
    assert fake_study.main("--profile", "smoke", "--run-id", "r") == 1
    fake_study.fail.clear()
    fake_study.calls.clear()
    assert fake_study.main("--resume", "r.partial", "--run-id", "other") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "run_all.sh: error: --resume r.partial continues run 'r'; --run-id other names another run, and a resumed "
        "run keeps its id (drop --run-id, or start a new run with --run-id other and no --resume)")
    assert fake_study.calls == []
    assert fake_study.main("--resume", "r", "--run-id", "r") == 0  # the same id is accepted


def test_a_new_run_id_may_not_end_in_partial(fake_study, capsys):
    assert fake_study.main("--profile", "smoke", "--run-id", "r.partial") == 2
    assert "may not end in .partial or .lock" in capsys.readouterr().err
    assert fake_study.calls == []


def test_a_run_publishes_only_when_asked(fake_study, monkeypatch, capsys):
    """./run_all.sh used to copy a complete ML-1M run into the tracked results/ and rewrite the README by default."""
    published = []
    monkeypatch.setattr(runner, "publish", lambda run, target, update_readme_section: published.append(
        (run.name, target, update_readme_section)))
    assert runner.main(["--outputs", str(fake_study.outputs), "--profile", "cpu", "--run-id", "a"]) == 0
    assert published == []
    assert runner.main(["--outputs", str(fake_study.outputs), "--profile", "cpu", "--run-id", "b",
                        "--publish"]) == 0
    assert published == [("b", runner.REPO / "results", True)]
    assert runner.main(["--outputs", str(fake_study.outputs), "--profile", "smoke", "--run-id", "c",
                        "--publish", "auto"]) == 0
    assert len(published) == 1 and "not published (--publish auto" in capsys.readouterr().out


def test_the_tools_expected_warnings_are_not_echoed(tmp_path, capsys):
    """Each stage printed ipykernel's TCP warning and nbconvert's alt-text warning (and, on a loaded machine, the
    kernel's line about being interrupted at shut-down); other output still shows."""
    log = tmp_path / "stage.papermill.log"
    script = ("import sys; print('[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All "
              "communication ...', file=sys.stderr); print('[NbConvertApp] WARNING | Alternative text is missing "
              "on 6 image(s).'); print('[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.', file=sys.stderr); "
              "print('[NbConvertApp] WARNING | something new')")
    stage = runner.Stage("00", "data", tmp_path / "00_data.py")
    runner._run([sys.executable, "-c", script], stage, tmp_path / "x.ipynb", log=log)
    runner._run([sys.executable, "-c", script], stage, tmp_path / "x.ipynb")
    err = capsys.readouterr().err
    assert err == "[NbConvertApp] WARNING | something new\n" * 2
    assert "running over TCP" in log.read_text()  # the log keeps everything


# --------------------------------------------------------------------------- stages at once (--jobs)

STUDY_LABELS = ("00_data", "01_analyze", "02_train", "03_attack", "04_gro", "05_seat", "06_watermark", "07_report")


@pytest.fixture
def whole_fake_study(tmp_path, monkeypatch) -> FakeStudy:
    return make_fake_study(tmp_path, monkeypatch, STUDY_LABELS)


def test_jobs_run_stages_that_do_not_read_each_other_at_once(whole_fake_study):
    """attack, GRO and watermark read only train: with --jobs 2 GRO starts while attack runs; SEAT reads
    attack's query logs and waits for it; the report waits for everything."""
    study = whole_fake_study
    gro_started = threading.Event()
    attack_saw_gro = []
    study.during["gro"] = gro_started.set
    study.during["attack"] = lambda: attack_saw_gro.append(gro_started.wait(timeout=10))
    assert study.main("--profile", "smoke", "--run-id", "r1", "--jobs", "2") == 0
    assert attack_saw_gro == [True]
    order = [name for name, _ in study.calls]
    assert order[:2] in (["data", "analyze"], ["data", "train"]) and order[-1] == "report"
    assert order.index("seat") > order.index("attack") and order.index("train") < order.index("attack")
    headline = runs.read_json(study.outputs / "r1" / "headline.json")
    assert all(f"stage_seconds_{label[3:]}" in headline for label in STUDY_LABELS)
    # the study's wall time is the runner's, not the sum of overlapping stage times (0.1 s each here)
    assert headline["study_wall_seconds"] == headline[runs.RUNNER_WALL_KEY]


def test_serial_and_concurrent_runs_give_each_stage_the_same_parameters(tmp_path, monkeypatch):
    serial = make_fake_study(tmp_path / "a", monkeypatch, STUDY_LABELS)
    assert serial.main("--profile", "smoke", "--run-id", "r1", "-p", "epochs", "3") == 0
    concurrent = make_fake_study(tmp_path / "b", monkeypatch, STUDY_LABELS)
    assert concurrent.main("--profile", "smoke", "--run-id", "r1", "-p", "epochs", "3", "--jobs", "3") == 0

    def by_stage(study):
        return {name: {k: v for k, v in parameters.items() if k != "run_dir"} for name, parameters in study.calls}

    assert by_stage(serial) == by_stage(concurrent)


def test_after_a_failure_with_jobs_the_running_stages_finish_and_no_new_one_starts(whole_fake_study, capsys):
    study = whole_fake_study
    study.fail.add("attack")
    gro_started = threading.Event()
    study.during["gro"] = lambda: (gro_started.set(), time.sleep(0.2))
    study.during["attack"] = lambda: gro_started.wait(timeout=10)
    assert study.main("--profile", "smoke", "--run-id", "r1", "--jobs", "2") == 1
    ran = [name for name, _ in study.calls]
    assert "seat" not in ran and "report" not in ran  # they read attack's results
    assert "gro" in ran and runner.stage_done(study.outputs / "r1.partial", runner.Stage("04", "gro", Path("x")))
    assert "stage 03_attack failed" in capsys.readouterr().err
    study.fail.clear()
    study.calls.clear()
    assert study.main("--resume", "r1", "--jobs", "2") == 0
    assert "gro" not in [name for name, _ in study.calls] and "seat" in [name for name, _ in study.calls]
    assert (study.outputs / "r1").is_dir()


def test_jobs_below_one_is_refused_naming_the_option(fake_study, capsys):
    assert fake_study.main("--profile", "smoke", "--run-id", "r1", "--jobs", "0") == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
    assert not fake_study.calls
