"""Contactor and J1772 pilot outputs, on the simulated machine layer, under micropython."""
from conftest import run_mpy

SETUP = """
import actuators
from panelsim import machine
class FakePanel:
    def __init__(self): self.contactors = {}; self.amps = None
    def advance_to(self, ms): pass
    def set_contactor(self, i, closed): self.contactors[i] = closed
    def set_pilot_amps(self, a): self.amps = a
class VT:
    def now_ms(self): return 0
    def elapsed_ms(self): return 0
    def watch(self, fn): pass
import sim as board
panel = FakePanel()
machine.attach(panel, VT(), board, None)
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
print(panel.contactors)                 # every coil de-energised from the first level set
k4 = actuators.Contactor(h.outputs[3])  # K4's driver is active low (invert=True)
k4.set(True); print(panel.contactors[3], machine._sim.pin_levels[14])
k4.set(True); k4.set(False); print(panel.contactors[3], machine._sim.pin_levels[14], k4.ops)
"""
    out = run_mpy(code).stdout.split("\n")
    assert out[0] == "{0: False, 1: False, 2: False, 3: False}"
    assert out[1] == "True 0"
    assert out[2] == "False 1 2"
