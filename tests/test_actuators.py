"""Contactor and J1772 pilot outputs, on the simulated machine layer, under micropython."""
import json

from conftest import run_mpy

SETUP = """
import actuators
from panelsim import machine
class FakePanel:
    def __init__(self): self.contactors = {}; self.amps = None; self.coil_changes = []
    def advance_to(self, ms): pass
    def set_contactor(self, i, closed):
        self.coil_changes.append((i, closed))      # every level a coil sees, in order
        self.contactors[i] = closed
    def set_pilot_amps(self, a): self.amps = a
from panelsim.vtime import VirtualTime
import simboard as board
panel = FakePanel()
machine.attach(panel, VirtualTime(), board, None)     # time stands still: never installed
"""


def test_j1772_duty_table_and_what_the_vehicle_reads():
    code = SETUP + """
for a in (0, 5, 6, 16, 32, 40, 48, 51, 60, 80, 90):
    d = actuators.j1772_duty_u16(a)
    print(a, d, machine.pilot_amps_offered(d))
"""
    rows = [tuple(map(int, line.split())) for line in run_mpy(code).stdout.split("\n") if line]
    table = {a: (d, back) for a, d, back in rows}
    # SAE J1772: 6..51 A: duty = A / 0.6 %; 51..80 A: duty = A / 2.5 + 64 %.
    for amps, pct in ((6, 10.0), (16, 26.667), (32, 53.333), (40, 66.667), (48, 80.0),
                      (51, 85.0), (60, 88.0), (80, 96.0)):
        assert abs(table[amps][0] / 65535 * 100 - pct) < 0.01, amps
        assert table[amps][1] == amps        # the vehicle reads back what was offered
    assert table[0] == (65535, 0) and table[5] == (65535, 0)   # pause: steady high
    assert table[90][0] == table[80][0]                         # never beyond 80 A


def test_pilot_charger_clamps_to_its_rating_and_pauses_below_6a():
    code = SETUP + """
pwm = machine.PWM(machine.Pin(19, machine.Pin.OUT, value=1), freq=1000, duty_u16=65535)
ev = actuators.PilotCharger(pwm, max_a=32)
for a in (16, 40, 5, 6, 0):
    ev.set_amps(a); print(ev.amps, panel.amps)
ev.set_amps(20); ev.safe(); print(ev.amps, panel.amps)
"""
    out = run_mpy(code).stdout.split()
    assert out == ["16", "16", "32", "32", "0", "0", "6", "6", "0", "0", "0", "0"]


def test_contactor_polarity_comes_from_the_board_and_ops_are_counted():
    code = SETUP + """
import hw
h = hw.build(board, machine)
print(panel.contactors)
print(panel.coil_changes)               # a pulse at boot would show here, however short
k4 = actuators.Contactor(h.outputs[3])  # K4's driver is active low (invert=True)
k4.set(True); print(panel.contactors[3], machine._sim.pin_levels[14])
k4.set(True); k4.set(False); print(panel.contactors[3], machine._sim.pin_levels[14], k4.ops)
"""
    out = run_mpy(code).stdout.split("\n")
    assert out[0] == "{0: False, 1: False, 2: False, 3: False}"
    # Every coil de-energised from the first level it ever saw: none energised during
    # hw.build, even for an instant (direction set before level would pulse K4, active low).
    changes = eval(out[1])
    assert changes and all(closed is False for _, closed in changes), changes
    assert sorted({i for i, _ in changes}) == [0, 1, 2, 3], changes
    assert out[2] == "True 0"
    assert out[3] == "False 1 2"


def test_charger_behind_a_contactor_breaks_no_current():
    # The contactor closes before current is offered, and opens only once the charger was
    # paused and its CT reads it stopped (or the wait ran out), never under load.
    code = SETUP + """
import hw, fedcharger, shed
from fakeclock import FakeClock
clock = FakeClock(3000)
h = hw.build(board, machine)
load = shed.Load("ev", shed.KIND_MODULATED, 1, "L1L2", 7680)
k2 = actuators.Contactor(h.outputs[1])
ev = fedcharger.FedCharger(actuators.PilotCharger(h.pilot, 32), k2, clock, 6000, load)
def step(amps, draw_w, ms=1000):
    clock.advance(ms)
    load.measured_w = draw_w
    ev.set_amps(amps)
    return "%s/%s" % (panel.contactors[1], panel.amps)
out = [step(16, 0)]                       # closes, then offers 16 A
out.append(step(16, 3800))
out.append(step(0, 3800))                 # paused; the car still draws: stays closed
out.append(step(0, 3600))
out.append(step(0, 40))                   # stopped: now it opens
out.append(step(16, 0)); out.append(step(0, 3800))
for _ in range(6):
    out.append(step(0, 3800))             # a car that ignores the pause: opens after 6 s
print(" ".join(out), k2.ops)
ev.set_amps(16); ev.safe(); print(panel.contactors[1], panel.amps, ev.amps)
"""
    out = run_mpy(code, heap="512k").stdout.split("\n")
    steps = out[0].split()
    assert steps[:5] == ["True/16", "True/16", "True/0", "True/0", "False/0"], steps
    assert steps[5:7] == ["True/16", "True/0"]
    assert steps[7:12] == ["True/0"] * 5 and steps[12] == "False/0", steps
    assert out[0].endswith(" 4")            # two closes, two opens
    assert out[1] == "False 0 0"            # safe: both at once


def test_operation_counts_persist_without_writing_flash_on_every_operation(tmp_path):
    path = tmp_path / "wear.json"
    code = SETUP + """
import hw, wear, asyncio
from clock import WrappingClock
from panelsim.vtime import VirtualTime
vt = VirtualTime(); vt.install()
clock = WrappingClock(vt.now_ms)
h = hw.build(board, machine)
k1 = actuators.Contactor(h.outputs[0]); k2 = actuators.Contactor(h.outputs[1])
w = wear.Wear([("water_heater", k1), ("pump", k2)], clock, PATH, save_period_ms=600000)
async def main():
    t = asyncio.create_task(w.run())
    for i in range(120):                  # 120 operations over 20 minutes
        if i == 65:
            print(w.saves, open(PATH).read())
        k1.set(i % 2 == 0)
        if i % 4 == 0:
            k2.set(i % 8 == 0)
        await asyncio.sleep(10)
    t.cancel()
asyncio.run(main())
print(w.saves)
w.save(); print(w.saves, open(PATH).read())
w2 = wear.Wear([("water_heater", actuators.Contactor(h.outputs[0]))], clock, PATH)
print(w2.totals(), w2.base)
open(PATH, "w").write("{garbage")
w3 = wear.Wear([("water_heater", k1)], clock, PATH, log=print)
print(w3.totals())
""".replace("PATH", repr(str(path)))
    out = run_mpy(code, heap="512k").stdout.split("\n")
    saves, text = out[0].split(" ", 1)
    assert saves == "1"                     # at 10 min: one write, not one per operation
    first = json.loads(text)
    assert first["water_heater"] in (60, 61) and first["pump"] in (15, 16), first
    assert out[1] == "2"                    # and at 20 min
    saves, text = out[2].split(" ", 1)
    assert saves == "2" and json.loads(text) == {"water_heater": 120, "pump": 30}  # unchanged:
    assert out[3] == "{'water_heater': 120} {'water_heater': 120, 'pump': 30}"   # not rewritten
    assert out[4].startswith("wear: ") and "counting from 0" in out[4]
    assert out[5] == "{'water_heater': 120}"   # this boot's own operations still count


def test_on_the_simulated_board_the_ev_contactor_opens_only_once_the_car_stopped():
    # The EV's circuit behind contactor K2 (feed_output 1; the simulated car draws only while
    # K2 is closed). A lower limit pauses it: the pilot first, K2 once its CT reads nothing.
    from test_failsafe import HEAP, SETUP
    code = SETUP.replace("BASE_W", "1000") + """
import config
ev["output"] = 1; params["ev"] = ev
wh["start_c"] = 60; params["water_heater"] = wh
panel = Panel(params, ConstantProfile(1000))
machine.attach(panel, vt, board, AdcGen(board, panel))
switches = []
set_contactor = panel.set_contactor
def watch(i, closed):
    switches.append((vt.elapsed_ms(), i, closed, panel.ev_w))    # the EV's draw as it switches
    set_contactor(i, closed)
panel.set_contactor = watch
loads = [dict(l) for l in config.DEFAULT_LOADS]
loads[1]["feed_output"] = 1
app = app_mod.App(board, machine, clock, {"limit_w": 19200, "stagger_s": 2, "loads": loads},
                  log=logs.append)
async def main():
    asyncio.create_task(app.run())
    await asyncio.sleep(60)
    print(json.dumps({"charging_w": panel.ev_w, "k2": panel._coil[1]}))
    app.limits.set("test", w=1500)
    await asyncio.sleep(30)
    print(json.dumps({"charging_w": panel.ev_w, "k2": panel._coil[1], "pilot_a": outputs()[1]}))
asyncio.run(main())
print(json.dumps({"switches": [s for s in switches if s[1] == 1]}))
"""
    rows = [json.loads(l) for l in run_mpy(code, heap=HEAP).stdout.splitlines()
            if l.startswith("{")]
    assert rows[0]["charging_w"] > 1000 and rows[0]["k2"] == 1
    assert rows[1] == {"charging_w": 0, "k2": 0, "pilot_a": 0}
    k2 = rows[2]["switches"]
    opens = [s for s in k2 if not s[2]]
    closes = [s for s in k2 if s[2]]
    assert closes and opens[-1][0] > closes[-1][0]
    print("K2 switched (t ms, closed, EV W at that instant): %s" % k2)
    assert all(s[3] == 0 for s in k2)      # made and broken with the car drawing nothing
