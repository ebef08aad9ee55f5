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


# A power cut inside config.save(): its file operations (open, write, close, rename, remove,
# in atomicfile.write) are swapped for ones that stop the program at the n-th of them, for
# every n until a save runs through. PowerCut is no OSError, so no handler in save() can catch
# it, as none can catch a power cut. After each cut the file on flash must be the old one, whole, or
# (once the rename has happened) the new one.
POWER_CUT = """
import atomicfile
class PowerCut(Exception):
    pass
class Ops:
    def __init__(self, cut_at):
        self.cut_at = cut_at
        self.n = 0
        self.log = []
    def step(self, what):
        self.n += 1
        self.log.append(what)
        if self.n == self.cut_at:
            raise PowerCut(what)
class CutFile:
    # A file whose every write, in pieces of at most 16 bytes, is a step that may be cut.
    def __init__(self, f, ops):
        self.f = f; self.ops = ops
    def write(self, text):
        for i in range(0, len(text), 16):
            self.ops.step('write')
            self.f.write(text[i:i + 16])
        return len(text)
    def close(self):
        self.ops.step('close')
        self.f.close()
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        if exc[0] is PowerCut:
            self.f.close()          # what reached the file so far stays there
        else:
            self.close()
class CutOs:
    def __init__(self, ops, rename_over=True):
        self.ops = ops; self.rename_over = rename_over
    def rename(self, a, b):
        self.ops.step('rename')
        if not self.rename_over and b.split("/")[-1] in os.listdir(D):
            raise OSError(17)       # EEXIST: a file system that will not rename over a file
        os.rename(a, b)
    def remove(self, p):
        self.ops.step('remove')
        os.remove(p)
def cut_save(cfg, path, cut_at, rename_over=True):
    ops = Ops(cut_at)
    def cut_open(name, mode='r'):
        ops.step('open')
        return CutFile(open(name, mode), ops)
    # The save's file operations are atomicfile.write's: it finds these first, in its
    # module's globals.
    atomicfile.open = cut_open
    atomicfile.os = CutOs(ops, rename_over)
    try:
        config.save(cfg, path)
        done = True
    except PowerCut:
        done = False
    finally:
        del atomicfile.open
        atomicfile.os = os
    return done, ops
def on_flash(p):
    return config.load(p, board, log=lambda line: None)
"""


def _power_cuts(tmp_path, rename_over):
    out = run(tmp_path, POWER_CUT + """
p = fresh('c.json')
old = config.defaults(board); old['band_pct'] = 9
new = config.defaults(board); new['band_pct'] = 12; new['ct']['L1']['gain'] = 1.25
config.save(old, p)
old_text = open(p).read()
new_text = config.to_json(new)
cut_at = 1
while True:
    config.save(old, p)
    for name in os.listdir(D):
        if name != 'c.json':
            os.remove(D + '/' + name)
    done, ops = cut_save(new, p, cut_at, %s)
    names = sorted(os.listdir(D))
    try:
        text = atomicfile.read(p)       # c.json, or the old file set aside as c.json.bak
    except OSError:
        text = None
    r = on_flash(p)
    if text == old_text and r.safe_reason is None and r.cfg == old:
        seen = 'old'
    elif text == new_text and r.safe_reason is None and r.cfg == new:
        seen = 'new'
    else:
        seen = 'BROKEN %%r %%r' %% (r.safe_reason, (text or '')[:40])
    print('CUT', cut_at, ops.log[-1], done, seen, 'renamed' if 'rename' in ops.log and
          (ops.log[-1] != 'rename' or done) else '-')
    if done:
        break
    cut_at += 1
print('STEPS', ' '.join(ops.log))
""" % rename_over).splitlines()
    cuts = [line.split()[1:] for line in out if line.startswith("CUT")]
    steps = [line for line in out if line.startswith("STEPS")][0].split()[1:]
    return cuts, steps


def test_a_power_cut_at_any_step_of_a_save_leaves_the_old_file_or_the_new(tmp_path):
    cuts, steps = _power_cuts(tmp_path, True)
    for cut_at, what, done, seen, *rest in cuts[:-1]:
        # Until the rename has happened the old file is there, whole (cut at the write, the
        # close or the rename itself: the rename never began).
        assert done == "False" and seen == "old", (cut_at, what, seen, rest)
    assert cuts[-1][2:4] == ["True", "new"], cuts[-1]
    # The save's steps: open the temporary file, its writes, close, one rename over the old.
    assert steps[0] == "open" and steps[-2:] == ["close", "rename"], steps
    assert steps.count("write") > 10, steps            # the text is cut in many places
    assert len(cuts) == len(steps) + 1                 # a cut at every step, then a whole save


def test_a_power_cut_during_a_save_on_a_file_system_that_will_not_rename_over(tmp_path):
    # A file system that will not rename over a file: save() renames the old file aside
    # (c.json.bak) before the new one takes its name, and load() reads the .bak when c.json is
    # missing. A cut at every step leaves the old settings until the new file has its name.
    # (Before: the old file was removed first, and a cut just after left no config at all.)
    cuts, steps = _power_cuts(tmp_path, False)
    assert steps[-6:] == ["close", "rename", "remove", "rename", "rename", "remove"], steps
    into_place = len(steps) - 1                      # the rename of the .tmp to c.json
    for cut_at, what, done, seen, *rest in cuts:
        assert seen == ("new" if int(cut_at) > into_place else "old"), (cut_at, what, seen)
    assert cuts[-1][2:4] == ["True", "new"], cuts[-1]


def test_an_interrupted_save_leaves_the_old_file(tmp_path):
    # A temporary file left half written by an earlier cut is ignored by load() and replaced
    # whole by the next save().
    out = run(tmp_path, """
p = fresh('c.json')
c = config.defaults(board); c['band_pct'] = 9
config.save(c, p)
with open(p + '.tmp', 'w') as f: f.write(config.to_json(c)[:40])
r = config.load(p, board)
print(r.safe_reason, r.cfg['band_pct'])
c['band_pct'] = 11
config.save(c, p)
print(config.load(p, board).cfg['band_pct'], sorted(os.listdir(D)))
""").splitlines()
    assert out[-2] == "None 9"
    assert out[-1] == "11 ['c.json']"


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


def test_nothing_remote_can_raise_the_limit_or_change_a_setting(tmp_path):
    # The real remote paths of a built App: MQTT commands (cmd/limit, cmd/load/..., any other
    # topic under cmd/) and grid signals (cmd/grid/...), handled as the reporter hands them on.
    # Whatever arrives, the limit in force never goes above the installer's setpoint, over
    # two simulated hours, and no setting changes (none is reachable from the network: the
    # panel limit's keys change only at the REPL).
    out = run_mpy(SETUP % tmp_path + """
from standin import machine
import app
from fakeclock import FakeClock
machine.inject(36, 1970)
clock = FakeClock(5000)              # the ESP32's ticks, 5 s before the wrap
c = config.defaults(board)
c['limit_w'] = 9600; c['mqtt_host'] = '127.0.0.1'; c['grid_subscription_w'] = 6000
print('valid', config.validate(c, board))
a = app.App(board, machine, clock, c, log=lambda line: None)
a.network_entries()
events = []
def publish(topic, msg, retain=False):
    if topic.endswith('/event'):
        events.append(json.loads(msg))
a.mqtt.publish = publish
cmds = a.reporter.commands
before = config.to_json(a.cfg)
setpoint = a.setpoint_w
worst = [0]
def check_limit(what):
    if a.grid is not None:
        a.grid.update(clock.t)       # what the grid task does on each pass
    w = a.limits.effective_w(clock.t)
    worst[0] = max(worst[0], w)
    if w is None or w > setpoint or a.limits.setpoint_w != setpoint or a.setpoint_w != setpoint:
        print('RAISED', what, w, a.limits.setpoint_w, a.setpoint_w)
    if config.to_json(a.cfg) != before:
        print('CHANGED', what)
def send(topic, obj):
    events.clear()
    text = obj if isinstance(obj, str) else json.dumps(obj)
    ok = cmds.handle('panelcap', ('panelcap/cmd/' + topic).encode(), text.encode())
    check_limit(topic + ' ' + text)
    ev = events[-1] if events else {}
    print('CMD', topic, 'ok' if ok else 'refused', ev.get('error', ''))
    return ev
def iv(kw, start=None, units='KW'):
    period = {'duration': 'PT1H'}
    if start:
        period['start'] = start
    return {'programID': 'p', 'eventName': 'e', 'intervalPeriod': period,
            'payloadDescriptors': [{'payloadType': 'IMPORT_CAPACITY_LIMIT', 'units': units}],
            'intervals': [{'id': 0, 'payloads': [{'type': 'IMPORT_CAPACITY_LIMIT',
                                                  'values': [kw]}]}]}
check_limit('start')
send('limit', {'limit_w': 9601, 'duration_s': 600})
send('limit', {'limit_w': 19200, 'duration_s': 600})
send('limit', {'limit_w': 5000, 'duration_s': 600, 'panel_rating_a': 400})
send('limit', {'limit_w': 9600, 'duration_s': 600})
for key, value in (('panel_rating_a', 400), ('limit_w', 19200), ('system', 'single'),
                   ('volts', 240), ('band_pct', 8)):
    send('config', {key: value})
    send('set/' + key, {'value': value})
    send('limit', {key: value, 'duration_s': 600})
send('load/ev', {'mode': 'max_a', 'max_a': 80, 'duration_s': 600})
send('load/water_heater', {'mode': 'on', 'duration_s': 600})
send('grid/time', {'unix_s': 1795716000})
send('grid/limits', iv(50))                 # 50 kW from now, for an hour
send('grid/limits', iv(400, units='A'))     # 400 A a leg
send('grid/limits', iv(30, start='2026-11-26T18:30:00Z'))
send('grid/emergency', {'share_pct': 100, 'duration_s': 600})
send('grid/reserve', {'duration_s': 3600, 'extra_w': 50000})
ev = send('grid/reserve', {'duration_s': 3600, 'extra_w': 3600})
send('grid/answer', {'id': ev.get('request'), 'status': 'granted', 'fee_cents': 0})
send('grid/time', {'unix_s': 1795716000 + 7 * 86400})
for minute in range(120):
    clock.advance(60000)
    check_limit('minute %d' % minute)
print('WORST', worst[0], setpoint, a.limits.sources())
""", heap="512k", cwd=tmp_path).stdout.splitlines()      # grid.json, compliance.log: tmp_path
    assert out[0] == "valid []", out
    assert not [line for line in out if line.startswith(("RAISED", "CHANGED"))], out
    cmd = {}
    for line in out:
        if line.startswith("CMD"):
            topic, verdict = line.split()[1:3]
            cmd.setdefault(topic, []).append((verdict, line))
    # Above the setpoint, or with a setting's key in it: refused, with the reason.
    assert [v for v, _ in cmd["limit"][:3]] == ["refused"] * 3, cmd["limit"]
    assert "9600" in cmd["limit"][0][1] and "9600" in cmd["limit"][1][1]
    assert "unknown field 'panel_rating_a'" in cmd["limit"][2][1]
    assert cmd["limit"][3][0] == "ok"                     # at the setpoint: allowed
    assert all(v == "refused" for v, _ in cmd["limit"][4:]), cmd["limit"]
    for topic in cmd:
        if topic == "config" or topic.startswith("set/"):
            assert all(v == "refused" and "unknown command" in line for v, line in cmd[topic])
    assert cmd["load/ev"][0][0] == "refused" and cmd["load/water_heater"][0][0] == "refused"
    assert cmd["grid/reserve"][0][0] == "refused" and "extra_w" in cmd["grid/reserve"][0][1]
    # The grid's own messages may be taken (the limit above the setpoint simply does not win);
    # the reservation granted lifts the subscription only up to the setpoint.
    assert cmd["grid/answer"][0][0] == "ok", cmd["grid/answer"]
    worst = [line for line in out if line.startswith("WORST")][0].split()
    assert int(worst[1]) <= int(worst[2]) == 9600, worst
    print("highest limit in force: %s W (setpoint %s W)" % (worst[1], worst[2]))


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
