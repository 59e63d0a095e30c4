"""The README's results section is generated from the published headline, between its markers; a target is
"met" only from a run of a clean commit in HEAD's history, and every run's age is stated (issue 26.2)."""

import os
import subprocess

import pytest

from recsec_lib.study.readme_results import END, START, added_figures, provenance, results_block, update_readme


def git(repo, *args):
    env = {**os.environ, "GIT_COMMITTER_DATE": "2026-12-01T10:00:00+00:00"}
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A repository with three commits on main and one on a branch that main never merged."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.org")
    git(root, "config", "user.name", "t")
    commits = {}
    for name in ("first", "second", "third"):
        (root / "file.txt").write_text(name)
        git(root, "add", "file.txt")
        git(root, "commit", "-q", "-m", name, "--date", "2026-12-01T10:00:00+00:00")
        commits[name] = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "-b", "side", commits["first"])
    (root / "other.txt").write_text("side")
    git(root, "add", "other.txt")
    git(root, "commit", "-q", "-m", "side")
    commits["side"] = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "main")
    return root, commits


def test_update_readme_replaces_only_the_marked_block(tmp_path, repo):
    root, commits = repo
    readme = root / "README.md"
    readme.write_text(f"# title\n\n{START}\nold text\n{END}\n\n## after\n")
    headline = {"profile": "cpu", "dataset": "ml-1m", "git_commit": commits["third"], "date": "2026",
                "sasrec_test_hr10": 0.2904, "seat_false_positive_rate": 0.0}
    assert update_readme(readme, headline)
    text = readme.read_text()
    assert "old text" not in text and text.startswith("# title") and text.rstrip().endswith("## after")
    assert "| `sasrec_test_hr10` | 0.2904 |" in text
    assert "MISSED" in text  # .2904 < the .30 target, from a clean commit of HEAD's history
    assert "not measured in this run" in text  # e.g. BERT4Rec
    assert f"commit `{commits['third'][:7]}` (HEAD itself when this was generated, " in text
    assert text.count(START) == 1 and text.count(END) == 1


def test_update_readme_without_markers_leaves_it_alone(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert not update_readme(readme, {"profile": "cpu"})
    assert readme.read_text() == "# no markers\n"


def test_a_run_beside_adds_no_defense_figure_of_a_family_the_main_run_measured():
    main = {"gro_protective_lambda_found": False, "gro_utility_retention": 0.67, "seat_accounts_needed": 4.0}
    beside = {"git_commit": "old", "gro_best_lambda": 0.1, "seat_cost_increase_over_volume_cap": 4.7,
              "attack_agr10_autoregressive_5k": 0.76, "bert4rec_test_hr10": 0.24, "prada_accounts_needed": 1.0}
    text = "\n".join(added_figures("side", beside, main))
    assert "attack_agr10_autoregressive_5k" in text and "bert4rec_test_hr10" in text
    assert "gro_best_lambda" not in text and "seat_cost_increase" not in text
    assert "prada_accounts_needed" in text  # the main run measured no PRADA figure, so the side run's is shown


def test_a_run_beside_shows_the_gro_from_scratch_keys_the_main_run_never_measures():
    main = {"gro_best_point_retention": 0.98, "gro_verdict": "no protection"}
    beside = {"git_commit": "old", "gro_scratch_utility_retention": 0.9, "gro_scratch_surrogate_ndcg10_drop": 0.1,
              "gro_best_point_retention": 0.5, "gro_verdict": "PROTECTS"}
    text = "\n".join(added_figures("gro-scratch", beside, main))
    assert "gro_scratch_utility_retention" in text and "gro_scratch_surrogate_ndcg10_drop" in text
    assert "gro_best_point_retention" not in text and "PROTECTS" not in text  # the main run's curve is the one shown


def test_the_watermark_folder_shows_the_family_it_measures_again_beside_the_main_runs():
    main = {"watermark_verified_share": 0.0, "watermark_utility_retention": 0.986, "sasrec_test_hr10": 0.306,
            "gro_verdict": "no effect"}
    beside = {"git_commit": "old", "watermark_verified_share": 1.0, "watermark_utility_retention": 0.995,
              "sasrec_test_hr10": 0.306, "gro_verdict": "PROTECTS"}
    text = "\n".join(added_figures("watermark", beside, main))
    assert "| `watermark_verified_share` | 1 | >= 1 |" in text and "`watermark_utility_retention` | 0.995" in text
    assert "sasrec_test_hr10" not in text and "gro_verdict" not in text  # the main run's to show
    assert "measures `watermark_*` again with settings of its own" in text
    elsewhere = "\n".join(added_figures("side", beside, main))  # only the folder named for it measures it again
    assert "watermark_verified_share" not in elsewhere


def test_the_seat_and_gro_budget_folders_show_the_families_they_measure_again():
    main = {"detect_best_false_positive_rate": 0.00105, "benign_real_timing_false_positive_rate_caps": 0.0,
            "gro_best_point_fall_vs_null": -0.03, "none_agr10": 0.34, "sasrec_test_hr10": 0.306}
    beside = {"git_commit": "old", "detect_best_false_positive_rate": 0.0002,
              "benign_real_timing_false_positive_rate_caps": 0.001, "gro_best_point_fall_vs_null": 0.01,
              "none_agr10": 0.4, "sasrec_test_hr10": 0.306}
    seat = "\n".join(added_figures("seat", beside, main))
    assert "`detect_best_false_positive_rate` | 0.0002" in seat and "benign_real_timing_false_positive_rate_caps" in seat
    assert "gro_best_point_fall_vs_null" not in seat and "sasrec_test_hr10" not in seat
    budget = "\n".join(added_figures("gro-budget", beside, main))
    assert "`gro_best_point_fall_vs_null` | 0.01" in budget and "`none_agr10` | 0.4" in budget
    assert "detect_best" not in budget
    noisy = {"git_commit": "old", "gro_best_point_fall_vs_null_low": 0.0003, "gro_noise_floor": 0.0075}
    assert "| `gro_best_point_fall_vs_null_low` | 0.0003 | > 0 | not counted" in "\n".join(
        added_figures("gro-budget", noisy, main))  # the commit is unknown here: judged only where counted
    # any other folder adds no figure of a family the main run measured, SEAT's detect_/benign_ keys included
    assert added_figures("side", beside, main) == []


def test_a_gro_fall_within_the_training_noise_is_missed_in_the_readme(repo):
    """results/gro-budget/: low end 0.0003 above 0 but under the 0.0075 noise floor, which the curve calls noise."""
    root, commits = repo
    main = {"profile": "cpu", "git_commit": commits["third"]}
    noisy = {"profile": "cpu", "git_commit": commits["first"], "gro_best_point_fall_vs_null_low": 0.0003,
             "gro_noise_floor": 0.0075}
    assert "| `gro_best_point_fall_vs_null_low` | 0.0003 | > 0 | MISSED |" in "\n".join(
        added_figures("gro-budget", noisy, main, root))
    beyond = {**noisy, "gro_best_point_fall_vs_null_low": 0.02}
    assert "| `gro_best_point_fall_vs_null_low` | 0.02 | > 0 | met |" in "\n".join(
        added_figures("gro-budget", beyond, main, root))


def test_a_target_is_met_only_from_a_clean_commit_in_heads_history(repo):
    """results/attack-5k and results/cpu-four-targets were counted 'met' from a dirty commit 74 commits old."""
    root, commits = repo
    main = {"profile": "cpu", "git_commit": commits["third"]}
    figures = {"attack_agr10_autoregressive_5k": 0.76, "profile": "cpu", "date": "2026-12-01T21:54:53+00:00"}
    cases = {
        "clean": (commits["first"], "| >= 0.7 | met |", "2 commits behind HEAD when this was generated, 2026-12-01)"),
        "dirty": (commits["first"] + "-dirty", "not counted (local changes at a dirty commit)",
                  "-dirty (2 commits behind HEAD when this was generated, 2026-12-01); targets not counted"),
        "elsewhere": (commits["side"], "not counted (its commit is not in HEAD's history)", "(2026-12-01)"),
        "unknown": ("0" * 40, "not counted (its commit is not in this repository)", ""),
        "unrecorded": ("unknown", "not counted (no commit recorded)", ""),
    }
    for name, (commit, status, age) in cases.items():
        text = "\n".join(added_figures(name, {**figures, "git_commit": commit}, main, root))
        assert status in text, (name, text)
        assert age in text, (name, text)
        if name != "clean":
            assert "| met |" not in text, name


def test_the_main_run_is_judged_by_the_same_rule(repo):
    root, commits = repo
    headline = {"profile": "cpu", "dataset": "ml-1m", "date": "2026-12-01", "sasrec_test_hr10": 0.31}
    clean = results_block({**headline, "git_commit": commits["second"]}, repo=root)
    assert "| sasrec_test_hr10 | >= 0.3 | 0.31 | met |" in clean and "1 commit behind HEAD" in clean
    dirty = results_block({**headline, "git_commit": commits["second"] + "-dirty"}, repo=root)
    assert "| sasrec_test_hr10 | >= 0.3 | 0.31 | not counted (local changes at a dirty commit) |" in dirty
    unplaced = results_block({**headline, "git_commit": commits["second"]})
    assert "not counted (no repository to check its commit against)" in unplaced


def test_provenance_reads_git(repo):
    root, commits = repo
    origin = provenance({"git_commit": commits["first"]}, root)
    assert (origin.clean, origin.ancestor, origin.behind, origin.date, origin.counted) == (True, True, 2,
                                                                                         "2026-12-01", True)
    side = provenance({"git_commit": commits["side"]}, root)
    assert side.ancestor is False and side.behind is None and not side.counted


def test_a_target_without_a_value_takes_its_own_word_for_it():
    """wm1207 measured the watermark but no copy reached Agr@10 30%: "not measured in this run" was false."""
    from recsec_lib.study.readme_results import Provenance, status
    from recsec_lib.study.report import TARGETS

    targets = {target.key: target for target in TARGETS}
    origin = Provenance(commit="a" * 40, clean=True, ancestor=True, behind=0, date="2026-12-07")
    assert status(targets["watermark_verified_share"], None, origin).startswith(
        "undecided: no stolen copy reached Agr@10 >= 30%")
    assert status(targets["bert4rec_test_hr10"], None, origin) == "not measured in this run"
