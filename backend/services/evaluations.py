"""Evaluation results of several runs, shaped for the Evaluate page: Table 1 per checkpoint and per method,
each PART run against its paired baseline, per-class accuracy, corruptions, robustness vs eps.

Every number comes from the runs' eval.json files (read through part.runs.RunDir.eval_reports, which
refuses files linked out of the run) and the logic of `part report` (part.evaluation.reports: merge, method_summary,
mcnemar); nothing is recomputed with a model. Results are cached per run until one of its files changes.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import threading
from typing import Any, Sequence

from backend.api.errors import ApiError, bad_request, not_found
from backend.services import experiments
from backend.services.registry import Registry
from backend.services.run_files import checked
from part.evaluation import reports
from part.experiments import Experiment, experiment_of
from part.runs import EvalDir, RunDir, RunFolderError

CONTROL_RECIPES = ("shuffled", "uniform-mean")  # the controls of docs/results.md
TABLE1 = [a for a, _ in reports.TABLE1]
MAX_RUNS = 64
RUN_LIST = re.compile(r"\s*[A-Za-z0-9][A-Za-z0-9._-]{0,99}(\s*,\s*[A-Za-z0-9][A-Za-z0-9._-]{0,99})*\s*")


def parse_ids(text: str, what: str) -> list[str]:
    """'a,b' -> ['a', 'b'] (at most MAX_RUNS, each an id); a malformed list is refused saying what is accepted."""
    if not RUN_LIST.fullmatch(text):
        raise bad_request(f"{what} '{text[:80]}' is not accepted; give ids separated by commas (e.g. "
                          f"{'main,testbed' if what == 'experiments' else 'fmnist-at-s0,fmnist-part-s0'})")
    ids = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if len(ids) > MAX_RUNS:
        raise bad_request(f"{len(ids)} {what} asked for; the limit is {MAX_RUNS}")
    return ids


def parse_run_ids(text: str | None, registry: Registry) -> list[str]:
    """'a,b' -> ['a', 'b']; empty: every run that has an evaluation."""
    ids = parse_ids(text, "runs") if text is not None else []
    return ids or [rid for rid in registry.run_ids() if RunDir(registry.root / rid).has_evaluations()]


class EvalCache:
    """Values computed from a run's evaluation reports, kept until one of its eval.json files changes."""

    def __init__(self):
        self._lock, self._values = threading.Lock(), {}

    def get(self, run: RunDir, compute):
        stamp = run.eval_stamp()
        with self._lock:
            hit = self._values.get(str(run.path))
            if hit is not None and hit[0] == stamp:
                return hit[1]
        value = compute()
        with self._lock:
            self._values[str(run.path)] = (stamp, value)
        return value


_merged = EvalCache()


def checkpoint_results(run_id: str, run: RunDir) -> tuple[list[dict], list[str]]:
    """The run's evaluations merged per checkpoint (one result per epoch, each attack from its largest
    evaluation, as `part report` merges them), each attack record annotated with its per-class accuracy
    and a fingerprint of the images it saw, and what is wrong with each report left out; cached until an
    eval.json of the run changes."""
    return _merged.get(run, lambda: _merge(run_id, run))


def _merge(run_id: str, run: RunDir) -> tuple[list[dict], list[str]]:
    found, problems = [], []
    for name, report, problem in run.eval_reports():
        report, wrong = checked(report) if report is not None else (None, problem)
        if report is None:
            problems.append(f"eval/{name}/{EvalDir.RESULTS} is left out: {wrong or 'it cannot be read'}")
            continue
        report = {**report, "attacks": {a: _annotated(rec, report) for a, rec in (report.get("attacks") or {}).items()
                                        if isinstance(rec, dict)}}
        for rec in report["attacks"].values():
            rec["source"] = name
        report.pop("indices", None)
        report.pop("labels", None)
        found.append(report)
    merged = sorted(reports.merge(found), key=lambda r: r.get("epoch") or 0)
    for r in merged:
        r["run_id"] = run_id
        r["sources"] = sorted({rec["source"] for rec in r["attacks"].values()})
    return merged, problems


def _annotated(rec: dict, report: dict) -> dict:
    rec = dict(rec)
    labels, correct = report.get("labels") or [], rec.get("correct")
    if isinstance(correct, list) and correct and not isinstance(correct[0], list) and len(correct) == len(labels):
        rec["images"] = _fingerprint(report.get("indices") or [])
        rec["per_class"] = per_class(correct, labels, len(report.get("classes") or []) or max(labels) + 1)
    return rec


def _fingerprint(indices: Sequence[int]) -> str:
    return hashlib.sha1(json.dumps(list(indices)).encode()).hexdigest()[:16]


def per_class(correct: Sequence[int], labels: Sequence[int], classes: int) -> list[float | None]:
    """Accuracy per class (None for a class with no image)."""
    hits, totals = [0] * classes, [0] * classes
    for c, y in zip(correct, labels):
        if 0 <= y < classes:
            totals[y] += 1
            hits[y] += int(bool(c))
    return [h / t if t else None for h, t in zip(hits, totals)]


def category(config: dict) -> str:
    """'baseline' (AT, TRADES, MART), 'control' (PART with the shuffled or uniform-mean recipe) or 'PART'."""
    if not config.get("part"):
        return "baseline"
    return "control" if config.get("recipe") in CONTROL_RECIPES else "PART"


def evaluations(registry: Registry, run_ids: list[str], experiment_ids: list[str] | None = None) -> dict[str, Any]:
    """Every number of the Evaluate page for the chosen runs (or every run of the chosen experiments), grouped
    by experiment: means over seeds and paired differences are computed inside one experiment only, and a PART
    run is measured against its experiment's baseline (read even when the baseline is not among the chosen)."""
    exps, configs, problems = experiments.zoo(registry)
    known = {e.id: e for e in exps}
    for eid in experiment_ids or []:
        if eid not in known:
            raise not_found(f"experiment '{eid[:60]}' is not among the runs; experiments: {', '.join(known) or 'none'}")
    if experiment_ids:
        run_ids = [r for eid in experiment_ids for r in known[eid].runs
                   if RunDir(registry.root / r).has_evaluations()]
    results, folders, skipped = {}, {}, []
    for rid in run_ids:
        if rid in problems:
            skipped.append({"run": rid, "problem": problems[rid]})
            continue
        run = folders[rid] = registry.run(rid)  # 400 / 404 naming the problem
        try:
            results[rid], problems_of_run = checkpoint_results(rid, run)
        except (RunFolderError, OSError) as err:
            results[rid], problems_of_run = [], [str(err)]
        skipped += [{"run": rid, "problem": p} for p in problems_of_run]
    chosen = [rid for rid in run_ids if rid in results]
    rows = [_row(r, configs[rid], experiment_of(rid, exps)) for rid in chosen for r in results[rid]]
    attacks = _attack_order({a for row in rows for a in row["attacks"]})
    groups = [_experiment(e, [r for r in chosen if r in e.runs], results, registry, configs, attacks)
              for e in exps if any(r in e.runs for r in chosen)]
    newest = [results[rid][-1] for rid in chosen if results[rid]]
    eps = sorted({r.get("eps") for r in newest if r.get("eps") is not None})
    return {"runs": chosen, "reports": {rid: report_listing(folders[rid]) for rid in chosen},
            "attacks": [{"attack": a, "heading": reports.heading(a)} for a in attacks], "rows": rows,
            "experiments": groups, "methods": [m for g in groups for m in g["methods"]],
            "pairs": [p for g in groups for p in g["pairs"]],
            "classes": next((r.get("classes") for r in newest if r.get("classes")), None),
            "eps": [{"eps": e, "eps_255": round(255 * e, 3)} for e in eps],
            "images_line": reports.images_line(newest) if newest else "", "skipped": skipped}


def _experiment(exp: Experiment, chosen: list[str], results: dict[str, list[dict]], registry: Registry,
                configs: dict[str, dict], attacks: list[str]) -> dict[str, Any]:
    """One experiment's block: per arm the mean ± std over its chosen runs, each chosen PART run minus its
    baseline, and a note for every PART run that has no baseline (or more than one)."""
    newest = {rid: {**results[rid][-1], "label": exp.arm_of[rid]} for rid in chosen if results[rid]}
    label_base, pairs, notes = {}, [], []
    for rid in newest:
        base = exp.baselines.get(rid)
        if base is None:
            continue
        if base.run is None:
            notes.append({"run": rid, "note": base.note})
            continue
        theirs = newest.get(base.run) or _newest(registry, base.run, exp, results)
        if theirs is None:
            notes.append({"run": rid, "note": f"its baseline {base.run} has no evaluation yet"})
            continue
        label_base.setdefault(exp.arm_of[rid], exp.arm_of[base.run])
        pairs.append(_pair(rid, base.run, newest[rid], theirs, attacks) | {"experiment": exp.id})
    methods = sorted(reports.method_summary(list(newest.values()), attacks, label_base),
                     key=lambda m: list(exp.arms).index(m["label"]))  # Table 1's order: AT, PART, ..., MART, PART-M
    for m in methods:
        m["run_ids"] = [rid for rid, r in newest.items() if r["label"] == m["label"]]
        _paired_deltas(m, [p for p in pairs if p["run"] in m["run_ids"]])
        m["category"] = category(configs[m["run_ids"][0]])
        m["experiment"] = exp.id
    return {"id": exp.id, "description": exp.description, "featured": exp.featured, "runs": chosen,
            "methods": methods, "pairs": pairs, "notes": notes,
            "images_line": reports.images_line(list(newest.values())) if newest else ""}


def _paired_deltas(method: dict, pairs: list[dict]) -> None:
    """An arm's difference to its baseline as the mean of its runs' paired differences (each run against its
    own seed's baseline), never a mean over one set of seeds minus a mean over another."""
    for a, c in method["attacks"].items():
        deltas = [p["attacks"][a]["delta"] for p in pairs if a in p["attacks"]]
        c["delta"] = statistics.fmean(deltas) if deltas else None
        c["paired_runs"] = len(deltas)


def _newest(registry: Registry, rid: str, exp: Experiment, results: dict[str, list[dict]]) -> dict | None:
    found = results.get(rid)
    if found is None:
        try:
            found, _ = checkpoint_results(rid, registry.run(rid))
        except (RunFolderError, OSError, ApiError):
            return None
    return {**found[-1], "label": exp.arm_of[rid]} if found else None


def _attack_order(names: set[str]) -> list[str]:
    order = ["clean", "fgsm", "pgd", "mma", "aa", "corruptions"]

    def rank(a: str) -> tuple:
        stem = a.split("@")[0].rstrip("0123456789").replace("-map", "")
        return ("@" in a, order.index(stem) if stem in order else len(order), a)

    return sorted(names, key=rank)


def _row(r: dict, cfg: dict, exp: Experiment | None) -> dict[str, Any]:
    attacks, per_class_acc, sweeps = {}, {}, []
    for name, rec in r["attacks"].items():
        if rec.get("accuracy") is not None:
            attacks[name] = {"accuracy": rec["accuracy"], "n": rec.get("n") or r.get("n"),
                             "source": rec.get("source")}
            if rec.get("map"):
                attacks[name]["map"] = rec["map"]
        if rec.get("per_class"):
            per_class_acc[name] = rec["per_class"]
        if rec.get("sweep"):
            sweeps.append({"attack": name, "source": "sweep", "eps": rec["eps"], "accuracy": rec["accuracies"],
                           "n": rec.get("n"), "steps": (rec.get("params") or {}).get("steps")})
    checks = r["attacks"].get("checks")
    if checks and checks.get("eps_curve"):
        curve = checks["eps_curve"]
        sweeps.append({"attack": f"pgd{curve.get('steps', 20)} (checks)", "source": "checks", "eps": curve["eps"],
                       "accuracy": curve["accuracy"], "n": checks.get("n") or r.get("n"), "steps": curve.get("steps")})
    corr = r["attacks"].get("corruptions") or {}
    eps = r.get("eps")
    return {"run": r["run_id"], "epoch": r.get("epoch"), "label": exp.arm_of[r["run_id"]] if exp else r.get("label"),
            "experiment": exp.id if exp else None, "dataset": r.get("dataset"),
            "category": category(cfg), "recipe": cfg.get("recipe"), "seed": cfg.get("seed"),
            "eps": eps, "eps_255": None if eps is None else round(255 * eps, 3), "eps_text": r.get("eps_text"),
            "n": r.get("n"), "attacks": attacks, "per_class": per_class_acc, "sweeps": sweeps,
            "checks": None if not checks else {"passed": checks.get("passed"), "n": checks.get("n"),
                                               "checks": [{k: c.get(k) for k in ("id", "title", "passed", "detail")}
                                                          for c in checks.get("checks", [])]},
            "corruptions": None if not corr.get("types") else {
                "severities": corr.get("severities"), "n": corr.get("n"),
                "types": {t: v.get("accuracy") for t, v in corr["types"].items()}},
            "sources": r.get("sources", [])}


def _pair(rid: str, base: str, ours: dict, theirs: dict, attacks: list[str]) -> dict[str, Any]:
    """Run minus its baseline per attack, in points, with the exact McNemar p on the same images."""
    cells = {}
    for a in attacks:
        x, y = ours["attacks"].get(a) or {}, theirs["attacks"].get(a) or {}
        if x.get("accuracy") is None or y.get("accuracy") is None:
            continue
        cell: dict[str, Any] = {"delta": 100 * (x["accuracy"] - y["accuracy"]), "p": None, "n": x.get("n")}
        if x.get("images") and x.get("images") == y.get("images"):
            d = reports.paired_difference(x["correct"], y["correct"])
            cell |= {"p": d["p"], "ci95": d["ci95_points"], "only_run": d["only_a"], "only_baseline": d["only_b"],
                     "text": reports.difference_text(d)}
        cells[a] = cell
    return {"run": rid, "baseline": base, "label": ours.get("label"), "baseline_label": theirs.get("label"),
            "epoch": ours.get("epoch"), "baseline_epoch": theirs.get("epoch"), "attacks": cells}


def report_listing(run: RunDir) -> list[dict[str, Any]]:
    """Each evaluation folder of the run and which of report.md / report.html it holds (links out refused)."""
    out = []
    for name, _mtime, _size in run.eval_stamp():
        files = []
        for file in EvalDir.REPORT_TYPES:
            try:
                if run.eval_report_file(name, file).is_file():
                    files.append(file)
            except (RunFolderError, OSError):
                continue
        out.append({"name": name, "files": files})
    return out


def report_file(registry: Registry, run_id: str, name: str, file: str) -> tuple[bytes, str]:
    """RUN/eval/NAME/report.md or report.html, read through RunDir (a link out of the run is refused)."""
    if file not in EvalDir.REPORT_TYPES:
        raise bad_request(f"file '{file[:60]}' is not served; accepted: {', '.join(EvalDir.REPORT_TYPES)}")
    run = registry.run(run_id)
    names = [n for n, _, _ in run.eval_stamp()]
    if name not in names:
        raise not_found(f"run '{run_id}' has no evaluation '{name[:60]}'; its evaluations: {', '.join(names) or 'none'}")
    path = run.eval_report_file(name, file)  # RunFolderError (409) when a link leads out of the run
    if not path.is_file():
        raise not_found(f"evaluation {run_id}/{name} has no {file} (written by `part eval` or `part report`)")
    return path.read_bytes(), EvalDir.REPORT_TYPES[file]
