"""A load's sensor as a profile device (firmware/loadsensor.py, loads.<name>.sensor), under
micropython on the 32-bit port: its readings confirm what the load draws (its draw where the
load has no CT); silent 3 periods or one implausible reading, and the load counts as
uncontrollable (feedback.py), back after 3 plausible readings in a row; a load under two
watches (its contactor and its sensor) is under control again only when neither alarms;
config's checks; and the firmware on the simulated board with a sensor publishing through
mosquitto."""
import json

from conftest import run_mpy
from devicefw import Firmware, script
from mqtt_helpers import Broker

UNIT = """
import json
import feedback, shed, loadsensor
from fakeclock import FakeClock
clock = FakeClock(20000)             # every timer crosses the ESP32's tick wrap
class Link:
    connected = True
    connects = 1
    def __init__(self): self.routes = {}; self.subs = []
    def route(self, topic, handler): self.routes[topic] = handler
    def subscribe(self, topic): self.subs.append(topic); return True
class Ctl:
    def __init__(self): self.calls = []
    def set_uncontrollable(self, load, flag): self.calls.append((load.name, flag))
class Sampler:
    valid = True
    windows = 0
ctl = Ctl(); logs = []; link = Link(); smp = Sampler()
mon = feedback.Monitor(ctl, clock, logs.append)
load = shed.Load("wh", shed.KIND_ONOFF, 2, "L1L2", 4500, volts=240)
sensor = loadsensor.from_spec({"sensor": "wh_meter", "report_s": 1}, load, clock)
sensor.attach(link)
mon.add(load, charger=sensor)
seq = [0]
def reading(w=4500, valid=True, s=None, raw=None):
    if s is None:
        seq[0] += 1; s = seq[0]
    link.routes["pcp/wh_meter/reading"](raw or json.dumps({"seq": s, "valid": valid, "w": w}))
def step(ms=1000):
    clock.advance(ms)
    load.measured_w = -1         # no CT of its own
    mon.check(smp)
    return [mon.watches[0].alarm, load.measured_w, len(ctl.calls) and ctl.calls[-1][1]]
def show(label, v):
    print(json.dumps([label, v]))
show('topic', list(link.routes))
show('grace', step(500))                           # no reading yet, within 3 s: fine
reading(); show('fresh', step())
for i in range(3):
    show('silent%d' % i, step())                   # 2, 3, then past 3 s: lost
for i in range(3):
    reading(); show('back%d' % i, step(100))       # 3 plausible readings to come back
for label, kw in (('invalid', {"valid": False}), ('negative', {"w": -5}),
                  ('huge', {"w": 100001}), ('text', {"w": "4500"}),
                  ('seqback', {"s": 1 if False else -7}), ('garbage', {"raw": b"{"})):
    reading(**kw); r = step(100)
    for i in range(3):
        reading(); step(100)
    show(label, [r, step(100)])
reading(s=1); show('restart', step(100))           # seq 1: it restarted, plausible
show('bad', [sensor.bad_readings, sensor.readings])
# Two watches on one load: a welded contactor's alarm holds when the sensor comes back.
class Coil: is_on = False
class Aux:
    def value(self): return True                 # closed while commanded off: welded
mon2 = feedback.Monitor(ctl, clock, logs.append)
load2 = shed.Load("wh2", shed.KIND_ONOFF, 2, "L1L2", 4500, volts=240)
s2 = loadsensor.from_spec({"sensor": "m2", "report_s": 1}, load2, clock)
mon2.add(load2, Coil(), Aux())
mon2.add(load2, charger=s2)
ctl.calls.clear()
for i in range(5):
    smp.windows += 1; clock.advance(1000); mon2.check(smp)        # silent sensor, welded
s2q = [0]
for i in range(3):
    s2q[0] += 1
    s2.on_reading(json.dumps({"seq": s2q[0], "valid": True, "w": 0}))
    smp.windows += 1; clock.advance(100); mon2.check(smp)
show('two', [[w.alarm for w in mon2.watches], ctl.calls])
"""


def test_sensor_confirms_the_load_by_the_profiles_freshness_rules():
    out = dict((k, v) for k, v in (json.loads(l) for l in run_mpy(UNIT, heap="256k")
                                   .stdout.splitlines()))
    assert out["topic"] == ["pcp/wh_meter/reading"]
    assert out["grace"] == [None, -1, 0]
    assert out["fresh"] == [None, 4500, 0]              # its reading is the load's draw
    assert out["silent0"] == [None, 4500, 0] and out["silent1"] == [None, 4500, 0]
    assert out["silent2"] == ["lost", -1, True]         # 3 s: gone, uncontrollable
    assert [out["back%d" % i][0] for i in range(3)] == ["lost", "lost", None]
    assert out["back2"] == [None, 4500, False]
    for label in ("invalid", "negative", "huge", "text", "seqback", "garbage"):
        # Lost at the first implausible reading; back after 3 plausible ones.
        assert out[label] == [["lost", -1, True], [None, 4500, False]], (label, out[label])
    assert out["restart"] == [None, 4500, False]
    assert out["bad"][0] == 6
    # The sensor's alarm cleared, the contactor's holds: the load stays uncontrollable.
    assert out["two"][0] == ["welded", None], out["two"]
    assert out["two"][1][-1] == ["wh2", True], out["two"]


BESIDE = UNIT.split("show('topic'")[0] + r"""
def beside(ct_w, sensor_w):
    # A reading, then a control step with the load's CT reading ct_w (>= 0: it has one).
    seq[0] += 1
    link.routes["pcp/wh_meter/reading"](json.dumps({"seq": seq[0], "valid": True, "w": sensor_w}))
    clock.advance(1000)
    load.measured_w = ct_w
    mon.check(smp)
    return mon.watches[0].alarm
out = {}
out['agree'] = [beside(4500, 4500 - 300) for _ in range(4)]   # within 10 % of 4500 W
out['switching'] = [beside(4500, 0), beside(4500, 4500)]      # one reading behind: fine
out['off'] = [beside(0, 4500) for _ in range(4)]              # the CT sees nothing: lost at 3
out['back'] = [beside(0, 0) for _ in range(4)]                # 3 that agree to come back
out['count'] = sensor.disagreements
print(json.dumps(out))
"""


def test_a_sensor_beside_the_loads_ct_is_cross_checked():
    # The profile: where two sensors see the same current, a disagreement beyond their
    # tolerance is a fault. A sensor beside the load's CT that reads 4.5 kW while the CT
    # reads nothing (or the other way round) loses the load after 3 readings in a row, as
    # silence does (uncontrollable, its rated_w counted); 3 that agree bring it back.
    lines = run_mpy(BESIDE, heap="256k").stdout.splitlines()
    out = json.loads(lines[-1])
    out["log"] = [line for line in lines if "disagrees" in line]     # the sensor's log: print
    assert out["agree"] == [None] * 4 and out["switching"] == [None, None], out
    assert out["off"] == [None, None, "lost", "lost"], out
    assert out["back"] == ["lost", "lost", None, None], out
    assert out["log"] == ["sensor wh_meter disagrees with wh's CT: CT 0 W, sensor 4500 W"], out
    assert out["count"] == 5, out


def test_config_takes_a_sensor_id_with_mqtt():
    out = run_mpy(r"""
import config, simboard as board
def errs(load, host='127.0.0.1'):
    cfg = config.defaults(board)
    cfg['mqtt_host'] = host
    cfg['loads'] = [load, dict(config.DEFAULT_LOADS[1])]
    return [e for e in config.validate(cfg, board) if 'loads' in e]
wh = dict(config.DEFAULT_LOADS[0], sensor='wh_meter', report_s=5)
print('OK', errs(wh))
print('NOCT', errs({k: v for k, v in wh.items() if k != 'ct'}))
print('SLASH', errs(dict(wh, sensor='a/b')))
print('NOHOST', errs(wh, ''))
""", heap="512k").stdout.splitlines()
    assert out[0] == "OK []", out
    assert out[1] == "NOCT []", out
    assert "loads.water_heater: sensor must be a device id (no /, + or #) and needs " \
           "mqtt_host, got 'a/b'" in out[2], out
    assert "needs mqtt_host" in out[3], out


# The water heater (tank at 50 C: calling) has a profile sensor beside its CT.
FW_SETUP = """
wh["start_c"] = 50
panel = Panel(params, ConstantProfile(1500))
loads = [dict(config.DEFAULT_LOADS[0], sensor="wh_meter", report_s=1),
         dict(config.DEFAULT_LOADS[1])]
cfg = dict(common, limit_w=19200, loads=loads)
"""
FW_LOADED = """
print(json.dumps({"loaded": "loadsensor" in sys.modules}))
"""
FW_ROW = """
panel.advance_to(now)
b = by_name("water_heater")
w = [w for w in app.monitor.watches if w.charger is not None][0] if app.monitor else None
row = {"alarm": w.alarm if w else None, "on": b.actuator.is_on, "stuck": b.load.uncontrollable}
"""


def test_firmware_takes_a_loads_profile_sensor_through_mosquitto(tmp_path):
    # The water heater's sensor reports every second beside its CT; it falls silent (lost:
    # uncontrollable, its 4500 W counted), comes back (cleared), sends one reading with
    # valid false (lost at once), and reports well again (cleared).
    from mqttclient import Mqtt
    with Broker(tmp_path) as broker:
        meter = Mqtt("127.0.0.1", broker.port, "wh_meter", keepalive_s=0)
        fw = Firmware(script(broker.port, 36, FW_SETUP, FW_ROW, FW_LOADED))
        sent = {"seq": 0}
        marks = {}

        def report(fw):
            # Once a second of real time: silent from 12 to 18 s, valid false at 26 s.
            last = fw.latest()
            if last is None:
                return
            now = last["t"]
            if not 12000 <= now < 18000:
                sent["seq"] += 1
                valid = not 26000 <= now < 27000
                if not valid:
                    marks.setdefault("invalid", now)
                meter.publish("pcp/wh_meter/reading", json.dumps(
                    {"seq": sent["seq"], "valid": valid, "w": 4500 if last["on"] else 0}))
            else:
                marks.setdefault("silent", now)
        fw.drive(each=report, limit_s=80, period_s=1)
        fw.finish()
        meter.close()
    assert fw.rows[0] == {"loaded": True}
    samples, log, between = fw.samples(), fw.log(), fw.between
    before = between(3000, 12000)
    assert before and not any(r["alarm"] or r["stuck"] for r in before), log
    lost = [r["t"] for r in between(12000, 19000) if r["alarm"] == "lost" and r["stuck"]]
    assert lost and lost[0] - marks["silent"] <= 3000 + 1000 + 2000, (marks, lost[:1], log)
    assert "alarm: water_heater lost: no report" in log
    back = between(21000, 26000)
    assert back and not any(r["alarm"] or r["stuck"] for r in back[-8:]), log
    bad = [r["t"] for r in between(26000, 30000) if r["alarm"] == "lost"]
    assert bad and bad[0] - marks["invalid"] <= 1000 + 2000, (marks, bad[:1], log)
    assert samples[-1]["alarm"] is None and not samples[-1]["stuck"], samples[-1]
