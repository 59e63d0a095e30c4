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
