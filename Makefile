# Two commands set the course up on a fresh machine with Python 3.11+ and make:
#   make lab    create the environment and start JupyterLab on the course
#   make test   create the environment and run the test suite
# Instructors: make release | make rubric | make autograde | make feedback | make grades | make report (see README.md).
# Students: make validate NOTEBOOK=notebooks/<id>/<id>.ipynb before handing in.
# A class server (root): make hub | make hub-stop | make hub-clean (JupyterHub for hub/roster.csv; README.md).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BROWSER_STAMP := $(VENV)/.browser-installed
# nbgrader shells out to alembic (in the environment's bin/) when it creates a gradebook.
RUN := PATH="$(abspath $(BIN)):$$PATH"
ASSIGNMENTS ?= 01_UNets 02_Diffusion_Models 03_Optimizations 04_Classifier_Free_Diffusion 05_CLIP 06_Assessment
# Only assignments whose instructor notebook exists are released or graded.
PRESENT = $(foreach a,$(ASSIGNMENTS),$(if $(wildcard solutions/$(a)/$(a).ipynb),$(a)))
LAB_ARGS ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
PYTEST_ARGS ?=
# Class grading: JOBS worker processes (default: every core), or SCHEDULER=tcp://HOST:PORT for a Dask
# cluster; GRADE_ARGS for more options of `python -m grader autograde` (e.g. --force).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
SCHEDULER ?=
GRADE_ARGS ?=

.PHONY: env lab test test-fast test-browser test-hub hub hub-stop hub-clean release rubric autograde feedback validate grades report bench bench-grading course-run judge clean help

help:
	@sed -n '1,5p' Makefile | sed 's/^# \{0,1\}//'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11, 4) else "Python 3.11.4 or newer is needed, found " + sys.version.split()[0] + "; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e ".[dev,clip]"
	$(BIN)/python -c "import torch, torchvision.ops, einops, nbgrader; print('environment ready: torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $(STAMP)

env: $(STAMP)

lab: $(STAMP)
	@echo "Starting JupyterLab on the course; open the URL printed below (student notebooks: notebooks/)."
	$(RUN) $(BIN)/jupyter lab --no-browser --ServerApp.root_dir="$(CURDIR)" $(ROOT_FLAG) $(LAB_ARGS)

test: $(STAMP)
	$(RUN) $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(RUN) $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Drives JupyterLab in a real browser (tests/browser/); needs Chromium (Debian: apt-get install chromium).
# Screenshots of every step go to artifacts/browser/.
$(BROWSER_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,clip,browser]"
	touch $(BROWSER_STAMP)

test-browser: $(BROWSER_STAMP)
	$(RUN) $(BIN)/python -m pytest tests/browser -m browser $(PYTEST_ARGS)

release: $(STAMP)
	$(RUN) $(BIN)/python -m grader.release $(PRESENT)

# A class server on this machine (run as root): JupyterHub for the people of HUB_ROSTER, each in their own
# login, nbgrader's exchange between them, everything under HUB_PREFIX (hub/hubctl.py, hub/jupyterhub_config.py).
# HUB_PYTHON: an interpreter every user may run, the same Python version as the course's environment
# (default: the one the environment was made from, copied into HUB_PREFIX when it lies under /root).
HUB_STAMP := $(VENV)/.hub-installed
HUB_PREFIX ?= /srv/diffusion-course
HUB_ROSTER ?= hub/roster.csv
HUB_IP ?= 127.0.0.1
HUB_PORT ?= 8000
HUB_PYTHON ?=
# Assignments recorded in the instructor's course when it is made (default: every one, as `make release`).
HUB_ASSIGNMENTS ?= $(PRESENT)
HUB := $(BIN)/python hub/hubctl.py --prefix "$(HUB_PREFIX)"
$(HUB_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,clip,hub]"
	touch $(HUB_STAMP)

hub: $(HUB_STAMP)
	$(RUN) $(HUB) --roster "$(HUB_ROSTER)" --venv "$(abspath $(VENV))" $(if $(HUB_PYTHON),--python "$(HUB_PYTHON)") --ip $(HUB_IP) --port $(HUB_PORT) --assignments "$(HUB_ASSIGNMENTS)" start

# Stops JupyterHub and every user's server; homes, the instructor's course and the exchange stay.
hub-stop:
	$(HUB) stop

# hub-stop, then removes the demo logins `make hub` created (with their homes) and HUB_PREFIX.
hub-clean:
	$(HUB) clean

# The class in a real browser (tests/hub/, root): release, fetch, submit, collect, grade, feedback for two
# students; screenshots in artifacts/hub/.
test-hub: $(HUB_STAMP) $(BROWSER_STAMP)
	$(RUN) $(BIN)/python -m pytest tests/hub -m hub $(PYTEST_ARGS)

# instructor/<id>.md: graded cells, points, checks, common wrong answers with their messages (minutes).
rubric: $(STAMP)
	$(RUN) $(BIN)/python -m grader.rubric --capture $(PRESENT)

autograde: $(STAMP)
	$(RUN) $(BIN)/python -m grader autograde $(PRESENT) $(if $(SCHEDULER),--scheduler $(SCHEDULER),--jobs $(JOBS)) $(GRADE_ARGS)

# Feedback pages from the graded results (checks' messages only, never their code or references).
feedback: $(STAMP)
	$(RUN) $(BIN)/python -m grader.feedback --results autograded --out feedback $(PRESENT)

# Run notebooks with their visible checks; exits non-zero when one fails (NOTEBOOK=path for one).
NOTEBOOK ?= $(foreach a,$(PRESENT),notebooks/$(a)/$(a).ipynb)
validate: $(STAMP)
	$(RUN) $(BIN)/python -m grader.validate $(NOTEBOOK)

grades: $(STAMP)
	$(RUN) $(BIN)/python -m grader grades --to grades.csv

report: $(STAMP)
	$(RUN) $(BIN)/python -m grader report --out report

bench: $(STAMP)
	$(RUN) $(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

bench-grading: $(STAMP)
	$(RUN) $(BIN)/python benchmarks/bench_grading.py $(BENCH_ARGS)

# What a student gets: the six instructor notebooks top to bottom on the real data, one table of wall
# times and payoff figures against their targets; executed notebooks in benchmarks/results/course-run-<profile>/.
COURSE_RUN_ARGS ?=
course-run: $(STAMP)
	$(RUN) $(BIN)/python benchmarks/course_run.py $(COURSE_RUN_ARGS)

# Notebook 06's judge: trained on the full train split, calibrated on the test split, written to judge/.
judge: $(STAMP)
	$(RUN) $(BIN)/python -m utils.judge $(JUDGE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache gradebook.db autograded feedback logs report
