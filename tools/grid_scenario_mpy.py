"""One run of the Figure 6 scenario under micropython (tools/grid_scenario.py drives it).

Usage: micropython grid_scenario_mpy.py OPTIONS_JSON TRACE_FILE
Second by second: the house's base load (minute values), an EV behind the shed controller
(firmware/shed.py) whose limit comes from the grid signals (firmware/grid.py: subscription,
a reservation if the options carry one, answered as the reference responder answered it),
and the compliance monitor (firmware/compliance.py). Prints the metrics as one JSON line;
writes one trace line per minute: "t_s base_w ev_w max_total_w limit_w" (base and EV: the
minute's averages; max_total_w: its highest second; limit_w: the one in force at its end).
"""
import json
import sys
import time

import compliance
import grid
import shed
from fakeclock import FakeClock
from limits import Limits


def main():
    opts = json.loads(open(sys.argv[1]).read())
    trace = open(sys.argv[2], "w")
    base = opts["base_w"]                  # one value per minute from the start
    clock = FakeClock(60000)      # simulated ms ticks, 60 s before the wrap
    volts = opts["ev_volts"]
    ev = shed.Load("ev", shed.KIND_MODULATED, 1, "L1L2", opts["ev_max_a"] * volts, volts=volts,
                   max_a=opts["ev_max_a"], min_a=6, response_s=5, resume_pause_s=300)
    limits = Limits(setpoint_w=opts["setpoint_w"], clock=clock)
    # A known lower limit is planned with the EV's response plus one step ahead (the app
    # sets the same from its loads); 0 turns that off, as before it existed.
    limits.lead_ms = opts.get("lead_ms", 6000)
    ctl = shed.Controller([ev], limits, clock, settle_s=10)
    g = grid.Grid(limits, clock, opts["setpoint_w"], subscription_w=opts["subscription_w"],
                  path=None)
    g.set_wall(opts["start_unix"], clock.t)
    log = compliance.Log(opts["log"])
    g.monitor = compliance.Monitor(log, g.stamp, limits)
    meas = shed.Measurement()
    delay = [0] * 5                         # the EV follows its setpoint 5 s later
    need_ws = opts["ev_need_wh"] * 3600
    arrive_s = opts["ev_arrive_s"]
    res = opts.get("reservation")
    answers = opts.get("answers", [])
    done_s = None
    delivered_ws = 0
    over_s = 0
    acc_ev = acc_base = acc_max = acc_n = 0
    acc_lim = 0
    n_s = len(base) * 60
    draw = 0
    peak_w = 0
    for t in range(n_s):
        if res is not None and t == res["ask_at_s"]:
            # The REPL's grid.reserve(); then the responder's answers in turn (a fee
            # quoted, then granted once accepted).
            rid = g.reserve(res["start"], res["duration_s"], res["extra_w"], clock.t)
            for a in answers:
                a = dict(a)
                a["id"] = rid
                status = g.answer(a, clock.t)
                if status == "fee":
                    g.outbox.clear()
                    rid = g.accept(rid, clock.t)
        b = base[t // 60]
        # The EV: plugged in from arrive_s until it has its energy.
        want = t >= arrive_s and need_ws > 0
        allowed = delay[t % 5]
        draw = allowed if want else 0
        if draw > need_ws:
            draw = need_ws
        need_ws -= draw
        delivered_ws += draw
        if want and need_ws <= 0 and done_s is None:
            done_s = t
        total = b + draw
        limits.in_force()      # the limit in force (the controller's may be lower: planned)
        if total > limits.limit_w:
            over_s += 1
        if total > peak_w:
            peak_w = total
        clock.advance(1000)
        g.update(clock.t)
        meas.valid = True
        meas.t_ms = clock.t
        meas.total_w = total
        ev.measured_w = draw
        ctl.update(meas)
        g.watch(clock.t, True, total, ctl.limit_w, ctl.state == "overload")
        delay[t % 5] = ev.setpoint_a * volts if want else 0
        acc_n += 1
        acc_ev += draw
        acc_base += b
        limits.in_force()
        acc_lim = limits.limit_w
        if total > acc_max:
            acc_max = total
        if acc_n == 60:
            trace.write("%d %d %d %d %d\n" % (t - 59, acc_base // 60, acc_ev // 60, acc_max,
                                              acc_lim))
            acc_n = acc_ev = acc_base = acc_max = 0
    trace.close()
    m = g.monitor
    print(json.dumps({"ev_done_s": done_s, "ev_delivered_wh": delivered_ws // 3600,
                      "ev_unfinished_wh": need_ws // 3600, "over_s": over_s, "peak_w": peak_w,
                      "excursions": m.excursions, "excursion_s": m.excursion_s,
                      "limit_changes": m.changes, "answers": g.answers,
                      "reservations": [r[2:] for r in g.reservations]}))


t0 = time.ticks_ms()
main()
