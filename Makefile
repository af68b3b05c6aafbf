# The two commands a newcomer needs: `make run` and `make test`. Everything else builds on them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STRESS_BUYERS ?= 2000
STRESS_STOCK ?= 100
HOLD := $(PY) -m flashsale.embedded hold --

.PHONY: run test stress bench stop venv check

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

run: venv
	PORT=$(PORT) $(HOLD) $(PY) -m flashsale.serve

test: venv
	$(HOLD) $(PY) -m pytest $(PYTEST_ARGS)

# The habits CI holds us to: ruff (pyproject.toml), the house rules (rows locked only in
# lock_objects.py, FOR NO KEY UPDATE, no banners), Django's checks, no missing migration,
# and an OpenAPI schema that validates.
check: venv
	$(VENV)/bin/ruff check .
	$(HOLD) $(PY) -m pytest -q -p no:cacheprovider tests/test_codebase.py
	$(HOLD) $(PY) manage.py check
	$(HOLD) $(PY) manage.py makemigrations --check --dry-run
	$(HOLD) $(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

# The 2000-buyers / 100-units burst against the stack `make run` serves (rate limits off).
stress: venv
	$(HOLD) $(PY) -m stress.burst $(STRESS_BUYERS) $(STRESS_STOCK)

# Section 7's measurements in one run; writes docs/benchmarks.md and docs/benchmarks.json.
bench: venv
	$(HOLD) $(PY) manage.py bench --out docs/benchmarks

stop: venv
	$(PY) -m flashsale.embedded stop
