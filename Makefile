# `make demo` runs the main job on the real corpus, `make sweep` the 6-trial reward sweep,
# and `make test` the test suite.
# All create .venv first. torch is pinned to the CPU build that these machines
# keep on local disk; set TORCH to another requirement on other machines.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
DATA ?= ../shared/data/sentimix
OUT ?= outputs/demo
PYTEST_ARGS ?=

export HF_HUB_OFFLINE := 1

.PHONY: setup demo smoke sweep test bench bench-quick clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet "$(TORCH)"
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/rlkd compare --data $(DATA) --out $(OUT)

smoke: setup
	$(VENV)/bin/rlkd compare --smoke-test --data $(DATA) --out outputs/smoke

sweep: setup
	$(VENV)/bin/rlkd sweep --data $(DATA) --config jobs/configs/sweep_rewards.yaml --out outputs/sweep

test: setup
	RLKD_DATA=$(DATA) $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Benchmarks write bench/results/*.json; bench-quick runs short versions into bench/results/quick/.
# quality.py trains the 15 students (about 70 minutes on 2 cores); controller_cost.py and student_teacher.py
# read the compare run it leaves.
bench: setup
	$(VENV)/bin/python bench/quality.py --data $(DATA)
	$(VENV)/bin/python bench/controller_cost.py --run "$$($(VENV)/bin/python -c 'import json; print(json.load(open("bench/results/quality.json"))["run"])')"
	$(VENV)/bin/python bench/student_teacher.py --data $(DATA)
	$(VENV)/bin/python bench/teacher_cost.py --data $(DATA)
	$(VENV)/bin/python bench/step_profile.py --data $(DATA)
	$(VENV)/bin/python bench/overhead.py --data $(DATA)
	$(VENV)/bin/python bench/scaling.py --data $(DATA)
	$(VENV)/bin/python bench/object_store.py --steps 2000
	$(VENV)/bin/python bench/estimators.py --data $(DATA)

QUICK := RLKD_BENCH_RESULTS=bench/results/quick
bench-quick: setup
	$(QUICK) $(VENV)/bin/python bench/quality.py --data $(DATA) --smoke-test --methods kd,rl --seeds 1
	$(QUICK) $(VENV)/bin/python bench/controller_cost.py --run "$$($(VENV)/bin/python -c 'import json; print(json.load(open("bench/results/quick/quality.json"))["run"])')"
	$(QUICK) $(VENV)/bin/python bench/student_teacher.py --data $(DATA) --examples 128
	$(QUICK) $(VENV)/bin/python bench/teacher_cost.py --data $(DATA) --steps 20 --repeats 1 --cache-examples 500
	$(QUICK) $(VENV)/bin/python bench/overhead.py --data $(DATA) --steps 20 --repeats 1
	$(QUICK) $(VENV)/bin/python bench/scaling.py --data $(DATA) --steps 20 --repeats 1
	$(QUICK) $(VENV)/bin/python bench/object_store.py --steps 150

clean:
	rm -rf outputs .pytest_cache
