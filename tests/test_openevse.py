"""OpenEVSE as a profile actuator (firmware/adapt_openevse.py over evmqtt.MqttCharger), under
micropython on the 32-bit port: its claim as the command (a change as an outbox event, the
same claim again as the heartbeat), the gateway's retained echo as the acknowledgement, the
profile's freshness rules (silent 3 status periods, the echo not showing the command in
time, a stuck relay: lost; back only once the echo shows the command), and the firmware on
the simulated board driving tools/openevse_sim.py through mosquitto."""
import json
import sys
import time

from conftest import ROOT, run_mpy
from devicefw import Firmware, load_config_lines, adapters_loaded, script
from mqtt_helpers import Broker, Client

sys.path.insert(0, str(ROOT / "tools"))
from openevse_sim import OpenEvseSim  # noqa: E402

SETUP = """
import json, sys
import adapt_openevse
from fakeclock import FakeClock
clock = FakeClock(20000)             # every timer crosses the ESP32's tick wrap
from fakelink import Link            # what an adapter uses of net.MqttLink
link = Link()
def show(label, v):
    print(json.dumps([label, v]))
"""


def run(code):
    out = run_mpy(SETUP + code, heap="256k").stdout.splitlines()
    return [json.loads(line) for line in out]


def test_claim_echo_and_freshness_rules():
    out = dict((k, v) for k, v in run("""
ev = adapt_openevse.OpenEvse(clock, "oe", 32, 1000)         # status every 1 s: lost after 3 s
ev.attach(link)
import asyncio
async def once():
    t = asyncio.create_task(ev.run()); await asyncio.sleep_ms(10); t.cancel()
asyncio.run(once())
show('subs', sorted(link.subs))
show('first', link.sent); link.sent.clear()
show('mods', sorted(m for m in sys.modules if m.startswith(('adapt', 'evmqtt'))))
# Not yet confirmed: no reading, no echo; within the 3 s grace it still counts.
show('grace', ev.confirmed(clock.t))
ev.set_amps(16); ev.set_amps(16)
show('claim16', link.sent); link.sent.clear()
link.cb(b"oe/amp", b"15800"); link.cb(b"oe/state", b"3")
link.cb(b"oe/claim", b'{"state":"active","charge_current":16,"auto_release":false}')
clock.t += 500
show('fresh', [ev.confirmed(clock.t), ev.actual_ma, ev.claimed_a, ev.evse_state])
for bad in (b"lots", b"-5", b"200000"):
    link.cb(b"oe/amp", bad)
for bad in (b"x", b"300", b"-1"):
    link.cb(b"oe/state", bad)
for bad in (b"{", b'{"state":"active"}', b'{"state":"active","charge_current":"16"}',
            b'{"state":"active","charge_current":900}', b'[1]'):
    link.cb(b"oe/claim", bad)
show('bad', [ev.bad_reports, ev.claimed_a, ev.actual_ma])
# The heartbeat: the same claim again after a period, as a reading, not an event.
clock.t += 1000; ev.set_amps(16)
show('beat', link.sent); link.sent.clear()
# Below J1772's 6 A: a pause, claimed as disabled.
ev.set_amps(4)
show('pause', [ev.amps, link.sent]); link.sent.clear()
link.cb(b"oe/claim", b'{"state":"disabled","auto_release":false}')
link.cb(b"oe/amp", b"0")
show('paused', ev.confirmed(clock.t))
# Disobedient: it keeps talking but its echo never shows 20 A: lost 3 periods later.
ev.set_amps(20); link.sent.clear()
for i in range(3):
    clock.t += 1001; link.cb(b"oe/amp", b"0"); link.cb(b"oe/state", b"254")
    show('deaf%d' % i, ev.confirmed(clock.t))
# Its echo shows it at last: back.
link.cb(b"oe/claim", b'{"state":"active","charge_current":20}')
show('obeys', ev.confirmed(clock.t))
# Silent: no amp nor state for 3 periods: lost; a reading again: back.
clock.t += 3001
show('silent', [ev.confirmed(clock.t), ev.actual_ma])
link.cb(b"oe/state", b"3")
show('talks', ev.confirmed(clock.t))
# A stuck relay: lost at once, whatever else it says.
link.cb(b"oe/state", b"8")
show('stuck', ev.confirmed(clock.t))
link.cb(b"oe/state", b"3")
# Lost while its claim was 20 A, then panelcap pauses it: back only when the echo shows 0.
ev.set_amps(0); link.cb(b"oe/amp", b"20000"); clock.t += 3001
link.cb(b"oe/amp", b"20000"); link.cb(b"oe/state", b"3")
show('lost', ev.confirmed(clock.t))
clock.t += 100; link.cb(b"oe/amp", b"20000")
show('still', ev.confirmed(clock.t))
link.cb(b"oe/claim", b'{"state":"disabled"}')
show('back', ev.confirmed(clock.t))
link.sent.clear()
ev.safe()
show('safe', [ev.amps, link.sent])
# Above the charger's rating: never claimed above max_a.
ev.set_amps(40)
show('max', [ev.amps, link.sent[-1]])
"""))
    assert out["subs"] == ["oe/amp", "oe/claim", "oe/state"]
    # At (re)connect: the current claim (0: disabled) goes out as a change.
    assert out["first"] == [["e", "oe/claim/set", '{"state":"disabled","auto_release":false}']]
    assert out["mods"] == ["adapt_openevse", "evmqtt"]
    assert out["grace"] is True
    assert out["claim16"] == [
        ["e", "oe/claim/set", '{"state":"active","charge_current":16,"auto_release":false}']]
    assert out["fresh"] == [True, 15800, 16, 3]
    assert out["bad"] == [11, 16, 15800]
    assert out["beat"] == [
        ["r", "oe/claim/set", '{"state":"active","charge_current":16,"auto_release":false}']]
    assert out["pause"] == [0, [["e", "oe/claim/set", '{"state":"disabled","auto_release":false}']]]
    assert out["paused"] is True
    assert [out["deaf%d" % i] for i in range(3)] == [True, True, False]
    assert out["obeys"] is True
    assert out["silent"] == [False, -1]
    assert out["talks"] is True
    assert out["stuck"] is False
    assert out["lost"] is False and out["still"] is False and out["back"] is True
    assert out["safe"] == [0, [["e", "oe/claim/set", '{"state":"disabled","auto_release":false}']]]
    assert out["max"] == [32, ["e", "oe/claim/set",
                               '{"state":"active","charge_current":32,"auto_release":false}']]


# The charger is another maker's device, on the broker.
FW_SETUP = """
panel = Panel(params, ConstantProfile(1000))
loads = [{"name": "ev", "kind": "modulated", "priority": 1, "leg": "L1L2", "rated_w": 7680,
          "driver": "openevse", "device": "oe", "report_s": 1, "max_a": 32,
          "resume_pause_s": 0}]
cfg = dict(common, limit_w=19200, loads=loads)
"""
FW_ROW = """
w = app.monitor.watches[0] if app.monitor else None
b = app.bindings[0]
row = {"alarm": w.alarm if w else None, "amps": b.actuator.amps, "w": b.load.measured_w,
       "stuck": b.load.uncontrollable}
"""


def test_firmware_drives_a_simulated_openevse_through_mosquitto(tmp_path):
    # The charger charges at panelcap's claim, falls silent (lost: paused, its 7680 W
    # counted), comes back (cleared once its echo shows the pause it missed), reports a
    # stuck relay (lost at once), and recovers.
    with Broker(tmp_path) as broker:
        sim = OpenEvseSim("127.0.0.1", broker.port, "oe", period_s=1)
        sim.start()
        watcher = Client(broker.port, "watcher")
        watcher.subscribe("oe/claim")
        fw = Firmware(script(broker.port, 46, FW_SETUP, FW_ROW, adapters_loaded("openevse")))
        # The controller starts a modulated load after its settle time, then ramps it.
        marks = fw.drive([(16000, "silent", sim.silent), (21000, "resume", sim.resume),
                          (36000, "stuck", lambda: sim.stuck_relay(True)),
                          (40000, "unstuck", lambda: sim.stuck_relay(False))])
        fw.finish()
        sim.stop.set()
        echoes = [json.loads(p) for t, p, _ in watcher.take()]
        claims = list(sim.claims)
        sim.close()
    # Only this adapter is loaded, with the charger rules it shares with evmqtt.
    rows = fw.rows
    assert rows[0] == {"adapter": True, "evmqtt": True, "others": ["adapt_openevse"]}, rows[0]
    samples, log, between = fw.samples(), fw.log(), fw.between
    # Before the faults: claimed at up to 32 A, confirmed, its own amp report the load's draw.
    ran = [r for r in between(0, marks["silent"]) if r["amps"] >= 6 and r["w"] > 0]
    assert ran and all(r["alarm"] is None and not r["stuck"] for r in ran), log
    assert all(r["w"] % 240 == 0 and r["w"] <= 32 * 240 for r in ran), ran   # its amp, at 240 V
    # Silent: lost 3 status periods (3 s) after its last reading, plus a control step and the
    # host's slack; paused (a disabled claim) and its rated power counted until it is back.
    lost = [r["t"] for r in between(marks["silent"], marks["resume"]) if r["alarm"] == "lost"]
    assert lost and lost[0] - marks["silent"] <= 3000 + 1000 + 2000, (marks, lost[:1], log)
    assert all(r["amps"] == 0 and r["stuck"] for r in samples if lost[0] <= r["t"] <= lost[-1])
    assert "alarm: ev lost: no report" in log
    # Back: cleared once its echo shows the pause (the heartbeat's claim reaches it).
    back = between(marks["resume"], marks["stuck"])
    cleared = [r for r in back if r["alarm"] is None]
    assert cleared and all(r["alarm"] is None for r in back if r["t"] >= cleared[0]["t"]), log
    # A stuck relay: lost with its next state (a period) and control step, not 3 periods later.
    stuck = [r["t"] for r in between(marks["stuck"], marks["unstuck"]) if r["alarm"] == "lost"]
    assert stuck and stuck[0] - marks["stuck"] <= 1000 + 1000 + 1500, (marks, stuck[:1])
    assert samples[-1]["alarm"] is None and not samples[-1]["stuck"], samples[-1]
    # The charger's side: claims in its dialect, each echoed on <base>/claim.
    assert '{"state":"disabled","auto_release":false}' in claims
    assert any(c.startswith('{"state":"active","charge_current":') for c in claims), claims
    assert {"state": "disabled", "auto_release": False} in echoes, echoes
    assert any(e.get("state") == "active" for e in echoes), echoes


def test_config_takes_openevse_for_a_modulated_load_with_a_base_topic():
    ev = {'name': 'ev', 'kind': 'modulated', 'priority': 1, 'leg': 'L1L2', 'rated_w': 7680,
          'driver': 'openevse', 'device': 'openevse-55ad', 'max_a': 32}
    out = load_config_lines(ev, "print('ONOFF', errs(dict(load, kind='onoff')))")
    assert out[0] == "OK []", out
    assert "driver 'openevse' needs device, its MQTT base topic" in out[1], out
    assert "driver 'openevse' needs mqtt_host" in out[2], out
    assert "an onoff load needs an output or a relay driver" in out[3], out


def test_the_simulator_models_why_rapi_cannot_pause(tmp_path):
    # evmqtt's older OpenEVSE recipe (docs/mqtt.md: charger_set_topic <base>/rapi/in/$SC)
    # sends "0" to pause; open_evse's SetCurrentCapacity raises it to 6 A and answers NK, and
    # writes EEPROM on every $SC without V. The claim pauses.
    with Broker(tmp_path) as broker:
        sim = OpenEvseSim("127.0.0.1", broker.port, "oe", period_s=0.2)
        sim.start(30)
        spy = Client(broker.port, "spy")
        spy.subscribe("oe/#")
        time.sleep(0.5)
        spy.publish("oe/rapi/in/$SC", "0")
        nk = spy.wait_for(lambda m: m[0] == "oe/rapi/out")
        time.sleep(0.5)
        amp = [int(p) for t, p, _ in spy.take() if t == "oe/amp"][-1]
        spy.publish("oe/claim/set", '{"state":"disabled","auto_release":false}')
        echo = spy.wait_json("oe/claim", lambda d: d.get("state") == "disabled")
        time.sleep(0.5)
        paused = [int(p) for t, p, _ in spy.take() if t == "oe/amp"][-1]
        writes = sim.eeprom_writes
        sim.stop.set()
        time.sleep(0.2)
        sim.close()
        spy.close()
    assert nk is not None and nk[1] == b"$NK^21"
    assert amp == 6000                      # "paused", still charging at 6 A
    assert writes == 1
    assert echo == {"state": "disabled", "auto_release": False} and paused == 0
