"""Reports of evaluation results: Table 1 and Table 4 of PART as Markdown, checks, files on disk.

Zhang et al., ICML 2024: Table 1 (natural, PGD-20, MMA, AA; mean +- std over runs, one row per
method) and Table 4 (accuracy per corruption type at severity 1, after Hendrycks and Dietterich,
ICLR 2019). Results are the dicts `part.eval_job.evaluate_checkpoint` writes to eval.json; results
with the same label (e.g. three seeds of PART) form one row.

    python -m part.reports RUN_OR_EVAL_DIR_OR_JSON... [--baseline AT] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from part.corruptions import CORRUPTIONS, title

TABLE1 = (("clean", "Natural"), ("pgd20", "PGD-20"), ("mma", "MMA"), ("aa", "AA"))
Table = tuple[list[str], list[list[str]]]


def load_results(paths: Sequence[str | Path]) -> list[dict]:
    """eval.json files, folders holding one, or run folders (their newest RUN/eval/*/eval.json)."""
    found = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif (p / "eval.json").is_file():
            found.append(p / "eval.json")
        elif sorted((p / "eval").glob("*/eval.json")):
            found.append(sorted((p / "eval").glob("*/eval.json"))[-1])
        else:
            raise FileNotFoundError(f"no evaluation results in {p}: expected an eval.json file, a folder "
                                    "holding one, or a run folder with eval/*/eval.json (run `part eval` first)")
    return [json.loads(f.read_text()) for f in found]


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


def _check_baseline(groups: dict, baseline: str | None) -> None:
    if baseline is not None and baseline not in groups:
        raise ValueError(f"baseline '{baseline}' is not among the results; accepted: {', '.join(groups)}")


def accuracy_rows(results: Sequence[dict], columns: Sequence[tuple[str, str]] = TABLE1,
                  baseline: str | None = None) -> Table:
    """Table 1: one row per label; a column per (attack, heading); differences to `baseline`."""
    groups = group(results)
    _check_baseline(groups, baseline)
    header = ["Dataset", "Method", "Runs"] + [h for _, h in columns]
    rows = []
    for label, runs in groups.items():
        datasets = ", ".join(sorted({str(r.get("dataset", "")) for r in runs}))
        base = groups[baseline] if baseline is not None and label != baseline else None
        rows.append([datasets, label, str(len(runs))] +
                    [cell(accuracies(runs, a), accuracies(base, a) if base else None) for a, _ in columns])
    return header, rows


def attack_columns(results: Sequence[dict]) -> list[tuple[str, str]]:
    """Every attack with one accuracy number (clean, fgsm, pgd<K>, mma<K>, aa, corruptions), in order."""
    names: list[str] = []
    for r in results:
        names += [a for a, rec in r.get("attacks", {}).items() if rec.get("accuracy") is not None and a not in names]
    return [(a, heading(a)) for a in names]


def heading(attack: str) -> str:
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
    eps = ", ".join(sorted({str(r.get("eps_text", r.get("eps"))) for r in results}))
    n = ", ".join(sorted({str(r.get("n")) for r in results}))
    parts = [f"# Robustness evaluation\n\nL-inf eps = {eps}; {n} test images per model.\n\n",
             "## Table 1 (accuracy %, mean ± std over runs)\n", table1(results, baseline)]
    extra = attack_columns(results)
    if [a for a, _ in extra] != [a for a, _ in TABLE1]:
        parts += ["\n## All attacks (accuracy %)\n", markdown(accuracy_rows(results, extra, baseline))]
    if any("corruptions" in r.get("attacks", {}) for r in results):
        parts += ["\n## Corruptions at severity 1 (accuracy %, Table 4)\n", corruption_table(results, 1),
                  "\n## Corruptions, mean over severities 1-5 (accuracy %)\n", corruption_table(results, None)]
    for r in results:
        if "checks" in r.get("attacks", {}):
            name = f"{r.get('label')} epoch {r.get('epoch')} ({Path(str(r.get('checkpoint'))).name})"
            parts += [f"\n## Gradient-masking checks: {name}\n", markdown(checks_rows(r))]
    return "".join(parts)


def write_reports(out_dir: str | Path, results: Sequence[dict], baseline: str | None = None) -> dict[str, Path]:
    """OUT/report.md and OUT/report.html (self-contained, opens offline)."""
    from part.report_html import html_report

    out = Path(out_dir)
    paths = {"markdown": out / "report.md", "html": out / "report.html"}
    text = {"markdown": markdown_report(results, baseline), "html": html_report(results, baseline)}
    for key, path in paths.items():
        _write_text(path, text[key])
    return paths


def _write_text(path: Path, text: str) -> None:
    """Write a whole file or nothing: a temporary file renamed over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m part.reports", description="Table 1 / Table 4 reports of several runs")
    p.add_argument("paths", nargs="+", help="run folders, eval folders or eval.json files")
    p.add_argument("--baseline", help="method label to show differences to (e.g. AT)")
    p.add_argument("--out", default=".", help="folder for report.md and report.html")
    args = p.parse_args(argv)
    try:
        paths = write_reports(args.out, load_results(args.paths), args.baseline)
    except (ValueError, FileNotFoundError) as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2
    print("\n".join(f"wrote {path}" for path in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
