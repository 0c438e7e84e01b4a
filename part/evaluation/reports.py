"""Reports of evaluation results: Table 1 and Table 4 of PART as Markdown, checks, files on disk.

Zhang et al., ICML 2024: Table 1 (natural, PGD-20, MMA, AA; mean +- std over runs, one row per
method) and Table 4 (accuracy per corruption type at severity 1, after Hendrycks and Dietterich,
ICLR 2019). Results are the dicts `part.evaluation.job.evaluate_checkpoint` writes to eval.json; results
with the same label (e.g. three seeds of PART) form one row.

    python -m part.evaluation.reports RUN_OR_EVAL_DIR_OR_JSON... [--baseline AT] [--out DIR]
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Sequence

from part.evaluation.corruptions import CORRUPTIONS, title
from part.experiments import results_by_experiment
from part.runs import EvalDir, RunDir

TABLE1 = (("clean", "Natural"), ("pgd20", "PGD-20"), ("mma", "MMA"), ("aa", "AA"))
Table = tuple[list[str], list[list[str]]]


def load_results(paths: Sequence[str | Path]) -> list[dict]:
    """eval.json files, folders holding one, or run folders (all RUN/eval/*/eval.json of the latest evaluated
    epoch); the results of one checkpoint are merged into one (see `merge`)."""
    results = []
    for p in map(Path, paths):
        held = EvalDir.holding(p)
        if p.is_file() or held is not None:
            file = p if p.is_file() else held.results_path
            result = json.loads(file.read_text())
            owner = file.parent.parent.parent  # RUN/eval/NAME/eval.json
            if RunDir(owner).exists():
                result["run_dir"] = str(owner)
            results.append(result)
            continue
        listed = RunDir(p).eval_reports()
        problems = [problem for _, _, problem in listed if problem]
        if problems:
            raise ValueError(f"{p}: " + "; ".join(problems))
        found = [report for _, report, _ in listed]
        if not found:
            raise FileNotFoundError(f"no evaluation results in {p}: expected an {EvalDir.RESULTS} file, a folder "
                                    "holding one, or a run folder with evaluations (run `part eval` first)")
        last = max(r.get("epoch") or 0 for r in found)
        results += [{**r, "run_dir": str(p)} for r in found if (r.get("epoch") or 0) == last]
    return merge(results)


def merge(results: Sequence[dict]) -> list[dict]:
    """One result per checkpoint: its evaluations together (e.g. PGD on the whole test set, AutoAttack on
    1000 images, the checks); an attack found in several comes from the one on the most images."""
    merged: dict[str, dict] = {}
    for r in results:
        key = r.get("checkpoint_sha256") or str(id(r))
        if key not in merged:
            merged[key] = {**r, "attacks": dict(r.get("attacks", {}))}
            continue
        m = merged[key]
        for name, rec in r.get("attacks", {}).items():
            old = m["attacks"].get(name)
            if old is None or (rec.get("n") or 0) > (old.get("n") or 0):
                m["attacks"][name] = rec
                if name == "checks":
                    m["surrogate"] = r.get("surrogate")
        m["n"] = max(m.get("n") or 0, r.get("n") or 0)
    return list(merged.values())


def images_line(results: Sequence[dict]) -> str:
    """'10000 test images per model (Natural, PGD-20); 1000 (AA)': how many images each attack saw (the
    per-pixel -map attacks say it in their own table)."""
    by_n: dict[int, list[str]] = {}
    for r in results:
        for name, rec in r.get("attacks", {}).items():
            if "map" in rec:
                continue
            n = rec.get("n") or r.get("n")
            if rec.get("accuracy") is not None and heading(name) not in by_n.setdefault(n, []):
                by_n[n].append(heading(name))
    if len(by_n) <= 1:
        n = next(iter(by_n), None) or ", ".join(sorted({str(r.get("n")) for r in results}))
        return f"{n} test images per model"
    (n, names), *rest = sorted(by_n.items(), reverse=True)
    return f"{n} test images per model ({', '.join(names)})" + "".join(f"; {k} ({', '.join(v)})" for k, v in rest)


def group(results: Sequence[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(r.get("label") or r.get("model", "model"), []).append(r)
    return groups


def accuracies(runs: Sequence[dict], attack: str) -> list[float]:
    recs = [r.get("attacks", {}).get(attack) for r in runs]
    return [100 * rec["accuracy"] for rec in recs if rec and rec.get("accuracy") is not None]


def cell(values: Sequence[float], base: Sequence[float] | None = None) -> str:
    """'83.42 ± 0.26 (+0.84)': mean ± sample std in %, and the difference of means to a baseline."""
    if not values:
        return "–"
    mean = statistics.fmean(values)
    text = f"{mean:.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")
    if base:
        text += f" ({mean - statistics.fmean(base):+.2f})"
    return text


def mcnemar(correct_a: Sequence[int], correct_b: Sequence[int]) -> float:
    """Two-sided exact McNemar p-value of two models on the same images: could the images only one of them
    gets right have split this way by chance? (a binomial test on the discordant pairs)."""
    from scipy.stats import binomtest

    if len(correct_a) != len(correct_b):
        raise ValueError(f"the two results cover {len(correct_a)} and {len(correct_b)} images; compare the same images")
    only_a = sum(1 for x, y in zip(correct_a, correct_b) if x and not y)
    only_b = sum(1 for x, y in zip(correct_a, correct_b) if y and not x)
    return binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0


def paired_difference(correct_a: Sequence[int], correct_b: Sequence[int]) -> dict:
    """a minus b on the same images: the difference in points, the exact McNemar p, and the half-width of the
    95 % interval of the paired difference (Bonett and Price, 2012: the Wald interval with one pseudo-image
    added to each discordant count, so no discordant images still gives an honest width, never +-0)."""
    import math

    p = mcnemar(correct_a, correct_b)  # checks the lengths
    n = len(correct_a)
    only_a = sum(1 for x, y in zip(correct_a, correct_b) if x and not y)
    only_b = sum(1 for x, y in zip(correct_a, correct_b) if y and not x)
    u, v = (only_a + 1) / (n + 2), (only_b + 1) / (n + 2)
    half = 1.96 * math.sqrt(max(u + v - (u - v) ** 2, 0.0) / (n + 2))
    return {"n": n, "delta_points": 100 * (only_a - only_b) / n if n else 0.0, "p": p, "ci95_points": 100 * half,
            "only_a": only_a, "only_b": only_b}


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def difference_text(diff: dict) -> str:
    """'+1.20 (p = 0.004, n = 1000)'; where p >= 0.05 what the test can and cannot say, never a bare 'p = 1.00':
    '+0.10: no detectable difference (±0.84 points at 95 %, p = 0.81, n = 1000)'."""
    if diff["p"] < 0.05:
        return f"{diff['delta_points']:+.2f} ({p_text(diff['p'])}, n = {diff['n']})"
    return (f"{diff['delta_points']:+.2f}: no detectable difference (±{diff['ci95_points']:.2f} points at 95 %, "
            f"{p_text(diff['p'])}, n = {diff['n']})")


def paired_change(a: Sequence[float | None], b: Sequence[float | None]) -> dict:
    """Per-image values a minus b (e.g. two runs' CAM energy on the object, image by image): the median
    paired difference, how many images go each way, and the exact two-sided sign test on those counts, whose
    direction is the median's by construction (a mean near zero with a rank test beside it can show '+0.000'
    where most images went down). Images missing in either (None: an all-zero CAM) are counted, not dropped
    silently."""
    from scipy.stats import binomtest

    if len(a) != len(b):
        raise ValueError(f"the two results cover {len(a)} and {len(b)} images; compare the same images")
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    diffs = sorted(x - y for x, y in pairs)
    higher, lower = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return {"n": len(pairs), "left_out": len(a) - len(pairs), "median": statistics.median(diffs) if diffs else None,
            "mean": statistics.fmean(diffs) if diffs else None, "higher": higher, "lower": lower,
            "p": binomtest(higher, higher + lower, 0.5).pvalue if higher + lower else 1.0}


def change_text(change: dict, digits: int = 3) -> str:
    """'-0.012 median (lower on 5800, higher on 4100 of 9988 images; sign test p < 0.001; 12 all-zero maps left out)'."""
    if change["median"] is None:
        return "–"
    left = f"; {change['left_out']} image(s) without a value in either left out" if change["left_out"] else ""
    return (f"{change['median']:+.{digits}f} median (lower on {change['lower']}, higher on {change['higher']} of "
            f"{change['n']} images; sign test {p_text(change['p'])}{left})")


def baselines(groups: dict, baseline: str | None) -> dict[str, str]:
    """Method label -> the label it is compared with. 'AT': every other method against AT;
    'PART=AT,PART-T=TRADES': each named method against its own baseline."""
    if not baseline:
        return {}
    if "=" not in baseline:
        base = baseline.strip()
        pairs, names = {label: base for label in groups if label != base}, [base]
    else:
        pairs = {}
        for item in baseline.split(","):
            method, sep, base = (part.strip() for part in item.partition("="))
            if not (sep and method and base):
                raise ValueError(f"baseline '{item}' is not accepted; give a method label (AT) or "
                                 "METHOD=BASELINE pairs (PART=AT,PART-T=TRADES)")
            pairs[method] = base
        names = [*pairs, *pairs.values()]
    for name in names:
        if name not in groups:
            raise ValueError(f"baseline '{name}' is not among the results; accepted: {', '.join(groups)}")
    return pairs


def method_summary(results: Sequence[dict], attacks: Sequence[str],
                   base_of: dict[str, str] | None = None) -> list[dict]:
    """Table 1 as numbers: per method label, per attack the mean and sample std (%) over its runs, how many
    runs hold it, and the difference of means to the label's baseline (`base_of`: label -> baseline label)."""
    groups, base_of = group(results), base_of or {}
    out = []
    for label, runs in groups.items():
        base = groups.get(base_of.get(label, ""))
        cells = {}
        for a in attacks:
            values = accuracies(runs, a)
            if not values:
                continue
            mean = statistics.fmean(values)
            base_values = accuracies(base, a) if base else []
            cells[a] = {"mean": mean, "std": statistics.stdev(values) if len(values) > 1 else None,
                        "runs": len(values), "delta": mean - statistics.fmean(base_values) if base_values else None}
        out.append({"label": label, "baseline": base_of.get(label) if base else None, "runs": len(runs),
                    "dataset": ", ".join(sorted({str(r.get("dataset", "")) for r in runs})), "attacks": cells})
    return out


def accuracy_rows(results: Sequence[dict], columns: Sequence[tuple[str, str]] = TABLE1,
                  baseline: str | None = None) -> Table:
    """Table 1: one row per label; a column per (attack, heading); differences to each one's baseline.

    A cell averaged over fewer runs than its row has says so ('[1/2 runs]')."""
    groups = group(results)
    base_of = baselines(groups, baseline)
    header = ["Dataset", "Method", "Runs"] + [h for _, h in columns]
    rows = []
    for label, runs in groups.items():
        datasets = ", ".join(sorted({str(r.get("dataset", "")) for r in runs}))
        base = groups.get(base_of.get(label, ""))
        cells = []
        for a, _ in columns:
            values = accuracies(runs, a)
            text = cell(values, accuracies(base, a) if base else None)
            cells.append(text + (f" [{len(values)}/{len(runs)} runs]" if 0 < len(values) < len(runs) else ""))
        rows.append([datasets, label, str(len(runs))] + cells)
    return header, rows


def attack_columns(results: Sequence[dict]) -> list[tuple[str, str]]:
    """Every attack with one accuracy number (clean, fgsm, pgd<K>, mma<K>, aa, corruptions), in order."""
    names: list[str] = []
    for r in results:
        names += [a for a, rec in r.get("attacks", {}).items() if rec.get("accuracy") is not None and a not in names]
    return [(a, heading(a)) for a in names]


def heading(attack: str) -> str:
    """Natural, PGD-20, MMA, ...; 'pgd20-map@RUN' -> 'PGD-20 map (RUN)': the attack with RUN's eps-maps."""
    base, at, source = attack.partition("@")
    if base.endswith("-map"):
        return f"{heading(base[:-4])} map" + (f" ({source})" if at else "")
    fixed = {"clean": "Natural", "fgsm": "FGSM", "mma": "MMA", "aa": "AA", "corruptions": "Corruptions (mean)"}
    if attack in fixed:
        return fixed[attack]
    return attack[:3].upper() + "-" + attack[3:] if attack[:3] in ("pgd", "mma") else attack


def corruption_rows(results: Sequence[dict], severity: int | None = 1, by: str = "corruption") -> Table:
    """Table 4: accuracy per corruption type at `severity` (None: mean over severities), plus a Mean.

    by="corruption" puts types in rows and methods in columns, as the paper; by="model" transposes.
    """
    groups = {k: v for k, v in group(results).items() if any("corruptions" in r.get("attacks", {}) for r in v)}
    table = {label: {name: _corruption_acc(runs, name, severity) for name in CORRUPTIONS}
             for label, runs in groups.items()}
    for label in table:
        per_run = [statistics.fmean(col) for col in zip(*table[label].values())] if table[label] else []
        table[label]["mean"] = per_run
    names = list(CORRUPTIONS) + ["mean"]
    names_h = [title(n) if n != "mean" else "Mean" for n in names]
    if by == "model":
        return ["Method"] + names_h, [[label] + [cell(table[label][n]) for n in names] for label in table]
    if by != "corruption":
        raise ValueError(f"by must be 'corruption' or 'model', got '{by}'")
    return ["Corruption"] + list(table), [[h] + [cell(table[label][n]) for label in table]
                                          for n, h in zip(names, names_h)]


def corruption_sources(results: Sequence[dict]) -> list[str]:
    """Where each result's corruptions came from, when read from files: the folder, and what was found."""
    lines = []
    for r in results:
        p = r.get("attacks", {}).get("corruptions", {}).get("params", {})
        if p.get("source") == "files":
            missing = f"; missing: {', '.join(p['missing'])}" if p.get("missing") else ""
            lines.append(f"{r.get('label')}: corruptions read from `{p['root']}` ({p['layout']}), "
                         f"{len(p['found'])} of {len(p['found']) + len(p.get('missing', []))} found{missing}.")
    return lines


def _corruption_acc(runs: Sequence[dict], name: str, severity: int | None) -> list[float]:
    out = []
    for r in runs:
        rec = r.get("attacks", {}).get("corruptions")
        if rec and name in rec.get("types", {}):
            accs, sev = rec["types"][name]["accuracy"], rec["severities"]
            if severity is None:
                out.append(100 * statistics.fmean(accs))
            elif severity in sev:
                out.append(100 * accs[sev.index(severity)])
    return out


def map_rows(results: Sequence[dict]) -> Table:
    """One row per model and -map attack: whose maps, their recipe and budgets, accuracy."""
    header = ["Method", "Attack", "Maps of", "Recipe", "eps / eps_low (/255)", "Mean budget (/255)",
              "Full-eps pixels (%)", "Images", "Accuracy (%)"]
    rows = []
    for r in results:
        for name, rec in r.get("attacks", {}).items():
            m = rec.get("map")
            if m is None or rec.get("accuracy") is None:
                continue
            rows.append([str(r.get("label")), heading(name.split("@")[0]), f"{m.get('map_run')} epoch {m.get('map_epoch')}",
                         str(m.get("recipe")), f"{255 * m['eps']:.2f} / {255 * m['eps_low']:.2f}",
                         f"{m['mean_budget_255']:.2f}", f"{100 * m['full_eps_fraction']:.1f}", str(rec.get("n")),
                         f"{100 * rec['accuracy']:.2f}"])
    return header, rows


def sweep_rows(results: Sequence[dict]) -> Table:
    """Robustness vs eps: a row per model, sweep attack (part.evaluation.eps_sweep) and eps."""
    header = ["Method", "Run", "Epoch", "Attack", "eps", "eps (/255)", "Accuracy (%)", "Images"]
    rows = []
    for r in results:
        for name, rec in r.get("attacks", {}).items():
            if not rec.get("sweep"):
                continue
            for eps, acc in zip(rec.get("eps", []), rec.get("accuracies", [])):
                rows.append([str(r.get("label")), Path(str(r.get("run") or "")).name or "–", str(r.get("epoch")),
                             heading(name.split("@")[0]), f"{eps:g}", f"{255 * eps:.2f}", f"{100 * acc:.2f}",
                             str(rec.get("n"))])
    return header, rows


def placement_rows(results: Sequence[dict]) -> Table:
    """One row per model, placement attack and case (part.evaluation.placement): where the budget went, the
    accuracy, and the paired difference to the PART-like case with its exact McNemar p."""
    header = ["Method", "Attack", "Case", "eps on / off the object (/255)", "Mean budget (/255)", "Images",
              "Accuracy (%)", "Minus PART-like (points)", "McNemar p", "Share of the full attack's loss"]
    rows = []
    for r in results:
        for name, rec in r.get("attacks", {}).items():
            if rec.get("kind") != "placement":
                continue
            for case, c in rec["cases"].items():
                share = "–" if c.get("share_of_full_loss") is None else f"{100 * c['share_of_full_loss']:.0f} %"
                rows.append([str(r.get("label")), f"{name} (eps_low {255 * rec['eps_low']:.2f}/255)", case,
                             f"{255 * c['on_object']:.2f} / {255 * c['off_object']:.2f}",
                             f"{255 * c['mean_budget']:.2f}", str(rec["n"]), f"{100 * c['accuracy']:.2f}",
                             "reference" if "p" not in c else f"{c['delta_points']:+.2f}", _p_text(c), share])
    return header, rows


def _p_text(c: dict) -> str:
    """'p = 3e-06', or at p >= 0.05 what the test can and cannot say: the 95 % interval of the difference."""
    if "p" not in c:
        return "–"
    if c["p"] < 0.05:
        return f"p = {c['p']:.2g}"
    return f"{p_text(c['p'])}: no detectable difference (±{c['ci95_points']:.2f} points at 95 %)"


def cam_rows(results: Sequence[dict]) -> Table:
    """One row per model with alignment or faithfulness results (part.evaluation.faithfulness): the CAM's energy on
    the object against the object's share of the pixels (what an even map scores), and ROAD (higher
    combined = more faithful; MoRF/LeRF are changes of the true class's probability)."""
    header = ["Method", "Run", "Epoch", "CAM", "Images (alignment)", "Energy on object", "Object share (even map)",
              "Images (ROAD)", "ROAD combined", "ROAD MoRF", "ROAD LeRF", "CAM x image change"]
    rows = []
    for r in results:
        al, fa = (r.get("attacks", {}).get(k) for k in ("alignment", "faithfulness"))
        if al is None and fa is None:
            continue
        rec = al or fa
        cam = "+".join(rec.get("cam_methods", [])) + f" ({rec.get('cam_target', 'label')})" + \
            (f" at {rec['cam_layer']}" if rec.get("cam_layer") else "")
        energy = "no object mask" if al is not None and al.get("energy") is None else _num(al, "energy")
        rows.append([str(r.get("label")), Path(str(r.get("run") or "")).name or "–", str(r.get("epoch")), cam,
                     str(al["n"]) if al else "–", energy, _num(al, "object_fraction"), str(fa["n"]) if fa else "–",
                     _num(fa, "road_combined"), _num(fa, "road_morf"), _num(fa, "road_lerf"),
                     _num(fa, "cam_mult_change")])
    return header, rows


def cam_class_rows(results: Sequence[dict]) -> Table:
    """Energy on the object per class (rows) and model (columns), with the object share in brackets."""
    recs = [(f"{r.get('label')} ({Path(str(r.get('run') or '')).name or r.get('epoch')})", r["attacks"]["alignment"])
            for r in results if (r.get("attacks", {}).get("alignment") or {}).get("per_class")]
    classes = list(dict.fromkeys(c for _, rec in recs for c in rec["per_class"]))
    rows = [[c] + [f"{_num(rec['per_class'].get(c), 'energy')} ({_num(rec['per_class'].get(c), 'object_fraction')})"
                   for _, rec in recs] for c in classes]
    return ["Class"] + [name for name, _ in recs], rows


def _num(rec: dict | None, key: str) -> str:
    value = (rec or {}).get(key)
    return "–" if value is None else f"{value:.3f}"


def checks_rows(result: dict) -> Table:
    rec = result.get("attacks", {}).get("checks")
    rows = [[c["title"], {True: "pass", False: "FAIL", None: "skipped"}[c["passed"]], c["detail"]]
            for c in (rec or {}).get("checks", [])]
    return ["Check", "Verdict", "Numbers"], rows


def markdown(table: Table) -> str:
    header, rows = table
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def table1(results: Sequence[dict], baseline: str | None = None) -> str:
    """Table 1 as Markdown: natural, PGD-20, MMA, AA (%), mean ± std per method, (±diff) to `baseline`."""
    return markdown(accuracy_rows(results, TABLE1, baseline))


def corruption_table(results: Sequence[dict], severity: int | None = 1, by: str = "corruption") -> str:
    return markdown(corruption_rows(results, severity, by))


def markdown_report(results: Sequence[dict], baseline: str | None = None) -> str:
    """The report of `results`; runs of several experiments (part.experiments) get a section each, so no table
    pools or compares runs of different experiments."""
    groups = results_by_experiment(results)
    if len(groups) == 1:
        return _markdown_report(groups[0][1], baseline)
    parts = [f"# Robustness evaluation\n\nThese runs form {len(groups)} experiments; runs are compared only "
             "inside one (same data, model, training length and subset, eps, attack, optimiser and precision).\n"]
    for exp, found in groups:
        section = _markdown_report(found, _baseline_in(found, baseline)).replace("\n## ", "\n### ")
        parts.append(section.replace("# Robustness evaluation", f"\n## Experiment {exp.id}\n\n{exp.description}.", 1))
    return "".join(parts)


def _baseline_in(results: Sequence[dict], baseline: str | None) -> str | None:
    """`baseline` where the experiment has every method it names, else None (no differences there)."""
    try:
        baselines(group(results), baseline)
    except ValueError:
        return None
    return baseline


def _markdown_report(results: Sequence[dict], baseline: str | None = None) -> str:
    eps = ", ".join(sorted({str(r.get("eps_text", r.get("eps"))) for r in results}))
    parts = [f"# Robustness evaluation\n\nL-inf eps = {eps}; {images_line(results)}.\n\n",
             "## Table 1 (accuracy %, mean ± std over runs)\n", table1(results, baseline)]
    extra = attack_columns(results)
    if [a for a, _ in extra] != [a for a, _ in TABLE1]:
        parts += ["\n## All attacks (accuracy %)\n", markdown(accuracy_rows(results, extra, baseline))]
    if any("corruptions" in r.get("attacks", {}) for r in results):
        parts += ["\n## Corruptions at severity 1 (accuracy %, Table 4)\n", corruption_table(results, 1),
                  "\n## Corruptions, mean over severities 1-5 (accuracy %)\n", corruption_table(results, None)]
        parts += [f"\n{line}\n" for line in corruption_sources(results)]
    sweeps = sweep_rows(results)
    if sweeps[1]:
        parts += ["\n## Robustness vs eps (accuracy %, the same images at each eps)\n", markdown(sweeps)]
    maps = map_rows(results)
    if maps[1]:
        parts += ["\n## Per-pixel threat model (each test image's own eps-map, accuracy %)\n", markdown(maps)]
    placed = placement_rows(results)
    if placed[1]:
        fractions = ", ".join(sorted({f"{100 * rec['object_fraction']:.1f} %" for r in results
                                      for rec in r.get("attacks", {}).values() if rec.get("kind") == "placement"}))
        parts += ["\n## Placement of the budget (PGD-20, same images and random start in every case; object: "
                  f"{fractions} of the pixels)\n", markdown(placed)]
    cams = cam_rows(results)
    if cams[1]:
        parts += ["\n## CAM alignment and faithfulness (the run's own CAMs, part.evaluation.faithfulness)\n", markdown(cams)]
        parts += [f"\n{r.get('label')}: {r['attacks']['alignment']['note']}.\n" for r in results
                  if (r.get("attacks", {}).get("alignment") or {}).get("note")]
        per_class = cam_class_rows(results)
        if per_class[1]:
            parts += ["\n## Energy on the object per class (object share in brackets)\n", markdown(per_class)]
    for r in results:
        if "checks" in r.get("attacks", {}):
            name = f"{r.get('label')} epoch {r.get('epoch')} ({Path(str(r.get('checkpoint'))).name})"
            parts += [f"\n## Gradient-masking checks: {name}\n", markdown(checks_rows(r))]
    return "".join(parts)
