# panelcap: `make sim` runs the firmware against a simulated panel; `make test` runs the tests.
# Both install what they need on first use (a .venv, lib/, Debian packages) and reuse it after.

MICROPYTHON_VERSION := 1.29.0
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
MICROPYTHON := $(VENV)/bin/micropython
VENV_STAMP := $(VENV)/.installed
LIB_STAMP := lib/.installed
DEBS_STAMP := $(VENV)/.debs

# make sim options
PROFILE ?=
LIMIT_W ?= 7200
HOURS ?= 24
MQTT ?=
OUT ?= out

.PHONY: all test sim bench venv lib debs clean

all: test

venv: $(VENV_STAMP)
$(VENV_STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

lib: $(LIB_STAMP)
$(LIB_STAMP): requirements-lib.txt $(VENV_STAMP)
	PIP=$(VENV)/bin/pip sh tools/install_lib.sh requirements-lib.txt lib
	@touch $@

debs: $(DEBS_STAMP)
$(DEBS_STAMP): tools/ensure_debs.sh | $(VENV_STAMP)
	sh tools/ensure_debs.sh mosquitto:mosquitto socat:socat
	@touch $@

test: $(VENV_STAMP) $(LIB_STAMP) $(DEBS_STAMP)
	MICROPYTHON_VERSION=$(MICROPYTHON_VERSION) $(VPY) -m pytest -q tests

sim: $(VENV_STAMP) $(LIB_STAMP)
	$(VPY) tools/run_sim.py --profile "$(PROFILE)" --limit-w $(LIMIT_W) --hours $(HOURS) --out $(OUT) $(if $(MQTT),--mqtt $(MQTT))

clean:
	rm -rf $(OUT) build .pytest_cache

distclean: clean
	rm -rf $(VENV) lib/umqtt $(LIB_STAMP)
