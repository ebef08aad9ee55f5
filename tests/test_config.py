"""Config schema, validation and persistence, under the unix port."""
from conftest import run_mpy

SETUP = """
import os, json
import config
import esp32_dinrail as board
D = '%s'
def fresh(name):
    p = D + '/' + name
    try: os.remove(p)
    except OSError: pass
    return p
"""


def run(tmp_path, code):
    return run_mpy(SETUP % tmp_path + code).stdout


def test_defaults_validate_and_errors_are_readable(tmp_path):
    out = run(tmp_path, """
c = config.defaults(board)
print(config.validate(c, board), config.setpoint_w(c))
c['panel_rating_a'] = 'x'
print(config.validate(c, board))
c = config.defaults(board); c['limit_w'] = 19201
print(config.validate(c, board))
c = config.defaults(board); c['system'] = 'single'
print(config.setpoint_w(c), config.validate(c, board)[0])
c = config.defaults(board); c['loads'][0]['output'] = 9; c['loads'][1]['ct'] = 'CT9'
for e in config.validate(c, board): print(e)
c = config.defaults(board); c['loads'][1]['output'] = 0
print(config.validate(c, board))
""").splitlines()
    assert out[0] == "[] 19200"
    assert out[1] == "[\"panel_rating_a must be an int in 15..2000 A, got 'x'\"]"
    assert "limit_w must be at most 80 % of the panel rating (19200 W for 100 A on 2 x 120 V)" \
        in out[2]
    assert out[3] == "9600 loads.water_heater: a single-phase system has only leg L1"
    assert out[4] == "loads.water_heater: output must be 0..3 on board esp32_dinrail, got 9"
    assert out[5].startswith("loads.ev: ct 'CT9' is not a CT channel")
    assert "give exactly one of output (a contactor) or driver" in out[6]


def test_save_is_a_rename_and_load_round_trips(tmp_path):
    out = run(tmp_path, """
p = fresh('c.json')
c = config.defaults(board); c['band_pct'] = 9; c['ct']['L1']['gain'] = 1.0125
config.save(c, p)
print(sorted(os.listdir(D)))
r = config.load(p, board)
print(r.safe_reason, r.rejected, r.cfg == c)
c['band_pct'] = 10
config.save(c, p)
print(config.load(p, board).cfg['band_pct'], sorted(os.listdir(D)))
""").splitlines()
    assert out[0] == "['c.json']"                       # no temporary file left behind
    assert out[1] == "None [] True"
    assert out[2] == "10 ['c.json']"


def test_an_interrupted_save_leaves_the_old_file(tmp_path):
    # A power cut during the write: the temporary file is half written, never renamed.
    out = run(tmp_path, """
p = fresh('c.json')
c = config.defaults(board); c['band_pct'] = 9
config.save(c, p)
with open(p + '.tmp', 'w') as f: f.write(config.to_json(c)[:40])
r = config.load(p, board)
print(r.safe_reason, r.cfg['band_pct'])
""").splitlines()
    assert out[-1] == "None 9"


def test_bad_fields_fall_back_one_by_one_and_are_printed(tmp_path):
    out = run(tmp_path, """
p = fresh('c.json')
c = config.defaults(board)
d = json.loads(config.to_json(c))
d['band_pct'] = 'wide'; d['stale_ms'] = 10; d['colour'] = 'red'; d['ct']['L2']['gain'] = 7
with open(p, 'w') as f: f.write(json.dumps(d))
r = config.load(p, board)
print('RESULT', r.safe_reason, r.cfg['band_pct'], r.cfg['stale_ms'], r.cfg['ct']['L2']['gain'])
""").splitlines()
    printed = [line for line in out if line.startswith("config: rejected")]
    assert len(printed) == 4, out
    assert any("band_pct must be an int in 1..50 %, got 'wide'; using the default 5" in line
               for line in printed)
    assert any("colour: unknown setting, ignored" in line for line in printed)
    assert out[-1] == "RESULT None 5 5000 1.0"


def test_corrupt_files_boot_into_safe_mode(tmp_path):
    out = run(tmp_path, """
p = fresh('c.json')
good = config.to_json(config.defaults(board))
d = json.loads(good); d['panel_rating_a'] = '100'
d2 = json.loads(good); d2['loads'][0]['priority'] = -3
d3 = json.loads(good); d3['version'] = 99
for text in (good[:len(good) // 2], 'garbage\\x00\\xff', '[1, 2]', json.dumps(d),
             json.dumps(d2), json.dumps(d3), ''):
    with open(p, 'w') as f: f.write(text)
    r = config.parse(text, board)
    print('SAFE' if r.safe_reason else 'OK', r.cfg == config.defaults(board), r.safe_reason)
r = config.load(fresh('none.json'), board)
print('SAFE' if r.safe_reason else 'OK', r.safe_reason)
""").splitlines()
    lines = [line for line in out if line.startswith(("SAFE", "OK"))]
    assert len(lines) == 8
    assert all(line.startswith("SAFE True") for line in lines[:7]), lines
    assert "not JSON" in lines[0] and "not a table" in lines[2]
    assert "panel_rating_a" in lines[3] and "loads" in lines[4] and "version 99" in lines[5]
    assert "no configuration saved yet" in lines[7]


def test_version_1_files_are_migrated_not_rewritten(tmp_path):
    out = run(tmp_path, """
p = fresh('c.json')
old = {'panel_rating_a': 200, 'volts': 120, 'limit_w': 30000, 'band_pct': 5,
       'loads': config.defaults(board)['loads']}
text = json.dumps(old)
with open(p, 'w') as f: f.write(text)
r = config.load(p, board)
print(r.safe_reason, r.migrated_from, r.cfg['system'], config.setpoint_w(r.cfg))
print(open(p).read() == text)
""").splitlines()
    assert "config: migrated from version 1 to 2" in out[0]
    assert out[-2] == "None 1 split 30000"
    assert out[-1] == "True"                   # flash is written only on cfg.save()


def test_nothing_remote_can_change_the_panel_limit(tmp_path):
    out = run(tmp_path, """
c = config.defaults(board)
print(config.apply_remote(c, {'panel_rating_a': 400}), c['panel_rating_a'])
print(config.apply_remote(c, {'limit_w': 1000, 'band_pct': 8}), c['band_pct'])
print(config.apply_remote(c, {'band_pct': 8}), c['band_pct'])
""").splitlines()
    assert out[0] == "['panel_rating_a is protected: change it at the REPL on the board'] 100"
    assert out[1].endswith("5") and "limit_w is protected" in out[1]
    assert out[2] == "[] 8"


def test_safe_mode_keeps_the_network_settings_to_report_why(tmp_path):
    out = run(tmp_path, """
d = json.loads(config.to_json(config.defaults(board)))
d['mqtt_host'] = '10.0.0.5'; d['wifi_ssid'] = 'Site'; d['limit_w'] = 'lots'; d['band_pct'] = 9
r = config.parse(json.dumps(d), board)
print(r.safe_reason is not None, r.cfg['mqtt_host'], r.cfg['wifi_ssid'], r.cfg['limit_w'],
      r.cfg['band_pct'])
""").splitlines()
    assert out[-1] == "True 10.0.0.5 Site 0 5"


def test_a_single_phase_config_with_a_never_shed_load_builds_the_right_target(tmp_path):
    # Config to running Limits: 230 V / 100 A single phase, a 9 kW never-shed shower. The
    # setpoint is 80 % of one leg (18,400 W); the shower starting by surprise must leave the
    # panel at or under its 23,000 W rating, so the controller holds 14,000 W.
    out = run_mpy(SETUP % tmp_path + """
from standin import machine
import app
from clock import Clock
machine.inject(36, 1970)
c = config.defaults(board)
c['system'] = 'single'; c['volts'] = 230
for spec in c['loads']: spec['leg'] = 'L1'
c['loads'].append({'name': 'shower', 'kind': 'never', 'priority': 3, 'leg': 'L1',
                   'rated_w': 9000})
print(config.validate(c, board), config.setpoint_w(c), config.max_setpoint_w(c))
a = app.App(board, machine, Clock(), c)
print(a.setpoint_w, a.limits.effective_w(), [b.load.name for b in a.bindings])
c['system'] = 'split'; c['volts'] = 120
a = app.App(board, machine, Clock(), c)
print(a.setpoint_w, a.limits.effective_w())
""", heap="512k").stdout.splitlines()
    assert out[0] == "[] 18400 18400"
    assert out[1] == "18400 14000 ['water_heater', 'ev']"
    assert out[2] == "19200 15000"          # split phase: 24,000 W less the 9 kW


def test_each_load_is_built_at_the_volts_across_it(tmp_path):
    # A load's amps (and so every per-leg limit) come from its volts: a 1,440 W pump on one
    # leg of a 120/240 V panel is 12 A there, not the 6 A a 240 V figure would make it; on a
    # 230 V single-phase panel every load sees 230 V.
    out = run_mpy(SETUP % tmp_path + """
from standin import machine
import app
from clock import Clock
machine.inject(36, 1970)
c = config.defaults(board)
c['loads'].append({'name': 'pool', 'kind': 'onoff', 'priority': 3, 'leg': 'L1',
                   'rated_w': 1440, 'output': 1})
a = app.App(board, machine, Clock(), c)
print(sorted((b.load.name, b.load.volts) for b in a.bindings))
c['system'] = 'single'; c['volts'] = 230
for spec in c['loads']: spec['leg'] = 'L1'
a = app.App(board, machine, Clock(), c)
print(sorted((b.load.name, b.load.volts) for b in a.bindings))
""", heap="512k").stdout.splitlines()
    assert out[0] == "[('ev', 240), ('pool', 120), ('water_heater', 240)]", out
    assert out[1] == "[('ev', 230), ('pool', 230), ('water_heater', 230)]", out
