"""The ``recsec seat`` command: options, spellings and error paths (no stage is run)."""

from __future__ import annotations

import pytest

from recsec_lib.cli import build_parser, main
from recsec_lib.cli.seat import check_inputs
from recsec_lib.study.stages import seat as stage


def test_help_lists_the_seed_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["seat", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--model_path", "--encoder_path", "--attack_data", "--benign_data", "--fpr", "--device",
                   "--dataset", "--mirror"):
        assert option in text


def test_underscore_and_dash_spellings_are_the_same_option():
    parser = build_parser()
    a = parser.parse_args(["seat", "--model_path", "m.pt", "--encoder_path", "e.pt", "--attack_data", "a.npz",
                           "--benign_data", "b.jsonl"])
    b = parser.parse_args(["seat", "--model-path", "m.pt", "--encoder-path", "e.pt", "--attack-data", "a.npz",
                           "--benign-data", "b.jsonl"])
    for name in ("model_path", "encoder_path", "attack_data", "benign_data"):
        assert getattr(a, name) == getattr(b, name)


@pytest.mark.parametrize("option", ["--model_path", "--encoder-path", "--attack_data", "--benign-data"])
def test_missing_files_are_reported_with_exit_code_2(option, tmp_path, capsys):
    missing = tmp_path / "nope.bin"
    code = main(["seat", "--run-dir", str(tmp_path), "--dataset", "synthetic", option, str(missing)])
    assert code == 2
    err = capsys.readouterr().err
    assert "recsec seat: error:" in err and str(missing) in err and option.replace("-", "_")[2:] in \
        err.replace("-", "_")


@pytest.mark.parametrize("fpr", ["0", "1", "-0.1", "2"])
def test_bad_fpr_is_rejected(fpr, tmp_path, capsys):
    assert main(["seat", "--run-dir", str(tmp_path), "--fpr", fpr]) == 2
    assert "--fpr must be in (0, 1)" in capsys.readouterr().err


def test_bad_attack_sequences_and_bad_choices(tmp_path, capsys):
    assert main(["seat", "--run-dir", str(tmp_path), "--attack-sequences", "0"]) == 2
    assert "--attack-sequences" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["seat", "--device", "tpu"])
    assert exit_info.value.code == 2


def test_check_inputs_accepts_existing_files(tmp_path):
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    check_inputs(0.001, str(model), "", "", "", 10)  # no error


def test_missing_target_checkpoint_is_a_clear_error(tmp_path, capsys):
    # no <run-dir>/train/sasrec.pt: the stage stops before generating attacks, naming the file
    code = main(["seat", "--run-dir", str(tmp_path / "run"), "--dataset", "synthetic", "--profile", "smoke",
                 "--data-dir", str(tmp_path / "data"), "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err
    assert "sasrec.pt does not exist" in err and "train stage" in err


def test_settings_overrides_and_profiles():
    settings = stage.Settings.for_profile("cpu").with_overrides(fpr=0.01, attack_sequences=None)
    assert settings.fpr == 0.01 and settings.attack_sequences == stage.Settings.for_profile("cpu").attack_sequences
    with pytest.raises(ValueError, match="unknown setting 'fpt' .*seat.Settings; did you mean 'fpr'"):
        stage.Settings().with_overrides(fpt=0.1)
    with pytest.raises(ValueError, match="profile"):
        stage.Settings.for_profile("huge")
