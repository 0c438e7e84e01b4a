"""POST /api/sweeps on the local executor: checked before anything is written, one queued job per cell."""

from tests.backend.conftest import make_client

TINY = {"epochs": 2, "burn_in_epochs": 1, "subset": 128}


def test_a_sweep_queues_one_job_per_cell_and_refuses_a_bad_grid_before_writing(checkpoints):
    with make_client(checkpoints) as c:  # no supervisor thread: the jobs stay queued
        bad = c.post("/api/sweeps", json={"preset": "fmnist-part", "name": "bad", "grid": {"recipe": ["paper", "magic"]}})
        assert bad.status_code == 422 and "accepted: paper" in bad.json()["detail"]
        assert not (checkpoints / "bad.recipe-paper").exists() and c.get("/api/sweeps").json() == []
        r = c.post("/api/sweeps", json={"preset": "fmnist-part", "name": "abl", "overrides": TINY,
                                        "grid": {"eps_low": [0.0875, 0.05], "seed": [0, 1]}})
        assert r.status_code == 201, r.text
        cells = r.json()["cells"]
        assert [cell["run_id"] for cell in cells] == ["abl.eps_low-0.0875.seed-0", "abl.eps_low-0.0875.seed-1",
                                                      "abl.eps_low-0.05.seed-0", "abl.eps_low-0.05.seed-1"]
        assert {cell["job"]["state"] for cell in cells} == {"queued"} and cells[2]["job"]["spec"]["sweep"] == "abl"
        assert len(c.get("/api/jobs").json()) == 4 and c.get("/api/sweeps").json() == ["abl"]
        again = c.post("/api/sweeps", json={"preset": "fmnist-part", "name": "abl", "grid": {"seed": [0]}})
        assert again.status_code == 409 and "already exists" in again.json()["detail"]
        assert c.get("/api/sweeps/ghost").status_code == 404
