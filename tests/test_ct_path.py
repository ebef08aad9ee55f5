"""The firmware's meter reading the simulated CT path (panel -> CT, burden, bias, noise,
12-bit ADC -> meter): within 1 % from 5 % to 100 % of a CT's range; an idle channel reads 0."""
from conftest import run_mpy

CODE = """
import simboard as board
from array import array
from panelsim.panel import Panel
from panelsim.profile import ConstantProfile
from panelsim.adcgen import AdcGen
import meter as meter_mod, sampler
params = dict(board.PANEL)
params["ev"] = dict(params["ev"], arrive_h=99)          # no EV: the base load alone
nch = len(board.CHANNELS)
rounds = sampler.window_rounds(nch, board.ADC_SLOT_US, board.MAINS_HZ, 4)
buf = array('H', bytes(2 * rounds * nch))
m = meter_mod.Meter(board.CHANNELS, board.ADC_SLOT_US, board.MAINS_VOLTS, board.MAINS_HZ)
for pct in (0, 5, 10, 25, 50, 75, 100):
    # The household base current on L1 at pct % of the 100 A mains CT's rating.
    amps = 100 * pct / 100
    watts = int(amps * 120 * params["base_pf"] / params["base_l1_share"])
    panel = Panel(params, ConstantProfile(watts))
    gen = AdcGen(board, panel)
    t = 0
    for _ in range(3):                     # let the meter's bias tracking settle
        t += 1000
        panel.advance_to(t)
        gen.fill(buf, rounds, t * 1000)
        m.process(buf, rounds)
    print(pct, panel.leg_ma("L1"), m.irms_ma[1], m.irms_ma[3], m.valid)
"""


def test_meter_through_the_simulated_ct_path():
    rows = [line.split() for line in run_mpy(CODE).stdout.strip().split("\n")]
    for pct, true_ma, read_ma, idle_ma, valid in rows:
        pct, true_ma, read_ma, idle_ma = int(pct), int(true_ma), int(read_ma), int(idle_ma)
        assert idle_ma == 0, f"idle water-heater CT reads {idle_ma} mA"
        if pct == 0:
            assert read_ma == 0
            continue
        assert abs(read_ma - true_ma) <= 0.01 * true_ma, (pct, true_ma, read_ma)
        assert valid == "True"
