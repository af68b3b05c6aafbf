# The two commands a newcomer needs: `make run` and `make test`. Everything else builds on them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
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

check: venv
	$(HOLD) $(PY) manage.py check
	$(HOLD) $(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

stop: venv
	$(PY) -m flashsale.embedded stop
