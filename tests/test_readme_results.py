"""The README's results section is generated from the published headline, between its markers."""

from recsec_lib.study.readme_results import END, START, update_readme


def test_update_readme_replaces_only_the_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{START}\nold text\n{END}\n\n## after\n")
    headline = {"profile": "cpu", "dataset": "ml-1m", "git_commit": "abc", "date": "2026",
                "sasrec_test_hr10": 0.2904, "seat_false_positive_rate": 0.0}
    assert update_readme(readme, headline)
    text = readme.read_text()
    assert "old text" not in text and text.startswith("# title") and text.rstrip().endswith("## after")
    assert "| `sasrec_test_hr10` | 0.2904 |" in text
    assert "MISSED" in text  # .2904 < the .30 target
    assert "not measured in this run" in text  # e.g. BERT4Rec
    assert text.count(START) == 1 and text.count(END) == 1


def test_update_readme_without_markers_leaves_it_alone(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert not update_readme(readme, {"profile": "cpu"})
    assert readme.read_text() == "# no markers\n"


def test_a_run_beside_adds_no_defense_figure_of_a_family_the_main_run_measured():
    from recsec_lib.study.readme_results import added_figures

    main = {"gro_protective_lambda_found": False, "gro_utility_retention": 0.67, "seat_accounts_needed": 4.0}
    beside = {"git_commit": "old", "gro_best_lambda": 0.1, "seat_cost_increase_over_volume_cap": 4.7,
              "attack_agr10_autoregressive_5k": 0.76, "bert4rec_test_hr10": 0.24, "prada_accounts_needed": 1.0}
    text = "\n".join(added_figures("side", beside, main))
    assert "attack_agr10_autoregressive_5k" in text and "bert4rec_test_hr10" in text
    assert "gro_best_lambda" not in text and "seat_cost_increase" not in text
    assert "prada_accounts_needed" in text  # the main run measured no PRADA figure, so the side run's is shown
