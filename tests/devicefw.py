"""The firmware on the simulated board in real time (virtual time at speed 1) beside devices
that are real MQTT clients on a real broker: the script it runs under micropython, and the
host side that reads its rows and acts at moments of the firmware's own time. Used by the
broker tests of other makers' devices (adapters, OpenEVSE, chargers, sensors, sub-panels,
inverters)."""
import json
import subprocess
import textwrap
import threading
import time

from conftest import MICROPYTHON, ROOT, mpy_env, run_mpy

# For a config test under micropython: errs(load) lists config's errors for the loads when
# that one load is configured, with MQTT (host '': without).
_LOAD_ERRS = """
import config, simboard as board
def errs(load, host='127.0.0.1'):
    cfg = config.defaults(board)
    cfg['mqtt_host'] = host
    cfg['loads'] = [load]
    return [e for e in config.validate(cfg, board) if 'loads' in e]
load = %r
print('OK', errs(load))
print('NODEV', errs({k: v for k, v in load.items() if k != 'device'}))
print('NOHOST', errs(load, ''))
"""


def load_config_lines(load, more=""):
    """config's errors for one device's load, as printed lines: OK (as given), NODEV
    (without its device), NOHOST (without MQTT), then what `more` prints (it has errs and
    load)."""
    return run_mpy(_LOAD_ERRS % (load,) + more, heap="512k").stdout.splitlines()


# Before the test's own setup: the board, the clocks and a panel whose EV is away. The
# setup then shapes params, makes `panel` and `cfg` (from `common`, which has the broker).
_PRELUDE = """
import asyncio, json, os, sys
from panelsim.vtime import VirtualTime
from panelsim import machine
from panelsim.panel import Panel
from panelsim.adcgen import AdcGen
from panelsim.profile import ConstantProfile, FeedProfile
from clock import Clock, WrappingClock
import simboard as board
import app as app_mod
import config
vt = VirtualTime(speed=1); vt.install()          # real time: its devices are real clients
clock = WrappingClock(vt.now_ms)
params = dict(board.PANEL)
ev = dict(params["ev"]); ev["arrive_h"] = None; params["ev"] = ev   # the panel's own EV: away
wh = dict(params["water_heater"]); params["water_heater"] = wh
common = {"mqtt_host": "127.0.0.1", "mqtt_port": %d, "mqtt_discovery": "",
          "telemetry_period_ms": 1000, "stagger_s": 1}
"""

_BOOT = """
machine.attach(panel, vt, board, AdcGen(board, panel))
logs = []
app = app_mod.App(board, machine, clock, cfg, log=logs.append)
app.net_clock = Clock()
def by_name(name):
    return [b for b in app.bindings if b.load.name == name][0]
"""

# Four rows a second: the test's row code makes `row` from `now` (its simulated ms).
_LOOP = """
async def main():
    asyncio.create_task(app.run())
    for t in range(%d):
        await asyncio.sleep_ms(250)
        now = vt.elapsed_ms()
%s
        row["t"] = now
        print(json.dumps(row))
        while logs:
            print(json.dumps({"log": logs.pop(0)}))
try:
    asyncio.run(main())
finally:
    app.force_safe()
"""


def script(port, seconds, setup, row, after_boot=""):
    """The firmware's script: setup (defines panel and cfg), after_boot (once the App is
    built, e.g. a line saying which drivers were imported), row (a block making `row`)."""
    return (_PRELUDE % port + textwrap.dedent(setup) + _BOOT + textwrap.dedent(after_boot)
            + _LOOP % (seconds * 4, textwrap.indent(textwrap.dedent(row).strip("\n"), " " * 8)))


def adapters_loaded(driver):
    """A first row saying which drivers the App imported: {"adapter": adapt_<driver>,
    "evmqtt": the charger rules, "others": every adapt_* module}."""
    return """
print(json.dumps({"adapter": "adapt_%s" in sys.modules, "evmqtt": "evmqtt" in sys.modules,
                  "others": [m for m in sys.modules if m.startswith("adapt_")]}))
""" % driver


class Firmware:
    """The script running under micropython; a thread collects its JSON rows."""

    def __init__(self, code=None, argv=(), heap="1m"):
        """code: a script's text (script()); or argv: a script's path and its arguments."""
        argv = ["-c", code] if code is not None else list(map(str, argv))
        self.proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=" + heap] + argv,
                                     cwd=ROOT, env=mpy_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.rows = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.rows.append(json.loads(line))

    def latest(self):
        """Its latest row, or None before the first."""
        return next((r for r in reversed(self.rows) if "t" in r), None)

    def now_ms(self):
        """Its own (simulated) time, as its latest row gives it."""
        last = self.latest()
        return last["t"] if last else 0

    def drive(self, plan=(), limit_s=90, each=None, period_s=0.05):
        """Runs each (ms, name, action) of plan once the firmware's own time passes ms, and
        each(self) every period_s, until it exits; returns {name: its ms at the action}."""
        plan = list(plan)
        marks = {}
        t0 = time.monotonic()
        while self.proc.poll() is None and time.monotonic() - t0 < limit_s:
            now = self.now_ms()
            while plan and now >= plan[0][0]:
                _, name, act = plan.pop(0)
                marks[name] = now
                act()
            if each is not None:
                each(self)
            time.sleep(period_s)
        return marks

    def finish(self, timeout=10, codes=(0,)):
        """Waits for its exit (killed past timeout) and checks how it ended (codes None: the
        caller checks)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        if codes is not None:
            assert self.proc.returncode in codes, self.proc.stderr.read()[-3000:]

    def samples(self):
        return [r for r in self.rows if "t" in r]

    def log(self):
        return [r["log"] for r in self.rows if "log" in r]

    def between(self, a_ms, b_ms):
        return [r for r in self.samples() if a_ms <= r["t"] < b_ms]
