"""Sub-panels (issue 15 item 4; docs/profile.md, "Sub-panels"): a panelcap on a sub-panel as a
modulated load of the main panel's panelcap (firmware/subpanel.py), under micropython. The
driver on a fake link across the tick wrap (the limit sent and repeated, the floor, the
freshness rules: silent, disobedient, implausible), the sub's side (devprofile never takes a
limit above its installer's setpoint), config's checks, and two firmware instances on the
32-bit unix port through one mosquitto on a simulated panel whose sub-panel is part of the
main panel's total (tools/panelsim/profile.py FeedProfile): both limits hold through a
day-like sequence, priorities are honoured across the boundary, and each controller holds
its own limit when the other falls silent."""
import json
import signal
import time

from conftest import run_mpy
from devicefw import Firmware, load_config_lines, script
from mqtt_helpers import Broker, Client

SETUP = """
import json, sys
import subpanel
from fakeclock import FakeClock
clock = FakeClock(20000)             # every timer crosses the ESP32's tick wrap
class Link:                          # what the driver uses of net.MqttLink
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
"""


def run(code):
    return [json.loads(line) for line in
            run_mpy(SETUP + code, heap="256k").stdout.splitlines() if line.startswith("[")]


def test_driver_sends_the_limit_and_applies_the_freshness_rules():
    out = run("""
def show(tag, *v): print(json.dumps([tag] + list(v)))
sp = subpanel.SubPanel(clock, "sub1", 240, 7, 40, 1000)     # floor 7 A, interval 1 s
sp.attach(link)
import asyncio
async def once():
    t = asyncio.create_task(sp.run()); await asyncio.sleep_ms(10); t.cancel()
asyncio.run(once())
show('subs', sorted(link.subs), [json.loads(m) for _, _, m in link.sent])
def reading(seq, w, valid=True):
    link.cb(b"pcp/sub1_mains/reading", json.dumps({"seq": seq, "valid": valid, "w": w, "ma": [0, 0], "mv": 240000}))
def state(seq, w, safe=False):
    link.cb(b"pcp/sub1_limit/state", json.dumps({"seq": seq, "setpoint": w, "safe": safe}))
link.sent.clear()
sp.set_amps(20); sp.set_amps(20)
show('set20', [(k, t, json.loads(m)) for k, t, m in link.sent], sp.limit_w)
link.sent.clear()
sp.set_amps(3)                       # below the floor: the floor
sp.set_amps(0)                       # off: the floor too (already sent)
sp.set_amps(99)                      # above max_a: max_a
show('floor_max', [json.loads(m)["setpoint"] for _, _, m in link.sent], sp.amps)
sp.set_amps(20)
reading(1, 2000); state(1, 4800)
show('fresh', sp.confirmed(clock.t), sp.actual_ma)
reading(2, 4500)                     # within 10 % of its 4800 W: uses all it is given
show('saturated', sp.confirmed(clock.t), sp.actual_ma)
reading(3, 6000)                     # above its limit (its never-shed loads): what it draws
show('over', sp.confirmed(clock.t), sp.actual_ma)
for bad in ('{"seq": 4, "valid": false, "w": 100}', '{"seq": 5, "valid": true, "w": 600000}',
            '{"seq": 2, "valid": true, "w": 100}', '{"seq": 6, "valid": true, "w": "100"}',
            'not json', '[1]', '{"seq": true, "valid": true, "w": 100}'):
    link.cb(b"pcp/sub1_mains/reading", bad)
link.cb(b"pcp/sub1_limit/state", b'{"seq": 2, "setpoint": "x", "safe": false}')
show('bad', sp.bad_reports, sp.reading_w)
reading(1, 1000)                     # a restart starts again from 1: taken
show('restart', sp.reading_w)
link.sent.clear()
for _ in range(4):                   # unchanged: repeated every interval as the heartbeat
    clock.advance(500); sp.set_amps(20)
    reading(10 + _, 2000); state(10 + _, 4800)
show('heartbeat', [(k, json.loads(m)["setpoint"]) for k, t, m in link.sent])
show('ids', [json.loads(m)["id"] for k, t, m in link.sent])
clock.advance(3000)
show('at3s', sp.confirmed(clock.t))
clock.advance(1)
show('silent', sp.confirmed(clock.t), sp.actual_ma)
reading(20, 2000)
show('reading_only', sp.confirmed(clock.t))     # its state is still stale
state(20, 4800); reading(21, 2000); state(21, 4800); reading(22, 2000)
show('burst', sp.confirmed(clock.t))            # held back, delivered at one moment
clock.advance(3001)
show('burst_then_silent', sp.confirmed(clock.t))
def talking(seq, shown_w):
    # 4 control steps 1 s apart, a reading and a state before each: what confirmed() says
    out = []
    for i in range(4):
        reading(seq + i, 2000); state(seq + i, shown_w)
        out.append(sp.confirmed(clock.t)); clock.advance(1000)
    return out
show('back', talking(23, 4800))
sp.set_amps(10)                      # the sub keeps showing the old limit: disobedient
for i in range(4):
    clock.advance(1000); reading(30 + i, 2000); state(30 + i, 4800)
show('disobedient', sp.confirmed(clock.t))
reading(40, 2000); state(40, 2400, True)        # the limit, but safe: not ours
show('safe_state', sp.confirmed(clock.t))
show('obeys', talking(41, 2400))
link.cb(b"pcp/sub1_limit/ack", b'{"id": "x", "ok": false, "error": "not ours"}')
link.cb(b"pcp/sub1_limit/ack", json.dumps({"id": sp._cmd_id, "ok": False, "error": "ours"}))
show('refused', sp.refused)
link.sent.clear()
sp.safe()
show('safe', [json.loads(m)["setpoint"] for _, _, m in link.sent], sp.amps)
""")
    r = {row[0]: row[1:] for row in out}
    assert r["subs"][0] == ["pcp/sub1_limit/ack", "pcp/sub1_limit/state", "pcp/sub1_mains/reading"]
    assert r["subs"][1] == [{"id": 1, "setpoint": 1680}]        # on connect: the floor
    # A change goes out at once as an event, once; in W, the controller's amps x volts.
    assert r["set20"][0] == [["e", "pcp/sub1_limit/set", {"id": 2, "setpoint": 4800}]]
    assert r["floor_max"] == [[1680, 9600], 40]
    assert r["fresh"] == [True, 2000 * 1000 // 240]
    assert r["saturated"] == [True, 4800 * 1000 // 240]
    assert r["over"] == [True, 6000 * 1000 // 240]
    assert r["bad"] == [8, 6000]                                   # none taken
    assert r["restart"] == [1000]
    assert r["heartbeat"] == [[["r", 4800], ["r", 4800]]]          # every 1 s, droppable
    assert r["ids"][0] == sorted(set(r["ids"][0]))                 # each its own id
    # Silent 3 intervals (its readings or its states): lost, no reading; back once both
    # have talked for 3 intervals (the profile's rule): a burst of messages held back and
    # delivered at one moment is not enough, nor is it when silence follows.
    assert r["at3s"] == [True]
    assert r["silent"] == [False, -1]
    assert r["reading_only"] == [False] and r["burst"] == [False]
    assert r["burst_then_silent"] == [False]
    assert r["back"] == [[False, False, False, True]]
    # Its state does not show the limit sent within 3 intervals: lost; in its safe state
    # (it dropped our limit) still lost; back once it has shown ours for 3 intervals.
    assert r["disobedient"] == [False] and r["safe_state"] == [False]
    assert r["obeys"] == [[False, False, False, True]]
    assert r["refused"] == [1]
    assert r["safe"] == [[1680], 0]                                # safe: the floor, at once


DEVICE = """
import json
import devprofile
from fakeclock import FakeClock
clock = FakeClock(20000)
class Limits:                        # what the device uses of limits.Limits
    legs = 2; volts = 240; setpoint_a = None
    def __init__(self): self.src = {}
    def set(self, name, w=None): self.src[name] = w
    def clear(self, name): self.src.pop(name, None)
class App:
    setpoint_w = 9600
    limits = Limits()
class Link:
    connected = True; connects = 1
    def __init__(self): self.sent = []; self.routes = {}
    def publish(self, topic, msg, retain=False): self.sent.append((topic, msg))
    def publish_event(self, topic, msg, retain=False): self.sent.append((topic, msg))
    def route(self, topic, handler): self.routes[topic] = handler
app = App(); link = Link()
dev = devprofile.Device(app, link, clock, "sub1", 1000)
def cmd(d):
    link.sent.clear()
    link.routes["pcp/sub1_limit/set"](json.dumps(d))
    acks = [json.loads(m) for t, m in link.sent if t.endswith("/ack")]
    print(json.dumps([d, acks, app.limits.src.get("profile"), dev.limit_w]))
cmd({"id": 1, "setpoint": 4800})
cmd({"id": 2, "setpoint": 9601})     # a raise past the installer's setpoint
cmd({"id": 3, "setpoint": 12000})
cmd({"id": 4, "setpoint": 9600})     # the setpoint itself: the controller's limit dropped
cmd({"id": 5, "setpoint": 9601})
"""


def test_the_sub_never_takes_a_limit_above_its_installers_setpoint():
    rows = [json.loads(line) for line in run_mpy(DEVICE, heap="256k").stdout.splitlines()
            if line.startswith("[")]
    assert rows[0][1][0]["ok"] and rows[0][2:] == [4800, 4800]
    for row in (rows[1], rows[2]):
        assert row[1][0]["ok"] is False and "0..9600 W" in row[1][0]["error"], row
        assert row[2:] == [4800, 4800], row          # refused: nothing changed
    assert rows[3][1][0]["ok"] and rows[3][2:] == [None, None]
    assert rows[4][1][0]["ok"] is False and rows[4][2:] == [None, None]


def test_config_checks_a_subpanel_load():
    out = run_mpy("""
import config, simboard as board
def errs(spec, mqtt="127.0.0.1"):
    cfg = config.merged({"mqtt_host": mqtt, "loads": [spec]}, board)
    return [e for e in config.validate(cfg, board) if "sub" in e]
base = {"name": "sub", "kind": "modulated", "priority": 2, "leg": "L1L2", "rated_w": 9600,
        "driver": "subpanel", "device": "sub1", "min_a": 7, "max_a": 40}
print(repr(errs(base)))
print(repr(errs(dict(base, device="a/b"))))
d = dict(base); del d["device"]; print(repr(errs(d)))
print(repr(errs(dict(base, kind="onoff"))))
print(repr(errs(base, mqtt="")))
""", heap="512k").stdout.splitlines()
    assert out[0] == "[]", out
    assert "driver 'subpanel' needs device, the sub's node id" in out[1]
    assert "driver 'subpanel' needs device" in out[2]
    assert "an onoff load needs an output or a relay driver" in out[3]
    assert "driver 'subpanel' needs mqtt_host" in out[4]


# One firmware instance, main or sub, on the simulated board in real time (its MQTT peers are
# real clients). The sub writes its panel's true draw to FEED every 250 ms; the main's panel
# takes it as a sub-panel it feeds (FeedProfile): part of its total and of its mains CTs.
FW_SETUP = """
ROLE = "ROLE_"
machine.unique_id = lambda: b"\\x00" + ROLE.encode()    # two boards, two MQTT client ids
class Steps:                         # a base load in steps: [(ms, W), ...]
    linear = False
    def __init__(self, steps): self.steps = steps
    def watts_at_ms(self, t):
        w = self.steps[0][1]
        for a, x in self.steps:
            if t >= a: w = x
        return w
    def watts_at(self, s): return self.watts_at_ms(s * 1000)
    def next_change_ms(self, t):
        for a, _ in self.steps:
            if a > t: return a
        return t + 3600000
if ROLE == "main":
    wh["start_c"] = 50               # calling for heat all along
    profile = FeedProfile(Steps(MAIN_BASE))
    loads = [{"name": "water_heater", "kind": "onoff", "priority": WH_PRIO, "leg": "L1L2",
              "rated_w": 4500, "output": 0, "ct": "CT3", "min_on_s": 5, "min_off_s": 5},
             {"name": "sub", "kind": "modulated", "priority": SUB_PRIO, "leg": "L1L2",
              "rated_w": 9600, "driver": "subpanel", "device": "sub1", "report_s": 1,
              "min_a": 13, "max_a": 40, "min_on_s": 0, "min_off_s": 0, "resume_pause_s": 0}]
    cfg = dict(common, mqtt_topic="main", limit_w=12000, loads=loads)
else:
    ev["arrive_h"] = EV_ARRIVE_S / 3600; ev["need_wh"] = 20000
    wh["start_c"] = 60               # its water heater is not part of this sub-panel
    profile = Steps(SUB_BASE)
    loads = [{"name": "ev", "kind": "modulated", "priority": 1, "leg": "L1L2", "rated_w": 7680,
              "driver": "pilot", "max_a": 32, "ct": "CT4", "min_on_s": 5, "min_off_s": 5,
              "resume_pause_s": 10}]
    cfg = dict(common, mqtt_topic="sub1", limit_w=9600, profile_device="on", loads=loads)
panel = Panel(params, profile)
"""
FW_LOADED = """
print(json.dumps({"loaded": "subpanel" in sys.modules}))
"""
FW_ROW = """
panel.advance_to(now)
ctl = app.controller
row = {"truth_w": panel.total_w, "limit_w": ctl.limit_w, "state": ctl.state}
if ROLE == "main":
    try:
        with open("FEED") as f:
            profile.feed_w = json.load(f)["w"]
    except (OSError, ValueError, KeyError):
        pass                 # not written yet (or mid-rename): the last one holds
    s = by_name("sub"); w = by_name("water_heater")
    watch = [x for x in app.monitor.watches if x.load is s.load] if app.monitor else []
    row.update({"feed_w": profile.feed_w, "wh_on": w.load.on,
                "wh_calling": panel.wh_calling, "sub_a": s.load.setpoint_a,
                "sub_on": s.load.on, "sent_w": s.actuator.limit_w,
                "sub_measured_w": s.load.measured_w,
                "alarm": watch[0].alarm if watch else None,
                "stuck": s.load.uncontrollable})
else:
    with open("FEED.tmp", "w") as f:
        f.write(json.dumps({"w": panel.total_w}))
    os.rename("FEED.tmp", "FEED")
    e = by_name("ev")
    dev = getattr(app, "profile", None)
    row.update({"ev_a": e.load.setpoint_a, "ev_w": panel.ev_w,
                "own_w": app.setpoint_w,
                "main_limit_w": dev.limit_w if dev else None,
                "safe_count": dev.safe_count if dev else None})
"""


def _start(role, broker, feed, seconds, **subs):
    code = script(broker.port, seconds, FW_SETUP.replace("ROLE_", role), FW_ROW, FW_LOADED)
    code = code.replace('"FEED', '"' + str(feed))
    for key, value in subs.items():
        code = code.replace(key, repr(value))
    return Firmware(code)


def _longest_over(samples, controllable=lambda r: True, margin_w=100):
    """The longest run (ms) of samples whose true draw is above their limit by margin_w
    while controllable(sample) (something that could be shed still draws)."""
    longest = 0
    start = None
    for r in samples:
        lim = r["limit_w"]
        if lim is not None and r["truth_w"] > lim + margin_w and controllable(r):
            if start is None:
                start = r["t"]
            longest = max(longest, r["t"] - start)
        else:
            start = None
    return longest


def run_pair(tmp_path, main_seconds, sub_seconds, plan, **subs):
    """Both controllers, one broker; plan: [(role, ms, name, action(procs, client)), ...],
    each run when that role's own clock passes ms. A stopped process's clock stops too
    (simulated time), so marks[name] is {"main": its ms, "sub": its ms} at the action."""
    feed = tmp_path / "feed.json"
    with Broker(tmp_path) as broker:
        client = Client(broker.port, "pytest")
        client.subscribe("pcp/#")
        sub = _start("sub", broker, feed, sub_seconds, **subs)
        main = _start("main", broker, feed, main_seconds, **subs)
        procs = {"main": main.proc, "sub": sub.proc}
        marks = {}
        t0 = time.monotonic()
        try:
            while sub.proc.poll() is None and time.monotonic() - t0 < sub_seconds + 60:
                now = {"main": main.now_ms(), "sub": sub.now_ms()}
                while plan and now[plan[0][0]] >= plan[0][1]:
                    _, _, name, act = plan.pop(0)
                    marks[name] = now
                    act(procs, client)
                time.sleep(0.05)
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGCONT)
            for fw in (main, sub):
                fw.finish(30, codes=None)
            answers = client.take()
            client.close()
    out = {"main": main.rows, "sub": sub.rows}
    (tmp_path / "rows.json").write_text(json.dumps({"out": out, "marks": marks}))
    for role, fw in (("main", main), ("sub", sub)):
        assert fw.proc.returncode in (0, -signal.SIGKILL), (role, fw.proc.stderr.read()[-3000:])
    return out, marks, answers


def _stop(role):
    def act(procs, client):
        procs[role].send_signal(signal.SIGSTOP)
    act.__name__ = "stop_" + role
    return act


def _cont(role):
    def act(procs, client):
        procs[role].send_signal(signal.SIGCONT)
    return act


def _kill(role):
    def act(procs, client):
        procs[role].send_signal(signal.SIGKILL)
    return act


def _raise_sub(procs, client):
    # Anyone on the broker asks the sub for more than its installer's setpoint.
    client.publish("pcp/sub1_limit/set", json.dumps({"id": "raise-1", "setpoint": 12000}))


MAIN_BASE = [(0, 2000), (60000, 6000), (72000, 2000)]    # a surge on the main: +4 kW, 12 s
SUB_BASE = [(0, 1500), (88000, 4000), (98000, 1500)]     # one on the sub's never-shed loads


def test_two_controllers_hold_both_limits_through_a_day_and_each_others_silence(tmp_path):
    # The water heater (main, priority 1) outranks the sub-panel (priority 2); the sub's EV
    # arrives at 15 s. Then a surge on each panel, a raise asked of the sub by a stranger,
    # the sub silent 15 s (SIGSTOP: its loads keep drawing what they drew), and at the end
    # the main silent (the sub falls back to its own setpoint).
    plan = [("main", 80000, "raise", _raise_sub), ("main", 108000, "stop_sub", _stop("sub")),
            ("main", 123000, "cont_sub", _cont("sub")),
            ("main", 150000, "stop_main", _stop("main")),
            ("sub", 150000, "kill_main", _kill("main"))]
    out, marks, answers = run_pair(tmp_path, 175, 172, plan, WH_PRIO=1, SUB_PRIO=2,
                                   EV_ARRIVE_S=15, MAIN_BASE=MAIN_BASE, SUB_BASE=SUB_BASE)
    main = [r for r in out["main"] if "t" in r]
    sub = [r for r in out["sub"] if "t" in r]
    mlog = [r["log"] for r in out["main"] if "log" in r]
    slog = [r["log"] for r in out["sub"] if "log" in r]
    assert [r for r in out["main"] if "loaded" in r] == [{"loaded": True}]
    assert [r for r in out["sub"] if "loaded" in r] == [{"loaded": False}]
    # Each on the main's clock, but the main's stop on the sub's (the main's stops there).
    stop_sub, cont_sub = marks["stop_sub"]["main"], marks["cont_sub"]["main"]
    stop_main = marks["stop_main"]["main"]
    sub_stop_sub = marks["stop_sub"]["sub"]

    # The coupling works: the sub's draw is in the main panel's total, and its EV charged.
    assert any(r["feed_w"] > 3000 for r in main), main[-1]
    assert any(r["ev_w"] > 1000 for r in sub if r["t"] < sub_stop_sub), slog
    # Capacity flows down: the main gave the sub more than its floor, and at times less
    # than the sub's own setpoint, and the sub held what it was given.
    given = [r["main_limit_w"] for r in sub if r["t"] < sub_stop_sub and r["main_limit_w"]]
    assert given and min(given) < 9600 and max(given) > 13 * 240, given[-10:]

    # The main's limit holds (the sub's silence included: its rating counted), and the sub
    # holds whichever limit is in force: the main's, or its own. Transients: a lowered
    # limit is met within the sub's control step and its EV's 5 s response.
    live = [r for r in main if r["t"] < stop_main]
    assert max(r["truth_w"] for r in live) <= 12000 + 3000, max(r["truth_w"] for r in live)
    assert _longest_over(live) <= 8000, (_longest_over(live), mlog)
    # The sub: over its limit only while its never-shed loads alone are (its surge), else
    # its EV is off within a control step and the EV's response.
    assert _longest_over(sub, lambda r: r["ev_w"] > 0) <= 8000, slog
    assert max(r["truth_w"] for r in sub) <= 9600 + 100

    # Priorities across the boundary: the water heater (priority 1) is never off for want of
    # room while the sub (priority 2) is allowed more than its floor, once the sub's last
    # command had its 5 s response.
    calm = [r for r in live if r["t"] > 5000 and not r["stuck"] and r["alarm"] is None]
    for i, r in enumerate(calm):
        if r["wh_calling"] and not r["wh_on"]:
            recent = [x["sent_w"] for x in calm[max(0, i - 28):i + 1]]
            assert min(recent) <= 13 * 240, (r, mlog[-20:])
    assert any(r["wh_on"] for r in calm if r["t"] < 60000), mlog
    # The main's surge: the sub went to its floor before the water heater was shed.
    surge = [r for r in main if 60000 <= r["t"] < 72000]
    assert any(r["sent_w"] == 13 * 240 for r in surge), surge[-1]

    # Nothing remote raises the sub past its installer's setpoint: refused, one line.
    ack = [json.loads(p) for t, p, _ in answers if t == "pcp/sub1_limit/ack"
           and b"raise-1" in p]
    assert ack and ack[0]["ok"] is False and "0..9600 W" in ack[0]["error"], ack
    assert all(r["limit_w"] <= 9600 for r in sub), max(r["limit_w"] for r in sub)

    # The sub silent: lost within 3 intervals of its last message and a control step, then
    # its 9600 W counted and the water heater shed until it talks and obeys again. Judged
    # from the stop, not from the first alarm after it: on a loaded host the alarm may
    # already stand from a lag before the stop and clear on the messages the sub sent just
    # before it (as it should: they were fresh), which is how this test failed in CI.
    lost_by = stop_sub + 3000 + 1000 + 2000
    silent = [r for r in main if lost_by <= r["t"] < cont_sub]
    assert silent and all(r["alarm"] == "lost" and r["stuck"] and not r["wh_on"]
                          for r in silent), (marks, mlog)
    assert "alarm: sub lost: no report" in mlog
    back = [r for r in main if cont_sub <= r["t"] < stop_main and r["alarm"] is None]
    assert back and back[0]["t"] - cont_sub <= 10000, mlog

    # The main silent: the sub drops the main's limit after its max_wait_s (5 s) and holds
    # its own setpoint (9600 W); its draw stays under it.
    quiet = [r for r in sub if r["t"] >= marks["stop_main"]["sub"]]
    own = [r for r in quiet if r["main_limit_w"] is None and r["limit_w"] == 9600]
    assert own and own[0]["t"] - quiet[0]["t"] <= 5000 + 1000 + 2000, (quiet[:3], slog[-10:])
    assert all(r["main_limit_w"] is None for r in quiet if r["t"] >= own[0]["t"])
    assert quiet[-1]["safe_count"] >= 1
    assert all(r["truth_w"] <= 9600 + 100 for r in quiet)


def test_a_sub_panel_first_in_priority_keeps_its_room_before_a_main_load(tmp_path):
    # The other way round: the sub-panel (priority 1) outranks the water heater (2). The
    # main's surge sheds the water heater first, and the sub is not cut while it runs.
    out, marks, answers = run_pair(tmp_path, 90, 92, [], WH_PRIO=2, SUB_PRIO=1,
                                   EV_ARRIVE_S=15, MAIN_BASE=MAIN_BASE, SUB_BASE=[(0, 1500)])
    main = [r for r in out["main"] if "t" in r]
    sub = [r for r in out["sub"] if "t" in r]
    mlog = [r["log"] for r in out["main"] if "log" in r]
    floor_w = 13 * 240
    assert _longest_over(main) <= 8000, mlog
    assert _longest_over(sub, lambda r: r["ev_w"] > 0) <= 8000
    assert max(r["truth_w"] for r in sub) <= 9600 + 100
    # Cut while the water heater still ran: never (a sub idle below half its floor is
    # parked at the floor whatever the order: that is not a cut for room).
    for prev, r in zip(main, main[1:]):
        if r["sent_w"] < prev["sent_w"] and prev["sub_measured_w"] * 2 >= floor_w:
            assert not r["wh_on"], (prev, r, mlog)
    # The surge: the water heater shed, the sub kept more than its floor.
    surge = [r for r in main if 66000 <= r["t"] < 72000]
    assert surge and all(not r["wh_on"] for r in surge), surge[0]
    assert all(r["sent_w"] > floor_w for r in surge), surge[0]
    assert any(r["wh_on"] for r in main if r["t"] < 60000), mlog


def test_a_battery_is_the_same_driver_on_its_own_topics_with_no_floor():
    # driver "battery" (docs/profile.md, "A battery"): its sensor <id>_batt, its actuator
    # <id>_charge; off is 0 W (no charging), whatever min_a the controller modulates from.
    rows = {r[0]: r[1:] for r in run("""
import shed, loadkind
load = shed.Load("bat", loadkind.kind("modulated"), 3, "L1L2", 4800, volts=240, min_a=6,
                 max_a=20)
bat = subpanel.from_spec({"driver": "battery", "device": "bat1", "report_s": 1}, load, clock)
bat.attach(link)
def show(tag, *v): print(json.dumps([tag] + list(v)))
show('subs', sorted(t.decode() for t in link.routes))
link.sent.clear()
bat.set_amps(10); bat.set_amps(0)
show('sent', [(t, json.loads(m)["setpoint"]) for k, t, m in link.sent])
bat.set_amps(10)
link.cb(b"pcp/bat1_batt/reading", json.dumps({"seq": 1, "valid": True, "w": 2400}))
link.cb(b"pcp/bat1_charge/state", json.dumps({"seq": 1, "setpoint": 2400, "safe": False}))
show('confirmed', bat.confirmed(clock.t), bat.actual_ma)
link.cb(b"pcp/bat1_charge/ack", b'{"id": %d, "ok": false, "error": "full"}' % bat._cmd_id)
show('refused', bat.refused)
""")}
    assert rows["subs"] == [["pcp/bat1_batt/reading", "pcp/bat1_charge/ack",
                             "pcp/bat1_charge/state"]], rows
    assert rows["sent"] == [[["pcp/bat1_charge/set", 2400], ["pcp/bat1_charge/set", 0]]], rows
    assert rows["confirmed"] == [True, 10000], rows
    assert rows["refused"] == [1], rows


def test_config_checks_a_battery_load():
    bat = {"name": "bat", "kind": "modulated", "priority": 3, "leg": "L1L2", "rated_w": 4800,
           "driver": "battery", "device": "bat1", "max_a": 20}
    out = load_config_lines(bat, "print('ONOFF', errs(dict(load, kind='onoff')))\n"
                                 "print('BADID', errs(dict(load, device='a/b')))")
    assert out[0] == "OK []", out
    assert "driver 'battery' needs device, the battery's node id" in out[1], out
    assert "driver 'battery' needs mqtt_host" in out[2], out
    assert "an onoff load needs an output or a relay driver" in out[3], out
    assert "driver 'battery' needs device, the battery's node id" in out[4], out
