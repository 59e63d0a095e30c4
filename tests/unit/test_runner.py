"""The study runner: notebook parameter checks and stage selection (no notebook runs here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recsec_lib.study.notebook_params import check_overrides, coerce, read_parameters
from recsec_lib.study.runner import REPO, Stage, discover_stages, select_stages

NOTEBOOK = '''# %%
import x

# %% tags=["parameters"]
run_dir: str = "outputs/x"  # run folder
epochs: int = 0  # 0 means the profile value
lr: float = 0.001  # learning rate
force: bool = False  # recompute

# %%
print(epochs)
'''


def write(tmp_path: Path, text: str, name: str = "02_train.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_parameters_types_defaults_and_lines(tmp_path):
    params = read_parameters(write(tmp_path, NOTEBOOK))
    assert list(params) == ["run_dir", "epochs", "lr", "force"]
    assert params["epochs"].type_name == "int" and params["epochs"].default == 0
    assert params["lr"].default == 0.001 and params["lr"].line == 7
    assert params["force"].comment == "recompute"


@pytest.mark.parametrize("bad_line, message", [
    ("epochs = 3  # no type", "parameter lines must read"),
    ("epochs: int = f(3)  # not a literal", "must be a literal"),
    ("epochs: int = 3", "needs a comment"),
    ("epochs: int = (  # broken", "cannot parse"),
    ("epochs: int = 0  # 0 = the default", "must not contain '=' or quotes"),
])
def test_bad_parameter_lines_name_file_and_line(tmp_path, bad_line, message):
    path = write(tmp_path, NOTEBOOK.replace('lr: float = 0.001  # learning rate', bad_line))
    with pytest.raises(ValueError, match=message) as info:
        read_parameters(path)
    assert f"{path}:7" in str(info.value)


def test_missing_parameters_cell(tmp_path):
    path = write(tmp_path, "# %%\nprint(1)\n")
    with pytest.raises(ValueError, match="no parameters cell"):
        read_parameters(path)


def test_coerce():
    assert coerce("5", "int", "epochs") == 5
    assert coerce("0.5", "float", "lr") == 0.5
    assert coerce("true", "bool", "force") is True and coerce("0", "bool", "force") is False
    assert coerce("sasrec", "str", "model") == "sasrec"
    with pytest.raises(ValueError, match="parameter 'epochs' is an int; got 'five'"):
        coerce("five", "int", "epochs")
    with pytest.raises(ValueError, match="parameter 'force' is a bool"):
        coerce("maybe", "bool", "force")


def test_check_overrides(tmp_path):
    path = write(tmp_path, NOTEBOOK)
    assert check_overrides([path], [("epochs", "3"), ("lr", "0.01")]) == {"epochs": 3, "lr": 0.01}
    with pytest.raises(ValueError, match="unknown parameter 'epoch'"):
        check_overrides([path], [("epoch", "3")])


def test_select_stages(tmp_path):
    stages = [Stage("00", "data", tmp_path / "00_data.py"), Stage("01", "analyze", tmp_path / "01_analyze.py"),
              Stage("02", "train", tmp_path / "02_train.py")]
    assert select_stages(stages) == stages
    assert select_stages(stages, only="analyze") == [stages[1]]
    assert select_stages(stages, start="01") == stages[1:]
    with pytest.raises(ValueError, match="--stage 'trian': no such stage"):
        select_stages(stages, only="trian")
    assert select_stages(stages, stop="analyze") == stages[:2]
    assert select_stages(stages, start="analyze", stop="train") == stages[1:]
    with pytest.raises(ValueError, match="either --stage or --from/--to"):
        select_stages(stages, only="data", start="train")
    with pytest.raises(ValueError, match="comes before"):
        select_stages(stages, start="train", stop="data")


def test_every_notebook_declares_the_common_parameters():
    from recsec_lib.study.runner import COMMON_PARAMETERS

    for stage in discover_stages():
        declared = read_parameters(stage.source)
        assert set(COMMON_PARAMETERS) <= set(declared), stage.source


def run_runner(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recsec_lib.study.runner", "--outputs", str(tmp_path / "outputs"),
                           "--publish", "no", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_runner_rejects_a_bad_parameter_before_running_anything(tmp_path):
    result = run_runner("--profile", "smoke", "-p", "no_such_parameter", "1", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "unknown parameter 'no_such_parameter'" in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_runner_refuses_p_for_its_own_settings(tmp_path):
    """Issue 18.3: -p dataset ml-100k on a synthetic run computed ML-100K figures under a synthetic headline."""
    result = run_runner("--profile", "smoke", "-p", "dataset", "ml-100k", tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "run_all.sh: error: -p dataset ml-100k: 'dataset' is the runner's own setting (the same for every stage "
        "and recorded with the run); use --dataset")
    assert not (tmp_path / "outputs").exists()


def test_runner_rejects_an_unknown_stage(tmp_path):
    result = run_runner("--stage", "nope", tmp_path=tmp_path)
    assert result.returncode == 2 and "--stage 'nope': no such stage" in result.stderr


def test_runner_resume_of_unknown_run(tmp_path):
    result = run_runner("--resume", "missing-run", tmp_path=tmp_path)
    assert result.returncode == 2 and "no run folder" in result.stderr


def test_publish_into_a_sub_folder_keeps_the_main_figures_and_lists_the_side_run(tmp_path):
    """An extra run published to results/<name> never changes the main run's figures in the README, but its own
    entry there is regenerated (before the main run exists there is no results section to write)."""
    from recsec_lib.study.runner import publish

    run = tmp_path / "outputs" / "r1"
    (run / "train").mkdir(parents=True)
    (run / "headline.json").write_text(json.dumps({"sasrec_test_hr10": 0.3, "profile": "cpu"}))
    (run / "train" / "metrics.json").write_text(json.dumps({"wall_seconds": 1.0}))
    (run / "train" / "curves.png").write_bytes(b"png")
    (run / "report_nocode.html").write_text("<html></html>")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results-table:start -->\nold\n<!-- results-table:end -->\n")
    publish(run, tmp_path / "results" / "extra", update_readme_section=False)
    extra = tmp_path / "results" / "extra"
    assert json.loads((extra / "metrics.json").read_text()) == {"train": {"wall_seconds": 1.0}}
    assert (extra / "figures" / "train_curves.png").exists() and (extra / "report.html").exists()
    assert "old" in readme.read_text()  # no main run published yet: the README is left alone
    publish(run, tmp_path / "results")  # the main folder regenerates it
    assert "old" not in readme.read_text() and "sasrec_test_hr10" in readme.read_text()

    side = tmp_path / "outputs" / "attack5k"
    side.mkdir(parents=True)
    (side / "headline.json").write_text(json.dumps({"attack_agr10_autoregressive_5k": 0.71, "profile": "cpu"}))
    publish(side, tmp_path / "results" / "attack-5k", update_readme_section=False)
    text = readme.read_text()
    assert "results/attack-5k/" in text and "0.71" in text  # the new side run is listed at once
    assert "sasrec_test_hr10" in text  # and the main run's figures stay
    (side / "headline.json").write_text(json.dumps({"attack_agr10_autoregressive_5k": 0.74, "profile": "cpu"}))
    publish(side, tmp_path / "results" / "attack-5k", update_readme_section=False)  # replaced: the entry follows
    assert "0.74" in readme.read_text() and "0.71" not in readme.read_text()


def test_resume_records_new_parameters_in_params_json(tmp_path):
    from recsec_lib.study import runs
    from recsec_lib.study.runner import resume_parameters

    runs.write_json_atomic(tmp_path / "params.json", {"common": {"profile": "cpu"}, "overrides": {"epochs": 5}})
    common, overrides = resume_parameters(tmp_path, {"models": "sasrec,narm"})
    assert common == {"profile": "cpu"} and overrides == {"epochs": 5, "models": "sasrec,narm"}
    saved = runs.read_json(tmp_path / "params.json")
    assert saved["overrides"] == overrides and saved["resumed_with"] == [{"models": "sasrec,narm"}]
    resume_parameters(tmp_path, {"epochs": 5})  # nothing new: params.json unchanged
    assert runs.read_json(tmp_path / "params.json") == saved


def test_publishing_the_main_run_keeps_runs_published_beside_it(tmp_path):
    """results/<name>/ (e.g. the paper-budget attack) survives a new main publish, and the README lists its targets."""
    from recsec_lib.study.runner import publish

    run = tmp_path / "outputs" / "main"
    run.mkdir(parents=True)
    (run / "headline.json").write_text(json.dumps({"sasrec_test_hr10": 0.31, "profile": "cpu"}))
    extra_run = tmp_path / "outputs" / "attack5k"
    extra_run.mkdir(parents=True)
    (extra_run / "headline.json").write_text(json.dumps({"attack_agr10_autoregressive_5k": 0.76, "profile": "cpu",
                                                         "attack_agr10_random_5k": 0.67, "sasrec_test_hr10": 0.2}))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results-table:start -->\nold\n<!-- results-table:end -->\n")
    publish(extra_run, tmp_path / "results" / "attack-5k", update_readme_section=False)
    publish(run, tmp_path / "results")
    publish(run, tmp_path / "results")  # twice: the sub-folder is carried over every time
    assert json.loads((tmp_path / "results" / "attack-5k" / "headline.json").read_text())[
        "attack_agr10_autoregressive_5k"] == 0.76
    text = readme.read_text()
    assert "results/attack-5k/" in text  # a run with no commit recorded is listed, its target never counted met:
    assert "| `attack_agr10_autoregressive_5k` | 0.76 | >= 0.7 | not counted (no commit recorded) |" in text
    assert "| `attack_agr10_random_5k` | 0.67 |  |  |" in text
    assert "0.2 |" not in text  # a figure the main run has too is the main run's to show


def test_resume_continues_the_stages_the_run_was_started_with():
    from recsec_lib.study.runner import discover_stages, recorded_stages

    stages = discover_stages()
    assert [s.name for s in recorded_stages(stages, {"stages": ["data", "analyze", "train", "attack"]})] == [
        "data", "analyze", "train", "attack"]
    assert recorded_stages(stages, {}) == stages  # an older params.json without the list: every stage
    with pytest.raises(ValueError, match="no notebook"):
        recorded_stages(stages, {"stages": ["data", "gorilla"]})


def test_published_files_do_not_make_the_commit_dirty(tmp_path):
    """Publishing writes results/ and the README; only other changes mark a run's code as '-dirty'."""
    from recsec_lib.study.runs import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for name in ("README.md", "code.py", "results/headline.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("one\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    (tmp_path / "README.md").write_text("two\n")
    (tmp_path / "results" / "headline.json").write_text("two\n")
    assert not git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "code.py").write_text("two\n")
    assert git_commit(tmp_path).endswith("-dirty")


def test_a_stage_stopped_while_exporting_is_not_finished(tmp_path):
    """metrics.json is written before the exports: a stage whose exports are missing runs again on resume."""
    from recsec_lib.study.runner import stage_done, stage_exports

    report = next(stage for stage in discover_stages() if stage.name == "report")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "metrics.json").write_text("{}")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / f"{report.label}.ipynb").write_text("{}")
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / f"{report.label}.html").write_text("page")
    (tmp_path / "report.html").write_text("report")
    assert not stage_done(tmp_path, report)  # stopped before report_nocode.html was exported
    (tmp_path / "report_nocode.html").write_text("report")
    assert stage_done(tmp_path, report)
    assert [path.name for path in stage_exports(tmp_path, report)] == [
        f"{report.label}.html", "report.html", "report_nocode.html"]


def test_an_export_appears_under_its_name_only_when_whole(tmp_path, monkeypatch):
    from recsec_lib.study import runner

    target = tmp_path / "report.html"
    seen = []

    def fake_nbconvert(command, stage, executed, log=None):
        output = command[command.index("--output") + 1]
        assert not target.exists()  # nothing under the final name while nbconvert writes
        (tmp_path / f"{output}.html").write_text("whole")
        seen.append(command)

    monkeypatch.setattr(runner, "_run", fake_nbconvert)
    runner._export(tmp_path / "x.ipynb", target, discover_stages()[0], "--no-input")
    assert target.read_text() == "whole" and "--no-input" in seen[0]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.html"]

    def failing_nbconvert(command, stage, executed, log=None):
        raise runner.StageFailed("nbconvert failed")

    monkeypatch.setattr(runner, "_run", failing_nbconvert)
    with pytest.raises(runner.StageFailed):
        runner._export(tmp_path / "x.ipynb", tmp_path / "other.html", discover_stages()[0])
    assert not (tmp_path / "other.html").exists()


def test_a_run_is_resumed_only_at_the_clean_commit_it_was_started_at():
    from recsec_lib.study.runner import check_resumed_commit

    clean, other = "a" * 40, "b" * 40
    check_resumed_commit("r1", clean, clean)
    for started in (None, "unknown", f"{clean}-dirty"):  # never counted as met: resumable anywhere
        check_resumed_commit("r1", started, other)
    with pytest.raises(ValueError, match=r"--resume r1: the run was started at commit aaaaaaaaaaaa and this "
                                         r"checkout is at bbbbbbbbbbbb-dirty; a run's stages come from one version"):
        check_resumed_commit("r1", clean, f"{other}-dirty")


def test_a_run_may_be_resumed_after_its_own_publication(tmp_path, monkeypatch):
    """Publishing commits results/ and the README: the commit moves, the code does not."""
    from recsec_lib.study import runs
    from recsec_lib.study.runner import check_resumed_commit

    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "code.py").write_text("one\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "code")
    started = git("rev-parse", "HEAD")
    for name in ("results/headline.json", "README.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("published\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "publish")
    published = git("rev-parse", "HEAD")
    (tmp_path / "code.py").write_text("two\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "change")
    changed = git("rev-parse", "HEAD")

    assert runs.same_code(started, published, tmp_path) and not runs.same_code(started, changed, tmp_path)
    assert not runs.same_code("0" * 40, published, tmp_path)  # a commit git does not know
    real = runs.same_code
    monkeypatch.setattr(runs, "same_code", lambda first, second: real(first, second, tmp_path))
    check_resumed_commit("r1", started, published)  # the run's own publication since: resumable
    with pytest.raises(ValueError, match="a run's stages come from one version of the code"):
        check_resumed_commit("r1", started, changed)


def test_every_notebook_stage_says_what_it_reads_and_reads_only_earlier_stages():
    """stages.STAGE_INPUTS decides what --jobs may run at once: a stage missing from it would run alone, and
    an input named after the stage would never be ready."""
    from recsec_lib.study.stages import ALL_EARLIER, STAGE_INPUTS, stage_inputs

    names = [stage.name for stage in discover_stages()]
    assert list(STAGE_INPUTS) == names
    for index, name in enumerate(names):
        declared = STAGE_INPUTS[name]
        assert declared == ALL_EARLIER or set(declared) <= set(names[:index]), name
    assert stage_inputs("seat", names[:5]) == ("data", "train", "attack")  # with what attack reads in turn
    assert stage_inputs("gro", names[:4]) == ("data", "train")
    assert stage_inputs("report", names[:7]) == tuple(names[:7])


def _merge_many(path: str, worker: int) -> None:
    from recsec_lib.study import runs

    for i in range(40):
        runs.merge_headline(path, {f"w{worker}_{i}": i})


def test_headline_merges_from_processes_at_once_lose_no_key(tmp_path):
    """Stages at once (run_all.sh --jobs) merge into one headline.json; the lock keeps every key."""
    import multiprocessing

    from recsec_lib.study import runs

    path = tmp_path / "headline.json"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_merge_many, args=(str(path), w)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert all(process.exitcode == 0 for process in workers)
    assert len(runs.read_json(path)) == 4 * 40
