"""Evaluation reports (RUN/eval/<name>/eval.json, listed in GET /api/runs/{id}): Table 1, the corruption
chart (Table 4) and the gradient-masking checklist (Appendix H)."""

from __future__ import annotations

import re

import streamlit as st

from frontend import charts, ui

ORDER = ["clean", "fgsm", "pgd", "mma", "aa", "corruptions"]
CHECK_ICON = {True: "✓ passed", False: "✗ failed", None: "– skipped"}


def collect(runs: list[dict]) -> list[dict]:
    """Every report of every run, each with `run` and a display `title` added."""
    found = []
    for run in runs:
        for report in ui.api().run(run["id"]).get("evaluations", []):
            title = f"{report.get('label', '?')} · {run['id']} · epoch {report.get('epoch')}"
            found.append({**report, "run": run["id"], "title": title})
    return found


def heading(attack: str) -> str:
    base, at, source = attack.partition("@")
    if base.endswith("-map"):  # the per-pixel threat model: eps-maps from the CAMs of run `source`
        return f"{heading(base[:-4])} map" + (f" ({source})" if at else "")
    m = re.fullmatch(r"(pgd|mma)(\d+)", attack)
    if m:
        return f"{m.group(1).upper()}-{m.group(2)}"
    return {"clean": "Natural", "fgsm": "FGSM", "mma": "MMA", "aa": "AutoAttack",
            "corruptions": "Corruptions (mean)"}.get(attack, attack)


def _rank(attack: str) -> tuple[int, str]:
    stem = re.sub(r"\d+$", "", attack)
    return (ORDER.index(stem) if stem in ORDER else len(ORDER), attack)


def table1(found: list[dict]) -> None:
    st.subheader("Accuracy under attack (Table 1)")
    attacks = sorted({a for r in found for a, rec in r["attacks"].items() if rec.get("accuracy") is not None},
                     key=_rank)
    rows = []
    for r in found:
        row = {"method": r.get("label"), "run": r["run"], "epoch": r.get("epoch"), "images": r.get("n"),
               "eps": f"{r.get('eps_text') or r.get('eps')}"}
        for a in attacks:
            acc = (r["attacks"].get(a) or {}).get("accuracy")
            row[heading(a)] = None if acc is None else 100 * acc
        if "checks" in r["attacks"]:
            row["masking checks"] = CHECK_ICON[r["attacks"]["checks"].get("passed")]
        rows.append(row)
    config = {heading(a): st.column_config.NumberColumn(heading(a), format="%.2f %%", help=_column_help(a, found))
              for a in attacks}
    st.dataframe(rows, hide_index=True, width="stretch", column_config=config)
    st.caption("Accuracy (%) on the first N images of the fixed test subset at the dataset's eps; "
               "higher is better. Natural = no attack.")


def _column_help(attack: str, found: list[dict]) -> str:
    """What a column measures; a -map column names whose eps-maps bounded the attack and their budget."""
    m = next(((r["attacks"].get(attack) or {}).get("map") for r in found if (r["attacks"].get(attack) or {}).get("map")),
             None)
    if not m:
        return f"accuracy (%) under {attack}"
    return (f"accuracy (%) under {attack}: each image's own eps-map from the CAMs of {m.get('map_run')} epoch "
            f"{m.get('map_epoch')} ({m.get('recipe')}; eps {255 * m['eps']:.1f}/255, eps_low {255 * m['eps_low']:.1f}/255; "
            f"mean budget {m['mean_budget_255']:.2f}/255, full eps on {100 * m['full_eps_fraction']:.1f}% of pixel values)")


def corruptions(found: list[dict]) -> None:
    with_c = [r for r in found if (r["attacks"].get("corruptions") or {}).get("types")]
    if not with_c:
        return
    st.subheader("Common corruptions (Table 4)")
    severity = st.segmented_control("Severity", ["mean", 1, 2, 3, 4, 5], default=1, key="ev-severity",
                                    help="Corruption strength, 1 (mild) to 5 (strong); mean averages all five")
    severity = severity or 1
    types = list(with_c[0]["attacks"]["corruptions"]["types"])
    groups = {}
    for r in with_c:
        per_type = r["attacks"]["corruptions"]["types"]
        groups[r["title"]] = [_at(per_type.get(t, {}).get("accuracy"), severity) for t in types]
    names = [" ".join("JPEG" if w == "jpeg" else w.capitalize() for w in t.split("_")) for t in types]
    label = "mean over severities" if severity == "mean" else f"severity {severity}"
    methods = {r["title"]: r.get("label", "") for r in with_c}
    st.plotly_chart(charts.grouped_bars(names, groups, title=f"Accuracy per corruption, {label}",
                                        y_title="accuracy (%)", methods=methods), key="ev-corruptions")
    by_severity = {r["title"]: ([1, 2, 3, 4, 5], [_mean([v["accuracy"][s] for v in
                                                         r["attacks"]["corruptions"]["types"].values()])
                                                  for s in range(5)]) for r in with_c}
    st.plotly_chart(charts.lines(by_severity, title=f"Mean accuracy over the {len(types)} corruptions by severity",
                                 x_title="severity", y_title="accuracy (%)", x_dtick=1, methods=methods),
                    key="ev-severities")


def _at(values: list[float] | None, severity) -> float | None:
    if not values:
        return None
    return _mean(values) if severity == "mean" else values[int(severity) - 1]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def checklist(found: list[dict]) -> None:
    with_checks = [r for r in found if "checks" in r["attacks"]]
    if not with_checks:
        return
    st.subheader("Gradient-masking checklist")
    titles = [r["title"] for r in with_checks]
    chosen = with_checks[titles.index(st.selectbox("Report", titles, key="ev-checks-report"))]
    rec = chosen["attacks"]["checks"]
    (st.success if rec.get("passed") else st.error)(
        "All checks that ran passed: no sign of gradient masking." if rec.get("passed")
        else "A check failed: the robust accuracy may be overestimated (see below).")
    left, right = st.columns([3, 2])
    with left:
        st.dataframe([{"check": c["title"], "result": CHECK_ICON[c.get("passed")], "detail": c.get("detail", "")}
                      for c in rec.get("checks", [])], hide_index=True, width="stretch")
    curve = rec.get("eps_curve")
    if curve:
        right.plotly_chart(charts.lines({chosen["title"]: ([e * 255 for e in curve["eps"]], curve["accuracy"])},
                                        title=f"PGD-{curve.get('steps', '')} accuracy falls as eps grows",
                                        x_title="eps (/255)", y_title="accuracy (%)",
                                        methods={chosen["title"]: chosen.get("label", "")}), key="ev-eps-curve")
