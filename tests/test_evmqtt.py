"""The MQTT charger driver (firmware/evmqtt.py) under micropython: the setpoint it publishes
(clamped, paused below 6 A, repeated as a heartbeat), the charger's reports routed from the
link's callback, and heartbeat loss: the charger's draw becomes uncontrollable and the
controller sheds the other load to make room for it; it comes back under control when the
reports resume."""
import json

from conftest import run_mpy

SETUP = """
import json
import evmqtt, feedback, shed
from limits import Limits
from fakeclock import FakeClock
clock = FakeClock(60000)             # every timer crosses the ESP32's tick wrap
class Link:                          # what evmqtt uses of net.MqttLink
    connected = True
    connects = 1
    def __init__(self):
        self.sent = []; self.subs = []; self.routes = {}
    def publish(self, topic, msg, retain=False): self.sent.append((topic, msg))
    def route(self, topic, handler): self.routes[topic.encode()] = handler
    def subscribe(self, topic): self.subs.append(topic); return True
    def cb(self, topic, msg):        # a message arriving: routed, else to the inbox
        if topic in self.routes:
            self.routes[topic](msg)
        else:
            others.append((topic, msg))
link = Link()
others = []
"""


def run(code):
    return run_mpy(SETUP + code, heap="512k").stdout.splitlines()   # compiled from source


def test_setpoint_is_clamped_paused_below_6a_and_repeated_as_a_heartbeat():
    out = run("""
ch = evmqtt.MqttCharger(clock, 32, "evse/set/current", "evse/current", 30000)
ch.set_amps(16)                      # no link yet: nothing to send, no error
ch.attach(link)
for a in (16, 40, 5, 6, 0):
    ch.set_amps(a)
print(ch.amps, link.sent)
link.sent.clear()
for _ in range(25):                  # unchanged for 25 s: the heartbeat every 10 s
    clock.advance(1000)                  # wraps as the board's ticks do
    ch.set_amps(0)
print(len(link.sent), link.sent[0])
ch.set_amps(12); ch.safe(); print(link.sent[-2:], ch.amps)
""")
    assert out[0] == ("0 [('evse/set/current', '16'), ('evse/set/current', '32'), "
                      "('evse/set/current', '0'), ('evse/set/current', '6'), "
                      "('evse/set/current', '0')]")
    assert out[1] == "2 ('evse/set/current', '0')"
    assert out[2] == "[('evse/set/current', '12'), ('evse/set/current', '0')] 0"


def test_reports_are_routed_checked_and_confirm_the_charger():
    out = run("""
ch = evmqtt.MqttCharger(clock, 32, "evse/set/current", "openevse/amp", 30000, unit_ma=True)
ch.attach(link)
link.cb(b"panelcap/cmd/status", b"")          # not the charger's: passed on
link.cb(b"openevse/amp", b"15800")            # OpenEVSE reports milliamps
print(others, ch.actual_ma, ch.reports, ch.confirmed(clock.t))
link.cb(b"openevse/amp", b"lots"); link.cb(b"openevse/amp", b"-5")
print(ch.bad_reports, ch.actual_ma)
clock.advance(30001)
print(ch.confirmed(clock.t))
import asyncio
async def once():
    t = asyncio.create_task(ch.run()); await asyncio.sleep_ms(10); t.cancel()
asyncio.run(once())
print(link.subs, link.sent[-1])               # subscribed after the connect; setpoint resent
""")
    assert out[0] == "[(b'panelcap/cmd/status', b'')] 15800 1 True"
    assert out[1] == "2 15800"
    assert out[2] == "False"
    assert out[3] == "['openevse/amp'] ('evse/set/current', '0')"


def test_heartbeat_loss_makes_the_charger_uncontrollable_and_sheds_the_other_load():
    out = run("""
ch = evmqtt.MqttCharger(clock, 32, "evse/set/current", "evse/current", 30000)
ch.attach(link)
ev = shed.Load("ev", shed.KIND_MODULATED, 1, "L1L2", 7680, min_on_s=0, min_off_s=0,
               resume_pause_s=30)
wh = shed.Load("wh", shed.KIND_ONOFF, 2, "L1L2", 4500, min_on_s=0, min_off_s=0)
limits = Limits(setpoint_w=12000, volts=120, band_pct=5)
ctl = shed.Controller([ev, wh], limits, clock, settle_s=2, stagger_s=2)
logs = []
mon = feedback.Monitor(ctl, clock, logs.append)
mon.add(ev, charger=ch)
meas = shed.Measurement()
meas.windows = 0
alive = [True]
draw_a = [0]          # what the car draws: the charger's offer, up to its own 16 A
def second(t):
    clock.advance(1000)                  # wraps as the board's ticks do
    if alive[0]:
        draw_a[0] = ch.amps if ch.amps < 16 else 16
        link.cb(b"evse/current", str(draw_a[0]).encode())
    wh_w = 4500 if wh.on else 0
    meas.valid = True; meas.t_ms = clock.t; meas.windows += 1
    meas.total_w = 500 + draw_a[0] * 240 + wh_w
    meas.leg_ma[0] = meas.leg_ma[1] = meas.total_w * 1000 // 240
    ev.measured_w = -1; wh.measured_w = wh_w      # the EV has no CT: its report counts
    mon.check(meas)
    ctl.update(meas)
    ch.apply(ev)
    return {"t": t, "ev_a": ch.amps, "draw_a": draw_a[0], "wh": wh.on, "total_w": meas.total_w,
            "alarm": mon.watches[0].alarm, "stuck": ev.uncontrollable, "ev_w": ev.measured_w}
for t in range(300):
    if t == 120:
        alive[0] = False          # the charger stops answering; the car keeps drawing
    if t == 200:
        alive[0] = True
    print(json.dumps(second(t)))
print(json.dumps({"log": logs, "sent": link.sent[-3:]}))
""")
    rows = [json.loads(line) for line in out]
    log = rows.pop()
    by_t = {r["t"]: r for r in rows}
    assert by_t[119]["wh"] and by_t[119]["ev_a"] >= 6 and by_t[119]["ev_w"] > 0
    drawing = by_t[119]["draw_a"]
    t_lost = next(r["t"] for r in rows if r["alarm"] == "lost")
    print("reports stop at 120 s; lost at %d s; car drawing %d A" % (t_lost, drawing))
    assert 150 <= t_lost <= 151                     # the 30 s timeout, no sooner
    assert by_t[t_lost]["stuck"] and by_t[t_lost]["ev_a"] == 0   # told to pause, anyway
    # The car draws 16 A but could take 32: its rated 7680 W is reserved, and
    # 500 + 7680 + 4500 W > 12000 W, so the water heater goes.
    t_wh_off = next(r["t"] for r in rows if r["t"] >= t_lost and not r["wh"])
    assert t_wh_off - t_lost <= 1
    assert all(not by_t[t]["wh"] for t in range(t_wh_off, 200))
    assert all(by_t[t]["alarm"] is None for t in range(120, 150))
    # Reports again: control resumes, from a pause (the car now draws 0).
    assert by_t[200]["alarm"] is None and not by_t[200]["stuck"]
    assert any(by_t[t]["ev_a"] >= 6 for t in range(200, 300))
    assert any(l == "alarm: ev lost: no report" for l in log["log"]), log
    assert any(l == "alarm: ev lost cleared" for l in log["log"]), log


def test_setpoint_is_never_retained_and_reports_above_100_a_are_ignored():
    # docs/mqtt.md: the setpoint is not retained (a charger that restarts must not find an
    # old, higher one waiting), and a report outside 0..100 A is counted and ignored: it
    # neither sets the draw nor confirms the charger.
    out = run("""
retained = []
link.publish = lambda topic, msg, retain=False: (link.sent.append((topic, msg)),
                                                 retained.append(retain))
ch = evmqtt.MqttCharger(clock, 32, "evse/set/current", "evse/current", 30000)
ch.attach(link)
for a in (16, 32, 0):
    ch.set_amps(a)
for _ in range(25):
    clock.advance(1000)
    ch.set_amps(10)
ch.safe()
link.connects = 2
import asyncio
async def once():
    t = asyncio.create_task(ch.run()); await asyncio.sleep_ms(10); t.cancel()
asyncio.run(once())                      # resent after a reconnect
print('SENT', len(link.sent), any(retained))
link.cb(b"evse/current", b"100")         # the limit itself: taken
print('A', ch.actual_ma, ch.reports, ch.bad_reports)
clock.advance(20000)
for bad in (b"100.1", b"150", b"1e3", b"-0.5", b"nan", b"inf"):
    link.cb(b"evse/current", bad)
print('B', ch.actual_ma, ch.reports, ch.bad_reports)
clock.advance(10001)    # 30 s after the last good report
print('C', ch.confirmed(clock.t))
mch = evmqtt.MqttCharger(clock, 32, "evse/set/current", "openevse/amp", 30000, unit_ma=True)
mch.on_report(b"100000"); mch.on_report(b"100001")
print('MA', mch.actual_ma, mch.reports, mch.bad_reports)
""")
    sent = [line for line in out if line.startswith("SENT")][0].split()
    assert int(sent[1]) >= 6 and sent[2] == "False", out
    assert "A 100000 1 0" in out, out
    assert "B 100000 1 6" in out, out            # each counted, none taken
    assert "C False" in out, out                 # bad reports do not confirm the charger
    assert "MA 100000 1 1" in out, out


# The EV charger speaks panelcap's own topics (evse/...) through the broker.
FW_SETUP = """
panel = Panel(params, ConstantProfile(1000))
loads = [dict(config.DEFAULT_LOADS[0]),
         {"name": "ev", "kind": "modulated", "priority": 1, "leg": "L1L2", "rated_w": 7680,
          "driver": "mqtt", "max_a": 32}]
cfg = dict(common, charger_timeout_s=5, limit_w=19200, loads=loads)
"""
FW_ROW = """
w = app.monitor.watches[-1] if app.monitor else None
ev = by_name("ev")
row = {"alarm": w.alarm if w else None, "ev_a": ev.actuator.amps, "ev_w": ev.load.measured_w,
       "link": app.mqtt.state if getattr(app, "mqtt", None) else None}
"""


def test_heartbeat_loss_against_a_real_broker(tmp_path):
    # The firmware's link subscribes to the charger's topic after connecting; a client plays
    # the charger: it follows the setpoint and reports it, then falls silent, then returns.
    import time

    from devicefw import Firmware, script
    from mqtt_helpers import Broker, Client

    with Broker(tmp_path) as broker:
        charger = Client(broker.port, "charger")
        charger.subscribe("evse/set/current")
        watcher = Client(broker.port, "watcher")
        watcher.subscribe("panelcap/#")
        fw = Firmware(script(broker.port, 32, FW_SETUP, FW_ROW))
        # The charger goes silent and comes back at moments of the firmware's own (virtual)
        # time, read from its latest row, so the windows below compare virtual with virtual.
        silent = (16000, 23000)        # simulated ms in which the charger does not answer
        seen = {"offered": 0, "last_report_ms": None, "resumed_ms": None}

        def answer(fw):
            for topic, payload, _ in charger.take():
                seen["offered"] = int(payload)
            now_ms = fw.now_ms()
            if not silent[0] <= now_ms < silent[1]:
                if now_ms >= silent[1] and seen["resumed_ms"] is None:
                    seen["resumed_ms"] = now_ms
                charger.publish("evse/current", str(seen["offered"]))   # it draws what it may
                if now_ms < silent[0]:
                    seen["last_report_ms"] = now_ms   # the firmware's time at its last report
        fw.drive(each=answer, limit_s=60, period_s=0.5)
        fw.finish()
        reports = watcher.take()
        # Not retained: a charger (or anyone) subscribing now finds no setpoint waiting.
        late = Client(broker.port, "late")
        late.subscribe("evse/set/current")
        time.sleep(1)
        waiting = late.take()
        late.close()
    assert waiting == [], waiting
    last_report_ms, resumed_ms = seen["last_report_ms"], seen["resumed_ms"]
    samples, log = fw.samples(), fw.log()
    # Restored (after the stagger and the controller's settle time) and confirmed.
    assert any(r["ev_a"] >= 6 and r["ev_w"] > 0 for r in samples if r["t"] < 16000), log
    lost = [r["t"] for r in samples if r["alarm"] == "lost"]
    assert lost, log
    print("charger's last report at %.2f s; lost at %.2f s; reports again at %.2f s; "
          "cleared by %.2f s" % (last_report_ms / 1000, lost[0] / 1000, resumed_ms / 1000,
                                 (lost[-1] + 250) / 1000))
    # Lost charger_timeout_s (5 s) after its last report reached the firmware: that report
    # left after the row at last_report_ms, so not before 5 s past it. After: the monitor
    # looks once a control step (1 s), a row comes every 250 ms, and the report's trip
    # through the broker takes virtual time too (speed 1 keeps to real time, so a loaded
    # host stretches it): 2 s for that, far more than it takes.
    assert last_report_ms + 5000 <= lost[0] <= last_report_ms + 5000 + 1000 + 250 + 2000, (
        last_report_ms, lost[0])
    assert all(r["ev_a"] == 0 for r in samples if lost[0] <= r["t"] <= lost[-1])
    # Reports again: cleared at the first control step after the first one back arrives.
    assert resumed_ms <= lost[-1] + 250 <= resumed_ms + 1000 + 250 + 2000, (
        resumed_ms, lost[-1])
    assert samples[-1]["alarm"] is None
    assert "alarm: ev lost: no report" in log and "alarm: ev lost cleared" in log
    # Telemetry shows it: the load's alarm in state, lifetime contactor counts in diag.
    states = [json.loads(p) for t, p, _ in reports if t == "panelcap/state"]
    alarms = [s["loads"]["ev"].get("alarm") for s in states]
    assert "lost" in alarms and alarms[-1] is None
    assert all("no_draw" in s["loads"]["water_heater"] for s in states)
    diag = [json.loads(p) for t, p, _ in reports if t == "panelcap/diag"][-1]
    assert "water_heater" in diag["contactor_ops"] and diag["reset_cause"] == "power-on"
