"""Notebook parameters: Optional[X] / X | None ("the profile's value"), -p typos, and each notebook's cell.

The notebooks are read as text and their parameters cell and settings line are executed here without
Jupyter, so these tests are fast; the papermill runs are in test_notebooks.py.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from recsec_lib.study.notebook_params import check_overrides, coerce, read_parameters
from recsec_lib.study.runner import COMMON_PARAMETERS, REPO, RUNNER_SETTINGS, discover_stages

NOTEBOOK = '''# %%
from typing import Optional

# %% tags=["parameters"]
run_dir: str = "outputs/x"  # run folder
# the stage's settings
epochs: Optional[int] = None  # most epochs
lr: float | None = None  # learning rate
models: Optional[str] = None  # architectures
from_scratch: bool | None = None  # train from scratch
dataset: str = "synthetic"  # the runner setting
lambdas: str = "1"  # not optional

# %%
print(epochs)
'''


def write(tmp_path: Path, text: str = NOTEBOOK) -> Path:
    path = tmp_path / "04_gro.py"
    path.write_text(text)
    return path


def test_optional_parameters_are_read_in_both_spellings(tmp_path):
    params = read_parameters(write(tmp_path))
    assert (params["epochs"].type_name, params["epochs"].optional, params["epochs"].default) == ("int", True, None)
    assert (params["lr"].type_name, params["lr"].optional) == ("float", True)
    assert (params["models"].type_name, params["from_scratch"].type_name) == ("str", "bool")
    assert params["from_scratch"].optional and not params["lambdas"].optional and not params["run_dir"].optional


@pytest.mark.parametrize("bad_line, message", [
    ("lambdas: str = None  # None for a plain str", r"does not fit its type str: None \(declare it Optional\[str\]\)"),
    ("lambdas: Optional[int] = 'a'  # a text for an int", r"does not fit its type Optional\[int\]: 'a'"),
    ("lambdas: int | str = 1  # two types", "parameter lines must read"),
    ("lambdas: Optional[list] = None  # a list", "parameter lines must read"),
    ("lambdas: float = True  # a bool for a float", "does not fit its type float: True"),
])
def test_bad_optional_lines_name_file_and_line(tmp_path, bad_line, message):
    path = write(tmp_path, NOTEBOOK.replace('lambdas: str = "1"  # not optional', bad_line))
    with pytest.raises(ValueError, match=message) as info:
        read_parameters(path)
    assert f"{path}:12" in str(info.value)


def test_p_none_gives_none_for_an_optional_parameter_only(tmp_path):
    path = write(tmp_path)
    typed = check_overrides([path], [("epochs", "none"), ("lr", "0.5"), ("models", "None"), ("from_scratch", "yes")])
    assert typed == {"epochs": None, "lr": 0.5, "models": None, "from_scratch": True}
    assert check_overrides([path], [("lambdas", "none")]) == {"lambdas": "none"}  # a plain str keeps the text
    assert coerce("NONE", "bool", "from_scratch", optional=True) is None
    with pytest.raises(ValueError, match=r"parameter 'epochs' is an int \(or none for the profile value\); got 'x'"):
        check_overrides([path], [("epochs", "x")])
    with pytest.raises(ValueError, match="parameter 'from_scratch' is a bool; got 'maybe' .*or none for the profile"):
        check_overrides([path], [("from_scratch", "maybe")])


def test_an_unknown_parameter_gets_did_you_mean_and_the_settable_names_only(tmp_path):
    path = write(tmp_path)
    reserved = {"run_dir": "--outputs and --run-id", "dataset": "--dataset"}
    with pytest.raises(ValueError) as info:
        check_overrides([path], [("epoch", "5")], reserved=reserved)
    assert str(info.value) == ("unknown parameter 'epoch'; did you mean 'epochs'? Parameters -p can set in the "
                               "selected stages: epochs, from_scratch, lambdas, lr, models")
    with pytest.raises(ValueError, match=r"^unknown parameter 'zzz'\. Parameters -p can set"):
        check_overrides([path], [("zzz", "5")], reserved=reserved)
    with pytest.raises(ValueError, match=r"did you mean 'dataset'\? \(the runner's own setting: use --dataset\)"):
        check_overrides([path], [("datasets", "ml-1m")], reserved=reserved)


def run_runner(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recsec_lib.study.runner", "--outputs", str(tmp_path / "outputs"),
                           "--publish", "no", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_run_all_p_typo_says_did_you_mean_and_lists_settable_names(tmp_path):
    result = run_runner("--profile", "smoke", "-p", "epoch", "5", tmp_path=tmp_path)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("run_all.sh: error: unknown parameter 'epoch'; did you mean 'epochs'? Parameters -p can "
                           "set in the selected stages: ")
    listed = last.split(": ")[-1].split(", ")
    assert "epochs" in listed and "lambdas" in listed
    assert not set(listed) & set(COMMON_PARAMETERS)  # the runner's own settings are not offered
    assert not (tmp_path / "outputs").exists()


# ---- the study's notebooks ---------------------------------------------------------------------------------

STAGES = discover_stages()


def parameters_cell(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index('# %% tags=["parameters"]\n')
    return text[start:text.index("\n# %%\n", start)]


def settings_call(path: Path) -> ast.Assign | None:
    """The notebook's ``settings = stage.Settings...`` statement (None for a stage without one)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [node for node in tree.body if isinstance(node, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id == "settings" for t in node.targets)]
    assert len(found) <= 1, path
    return found[0] if found else None


@pytest.mark.parametrize("stage", STAGES, ids=lambda stage: stage.name)
def test_a_notebook_opened_by_hand_runs_the_smoke_profile_on_synthetic_data(stage):
    params = read_parameters(stage.source)
    assert params["profile"].default == "smoke" and params["dataset"].default == "synthetic"
    names = list(params)
    assert names[:len(COMMON_PARAMETERS)] == list(COMMON_PARAMETERS)  # the runner's group comes first
    for param in params.values():
        if param.name not in COMMON_PARAMETERS:  # the stage's settings: None is the profile's value
            assert param.optional and param.default is None, (stage.source, param.name)


@pytest.mark.parametrize("stage", STAGES, ids=lambda stage: stage.name)
def test_papermill_reads_every_declared_parameter(stage):
    """papermill warns "Passed unknown parameter" for a line its parser cannot read (it cannot read int | None)."""
    from papermill.translators import PythonTranslator

    seen = {param.name for param in PythonTranslator.inspect({"source": parameters_cell(stage.source)})}
    assert set(read_parameters(stage.source)) <= seen


@pytest.mark.parametrize("stage", STAGES, ids=lambda stage: stage.name)
def test_the_settings_are_one_call_with_every_stage_parameter(stage):
    node = settings_call(stage.source)
    params = [name for name in read_parameters(stage.source) if name not in COMMON_PARAMETERS]
    if node is None:
        assert not params, f"{stage.source} declares settings but never builds them"
        return
    assert not any(isinstance(sub, ast.IfExp | ast.BoolOp) for sub in ast.walk(node)), "no conditional expressions"
    call = node.value
    assert isinstance(call, ast.Call) and call.func.attr == "with_overrides"
    assert ast.unparse(call.func.value) == "stage.Settings.for_profile(profile)"
    used = {ast.unparse(keyword.value) for keyword in call.keywords}
    assert all(isinstance(keyword.value, ast.Name) for keyword in call.keywords)
    assert used == set(params), (stage.source, set(params) ^ used)


@pytest.mark.parametrize("stage", [s for s in STAGES if s.name != "report"], ids=lambda stage: stage.name)
def test_the_defaults_give_the_profile_settings_and_overrides_reach_them(stage):
    module = importlib.import_module(f"recsec_lib.study.stages.{stage.name}")
    cell = parameters_cell(stage.source)
    statement = ast.unparse(settings_call(stage.source))
    namespace = {"stage": module}
    exec("from typing import Optional\n" + cell + "\n" + statement, namespace)
    assert namespace["settings"] == module.Settings.for_profile("smoke")
    namespace["profile"] = "cpu"
    exec(statement, namespace)
    assert namespace["settings"] == module.Settings.for_profile("cpu")


def test_gro_notebook_parameters_as_run_all_sets_them():
    """-p lambdas 0.1,1 -p from_scratch yes -p combinations '' -p epochs none, as check_overrides types them."""
    from recsec_lib.study.stages import gro

    source = next(stage.source for stage in STAGES if stage.name == "gro")
    typed = check_overrides([source], [("lambdas", "0.1,1"), ("from_scratch", "yes"), ("combinations", ""),
                                       ("epochs", "none"), ("output_defenses", "top:5")],
                            reserved=RUNNER_SETTINGS)
    namespace = {"stage": gro}
    exec("from typing import Optional\n" + parameters_cell(source), namespace)
    namespace.update(typed)
    exec(ast.unparse(settings_call(source)), namespace)
    settings = namespace["settings"]
    smoke = gro.Settings.for_profile("smoke")
    assert (settings.lambdas, settings.from_scratch, settings.combinations) == ((0.1, 1.0), True, ())
    assert settings.epochs == smoke.epochs and settings.output_defenses == ("top:5",)

