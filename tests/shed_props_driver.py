"""Replays generated histories against shed.py for tests/test_shed_properties.py (MicroPython)."""
# One process serves a whole run: each stdin line is one case (a panel and its history, JSON),
# each stdout line is what it produced, as JSON: {"order": [...], "steps": [[...], ...]} or
# {"error": "..."}.
# The panel model is test_shed.py's Rig, in ms: a load draws min(what it wants, what its
# command allowed delay_ms ago); the measurement is the uncontrolled base plus the loads.
# A step record holds what the invariant checks need (tests/test_shed_properties.py):
#   [t_ms, valid, age_ms, total_w, l1_ma, l2_ma, due, state, limit_w, limit_ma,
#    then per load: measured_w, on, setpoint_a, forced_ops]
# The first line of the answer also gives the controller's order (indices, most important
# first): MicroPython's sorted() is not stable, so loads of equal priority are not in list order.
# t_ms counts from the start, unwrapped; the controller sees ticks that wrap at 2**30.
# limit_w / limit_ma are -1 for None. due: the restore step's settle or stagger time has come
# (read from the controller before the update; the checks use it only to expect a reclaim).

import json
import sys

from fakeclock import FakeClock

from limits import Limits
from loadkind import KIND_ONOFF, KIND_MODULATED, KIND_NEVER
from shed import Load, Controller, Measurement

STATES = ("failsafe", "recovering", "shedding", "overload", "holding", "restoring", "settling",
          "reclaiming", "ok")


def build(case):
    p = case["panel"]
    clock = FakeClock(t=case["t0"])
    kw = {"volts": p["volts"], "band_pct": p["band_pct"], "system": p["system"]}
    for key in ("setpoint_w", "setpoint_a", "rating_a"):
        if p.get(key) is not None:
            kw[key] = p[key]
    lim = Limits(**kw)
    loads = []
    for i, d in enumerate(case["loads"]):
        loads.append(Load("l%d" % i, d["kind"], d["priority"], d["leg"], d["rated_w"],
                          volts=d["volts"], min_on_s=d["min_on_s"], min_off_s=d["min_off_s"],
                          max_ops_per_h=d["max_ops_per_h"], min_a=d["min_a"], max_a=d["max_a"],
                          ramp_step_a=d["ramp_step_a"], resume_pause_s=d["resume_pause_s"],
                          response_s=d["response_s"]))
    c = case["ctl"]
    ctl = Controller(loads, lim, clock, stale_ms=c["stale_ms"], settle_s=c["settle_s"],
                     stagger_s=c["stagger_s"])
    return clock, lim, loads, ctl


def allowed(load):
    if load.kind == KIND_NEVER:
        return load.rated_w
    if load.kind == KIND_ONOFF:
        return load.rated_w if load.on else 0
    w = load.setpoint_a * load.volts
    return w if w < load.rated_w else load.rated_w


def replay(case):
    clock, lim, loads, ctl = build(case)
    specs = case["loads"]
    single = case["panel"]["system"] == "single"
    base_v = case["panel"]["volts"]
    m = Measurement()
    n = len(loads)
    want = [d["want_w"] for d in specs]
    delay = [d["delay_ms"] for d in specs]
    # Commands each load has been given: [(t_ms, allowed_w)], oldest first.
    cmds = [[(-(1 << 40), allowed(l))] for l in loads]
    base1 = base2 = 0
    spikes = []            # [w, leg (0 L1, 1 L2, 2 both), steps left]
    t = 0
    out = []
    for seg in case["history"]:
        op = seg[0]
        steps = seg[1]
        dt = seg[2]
        valid = True
        age = 0
        if op == "base":
            base1 = seg[3]
            base2 = 0 if single else seg[4]
        elif op == "spike":
            spikes.append([seg[3], 0 if single else seg[4], seg[5]])
        elif op == "want":
            want[seg[3] % n] = seg[4]
        elif op == "meas":
            valid = seg[3]
            age = seg[4]
        elif op == "limit":
            now = clock.t
            until = None if seg[6] is None else clock.ticks_add(now, seg[6])
            start = None if seg[7] is None else clock.ticks_add(now, seg[7])
            lim.set(seg[3], w=seg[4], a=seg[5], until_ms=until, from_ms=start)
        elif op == "clear":
            lim.clear(seg[3])
        elif op == "jump":
            t += seg[3]
            clock.t = clock.ticks_add(clock.t, seg[3])
        for _ in range(steps):
            t += dt
            clock.t = clock.ticks_add(clock.t, dt)
            tot = base1 + base2
            l1 = base1 * 1000 // base_v
            l2 = base2 * 1000 // base_v
            for s in spikes:
                if s[2] > 0:
                    s[2] -= 1
                    w = s[0]
                    if s[1] == 2:
                        tot += w
                        l1 += w * 500 // base_v
                        l2 += w * 500 // base_v
                    else:
                        tot += w
                        if s[1] == 0:
                            l1 += w * 1000 // base_v
                        else:
                            l2 += w * 1000 // base_v
            for i in range(n):
                load = loads[i]
                hist = cmds[i]
                # The command in force: the newest given at least delay_ms ago.
                cap = hist[0][1]
                k = 0
                for j in range(len(hist)):
                    if hist[j][0] + delay[i] <= t:
                        cap = hist[j][1]
                        k = j
                if k:
                    del hist[:k]
                d = want[i] if want[i] < cap else cap
                load.measured_w = d
                tot += d
                ma = d * 1000 // load.volts
                if load.on_l1:
                    l1 += ma
                if load.on_l2:
                    l2 += ma
            m.valid = valid
            m.t_ms = clock.ticks_add(clock.t, -age)
            m.total_w = tot
            m.leg_ma[0] = l1
            m.leg_ma[1] = l2
            nxt = clock.ticks_add(clock.t, ctl.stagger_ms) if ctl._failsafe else ctl._next_up_ms
            due = 1 if clock.ticks_diff(clock.t, nxt) >= 0 else 0
            ctl.update(m)
            lw = ctl.limit_w
            la = ctl.limit_ma
            rec = [t, 1 if valid else 0, age, tot, l1, l2, due, STATES.index(ctl.state),
                   -1 if lw is None else lw, -1 if la is None else la]
            for i in range(n):
                load = loads[i]
                rec.append(load.measured_w)
                rec.append(1 if load.on else 0)
                rec.append(load.setpoint_a)
                rec.append(load.forced_ops)
                a = allowed(load)
                if a != cmds[i][-1][1]:
                    cmds[i].append((t, a))
            out.append(rec)
    return [loads.index(l) for l in ctl._ctl], out


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        try:
            order, steps = replay(json.loads(line))
            sys.stdout.write(json.dumps({"order": order, "steps": steps}))
        except Exception as e:            # a crash is a finding: report it, keep serving
            sys.stdout.write(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
        sys.stdout.write("\n")


main()
