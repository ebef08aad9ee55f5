"""OpenEVSE as a profile actuator (firmware/adapt_openevse.py over evmqtt.MqttCharger), under
micropython on the 32-bit port: its claim as the command (a change as an outbox event, the
same claim again as the heartbeat), the gateway's retained echo as the acknowledgement, the
profile's freshness rules (silent 3 status periods, the echo not showing the command in
time, a stuck relay: lost; back only once the echo shows the command), and the firmware on
the simulated board driving tools/openevse_sim.py through mosquitto."""
import json
import subprocess
import sys
import threading
import time

from conftest import MICROPYTHON, ROOT, mpy_env, run_mpy
from mqtt_helpers import Broker, Client

sys.path.insert(0, str(ROOT / "tools"))
from openevse_sim import OpenEvseSim  # noqa: E402

SETUP = """
import json, sys
import adapt_openevse
from fakeclock import FakeClock
clock = FakeClock(20000)             # every timer crosses the ESP32's tick wrap
class Link:                          # what an adapter uses of net.MqttLink
    connected = True
    connects = 1
    def __init__(self):
        self.sent = []; self.subs = []; self.routes = {}
    def publish(self, topic, msg, retain=False): self.sent.append(('r', topic, msg))
    def publish_event(self, topic, msg, retain=False): self.sent.append(('e', topic, msg))
    def route(self, topic, handler): self.routes[topic.encode()] = handler
    def subscribe(self, topic): self.subs.append(topic); return True
    def cb(self, topic, msg): self.routes[topic](msg)
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
