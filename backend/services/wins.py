"""Who wins: the test images one model keeps correct under an attack and the other loses, both ways.

From the per-image correctness every eval.json stores (`correct`, with its `indices` and `labels`), read
through part.runs.RunDir.eval_reports; the exact McNemar p of part.evaluation.reports (a binomial test on the
discordant pairs, as docs/results.md reports it). No model runs here: the pictures of an image are
computed on demand by /api/explain and /api/attack with its dataset `index`.
"""

from __future__ import annotations

from typing import Any

from backend.api.errors import bad_request, conflict, not_found
from backend.services import experiments
from backend.services.evaluations import EvalCache
from backend.services.registry import Registry
from backend.services.run_files import checked
from part.evaluation import reports
from part.runs import RunFolderError

MAX_PAGE = 200
_per_image = EvalCache()


def _candidates(registry: Registry, run_id: str) -> list[dict]:
    """Every (epoch, attack, evaluation) of the run with per-image results: {epoch, attack, n, correct,
    indices, labels, classes, source}; cached until an eval.json of the run changes."""
    run = registry.run(run_id)
    return _per_image.get(run, lambda: _read(run_id, run))


def _read(run_id: str, run) -> list[dict]:
    out = []
    try:
        found = run.eval_reports()
    except (RunFolderError, OSError) as err:
        raise conflict(f"run '{run_id}' evaluations cannot be read: {err}") from None
    for name, report, _problem in found:
        report, _wrong = checked(report) if report is not None else (None, None)
        if report is None:  # a damaged report is left out (GET /api/evaluations says why)
            continue
        indices, labels = report.get("indices") or [], report.get("labels") or []
        for attack, rec in (report.get("attacks") or {}).items():
            correct = rec.get("correct") if isinstance(rec, dict) else None
            if (isinstance(correct, list) and correct and not isinstance(correct[0], list)
                    and len(correct) == len(indices) == len(labels)):
                out.append({"epoch": report.get("epoch"), "attack": attack, "n": len(correct), "correct": correct,
                            "indices": indices, "labels": labels, "classes": report.get("classes"),
                            "dataset": report.get("dataset"), "label": report.get("label"), "source": name,
                            "accuracy": rec.get("accuracy"), "seed": report.get("seed"),
                            "params": rec.get("params") if isinstance(rec.get("params"), dict) else {}})
    return out


def _epoch(cands: list[dict], run_id: str, epoch: int | None, attack: str | None) -> int:
    """The asked epoch, else the newest with the attack (or with any per-image result) evaluated."""
    epochs = sorted({c["epoch"] for c in cands if c["epoch"] is not None and (attack is None or c["attack"] == attack)})
    if not epochs:
        what = f"attack '{attack}'" if attack else "any attack"
        raise not_found(f"run '{run_id}' has no evaluation of {what} with per-image results; run "
                        f"`part eval --run checkpoints/{run_id}` (or an evaluation job) first")
    if epoch is None:
        return epochs[-1]
    if epoch not in epochs:
        raise not_found(f"run '{run_id}' has no such evaluation at epoch {epoch}; evaluated epochs: "
                        f"{', '.join(map(str, epochs))}")
    return epoch


def wins(registry: Registry, run_a: str, run_b: str, *, attack: str | None = None, epoch_a: int | None = None,
         epoch_b: int | None = None, offset: int = 0, limit: int = 24) -> dict[str, Any]:
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise bad_request(f"limit must be 1..{MAX_PAGE} and offset >= 0; got limit {limit}, offset {offset}")
    ca, cb = _candidates(registry, run_a), _candidates(registry, run_b)
    why = experiments.same_test_images(registry, run_a, run_b)
    if why:
        raise bad_request(why)
    ea, eb = _epoch(ca, run_a, epoch_a, None), _epoch(cb, run_b, epoch_b, None)
    at_a = [c for c in ca if c["epoch"] == ea]
    at_b = [c for c in cb if c["epoch"] == eb]
    common = sorted({c["attack"] for c in at_a} & {c["attack"] for c in at_b}, key=_rank)
    # common attacks on the same images only
    common = [a for a in common if _pick(at_a, at_b, a) is not None]
    if not common:
        raise not_found(f"'{run_a}' epoch {ea} and '{run_b}' epoch {eb} share no attack evaluated on the same "
                        "images; evaluate both with the same attacks and number of images")
    attack = attack or common[0]
    if attack not in common:
        raise not_found(f"attack '{attack[:60]}' is not evaluated on the same images for both; accepted: "
                        f"{', '.join(common)}")
    a, b = _pick(at_a, at_b, attack)
    classes = list(a["classes"] or b["classes"] or [])
    only_a, only_b, both, neither = [], [], 0, 0
    for k, (x, y) in enumerate(zip(a["correct"], b["correct"])):
        if x and not y:
            only_a.append(k)
        elif y and not x:
            only_b.append(k)
        elif x:
            both += 1
        else:
            neither += 1
    return {"run_a": run_a, "run_b": run_b, "epoch_a": ea, "epoch_b": eb, "label_a": a["label"], "label_b": b["label"],
            "attack": attack, "heading": reports.heading(attack), "attacks": common,
            "headings": {name: reports.heading(name) for name in common}, "dataset": a["dataset"],
            "n": a["n"], "sources": [a["source"], b["source"]], "seeds": [a["seed"], b["seed"]],
            "params": a["params"],
            "accuracy_a": sum(map(bool, a["correct"])) / a["n"], "accuracy_b": sum(map(bool, b["correct"])) / b["n"],
            "counts": {"only_a": len(only_a), "only_b": len(only_b), "both": both, "neither": neither},
            "p": reports.mcnemar(a["correct"], b["correct"]), "classes": classes,
            "difference": reports.difference_text(reports.paired_difference(b["correct"], a["correct"])),
            "per_class": _per_class(a, only_a, only_b, classes),
            "offset": offset, "limit": limit,
            "only_a": _page(a, only_a, classes, offset, limit), "only_b": _page(a, only_b, classes, offset, limit)}


def _pick(at_a: list[dict], at_b: list[dict], attack: str) -> tuple[dict, dict] | None:
    """The evaluations of `attack` of both runs on the same images, the largest such pair."""
    pairs = [(x, y) for x in at_a if x["attack"] == attack for y in at_b if y["attack"] == attack
             and x["indices"] == y["indices"]]
    return max(pairs, key=lambda p: p[0]["n"]) if pairs else None


def _rank(attack: str) -> tuple:
    """PGD-20 first (Table 1's robust column), other PGD-K next, then the rest in Table 1's order."""
    order = ["pgd20", "pgd", "clean", "mma", "aa", "fgsm"]
    stem = "pgd" if attack != "pgd20" and attack.startswith("pgd") and "@" not in attack else attack
    return (order.index(stem) if stem in order else len(order), attack)


def _per_class(a: dict, only_a: list[int], only_b: list[int], classes: list[str]) -> list[dict]:
    k = max(len(classes), max(a["labels"]) + 1 if a["labels"] else 0)
    rows = [{"class_index": c, "class_name": classes[c] if c < len(classes) else str(c), "n": 0, "only_a": 0,
             "only_b": 0} for c in range(k)]
    for y in a["labels"]:
        rows[y]["n"] += 1
    for i in only_a:
        rows[a["labels"][i]]["only_a"] += 1
    for i in only_b:
        rows[a["labels"][i]]["only_b"] += 1
    return rows


def _page(a: dict, positions: list[int], classes: list[str], offset: int, limit: int) -> dict[str, Any]:
    items = [{"position": k, "index": a["indices"][k], "label": a["labels"][k],
              "label_name": classes[a["labels"][k]] if a["labels"][k] < len(classes) else str(a["labels"][k])}
             for k in positions[offset:offset + limit]]
    return {"total": len(positions), "items": items}


