"""The runs shipped in checkpoints/ are complete, load, are fully evaluated, stay under 80 MiB, are
reproduced in the precision they were trained in, and docs/results.md reports exactly what their files hold."""

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
import torch

from part.training.config import TrainConfig
from part.evaluation.reports import load_results
from part.runs import RunDir, load_model

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "checkpoints"
MANIFEST = json.loads((ROOT / "shipped.json").read_text())
TRACKED = subprocess.run(["git", "ls-files", "checkpoints"], cwd=REPO, capture_output=True, text=True).stdout.split()
# Shipped = committed; a run still training here (untracked) is not one yet.
SHIPPED = sorted({Path(p).parts[1] for p in TRACKED if p.endswith("/config.json")})
pytestmark = pytest.mark.skipif(not TRACKED, reason="needs a git checkout to tell shipped runs from local ones")


def _reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", REPO / "scripts" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GROUPS = ("runs", "parity", "testbed", "vit")
OWN_SECTION = {r["run"]: r for g in ("testbed", "vit") for r in MANIFEST.get(g, [])}  # evaluated with fewer images


def test_every_run_of_the_manifest_is_shipped_and_nothing_else():
    assert set(SHIPPED) == {r["run"] for g in GROUPS for r in MANIFEST.get(g, [])}


def test_shipped_files_stay_under_80_mib():
    assert sum((REPO / p).stat().st_size for p in TRACKED) < 80 * 2**20


@pytest.mark.parametrize("name", SHIPPED)
def test_the_manifest_records_the_precision_each_run_was_trained_in(name):
    """A config saved before `amp` existed was trained in float32; the commands pass the precision explicitly."""
    reproduce = _reproduce()
    r = reproduce.every_run(reproduce.manifest())[name]
    assert r["amp"] == RunDir(ROOT / name).config().get("amp", "off")
    command = reproduce.train_command(r)
    assert command[command.index(f"amp={r['amp']}") - 1] == "--set"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_run_is_complete_and_loads(name):
    run = RunDir(ROOT / name)
    cfg = TrainConfig.from_dict(run.config())
    epochs = list(range(1, cfg.epochs + 1))
    assert run.status()["state"] == "completed" and [r["epoch"] for r in run.metrics()] == epochs
    # the testbed's and the ViT's runs keep the last weights only (the budget), and every epoch's probes
    assert run.epochs() == ([cfg.epochs] if name in OWN_SECTION else epochs) and run.probe_epochs() == epochs
    inputs = run.load_probe_inputs()
    same = [n for n in SHIPPED if RunDir(ROOT / n).config()["dataset"] == cfg.dataset]
    assert torch.equal(inputs["x"], RunDir(ROOT / same[0]).load_probe_inputs()["x"])  # one probe set per dataset
    model, ckpt = load_model(run.checkpoint_path(cfg.epochs))
    assert ckpt["meta"]["dataset"] == cfg.dataset
    with torch.no_grad():
        pred = model(inputs["x"]).argmax(1)
    for epoch in epochs:
        probes = run.load_probes(epoch)
        assert probes["cam"].shape[0] == len(inputs["x"])
    assert torch.equal(pred, run.load_probes(cfg.epochs)["pred"])  # the stored probes are this model's


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_run_is_fully_evaluated_on_the_common_images(name):
    [result] = load_results([ROOT / name])
    n = {a: rec.get("n") for a, rec in result["attacks"].items()}
    assert result["epoch"] == TrainConfig.from_dict(RunDir(ROOT / name).config()).epochs
    assert "amp" not in result  # reported accuracies are measured in float32, whatever the training precision
    assert n["clean"] == n["pgd20"] == 10000
    pending = set(OWN_SECTION.get(name, {}).get("pending", []))  # named in the manifest, shown as "–" in the docs
    assert pending <= {"mma", "aa", "checks"} and not pending & set(n)
    if name in OWN_SECTION:  # AutoAttack, MMA and the checks on fewer images; the CAM's alignment on all
        sizes = OWN_SECTION[name]["eval"]
        expected = {"aa": sizes["aa_images"], "mma": sizes["mma_images"], "alignment": 10000}
        assert {a: n[a] for a in expected if a not in pending} == {a: v for a, v in expected.items() if a not in pending}
        assert result["attacks"]["alignment"]["energy"] is not None
    else:
        assert n["aa"] == MANIFEST["aa_images"]
    if name in {r["run"] for r in MANIFEST["runs"]}:  # the parity runs need natural, PGD-20, AA and the checks
        assert n["mma"] == 10000 and n["corruptions"] == MANIFEST["aa_images"]
    if "checks" not in pending:
        assert len(result["attacks"]["checks"]["checks"]) == 5
    dataset = RunDir(ROOT / name).config()["dataset"]
    first = next(n for n in SHIPPED if RunDir(ROOT / n).config()["dataset"] == dataset)
    [theirs] = load_results([ROOT / first / "eval" / "epoch_0010"])
    if "aa" in pending:
        return
    [this] = load_results([ROOT / name / "eval" / "epoch_0010"])
    if this["n"] == theirs["n"]:
        assert this["indices"] == theirs["indices"]  # AutoAttack saw the same images for every model


def test_results_document_matches_the_shipped_files():
    reproduce = _reproduce()
    text = (REPO / "docs" / "results.md").read_text()
    block = text.split(reproduce.BEGIN + "\n", 1)[1].split(reproduce.END, 1)[0]
    assert block == reproduce.measured(SHIPPED), "docs/results.md is stale: run `python scripts/reproduce.py results`"
    for group, (begin, end) in reproduce.GROUPS.items():
        if MANIFEST.get(group):
            block = text.split(begin + "\n", 1)[1].split(end, 1)[0]
            assert block == reproduce.measured(group=group), f"the {group} block of docs/results.md is stale"
    if MANIFEST.get("parity"):
        block = text.split(reproduce.PARITY_BEGIN + "\n", 1)[1].split(reproduce.PARITY_END, 1)[0]
        assert block == reproduce.parity(), "docs/results.md is stale: run `python scripts/reproduce.py results`"


def test_the_manifest_turns_into_the_commands_that_made_each_run():
    reproduce = _reproduce()
    runs = reproduce.manifest()["runs"]
    assert all(r["surrogate"] in runs and r["surrogate"] != name for name, r in runs.items())
    assert reproduce.train_command(runs["fmnist-part-shuffled-s0"])[1:] == [
        "train", "--preset", "fmnist-part", "--seed", "0", "--set", "recipe=shuffled", "--set", "amp=off",
        "--out", "checkpoints/fmnist-part-shuffled-s0", "--no-progress"]
    full, aa, checks = (" ".join(c) for c in reproduce.eval_commands(runs["fmnist-part-t-s0"], 1000))
    assert "--attacks clean,pgd20,mma --n 0 --out checkpoints/fmnist-part-t-s0/eval/full_epoch_0010" in full
    assert aa.endswith("--attacks clean,aa,corruptions --n 1000")
    assert "--surrogate checkpoints/fmnist-trades-s0/checkpoints/epoch_0010.pt" in checks
    with pytest.raises(SystemExit):
        reproduce.main(["eval", "no-such-run"])
    m = reproduce.manifest()
    assert reproduce.control_pairs(m["runs"]) == [("fmnist-part-shuffled-s0", "fmnist-part-s0"),
                                          ("fmnist-part-uniform-mean-s0", "fmnist-part-s0")]
    assert ("fmnist-part-m-s0", "fmnist-mart-s0") in reproduce.baseline_pairs(m["runs"])
    assert all(not base.startswith("fmnist-part") for _, base in reproduce.baseline_pairs(m["runs"]))


def test_reproduce_skips_finished_runs_resumes_stopped_ones_and_waits_for_surrogates(tmp_path, monkeypatch, capsys):
    reproduce = _reproduce()
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "shipped.json").write_text((ROOT / "shipped.json").read_text())
    for name, state in [("fmnist-at-s0", "completed"), ("fmnist-part-s0", "running")]:
        RunDir(tmp_path / "checkpoints" / name).write_config({"epochs": 10})
        (tmp_path / "checkpoints" / name / "status.json").write_text(json.dumps({"state": state}))
    jobs = []
    monkeypatch.setattr(reproduce, "_run_all", lambda js, n: jobs.extend(js) or 0)
    assert reproduce.main(["train", "fmnist-at-s0", "fmnist-part-s0", "fmnist-at-s1"]) == 0
    assert "fmnist-at-s0: completed, skipped" in capsys.readouterr().out
    assert [cmd[1:3] for [cmd] in jobs] == [["resume", "checkpoints/fmnist-part-s0"], ["train", "--preset"]]
    assert reproduce.main(["eval", "fmnist-at-s0"]) == 2  # its surrogate, fmnist-part-s0, is unfinished
    assert "train these runs first: fmnist-part-s0" in capsys.readouterr().err
