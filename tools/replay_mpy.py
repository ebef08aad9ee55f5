"""Replay one strategy over a prepared load file, second by second; runs under micropython.

Usage: micropython replay_mpy.py ROWS_FILE STRATEGY [TRACE_FILE]
ROWS_FILE (written by tools/sim.py): a JSON header line, then one line per input row
"t_s base_w [pv_w] demand_w..." (base_w x: no valid measurement; pv_w with a PV column),
then "end t_s". STRATEGY is
panelcap (decisions from firmware/shed.py), no_control or current_shaper. Prints the metrics
as one JSON line; a controller setting shed.py refuses is one "error: ..." line on stderr,
exit 2; a crash puts its traceback there, exit 1. The panel model: a contactor acts at the
next step, an EV follows its setpoint after its response delay; energy a load could not take
is owed and drawn later.
"""
import json
import sys

from fakeclock import FakeClock

_WS_PER_WH = 3600
_OWED_EPS_WS = 3600      # a load is "behind" while it owes more than 1 Wh
_Y2K = 946684800         # demand windows are aligned to the wall clock (a multiple of 15 min)


class SimLoad:
    """The physical load behind a command, plus its metrics."""

    def __init__(self, spec, delay_s):
        self.name = spec["name"]
        self.kind = spec["kind"]             # "ev" or "wh"
        self.rated_w = spec["rated_w"]
        self.volts = spec["volts"]
        self.max_a = spec["max_a"]
        self.min_a = spec["min_a"]
        self.delay = delay_s if self.kind == "ev" else 1
        # Allowed draw, per second, for the next `delay` seconds (a command issued after
        # step t is in force from step t + delay).
        self.pipe = [self.rated_w] * self.delay
        self.head = 0
        self.cmd_on = True
        self.cmd_w = self.rated_w
        self.demand = 0
        self.owed = 0
        self.draw = 0
        self.asked_ws = 0
        self.delivered_ws = 0
        self.switch_ops = 0
        self.adjust_ops = 0
        self.last_demand_t = -1
        self.behind = False
        self.late_s = 0
        self.sessions_late = 0
        # Soaking (export.py): the room a tank or battery has for energy taken ahead of its
        # demand, what it holds (served first when demand comes), and what the firmware
        # grants (load.soak_w).
        self.store_ws = spec.get("store_wh", 0) * 3600
        self.stored = 0
        self.soak_w = 0
        self.soaked_ws = 0

    def command(self, on, allowed_w):
        if on != self.cmd_on:
            self.switch_ops += 1
            self.cmd_on = on
        elif on and allowed_w != self.cmd_w:
            self.adjust_ops += 1
        self.cmd_w = allowed_w if on else 0
        # Written into the slot read `delay` steps from now.
        self.pipe[self.head] = self.cmd_w

    def step(self, t):
        allowed = self.pipe[self.head]
        d = self.demand
        self.asked_ws += d
        if d > 0:
            self.last_demand_t = t
        owed = self.owed + d
        if self.stored and owed:
            take = owed if owed < self.stored else self.stored
            self.stored -= take
            owed -= take
        extra = self.store_ws - self.stored
        if extra > self.soak_w:
            extra = self.soak_w
        draw = owed + extra
        if draw > allowed:
            draw = allowed
        if draw > self.rated_w:
            draw = self.rated_w
        if draw > owed:
            self.stored += draw - owed
            self.soaked_ws += draw - owed
            owed = 0
        else:
            owed -= draw
        self.owed = owed
        self.draw = draw
        self.delivered_ws += draw
        if owed > _OWED_EPS_WS:
            self.behind = True
        elif self.behind:
            self.behind = False
            late = t - self.last_demand_t
            if late > 0:
                self.sessions_late += 1
                if late > self.late_s:
                    self.late_s = late
        return draw

    def advance(self):
        self.head = (self.head + 1) % self.delay


def build_panelcap(hdr, loads, clock):
    import shed
    from limits import Limits
    ctl_loads = []
    for i, ld in enumerate(loads):
        if ld.kind == "ev":
            sl = shed.Load(ld.name, shed.KIND_MODULATED, i + 1, "L1L2", ld.rated_w, volts=ld.volts,
                           min_a=ld.min_a, max_a=ld.max_a, ramp_step_a=hdr["ramp_step_a"],
                           resume_pause_s=hdr["resume_pause_s"], response_s=ld.delay,
                           min_on_s=hdr["min_on_s"], min_off_s=hdr["min_off_s"],
                           max_ops_per_h=hdr["max_ops_per_h"])
        else:
            sl = shed.Load(ld.name, shed.KIND_ONOFF, i + 1, "L1L2", ld.rated_w, volts=ld.volts,
                           min_on_s=hdr["min_on_s"], min_off_s=hdr["min_off_s"],
                           max_ops_per_h=hdr["max_ops_per_h"], response_s=1)
        ctl_loads.append(sl)
    if hdr.get("duty"):
        # Duty mode: the limit given is the 80 % line, so the rating is 100/80 of it; the
        # hard limit is the rating, the 80 % a three-hour average (firmware/duty.py).
        rating_w = hdr["limit_w"] * 100 // 80
        limits = Limits(setpoint_w=rating_w, rating_a=(rating_w + 239) // 240, volts=120,
                        band_pct=hdr["band_pct"], duty=True)
    else:
        limits = Limits(setpoint_w=hdr["limit_w"], band_pct=hdr["band_pct"])
    ctl = shed.Controller(ctl_loads, limits, clock, stale_ms=hdr["stale_s"] * 1000,
                          settle_s=hdr["settle_s"], stagger_s=hdr["stagger_s"])
    if "export_limit_w" in hdr or hdr.get("surplus"):
        # The firmware's export limit and surplus mode (export.py): the loads with a store
        # soak, in priority order.
        import export
        cur = None
        if hdr.get("curtail_w"):
            # and the PV inverter curtailed by the firmware's curtail.py where they cannot
            import curtail
            from siminverter import SimInverter
            cur = curtail.Curtail(SimInverter(hdr["curtail_w"], hdr["curtail_response_s"]),
                                  clock)
        export.Soaker(ctl, [sl for sl, ld in zip(ctl_loads, loads) if ld.store_ws],
                      hdr.get("export_limit_w"), hdr.get("surplus", False), cur)
    return ctl, ctl_loads, shed.Measurement(), limits



class Duty:
    """The run against duty mode's two rules: seconds above the rating (100 %), and the worst
    mean over any three hours (running sums over preallocated rings of seconds), split: the
    base alone's worst, and the worst with the base's own excess over 80 % taken out (above
    80 % only where the controllable loads added to an excess: denied their energy in those
    three hours, the mean would have been at or under 80 %, or at the base's own)."""

    def __init__(self, rating_w):
        from array import array
        self.rating_w = rating_w
        self.cap = rating_w * 80 // 100 * 10800      # the 80 % line over three hours, W*s
        self.ring = array("i", [0] * 10800)
        self.bring = array("i", [0] * 10800)
        self.i = 0
        self.full = False
        self.acc = self.bacc = 0
        self.worst = self.bworst = self.cworst = 0
        self.ctl_over_s = 0
        self.over_100_s = 0
        self.run = self.longest_100 = 0
        self.over_100_ctl_s = self.crun = self.longest_100_ctl = 0

    def add(self, total_w, base_w):
        if total_w > self.rating_w:
            self.over_100_s += 1
            self.run += 1
            if self.run > self.longest_100:
                self.longest_100 = self.run
            if total_w > base_w:            # a controllable load was drawing
                self.over_100_ctl_s += 1
                self.crun += 1
                if self.crun > self.longest_100_ctl:
                    self.longest_100_ctl = self.crun
            else:
                self.crun = 0
        else:
            self.run = self.crun = 0
        r = self.ring
        br = self.bring
        i = self.i
        self.acc += total_w - r[i]
        r[i] = total_w
        self.bacc += base_w - br[i]
        br[i] = base_w
        i += 1
        if i == len(r):
            i = 0
            self.full = True
        self.i = i
        if self.full:
            acc = self.acc
            if acc > self.worst:
                self.worst = acc
            if self.bacc > self.bworst:
                self.bworst = self.bacc
            ctl = acc - (self.bacc - self.cap if self.bacc > self.cap else 0)
            if ctl > self.cworst:
                self.cworst = ctl
            if ctl > self.cap:
                self.ctl_over_s += 1

    def pct(self, ws):
        return round(ws / len(self.ring) * 100 / self.rating_w, 1)


class Windows:
    """Whole clock-aligned demand windows of a run: their mean import, and which went over
    the budget; 'controllable' when the controllable loads drew at least the excess (denied,
    the window would have stayed in budget), else the base alone is to blame."""

    def __init__(self, window_s, budget_w, t0_unix):
        self.window_s = window_s
        self.budget_w = budget_w
        self.t0 = t0_unix - _Y2K
        self.key = None
        self.n = self.ws = self.ctl_ws = 0
        self.peak_w = 0
        self.over = self.over_ctl = 0

    def add(self, t, total_w, ctl_w):
        k = (self.t0 + t) // self.window_s
        if k != self.key:
            self.close()
            self.key = k
        self.n += 1
        self.ws += total_w if total_w > 0 else 0
        self.ctl_ws += ctl_w

    def close(self):
        w = self.window_s
        if self.key is not None and self.n == w:
            avg = self.ws // w
            if avg > self.peak_w:
                self.peak_w = avg
            if avg > self.budget_w:
                self.over += 1
                if self.ctl_ws >= self.ws - self.budget_w * w:
                    self.over_ctl += 1
        self.key = None
        self.n = self.ws = self.ctl_ws = 0


def main():
    rows_path = sys.argv[1]
    strategy = sys.argv[2]
    trace_path = sys.argv[3] if len(sys.argv) > 3 else None
    f = open(rows_path)
    hdr = json.loads(f.readline())
    limit_w = hdr["limit_w"]
    volts = hdr["volts"]
    trace_step = hdr["trace_step_s"]
    loads = [SimLoad(spec, hdr["ev_delay_s"]) for spec in hdr["loads"]]
    n = len(loads)
    clock = FakeClock(30000)     # simulated ms ticks, 30 s before the wrap
    ctl = None
    window_min = hdr.get("window_min")
    windows = Windows(window_min * 60, hdr["budget_w"], hdr["t0_unix"]) if window_min else None
    wall = [hdr.get("t0_unix", 0)]     # the demand window's wall clock: unix s at step t
    demand = None
    duty_metrics = Duty(limit_w * 100 // 80) if hdr.get("duty") else None
    duty_src = None
    if strategy == "panelcap":
        try:
            ctl, ctl_loads, meas, limits = build_panelcap(hdr, loads, clock)
            if window_min:
                # The firmware's own demand-window source on the same limits (demand.py).
                import demand as demand_mod
                demand = demand_mod.DemandWindow(limits, clock, lambda: wall[0], window_min,
                                                 hdr["budget_w"], log=lambda m: None)
            if hdr.get("duty"):
                import duty
                duty_src = duty.DutyWindow(limits, clock, limit_w * 100 // 80, ctl_loads)
        except ValueError as e:
            # shed.py's own checks on the controller's settings: an option's mistake, one
            # line ("error: band_pct must be an int in 1..50 %, got 99"), exit 2
            msg = str(e)
            sys.stderr.write(("" if msg.startswith("error: ") else "error: ") + msg + "\n")
            sys.exit(2)
    elif strategy not in ("no_control", "current_shaper"):
        raise SystemExit("unknown strategy " + strategy)
    evs = [ld for ld in loads if ld.kind == "ev"]
    tf = open(trace_path, "w") if trace_path else None

    # Metrics.
    over_s = over_ctl_s = over_base_s = 0
    over_ws = 0
    run = run_max = crun = crun_max = 0
    n_exc = n_cexc = 0
    gap_s = 0
    steps = 0
    # Trace accumulators.
    acc_n = acc_base = acc_tot = acc_max = 0
    acc_draw = [0] * n
    acc_t = 0

    has_pv = bool(hdr.get("pv"))
    off = 3 if has_pv else 2           # a row: t base [pv] demand...
    pv = [0]
    # Export counted above the limit acted on, or above one only measured (--export-measure-w).
    exp_lim = hdr.get("export_limit_w", hdr.get("export_measure_w"))
    export_ws = export_over_ws = export_over_s = export_over_room_s = 0
    pv_ws = surplus_ws = soak_import_ws = curtailed_ws = 0
    exp_run = exp_run_max = 0
    soaker = getattr(ctl, "soaker", None) if ctl is not None else None
    inverter = soaker.curtail.source if soaker is not None and soaker.curtail else None

    def apply(parts):
        b = None if parts[1] == "x" else int(parts[1])
        if has_pv:
            pv[0] = int(parts[2])
        for i in range(n):
            loads[i].demand = int(parts[off + i])
        return b

    parts = f.readline().split()
    if not parts or parts[0] == "end":
        raise SystemExit("no rows")
    base = apply(parts)
    parts = f.readline().split()
    nxt_t = int(parts[1]) if parts[0] == "end" else int(parts[0])
    at_end = parts[0] == "end"
    t = 0
    while True:
        # Take the row in force at second t (the base is held between rows).
        while not at_end and nxt_t <= t:
            base = apply(parts)
            parts = f.readline().split()
            at_end = parts[0] == "end"
            nxt_t = int(parts[1]) if at_end else int(parts[0])
        if at_end and t >= nxt_t:
            break
        valid = base is not None
        b_now = base if valid else 0
        pv_out = inverter.tick(t, pv[0]) if inverter is not None else pv[0]
        curtailed_ws += pv[0] - pv_out
        total = b_now - pv_out if valid else 0
        ctl_on = False
        soak_s = 0
        for ld in loads:
            s0 = ld.soaked_ws
            dw = ld.step(t)
            soak_s += ld.soaked_ws - s0
            total += dw
            if dw > 0:
                ctl_on = True
        steps += 1
        if has_pv and valid:
            pv_ws += pv[0]
            # Soaked from surplus: what would have been exported without the soak's draw;
            # the rest of the soak came from the grid.
            spare = soak_s - total
            spare = 0 if spare < 0 else spare if spare < soak_s else soak_s
            surplus_ws += spare
            soak_import_ws += soak_s - spare
            if exp_lim is None or -total <= exp_lim:
                exp_run = 0
            if total < 0:
                export_ws -= total
                if exp_lim is not None and -total > exp_lim:
                    export_over_ws += -total - exp_lim
                    export_over_s += 1
                    exp_run += 1
                    if exp_run > exp_run_max:
                        exp_run_max = exp_run
                    for ld in loads:
                        if ld.store_ws and ld.stored < ld.store_ws and ld.draw < ld.rated_w:
                            export_over_room_s += 1     # a tank or battery had room
                            break
        if not valid:
            gap_s += 1
        if total > limit_w:
            over_s += 1
            over_ws += total - limit_w
            run += 1
            if run == 1:
                n_exc += 1
            if run > run_max:
                run_max = run
            if ctl_on:
                over_ctl_s += 1
                crun += 1
                if crun == 1:
                    n_cexc += 1
                if crun > crun_max:
                    crun_max = crun
            else:
                over_base_s += 1
                crun = 0
        else:
            run = 0
            crun = 0
        if windows is not None:
            windows.add(t, total, total - b_now)
        if duty_metrics is not None:
            duty_metrics.add(total, b_now - pv_out)   # the base net of any PV, as total is
        # The strategy decides from this second's measurement.
        if strategy == "panelcap":
            clock.advance(1000)
            if demand is not None and valid:
                wall[0] = hdr["t0_unix"] + t
                demand.step(total)
            for i in range(n):
                ctl_loads[i].measured_w = loads[i].draw
            if duty_src is not None and valid:
                duty_src.step(total)     # after the loads' draws: it keeps the base apart
            meas.valid = valid
            meas.t_ms = clock.t
            meas.total_w = total
            ctl.update(meas)
            for i in range(n):
                sl = ctl_loads[i]
                ld = loads[i]
                if ld.kind == "ev":
                    ld.command(sl.setpoint_a > 0, sl.setpoint_a * ld.volts)
                else:
                    ld.command(sl.on, ld.rated_w)
                ld.soak_w = sl.soak_w
        elif strategy == "current_shaper":
            for ld in evs:
                # OpenEVSE's shaper: EV amps = (limit - house power without the EV) / volts.
                a = (limit_w - (total - ld.draw)) // volts
                if a > ld.max_a:
                    a = ld.max_a
                if a < ld.min_a:
                    ld.command(False, 0)
                else:
                    ld.command(True, a * ld.volts)
        for ld in loads:
            if strategy == "no_control":
                ld.command(True, ld.rated_w)
            ld.advance()
        if tf is not None:
            acc_n += 1
            acc_base += b_now
            acc_tot += total
            if total > acc_max:
                acc_max = total
            for i in range(n):
                acc_draw[i] += loads[i].draw
            if acc_n == trace_step:
                tf.write("%d %d %d %d %s\n" % (acc_t, acc_base // acc_n, acc_tot // acc_n, acc_max,
                                               " ".join(str(x // acc_n) for x in acc_draw)))
                acc_t = t + 1
                acc_n = acc_base = acc_tot = acc_max = 0
                for i in range(n):
                    acc_draw[i] = 0
        t += 1
    if tf is not None:
        if acc_n:
            tf.write("%d %d %d %d %s\n" % (acc_t, acc_base // acc_n, acc_tot // acc_n, acc_max,
                                           " ".join(str(x // acc_n) for x in acc_draw)))
        tf.close()
    out_loads = {}
    for ld in loads:
        late = ld.late_s
        if ld.behind:
            late = max(late, t - ld.last_demand_t)
        out_loads[ld.name] = {
            "asked_wh": round(ld.asked_ws / _WS_PER_WH, 1),
            "delivered_wh": round(ld.delivered_ws / _WS_PER_WH, 1),
            "unfinished_wh": round(ld.owed / _WS_PER_WH, 1),
            "late_s": late,
            "late_sessions": ld.sessions_late + (1 if ld.behind else 0),
            "switch_ops": ld.switch_ops,
            "adjust_ops": ld.adjust_ops,
        }
        if ld.store_ws:
            out_loads[ld.name]["soaked_wh"] = round(ld.soaked_ws / _WS_PER_WH, 1)
    res = {
        "steps": steps,
        "gap_s": gap_s,
        "over_s": over_s,
        "over_controllable_s": over_ctl_s,
        "over_base_only_s": over_base_s,
        "over_wh": round(over_ws / _WS_PER_WH, 2),
        "longest_excursion_s": run_max,
        "longest_controllable_excursion_s": crun_max,
        "excursions": n_exc,
        "controllable_excursions": n_cexc,
        "loads": out_loads,
    }
    if ctl is not None:
        res["failsafe_count"] = ctl.failsafe_count
    if has_pv:
        res["pv_wh"] = round(pv_ws / _WS_PER_WH, 1)
        res["export_wh"] = round(export_ws / _WS_PER_WH, 1)
        res["soaked_wh"] = round(surplus_ws / _WS_PER_WH, 1)
        res["soak_import_wh"] = round(soak_import_ws / _WS_PER_WH, 1)
        if exp_lim is not None:
            res["export_over_wh"] = round(export_over_ws / _WS_PER_WH, 1)
            res["export_over_s"] = export_over_s
            res["export_over_room_s"] = export_over_room_s
            res["export_over_longest_s"] = exp_run_max
        if inverter is not None:
            res["curtailed_wh"] = round(curtailed_ws / _WS_PER_WH, 1)
    if duty_metrics is not None:
        res["longest_over_80pct_s"] = run_max
        res["over_100pct_s"] = duty_metrics.over_100_s
        res["longest_over_100pct_s"] = duty_metrics.longest_100
        res["over_100pct_controllable_s"] = duty_metrics.over_100_ctl_s
        res["longest_over_100pct_controllable_s"] = duty_metrics.longest_100_ctl
        res["worst_3h_avg_pct"] = duty_metrics.pct(duty_metrics.worst)
        res["worst_3h_avg_pct_base"] = duty_metrics.pct(duty_metrics.bworst)
        res["worst_3h_avg_pct_controllable"] = duty_metrics.pct(duty_metrics.cworst)
        res["over_80pct_3h_controllable_s"] = duty_metrics.ctl_over_s
    if windows is not None:
        windows.close()
        res["peak_window_kw"] = round(windows.peak_w / 1000, 2)
        res["over_budget_windows"] = windows.over
        res["over_budget_windows_controllable"] = windows.over_ctl
    print(json.dumps(res))


try:
    main()
except Exception as e:      # a bug: the traceback on stderr, where tools/sim.py looks
    sys.print_exception(e, sys.stderr)
    sys.exit(1)
