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
import threading
from typing import Any, Sequence

from backend.api.errors import bad_request
from backend.services.registry import Registry
from part.evaluation import reports
from part.runs import EvalDir, RunDir, RunFolderError

CONTROL_RECIPES = ("shuffled", "uniform-mean")  # the controls of docs/results.md
TABLE1 = [a for a, _ in reports.TABLE1]
MAX_RUNS = 64
RUN_LIST = re.compile(r"\s*[A-Za-z0-9][A-Za-z0-9._-]{0,99}(\s*,\s*[A-Za-z0-9][A-Za-z0-9._-]{0,99})*\s*")


def parse_run_ids(text: str | None, registry: Registry) -> list[str]:
    """'a,b' -> ['a', 'b'] (each checked to be a run); empty: every run that has an evaluation."""
    if text is not None and not RUN_LIST.fullmatch(text):
        raise bad_request(f"runs '{text[:80]}' is not accepted; give run ids separated by commas (e.g. "
                          "fmnist-at-s0,fmnist-part-s0), or leave runs out for every evaluated run")
    ids = list(dict.fromkeys(t.strip() for t in (text or "").split(",") if t.strip()))
    if len(ids) > MAX_RUNS:
        raise bad_request(f"{len(ids)} runs asked for; the limit is {MAX_RUNS}")
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


def checkpoint_results(run_id: str, run: RunDir) -> list[dict]:
    """The run's evaluations merged per checkpoint (one result per epoch, each attack from its largest
    evaluation, as `part report` merges them), each attack record annotated with its per-class accuracy
    and a fingerprint of the images it saw; cached until an eval.json of the run changes."""
    return _merged.get(run, lambda: _merge(run_id, run))


def _merge(run_id: str, run: RunDir) -> list[dict]:
    found = []
    for name, report, _problem in run.eval_reports():
        if report is None:
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
    return merged


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


def paired_baseline(rid: str, configs: dict[str, dict]) -> str | None:
    """The run a PART run (or control) is measured against: same dataset and defense, no PART, same seed."""
    cfg = configs[rid]
    if not cfg.get("part"):
        return None
    same = [o for o, c in configs.items() if not c.get("part") and c.get("dataset") == cfg.get("dataset")
            and c.get("defense") == cfg.get("defense") and c.get("seed") == cfg.get("seed")]
    return sorted(same)[0] if same else None


def evaluations(registry: Registry, run_ids: list[str]) -> dict[str, Any]:
    configs, results, folders = {}, {}, {}
    for rid in run_ids:
        run = folders[rid] = registry.run(rid)  # 400 / 404 / 409 naming the problem; checks config.json
        configs[rid] = run.config()
        try:
            results[rid] = checkpoint_results(rid, run)
        except (RunFolderError, OSError) as err:
            results[rid] = []
            configs[rid]["_problem"] = str(err)
    rows = [_row(r, configs[rid]) for rid in run_ids for r in results[rid]]
    newest = {rid: results[rid][-1] for rid in run_ids if results[rid]}
    attacks = _attack_order({a for row in rows for a in row["attacks"]})
    base_of = {rid: paired_baseline(rid, configs) for rid in newest}
    label_base = {}
    for rid, base in base_of.items():
        if base in newest:
            label_base.setdefault(newest[rid].get("label"), newest[base].get("label"))
    methods = reports.method_summary(list(newest.values()), attacks, label_base)
    for m in methods:
        m["category"] = next((category(configs[rid]) for rid, r in newest.items() if r.get("label") == m["label"]),
                             "PART")
        m["run_ids"] = [rid for rid, r in newest.items() if r.get("label") == m["label"]]
    pairs = [_pair(rid, base, newest[rid], newest[base], attacks) for rid, base in base_of.items()
             if base in newest]
    classes = next((r.get("classes") for r in newest.values() if r.get("classes")), None)
    eps = sorted({r.get("eps") for r in newest.values() if r.get("eps") is not None})
    files = {rid: report_listing(folders[rid]) for rid in run_ids}
    return {"runs": run_ids, "reports": files, "attacks": [{"attack": a, "heading": reports.heading(a)} for a in attacks],
            "rows": rows, "methods": methods, "pairs": pairs, "classes": classes,
            "eps": [{"eps": e, "eps_255": round(255 * e, 3)} for e in eps],
            "images_line": reports.images_line(list(newest.values())) if newest else ""}


def _attack_order(names: set[str]) -> list[str]:
    order = ["clean", "fgsm", "pgd", "mma", "aa", "corruptions"]

    def rank(a: str) -> tuple:
        stem = a.split("@")[0].rstrip("0123456789").replace("-map", "")
        return ("@" in a, order.index(stem) if stem in order else len(order), a)

    return sorted(names, key=rank)


def _row(r: dict, cfg: dict) -> dict[str, Any]:
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
    return {"run": r["run_id"], "epoch": r.get("epoch"), "label": r.get("label"), "dataset": r.get("dataset"),
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
            cell["p"] = reports.mcnemar(x["correct"], y["correct"])
            cell["only_run"] = sum(1 for u, v in zip(x["correct"], y["correct"]) if u and not v)
            cell["only_baseline"] = sum(1 for u, v in zip(x["correct"], y["correct"]) if v and not u)
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
        from backend.api.errors import not_found

        raise not_found(f"run '{run_id}' has no evaluation '{name[:60]}'; its evaluations: {', '.join(names) or 'none'}")
    path = run.eval_report_file(name, file)  # RunFolderError (409) when a link leads out of the run
    if not path.is_file():
        from backend.api.errors import not_found

        raise not_found(f"evaluation {run_id}/{name} has no {file} (written by `part eval` or `part report`)")
    return path.read_bytes(), EvalDir.REPORT_TYPES[file]
