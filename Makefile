# The two commands: `make run` and `make test`. Both set up first, idempotently.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FMNIST := /usr/share/datasets/fashion-mnist
STAMP := $(VENV)/.installed
# The exact version of every package the test suite passed with; `make lock` rewrites it.
LOCK := constraints.txt

.PHONY: setup sysdeps lock run test test-all test-gpu demo bench bench-explain serve clean

setup: $(STAMP) sysdeps

# torch first, pinned: these builds lie on the local disk; an unpinned torch would download GBs.
# Everything else at the versions of $(LOCK), so that a later install gets what was tested.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c $(LOCK) torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

# Refresh the lock from the packages now in .venv (after an upgrade the full suite passed with):
#   .venv/bin/pip install -U <package> && make test-all && make lock
lock:
	@test -x $(PY) || { echo "no $(VENV): run make setup first" >&2; exit 1; }
	{ echo "# The exact versions \`make setup\` installs (pip install -c $(LOCK)): those the test suite"; \
	  echo "# passed with, on $$($(PY) -c 'import platform; print("Python", platform.python_version())'). Rewrite with \`make lock\`."; \
	  $(PY) -m pip freeze --all --exclude-editable | grep -v -e '^#' -e '^pip=='; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	touch $(STAMP)

# Debian packages: the default dataset, a browser for the browser test, docker-compose to validate
# the compose file. Installed only when missing.
sysdeps:
	@missing=""; \
	[ -d $(FMNIST) ] || missing="$$missing dataset-fashion-mnist"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	command -v slurmctld >/dev/null || missing="$$missing slurm-wlm"; \
	command -v munged >/dev/null || missing="$$missing munge"; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	fi

# The API (port 8000) and the dashboard (port 8501) on the runs in checkpoints/; Ctrl-C stops both.
run: setup
	scripts/run_app.sh

# A short PART run (2 epochs, 2000 images) for a quick look at a fresh training.
demo: setup
	$(VENV)/bin/part train --preset fmnist-part --epochs 2 --burn-in 1 --subset 2000 --out checkpoints/demo-fmnist-part-$$(date +%Y%m%d-%H%M%S)

test: setup
	$(VENV)/bin/pytest -q

test-all: setup
	$(VENV)/bin/pytest -q -m ''

# On a machine with an NVIDIA GPU; sized for under 5 minutes on one; without CUDA it fails at once,
# saying why. The tests marked cuda (device auto, bf16/fp16 autocast with channels_last, the API on
# cuda, nccl DDP on 2+ GPUs), then one cifar10-part epoch on generated CIFAR-10 files with amp=bf16
# and channels_last (scripts/gpu_check.py).
test-gpu: setup
	$(PY) scripts/gpu_check.py --probe
	$(VENV)/bin/pytest -q -rs -m cuda tests/gpu
	$(PY) scripts/gpu_check.py

bench: setup
	$(VENV)/bin/part bench

bench-explain: setup
	$(PY) benchmarks/bench_explain.py

serve: setup
	$(VENV)/bin/part serve

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
