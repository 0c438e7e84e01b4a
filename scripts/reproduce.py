"""Train, evaluate and report the runs shipped in checkpoints/ (listed in checkpoints/shipped.json).

    python scripts/reproduce.py commands          # every command, in order
    python scripts/reproduce.py train [RUN...]    # train, or resume, the runs that are not finished
    python scripts/reproduce.py eval [RUN...]     # evaluate them (attacks already done are kept)
    python scripts/reproduce.py results           # rewrite the measured parts of docs/results.md
    --jobs N runs N commands at once, one thread each (default 2, the cores of a small machine).

Every step skips finished work, so the script can be rerun after an interruption. Each run is trained in
the precision the manifest records for it (`amp`: off = float32), whatever the current default; the
`parity` runs repeat runs of `runs` in another precision and are reported in their own block.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from part.commands import eval_argv, resume_argv, train_argv
from part.training.config import preset
from part.runs import method_label
from part.evaluation.reports import corruption_table, images_line, load_results, markdown, mcnemar, table1
from part.runs import RunDir
from part.experiments import find_experiments

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = Path("checkpoints")
MANIFEST = CHECKPOINTS / "shipped.json"
RESULTS = Path("docs/results.md")
BEGIN, END = "<!-- measured: begin (scripts/reproduce.py results) -->", "<!-- measured: end -->"
PARITY_BEGIN, PARITY_END = "<!-- precision parity: begin (scripts/reproduce.py results) -->", "<!-- precision parity: end -->"
GROUPS = {  # manifest groups with their own measured block in docs/results.md
    "testbed": ("<!-- testbed: begin (scripts/reproduce.py results) -->", "<!-- testbed: end -->"),
    "vit": ("<!-- vit: begin (scripts/reproduce.py results) -->", "<!-- vit: end -->"),
}
PART = ".venv/bin/part"


def manifest() -> dict:
    data = json.loads((ROOT / MANIFEST).read_text())
    data["runs"] = {r["run"]: r for r in data["runs"]}
    data["parity"] = {r["run"]: r for r in data.get("parity", [])}
    data["testbed"] = {r["run"]: r for r in data.get("testbed", [])}
    data["vit"] = {r["run"]: r for r in data.get("vit", [])}
    return data


def every_run(m: dict) -> dict:
    """The runs of the main tables, the precision-parity runs, the testbed's and the ViT's, by name."""
    return {**m["runs"], **m["parity"], **m["testbed"], **m["vit"]}


def train_command(r: dict) -> list[str]:
    return train_argv(CHECKPOINTS / r["run"], preset=r["preset"], seed=r["seed"],
                      sets={**r.get("set", {}), "amp": r["amp"]}, part=[PART])


def eval_commands(r: dict, aa_images: int) -> list[list[str]]:
    """PGD-20 and MMA on the whole test set; AutoAttack and corruptions on the first `aa_images` of the
    fixed test subset (the same images for every model); the checks with the paired model as surrogate.

    A run's "eval" entry may change that: `aa_images`, `mma_images` (MMA on that many, 0: all),
    `checks_images`, `corruptions` (false: none), `alignment` (true: the CAM's energy on the object over the
    whole test set).
    """
    opts = {"aa_images": aa_images, "mma_images": 0, "corruptions": True, "alignment": False, **r.get("eval", {})}
    opts.setdefault("checks_images", opts["aa_images"])
    last = preset(r["preset"]).epochs
    run = RunDir(CHECKPOINTS / r["run"])
    epoch = run.checkpoint_path(last).stem
    surrogate = RunDir(CHECKPOINTS / r["surrogate"]).checkpoint_path(last)
    full = ["clean", "pgd20"] + ([] if opts["mma_images"] else ["mma"]) + (["alignment"] if opts["alignment"] else [])
    cmds = [eval_argv(run.path, attacks=",".join(full), n=0, out=run.eval_dir(f"full_{epoch}").path, part=[PART])]
    if opts["mma_images"]:
        cmds.append(eval_argv(run.path, attacks="clean,mma", n=opts["mma_images"],
                              out=run.eval_dir(f"mma_{epoch}").path, part=[PART]))
    subset = ["clean", "aa"] + (["corruptions"] if opts["corruptions"] else [])
    return cmds + [eval_argv(run.path, attacks=",".join(subset), n=opts["aa_images"], part=[PART]),
                   eval_argv(run.path, attacks="checks", n=opts["checks_images"], surrogate=surrogate,
                             out=run.eval_dir(f"checks_{epoch}").path, part=[PART])]


def completed(run: str) -> bool:
    rd = RunDir(ROOT / CHECKPOINTS / run)
    return rd.exists() and rd.status().get("state") == "completed"


def _run_all(jobs: list[list[list[str]]], n_jobs: int) -> int:
    """Each job is a list of commands run one after another; jobs run `n_jobs` at a time."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if n_jobs > 1 else dict(os.environ)

    def run(cmds: list[list[str]]) -> int:
        for cmd in cmds:
            print("$", shlex.join(cmd), flush=True)
            code = subprocess.run(cmd, cwd=ROOT, env=env).returncode
            if code:
                print(f"failed ({code}): {shlex.join(cmd)}", file=sys.stderr, flush=True)
                return code
        return 0

    with ThreadPoolExecutor(max(1, n_jobs)) as pool:
        return max(pool.map(run, jobs), default=0)


def train(names: list[str], n_jobs: int) -> int:
    runs = every_run(manifest())
    jobs = []
    for name in names:
        if completed(name):
            print(f"{name}: completed, skipped")
        elif RunDir(ROOT / CHECKPOINTS / name).exists():
            jobs.append([resume_argv(CHECKPOINTS / name, part=[PART])])
        else:
            jobs.append([train_command(runs[name])])
    return _run_all(jobs, n_jobs)


def evaluate(names: list[str], n_jobs: int) -> int:
    m = manifest()
    runs = every_run(m)
    needed = sorted({n for name in names for n in (name, runs[name]["surrogate"]) if not completed(n)})
    if needed:
        print(f"error: train these runs first: {', '.join(needed)}", file=sys.stderr)
        return 2
    return _run_all([eval_commands(runs[name], m["aa_images"]) for name in names], n_jobs)


def commands() -> str:
    m = manifest()
    return _commands(m, m["runs"])


def _commands(m: dict, runs: dict) -> str:
    train_lines = [shlex.join(train_command(r)) for r in runs.values()]
    eval_lines = [shlex.join(c) for r in runs.values() for c in eval_commands(r, m["aa_images"])]
    older = {}
    for r in runs.values():
        if r.get("commit"):
            older.setdefault(r["commit"], []).append(r["run"])
    notes = [f"# {', '.join(runs)}: trained at commit {c} (`git checkout {c}` first for the same weights; "
             "it predates the `amp` setting and trains in float32: leave out `--set amp=off` there)"
             for c, runs in older.items()]
    return "\n".join(["# train (a finished run folder is kept; `part resume RUN` continues a stopped one)",
                      *notes, *train_lines, "# evaluate", *eval_lines, "# the tables below",
                      "python scripts/reproduce.py results"]) + "\n"


# --- docs/results.md ----------------------------------------------------------------------------------

def _baselines(results: list[dict]) -> str:
    """'PART=AT,PART (shuffled)=AT,...': every PART variant against its defense without reweighting."""
    present = {r["label"] for r in results}
    pairs = {r["label"]: method_label(r["defense"], False) for r in results if r.get("part")}
    return ",".join(f"{k}={v}" for k, v in pairs.items() if v in present)


def _acc(result: dict, attack: str) -> float | None:
    rec = result["attacks"].get(attack)
    return 100 * rec["accuracy"] if rec and rec.get("accuracy") is not None else None


def _pct(result: dict, attack: str) -> str:
    acc = _acc(result, attack)
    return "–" if acc is None else f"{acc:.2f}"


def _checks(result: dict) -> str:
    rec = result["attacks"].get("checks")
    if not rec:
        return "–"
    verdicts = [c["passed"] for c in rec["checks"]]
    return f"{sum(v is True for v in verdicts)}/{len(verdicts)} pass"


def _alignment(result: dict) -> str:
    rec = result["attacks"].get("alignment") or {}
    return "–" if rec.get("energy") is None else f"{rec['energy']:.3f} (object {rec['object_fraction']:.3f})"


def per_run_table(results: list[dict], names: dict[str, str], alignment: bool = False) -> str:
    """One row per run; with `alignment` (the testbed's and the ViT's sections) the CAM's energy on the object
    takes the place of the corruptions."""
    header = ["Run", "Method", "Seed", "Natural", "PGD-20", "MMA", "AA", "Checks"]
    header.insert(7, "CAM energy on the object" if alignment else "Corruptions")
    rows = [[names[r["checkpoint_sha256"]], r["label"], str(r.get("train_seed")), _pct(r, "clean"), _pct(r, "pgd20"),
             _pct(r, "mma"), _pct(r, "aa"), _alignment(r) if alignment else _pct(r, "corruptions"), _checks(r)]
            for r in results]
    return markdown((header, rows))


def baseline_pairs(runs: dict) -> list[tuple[str, str]]:
    """Each PART run (controls too) and its baseline: the same experiment's run of its defense and seed without
    PART (part.experiments, from the runs' configs), in the manifest's order."""
    configs = {n: RunDir(ROOT / CHECKPOINTS / n).config() for n in runs if RunDir(ROOT / CHECKPOINTS / n).exists()}
    bases = {r: b.run for e in find_experiments(configs) for r, b in e.baselines.items() if b.run}
    return [(n, bases[n]) for n in runs if n in bases]


def control_pairs(runs: dict) -> list[tuple[str, str]]:
    """Each control (a PART run with another recipe) and the plain PART run of its preset and seed."""
    runs = runs.values()
    plain = {(r["preset"], r["seed"]): r["run"] for r in runs if "recipe" not in r.get("set", {})}
    return [(r["run"], plain[(r["preset"], r["seed"])]) for r in runs
            if "recipe" in r.get("set", {}) and (r["preset"], r["seed"]) in plain]


def _p(p: float) -> str:
    return " (p<0.001)" if p < 0.001 else f" (p={p:.2f})" if p >= 0.01 else f" (p={p:.3f})"


def _energy_change(r: dict, base: dict) -> str:
    """The change of the CAM's mean energy on the object, with the Wilcoxon signed-rank p over the same images."""
    from scipy.stats import wilcoxon

    ours, theirs = r["attacks"].get("alignment") or {}, base["attacks"].get("alignment") or {}
    if ours.get("energy") is None or theirs.get("energy") is None:
        return "–"
    a, b = ours.get("energy_per_image") or [], theirs.get("energy_per_image") or []
    text = f"{ours['energy'] - theirs['energy']:+.3f}"
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if len(a) == len(b) and pairs and any(x != y for x, y in pairs):
        text += _p(float(wilcoxon([x for x, _ in pairs], [y for _, y in pairs]).pvalue))
    return text


def difference_table(pairs: list[tuple[str, str]], by_run: dict[str, dict], header: list[str],
                     attacks: tuple[str, ...] = ("clean", "pgd20", "mma", "aa", "corruptions"),
                     energy: bool = False) -> str:
    """Run minus reference, in points, with the exact McNemar p-value where both were attacked image by image
    on the same images (and, with `energy`, the change of the CAM's energy on the object with Wilcoxon's p).
    Pairs with a run not evaluated yet are left out."""
    rows = []
    for name, ref in pairs:
        r, base = by_run.get(name), by_run.get(ref)
        if r is None or base is None:
            continue
        cells = []
        for a in attacks:
            ours, theirs = r["attacks"].get(a, {}), base["attacks"].get(a, {})
            if _acc(r, a) is None or _acc(base, a) is None:
                cells.append("–")
                continue
            text = f"{_acc(r, a) - _acc(base, a):+.2f}"
            if ours.get("correct") and ours.get("n") == theirs.get("n"):
                text += _p(mcnemar(ours["correct"], theirs["correct"]))
            cells.append(text)
        rows.append([name, ref] + cells + ([_energy_change(r, base)] if energy else []))
    heads = {"clean": "Natural", "pgd20": "PGD-20", "mma": "MMA", "aa": "AA", "corruptions": "Corruptions"}
    return markdown((header + [heads[a] for a in attacks] + (["CAM energy on the object"] if energy else []), rows))


def timing(runs: dict, names: list[str]) -> str:
    """Training seconds per run (epochs + mask refreshes, not the per-epoch monitoring evaluation), and
    PART over its baseline for each pair trained side by side."""
    rows, seconds, part = [], {}, {}
    for name in names:
        rd = RunDir(ROOT / CHECKPOINTS / name)
        cfg, metrics = rd.config(), rd.metrics()
        burn = [x["epoch_s"] + x["mask_refresh_s"] for x in metrics if x["epoch"] <= cfg["burn_in_epochs"]]
        rest = [x["epoch_s"] + x["mask_refresh_s"] for x in metrics if x["epoch"] > cfg["burn_in_epochs"]]
        refresh = sum(x["mask_refresh_s"] for x in metrics)
        seconds[name], part[name] = (sum(burn), sum(rest)), cfg["part"]
        rows.append([name, f"{statistics.fmean(burn):.0f}", f"{statistics.fmean(rest):.0f}", f"{refresh:.0f}",
                     f"{sum(burn) + sum(rest):.0f}"])
    if not rows:
        return "No run is evaluated yet.\n"
    header = ["Run", f"Epoch 1-{cfg['burn_in_epochs']} (s, mean)", "Later epochs (s, mean)", "Mask refreshes (s, all)",
              "Total (s)"]
    ratios = [["PART run", "Baseline run", "Ratio, whole run", "Ratio, epochs after burn-in"]]
    for name in names:
        r = runs[name]
        base = r["surrogate"]
        if name in seconds and base in seconds and part[name] and not part[base] and "recipe" not in r.get("set", {}):
            (b1, b2), (p1, p2) = seconds[base], seconds[name]
            ratios.append([name, base, f"{(p1 + p2) / (b1 + b2):.3f}", f"{p2 / b2:.3f}"])
    return markdown((header, rows)) + "\n" + markdown((ratios[0], ratios[1:]))


def measured(only: list[str] | None = None, group: str = "runs") -> str:
    """The measured block of docs/results.md for the manifest's `group` ("runs", "testbed", "vit"), from every
    evaluated run on disk (or only those named)."""
    m = manifest()
    runs = m[group]
    evaluated = [n for n in runs if RunDir(ROOT / CHECKPOINTS / n).has_evaluations() and (only is None or n in only)]
    if not evaluated:
        return "No run is evaluated yet.\n"
    results = load_results([ROOT / CHECKPOINTS / n for n in evaluated])
    names = {r["checkpoint_sha256"]: Path(r["run"]).name for r in results}
    by_run = {names[r["checkpoint_sha256"]]: r for r in results}
    missing = [n for n in runs if n not in evaluated]
    testbed = group != "runs"  # their own sections: alignment per run, no corruption tables
    columns = dict(attacks=("clean", "pgd20", "mma", "aa"), energy=True) if testbed else {}
    eps = ", ".join(sorted({str(r.get("eps_text")) for r in results}))
    parts = [f"L-inf eps = {eps}; {images_line(results)}.\n\n",
             "### Table 1: accuracy (%), mean ± std over seeds, (difference to the baseline)\n\n",
             table1(results, _baselines(results)),
             "\n### Every run\n\n", per_run_table(results, names, alignment=testbed),
             "\n### PART minus its baseline, run by run (percentage points; exact McNemar p on the same images)\n\n",
             difference_table(baseline_pairs(runs), by_run, ["PART run", "Baseline run"], **columns),
             "\n### Controls minus PART, same defense and seed (percentage points; exact McNemar p)\n\n",
             difference_table(control_pairs(runs), by_run, ["Control run", "PART run"], **columns)]
    if not testbed:
        parts += ["\n### Corruptions at severity 1 (accuracy %, Table 4)\n\n", corruption_table(results, 1),
                  "\n### Corruptions, mean over severities 1-5 (accuracy %)\n\n", corruption_table(results, None)]
    parts += ["\n### Training time\n\n", timing(runs, evaluated),
              "\n### Commands\n\n```bash\n", _commands(m, runs), "```\n"]
    if missing:
        parts.insert(0, f"Not measured yet: {', '.join(missing)}.\n\n")
    pending = [f"{n} ({', '.join(runs[n]['pending'])})" for n in evaluated if runs[n].get("pending")]
    if pending:
        parts.insert(0, f"Attacks not run yet, shown as –: {'; '.join(pending)} (the commands below run them).\n\n")
    return "".join(parts)



# --- precision parity: the same preset and seed in bf16 and in float32 ----------------------------------

def parity_pairs(m: dict) -> list[tuple[str, str]]:
    """Each parity run and the run of the main tables it repeats in another precision."""
    return [(name, r["repeats"]) for name, r in m["parity"].items()]


def seed_pairs(m: dict, parity: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """For each run a parity run repeats, the run of the same preset, precision and recipe at another seed."""
    runs, out = m["runs"], []
    for _, ref in parity:
        r = runs[ref]
        same = [n for n, o in runs.items() if n != ref and o["preset"] == r["preset"] and o["amp"] == r["amp"]
                and o.get("set") == r.get("set")]
        out += [(ref, n) for n in same if (ref, n) not in out]
    return out


def parity() -> str:
    """The precision-parity block of docs/results.md, from the parity runs and the runs they repeat."""
    m = manifest()
    pairs = parity_pairs(m)
    names = [n for pair in pairs for n in pair if RunDir(ROOT / CHECKPOINTS / n).has_evaluations()]
    seeds = [p for p in seed_pairs(m, pairs) if RunDir(ROOT / CHECKPOINTS / p[1]).has_evaluations()]
    names += [b for _, b in seeds if b not in names]
    if not names:
        return "No parity run is evaluated yet.\n"
    results = load_results([ROOT / CHECKPOINTS / n for n in names])
    run_names = {r["checkpoint_sha256"]: Path(r["run"]).name for r in results}
    by_run = {run_names[r["checkpoint_sha256"]]: r for r in results}
    every = {**m["runs"], **m["parity"]}
    commands = [shlex.join(train_command(every[n])) for n, _ in pairs]
    commands += [shlex.join(c) for n, _ in pairs for c in eval_commands(every[n], m["aa_images"])]
    return "".join([
        "### bf16 minus float32, same preset and seed (percentage points; exact McNemar p on the same images)\n\n",
        difference_table(pairs, by_run, ["bf16 run", "float32 run"]),
        "\n### Seed minus seed, float32: the noise to compare with (percentage points; exact McNemar p)\n\n",
        difference_table(seeds, by_run, ["Run", "Other seed"]),
        "\n### Every run of these tables\n\n", per_run_table(results, run_names),
        "\n### Commands\n\n```bash\n", "\n".join(commands), "\n```\n"])


def write_results() -> None:
    path = ROOT / RESULTS
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{RESULTS} has no {BEGIN} ... {END} block to fill")
    head, rest = text.split(BEGIN, 1)
    text = head + BEGIN + "\n" + measured() + END + rest.split(END, 1)[1]
    if PARITY_BEGIN in text and PARITY_END in text:
        head, rest = text.split(PARITY_BEGIN, 1)
        text = head + PARITY_BEGIN + "\n" + parity() + PARITY_END + rest.split(PARITY_END, 1)[1]
    for group, (begin, end) in GROUPS.items():
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            text = head + begin + "\n" + measured(group=group) + end + rest.split(end, 1)[1]
    path.write_text(text)
    print(f"wrote {RESULTS}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/reproduce.py", description=__doc__.split("\n")[0])
    p.add_argument("step", choices=("commands", "train", "eval", "results"))
    p.add_argument("runs", nargs="*", help="run names from checkpoints/shipped.json (default: all)")
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args(argv)
    known = list(every_run(manifest()))
    unknown = [r for r in args.runs if r not in known]
    if unknown:
        p.error(f"unknown run(s) {', '.join(unknown)}; accepted: {', '.join(known)}")
    names = args.runs or known
    if args.step == "commands":
        print(commands(), end="")
        return 0
    if args.step == "results":
        write_results()
        return 0
    return (train if args.step == "train" else evaluate)(names, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
