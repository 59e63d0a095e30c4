"""The ``recsec seat`` command: options, spellings and error paths (no stage is run)."""

from __future__ import annotations

import dataclasses

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


# Issue 26.4: `recsec seat --attack_data` never printed its verdict per account.

def test_account_verdicts_by_hand():
    from recsec_lib.cli.seat import account_verdicts

    rows = [{"account": "a", "detector": "seat", "queries": 40, "flagged_at": 12, "flagged_by": "pairs"},
            {"account": "a", "detector": "prada", "queries": 40, "flagged_at": None, "flagged_by": None},
            {"account": "bob", "detector": "seat", "queries": 5, "flagged_at": None, "flagged_by": None}]
    lines = account_verdicts("log.jsonl", rows).splitlines()
    assert lines[0] == ("--attack_data log.jsonl: verdict per account (2 accounts; flagged at N = at the account's "
                        "N-th query)")
    assert lines[1].split() == ["account", "queries", "seat", "prada"]
    assert lines[2].split() == ["a", "40", "flagged", "at", "12", "not", "flagged"]
    assert lines[3].split() == ["bob", "5", "not", "flagged", "not", "run"]
    assert lines[4] == "flagged: seat 1 of 2, prada 0 of 2"
    assert account_verdicts("log.jsonl", []) == "--attack_data log.jsonl: no account was checked"


def test_seat_with_attack_data_prints_each_accounts_verdict(tmp_path, capsys, monkeypatch):
    """The smoke SEAT stage on a two-account log: a line per account, the same verdicts as the stage's csv."""
    import csv

    from recsec_lib.attack.querylog import QueryRecord, save_log
    from test_seat_stage_search import write_target  # tests/unit is on the path; tests/notebooks only with the notebook tests

    monkeypatch.delenv("RECSEC_DATA_MIRROR", raising=False)
    smoke = stage.Settings.for_profile("smoke")  # smaller still: two zoo attackers, few steps (a fast test)
    small = dataclasses.replace(smoke, zoo=("random", "autoregressive"), encoder_steps=5, surrogate_epochs=1,
                                single_budgets=(5,))
    monkeypatch.setattr(stage.Settings, "for_profile", classmethod(lambda cls, profile: small))
    run_dir, data_dir = tmp_path / "run", tmp_path / "data"
    write_target(run_dir, data_dir)
    walk = [1, 2, 3, 4, 5, 6, 7, 8]
    records = [QueryRecord("attacker-1", i, tuple(walk[:i + 1]), (9, 10)) for i in range(len(walk))]
    records += [QueryRecord("attacker-2", i, (i + 1,), (9, 10)) for i in range(8)]
    save_log(records, tmp_path / "given.jsonl")
    assert main(["seat", "--run-dir", str(run_dir), "--dataset", "synthetic", "--profile", "smoke",
                 "--data-dir", str(data_dir), "--device", "cpu", "--attack_data", str(tmp_path / "given.jsonl")]) == 0
    out = capsys.readouterr().out
    table = out[out.index(f"--attack_data {tmp_path / 'given.jsonl'}: verdict per account (2 accounts;"):].splitlines()
    with open(run_dir / "seat" / "attack_log_accounts.csv") as handle:
        saved = list(csv.DictReader(handle))
    for line, account in zip(table[2:4], ("attacker-1", "attacker-2")):
        assert line.startswith(account)
        seat = next(row for row in saved if row["account"] == account and row["detector"] == "seat")
        assert ("not flagged" if not seat["flagged_at"] else f"flagged at {seat['flagged_at']}") in line
    seat_flagged = sum(1 for row in saved if row["detector"] == "seat" and row["flagged_at"])
    assert table[4].startswith("flagged: ") and f", seat {seat_flagged} of 2," in table[4]
