"""Replays generated grid messages for tests/test_grid_fuzz.py (MicroPython, the 32-bit port).
One process serves a whole run: each stdin line is one case, {"msgs": [[sub, payload, ms],
...]}: a fresh Grid in a known state (a schedule, a reservation in force, a request awaiting
its answer, a fee quoted, a notice awaiting its ack) takes each message through
commands.handle as <p>/cmd/grid/<sub> (ms: how long the clock runs, with an update, before
it). Each stdout line: {"ok": accepted, "refused": refused, "pages": pages accepted, "whole": paged
schedules completed, "bad": [what broke]}. Broken:
an exception out of handle, a refusal that changed anything or whose event is not one line,
an accepted message that left the limit above the setpoint or the tables over their bounds
(a paged schedule's pages held among them)."""

import json
import sys

import commands
import grid
from fakeclock import FakeClock
from limits import Limits

T0_UNIX = 1795716000      # 2026-11-26T18:00:00Z


def iso(s):
    return grid.format_time(grid.parse_time(T0_UNIX) + s)


def setup():
    clock = FakeClock()
    limits = Limits(setpoint_w=9600, clock=clock)
    g = grid.Grid(limits, clock, 9600, subscription_w=5000, fallback_w=4000, silence_s=600,
                  path=None)
    g.next_id = 0
    g.set_wall(T0_UNIX, clock.t)
    g.schedule({"intervalPeriod": {"start": iso(0), "duration": "PT10M"},
                "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [7.0]}]},
                              {"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [6.0]}]}]},
               clock.t)
    g.answer({"id": g.reserve(None, 600, 1000, clock.t), "status": "granted"}, clock.t)  # r0000
    g.reserve(iso(60), 600, 500, clock.t)                                             # r0001
    g.answer({"id": g.reserve(iso(120), 600, 800, clock.t), "status": "fee",          # r0002
              "fee_cents": 30}, clock.t)
    g.outbox.clear()
    events = []
    cmds = commands.Commands(limits, {}, clock, 9600, events.append, grid=lambda: g)
    return clock, limits, g, cmds, events


def snap(g, limits):
    # Everything a grid message may change (the commands' counters excepted).
    pg = g._pg
    return repr((g.intervals, g.event_name, g._heard,
                 pg and (pg.sid, pg.n, pg.heard, pg.name, pg.held), g.reservations,
                 sorted(g.pending.items()), g.answers, g.notices, g.notices_lost, g.next_id,
                 g._n, g.outbox, g.emergency_w, g._emergency_until, g._off, g.replay_wanted,
                 sorted(limits._sources.items()), sorted(g._armed.items())))


def run(case):
    clock, limits, g, cmds, events = setup()
    ok = refused = pages = whole = 0
    bad = []
    for sub, payload, ms in case["msgs"]:
        if ms:
            clock.advance(ms)
            g.update(clock.t)
        before = snap(g, limits)
        n = len(events)
        try:
            took = cmds.handle("p", "p/cmd/grid/" + sub, payload)
        except Exception as e:
            bad.append("%s raised %s: %s" % (sub, type(e).__name__, e))
            break
        if len(events) != n + 1:
            bad.append("%s: %d events" % (sub, len(events) - n))
        if took:
            ok += 1
            if "page" in events[-1]:
                pages += 1
                whole += "intervals" in events[-1]
            w = limits.effective_w(clock.t)
            if w is None or w > 9600:
                bad.append("%s: limit %r above the setpoint" % (sub, w))
            if len(g.reservations) > 8 or len(g.pending) > 4 or len(g.notices) > 8 or \
                    len(g.outbox) > 8:
                bad.append("%s: a table over its bound" % sub)
            ivs = g.intervals
            for i in range(1, len(ivs)):
                if ivs[i][0] < ivs[i - 1][1]:
                    bad.append("%s: intervals overlap" % sub)
            pg = g._pg
            if len(ivs) > 48 or pg is not None and (
                    len(pg.held) > 8 or sum(len(p) for p in pg.held if p) > 48 or
                    None not in pg.held):
                bad.append("%s: a schedule or its pages held over their bounds" % sub)
            if pg is not None:
                held = [iv for p in pg.held if p for iv in p]
                for i in range(1, len(held)):
                    if held[i][0] < held[i - 1][1]:
                        bad.append("%s: pages held overlap" % sub)
        else:
            refused += 1
            err = events[-1].get("error") if events else None
            if not isinstance(err, str) or "\n" in err or not err:
                bad.append("%s: refusal without one line: %r" % (sub, err))
            if snap(g, limits) != before:
                bad.append("%s: refused (%s) but changed the state" % (sub, err))
    return {"ok": ok, "refused": refused, "pages": pages, "whole": whole, "bad": bad}


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    try:
        out = run(json.loads(line))
    except Exception as e:      # the setup or the driver itself: reported, not hidden
        out = {"ok": 0, "refused": 0, "pages": 0, "whole": 0,
               "bad": ["driver: %s: %s" % (type(e).__name__, e)]}
    print(json.dumps(out))
