"""The Explore page's attack tab: the same image attacked within a scalar eps and within PART's eps-map."""

from __future__ import annotations

import json

import streamlit as st

from frontend import charts, images, ui
from frontend.catalogue import as_255

BUDGETS = {"scalar": "Scalar eps (AT)", "eps-map": "PART eps-map"}


def attack_fields(fields: dict, source: str) -> dict:
    """The explain fields for an attack whose eps-map comes from `source` (one method or the ensemble)."""
    methods = fields["methods"] if source.startswith("ensemble") else source
    return {k: v for k, v in fields.items() if k != "ensemble"} | {"methods": methods}


def one_budget(col, result: dict, budget: str) -> None:
    before, after = result["before"], result["after"]
    col.subheader(BUDGETS[budget])
    a, p = col.columns(2)
    a.image(images.decode(result["adversarial_png"]), caption="adversarial example", width="stretch",
            output_format="PNG")
    p.image(images.decode(result["perturbation_png"]), width="stretch", output_format="PNG",
            caption=f"perturbation ×{0.5 / max(result['eps'], 1e-8):.0f} (grey = 0)")
    verdict = "fooled" if result["fooled"] else "still correct"
    col.metric(f"Prediction after {result['attack'].upper()}-{result['steps']}", after["class_name"],
               f"{before['class_name']} → {after['class_name']}: {verdict}",
               delta_color="inverse" if result["fooled"] else "normal")
    if result.get("shuffled_with"):
        col.caption(f"shuffled: the eps-map of probe {result['shuffled_with']['probe']} "
                    f"(test #{result['shuffled_with']['index']})")
    values = [v for row in result["eps_map"] for v in row]
    two_level = all(min(abs(v - result["eps"]), abs(v - result["eps_low"])) <= 1e-4 for v in values)
    spread = (f"{ui.percent(result['mask_stats']['full_eps_fraction'])} of pixels at full eps" if two_level else
              f"budgets {255 * min(values):.1f}–{255 * max(values):.1f} /255")
    col.caption(f"L∞ of the perturbation {as_255(result['perturbation_linf'])} · mean budget "
                f"{100 * result['mask_stats']['mean_eps_ratio']:.1f}% of eps · {spread} · {result['seconds']:.2f} s")


def attack_tab(fields: dict, choice: ui.ImageChoice, source: str, classes: list[str]) -> None:
    c1, c2, c3 = st.columns([1, 2, 1])
    kind = c1.radio("Attack", ["pgd", "mma"], horizontal=True, key="ex-attack", format_func=str.upper)
    steps = c2.slider("Steps", 1, 50, 10, key="ex-steps", help="Step size eps/4, random start")
    c3.caption(f"eps-map from **{source}**")
    base = attack_fields(fields, source) | choice.fields | {"attack": kind, "steps": steps}
    with st.spinner("Attacking…"):
        results = {b: ui.attack(base | {"budget": b}, choice.upload) for b in BUDGETS}
    cols = st.columns(2)
    for col, (budget, result) in zip(cols, results.items()):
        one_budget(col, result, budget)
    scalar, part = results["scalar"], results["eps-map"]
    p1, p2 = st.columns(2)
    p1.plotly_chart(charts.probabilities(classes, scalar["before"]["probabilities"], label=scalar["label"],
                                         title="Before and after, scalar eps",
                                         other=scalar["after"]["probabilities"], other_name="adversarial"),
                    key="ex-adv-scalar")
    p2.plotly_chart(charts.probabilities(classes, part["before"]["probabilities"], label=part["label"],
                                         title="Before and after, PART eps-map",
                                         other=part["after"]["probabilities"], other_name="adversarial"),
                    key="ex-adv-part")
    d1, d2 = st.columns(2)
    name = f"{part['run']}-e{part['epoch']}"
    d1.download_button("Adversarial PNG (eps-map)", images.decode(part["adversarial_png"]), f"{name}-adversarial.png",
                       "image/png", icon=":material/image:", width="stretch")
    light = {b: {k: v for k, v in r.items() if not k.endswith("_png")} for b, r in results.items()}
    d2.download_button("Attack JSON", json.dumps(light, indent=1), f"{name}-attack.json",
                       "application/json", icon=":material/data_object:", width="stretch")
