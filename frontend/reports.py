"""The Evaluate page's results (GET /api/evaluations): Table 1 per checkpoint and per method, each PART run
against its paired baseline with McNemar p, robustness vs eps, per-class accuracy, the corruption heatmap,
the trade-off chart, the gradient-masking checklist and the report files of every evaluation."""

from __future__ import annotations

import csv
import io

import streamlit as st

from frontend import eval_charts, ui
from frontend.catalogue import as_255

CHECK_ICON = {True: "✓ passed", False: "✗ failed", None: "– skipped"}
MISSING = "–"
CORRUPTION_WORDS = {"jpeg": "JPEG"}


@st.cache_data(ttl=15, show_spinner=False)
def fetch(url: str, runs: str = "", experiments: str = "") -> dict:
    """Every number of the page for the runs or experiments (comma-separated ids) in one answer; the backend
    caches it until an eval.json changes."""
    params = {k: v for k, v in (("runs", runs), ("experiments", experiments)) if v}
    return ui.api()._json("GET", "/api/evaluations", params=params or None)


def scoped(data: dict, name: str) -> str:
    """A widget key of one experiment's block: 'ev-NAME' for the first shown, 'ev-NAME@ID' for the others."""
    return f"ev-{name}{data.get('scope', '')}"


def of_experiment(data: dict, group: dict, scope: str) -> dict:
    """The answer narrowed to one experiment: its rows, methods, pairs and report files only."""
    runs = set(group["runs"])
    rows = [r for r in data["rows"] if r["run"] in runs]
    present = {a for r in rows for a in list(r["attacks"]) + list(r["per_class"])} | {
        a for r in rows for a, on in (("checks", r["checks"]), ("corruptions", r["corruptions"])) if on}
    return data | {"rows": rows, "attacks": [a for a in data["attacks"] if a["attack"] in present], "methods": group["methods"],
                   "pairs": group["pairs"], "notes": group["notes"], "images_line": group["images_line"],
                   "reports": {r: v for r, v in data["reports"].items() if r in runs}, "scope": scope,
                   "eps": _eps_of([r for r in data["rows"] if r["run"] in runs])}


def _eps_of(rows: list[dict]) -> list[dict]:
    return [{"eps": e} for e in sorted({r["eps"] for r in rows if r.get("eps") is not None})]


def report_bytes(run: str, name: str, file: str) -> bytes:
    return ui.api()._request("GET", f"/api/runs/{run}/eval/{name}/{file}", timeout=60).content


def eps_label(eps: float | None) -> str:
    """'0.1 (25.5/255)': the fraction of the pixel range and the same budget in /255 steps."""
    return MISSING if eps is None else f"{eps:g} ({as_255(eps)})"


def pct(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None else f"{100 * value:.{digits}f}"


def p_text(p: float | None) -> str:
    if p is None:
        return ""
    return "p<0.001" if p < 0.001 else (f"p={p:.3f}" if p < 0.01 else f"p={p:.2f}")


def _column_help(attack: str, found: list[dict]) -> str:
    """What a column measures; a -map column names whose eps-maps bounded the attack and their budget."""
    m = next(((r["attacks"].get(attack) or {}).get("map") for r in found
              if (r["attacks"].get(attack) or {}).get("map")), None)
    if not m:
        return f"accuracy (%) under {attack}"
    return (f"accuracy (%) under {attack}: each image's own eps-map from the CAMs of {m.get('map_run')} epoch "
            f"{m.get('map_epoch')} ({m.get('recipe')}; eps {255 * m['eps']:.1f}/255, eps_low "
            f"{255 * m['eps_low']:.1f}/255; mean budget {m['mean_budget_255']:.2f}/255, full eps on "
            f"{100 * m['full_eps_fraction']:.1f}% of pixel values)")


def is_map(attack: str) -> bool:
    return "-map" in attack


def _headings(data: dict) -> dict[str, str]:
    return {a["attack"]: a["heading"] for a in data["attacks"]}


def images_text(row: dict, headings: dict[str, str]) -> str:
    """'10000 (Natural, PGD-20, MMA); 1000 (AA, Corruptions)': how many images each attack of the row saw."""
    by_n: dict[int, list[str]] = {}
    for a, rec in sorted(row["attacks"].items(), key=lambda item: list(headings).index(item[0])
                         if item[0] in headings else len(headings)):
        if not is_map(a):
            by_n.setdefault(rec["n"], []).append(headings.get(a, a))
    return "; ".join(f"{n} ({', '.join(names)})" for n, names in sorted(by_n.items(), reverse=True)) or MISSING


def table_csv(rows: list[dict]) -> str:
    """The rows as CSV, columns in the table's order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def table1(data: dict) -> None:
    """One row per run and epoch, each attack from its largest evaluation; no blanks that read 'None'."""
    st.subheader("Table 1: accuracy under attack, per checkpoint")
    heads = _headings(data)
    attacks = [a for a in heads if not is_map(a)]
    rows = []
    for r in data["rows"]:
        row = {"method": r["label"], "run": r["run"], "epoch": r["epoch"], "seed": MISSING if r["seed"] is None
               else str(r["seed"]), "eps": eps_label(r["eps"])}
        row |= {heads[a]: pct((r["attacks"].get(a) or {}).get("accuracy")) for a in attacks}
        row["images (n)"] = images_text(r, heads)
        row["masking checks"] = CHECK_ICON[r["checks"]["passed"]] if r["checks"] else "not run"
        rows.append(row)
    st.table(rows, hide_index=True, border="horizontal")
    st.download_button("Table 1 CSV", table_csv(rows), "table1.csv", "text/csv", icon=":material/table:",
                       key=scoped(data, "table1-csv"))
    st.caption(f"Accuracy (%) of each run's checkpoint at eps {', '.join(eps_label(e['eps']) for e in data['eps'])}; "
               f"each attack from its largest evaluation of that checkpoint (`part report` merges them the same "
               f"way); {MISSING}: not evaluated. Natural = no attack. {data['images_line']}.")
    maps = [a for a in heads if is_map(a)]
    if maps:
        with st.expander("Per-pixel threat model: each test image attacked within its own eps-map"):
            st.dataframe([{"method": r["label"], "run": r["run"], "epoch": r["epoch"]}
                          | {heads[a]: pct((r["attacks"].get(a) or {}).get("accuracy")) for a in maps}
                          for r in data["rows"] if any(a in r["attacks"] for a in maps)], hide_index=True,
                         width="stretch", key=scoped(data, "maps"),
                         column_config={heads[a]: st.column_config.TextColumn(heads[a], help=_column_help(a, data["rows"]))
                                        for a in maps})


def methods(data: dict) -> None:
    st.subheader("Per method: mean ± std over seeds, paired difference to the baseline")
    heads = _headings(data)
    attacks = [a for a in heads if not is_map(a)]
    rows = []
    for m in data["methods"]:
        row = {"method": m["label"], "category": m["category"], "runs (n)": str(m["runs"]),
               "baseline": m["baseline"] or MISSING}
        for a in attacks:
            c = m["attacks"].get(a)
            text = MISSING
            if c:
                text = f"{c['mean']:.2f}" + (f" ± {c['std']:.2f}" if c["std"] is not None else "")
                if c.get("delta") is not None:
                    text += f" ({c['delta']:+.2f}" + (f", {c['paired_runs']} pairs" if c["paired_runs"] > 1 else "") + ")"
                text += f" [{c['runs']}/{m['runs']} runs]" if c["runs"] < m["runs"] else ""
            row[heads[a]] = text
        rows.append(row)
    st.table(rows, hide_index=True, border="horizontal")
    st.caption("Accuracy (%) at the newest evaluated epoch of each run of a method (runs that differ only in the "
               "seed): mean ± sample std over its runs (with 2 runs the std of 2 seeds); (±x): the mean over its "
               "runs of each run minus its own seed's baseline (PART vs AT, PART-T vs TRADES, PART-M vs MART; "
               "controls vs AT), in points.")
    pairs(data, attacks, heads)
    for note in data.get("notes") or []:
        st.caption(f"{note['run']}: {note['note']}.")


def pairs(data: dict, attacks: list[str], heads: dict[str, str]) -> None:
    if not data["pairs"]:
        return
    rows = []
    for p in data["pairs"]:
        row = {"run": p["run"], "baseline run": p["baseline"]}
        for a in attacks:
            c = p["attacks"].get(a)
            row[heads[a]] = MISSING if not c else c.get("text") or f"{c['delta']:+.2f}"
        rows.append(row)
    st.markdown("**Each PART run minus its baseline run** (the same experiment's run of its defense and seed "
                "without PART)")
    st.table(rows, hide_index=True, border="horizontal")
    st.caption("Percentage points; p: exact two-sided McNemar test on the images only one of the two gets right "
               "(same images for both, n of them); where p >= 0.05, the 95 % interval of the difference says how "
               "large a difference this n could have missed. The **Who wins** page shows those images.")


def eps_curves(data: dict) -> None:
    curves = [dict(c, run=r["run"]) for r in data["rows"] for c in r["sweeps"]]
    st.subheader("Robustness vs eps")
    if not curves:
        st.caption("No eps sweep among the selected runs: start an evaluation with an eps sweep above "
                   "(e.g. PGD-20 at 0.05, 0.1, 0.15), or `part eval --attacks pgd20@0.05,0.1,0.15`.")
        return
    methods_of = {r["run"]: r["label"] for r in data["rows"]}
    st.plotly_chart(eval_charts.eps_curves(curves, methods=methods_of), key=scoped(data, "eps-curves"))
    st.caption("Each line: one run's accuracy under one attack at each eps, on the same images; '(checks)' lines "
               "come from the gradient-masking checklist (PGD-20 at eps x 0.25, 0.5, 1, 2, 4), the others from an "
               "eps-sweep attack such as `pgd20@0.05,0.1,0.15`.")


def per_class(data: dict) -> None:
    heads = _headings(data)
    options = [a for a in heads if any(a in r["per_class"] for r in data["rows"])]
    if not options or not data.get("classes"):
        return
    st.subheader("Accuracy per class")
    attack = st.selectbox("Attack", options, index=options.index("pgd20") if "pgd20" in options else 0,
                          format_func=heads.get, key=scoped(data, "class-attack"))
    rows = [r for r in data["rows"] if attack in r["per_class"]]
    names = [f"{r['run']} · ep {r['epoch']}" for r in rows]
    st.plotly_chart(eval_charts.heatmap(names, list(data["classes"]), [r["per_class"][attack] for r in rows],
                                        title=f"{heads[attack]} accuracy (%) per class"), key=scoped(data, "per-class"))


def corruptions(data: dict) -> None:
    rows = [r for r in data["rows"] if r["corruptions"]]
    if not rows:
        return
    st.subheader("Common corruptions (Table 4)")
    severity = st.segmented_control("Severity", ["mean", 1, 2, 3, 4, 5], default=1, key=scoped(data, "severity"),
                                    help="Corruption strength, 1 (mild) to 5 (strong); mean averages all five")
    severity = severity or 1
    types = list(dict.fromkeys(t for r in rows for t in r["corruptions"]["types"]))
    values = [[_at(r["corruptions"]["types"].get(t), severity) for t in types] for r in rows]
    for row in values:
        known = [v for v in row if v is not None]
        row.append(sum(known) / len(known) if known else None)
    names = [f"{r['run']} · ep {r['epoch']}" for r in rows]
    label = "mean over severities 1-5" if severity == "mean" else f"severity {severity}"
    st.plotly_chart(eval_charts.heatmap(names, [corruption_title(t) for t in types] + ["Mean"], values,
                                        title=f"Accuracy (%) per corruption, {label}"), key=scoped(data, "corruptions"))
    st.caption(f"On the first {rows[0]['corruptions']['n']} images of the fixed test subset; the colour scale "
               "spans the values shown.")


def corruption_title(name: str) -> str:
    return " ".join(CORRUPTION_WORDS.get(w, w.capitalize()) for w in name.split("_"))


def _at(values: list[float] | None, severity) -> float | None:
    if not values:
        return None
    return sum(values) / len(values) if severity == "mean" else values[int(severity) - 1]


def tradeoff(data: dict) -> None:
    heads = _headings(data)
    robust = [a for a in heads if a != "clean" and not is_map(a) and a != "corruptions"]
    newest = {}
    for r in data["rows"]:
        newest[r["run"]] = r  # rows come oldest epoch first
    if "clean" not in heads or not robust:
        return
    st.subheader("Trade-off")
    attack = st.selectbox("Robust accuracy under", robust, index=robust.index("pgd20") if "pgd20" in robust else 0,
                          format_func=heads.get, key=scoped(data, "tradeoff-attack"))
    points = [{"run": r["run"], "label": r["label"], "category": r["category"], "epoch": r["epoch"],
               "clean": 100 * r["attacks"]["clean"]["accuracy"], "robust": 100 * r["attacks"][attack]["accuracy"]}
              for r in newest.values() if "clean" in r["attacks"] and attack in r["attacks"]]
    if not points:
        st.caption(f"No selected run has both Natural and {heads[attack]} results.")
        return
    st.plotly_chart(eval_charts.tradeoff(points, robust_name=heads[attack]), key=scoped(data, "tradeoff"))
    st.caption("Newest evaluated epoch of each selected run. Colour: the method; symbol: baseline, PART, or a "
               "control (PART with the shuffled or uniform-mean recipe: the same budget placed elsewhere or "
               "nowhere). The axes fit the runs shown.")


def checklist(data: dict) -> None:
    rows = [r for r in data["rows"] if r["checks"]]
    if not rows:
        return
    st.subheader("Gradient-masking checklist")
    titles = [f"{r['label']} · {r['run']} · epoch {r['epoch']}" for r in rows]
    chosen = rows[titles.index(st.selectbox("Checkpoint", titles, key=scoped(data, "checks-report")))]
    rec = chosen["checks"]
    (st.success if rec.get("passed") else st.error)(
        "All checks that ran passed: no sign of gradient masking." if rec.get("passed")
        else "A check failed: the robust accuracy may be overestimated (see below).")
    st.dataframe([{"check": c["title"], "result": CHECK_ICON[c.get("passed")], "detail": c.get("detail") or ""}
                  for c in rec.get("checks", [])], hide_index=True, width="stretch", key=scoped(data, "checks"))


def report_files(data: dict) -> None:
    listed = [(run, item) for run, items in data["reports"].items() for item in items if item["files"]]
    if not listed:
        return
    st.subheader("Report files")
    names = [f"{run} · {item['name']}" for run, item in listed]
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    chosen = names.index(c1.selectbox("Evaluation folder", names, key=scoped(data, "report-folder"),
                                      help="The markdown and HTML reports `part eval` wrote there (the HTML opens "
                                           "offline); `part report RUN...` writes one over several runs"))
    run, item = listed[chosen]
    for col, file in zip((c2, c3), item["files"]):  # the report files the folder holds, as the API lists them
        col.download_button(file, data=lambda r=run, n=item["name"], f=file: report_bytes(r, n, f),
                            file_name=f"{run}-{item['name']}-{file}", icon=":material/download:",
                            mime="text/markdown" if file.endswith(".md") else "text/html",
                            key=scoped(data, f"dl-{file}"), on_click="ignore", width="stretch")
    if not item["files"]:
        c2.caption("no report in this folder (`part report` writes one)")
