"""Report stage: the study as a short paper, then every stage's tables and figures, from the run folder.

It reads the run folder and writes ``report/`` for the report notebook, which
``run_all.sh`` exports to ``<run>/report.html`` (and ``report_nocode.html``,
the page a reader opens first):

* ``paper.html`` / ``paper.json`` — the paper (``study.paper``): abstract, one
  section per question, verdict table, limitations, reproduction; the JSON
  keeps every sentence with the facts it states, so each claim can be checked
  against its source;
* ``verdicts.csv`` and the other tables the paper shows (``paper_<name>.csv``);
* ``attack_intervals.csv`` — the attack stage's main-budget surrogates scored
  again per test user, for 95% intervals of Agr@10 and NDCG@10 (the attack
  stage saves only the means);
* the appendix's tables (quality, targets, timings, published rows) and
  ``findings.md`` (the paper's sentences as a list, for tools);
* ``compare.md`` / ``compare.csv`` (issue #7): the top-k lists of the
  undefended target, its surrogate, and the GRO target side by side on themed
  histories and a few real test users (a model the run lacks is named, not an error).

Before writing the paper it merges its own headline keys into
``headline.json``: ``attack_main_*`` (the strongest generator at the main
budget, with intervals) and ``prevention_*`` (each prevention family's
representative and whether any defense meets the target), so that every
number of the abstract is a headline key. The only models it runs are the
saved checkpoints (the intervals and the side-by-side lists).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from recsec_lib.common.files import write_csv_atomic, write_text_atomic
from recsec_lib.common.settings import SettingsBase
from recsec_lib.study import paper, report, runs
from recsec_lib.common.tables import markdown_table
from recsec_lib.study.stages.context import StudyContext


@dataclass(frozen=True)
class Settings(SettingsBase):
    figure_glob: str = "*/*.png"  # which figures of the run the report shows
    compare_k: int = 10  # length of each list in the side-by-side comparison
    compare_users: int = 2  # real test users added to the themed histories
    compare_history_length: int = 5  # movies in each themed history
    bootstrap_replicates: int = 1000  # replicates of the attack's 95% intervals over test users

    PROFILES = {"smoke": {}, "cpu": {}, "full": {}}  # the report reads what the run holds, at every scale


def run(ctx: StudyContext, settings: Settings) -> dict:
    with runs.stage_timer() as timing:
        out = ctx.stage_dir("report")
        headline_path = ctx.run_dir / "headline.json"
        stage_metrics = report.collect_stage_metrics(ctx.run_dir)
        intervals, interval_rows = attack_intervals(ctx, stage_metrics, settings.bootstrap_replicates)
        save_table(interval_rows, out / "attack_intervals")
        headline = runs.read_json(headline_path) if headline_path.exists() else {}
        evidence = paper.Evidence(headline, stage_metrics, ctx.run_dir)
        own = {**intervals, **paper.prevention_keys(evidence)}
        if own:
            runs.merge_headline(headline_path, own)
            headline = runs.read_json(headline_path)
        evidence = paper.Evidence(headline, stage_metrics, ctx.run_dir)
        document = paper.build_paper(evidence, params=_read(ctx.run_dir / "params.json"),
                                     environment=_read(ctx.run_dir / "environment.json"),
                                     device=str(ctx.torch_device()))
        for name, table in document.tables.items():
            save_table(table, out / ("verdicts" if name == "verdicts" else f"paper_{name}"))
        runs.write_text_atomic(out / "paper.html", paper.paper_html(document, ctx.run_dir, headline))
        runs.write_json_atomic(out / "paper.json", paper_record(document))
        tables = {
            "quality": report.quality_table(stage_metrics),
            "targets": report.target_table(headline),
            "timings": report.timing_table(stage_metrics, headline),
            "published_quality": report.PUBLISHED_QUALITY,
            "published_attack": report.PUBLISHED_ATTACK,
            "published_gro": report.PUBLISHED_GRO,
        }
        for name, table in tables.items():
            save_table(table, out / name)
        lines = [sentence.text for sentence in document.sentences()]
        runs.write_text_atomic(out / "findings.md", "".join(f"- {line}\n" for line in lines))
        figures = sorted(str(p.relative_to(ctx.run_dir)) for p in ctx.run_dir.glob(settings.figure_glob)
                         if p.parent.name != "report")
        comparison = build_comparison(ctx, settings, stage_metrics, out)
        sections = [asdict(section) for section in report.present_sections(ctx.run_dir)]
    metrics = {"findings": lines, "figures": figures, "tables": sorted(tables), "sections": sections,
               "paper": {"figures": document.figures(), "questions": [q.key for q, _ in document.sections],
                         "not_measured": [q.key for q, a in document.sections if not a.measured]},
               "comparison": comparison, **timing}
    runs.write_stage_metrics(ctx.run_dir, "report", metrics, headline=own or None)
    return metrics


def _read(path: Path) -> dict:
    return runs.read_json(path) if path.is_file() else {}


def paper_record(document: paper.Paper) -> dict:
    """The paper's sentences with their facts (JSON), section by section."""
    def sentences(items):
        return [{"text": s.text, "facts": [asdict(f) for f in s.facts]} for s in items]

    return {"title": document.title, "abstract": sentences(document.abstract),
            "sections": [{"key": q.key, "title": q.title, "measured": a.measured, "figure": a.figure,
                          "table": a.table, "sentences": sentences(a.sentences), "notes": sentences(a.notes)}
                         for q, a in document.sections],
            "limitations": sentences(document.limitations), "reproduction": document.reproduction}


# ---- 95% intervals of the attack stage's main figures ----------------------------------------------

def attack_intervals(ctx: StudyContext, stage_metrics: dict[str, dict], replicates: int = 1000
                     ) -> tuple[dict, pd.DataFrame]:
    """The attack stage's main-budget surrogates scored per test user: Agr@10 and NDCG@10 with 95% intervals.

    The attack stage saves each surrogate's mean figures only; its checkpoints
    let the report score them again per user (the same lists as
    ``attack.agreement``: full ranking, seen items excluded) and bootstrap over
    test users (one attack seed: the interval does not include the attack's own
    randomness). Returns (headline keys ``attack_main_*`` for the generator of
    the highest Agr@10, one row per generator); ({}, empty) without checkpoints.
    """
    from recsec_lib.recommend.checkpoints import load_checkpoint
    from recsec_lib.recommend.evaluation import ranked_lists
    from recsec_lib.recommend.intervals import bootstrap_interval
    from recsec_lib.recommend.metrics import per_user_agreement, per_user_hits
    from recsec_lib.study.stages.attack import surrogate_file

    columns = ["generator", "budget_sequences", "users", "agr10", "agr10_low", "agr10_high", "surrogate_ndcg10",
               "surrogate_ndcg10_low", "surrogate_ndcg10_high", "target_ndcg10", "target_ndcg10_low",
               "target_ndcg10_high", "checkpoint"]
    attack = stage_metrics.get("attack")
    budget = main_attack_budget(attack) if attack else None
    target_name = target_model_of(stage_metrics)
    target_path = ctx.run_dir / "train" / f"{target_name}.pt"
    if budget is None or not target_path.is_file():
        return {}, pd.DataFrame(columns=columns)
    found = {generator: ctx.run_dir / "attack" / surrogate_file(target_name, target_name, generator, budget)
             for generator in attack.get("settings", {}).get("generators", [])}
    found = {generator: path for generator, path in found.items() if path.is_file()}
    if not found:
        return {}, pd.DataFrame(columns=columns)
    device = ctx.torch_device()
    dataset = ctx.load_dataset()
    inputs, targets = dataset.split("test")
    target_model = load_checkpoint(target_path, dataset=dataset, device=device).model
    target_lists, _ = ranked_lists(target_model, inputs, 10, device)  # [U, 10]
    _, target_ndcg = per_user_hits(target_lists, targets)  # [U]
    target = bootstrap_interval(target_ndcg, kind="mean", replicates=replicates, seed=ctx.seed)
    rows = []
    for generator, path in found.items():
        surrogate = load_checkpoint(path, dataset=dataset, device=device).model
        lists, _ = ranked_lists(surrogate, inputs, 10, device)  # [U, 10]
        agr = bootstrap_interval(per_user_agreement(target_lists, lists, 10), kind="mean", replicates=replicates,
                                 seed=ctx.seed)
        ndcg = bootstrap_interval(per_user_hits(lists, targets)[1], kind="mean", replicates=replicates,
                                  seed=ctx.seed)
        rows.append({"generator": generator, "budget_sequences": budget, "users": len(targets),
                     **agr.as_dict("agr10"), **ndcg.as_dict("surrogate_ndcg10"), **target.as_dict("target_ndcg10"),
                     "checkpoint": str(path.relative_to(ctx.run_dir))})
    frame = pd.DataFrame(rows, columns=columns)
    best = frame.loc[frame["agr10"].idxmax()]
    keys = {"attack_main_generator": best["generator"], "attack_main_users": int(best["users"])}
    for name in ("agr10", "surrogate_ndcg10", "target_ndcg10"):
        for suffix in ("", "_low", "_high"):
            keys[f"attack_main_{name}{suffix}"] = float(best[name + suffix])
    return keys, frame


def save_table(table: pd.DataFrame, stem: Path) -> None:
    """A table as CSV (for tools) and markdown (for reading)."""
    write_csv_atomic(stem.with_suffix(".csv"), table)
    write_text_atomic(stem.with_suffix(".md"), markdown_table(table))


# ---- side-by-side recommendations (issue #7) -------------------------------------------------------

@dataclass(frozen=True)
class ComparedModel:
    """One column of the comparison: where its checkpoint should be, and why it is absent if it is."""

    label: str  # the column heading
    path: Path | None  # None when the run has no such checkpoint
    missing: str = ""  # why it is not compared (empty when path is set)


def target_model_of(stage_metrics: dict[str, dict]) -> str:
    """The architecture the study attacked and defended, as the attack (else GRO) stage recorded it.

    Read from the run rather than assumed, so a run with another target still
    pairs the right checkpoints; "sasrec" (both stages' default) when neither ran.
    """
    for stage in ("attack", "gro"):
        name = stage_metrics.get(stage, {}).get("settings", {}).get("target_model")
        if name:
            return str(name)
    return "sasrec"


def main_attack_budget(attack_metrics: dict) -> int | None:
    """The attack stage's main budget in sequences (its headline, else its largest budget), None if unknown."""
    budget = attack_metrics.get("headline", {}).get("attack_budget_sequences")
    budgets = attack_metrics.get("settings", {}).get("budgets") or []
    if budget is None and budgets:
        budget = max(budgets)
    return None if budget is None else int(budget)


def comparison_models(run_dir: Path, stage_metrics: dict[str, dict]) -> list[ComparedModel]:
    """The columns of the side-by-side recommendations, each with its checkpoint path or the reason it is missing.

    File names follow the stages that wrote them (``train/<target>.pt``, the
    attack's ``surrogate_<target>_<target>_autoregressive_<budget>.pt``, GRO's
    ``gro_lam<λ>.pt`` at its chosen λ, or at the λ it shows when none was chosen, which the label says).
    """
    from recsec_lib.gro.defenses import checkpoint_name
    from recsec_lib.study.stages.attack import surrogate_file

    run_dir = Path(run_dir)
    target = target_model_of(stage_metrics)
    wanted = [("undefended target", run_dir / "train" / f"{target}.pt", "")]

    attack = stage_metrics.get("attack")
    budget = main_attack_budget(attack) if attack else None
    if budget is None:
        wanted.append(("surrogate", None, "the attack stage has not run"))
    else:
        wanted.append(("surrogate", run_dir / "attack" / surrogate_file(target, target, "autoregressive", budget), ""))

    gro = stage_metrics.get("gro", {})
    choice = (gro.get("lambda_choices") or {}).get("keep") or {}
    lam = choice.get("lam") if choice.get("lam") is not None else choice.get("shown_lam")
    if lam is None:
        wanted.append(("GRO target", None, "the GRO stage has not run" if not gro else "the GRO stage trained no λ"))
    else:
        method = gro.get("settings", {}).get("method", "gro")
        defense = "GRO" if method == "gro" else method
        why = "chosen on validation" if choice.get("lam") is not None else f"shown: {choice.get('reason', '')}"
        wanted.append((f"{defense} target λ={lam:g} ({why})", run_dir / "gro" / checkpoint_name(lam, method), ""))
    return [_located(label, path, note, run_dir) for label, path, note in wanted]


def _located(label: str, path: Path | None, note: str, run_dir: Path) -> ComparedModel:
    """A column whose path is kept only if the file exists; otherwise the expected file is named.

    ``note`` is the reason itself when there is no path, else a hint added to "not found".
    """
    if path is not None and path.is_file():
        return ComparedModel(label, path)
    if path is None:
        return ComparedModel(label, None, note)
    reason = f"{path.relative_to(run_dir)} not found" + (f"; {note}" if note else "")
    return ComparedModel(label, None, reason)


def build_comparison(ctx: StudyContext, settings: Settings, stage_metrics: dict[str, dict], out: Path) -> dict:
    """Write compare.md / compare.csv (and the histories, compare_examples.csv); returns what was compared.

    Every model present in the run is compared; missing or unreadable ones are
    listed in the page and in the returned ``skipped``, never an error, so a
    partial run still gets its report.
    """
    from recsec_lib.recommend.compare import (checkpoint_recommender, compare_recommendations, comparison_markdown,
                                    examples_table, themed_examples, user_examples)

    columns = comparison_models(ctx.run_dir, stage_metrics)
    skipped = {c.label: c.missing for c in columns if c.path is None}
    present = [c for c in columns if c.path is not None]
    models, sources = {}, {}
    dataset = ctx.load_dataset() if present else None
    for column in present:
        try:
            _, recommend_fn = checkpoint_recommender(column.path, dataset, device=str(ctx.torch_device()))
        except (OSError, ValueError) as exc:  # a checkpoint of other data, or not a checkpoint at all
            skipped[column.label] = f"could not be loaded: {exc}"
            continue
        models[column.label] = recommend_fn
        sources[column.label] = str(column.path.relative_to(ctx.run_dir))

    notes = [f"Not shown: {label}: {why}." for label, why in skipped.items()]
    paths = {"markdown": out / "compare.md", "csv": out / "compare.csv"}
    k = settings.compare_k
    if models:
        examples = (themed_examples(dataset, length=settings.compare_history_length)
                    + user_examples(dataset, settings.compare_users, seed=ctx.seed))
        k = min(k, dataset.num_items)  # a tiny catalogue cannot fill longer lists
        frame = compare_recommendations(dataset, models, examples, k=k)
        notes.insert(0, "Columns: " + "; ".join(f"{label} (`{sources[label]}`)" for label in models) + ".")
        markdown = comparison_markdown(dataset, frame, examples, list(models), notes=notes)
        paths["examples"] = out / "compare_examples.csv"
        runs.write_text_atomic(paths["examples"], examples_table(dataset, examples).to_csv(index=False))
    else:
        examples, frame = [], pd.DataFrame(columns=["example", "rank"])
        (out / "compare_examples.csv").unlink(missing_ok=True)  # an earlier report's histories would mislead
        markdown = "\n\n".join(["# Recommendations side by side", "No model of this run could be compared.",
                                 *notes]) + "\n"
    runs.write_text_atomic(paths["csv"], frame.to_csv(index=False))
    runs.write_text_atomic(paths["markdown"], markdown)
    return {"columns": list(models), "checkpoints": sources, "skipped": skipped,
            "examples": [e.label for e in examples], "k": k,
            "files": {kind: path.name for kind, path in paths.items()}}
