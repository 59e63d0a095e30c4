"""Issue 18: the commands offline without a mirror, and the CLI's edge cases (folders, overwrites, defaults)."""

from __future__ import annotations

import argparse
import json
import socket
import urllib.error
from pathlib import Path

import pytest

from recsec_lib.cli import build_parser, main
from recsec_lib.data import download


@pytest.fixture
def offline(monkeypatch, no_mirror_env):
    """No network: every download attempt fails as on a machine without name resolution."""

    def unreachable(url, timeout):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(download.urllib.request, "urlopen", unreachable)


@pytest.mark.parametrize("command", [
    ["train", "--epochs", "1"],
    ["analyze", "--run-dir", "{tmp}/analyze"],
    ["evaluate", "--checkpoint", "{tmp}/model.pt", "--dataset", "ml-1m"],
    ["compare", "--popular", "--output-dir", "{tmp}/comparison"],
    ["interactive"],
    ["attack", "--target-model", "{tmp}/model.pt", "--output-dir", "{tmp}/attack"],
    ["defend", "--target-model", "{tmp}/model.pt", "--output", "{tmp}/defend"],
    ["download"],
])
def test_every_command_offline_ends_in_one_line_naming_the_mirror(tmp_path, offline, capsys, command):
    (tmp_path / "model.pt").write_bytes(b"never read: the data is missing first")
    data_option = "--output-dir" if command[0] == "download" else "--data-dir"
    argv = [part.format(tmp=tmp_path) for part in command] + [data_option, str(tmp_path / "data")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"recsec {command[0]}: error: ml-1m: no data found")
    assert "--mirror DIR or $RECSEC_DATA_MIRROR" in lines[0] and "Traceback" not in captured.out


def test_attack_refuses_to_overwrite_an_earlier_attack(tmp_path, capsys):
    earlier = tmp_path / "attack"
    earlier.mkdir()
    (earlier / "metrics.json").write_text("{}")
    argv = ["attack", "--target-model", str(tmp_path / "missing.pt"), "--output-dir", str(earlier),
            "--dataset", "synthetic", "--data-dir", str(tmp_path / "data")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already holds an attack (metrics.json); choose another folder or pass --force" in err
    assert (earlier / "metrics.json").read_text() == "{}"
    # with --force the folder is accepted: the command goes on (here to the missing target)
    assert main([*argv, "--force"]) == 2
    assert "--target-model" in capsys.readouterr().err


@pytest.mark.parametrize("command, option", [
    (["attack", "--target-model", "{tmp}/m.pt", "--output-dir", "{file}"], "--output-dir"),
    (["attack", "--target-model", "{tmp}/m.pt", "--data-dir", "{file}"], "--data-dir"),
    (["compare", "--popular", "--output-dir", "{file}"], "--output-dir"),
    (["visualize", "--metrics-file", "{tmp}/m.json", "--output-dir", "{file}"], "--output-dir"),
    (["download", "--output-dir", "{file}"], "--output-dir"),
    (["train", "--data-dir", "{file}"], "--data-dir"),
    (["evaluate", "--checkpoint", "{tmp}/m.pt", "--dataset", "synthetic", "--data-dir", "{file}"], "--data-dir"),
    (["interactive", "--data-dir", "{file}"], "--data-dir"),
    (["analyze", "--run-dir", "{file}"], "--run-dir"),
    (["defend", "--target-model", "{tmp}/m.pt", "--output", "{file}"], "--output"),
])
def test_folder_options_that_name_a_file_are_a_clear_error(tmp_path, capsys, no_mirror_env, command, option):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    (tmp_path / "m.pt").write_bytes(b"x")
    (tmp_path / "m.json").write_text("[]")
    argv = [part.format(tmp=tmp_path, file=a_file) for part in command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{option} {a_file} is a file, not a folder" in err
    assert a_file.read_text() == "keep me"


def test_train_writes_the_metrics_visualize_reads(tmp_path, capsys, no_mirror_env):
    checkpoint = tmp_path / "models" / "meanemb.pt"
    assert main(["train", "--model", "meanemb", "--epochs", "2", "--embedding-dim", "8", "--dataset", "synthetic",
                 "--data-dir", str(tmp_path / "data"), "--output", str(checkpoint), "--device", "cpu"]) == 0
    metrics_file = tmp_path / "models" / "meanemb.metrics.json"
    assert f"recsec visualize --metrics-file {metrics_file}" in capsys.readouterr().out
    metrics = json.loads(metrics_file.read_text())
    assert metrics["model"] == "meanemb" and [row["epoch"] for row in metrics["history"]] == [1, 2]
    assert 0 <= metrics["test"]["hr@10"] <= 1
    assert main(["visualize", "--metrics-file", str(metrics_file), "--output-dir", str(tmp_path / "figures")]) == 0
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["model_comparison.png",
                                                                         "training_curves.png"]


def test_train_default_weight_decay_is_the_studys():
    from recsec_lib.study.stages import train as stage

    args = build_parser().parse_args(["train"])
    assert args.weight_decay == 0.0
    for profile in ("smoke", "cpu", "full"):
        assert stage.Settings.for_profile(profile).weight_decay == args.weight_decay


# Issue 26.4: rough edges a new user hits.

def commands_with_a_device_option() -> list[str]:
    """Every ``recsec`` command that takes --device (read from the parser, so a new command is covered too)."""
    parser = build_parser()
    subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return sorted(name for name, sub in subparsers.choices.items()
                  if any("--device" in action.option_strings for action in sub._actions))


@pytest.fixture
def no_cuda(monkeypatch):
    """A machine without a CUDA device, even where the tests run on one."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_every_device_command_is_covered():
    assert commands_with_a_device_option() == ["attack", "compare", "defend", "evaluate", "interactive", "seat",
                                               "study", "train"]


# The options a command requires besides --device (the checkpoint is never read: the device check comes first).
REQUIRED = {"attack": ["--target-model", "m.pt"], "defend": ["--target-model", "m.pt"],
            "evaluate": ["--checkpoint", "m.pt"]}


@pytest.mark.parametrize("command", commands_with_a_device_option())
def test_device_cuda_without_cuda_is_one_line_before_any_work(tmp_path, capsys, no_cuda, no_mirror_env, command,
                                                              monkeypatch):
    """Issue 26.4: `--device cuda` on a CPU machine was a 13-line traceback from inside the command."""
    monkeypatch.chdir(tmp_path)  # whatever a command would write lands here: nothing may be written
    assert main([command, *REQUIRED.get(command, []), "--device", "cuda"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"recsec {command}: error: --device cuda: ")
    assert "use --device cpu" in lines[0] and "Traceback" not in captured.err + captured.out
    assert list(tmp_path.iterdir()) == []  # no run folder, no data download, no checkpoint


def test_device_check_passes_cpu_and_auto_and_names_the_option(no_cuda):
    from recsec_lib.study.stages.context import DeviceUnavailableError, StudyContext, check_device

    check_device("cpu")
    check_device("auto")
    with pytest.raises(DeviceUnavailableError, match=r"^--run-device cuda: .*use --device cpu"):
        check_device("cuda", option="--run-device")
    with pytest.raises(ValueError, match=r"^parameter 'device' cuda: "):  # a notebook run by hand
        StudyContext(run_dir="x", device="cuda").torch_device()


@pytest.mark.parametrize("command", [["train"], ["attack", "--target-model", "m.pt"]])
@pytest.mark.parametrize("lr", ["1e38", "0", "nan"])
def test_a_learning_rate_adam_cannot_take_is_one_line(tmp_path, capsys, monkeypatch, command, lr):
    """`recsec train --lr 1e38` ended in a traceback inside Adam (its first step, 10 * lr, overflows float32)."""
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--lr", lr, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"recsec {command[0]}: error: --lr ")
    if lr == "1e38":
        assert err[0].endswith("--lr 1e+38 is too large for Adam: its first step, lr / (1 - beta1) = 1e+39, overflows "
                               "float32 (lr at most 3.4e+37; learning rates are usually 1e-4 to 1e-2)")
    assert list(tmp_path.iterdir()) == []


def test_the_largest_learning_rate_adam_takes_trains_into_a_clear_non_finite_error(tmp_path):
    """Just below the bound Adam runs its step; training then diverges and stops with its own one-line error."""
    from recsec_lib.data.synthetic import make_synthetic_dataset
    from recsec_lib.models.registry import build_model
    from recsec_lib.recommend.training import MAX_ADAM_LR, NonFiniteError, TrainConfig, train_model

    data = make_synthetic_dataset(num_users=20, num_items=10, max_len=5, seed=0)
    with pytest.raises(ValueError, match="TrainConfig.lr .* is too large for Adam"):
        TrainConfig(lr=MAX_ADAM_LR * 1.01)
    with pytest.raises(NonFiniteError):
        train_model(build_model("meanemb", 10, 5, embedding_dim=4), data, TrainConfig(epochs=3, lr=MAX_ADAM_LR * 0.99),
                    progress=False)


def test_train_saves_where_the_study_looks_by_default(tmp_path, capsys, monkeypatch, no_mirror_env):
    """`recsec train` saved checkpoints/<model>.pt; the train stage looks for checkpoints/<model>_<dataset>.pt."""
    from recsec_lib.study.stages import train as stage
    from recsec_lib.study.stages.context import StudyContext

    monkeypatch.chdir(tmp_path)
    smoke = stage.Settings.for_profile("smoke")
    assert main(["train", "--model", "meanemb", "--dataset", "synthetic", "--epochs", str(smoke.epochs),
                 "--batch-size", str(smoke.batch_size), "--patience", str(smoke.patience), "--data-dir", "data",
                 "--device", "cpu"]) == 0
    saved = stage.pretrained_path(Path("checkpoints"), "meanemb", "synthetic")
    assert saved == Path("checkpoints/meanemb_synthetic.pt") and saved.is_file()
    assert f"checkpoint {saved}" in capsys.readouterr().out
    # the train stage, told to reuse finished checkpoints from checkpoints/, finds it there and does not train
    settings = stage.Settings.for_profile("smoke").with_overrides(models=("meanemb",), pretrained_dir="checkpoints")
    stage.run(StudyContext(run_dir=tmp_path / "run", dataset="synthetic", data_dir=Path("data"), device="cpu",
                           profile="smoke"), settings)
    assert f"meanemb: reusing the checkpoint {saved} (finished)" in capsys.readouterr().out
