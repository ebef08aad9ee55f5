"""The REPL console against a built App on the stand-in's machine layer, under the unix port."""
from conftest import ROOT, run_mpy

# app + config + console compiled from source need more than the 128 KB of the other tests.
HEAP = "512k"
SETUP = """
import os
os.chdir('%s')
from standin import machine
import esp32_dinrail as board
import app, config, console
from clock import Clock
machine.inject(36, 1970)
a = app.App(board, machine, Clock(), config.defaults(board))
console.attach(a)
from console import cfg, cal, status, loads, shed_test
"""


def run(tmp_path, code):
    return run_mpy(SETUP % tmp_path + code, heap=HEAP).stdout.splitlines()


def test_mistakes_print_one_line_and_change_nothing(tmp_path):
    out = run(tmp_path, """
before = config.to_json(cfg.work)
cfg.set('limit_a', 5)
cfg.set('band_pct', 'x')
cfg.set('loads.ev.max_a', 99)
cfg.set('loads.dryer.priority', 3)
cfg.set('ct.CT3.gain', 3)
cfg.set('loads.ev.output', 1)
cfg.confirm('1234')
cal.current('CT9', 10)
cal.current('CT3', 'ten')
shed_test('sauna')
print('SAME', config.to_json(cfg.work) == before, os.listdir())
""")
    assert out[:10] == [
        "error: unknown setting 'limit_a' (cfg.show() lists them)",
        "error: band_pct must be an int in 1..50 %, got 'x'",
        "error: max_a must be an int in 1..80 A, got 99",
        "error: no load 'dryer' (water_heater, ev)",
        "error: gain must be a number in 0.5..2.0, got 3",
        "error: loads.ev: give exactly one of output (a contactor) or driver",
        "error: nothing to confirm: cfg.set() a protected setting first",
        "error: channel must be one of V1, L1, L2, CT3, CT4, CT5, got 'CT9'",
        "error: amps must be the clamp meter's reading, a number > 0, got 'ten'",
        "error: no load 'sauna' (water_heater, ev)"]
    assert out[10] == "SAME True []"


def test_set_save_revert_and_the_protected_setpoint(tmp_path):
    out = run(tmp_path, """
cfg.set('band_pct', 8)
cfg.set('limit_w', 15000)
code = cfg._pending[2]
print('PENDING', cfg.work['limit_w'])
cfg.confirm(code)
cfg.save()
print('FILE', config.load('config.json', board).cfg['limit_w'])
cfg.set('band_pct', 12)
cfg.revert()
print('BACK', cfg.work['band_pct'], cfg.work['limit_w'])
cfg.show('limit_w')
""")
    assert out[0] == "band_pct = 8 (unsaved: cfg.save() writes it)"
    assert out[1].startswith("limit_w is protected (NEC 750.30(C)(3)): setpoint 19200 W -> "
                             "15000 W. Check the panel label, then type cfg.confirm('")
    assert out[2] == "PENDING 0"                     # not applied before the confirmation
    assert out[3] == "limit_w = 15000, setpoint 15000 W (unsaved: cfg.save() writes it)"
    assert out[4].startswith("saved config.json (band_pct, limit_w).")
    assert out[5] == "FILE 15000"
    assert out[-3] == "BACK 8 15000"
    assert out[-2].startswith(" P limit_w") and "15000 W" in out[-2]


def test_current_calibration_from_a_clamp_meter_reading(tmp_path):
    # CT3: 2000:1 into 33 ohm, so 1 A is 16.5 mV at the ADC, 20.5 counts; a 410-count peak
    # is 20 A peak, 14.1 A RMS. The clamp meter says 15.0 A: the gain goes up by 15 / 14.1.
    out = run(tmp_path, """
machine.inject(35, 410)
cal.current('CT3', 15.0)
a.sampler.sample()
print('NOW', a.meter.irms_ma[3], cfg.work['ct']['CT3']['gain'], cfg.saved['ct']['CT3']['gain'])
cal.current('CT3', 1.0)
""")
    first = out[0]
    assert first.startswith("CT3: read 14.") and "reference 15.00 A: gain 1.0000 -> 1.0" in first
    gain = float(first.split("-> ")[1].split()[0])
    assert 1.04 < gain < 1.09
    now = out[1].split()
    assert abs(int(now[1]) - 15000) < 300 and abs(float(now[2]) - gain) < 1e-4
    assert now[3] == "1.0"                           # saved only by cfg.save()
    assert out[2] == ("error: 1.0 A is under 5 % of CT3's 50 A rating: switch on a bigger load "
                      "for an accurate gain")


def test_calibration_refuses_a_ct_that_reads_nothing_and_a_gain_outside_half_to_double(tmp_path):
    # docs/installation.md: a CT that reads nothing (wrong wire, unplugged) or a gain outside
    # 0.5..2 (wrong CT or burden in the board file) is refused with one line, changing
    # nothing. CT3 reads 14.1 A with a 410-count peak (see above).
    out = run(tmp_path, """
def gains():
    return (a.meter.calibration(3)['gain'], cfg.work['ct']['CT3']['gain'],
            a.meter.calibration(0)['gain'], cfg.work['v_gain'])
before = gains()
machine.inject(35, 0)            # CT3 unplugged: nothing on its wire
cal.current('CT3', 15.0)
machine.inject(35, 410)
cal.current('CT3', 30.0)         # 30 A against 14.1 A: gain 2.1
cal.current('CT3', 6.5)          # 6.5 A against 14.1 A: gain 0.46
machine.inject(36, 0)            # no AC on the voltage channel
cal.voltage(120)
machine.inject(36, 1970)
cal.voltage(300)                 # a gain of about 2.5
print('SAME', gains() == before, before)
cal.current('CT3', 28.0)         # gain 1.98: inside, taken
print('TAKEN', round(cfg.work['ct']['CT3']['gain'], 2))
""")
    assert out[0] == "error: CT3 reads 0.00 A: is the CT on the wire the clamp meter is on?", out
    assert out[1].startswith("error: CT3 reads 14.") and "against 30.00 A: gain 2.1" in out[1]
    assert out[1].endswith("is outside 0.5..2; check the CT's ratio and burden in the board "
                           "file"), out[1]
    assert out[2].startswith("error: CT3 reads 14.") and "against 6.50 A: gain 0.4" in out[2]
    assert out[3] == "error: no AC on the voltage channel: check the AC adapter", out
    assert out[4].startswith("error: reads ") and "is outside 0.5..2" in out[4], out
    assert out[5].startswith("SAME True"), out
    assert out[6].startswith("CT3: read 14.") and out[7] == "TAKEN 1.98", out


def test_status_and_loads_print_the_setpoint_and_the_loads(tmp_path):
    out = run(tmp_path, "status()\nloads()")
    assert "stopped: every output safe" in out[0]
    assert out[1].startswith("setpoint 19200 W (panel 100 A, 2 x 120 V")
    assert any(line.startswith("water_heater   onoff        2 L1L2    4500W K1       CT3   off")
               for line in out), out


def test_status_in_safe_mode_shows_the_saved_setpoint_for_the_label(tmp_path):
    # The installer copies status()'s setpoint onto the NEC 750.30 label before the restart:
    # after a save it must be the saved one, the one the next start runs.
    out = run(tmp_path, """
a = app.App(board, machine, Clock(), config.defaults(board),
            safe_reason='no configuration saved yet: set it at the REPL (cfg.set ... cfg.save())')
console.attach(a)
status()
cfg.set('panel_rating_a', 125)
cfg.confirm(cfg._pending[2])
cfg.save()
status()
r = config.load('config.json', board)          # what the restart builds
b = app.App(board, machine, Clock(), r.cfg, safe_reason=r.safe_reason)
print('RESTART', b.safe_reason, b.setpoint_w)
console.attach(b)
status()
""")
    assert out[0].endswith("SAFE MODE: every controllable load shed: no configuration saved yet: "
                           "set it at the REPL (cfg.set ... cfg.save())")
    assert out[1].startswith("setpoint 19200 W (panel 100 A, 2 x 120 V")
    assert out[5].startswith("saved config.json (panel_rating_a)")
    assert out[6].endswith("SAFE MODE: every controllable load shed until start() or "
                           "Ctrl-D runs the configuration saved since"), out
    assert out[7] == ("setpoint 24000 W (panel 125 A, 2 x 120 V, restore 5 % below); "
                      "saved in config.json: start() or Ctrl-D applies it"), out
    assert not any("no configuration saved yet" in line for line in out[6:])
    restart = out.index("RESTART None 24000")
    assert out[restart + 1].endswith("stopped: every output safe; start() or Ctrl-D runs the "
                                     "controller")
    assert out[restart + 2] == "setpoint 24000 W (panel 125 A, 2 x 120 V, restore 5 % below)"


def test_push_and_revert_say_what_is_wrong_with_the_file(tmp_path):
    out = run(tmp_path, """
import json
cfg.push('nofile.json')
with open('bad.json', 'w') as f: f.write('{"version": 2, "panel_rating_a": 1')
cfg.push('bad.json')
d = json.loads(config.to_json(cfg.work)); d['loads'][0]['priority'] = -3
with open('bad2.json', 'w') as f: f.write(json.dumps(d))
cfg.push('bad2.json')
cfg.revert()
print('AFTER', a.safe_reason, sorted(os.listdir()))
""")
    assert out[0] == "error: nofile.json: no such file; nothing changed"
    assert out[1].startswith("error: push of bad.json refused: config file is corrupt (not JSON")
    assert out[1].endswith("; config.json and the running configuration are unchanged")
    # a refusal is one line: the first problem, and how many there are (issue 17)
    assert out[2].startswith("error: push of bad2.json refused: config file is corrupt or "
                             "incomplete (loads): loads.water_heater: priority must be an int "
                             "in 0..1000, got -3")
    assert out[3] == "error: config.json: no such file; nothing changed"
    assert out[4] == "AFTER None ['bad.json', 'bad2.json']"
    assert not any("SAFE MODE" in line or "saved yet" in line for line in out), out


SAFE = """
import asyncio
from panelsim.vtime import VirtualTime
from panelsim import machine
from clock import WrappingClock
import simboard as board
import app, config
vt = VirtualTime(); vt.install()
machine.attach(None, vt, board, None)
logs = []
cfg = config.defaults(board)
cfg['mqtt_host'] = '%s'
cfg['mqtt_port'] = 9          # nothing listens: telemetry retries, the board stays safe
a = app.App(board, machine, WrappingClock(vt.now_ms), cfg, log=logs.append,
            safe_reason='config file is corrupt (not JSON)')
async def main():
    asyncio.create_task(a.run())
    await asyncio.sleep(30)
asyncio.run(main())
print('LOGS', [l for l in logs if 'SAFE' in l])
print('STATE', a.bindings, a.hw.wdt, [s.value() for s in a.hw.outputs], a.hw.pilot.duty_u16())
print('TASKS', [e.name for e in a.supervisor.entries] if a.supervisor else None)
"""


def test_safe_mode_sheds_everything_and_starts_no_controller():
    for host in ("", "127.0.0.1"):
        out = run_mpy(SAFE % host, heap=HEAP).stdout.splitlines()
        assert out[-3] == ("LOGS ['SAFE MODE: every controllable load shed: config file is "
                           "corrupt (not JSON)']")
        assert out[-2] == "STATE [] None [0, 0, 0, 0] 65535"
        tasks = out[-1]
        if host:
            # Only telemetry runs (it reports app.safe_reason); no sampler, no control.
            assert tasks.startswith("TASKS ['")
            assert "sampler" not in tasks and "control" not in tasks
        else:
            assert tasks == "TASKS None"             # run() returned: the REPL is free


PANEL = """
import os
os.chdir('%s')
from panelsim.vtime import VirtualTime
from panelsim import machine
from panelsim.panel import Panel
from panelsim.adcgen import AdcGen
from panelsim import profile as profile_mod
from clock import WrappingClock
import simboard as board
import app, config, console
params = dict(board.PANEL); wh = dict(params['water_heater']); wh['start_c'] = 50
params['water_heater'] = wh              # the tank calls for heat
panel = Panel(params, profile_mod.load('%s'))
vt = VirtualTime(); vt.install()
vt.advance(12 * 3600 * 1000)             # noon: the car is not plugged in yet
machine.attach(panel, vt, board, AdcGen(board, panel))
a = app.App(board, machine, WrappingClock(vt.now_ms, vt.advance), config.defaults(board))
console.attach(a)
"""


def test_shed_test_shows_which_load_a_contactor_drives(tmp_path):
    profile = ROOT / "tools" / "data" / "profiles" / "default_day.csv"
    out = run_mpy(PANEL % (tmp_path, profile) + """
console.shed_test('water_heater', 1)
console.shed_test('ev', 1)
print('AFTER', panel.wh_w, a.hw.outputs[0].value(), a.hw.pilot.duty_u16())
a.setpoint_w = 4000
console.shed_test('water_heater', 1)
""", heap=HEAP).stdout.splitlines()
    m = out[0].split()
    assert out[0].startswith("water_heater: on ") and m[7] == "drop"
    assert abs(int(m[8]) - 4500) < 150, out[0]              # the heater's 4500 W went away
    assert "its CT read 4" in out[0] and out[0].endswith("then 0 W")
    m = out[1].split()
    assert out[1].startswith("ev: on ") and abs(int(m[8])) < 100   # no car: nothing drops
    assert out[2] == "AFTER 0 0 65535"                    # both left shed
    assert out[3].startswith("error: water_heater (4500 W) on top of ") and \
        out[3].endswith("would pass the 4000 W setpoint")


def test_voltage_calibration_against_a_multimeter(tmp_path):
    profile = ROOT / "tools" / "data" / "profiles" / "default_day.csv"
    out = run_mpy(PANEL % (tmp_path, profile) + """
a.sampler.sample()
before = a.meter.vrms_mv
console.cal.voltage(before * 1.03 / 1000)
a.sampler.sample()
print('RATIO', a.meter.vrms_mv * 1000 // before, console.cfg.work['v_gain'])
console.cal.voltage(20)
""", heap=HEAP).stdout.splitlines()
    assert out[0].startswith("voltage: read 1") and "gain 1.0000 -> 1.03" in out[0]
    ratio, gain = out[1].split()[1:]
    assert 1025 <= int(ratio) <= 1035 and 1.025 < float(gain) < 1.035
    assert out[2] == "error: volts must be the multimeter's reading in 50..300 V, got 20"


def test_a_whole_load_can_be_replaced_in_one_step(tmp_path):
    out = run(tmp_path, """
cfg.set('loads.ev.output', 1)
cfg.set('loads.ev', {'kind': 'onoff', 'priority': 1, 'leg': 'L1L2', 'rated_w': 7680,
                     'output': 1, 'ct': 'CT4', 'min_on_s': 300})
print(config.find_load(cfg.work, 'ev'))
cfg.set('loads.ev', {'kind': 'onoff'})
cfg.set('wifi_password', 'hunter22')
cfg.set('wifi_password', 'x' * 65)
""")
    assert out[0] == "error: loads.ev: give exactly one of output (a contactor) or driver"
    assert out[1] == "loads.ev replaced (unsaved: cfg.save() writes it)"
    assert "'output': 1" in out[2] and "'driver'" not in out[2]
    assert out[3] == "error: loads.ev: priority is missing"
    assert out[4] == "wifi_password = *** (unsaved: cfg.save() writes it)"
    assert out[5] == "error: wifi_password must be a string of 0..64 characters"   # not echoed


def test_the_safe_mode_banner_says_its_setpoint_is_not_for_the_label(tmp_path):
    # The installer reads the boot banner at the panel: in safe mode its setpoint is the
    # defaults', which nothing runs, and must not be copied onto the NEC 750.30 label.
    out = run(tmp_path, """
a.banner()
s = app.App(board, machine, Clock(), config.defaults(board), safe_reason='no configuration')
s.banner()
""")
    banners = [line for line in out if line.startswith("panelcap ")]
    assert len(banners) == 2, out
    assert banners[0].endswith("setpoint 19200 W (panel 100 A)"), banners
    assert banners[1].endswith("setpoint 19200 W (panel 100 A; defaults, not configured: "
                               "not for the label)"), banners


def test_status_shows_the_demand_window(tmp_path):
    out = run(tmp_path, """
a.cfg['demand_window_min'] = 15
import demand
a.demand = demand.DemandWindow(a.limits, a.clock, lambda: None, 15, 4000)
status()
t = [1775001600 + 60]
a.demand.wall = lambda: t[0]
for w in (3000, 3000):
    a.demand.step(w)
    t[0] += 1
status()
""")
    lines = [l for l in out if l.startswith("demand window")]
    assert lines[0] == "demand window 15 min, budget 4000 W: no time: the plain limit applies", out
    assert lines[1].startswith("demand window 15 min, budget 4000 W: 0 Wh so far, ") and \
        "W allowed now, this month's peak 0 W" in lines[1], out


def test_status_says_duty_mode_is_not_an_nec_setpoint(tmp_path):
    out = run(tmp_path, "a.cfg['duty_mode'] = 'on'\nstatus()")
    assert "DUTY MODE: up to 100 % of the rating at any moment, 19200 W averaged over three " \
           "hours: not an NEC 750 setpoint" in out, out
