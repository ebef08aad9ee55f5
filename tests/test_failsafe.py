"""Fail-safe behaviour of the whole firmware on the simulated board (unix port, virtual
time): boot holds every load off until the first valid measurement and brings them back
one at a time; a hung or crashing controller ends in safe outputs and a watchdog reset;
Ctrl-C and an unexpected exception leave every output safe; a simulated power cycle shows
the staggered cold-load pickup in the simulator's CSV."""
import csv
import io
import json
import subprocess
import sys

from conftest import ROOT, run_mpy

sys.path.insert(0, str(ROOT / "tools"))
import run_sim  # noqa: E402

HEAP = "1m"     # behaviour tests, from source; the heap budget is tests/test_e2e.py's

SETUP = """
import asyncio, json
from panelsim.vtime import VirtualTime
from panelsim import machine
from panelsim.panel import Panel
from panelsim.adcgen import AdcGen
from panelsim.profile import ConstantProfile
from clock import WrappingClock
import simboard as board
import app as app_mod

vt = VirtualTime(); vt.install()
clock = WrappingClock(vt.now_ms)
params = dict(board.PANEL)
wh = dict(params["water_heater"]); wh["start_c"] = 40; params["water_heater"] = wh
ev = dict(params["ev"]); ev["arrive_h"] = 0; ev["response_delay_ms"] = 1000; params["ev"] = ev
panel = Panel(params, ConstantProfile(BASE_W))
gen = AdcGen(board, panel)
machine.attach(panel, vt, board, gen)
logs = []

def outputs():
    # What the board drives: contactor coils and the pilot (0 A offered: paused).
    return [panel._coil[i] for i in range(len(board.OUTPUTS))], panel.pilot_ma // 1000

def all_safe():
    coils, amps = outputs()
    return not any(coils) and amps == 0 and machine._sim.pin_levels[board.PILOT["pin"]] == 1

def row(app):
    coils, amps = outputs()
    return {"t": vt.elapsed_ms(), "valid": app.sampler.valid, "coils": coils, "pilot_a": amps,
            "wh_w": panel.wh_w, "ev_w": panel.ev_w, "panel_w": panel.total_w,
            "state": app.controller.state, "feeds": app.supervisor.feeds if app.supervisor else 0}
"""


def run(code, base_w=1000):
    proc = run_mpy(SETUP.replace("BASE_W", str(base_w)) + code, heap=HEAP)
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


PROBE = """
app = app_mod.App(board, machine, clock, CFG, log=logs.append)
async def probe(seconds, every_ms):
    asyncio.create_task(app.run())
    for _ in range(seconds * 1000 // every_ms):
        print(json.dumps(row(app)))
        await asyncio.sleep_ms(every_ms)
"""


def up_events(rows):
    """(t_ms, what) each time an output starts or raises what it gives."""
    events = []
    for a, b in zip(rows, rows[1:]):
        for i, (x, y) in enumerate(zip(a["coils"], b["coils"])):
            if y > x:
                events.append((b["t"], "K%d" % (i + 1)))
        if b["pilot_a"] > a["pilot_a"]:
            events.append((b["t"], "pilot %d A" % b["pilot_a"]))
    return events


def test_boot_holds_every_load_off_until_valid_then_brings_them_back_staggered():
    # Both loads want power from the first instant (tank cold, car plugged in), and there
    # is room for both: only the fail-safe start and the stagger hold them back.
    stagger_s = 4
    rows = run(PROBE.replace("CFG", repr({"limit_w": 19200, "stagger_s": stagger_s})) + """
asyncio.run(probe(90, 250))
""", base_w=500)
    first_valid = next(r["t"] for r in rows if r["valid"])
    before = [r for r in rows if r["t"] < first_valid]
    assert before and all(not any(r["coils"]) and r["pilot_a"] == 0 for r in before)
    events = up_events(rows)
    assert [w for _, w in events][0] == "pilot 6 A"          # priority 1 first, at its floor
    assert "K1" in [w for _, w in events]                    # the water heater came back too
    # The first restore waits at least one stagger after the first valid measurement (the
    # controller may also want the room to hold for its settle time); then one step at a
    # time, each at least a stagger after the one before (within a control period).
    assert stagger_s * 1000 <= events[0][0] - first_valid <= 30000, events
    gaps = [b[0] - a[0] for a, b in zip(events, events[1:])]
    print("first valid at %d ms; restores: %s" % (first_valid, events[:6]))
    assert min(gaps) >= (stagger_s - 1) * 1000, (gaps, events)
    assert len(set(t for t, _ in events)) == len(events)      # never two at once
    assert rows[-1]["wh_w"] > 4000 and rows[-1]["ev_w"] > 2000   # and they do draw


def test_a_hung_controller_stops_the_feed_and_the_watchdog_resets_the_board():
    rows = run(PROBE.replace("CFG", "{}") + """
async def hang_at(ms):
    await asyncio.sleep_ms(ms)
    app.control.period_ms = 10 ** 9       # its next sleep never ends: no more heartbeats
    print(json.dumps({"hang": vt.elapsed_ms(), "feeds": app.supervisor.feeds}))
async def main():
    asyncio.create_task(hang_at(30000))
    await probe(120, 500)
try:
    asyncio.run(main())
    print(json.dumps({"reset": None}))
except machine.WatchdogReset as e:
    print(json.dumps({"reset": vt.elapsed_ms(), "why": str(e)}))
    # The board restarts: the new firmware says why, and keeps it for status and telemetry.
    machine.attach(panel, vt, board, gen, reset_cause=machine.WDT_RESET)
    logs.clear()
    app2 = app_mod.App(board, machine, clock, {}, log=logs.append)
    app2.banner()
    print(json.dumps({"cause": app2.reset_cause, "banner": logs[0], "safe": all_safe()}))
""")
    hang = next(r for r in rows if "hang" in r)
    reboot = rows.pop()
    reset = rows[-1]["reset"]
    assert reset is not None, "the watchdog never reset the board"
    probes = [r for r in rows if "coils" in r]
    last_feed = max(r["t"] for r in probes if r["feeds"] == probes[-1]["feeds"])
    fed_until = min(r["t"] for r in probes if r["feeds"] == probes[-1]["feeds"])
    # Stale after control_period_ms + stale_ms (6 s) past its last step; the board's 8 s
    # watchdog bites that much after the last feed.
    print("hung at %d ms, last feed by %d ms, reset at %d ms" % (hang["hang"], fed_until, reset))
    assert fed_until - hang["hang"] <= 1000 + 6000 + 1000, (hang, fed_until)
    assert reset - fed_until <= 8000 + 1000, (reset, fed_until, last_feed)
    assert reboot["cause"] == "watchdog" and reboot["safe"]
    banner = reboot["banner"]          # version, reset cause by name, free heap, setpoint
    version = (ROOT / "firmware" / "version.py").read_text().split('VERSION = "')[1].split('"')[0]
    assert banner.startswith("panelcap %s on sim: reset cause watchdog, free heap " % version)
    assert "setpoint 19200 W" in banner


def test_a_raising_task_is_restarted_and_one_that_keeps_raising_ends_safe_and_reset():
    rows = run(PROBE.replace("CFG", "{}") + """
scan = app.sampler._scan            # what the sampler's task calls, a cycle at a time
def scan_once_bad():
    app.sampler._scan = scan
    raise ValueError("ADC read failed")
def always_bad():
    raise RuntimeError("controller bug")
async def faults():
    await asyncio.sleep_ms(30000)
    app.sampler._scan = scan_once_bad
    await asyncio.sleep_ms(60000)
    print(json.dumps({"before": row(app), "crashes": [e.crashes for e in app.supervisor.entries],
                      "failed": app.supervisor.failed}))
    app.control.step = always_bad
    while not app.supervisor.failed:
        await asyncio.sleep_ms(100)
    print(json.dumps({"gave_up": vt.elapsed_ms(), "safe": all_safe()}))
    while True:
        await asyncio.sleep_ms(500)
        print(json.dumps({"after": vt.elapsed_ms(), "safe": all_safe()}))
async def main():
    asyncio.create_task(faults())
    await probe(300, 1000)
try:
    asyncio.run(main())
    print(json.dumps({"reset": None}))
except machine.WatchdogReset:
    print(json.dumps({"reset": vt.elapsed_ms()}))
print(json.dumps({"log": logs}))
""")
    before = next(r for r in rows if "before" in r)
    assert before["crashes"][0] == 1 and not before["failed"]      # the sampler, restarted
    b = before["before"]
    assert b["valid"] and (any(b["coils"]) or b["pilot_a"] > 0)    # and control goes on
    gave_up = next(r for r in rows if "gave_up" in r)
    print("gave up at %d ms, reset at %d ms" % (gave_up["gave_up"], rows[-2]["reset"] or -1))
    assert gave_up["safe"]
    after = [r for r in rows if "after" in r]
    assert after and all(r["safe"] for r in after)                 # nothing re-energised
    reset = rows[-2]["reset"]
    assert reset is not None and reset - gave_up["gave_up"] <= 8000 + 1000
    log = rows[-1]["log"]
    assert any("task sampler crashed (ValueError: ADC read failed)" in l for l in log)
    assert any("restarting sampler" in l for l in log)


SAFE_EXIT = PROBE.replace("CFG", "{'limit_w': 19200, 'stagger_s': 2}") + """
def interrupt_at(ms, exc):
    def check(now):
        if vt.elapsed_ms() >= ms and not fired:
            fired.append(1)
            print(json.dumps({"before": row(app)}))
            raise exc
    return check
fired = []
vt.watch(interrupt_at(60000, EXC))
try:
    app_mod.run(board, machine, clock, {'limit_w': 19200, 'stagger_s': 2}, wear_path=WEAR)
    print(json.dumps({"returned": True}))
except Exception as e:
    print(json.dumps({"raised": repr(e)}))
app = app_mod.last
print(json.dumps({"safe": all_safe(), "after": row(app), "running": app.running}))
"""


def test_ctrl_c_and_an_unexpected_exception_leave_every_output_safe(tmp_path):
    for exc, outcome in (("KeyboardInterrupt()", "returned"),
                         ("RuntimeError('bug')", "raised")):
        wear = tmp_path / "wear.json"
        rows = run(SAFE_EXIT.replace("EXC", exc).replace("WEAR", repr(str(wear))), base_w=500)
        before = next(r["before"] for r in rows if "before" in r)
        assert any(before["coils"]) and before["pilot_a"] > 0       # loads were running
        assert any(outcome in r for r in rows), rows[-3:]
        end = rows[-1]
        assert end["safe"] and not end["running"]
        # The contactor operations so far were written on the way out.
        assert json.loads(wear.read_text())["water_heater"] >= 1


LEFT_STOPPED = SAFE_EXIT.replace("EXC", "KeyboardInterrupt()") + """
# Left at the prompt: time goes on with nobody typing; the watchdog (which cannot be stopped)
# was stretched to maintenance_min and fed once on the way out.
stopped = vt.elapsed_ms()
try:
    for minute in range(1, 45):
        vt.advance(60000)
        if not all_safe():
            print(json.dumps({"unsafe": minute}))
    print(json.dumps({"reset_after_ms": None}))
except machine.WatchdogReset as e:
    print(json.dumps({"reset_after_ms": vt.elapsed_ms() - stopped, "why": str(e),
                      "safe": all_safe()}))
"""


def test_a_board_left_stopped_resets_itself_after_maintenance_min(tmp_path):
    # docs/installation.md: after Ctrl-C the loads stay shed and the watchdog is stretched
    # to maintenance_min (30 min): a board left stopped resets itself and goes back to work.
    rows = run(LEFT_STOPPED.replace("WEAR", repr(str(tmp_path / "wear.json"))), base_w=500)
    assert any("returned" in r for r in rows), rows[-3:]
    assert not any("unsafe" in r for r in rows), rows
    end = rows[-1]
    assert end["reset_after_ms"] is not None, end
    assert 30 * 60000 <= end["reset_after_ms"] <= 31 * 60000, end     # minutes: 30, not 29
    assert end["safe"], end


def test_simulated_power_cycle_brings_loads_back_one_at_a_time_stagger_apart():
    stagger_s = 7
    cmd, env = run_sim.firmware_command(
        ["--hours", "0.08", "--reboot-at-s", "120", "--cfg", "stagger_s=%d" % stagger_s,
         "--panel", "ev.arrive_h=99", "--panel", "water_heater.start_c=40", "--quiet"],
        heap="auto", log=lambda msg: None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    rows = {int(r["t_s"]): r for r in csv.DictReader(io.StringIO(proc.stdout))}
    assert rows[119]["water_heater_on"] == "1" and float(rows[119]["water_heater_w"]) > 4000
    after = [rows[t] for t in range(120, 200)]
    first_valid = next(int(r["t_s"]) for r in after if r["valid"] == "1")
    for r in after:
        if int(r["t_s"]) < first_valid:      # nothing on before the first valid measurement
            assert r["water_heater_on"] == "0" and r["ev_setpoint_a"] == "0"
    t_ev = next(int(r["t_s"]) for r in after if int(r["ev_setpoint_a"]) > 0)
    t_wh = next(int(r["t_s"]) for r in after if r["water_heater_on"] == "1")
    print("first valid %d s, EV back %d s, water heater back %d s after the power cycle"
          % (first_valid - 120, t_ev - 120, t_wh - 120))
    # The first waits a stagger (and the controller's settle time, 10 s, for the room to
    # hold); each next one a stagger after the one before.
    assert stagger_s <= t_ev - first_valid <= stagger_s + 10 + 2
    assert stagger_s <= t_wh - t_ev <= stagger_s + 2           # one at a time, stagger apart
    assert float(rows[t_wh + 2]["water_heater_w"]) > 4000
