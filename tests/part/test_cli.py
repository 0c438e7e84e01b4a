"""The `part` command: end to end on a tiny run, and one-line errors."""

import pytest
from PIL import Image

from part.cli import main
from part.runs import RunDir


def test_train_resume_and_cam(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--preset", "fmnist-part", "--epochs", "2", "--burn-in", "1", "--subset", "128",
            "--out", str(out), "--no-progress", "--set", "eval_n=32", "--set", "attack_steps=1", "--set", "eval_steps=1"]
    assert main(args) == 0
    run = RunDir(out)
    assert run.epochs() == [1, 2] and run.status()["state"] == "completed"
    printed = capsys.readouterr().out  # with --no-progress (a job's log) a line per epoch, not a bar
    assert "epoch 1/2 burn-in: 1 batch\n" in printed and "epoch 2/2 part: train loss " in printed
    assert "test clean " in printed and "pgd1 " in printed
    assert main(["resume", str(out), "--no-progress"]) == 0  # nothing left to do, nothing lost
    assert run.epochs() == [1, 2] and len(run.metrics()) == 2
    image = tmp_path / "shirt.jpg"
    Image.new("RGB", (300, 200), (200, 30, 30)).save(image)
    png = tmp_path / "cam.png"
    assert main(["cam", "--checkpoint", str(run.checkpoint_path(2)), "--image", str(image), "--out", str(png),
                 "--method", "gradcam,layercam"]) == 0
    assert Image.open(png).size == (224, 224)
    capsys.readouterr()
    assert main(["eval", "--run", str(out), "--attacks", "clean,fgsm", "--n", "16", "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "evaluating epoch 2 on 16 test images: clean, fgsm"
    assert printed[1].startswith("clean: done in ") and printed[2].startswith("fgsm: done in ")


@pytest.mark.parametrize("argv,message", [
    (["train", "--preset", "nope"], "invalid choice: 'nope'"),
    (["train", "--preset", "fmnist-at", "--set", "eps=abc"], "eps: 'abc' is not a number"),
    (["train", "--preset", "fmnist-at", "--epochs", "two"], "invalid int value"),
    (["resume", "/nonexistent/run"], "is not a run folder"),
    (["cam", "--checkpoint", "/nonexistent.pt", "--image", "x.png", "--out", "y.png"], "no such file"),
])
def test_errors_are_one_line(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_cam_rejects_a_file_that_is_not_an_image(tmp_path, capsys):
    from part.cli import main as run_main

    run = tmp_path / "run"
    run_main(["train", "--preset", "fmnist-at", "--epochs", "1", "--subset", "64", "--out", str(run), "--no-progress",
              "--set", "eval_n=16", "--set", "attack_steps=1", "--set", "eval_steps=1"])
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    code = run_main(["cam", "--checkpoint", str(RunDir(run).checkpoint_path(1)), "--image", str(bad), "--out", str(tmp_path / "o.png")])
    assert code == 2 and "not a readable image" in capsys.readouterr().err


def test_train_from_a_config_file_matches_the_preset_it_was_written_from(tmp_path):
    import json

    from part.training.config import preset
    from part.runs import RunDir

    cfg = preset("fmnist-part", epochs=1, burn_in_epochs=0, subset=64, eval_n=16, attack_steps=1, eval_steps=1,
                 probe_count=2, batch_size=32)
    (tmp_path / "c.json").write_text(json.dumps(cfg.to_dict()))
    main(["train", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "run"), "--no-progress"])
    saved = RunDir(tmp_path / "run").config()
    assert {k: saved[k] for k in ("epochs", "subset", "part", "eps_low", "cam_methods")} == \
        {"epochs": 1, "subset": 64, "part": True, "eps_low": 0.0875, "cam_methods": ["gradcam"]}
    (tmp_path / "bad.json").write_text("[]")
    assert main(["train", "--config", str(tmp_path / "bad.json"), "--out", str(tmp_path / "r2")]) == 2
    assert not (tmp_path / "r2").exists()
