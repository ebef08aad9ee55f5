"""Other makers' relays as loads (firmware/adaptrelay.py and its dialects), under micropython:
the Tasmota and Shelly adapters' parsing, the profile's freshness rules (silent, offline,
disobedient: lost, shed, its rated power counted), the command sent on each change as an
event and repeated as a heartbeat; config's checks; and the firmware on the simulated board
driving a simulated Tasmota (tools/tasmota_sim.py) and a simulated Shelly
(tools/shelly_sim.py) through mosquitto."""
import pytest
import json
import sys
import time

from conftest import ROOT, run_mpy
from devicefw import Firmware, load_config_lines, adapters_loaded, script
from mqtt_helpers import Broker, Client
from mains_rig import MainsFirmware

sys.path.insert(0, str(ROOT / "tools"))
from shelly_sim import ShellySim  # noqa: E402
from tasmota_sim import TasmotaSim  # noqa: E402

SETUP = """
import json
import adapt_tasmota, adapt_shelly
from fakeclock import FakeClock
clock = FakeClock(20000)             # every timer crosses the ESP32's tick wrap
from fakelink import Link            # what an adapter uses of net.MqttLink
link = Link()
"""


def run(code):
    return run_mpy(SETUP + code, heap="256k").stdout.splitlines()


def test_tasmota_dialect_and_freshness_rules():
    out = run("""
r = adapt_tasmota.Tasmota(clock, "wh", 240, 1000)         # TelePeriod 1 s: lost after 3 s
r.attach(link)
import asyncio
async def once():
    t = asyncio.create_task(r.run()); await asyncio.sleep_ms(10); t.cancel()
asyncio.run(once())
print('SUBS', sorted(link.subs), link.sent)
link.sent.clear()
r.set(True); r.set(True)
print('ON', link.sent)
link.cb(b"tele/wh/LWT", b"Online")
link.cb(b"stat/wh/POWER", b"ON")
link.cb(b"tele/wh/SENSOR", b'{"Time":"x","ENERGY":{"Total":1.2,"Power":2400,"Voltage":240}}')
print('FRESH', r.confirmed(clock.t), r.actual_ma, r.reports)
for bad in (b'{"ENERGY":{"Power":-5}}', b'{"ENERGY":{"Power":"2400"}}', b'{"ENERGY":{}}',
            b'{"Power":1}', b'not json', b'{"ENERGY":{"Power":true}}', b'{"ENERGY":{"Power":1e9}}'):
    link.cb(b"tele/wh/SENSOR", bad)
link.cb(b"stat/wh/POWER", b"maybe")
print('BAD', r.bad_reports, r.actual_ma, r.reports)
link.cb(b"tele/wh/SENSOR", b'{"ENERGY":{"Power":[1200, 300]}}')   # several channels: relay 1
print('LIST', r.actual_ma)
clock.advance(3000)
print('AT3S', r.confirmed(clock.t))
clock.advance(1)
print('SILENT', r.confirmed(clock.t), r.actual_ma)
link.cb(b"tele/wh/SENSOR", b'{"ENERGY":{"Power":2400}}')
print('BACK', r.confirmed(clock.t))
link.cb(b"tele/wh/LWT", b"Offline")
print('OFFLINE', r.confirmed(clock.t))
link.cb(b"tele/wh/LWT", b"Online")
print('ONLINE', r.confirmed(clock.t))
link.sent.clear()
for _ in range(3):                   # unchanged: repeated every period / 3 (1 s) as a heartbeat
    clock.advance(500)
    link.cb(b"tele/wh/SENSOR", b'{"ENERGY":{"Power":2400}}')
    r.set(True)
print('BEAT', link.sent)
# Disobedient: commanded off, it keeps saying ON: lost once 3 s have passed without it obeying.
link.sent.clear()
r.set(False)
for _ in range(7):
    clock.advance(500)
    link.cb(b"tele/wh/SENSOR", b'{"ENERGY":{"Power":2400}}')
    link.cb(b"stat/wh/POWER", b"ON")
    print('STUCK', r.confirmed(clock.t))
link.cb(b"stat/wh/POWER", b"OFF")
print('OBEYS', r.confirmed(clock.t), link.sent[0])
r.safe()
print('SAFE', r.is_on, link.sent[-1])
# Lost by silence while on; shed (commanded off). It talks again, still on: not back until
# it shows the OFF, though the command is younger than the 3 s it is given to obey.
r.set(True); link.cb(b"stat/wh/POWER", b"ON")
clock.advance(3001)
print('LOST', r.confirmed(clock.t))
r.set(False)
clock.advance(500)
link.cb(b"tele/wh/SENSOR", b'{"ENERGY":{"Power":2400}}'); link.cb(b"stat/wh/POWER", b"ON")
print('STILL', r.confirmed(clock.t))
link.cb(b"stat/wh/POWER", b"OFF")
print('CLEARED', r.confirmed(clock.t))
""")
    assert out[0] == ("SUBS ['stat/wh/POWER', 'tele/wh/LWT', 'tele/wh/SENSOR'] "
                      "[('r', 'cmnd/wh/POWER', 'OFF')]"), out
    assert out[1] == "ON [('e', 'cmnd/wh/POWER', 'ON')]", out   # a change: an event, once
    assert out[2] == "FRESH True 10000 1", out
    assert out[3] == "BAD 8 10000 1", out                       # each counted, none taken
    assert out[4] == "LIST 5000", out
    assert out[5] == "AT3S True", out
    assert out[6] == "SILENT False -1", out                     # a stale reading is none
    assert out[7:10] == ["BACK True", "OFFLINE False", "ONLINE True"], out
    assert out[10] == "BEAT [('r', 'cmnd/wh/POWER', 'ON'), ('r', 'cmnd/wh/POWER', 'ON')]", out
    stuck = [line.split()[1] for line in out if line.startswith("STUCK")]
    assert stuck == ["True"] * 6 + ["False"], out
    assert out[-5] == "OBEYS True ('e', 'cmnd/wh/POWER', 'OFF')", out
    assert out[-4] == "SAFE False ('e', 'cmnd/wh/POWER', 'OFF')", out
    assert out[-3:] == ["LOST False", "STILL False", "CLEARED True"], out


def test_shelly_dialect():
    out = run("""
r = adapt_shelly.Shelly(clock, "shellyplus1pm-wh", 240, 1000)
r.attach(link)
import asyncio
async def once():
    t = asyncio.create_task(r.run()); await asyncio.sleep_ms(10); t.cancel()
asyncio.run(once())
print('SUBS', sorted(link.subs))
for m in link.sent: d = json.loads(m[2]); print('SENT', m[0], m[1], d['id'], d['src'], d['method'], sorted(d['params'].items()))
link.sent.clear()
r.set(True)
for m in link.sent: d = json.loads(m[2]); print('SENT', m[0], m[1], d['id'], d['src'], d['method'], sorted(d['params'].items()))
answer = lambda d: link.cb(b"panelcap-shellyplus1pm-wh/rpc", json.dumps(d).encode())
answer({"id": 1, "src": "shellyplus1pm-x", "dst": "panelcap-shellyplus1pm-wh",
        "result": {"was_on": False}})
print('SET', r.reported_on, r.reports)
answer({"id": 2, "src": "x", "dst": "y", "result": {"id": 0, "output": True, "apower": 1200.5,
                                                  "voltage": 240.1}})
print('STATUS', r.confirmed(clock.t), r.actual_ma, r.reports)
link.cb(b"shellyplus1pm-wh/status/switch:0", b'{"id":0,"output":false,"apower":0.0}')
print('NTF', r.reported_on, r.actual_ma)
for bad in (b'{"id":2,"error":{"code":-105,"message":"no"}}', b'{"id":2,"result":{"output":1,"apower":5}}',
            b'{"id":2,"result":{"output":true}}', b'{"id":1,"result":{}}', b'[]', b'nope'):
    link.cb(b"panelcap-shellyplus1pm-wh/rpc", bad)
link.cb(b"shellyplus1pm-wh/status/switch:0", b'{"id":0,"output":true,"apower":-3}')
print('BAD', r.bad_reports)
link.cb(b"shellyplus1pm-wh/online", b"false")
print('OFFLINE', r.confirmed(clock.t))
link.cb(b"shellyplus1pm-wh/online", b"true")
link.cb(b"shellyplus1pm-wh/status/switch:0", b'{"id":0,"output":true,"apower":1200}')
print('ONLINE', r.confirmed(clock.t))
""")
    assert out[0] == ("SUBS ['panelcap-shellyplus1pm-wh/rpc', 'shellyplus1pm-wh/online', "
                      "'shellyplus1pm-wh/status/switch:0']"), out
    head = "shellyplus1pm-wh/rpc %d panelcap-shellyplus1pm-wh"
    # After the subscription: the command (off) and a status request, both readings.
    assert out[1] == ("SENT r " + head % 0 + " Switch.Set [('id', 0), ('on', False)]"), out
    assert out[2] == ("SENT r " + head % 2 + " Switch.GetStatus [('id', 0)]"), out
    # A change: an event, with the flip-back timer of 3 report periods (the safe state).
    assert out[3] == ("SENT e " + head % 1 + " Switch.Set [('id', 0), ('on', True), "
                      "('toggle_after', 3)]"), out
    assert out[4] == ("SENT r " + head % 2 + " Switch.GetStatus [('id', 0)]"), out
    assert out[5] == "SET True 0", out
    assert out[6] == "STATUS True 5002 1", out
    assert out[7] == "NTF False 0", out
    assert out[8] == "BAD 7", out
    assert out[9:] == ["OFFLINE False", "ONLINE True"], out


def test_config_takes_a_relay_driver_only_for_onoff_loads_with_a_device():
    wh = {'name': 'wh', 'kind': 'onoff', 'priority': 1, 'leg': 'L1L2', 'rated_w': 4500,
          'driver': 'tasmota', 'device': 'wh_relay', 'report_s': 10}
    out = load_config_lines(wh, r"""
print('MOD', errs(dict(load, kind='modulated')))
print('PERIOD', errs(dict(load, report_s=0)))
print('SHELLY', errs(dict(load, driver='shelly', device='shellyplus1pm-a8032ab1')))
def mains(m, host='127.0.0.1'):
    cfg = config.defaults(board)
    cfg['mqtt_host'] = host
    cfg['mains_meter'] = m
    return [e for e in config.validate(cfg, board) if 'mains' in e]
print('MAINS', mains('meter1'), mains('a/b'), mains('meter1', ''))
""")
    assert out[0] == "OK []", out
    assert "needs device" in out[1], out
    assert "driver 'tasmota' needs mqtt_host" in out[2], out
    assert "driver 'tasmota' is for an onoff load" in out[3], out
    assert "report_s must be an int in 1..3600 s" in out[4], out
    assert out[5] == "SHELLY []", out
    assert out[6].startswith("MAINS [] [") and \
        out[6].count("mains_meter must be a device id (no /, + or #) and needs mqtt_host") == 2, out


# The heater's relay is another maker's device, on the broker; the EV charger is the board's.
FW_SETUP = """
panel = Panel(params, ConstantProfile(1000))
loads = [{"name": "heater", "kind": "onoff", "priority": 2, "leg": "L1L2", "rated_w": 3000,
          "driver": "DRIVER", "device": "heater_relay", "report_s": 1},
         dict(config.DEFAULT_LOADS[1])]
cfg = dict(common, limit_w=19200, loads=loads)
"""
FW_ROW = """
w = app.monitor.watches[0] if app.monitor else None
b = by_name("heater")
row = {"alarm": w.alarm if w else None, "on": b.load.on, "cmd": b.actuator.is_on,
       "w": b.load.measured_w, "stuck": b.load.uncontrollable}
"""


@pytest.mark.parametrize("driver", ["tasmota", "shelly"])
def test_firmware_drives_a_simulated_relay_through_mosquitto(tmp_path, driver):
    # The relay runs, falls silent (lost: shed, its 3000 W counted), comes back, drops off
    # the broker (its last will says so: lost at once), and comes back again.
    with Broker(tmp_path) as broker:
        if driver == "tasmota":
            sim = TasmotaSim("127.0.0.1", broker.port, "heater_relay", rated_w=3000,
                             tele_period_s=1)
        else:
            # Its own status only on a change (and every 60 s): panelcap asks every report_s.
            sim = ShellySim("127.0.0.1", broker.port, "heater_relay", rated_w=3000,
                            period_s=60)
        sim.start()
        watcher = Client(broker.port, "watcher")
        watcher.subscribe("#")
        fw = Firmware(script(broker.port, 48, FW_SETUP.replace("DRIVER", driver), FW_ROW,
                             adapters_loaded(driver)))
        # Faults at moments of the firmware's own (virtual) time, read from its latest row.
        # The controller restores a load once the room has lasted its settle time (10 s).
        marks = fw.drive([(17000, "silent", sim.silent), (22000, "resume", sim.resume),
                          (40000, "offline", sim.offline), (44000, "online", sim.online)])
        fw.finish()
        sim.stop.set()
        answers = watcher.take()
        sim.close()
    # Only the configured adapter is loaded.
    rows = fw.rows
    assert rows[0] == {"adapter": True, "evmqtt": False, "others": ["adapt_" + driver]}, rows[0]
    samples, log, between = fw.samples(), fw.log(), fw.between
    # Before the faults: switched on, confirmed, its own report is the load's draw.
    ran = [r for r in between(0, marks["silent"]) if r["cmd"] and r["w"] == 3000]
    assert ran and all(r["alarm"] is None for r in ran), log
    # Silent: lost 3 report periods (3 s) after its last report, plus a control step (1 s)
    # and the host's slack; shed and uncontrollable until it talks again.
    lost = [r["t"] for r in between(marks["silent"], marks["resume"]) if r["alarm"] == "lost"]
    assert lost and lost[0] - marks["silent"] <= 3000 + 1000 + 2000, (marks, lost[:1], log)
    assert all(not r["cmd"] and r["stuck"] for r in samples if lost[0] <= r["t"] <= lost[-1])
    assert "alarm: heater lost: no report" in log
    # Back: cleared once it shows the command again (off: it missed the OFF while silent,
    # and the repeat reaches it), not at its first report, which still says 3000 W.
    back = between(marks["resume"], marks["offline"])
    cleared = [r for r in back if r["alarm"] is None]
    assert cleared and all(r["alarm"] is None for r in back if r["t"] >= cleared[0]["t"]), log
    # Offline (its LWT): lost at the next control step, not 3 periods later.
    off = [r["t"] for r in between(marks["offline"], marks["online"]) if r["alarm"] == "lost"]
    assert off and off[0] - marks["offline"] <= 1000 + 1500, (marks, off[:1])
    assert samples[-1]["alarm"] is None and not samples[-1]["stuck"], samples[-1]
    # The relay's side: each change went out in its dialect, and was answered.
    if driver == "tasmota":
        assert "OFF" in sim.commands and "ON" in sim.commands
        assert any(t == "stat/heater_relay/POWER" and p == b"OFF" for t, p, _ in answers)
    else:
        sets = [p["on"] for m, p in sim.requests if m == "Switch.Set"]
        assert True in sets and False in sets
        assert any(m == "Switch.GetStatus" for m, p in sim.requests)
        assert any(t == "panelcap-heater_relay/rpc" and b'"was_on"' in p
                   for t, p, _ in answers)



def test_mains_meter_beside_the_cts_is_cross_checked(tmp_path):
    # A profile sensor on the mains reports the panel's true power, once a second; then it
    # reads 3 kW high (a disagreement: every load shed), then true again (cleared), then it
    # falls silent (the check is lost, nothing else).
    from mqttclient import Mqtt
    with Broker(tmp_path) as broker:
        meter = Mqtt("127.0.0.1", broker.port, "meter1", keepalive_s=0)
        fw = MainsFirmware(broker.port, 40, {"mains_meter": "meter1", "mains_meter_s": 1,
                                             "mains_tolerance_w": 500})
        seq = 0
        while fw.running(80):
            last = fw.last()
            if last is not None and last["t"] < 32000:
                off = 3000 if 14000 <= last["t"] < 22000 else 0
                seq += 1
                meter.publish("pcp/meter1/reading", json.dumps(
                    {"seq": seq, "valid": True, "w": last["truth_w"] + off}))
            time.sleep(1)
        samples, log, loaded = fw.finish()
        meter.close()
    assert loaded[0] == [] and "mainscheck" in loaded[-1], loaded     # not before the network
    before = [r for r in samples if 3000 <= r["t"] < 14000]
    assert before and not any(r["fault"] for r in before), log
    assert any(r["wh"] for r in before), log                  # the water heater ran
    # 3 readings in a row off by 3 kW (1 s apart), a control step: fault, limit 0, shed.
    fault = [r for r in samples if 14000 <= r["t"] < 22000 and r["fault"]]
    assert fault and fault[0]["t"] <= 14000 + 3000 + 1000 + 2000, log
    assert fault[0]["limit_w"] == 0 or fault[1]["limit_w"] == 0, fault[:2]
    assert not fault[-1]["wh"], fault[-1]
    assert any(l.startswith("alarm: mains meter disagrees") for l in log), log
    # True readings again: cleared after 3 in a row.
    after = [r for r in samples if 22000 <= r["t"] < 32000]
    cleared = [r for r in after if not r["fault"]]
    assert cleared and cleared[0]["t"] <= 22000 + 3000 + 1000 + 2000, log
    assert after[-1]["limit_w"] != 0 and "alarm: mains meter agrees again: cleared" in log
    # Silent: the check is lost, logged, and nothing is shed for it.
    assert "mains meter: silent: no cross-check" in log, log
    assert not samples[-1]["fault"] and samples[-1]["limit_w"] != 0, samples[-1]
