"""The export limit wired end to end (issue 16 item 2), under micropython on the 32-bit build:
the settings (checked in one line, old files unchanged), appbuild building export.Soaker only
when configured (export.py never imported otherwise), the grid envelope's export limit
reaching the Soaker and clearing when its interval ends, the status snapshot's export part,
and the whole firmware on the simulated board soaking a simulated PV export into the water
heater."""
import json
import subprocess
import sys

from conftest import MPY_CROSS, ROOT, run_mpy

sys.path.insert(0, str(ROOT / "tools"))
import run_sim  # noqa: E402

# The console's stand-in (tests/test_console.py): App built from a config, compiled from source.
SETUP = """
import os, sys, gc, json
os.chdir(%r)
from standin import machine
import esp32_dinrail as board
import app, config, snapshot
from fakeclock import FakeClock
machine.inject(36, 1970)
def build(**kw):
    cfg = config.defaults(board)
    soak = kw.pop('soak', {})
    cfg.update(kw)
    for spec in cfg['loads']:
        if spec['name'] in soak:
            spec['soak'] = soak[spec['name']]
    clock = FakeClock()
    return app.App(board, machine, clock, cfg), clock
"""

HEATER_SOAKS = {"water_heater": 1}


def mpy(tmp_path, code, heap="512k"):
    return run_mpy(SETUP % str(tmp_path) + code, heap=heap).stdout.splitlines()


def test_bad_export_settings_are_refused_in_one_line_and_old_files_load_unchanged():
    out = run_mpy(r"""
import json, config, simboard as board
def errs(**kw):
    cfg = config.defaults(board)
    soak = kw.pop('soak', None)
    cfg.update(kw)
    if soak is not None:
        cfg['loads'][0]['soak'] = soak
    return config.validate(cfg, board)
print(json.dumps(errs(export_limit_w=-5)))
print(json.dumps(errs(surplus_mode='yes')))
print(json.dumps(errs(export_limit_w=1000, pv_rated_w=5000)))
print(json.dumps(errs(surplus_mode='on', soak=1)))
print(json.dumps(errs(soak='first')))
print(json.dumps(errs(export_limit_w=1000, pv_rated_w=5000, soak=1)))
# A file saved before the settings existed: same settings, nothing rejected, no safe mode.
cfg = config.defaults(board)
data = json.loads(config.to_json(cfg))
for k in ('export_limit_w', 'surplus_mode', 'pv_rated_w'):
    del data[k]
r = config.parse(json.dumps(data), board)
print(json.dumps([r.rejected, r.safe_reason, r.cfg == cfg, r.cfg['export_limit_w'],
                  r.cfg['surplus_mode'], r.cfg['pv_rated_w']]))
# Not protected: a damaged export_limit_w on flash falls back to 0 (logged), the rest runs;
# a damaged pv_rated_w leaves the export limit without it: the check fails, safe mode.
cfg['export_limit_w'] = 1000
cfg['pv_rated_w'] = 5000
cfg['loads'][0]['soak'] = 1
for key in ('export_limit_w', 'pv_rated_w'):
    data = json.loads(config.to_json(cfg))
    data[key] = 'x'
    r = config.parse(json.dumps(data), board)
    print(json.dumps([r.rejected, r.safe_reason, r.cfg['export_limit_w']]))
""").stdout.splitlines()
    got = [json.loads(line) for line in out]
    assert got[0] == ["export_limit_w must be an int in 0..500000 W, got -5"]
    assert got[1] == ["surplus_mode must be one of 'off', 'on', got 'yes'"]
    assert got[2] == ["export_limit_w needs a load to soak into: set loads.<name>.soak to 1 "
                      "or more"]
    assert got[3] == ["surplus_mode on needs pv_rated_w, the PV's AC rating in W, got 0"]
    assert got[4] == ["loads.water_heater: soak must be an int in 0..1000, got 'first'"]
    assert got[5] == []
    assert got[6] == [[], None, True, 0, "off", 0]
    assert got[7] == [["export_limit_w must be an int in 0..500000 W, got 'x'; using the "
                       "default 0"], None, 0], got[7]
    assert got[8][1].startswith("config file is corrupt or incomplete") and \
        got[8][1].endswith("export_limit_w needs pv_rated_w, the PV's AC rating in W, got 0"), \
        got[8]


def test_the_simulator_refuses_a_bad_export_setting_in_one_line():
    # The firmware's own build, as make sim runs it: one line, exit 2, no CSV.
    for args, expected in (
            (["--cfg", "export_limit_w=abc"],
             "error: export_limit_w must be an int in 0..500000 W, got 'abc'"),
            (["--cfg", "export_limit_w=1500"],
             "error: export_limit_w needs a load to soak into: set loads.<name>.soak to 1 "
             "or more")):
        cmd, env = run_sim.firmware_command(["--hours", "0.01", "--quiet", *args], "2m",
                                            log=lambda m: None)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                              timeout=300)
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
        assert proc.stderr.strip() == expected


def test_the_soaker_is_built_only_when_configured(tmp_path):
    out = mpy(tmp_path, r"""
a, clock = build()
print('PLAIN', a.soaker, 'export' in sys.modules, 'export' in snapshot.status(a, clock.t))
# A soak rank alone, with nothing to ask for soaking (no limit, no surplus, no MQTT): not built.
a, clock = build(soak=HEATER_SOAKS)
print('RANK', a.soaker, 'export' in sys.modules)
a, clock = build(export_limit_w=1500, pv_rated_w=5000, soak={'ev': 1, 'water_heater': 2})
s = a.soaker
print('LIMIT', 'export' in sys.modules, s.limit_w, [l.name for l in s.loads], s.surplus,
      a.controller.soaker is s, a.meter._impl_margin)
print('SNAP', json.dumps(snapshot.status(a, clock.t)['export']))
a, clock = build(mqtt_host='192.0.2.1', soak=HEATER_SOAKS)
print('GRID', a.soaker.limit_w, [l.name for l in a.soaker.loads], a.meter._impl_margin)
a, clock = build(surplus_mode='on', pv_rated_w=3000, soak={'ev': 1})
print('SURPLUS', a.soaker.limit_w, a.soaker.surplus, [l.name for l in a.soaker.loads])
""".replace("HEATER_SOAKS", repr(HEATER_SOAKS)))
    assert "PLAIN None False False" in out, out
    assert "RANK None False" in out, out
    # the EV first (soak 1), then the heater; 5 kW of PV on 2 x 120 V: 20.8 A per leg + 2 A
    assert "LIMIT True 1500 ['ev', 'water_heater'] False True 22833" in out, out
    snap = json.loads([line for line in out if line.startswith("SNAP ")][0][5:])
    assert snap == {"limit_w": 1500, "limits": {"setting": 1500}, "surplus": False,
                    "export_w": 0, "excess_w": 0, "soak_w": 0, "soaking": []}
    assert "GRID None ['water_heater'] 2000" in out, out
    assert "SURPLUS None True ['ev']" in out, out


def test_export_py_heap_when_configured_and_nothing_when_not(tmp_path):
    # export.py compiled as it ships (.mpy): what importing it costs on the 32-bit port, and
    # the Soaker it builds; the same build without the settings imports nothing.
    subprocess.run([str(MPY_CROSS), "-o", str(tmp_path / "export.mpy"),
                    str(ROOT / "firmware" / "export.py")], check=True)
    out = mpy(tmp_path, r"""
sys.path.insert(0, %r)
a, clock = build()
gc.collect()
print('NOT', 'export' in sys.modules)
gc.collect(); m0 = gc.mem_alloc()
import export
gc.collect(); m1 = gc.mem_alloc()
s = export.Soaker(a.controller, [a.bindings[0].load], 1500)
gc.collect(); m2 = gc.mem_alloc()
print('HEAP', m1 - m0, m2 - m1, export.__file__)
""" % str(tmp_path))
    assert "NOT False" in out, out
    line = [x for x in out if x.startswith("HEAP ")][0].split()
    code_b, obj_b = int(line[1]), int(line[2])
    assert line[3].endswith("export.mpy"), line
    print("export.mpy in the heap: %d B, a Soaker of one load: %d B" % (code_b, obj_b))
    assert 0 < code_b < 6000 and 0 < obj_b < 600, (code_b, obj_b)


def test_a_grid_export_interval_reaches_the_soaker_and_clears_when_it_ends(tmp_path):
    # The grid's envelope (an EXPORT_CAPACITY_LIMIT interval, docs/grid.md) reaches the
    # App's Soaker as source "grid" through grid.attach; the lowest limit in force wins; the
    # interval's end clears it. The same interval's import limit goes to the Limits as
    # before, untouched by the export side.
    out = mpy(tmp_path, r"""
import grid
T0 = 1796000000
a, clock = build(mqtt_host='192.0.2.1', export_limit_w=3000, pv_rated_w=5000, soak={'water_heater': 1})
g = a.get_grid()
g.set_wall(T0, clock.t)
obj = {'programID': 'doe', 'eventName': 'exp',
       'payloadDescriptors': [{'payloadType': 'EXPORT_CAPACITY_LIMIT', 'units': 'KW'},
                              {'payloadType': 'IMPORT_CAPACITY_LIMIT', 'units': 'KW'}],
       'intervalPeriod': {'start': grid.format_time(grid.parse_time(T0) + 60), 'duration': 'PT2M'},
       'intervals': [{'id': 0, 'payloads': [{'type': 'EXPORT_CAPACITY_LIMIT', 'values': [1.2]},
                                            {'type': 'IMPORT_CAPACITY_LIMIT', 'values': [5]}]}]}
g.schedule(obj, clock.t)
def at(s):
    while g.mono_s(clock.t) < s:
        clock.advance(1000)
        g.update(clock.t)
    e = snapshot.status(a, clock.t)['export']
    return [e['limit_w'], sorted(e['limits'].items()), a.limits.effective_w(clock.t)]
print('BEFORE', json.dumps(at(30)))
print('DURING', json.dumps(at(90)))
print('AFTER', json.dumps(at(200)))
""")
    got = {line.split()[0]: json.loads(line.split(" ", 1)[1]) for line in out
           if line.split(" ")[0] in ("BEFORE", "DURING", "AFTER")}
    setpoint = 19200          # 80 % of 100 A on 2 x 120 V: the import side as it was
    assert got["BEFORE"] == [3000, [["setting", 3000]], setpoint], got
    assert got["DURING"] == [1200, [["grid", 1200], ["setting", 3000]], 5000], got
    assert got["AFTER"] == [3000, [["setting", 3000]], setpoint], got


def _pv_day(tmp_path):
    # The household at 500 W, then 6 kW of PV from minute 3 to 15 (the panel model's base
    # goes negative: net export, tools/panelsim/panel.py), then 500 W again.
    lines = ["Time,Aggregate"]
    m = 0
    for count, w in ((3, 500), (12, -6000), (5, 500)):
        for _ in range(count):
            lines.append("2024-06-01 %02d:%02d:00,%d" % (m // 60, m % 60, w))
            m += 1
    path = tmp_path / "pv.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


# The firmware as make sim runs it (compiled, 128 KB heap), with a task beside it that reads
# the status snapshot each simulated second: the panel's truth and the firmware's export view.
HOOK = r"""
from panelsim import run
import sys, json, asyncio
_session = run._session
async def session(app, rec):
    import snapshot
    async def watch():
        while True:
            s = snapshot.status(app, app.clock.ticks_ms())
            sys.stderr.write("EXPORT %d %d %d %d %s %s\n" % (
                rec.vt.elapsed_ms() // 1000, rec.panel.wh_w, rec.panel.total_w,
                1 if app.sampler.valid else 0, "export" in sys.modules,
                json.dumps(s.get("export"))))
            await asyncio.sleep_ms(1000)
    asyncio.create_task(watch())
    await _session(app, rec)
run._session = session
run.main(SIM_ARGS)
"""


def _run_pv(tmp_path, cfg_args):
    args = ["--profile", str(_pv_day(tmp_path)), "--hours", "0.3", "--quiet",
            "--panel", "ev.arrive_h=99", "--panel", "water_heater.start_c=45", *cfg_args]
    cmd, env = run_sim.firmware_command(args, "auto", log=lambda m: None)
    code = "SIM_ARGS = %r\n" % (args,) + HOOK
    proc = subprocess.run(cmd[:3] + ["-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {}
    for line in proc.stderr.splitlines():
        if line.startswith("EXPORT "):
            f = line.split(" ", 6)
            rows[int(f[1])] = (int(f[2]), int(f[3]), int(f[4]), f[5] == "True",
                               json.loads(f[6]))
    return rows


def _cfg_args(items):
    # By the console's names, checked as make sim checks them (tools/run_sim.py).
    _, changed = run_sim.firmware_overrides(7200, items)
    out = []
    for key, value in changed:
        out += ["--cfg", "%s=%s" % (key, json.dumps(value))]
    return out


def test_the_firmware_on_the_simulated_board_soaks_a_pv_export_into_the_water_heater(tmp_path):
    rows = _run_pv(tmp_path, _cfg_args(["export_limit_w=1000", "pv_rated_w=6000",
                                        "loads.water_heater.soak=1"]))
    export_s = range(190, 900)         # the PV minutes, a window past the step
    assert all(rows[t][3] for t in rows), "export.py imported"
    # The heater (tank at 45 C, calling) soaks: it draws 4.5 kW through the export, the panel
    # exports 1.5 kW instead of 6 kW, the meter stays valid (no fail-safe), and the
    # snapshot says what is soaking and what is exported over the limit.
    assert all(rows[t][0] == 4500 and rows[t][1] == -1500 and rows[t][2] for t in export_s)
    for t in export_s:
        e = rows[t][4]
        assert e["soaking"] == ["water_heater"] and e["soak_w"] == 4500, (t, e)
        assert e["limit_w"] == 1000 and 1450 <= e["export_w"] <= 1550, (t, e)
        assert e["excess_w"] == e["export_w"] - 1000, (t, e)
    # Back to importing: the soak ends (its min_on long past), the heater stays on by its own
    # thermostat under the import side.
    assert rows[1000][4]["soaking"] == [] and rows[1000][4]["export_w"] == 0
    assert rows[1000][0] == 4500


def test_the_firmware_without_export_settings_never_imports_export_py(tmp_path):
    rows = _run_pv(tmp_path, [])
    assert rows and not any(r[3] for r in rows.values()), "export.py was imported"
    assert all(r[4] is None for r in rows.values())


def test_home_assistant_and_status_show_the_export_and_the_mains_meter(tmp_path):
    # Discovery announces the export's power, limit, excess and soak when a Soaker is built,
    # and the mains meter's reading and disagreement when one is configured; the console's
    # status() prints an export line. Without them, none of it.
    out = mpy(tmp_path, r"""
import discovery, console, mainscheck, mains_p1
class Rep:
    discovery_prefix = 'homeassistant'; node = 'pc'; prefix = 'panelcap'
    topic_state = 'panelcap/state'; topic_diag = 'panelcap/diag'
def ids(a):
    rep = Rep(); rep.app = a
    return sorted(t.split('/')[3] for t, _ in discovery.configs(rep))
a, clock = build()
plain = ids(a)
a, clock = build(export_limit_w=1500, pv_rated_w=5000, soak={'water_heater': 1})
chk = mainscheck.MainsCheck(a.limits, clock, mains_p1, 'dsmr/json', 10000, 500)
a.control.sources.append(chk)
print('NEW', json.dumps(sorted(set(ids(a)) - set(plain))))
rep = Rep(); rep.app = a
cfg = [json.loads(p) for t, p in discovery.configs(rep) if '/export_excess/' in t][0]
print('EXCESS', cfg['value_template'], cfg['unit_of_measurement'], cfg['state_topic'])
console.attach(a)
a.soaker.export_w = 2300; a.soaker.excess_w = 800
console.status()
""")
    new = json.loads([line for line in out if line.startswith("NEW ")][0][4:])
    assert new == ["export_excess", "export_limit", "export_power", "mains_disagree",
                   "mains_meter", "soak_power"], out
    assert "EXCESS {{ value_json.export.excess_w }} W panelcap/state" in out, out
    assert "export 2300 W, limit 1500 W, 800 W over it; soaking nothing" in out, out


def test_a_pv_inverter_is_built_only_when_configured_and_refused_in_one_line(tmp_path):
    # pv_inverter: the inverter's profile device, curtailed where the loads cannot hold the
    # limit (curtail.py). Built only when set (pvinverter.py and curtail.py never imported
    # otherwise); it needs MQTT and pv_rated_w; curtailing alone needs no soak rank.
    out = mpy(tmp_path, r"""
a, clock = build(export_limit_w=1500, pv_rated_w=5000, soak={'water_heater': 1})
print('PLAIN', a.soaker.curtail, 'pvinverter' in sys.modules, 'curtail' in sys.modules)
a, clock = build(export_limit_w=1500, pv_rated_w=5000, mqtt_host='192.0.2.1', pv_inverter='roof')
src = a.soaker.curtail.source
print('INV', type(src).__name__, src.rated_w, src.cap_w, src.set_topic, src in a.chargers,
      a.soaker.loads, a.soaker.limit_w)
# The homeowner sees the inverter: its cap and what it delivers, in the state (Home
# Assistant's two sensors) and in status().
import discovery, console
class Rep:
    discovery_prefix = 'homeassistant'; node = 'pc'; prefix = 'panelcap'
    topic_state = 'panelcap/state'; topic_diag = 'panelcap/diag'
rep = Rep(); rep.app = a
print('HA', json.dumps(sorted(t.split('/')[3] for t, _ in discovery.configs(rep)
                              if t.split('/')[3].startswith('pv_'))))
r = a.soaker.report()
print('REPORT', r['pv_cap_w'], r['pv_w'])
console.attach(a)
console.status()
src.cap_w = 3200; src.output_w = 3150
console.status()
errs = []
for kw in ({'pv_inverter': 'roof', 'pv_rated_w': 5000},
           {'pv_inverter': 'a/b', 'pv_rated_w': 5000, 'mqtt_host': 'h'},
           {'pv_inverter': 'roof', 'mqtt_host': 'h'},
           {'export_limit_w': 1500, 'pv_rated_w': 5000, 'mqtt_host': 'h', 'pv_inverter': 'roof'}):
    cfg = config.defaults(board); cfg.update(kw)
    errs.append(config.validate(cfg, board))
print('ERRS', json.dumps(errs))
""")
    assert "PLAIN None False False" in out, out
    assert "INV PvInverter 5000 5000 pcp/roof_cap/set True [] 1500" in out, out
    assert 'HA ["pv_cap", "pv_power"]' in out and "REPORT 5000 None" in out, out
    assert any(line.endswith("; PV inverter not reporting, not capped") for line in out), out
    assert any(line.endswith("; PV inverter capped at 3200 W of 5000 W, delivering 3150 W")
               for line in out), out
    errs = json.loads([line for line in out if line.startswith("ERRS ")][0][5:])
    msg = "pv_inverter must be a device id (no /, + or #) and needs mqtt_host and pv_rated_w"
    assert [e and e[0].startswith(msg) for e in errs[:3]] == [True, True, True], errs
    assert errs[3] == [], errs          # curtailing alone: no soak rank needed
