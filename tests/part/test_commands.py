"""One builder per `part` command line, and what the parser makes of what it builds."""

import pytest

from part.cli import _build_parser
from part.commands import eval_argv, resume_argv, train_argv


def test_train_from_a_config_file_parses_back():
    argv = train_argv("runs/x", config_file="runs/x/requested_config.json", nproc=2, part=())
    assert argv == ["train", "--config", "runs/x/requested_config.json", "--out", "runs/x", "--no-progress",
                    "--nproc", "2"]
    args = _build_parser().parse_args(argv)
    assert args.config == "runs/x/requested_config.json" and args.preset is None and args.nproc == 2


def test_train_from_a_preset_keeps_its_sets_in_order():
    argv = train_argv("out", preset="fmnist-part", seed=1, sets={"amp": "off", "eps": "8/255"}, progress=True, part=())
    assert argv == ["train", "--preset", "fmnist-part", "--seed", "1", "--set", "amp=off", "--set", "eps=8/255",
                    "--out", "out"]
    with pytest.raises(ValueError, match="exactly one"):
        train_argv("out", part=())
    with pytest.raises(ValueError, match="exactly one"):
        train_argv("out", preset="fmnist-at", config_file="c.json", part=())


def test_resume_and_eval_parse_back():
    assert resume_argv("r", part=()) == ["resume", "r", "--no-progress"]
    argv = eval_argv("r", attacks=["clean", "pgd20-map"], n=100, epoch=3, out="r/eval/x", map_run="m", map_eps=0.1,
                     corruption_files=None, amp="bf16", part=())
    args = _build_parser().parse_args(argv)
    assert (args.run, args.attacks, args.n, args.epoch, args.out, args.map_run, args.map_eps, args.amp,
            args.corruption_files, args.no_progress) == ("r", "clean,pgd20-map", 100, 3, "r/eval/x", "m", "0.1",
                                                         "bf16", None, True)
