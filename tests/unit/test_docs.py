"""The README and docs/ say what a newcomer needs, and every file they link to exists (issue 18, item 10)."""

from __future__ import annotations

import re

from recsec_lib.study.notebook_params import read_parameters
from recsec_lib.study.runner import REPO

DOCS = (REPO / "README.md", REPO / "docs" / "ARCHITECTURE.md")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_relative_links_resolve():
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert broken == []


def test_architecture_points_to_the_protocol_in_docs():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert "](STUDY.md)" in text and "../shared" not in text


def test_readme_says_how_to_call_the_cli_and_skip_the_notebook_chain():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert ".venv/bin/recsec" in text and "source .venv/bin/activate" in text
    assert './run_tests.sh -m "not notebook"' in text


def test_readme_papermill_recipe_sets_only_declared_parameters():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    recipe = text[text.index(".venv/bin/papermill /tmp/02_train.ipynb"):]
    recipe = recipe[:recipe.index("```")]
    names = re.findall(r"-p (\w+) ", recipe)
    declared = read_parameters(REPO / "notebooks" / "02_train.py")
    assert names and set(names) <= set(declared), set(names) - set(declared)


def test_readme_runs_the_gro_curve_with_the_profiles_curve_values():
    """The curve is a run of its own (stages.gro.CPU_CURVE); the README's command must ask for those values."""
    from recsec_lib.study.stages.gro import CPU_CURVE

    text = (REPO / "README.md").read_text(encoding="utf-8")
    lambdas = ",".join(f"{lam:g}" for lam in CPU_CURVE["lambdas"])
    rules = ",".join(CPU_CURVE["zero_gradient_rules"])
    assert f"-p lambdas {lambdas} -p zero_gradient_rules {rules}" in text
