"""Grid signals end to end against mosquitto: the firmware on the simulated board (unix port,
real time) takes a schedule, an emergency and reservations over MQTT, the reference
responder (tools/grid_responder.py) answers the requests, the compliance log is fetched and
summarised by tools/compliance_report.py, and a reservation is made from the REPL."""
import json
import subprocess
import sys
import threading
import time

from conftest import MICROPYTHON, ROOT, mpy_env
from mqtt_helpers import Broker, Client, JsonLinesProcess

sys.path.insert(0, str(ROOT / "tools"))
import grid_responder  # noqa: E402

T0_UNIX = 1795716000          # 2026-11-26T18:00:00Z: the simulated board's wall clock at start

# The firmware side, run under micropython. argv[1]: JSON options. One JSON line per
# simulated second; "limit" lines when the controller's limit changes and "cmd" lines when
# a command is handled, both stamped with real unix milliseconds.
RUNNER = r"""
import gc, json, sys, time
import asyncio
import simboard as board
from clock import Clock, WrappingClock
import app as firmware_app
from panelsim import machine as sim_machine
from panelsim.vtime import VirtualTime
from panelsim.panel import Panel
from panelsim.adcgen import AdcGen

class Flat:
    linear = False
    path = '<flat>'
    def __init__(self, w): self.w = w
    def watts_at_ms(self, t_ms): return self.w
    def watts_at(self, t_s): return self.w
    def next_change_ms(self, t_ms): return t_ms + 3600000

def real_ms():
    return time.time_ns() // 1000000

opts = json.loads(sys.argv[1])
vt = VirtualTime(speed=opts.get('speed', 1))
vt.install()
clock = WrappingClock(vt.now_ms)
params = dict(board.PANEL)
ev = dict(params['ev'])
ev['arrive_h'] = 0
ev['response_delay_ms'] = 1000
params['ev'] = ev
panel = Panel(params, Flat(opts.get('base_w', 1500)))
sim_machine.attach(panel, vt, board, AdcGen(board, panel))
cfg = {'limit_w': 9600, 'mqtt_host': '127.0.0.1', 'mqtt_port': opts['port'],
       'telemetry_period_ms': 1000, 'mqtt_topic': opts['prefix'], 'mqtt_discovery': '',
       'grid_subscription_w': opts['subscription_w'], 'grid_fallback_w': 0}
cfg.update(opts.get('cfg', {}))
logs = []
app = firmware_app.App(board, sim_machine, clock, cfg, log=logs.append)
app.net_clock = Clock()
app.wall = lambda: %d + vt.elapsed_ms() // 1000
if opts.get('repl') == 'mistakes':
    import console
    console.attach(app)
    console.grid.reserve(None, 600, 99999)
    console.grid.reserve('2026-11-26 18:00', 600, 1000)
    console.grid.emergency(150, 60)
    console.grid.emergency(50, 60)
    console.grid.accept('r0000')
    console.grid.cancel('r0000')
    app.wall = lambda: None
    app.grid = None
    console.grid.reserve(None, 600, 1000)
    console.grid.show()
    sys.exit(0)
if opts.get('repl'):
    import console
    console.attach(app)
    console.grid.reserve(None, 600, 1500, wait_s=15)
    console.grid.show()
    sys.exit(0)

async def session():
    asyncio.create_task(app.run())
    while getattr(app, 'reporter', None) is None:
        await asyncio.sleep_ms(10)
    cmds = app.reporter.commands
    handle = cmds.handle
    def traced(prefix, topic, payload):
        ok = handle(prefix, topic, payload)
        print(json.dumps({'cmd': topic.decode() if isinstance(topic, bytes) else topic,
                          'ok': ok, 'real_ms': real_ms(), 'steps': app.control.steps}))
        return ok
    cmds.handle = traced
    last = None
    t_next = vt.elapsed_ms() + 1000
    t = 0
    while t < opts['seconds']:
        await asyncio.sleep_ms(20)
        c = app.controller
        if c.limit_w != last:
            last = c.limit_w
            print(json.dumps({'limit': last, 'real_ms': real_ms(), 'steps': app.control.steps,
                              'source': app.limits.strictest(),
                              'lead_ms': app.limits.lead_ms, 'vt_ms': vt.elapsed_ms()}))
        if vt.elapsed_ms() >= t_next:
            t_next += 1000
            t += 1
            panel.advance_to(vt.elapsed_ms())
            evb = [b for b in app.bindings if b.load.name == 'ev'][0]
            while logs:
                print(json.dumps({'log': logs.pop(0)}))
            print(json.dumps({'t': t, 'limit_w': c.limit_w, 'ev_a': evb.actuator.amps,
                              'panel_w': panel.total_w, 'state': c.state,
                              'steps': app.control.steps}))
    gc.collect()
    print(json.dumps({'done': True, 'mem_alloc': gc.mem_alloc(), 'mem_free': gc.mem_free()}))

try:
    asyncio.run(session())
finally:
    app.force_safe()
""" % T0_UNIX

TABLE = {"capacity_w": 100000,
         "hours": [[50000, 0]] * 18 + [[95000, 0], [90000, 10], [99500, 0]] + [[50000, 0]] * 3}


class Firmware(JsonLinesProcess):
    def __init__(self, tmp_path, opts):
        script = tmp_path / "grid_fw.py"
        script.write_text(RUNNER)
        self.lines = []
        super().__init__([MICROPYTHON, "-X", "heapsize=512k", str(script), json.dumps(opts)],
                         tmp_path, mpy_env())

    def handle(self, d):
        self.lines.append(d)

    def wait(self, pred, timeout=20):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            for d in list(self.lines):
                if pred(d):
                    return d
            if self.exited():
                break
            time.sleep(0.02)
        raise AssertionError("not seen; last lines %s\nstderr %s" % (
            self.lines[-15:], self.stderr_tail()))


def _responder(tmp_path, port):
    table = tmp_path / "table.json"
    table.write_text(json.dumps(TABLE))
    return subprocess.Popen([sys.executable, str(ROOT / "tools" / "grid_responder.py"),
                             "--broker", "127.0.0.1:%d" % port, "--table", str(table),
                             "--seconds", "120", "--record", str(tmp_path / "grid.jsonl")],
                            stdout=subprocess.DEVNULL)


def test_schedule_emergency_reservations_and_compliance_over_mqtt(tmp_path):
    with Broker(tmp_path) as broker:
        responder = _responder(tmp_path, broker.port)
        sub = Client(broker.port, "watcher")
        sub.subscribe("site/#")
        fw = Firmware(tmp_path, {"port": broker.port, "prefix": "site", "seconds": 80,
                                 "subscription_w": 6000})
        try:
            state = sub.wait_json("site/state", lambda d: d.get("grid") is not None and
                                  d["grid"]["wall_clock"], timeout=20)
            assert state is not None, fw.lines[-10:]
            g = state["grid"]
            assert g["subscription_w"] == 6000 and state["limits"] == {"subscription": 6000}
            assert state["limit_w"] == 6000 and state["limit_source"] == "subscription"
            assert g["limit_from"] == "fallback" and g["import_limit_w"] is None

            # 1. A schedule with absolute starts, on the board's wall clock, far enough ahead
            # that the controller's lead on a known lower step (Limits.lead_ms) fits before it.
            now_s = g["unix_s"]
            start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_s + 10))
            sched = {"programID": "doe", "eventName": "t1",
                     "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT",
                                             "units": "KW"}],
                     "intervalPeriod": {"start": start, "duration": "PT8S"},
                     "intervals": [
                         {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT",
                                                 "values": [5.0]}]},
                         {"id": 1, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT",
                                                 "values": [4.0]},
                                                {"type": "EXPORT_CAPACITY_LIMIT",
                                                 "values": [2.0]}]}]}
            # Padded (targets) close to the 900-byte cap: it must pass the link's 1 KiB buffer.
            sched["targets"] = []
            while len(json.dumps(sched)) < 880:
                sched["targets"].append("feeder-7-tx-%02d" % len(sched["targets"]))
            assert len(json.dumps(sched)) <= 900
            sub.publish("site/cmd/grid/limits", json.dumps(sched))
            ev = sub.wait_json("site/event", lambda d: d["cmd"] == "grid/limits")
            assert ev["ok"] and ev["intervals"] == 2, ev
            l5 = fw.wait(lambda d: d.get("limit") == 5000)
            l4 = fw.wait(lambda d: d.get("limit") == 4000)
            back = fw.wait(lambda d: d.get("limit") == 6000 and d["real_ms"] > l4["real_ms"])
            # Each interval lasts 8 s (the simulated clock runs at real speed), longer than the
            # lead: the controller takes each lower one lead_ms early, the rise back on its
            # boundary.
            lead = l5["lead_ms"]
            assert 0 < lead <= 7000, l5
            assert 7500 <= l4["real_ms"] - l5["real_ms"] <= 8500, (l5, l4)
            assert 7500 + lead <= back["real_ms"] - l4["real_ms"] <= 8500 + lead, (l4, back)
            # (l5's source is read when the controller takes 5000 lead_ms early: strictest()
            # still names the subscription in force then; by l4 the grid's 5000 is in force)
            assert l4["source"] == "grid" and back["source"] == "subscription"
            st = sub.wait_json("site/state", lambda d: d["grid"]["export_limit_w"] == 2000)
            assert st is not None and st["limit_w"] == 4000

            # 2. An emergency: half the subscription, at the next control step.
            sub.publish("site/cmd/grid/emergency", json.dumps({"share_pct": 50, "duration_s": 8}))
            handled = fw.wait(lambda d: d.get("cmd") == "site/cmd/grid/emergency")
            assert handled["ok"]
            em = fw.wait(lambda d: d.get("limit") == 3000)
            assert em["source"] == "emergency"
            assert em["steps"] - handled["steps"] <= 1, (handled, em)
            assert em["real_ms"] - handled["real_ms"] <= 1000 + 100, (handled, em)
            after = fw.wait(lambda d: "t" in d and d["steps"] >= em["steps"] + 5)
            assert after["limit_w"] == 3000 and after["panel_w"] <= 3000 + 200, after
            fw.wait(lambda d: d.get("limit") == 6000 and d["real_ms"] > em["real_ms"])

            # 3. Reservations: granted now, a fee from 19:00, accepted, denied at 20:00.
            sub.publish("site/cmd/grid/reserve", json.dumps({"duration_s": 600,
                                                              "extra_w": 2000, "id": "x1"}))
            ev = sub.wait_json("site/event", lambda d: d["cmd"] == "grid/reserve")
            assert ev["ok"] and ev["id"] == "x1", ev
            rid = ev["request"]
            ans = sub.wait_json("site/event", lambda d: d["cmd"] == "grid/answer")
            assert ans["ok"] and ans["status"] == "granted" and ans["id"] == rid, ans
            lim = fw.wait(lambda d: d.get("limit") == 8000)
            assert lim["source"] == "subscription"
            sub.publish("site/cmd/grid/reserve", json.dumps(
                {"start": "2026-11-26T18:30:00Z", "duration_s": 3600, "extra_w": 3000}))
            ans = sub.wait_json("site/event", lambda d: d["cmd"] == "grid/answer")
            assert ans["status"] == "fee", ans
            st = sub.wait_json("site/state", lambda d: any(
                a["status"] == "fee" for a in d["grid"]["answers"]))
            quote = [a for a in st["grid"]["answers"] if a["status"] == "fee"][0]
            # 3 kW for 30 min at 0 then 30 min at 10 c/kW h: 15 cents.
            assert quote["fee_cents"] == 15 and [o["price"] for o in quote["offers"]] == [0, 10]
            sub.publish("site/cmd/grid/reserve", json.dumps({"accept": quote["id"]}))
            ans = sub.wait_json("site/event", lambda d: d["cmd"] == "grid/answer")
            assert ans["status"] == "granted", ans
            sub.publish("site/cmd/grid/reserve", json.dumps(
                {"start": "2026-11-26T20:10:00Z", "duration_s": 600, "extra_w": 1000}))
            ans = sub.wait_json("site/event", lambda d: d["cmd"] == "grid/answer")
            assert ans["status"] == "denied", ans
            st = sub.wait_json("site/state", lambda d: len(d["grid"]["reservations"]) == 2)
            assert [r["fee_cents"] for r in st["grid"]["reservations"]] == [0, 15]
            assert st["limit_w"] == 8000
            # The reference grid recorded each step, and has the site's grants, acked.
            seen = [json.loads(x) for x in (tmp_path / "grid.jsonl").read_text().splitlines()]
            mine = [(h["by"], h["state"]) for h in seen if h["id"] == rid]
            assert mine == [("site", "requested"), ("grid", "granted"),
                            ("site", "granted")], seen
            assert [h["state"] for h in seen if h["by"] == "grid"] == [
                "granted", "fee", "granted", "denied"], seen
            st = sub.wait_json("site/state", lambda d: d["grid"]["notices"] == 0)
            assert st is not None and st["grid"]["notices_lost"] == 0

            # 4. The compliance log, replayed over MQTT and summarised on the host.
            out = subprocess.run([sys.executable, str(ROOT / "tools" / "compliance_report.py"),
                                  "--mqtt", "127.0.0.1:%d" % broker.port, "--prefix", "site",
                                  "--json", str(tmp_path / "c.json")],
                                 capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            print(out.stdout)
            s = json.loads((tmp_path / "c.json").read_text())
            src = s["limit_changes_by_source"]
            assert src.get("grid", 0) >= 2 and src.get("emergency") == 1, s
            assert src.get("subscription", 0) >= 3, s
            live = [m for m in sub.take() if m[0] == "site/grid/log"]
            assert live, "log lines are published as they are written"
            fw.finish()
        finally:
            if fw.proc.poll() is None:
                fw.proc.kill()
            responder.terminate()
            responder.wait(5)
            sub.close()
        done = [d for d in fw.lines if d.get("done")][0]
        print("firmware heap in use at the end (unix port, 64-bit, from source): %d bytes"
              % done["mem_alloc"])
        assert (tmp_path / "compliance.log").exists() and (tmp_path / "grid.json").exists()


class FlawedGrid(grid_responder.Responder):
    """The reference grid, with two ways a real grid goes wrong, by the request's extra_w:
    1111 W is granted at a fee above what the site agreed (it refuses), 1234 W gets no
    answer. The first ack of the first notice is dropped, so the site must send it again."""

    dropped = 0

    def decide(self, req, site=""):
        if req.get("extra_w") == 1111:
            return {"id": req["id"], "status": "granted", "fee_cents": 999}
        if req.get("extra_w") == 1234:
            return None
        return super().decide(req, site)

    def handle(self, topic, payload):
        out = super().handle(topic, payload)
        if topic.endswith("/grid/reservation") and not self.dropped:
            self.dropped = 1
            return []
        return out


def test_every_reservation_state_reaches_the_grid_and_is_acked(tmp_path):
    """Over mosquitto: the reference grid's own code (tools/grid_responder.py, in this
    process) sees and records each state change of the site's reservations, acks it, and
    the site stops sending it; a full table refuses the 9th grant and says so."""
    with Broker(tmp_path) as broker:
        grid = FlawedGrid(TABLE)
        client = grid_responder.connect(grid, "127.0.0.1", broker.port, "rsv", "test-grid")
        sub = Client(broker.port, "watcher")
        sub.subscribe("rsv/#")
        # 4 simulated seconds per real one: the 60 s of an unanswered request take 15 s.
        fw = Firmware(tmp_path, {"port": broker.port, "prefix": "rsv", "seconds": 240,
                                 "subscription_w": 5000, "speed": 4})

        def states(rid):
            return [(h["by"], h["state"]) for h in grid.history if h["id"] == rid]

        def until(pred, timeout=40):
            t0 = time.monotonic()
            while time.monotonic() - t0 < timeout:
                if pred():
                    return True
                time.sleep(0.05)
            raise AssertionError("not seen: %s" % grid.history[-6:])

        def reserve(body):
            sub.publish("rsv/cmd/grid/reserve", json.dumps(body))
            ev = sub.wait_json("rsv/event", lambda d: d["cmd"] == "grid/reserve", timeout=30)
            assert ev is not None, (fw.lines[-8:], grid.history[-6:])
            assert ev["ok"], ev
            return ev["request"]

        try:
            st = sub.wait_json("rsv/state", lambda d: d.get("grid") is not None and
                               d["grid"]["wall_clock"], timeout=20)
            assert st is not None, fw.lines[-10:]
            short = reserve({"duration_s": 60, "extra_w": 1000})       # granted, then ended
            until(lambda: ("site", "granted") in states(short))
            over = reserve({"duration_s": 600, "extra_w": 1111})       # refused: the fee
            silent = reserve({"duration_s": 600, "extra_w": 1234})     # no answer
            kept = reserve({"duration_s": 600, "extra_w": 2000})       # granted, cancelled
            until(lambda: ("site", "granted") in states(kept))
            sub.publish("rsv/cmd/grid/cancel", json.dumps({"id": kept}))
            until(lambda: ("site", "ended") in states(short) and
                  ("site", "no answer") in states(silent), timeout=60)
            assert states(short) == [("site", "requested"), ("grid", "granted"),
                                     ("site", "granted"), ("site", "ended")]
            assert states(over) == [("site", "requested"), ("grid", "granted"),
                                    ("site", "refused")]
            refused = [h for h in grid.history if h["id"] == over and h["by"] == "site"][-1]
            assert refused["reason"] == "fee 999 above the 0 cents agreed", refused
            assert states(silent) == [("site", "requested"), ("site", "no answer")]
            assert states(kept) == [("site", "requested"), ("grid", "granted"),
                                    ("site", "granted"), ("site", "cancelled")]
            # Cancelled, refused, unanswered and ended: none of them still books room.
            assert grid.granted == [], grid.granted
            # The dropped ack (and the unanswered request) were sent again, and only recorded
            # once; 60 s unanswered is 5 more sends of the request.
            assert grid.repeats >= 6, grid.repeats
            # A full table: 8 held, the 9th grant refused with its reason; none evicted.
            held = []
            for k in range(9):
                rid = reserve({"duration_s": 900, "extra_w": 100 + k})
                ans = sub.wait_json("rsv/event", lambda d: d["cmd"] == "grid/answer" and
                                    d.get("id") == rid)
                held.append(rid)
                until(lambda: len([s for b, s in states(rid) if b == "site"]) == 2)
            assert ans["status"] == "refused" and ans["reason"] == \
                "table full: 8 reservations held", ans
            assert [states(r)[-1] for r in held] == [("site", "granted")] * 8 + [
                ("site", "refused")]
            sub.take()       # states from before the table filled
            st = sub.wait_json("rsv/state", lambda d: d["grid"]["notices"] == 0, timeout=20)
            assert st is not None and st["grid"]["notices_lost"] == 0, st
            assert st["grid"]["subscription_now_w"] == 5000 + sum(range(100, 108)), st
            fw.kill()
        finally:
            if fw.proc.poll() is None:
                fw.proc.kill()
            client.close()
            sub.close()
        # Every change the site sent, in the reference grid's record, once each.
        site_states = [h["state"] for h in grid.history if h["by"] == "site"]
        print("grid saw %d state changes (%d sent again)" % (len(site_states), grid.repeats))
        assert site_states.count("requested") == 13


def test_day_ahead_envelope_of_48_intervals_in_pages_over_mqtt(tmp_path):
    """Over mosquitto: the reference grid (tools/grid_responder.py --envelope) sends a
    48-interval envelope in pages under 900 bytes, each acked by the site's event; the
    schedule is taken once whole and each of its 48 limits lands on its boundary. Then an
    envelope of 52 is refused in one line naming the limit, and the 48 run on unchanged."""
    with Broker(tmp_path) as broker:
        sub = Client(broker.port, "watcher")
        sub.subscribe("doe/#")
        # 4 simulated seconds per real one; 2-s intervals: the 48 take 24 s.
        fw = Firmware(tmp_path, {"port": broker.port, "prefix": "doe", "seconds": 160,
                                 "subscription_w": 9600, "speed": 4,
                                 "cfg": {"control_period_ms": 250}})
        responder = None
        client = None
        try:
            st = sub.wait_json("doe/state", lambda d: d.get("grid") is not None and
                               d["grid"]["wall_clock"], timeout=20)
            assert st is not None, fw.lines[-10:]
            start = st["grid"]["unix_s"] + 24
            values = [round(4.0 + 0.1 * i, 1) for i in range(48)]      # each step a rise
            env = tmp_path / "envelope.json"
            env.write_text(json.dumps({"id": "doe-48", "start": grid_responder.iso(start),
                                       "duration_s": 2, "values_kw": values}))
            log = tmp_path / "responder.txt"
            with open(log, "w") as out:
                responder = subprocess.Popen(
                    [sys.executable, str(ROOT / "tools" / "grid_responder.py"),
                     "--broker", "127.0.0.1:%d" % broker.port, "--prefix", "doe",
                     "--envelope", str(env), "--seconds", "30"], stdout=out)
            done = sub.wait_json("doe/event", lambda d: d["cmd"] == "grid/limits" and
                                 "intervals" in d, timeout=20)
            assert done is not None and done["ok"] and done["intervals"] == 48, done
            acks = [json.loads(m[1]) for m in sub.take() if m[0] == "doe/event"] + [done]
            pages = [a for a in acks if a.get("cmd") == "grid/limits"]
            assert sorted(set(a["page"] for a in pages)) == list(range(1, done["pages"] + 1))
            assert all(a["ok"] for a in pages) and done["pages"] >= 6, pages
            t0 = time.monotonic()
            while "in force" not in log.read_text() and time.monotonic() - t0 < 10:
                time.sleep(0.1)
            assert "envelope doe-48: 48 intervals in force" in log.read_text(), log.read_text()

            # 52 intervals in 7 pages: the 7th is refused, in one line naming the limit.
            big = grid_responder.EnvelopeSender("doe", "doe-52", grid_responder.envelope_pages(
                "doe-52", start + 200, [5.0] * 52, 2))
            client = grid_responder.connect(grid_responder.Responder(), "127.0.0.1",
                                            broker.port, "doe", "test-grid", envelope=big)
            t0 = time.monotonic()
            while big.error is None and time.monotonic() - t0 < 20:
                for t, p in big.due(time.monotonic()):
                    client.publish(t, p)
                time.sleep(0.05)
            assert big.error == "schedule doe-52: 52 intervals, limit 48", big.error
            assert big.done is None and len(big.acked) == 6

            # A whole envelope in one message over the link's 1 KiB packets: skipped unread,
            # yet refused in one line naming the limit, not dropped in silence.
            whole = json.dumps({"id": "doe-1msg", "intervals": [
                {"id": i, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5.0]}]}
                for i in range(48)]})
            assert len(whole) > 1024
            sub.publish("doe/cmd/grid/limits", whole)
            too_big = sub.wait_json("doe/event", lambda d: d["cmd"] == "grid/limits" and
                                    not d["ok"] and "doe-52" not in d["error"], timeout=20)
            assert too_big is not None and too_big["error"] == "payload longer than 900 bytes"

            # The 48 land on their boundaries, one every 2 s of simulated time, in order.
            end = fw.wait(lambda d: d.get("limit") == 9600 and d["vt_ms"] > 1000 *
                          (start + 96 - T0_UNIX) - 2000, timeout=60)
            steps = [d for d in fw.lines if "limit" in d and d["real_ms"] <= end["real_ms"]]
            seen = [d["limit"] for d in steps]
            want = [int(v * 1000 + 0.5) for v in values]
            assert seen[-49:] == want + [9600], seen
            at = [d["vt_ms"] for d in steps[-49:]]
            gaps = [b - a for a, b in zip(at, at[1:])]
            # Each rise on its boundary (the controller's step is 250 ms: a boundary is seen
            # at the next one); the first, a step down from 9600 W, lead_ms early (issue 19
            # item 4), so the EV is slowed before it.
            lead = steps[-49]["lead_ms"]
            assert all(1700 <= g <= 2300 for g in gaps[1:]), gaps
            assert 1700 + lead <= gaps[0] <= 2300 + lead, (gaps[0], lead)
            # ... on the board's wall clock: the first within a second of its start, less lead
            nominal = 1000 * (start - T0_UNIX)
            assert -lead - 1300 <= at[0] - nominal <= 1300, (at[0], nominal, lead)
            state = sub.wait_json("doe/state", lambda d: d["grid"]["intervals"] == 0,
                                  timeout=10)
            assert state is not None and state["grid"]["event"] == "day-ahead"
            fw.kill()
        finally:
            if fw.proc.poll() is None:
                fw.proc.kill()
            if responder is not None:
                responder.terminate()
                responder.wait(5)
            if client is not None:
                client.close()
            sub.close()
        print("48 intervals in %d pages of at most %d bytes; 52 refused: %s" % (
            done["pages"], max(len(p) for p in grid_responder.envelope_pages(
                "doe-48", start, values, 2)), big.error))


def test_reservation_from_the_repl(tmp_path):
    with Broker(tmp_path) as broker:
        responder = _responder(tmp_path, broker.port)
        try:
            time.sleep(0.5)
            script = tmp_path / "grid_fw.py"
            script.write_text(RUNNER)
            out = subprocess.run(
                [MICROPYTHON, "-X", "heapsize=512k", str(script),
                 json.dumps({"port": broker.port, "prefix": "repl", "seconds": 0,
                             "subscription_w": 5000, "repl": True})],
                cwd=tmp_path, env=mpy_env(), capture_output=True, text=True, timeout=60)
        finally:
            responder.terminate()
            responder.wait(5)
        print(out.stdout)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "asking the grid" in out.stdout
        assert "'status': 'granted'" in out.stdout, out.stdout
        assert "reservation r" in out.stdout and "+1500 W" in out.stdout
        assert "subscription 5000 W, now 6500 W" in out.stdout
        # The grid heard that the site took the grant, and acked it before the REPL let go.
        seen = [json.loads(x) for x in (tmp_path / "grid.jsonl").read_text().splitlines()]
        assert [(h["by"], h["state"]) for h in seen] == [
            ("site", "requested"), ("grid", "granted"), ("site", "granted")], seen
        assert "0 notices awaiting the grid's ack" in out.stdout, out.stdout


def test_repl_mistakes_print_one_line(tmp_path):
    script = tmp_path / "grid_fw.py"
    script.write_text(RUNNER)
    out = subprocess.run(
        [MICROPYTHON, "-X", "heapsize=512k", str(script),
         json.dumps({"port": 1, "prefix": "m", "seconds": 0, "subscription_w": 5000,
                     "repl": "mistakes"})],
        cwd=tmp_path, env=mpy_env(), capture_output=True, text=True, timeout=60)
    print(out.stdout)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0] == ("error: extra_w must be an int in 1..4600 W (the installer's setpoint "
                        "9600 W less the subscription 5000 W), got 99999")
    assert lines[1].startswith("error: time must look like 2026-11-26T18:00:00Z")
    assert lines[2] == "error: share_pct must be an int in 0..100 %, got 150"
    assert lines[3] == "emergency: 2500 W for 60 s"
    assert lines[4] == "error: no fee quoted for request 'r0000'"
    assert lines[5] == "error: no reservation 'r0000'"
    assert lines[6] == "error: no wall clock yet (NTP): reservations need one"
    assert "wall clock unknown" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_sntp_wall_clock_without_blocking():
    """GridTask's SNTP client against a fake server on loopback: the answer sets the grid's
    wall clock; a silent server costs no scheduler stall (the wait is polled)."""
    import socket
    import struct
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    mode = {"answer": True, "seen": 0}

    def serve():
        srv.settimeout(0.2)
        while mode.get("run", True):
            try:
                q, addr = srv.recvfrom(64)
            except OSError:
                continue
            mode["seen"] += 1
            if mode["answer"] and len(q) == 48 and q[0] == 0x1B:
                r = bytearray(48)
                r[0] = 0x1C
                r[40:44] = struct.pack("!I", T0_UNIX + 2208988800)
                srv.sendto(bytes(r), addr)
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    code = r"""
import asyncio, time, grid, shed
from limits import Limits
from clock import Clock
class Link:
    connected = True
class App:
    cfg = {'ntp_host': '127.0.0.1'}
    wall = staticmethod(lambda: None)
clock = Clock()
g = grid.Grid(Limits(setpoint_w=9600, clock=clock), clock, 9600, path=None)
task = grid.GridTask(App(), Link(), 'p', 1000)
task.ntp_port = %d
from gapprobe import GapProbe
probe = GapProbe()
async def main():
    asyncio.create_task(probe.run())
    t0 = time.ticks_ms()
    u = await task._sntp()
    print('answer', u, time.ticks_diff(time.ticks_ms(), t0))
    g.set_wall(u, clock.ticks_ms())
    print('wall', g.wall_known(), grid.format_time(g.wall_gs(clock.ticks_ms())))
    print('SILENT')
    await asyncio.sleep_ms(300)
    t0 = time.ticks_ms()
    u = await task._sntp()
    print('silent', u, time.ticks_diff(time.ticks_ms(), t0))
asyncio.run(main())
print('worst_gap_ms', probe.worst_ms)
""" % port
    proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=512k", "-c", code], cwd=ROOT,
                            env=mpy_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out = ""
    for line in proc.stdout:
        out += line
        if line.startswith("SILENT"):
            mode["answer"] = False
    proc.wait(30)
    mode["run"] = False
    th.join(2)
    srv.close()
    print(out)
    assert proc.returncode == 0, proc.stderr.read()
    assert "answer %d" % T0_UNIX in out
    assert "wall True 2026-11-26T18:00:00Z" in out
    silent = [l for l in out.splitlines() if l.startswith("silent")][0].split()
    assert silent[1] == "None" and 1900 <= int(silent[2]) <= 2600, silent
    worst = int(out.split("worst_gap_ms ")[1].split()[0])
    assert worst < 20, worst
    assert mode["seen"] == 2


def test_grid_built_by_the_first_message_runs_supervised(tmp_path):
    """No grid setting: grid.py is not loaded until a grid message arrives; then the Grid
    and its task start under the running supervisor (a relative schedule applies and ends)."""
    with Broker(tmp_path) as broker:
        sub = Client(broker.port, "watcher")
        sub.subscribe("lazy/#")
        fw = Firmware(tmp_path, {"port": broker.port, "prefix": "lazy", "seconds": 14,
                                 "subscription_w": 0})
        try:
            st = sub.wait_json("lazy/state", timeout=20)
            assert st is not None and st["grid"] is None and st["limit_w"] == 9600
            sub.publish("lazy/cmd/grid/limits", json.dumps(
                {"intervalPeriod": {"duration": "PT4S"}, "intervals": [
                    {"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [4.0]}]}]}))
            ev = sub.wait_json("lazy/event", lambda d: d["cmd"] == "grid/limits")
            assert ev["ok"], ev
            on = fw.wait(lambda d: d.get("limit") == 4000)
            off = fw.wait(lambda d: d.get("limit") == 9600 and d["real_ms"] > on["real_ms"])
            assert 3000 <= off["real_ms"] - on["real_ms"] <= 5000, (on, off)
            # Only the grid task publishes log lines: it runs.
            line = sub.wait_for(lambda m: m[0] == "lazy/grid/log", timeout=10)
            assert line is not None and json.loads(line[1])["k"] == "limit"
            fw.finish()
        finally:
            if fw.proc.poll() is None:
                fw.proc.kill()
            sub.close()
