"""The README's results section, regenerated from ``results/headline.json`` when a run is published.

The README shows the headline figures of the published run between two
marker comments; nothing between them is written by hand, so the README can
never disagree with ``results/``.

A target counts as "met" (or "MISSED") only from a run of a clean commit that
is an ancestor of the checkout's HEAD (``Provenance``): a run of a dirty
commit, of a commit not in HEAD's history, or of a commit git cannot find here
is shown with its figures and "not counted", never "met". Every run's age is
stated (commits behind HEAD, the commit's date).
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recsec_lib.study.report import TARGETS, TOTALLED_LATER, target_table
from recsec_lib.common.files import write_text_atomic
from recsec_lib.common.tables import markdown_table

START = "<!-- results-table:start -->"
END = "<!-- results-table:end -->"
ABOUT = ("profile", "dataset", "git_commit", "date")
# Keys of the defense stages (GRO, SEAT and their baselines). When the main run has a family's keys, a run
# published beside it adds none of that family: the main run judges each defense with its own attackers and
# controls, and an older run's defense figure (e.g. a gro_best_lambda the main run found no λ for) would
# read as the main run's.
GRO_FAMILIES = ("gro_", "defense_frontier_", "none_agr")
SEAT_FAMILIES = ("detect_", "benign_", "seat_", "volume_cap_", "rate_cap_", "caps_", "prada_")
DEFENSE_FAMILIES = GRO_FAMILIES + SEAT_FAMILIES
# Keys of a defense family that only a run beside the main one measures (GRO trained from scratch, as the
# authors train, which the cpu profile's fine-tuned curve does not): shown even where the main run has the family.
BESIDE_ONLY = ("gro_scratch_",)
# Families that the run published in results/<folder>/ measures again with settings of its own, shown beside the
# main run's figures of the same keys (each with its run's commit): the watermark stage with the defaults measured
# on ML-1M (rare continuations, lr 5e-3), where the main run's embedding, at the earlier defaults, did not take
# (results/watermark/), and the same at three times the cpu attack budget (results/watermark-3x/); the SEAT stage
# with held-out benign sets big enough for the FPR intervals to show the targets (results/seat/); GRO's main points
# again at a four times larger attack budget, whose verdict uses the budget that does not cap the surrogates
# (results/gro-budget/, and results/gro-budget-lambda1/ whose second budget holds a target weak enough to check it).
REMEASURED = {"watermark": ("watermark_",), "watermark-3x": ("watermark_",), "seat": SEAT_FAMILIES,
              "gro-budget": GRO_FAMILIES, "gro-budget-lambda1": GRO_FAMILIES}


@dataclass(frozen=True)
class Provenance:
    """Where a published run's figures come from, against the checkout's HEAD."""

    commit: str  # as the run recorded it ("unknown", a hash, or a hash with "-dirty")
    clean: bool  # False for "-dirty" (local changes when the run was stamped) and "unknown"
    ancestor: bool | None  # the commit is in HEAD's history; None: git cannot tell here
    behind: int | None  # commits from it to HEAD
    date: str  # the commit's date (YYYY-MM-DD), else the run's own date
    checked: bool = True  # False: there was no repository to place the commit in

    @property
    def counted(self) -> bool:
        """Targets are judged only on figures of a clean commit of this history."""
        return self.clean and self.ancestor is True

    @property
    def why_not(self) -> str:
        """Why the run's targets are not counted ("" when they are)."""
        if not self.clean:
            return "local changes at a dirty commit" if self.commit.endswith("-dirty") else "no commit recorded"
        if not self.checked:
            return "no repository to check its commit against"
        if self.ancestor is None:
            return "its commit is not in this repository"
        if not self.ancestor:
            return "its commit is not in HEAD's history"
        return ""

    def describe(self) -> str:
        """"commit `abfab8b` (28 commits behind HEAD, 2026-12-03)", with "dirty" or the reason it is not counted."""
        sha = self.commit.removesuffix("-dirty")[:7] if self.commit != "unknown" else "unknown"
        age = []
        if self.behind is not None:
            age.append("HEAD itself when this was generated" if self.behind == 0 else
                       f"{self.behind} commit{'s' if self.behind != 1 else ''} behind HEAD when this was generated")
        if self.date:
            age.append(self.date)
        text = f"commit `{sha}`" + ("-dirty" if self.commit.endswith("-dirty") else "")
        text += f" ({', '.join(age)})" if age else ""
        return text + ("" if self.counted else f"; targets not counted: {self.why_not}")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


def provenance(headline: dict, repo: str | Path | None) -> Provenance:
    """The run's commit against ``repo``'s HEAD (git merge-base --is-ancestor, rev-list --count)."""
    commit = str(headline.get("git_commit") or "unknown")
    sha = commit.removesuffix("-dirty")
    clean = commit != "unknown" and not commit.endswith("-dirty")
    ancestor, behind, date = None, None, str(headline.get("date") or "")[:10]
    if repo is not None and sha != "unknown":
        try:
            known = _git(Path(repo), "cat-file", "-e", f"{sha}^{{commit}}").returncode == 0
            if known:
                ancestor = _git(Path(repo), "merge-base", "--is-ancestor", sha, "HEAD").returncode == 0
                if ancestor:
                    count = _git(Path(repo), "rev-list", "--count", f"{sha}..HEAD")
                    behind = int(count.stdout.strip()) if count.returncode == 0 else None
                shown = _git(Path(repo), "show", "-s", "--format=%cs", sha)
                date = shown.stdout.strip() or date if shown.returncode == 0 else date
        except (OSError, ValueError):  # no git here: the run cannot be placed, so it is not counted
            ancestor = None
    return Provenance(commit, clean, ancestor, behind, date, checked=repo is not None)


def status(target, value, origin: Provenance, headline: dict | None = None) -> str:
    """A target's status in the README: "met" / "MISSED" only for a counted run; without a value, the target's
    own word for that (as in the report's targets table). ``headline``: the run's, for a target judged beyond
    another of its figures (``Target.beyond``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return target.absent
    if not origin.counted:
        return f"not counted ({origin.why_not})"
    return "met" if target.met(value, headline) else "MISSED"


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


def added_figures(name: str, headline: dict, main: dict, repo: str | Path | None = None) -> list[str]:
    """README lines for a run published beside the main one (results/<name>/): the figures it adds.

    Only the keys the main run lacks are listed (e.g. the 5k-sequence attack
    keys), with the issue's target where one exists; figures both runs share
    are the main run's to show, and so is every defense family the main run
    measured (``DEFENSE_FAMILIES``). The run's commit is placed against
    ``repo``'s HEAD: its age is stated, and a dirty or foreign commit's
    targets are "not counted".
    """
    measured = [family for family in DEFENSE_FAMILIES if any(key.startswith(family) for key in main)]
    origin = provenance(headline, repo)
    about = f"profile `{headline.get('profile')}`, {origin.describe()}, run date `{headline.get('date')}`"
    targets = {target.key: target for target in TARGETS}
    again = REMEASURED.get(name, ())
    rows = []
    for key, value in sorted(headline.items()):
        if key in ABOUT or key.startswith("stage_seconds_") or key == "study_wall_seconds":
            continue
        if key.startswith(again):
            pass  # this folder measures the family again: its figures are shown beside the main run's
        elif key in main or (any(key.startswith(family) for family in measured) and not key.startswith(BESIDE_ONLY)):
            continue
        target = targets.get(key)
        rows.append({"key": f"`{key}`", "value": _fmt(value),
                     "target": f"{target.comparison} {target.threshold:g}" if target else "",
                     "status": status(target, value, origin, headline) if target else ""})
    if not rows:
        return []
    again_words = ("" if not again else
                   f"; it measures {', '.join(f'`{family}*`' for family in again)} again with settings of its own, "
                   "shown here beside the main run's figures above")
    return ["", f"Figures added by [`results/{name}/`](results/{name}/) ({about}), a run published beside "
                "this one (that folder holds its headline, metrics, figures and, if it ran the report stage, "
                f"its report){again_words}:", "",
            markdown_table(pd.DataFrame(rows)).rstrip("\n")]


def results_block(headline: dict, extra_runs: dict[str, dict] | None = None, repo: str | Path | None = None) -> str:
    """Markdown for the README: where the figures come from, the targets table, every headline key.

    ``extra_runs`` (folder name -> headline) are runs published beside the main
    one, e.g. a paper-budget attack too long for the cpu profile; the figures
    they add get a table of their own. ``repo``: the checkout whose HEAD every
    run's commit is placed against (None: no run's targets are counted).
    """
    origin = provenance(headline, repo)
    about = (f"profile `{headline.get('profile')}`, dataset `{headline.get('dataset')}`, {origin.describe()}, "
             f"run date `{headline.get('date')}`")
    targets = target_table(headline)
    targets["status"] = [status(target, headline.get(target.key), origin, headline) if row_status != TOTALLED_LATER
                         else row_status for target, row_status in zip(_targets_for(headline), targets["status"])]
    targets["measured"] = targets["measured"].map(lambda v: "" if v is None else _fmt(v))
    extra_lines = [line for name, extra in sorted((extra_runs or {}).items())
                   for line in added_figures(name, extra, headline, repo)]
    figures = "\n".join(f"| `{key}` | {_fmt(value)} |" for key, value in sorted(headline.items()) if key not in ABOUT)
    return "\n".join([
        START,
        "Generated from [`results/headline.json`](results/headline.json) by `./run_all.sh` when it publishes "
        f"a run ({about}). The report of that run, without code cells, is [`results/report.html`](results/report.html); "
        "every stage's metrics are in [`results/metrics.json`](results/metrics.json) and the figures in "
        "[`results/figures/`](results/figures/).",
        "",
        "Targets set by the issues, against this run (keys named `_5k` are measured only at the full "
        "profile's 5,000-sequence budget; the cpu profile's smaller budget has its own keys below). A target is "
        "`met` or `MISSED` only for a run of a clean commit in this checkout's history; other runs are shown as "
        "`not counted`, with the reason:",
        "",
        markdown_table(targets).rstrip("\n"),
        *extra_lines,
        "",
        "<details><summary>Every headline figure of this run</summary>",
        "",
        "| key | value |",
        "| --- | --- |",
        figures,
        "",
        "</details>",
        END,
    ])


def _targets_for(headline: dict) -> list:
    """The TARGETS rows ``target_table`` shows for this run, in its order."""
    return [t for t in TARGETS if not t.profile or t.profile == headline.get("profile")]


def update_readme(readme: Path, headline: dict, extra_runs: dict[str, dict] | None = None,
                  repo: str | Path | None = None) -> bool:
    """Replace the README's results section; False (README untouched) when its markers are missing.

    ``repo`` defaults to the README's folder (the checkout whose HEAD the runs are placed against).
    """
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return False
    repo = Path(readme).resolve().parent if repo is None else repo
    write_text_atomic(readme, text[:start] + results_block(headline, extra_runs, repo) + text[end + len(END):])
    return True
