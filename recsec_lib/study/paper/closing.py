"""Limitations and reproduction: the scale against the papers', the machine, what the intervals include, the commands."""

from __future__ import annotations

from recsec_lib.study.paper.model import NOT_MEASURED, Evidence, Sentence, Writer

# ---- limitations and reproduction ---------------------------------------------------------------------------


def limitations(ev: Evidence, w: Writer, params: dict, environment: dict, device: str) -> list[Sentence]:
    out = []
    attack, gro = ev.stage("attack").get("settings") or {}, ev.stage("gro").get("settings") or {}
    profile = ev.headline.get("profile", "?")
    if attack and ev.has("profile", "attack_budget_sequences"):
        text = (f"Scale: this is the {w.h('profile', 'text')} profile; the attack stage's main budget is "
                f"{w.h('attack_budget_sequences', 'count')} sequences where Yue et al. use 5,000 (published)")
        if all(key in gro for key in ("attack_sequences", "attack_seq_len", "epochs")):
            text += (f", the defense matrix attacks with {w.s('gro', 'settings.attack_sequences', 'count')} × "
                     f"{w.s('gro', 'settings.attack_seq_len', 'count')} queries, and GRO is "
                     + ("trained from scratch" if gro.get("from_scratch") else "fine-tuned from the undefended "
                                                                               "target")
                     + f" for at most {w.s('gro', 'settings.epochs', 'count')} epochs where the authors train "
                     "from scratch for 1,000 epochs (published)")
        out.append(w.sentence(text + "."))
    else:
        out.append(w.plain(f"Scale: the {profile} profile; the attack stage's scale is {NOT_MEASURED}."))
    where = environment.get("platform", "an unrecorded platform")
    out.append(w.plain(
        ("No GPU run: " if device != "cuda" else "GPU run: ") + f"the study ran with device '{params.get('device', device)}'"
        + (f" (resolved to {device} where the report ran)" if params.get("device") in (None, "auto") else "")
        + f" on {where}; times in this report are that machine's."))
    seeds = gro.get("attack_seeds")
    out.append(w.plain(
        "Intervals are 95% bootstrap intervals over test users"
        + (f", and over the {seeds} attack seeds of the defense matrix" if seeds else "")
        + "; the attack stage's use one attack seed, the false-positive rates are exact binomial intervals over "
          "benign accounts, and none includes training noise: each target is trained once, with one seed."))
    mark = ev.stage("watermark").get("settings") or {}
    if all(key in mark for key in ("attack_sequences", "attack_seq_len", "surrogate_epochs", "independent_epochs")):
        out.append(w.sentence(
            f"Verification: one watermark key and one embedding; the stolen copies come from "
            f"{w.s('watermark', 'settings.attack_sequences', 'count')} × "
            f"{w.s('watermark', 'settings.attack_seq_len', 'count')} queries with surrogates of "
            f"{w.s('watermark', 'settings.surrogate_epochs', 'count')} epoch{_s(mark['surrogate_epochs'])}, and the "
            f"independent models are trained for {w.s('watermark', 'settings.independent_epochs', 'count')} "
            f"epoch{_s(mark['independent_epochs'])}, weaker than the target; each "
            "p-value is exact for its suspect, and no interval covers other keys or embedding seeds."))
    return out


def _s(count) -> str:
    """The plural ending of a count's noun."""
    return "" if count == 1 else "s"


def reproduction(ev: Evidence, params: dict, environment: dict) -> list[str]:
    """Markdown lines: the command, the commit(s), the machine."""
    common = params.get("common", {})
    command = ["./run_all.sh", "--profile", str(common.get("profile", ev.headline.get("profile", "cpu")))]
    if common.get("dataset", "ml-1m") != "ml-1m":
        command += ["--dataset", str(common["dataset"])]
    if common.get("seed", 42) != 42:
        command += ["--seed", str(common["seed"])]
    if common.get("device") not in (None, "auto"):
        command += ["--device", str(common["device"])]
    for name, value in (params.get("overrides") or {}).items():
        command += ["-p", str(name), str(value)]
    commit = str(ev.headline.get("git_commit", "unknown"))
    started = str(environment.get("git_commit", commit))
    lines = [f"- Commands: `git checkout {commit.removesuffix('-dirty')}`, then `{' '.join(command)}` "
             "(`--publish` copies the run into `results/`)."]
    if commit.endswith("-dirty"):
        lines.append("- The commit had local changes when the run was stamped (`-dirty`): the code that ran is "
                     "not exactly that commit.")
    lines.append(f"- Commit: `{commit}` (stamped {ev.headline.get('date', '?')})"
                 + (f"; the run was started at `{started}` and resumed at this commit." if started != commit else "."))
    packages = environment.get("packages") or {}
    versions = ", ".join(f"{name} {version}" for name, version in packages.items() if version)
    lines.append(f"- Machine: {environment.get('platform', 'not recorded')}, Python "
                 f"{environment.get('python', '?')}; {versions}.")
    return lines
