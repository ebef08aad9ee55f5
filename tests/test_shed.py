"""firmware/shed.py, rule by rule, under the MicroPython unix port (fake clock across the wrap)."""
import ast
import subprocess
from pathlib import Path

import pytest

from conftest import HOST_MARCH, HOST_MPY_CROSS, MPY_CROSS, ROOT, run_mpy

# A fake clock that wraps at 2**30 like the ESP32's, started just below the wrap, and a small
# panel model: each load draws what its command allows (capped by what it wants), after an
# optional response delay; the base is given per leg at 120 V.
PRELUDE = r"""
import gc
from limits import Limits
from loadkind import KIND_ONOFF, KIND_MODULATED, KIND_NEVER
from shed import Load, Controller, Measurement

from fakeclock import FakeClock

def check(cond, msg):
    if not cond:
        raise Exception("FAILED: " + msg)

class Rig:
    def __init__(self, loads, limits, base_w=0, delays=None, **kw):
        self.clock = FakeClock(3000)
        self.loads = loads
        self.ctl = Controller(loads, limits, self.clock, **kw)
        self.m = Measurement()
        self.base_l1 = base_w // 2
        self.base_l2 = base_w - base_w // 2
        self.want = {l.name: l.rated_w for l in loads}
        self.delays = delays or {}
        # A command is in force `delay` steps after the update that gave it (1: the next step).
        self.pipes = {l.name: [0] * self.delays.get(l.name, 1) for l in loads}
        self.total = 0
        self.valid = True
        self.meas_age_ms = 0
        self.updates = 0

    def set_base(self, w, l2=None):
        if l2 is None:
            self.base_l1 = w // 2
            self.base_l2 = w - w // 2
        else:
            self.base_l1 = w
            self.base_l2 = l2

    def allowed(self, l):
        if l.kind == KIND_NEVER:
            return l.rated_w
        if l.kind == KIND_ONOFF:
            return l.rated_w if l.on else 0
        return min(l.setpoint_a * l.volts, l.rated_w)

    def step(self, n=1):
        for _ in range(n):
            self.clock.advance(1000)
            tot = self.base_l1 + self.base_l2
            l1 = self.base_l1 * 1000 // 120
            l2 = self.base_l2 * 1000 // 120
            for l in self.loads:
                cap = self.pipes[l.name].pop(0)
                d = min(cap, self.want[l.name])
                l.measured_w = d
                tot += d
                ma = d * 1000 // l.volts
                if l.on_l1:
                    l1 += ma
                if l.on_l2:
                    l2 += ma
            self.total = tot
            self.m.valid = self.valid
            self.m.t_ms = self.clock.ticks_add(self.clock.t, -self.meas_age_ms)
            self.m.total_w = tot
            self.m.leg_ma[0] = l1
            self.m.leg_ma[1] = l2
            self.ctl.update(self.m)
            for l in self.loads:
                self.pipes[l.name].append(self.allowed(l))
            self.updates += 1

    def settle(self, s=120):
        self.step(s)

def ev(name="ev", prio=9, **kw):
    kw.setdefault("min_on_s", 0)
    return Load(name, KIND_MODULATED, prio, "L1L2", 7680, **kw)

def onoff(name, prio, w, leg="L1L2", volts=240, **kw):
    kw.setdefault("min_on_s", 0)
    kw.setdefault("min_off_s", 0)
    return Load(name, KIND_ONOFF, prio, leg, w, volts=volts, **kw)
"""


def mpy(scenario, **kw):
    proc = run_mpy(PRELUDE + scenario + "\nprint('OK')\n", check=False, **kw)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr
    return proc.stdout


# --- 1. limits -----------------------------------------------------------------------------

def test_default_setpoint_is_80_percent_and_above_is_rejected():
    mpy(r"""
lim = Limits(rating_a=100)
check(lim.effective_a() == 80, "default 80 % of 100 A")
check(lim.effective_w() is None, "no total-watt limit unless asked")
for kw in ({"rating_a": 100, "setpoint_a": 81}, {"rating_a": 100, "setpoint_w": 19201}):
    try:
        Limits(**kw)
        check(False, "accepted a setpoint above 80 %: " + repr(kw))
    except ValueError as e:
        check("80%" in str(e), str(e))
check(Limits(rating_a=100, setpoint_w=19200).effective_w() == 19200, "80 % of 2 x 120 V x 100 A")
""")


def test_shed_and_restore_thresholds_follow_the_band():
    mpy(r"""
for band, restore in ((5, 6840), (10, 6480)):
    r = Rig([onoff("wh", 1, 4500)], Limits(setpoint_w=7200, band_pct=band), base_w=500)
    r.step()
    check(r.ctl.limit_w == 7200 and r.ctl.shed_w == 7200, "shed threshold is the limit")
    check(r.ctl.restore_w == restore, "restore %r for band %d" % (r.ctl.restore_w, band))
r = Rig([onoff("wh", 1, 4500)], Limits(setpoint_a=40), base_w=500)
r.step()
check(r.ctl.shed_ma == 40000 and r.ctl.restore_ma == 38000 and r.ctl.limit_w is None, "per-leg")
""")


def test_big_uncontrolled_load_holds_the_target_down():
    mpy(r"""
# 100 A service, 120/240 V: a 9,600 W shower on both legs draws 40 A per leg (40 % > 20 %).
lim = Limits(rating_a=100, big_uncontrolled_w=9600)
check(lim.effective_a() == 60, "60 A so that 60 + 40 stays at 100 A, got %r" % lim.effective_a())
# A 20 % load needs no reduction: 80 + 20 = 100.
check(Limits(rating_a=100, big_uncontrolled_w=4800).effective_a() == 80, "20 % load")
# A 3,000 W single-leg load is 25 A on its leg.
check(Limits(rating_a=100, big_uncontrolled_w=3000, big_uncontrolled_leg="L1").effective_a() == 75, "leg")
# Listed as a never-shed load on the controller's list, it counts the same way.
shower = Load("shower", KIND_NEVER, 1, "L1L2", 9600)
r = Rig([shower, onoff("wh", 2, 4500)], Limits(rating_a=100))
r.step()
check(r.ctl.limit_ma == 60000, "controller limit %r" % r.ctl.limit_ma)
""")


def test_big_uncontrolled_load_on_a_single_phase_panel():
    mpy(r"""
# 230 V / 100 A single phase: 23,000 W rating, 18,400 W at 80 %. A 9 kW never-shed shower
# starting by surprise must leave the panel at or under 23,000 W: the target is 14,000 W.
lim = Limits(rating_a=100, volts=230, system="single", setpoint_w=18400,
             big_uncontrolled_w=9000, big_uncontrolled_leg="L1")
check(lim.effective_w() == 14000, "single phase: 23000 - 9000, got %r" % lim.effective_w())
shower = Load("shower", KIND_NEVER, 1, "L1", 9000, volts=230)
r = Rig([shower, onoff("wh", 2, 3000, leg="L1", volts=230)],
        Limits(rating_a=100, volts=230, system="single", setpoint_w=18400))
r.step()
check(r.ctl.limit_w == 14000, "controller limit %r" % r.ctl.limit_w)
# In amps: 9000 W at 230 V is 39.1 A on the one leg, so 80 A drops to 60.8 A.
lim = Limits(rating_a=100, volts=230, system="single", big_uncontrolled_w=9000,
             big_uncontrolled_leg="L1")
check(lim.effective(0)[1] == 60870, "per leg %r" % (lim.effective(0)[1],))
# 80 % of one leg, not two; a panel with one leg has no L2 or L1L2.
for kw in ({"setpoint_w": 18401}, {"big_uncontrolled_w": 9000}):
    try:
        Limits(rating_a=100, volts=230, system="single", **kw)
        check(False, "accepted " + repr(kw))
    except ValueError as e:
        check(str(e) in ("error: setpoint_w must be at most 80% of the rating (18400 W), got 18401",
                         "error: leg 'L1L2': a single-phase system has only leg L1"), str(e))
# Split phase, the same 9 kW on both legs: 24,000 - 9,000 = 15,000 W (unchanged).
check(Limits(rating_a=100, setpoint_w=19200, big_uncontrolled_w=9000).effective_w() == 15000,
      "split phase")
""")


def test_strictest_limit_wins_and_nothing_raises_the_installer_setpoint():
    mpy(r"""
c = FakeClock(3000)
lim = Limits(setpoint_w=7200, clock=c)
lim.set("grid", w=5000)
lim.set("schedule", w=6000)
check(lim.effective_w() == 5000, "grid is strictest")
lim.clear("grid")
check(lim.effective_w() == 6000, "schedule next")
lim.set("schedule", w=99999)
check(lim.effective_w() == 7200, "a source cannot raise the installer setpoint")
lim.set("grid", w=4000, until_ms=c.ticks_add(c.t, 10000))   # expires after the wrap
check(lim.effective_w() == 4000, "timed grid limit")
c.advance(9999)
check(lim.effective_w() == 4000, "still in force")
c.advance(1)
check(lim.effective_w() == 7200 and lim.sources() == ["schedule"], "expired")
# Through the controller: a grid limit sheds, its expiry lets loads back.
r = Rig([onoff("wh", 1, 4500)], Limits(setpoint_w=7200), base_w=1000, settle_s=5, stagger_s=5)
r.settle(30)
check(r.loads[0].on, "heater on under 7200 W")
r.ctl.limits.set("grid", w=3000, until_ms=r.clock.ticks_add(r.clock.t, 60000))
r.step()
check(r.ctl.limit_w == 3000 and not r.loads[0].on, "grid limit shed the heater")
r.step(80)
check(r.ctl.limit_w == 7200 and r.loads[0].on, "heater back after the grid limit expired")
""")


def test_a_queued_limit_takes_its_sources_name_at_the_boundary():
    # grid.py queues a source's next value as "x>" for x's boundary: from that tick on it is
    # x, so telemetry never names the queued entry as the limit in force.
    mpy(r"""
c = FakeClock(3000)
lim = Limits(setpoint_w=7200, clock=c)
edge = c.ticks_add(c.t, 5000)                   # the boundary falls after the tick wrap
lim.set("grid", w=5000, until_ms=edge)
lim.set("grid>", w=4000, from_ms=edge)
check(lim.effective_w() == 5000 and lim.strictest() == "grid", "before the boundary")
check(lim.in_force_w() == {"grid": 5000}, "queued value not in force: %r" % lim.in_force_w())
c.advance(5000)
check(lim.effective_w() == 4000, "the queued value at the boundary")
check(lim.strictest() == "grid" and lim.sources() == ["grid"], lim.sources())
check(lim.in_force_w() == {"grid": 4000}, lim.in_force_w())
lim.set("grid>", w=3000, from_ms=c.ticks_add(c.t, 1000))   # queued, with grid open-ended
c.advance(1000)
check(lim.effective_w() == 3000 and lim.sources() == ["grid"], lim.sources())
""")


# --- 2. one priority list, legs, relief only from loads that draw ------------------------

def test_only_loads_drawing_power_count_as_relief():
    mpy(r"""
wh = onoff("wh", 9, 4500)          # lowest priority, but its thermostat is satisfied
pump = onoff("pump", 5, 1500)
r = Rig([wh, pump], Limits(setpoint_w=7200), base_w=500, settle_s=1, stagger_s=1)
r.want["wh"] = 0
r.settle(10)
check(wh.on and pump.on, "both on")
r.set_base(6500)
r.step()
check(wh.on, "idle heater left on: switching it off relieves nothing")
check(not pump.on, "the drawing pump was shed")
check(wh.switch_ops == 1 and pump.switch_ops == 2, "ops %d %d" % (wh.switch_ops, pump.switch_ops))
""")


def test_never_shed_loads_are_never_touched():
    mpy(r"""
fridge = Load("fridge", KIND_NEVER, 99, "L1", 800, volts=120)
wh = onoff("wh", 1, 4500)
r = Rig([fridge, wh], Limits(setpoint_w=5000), base_w=1000, settle_s=1, stagger_s=1)
r.settle(10)
r.set_base(6000)
r.step(5)
check(fridge.on and fridge.switch_ops == 0, "never-shed load untouched")
check(not wh.on, "heater shed")
check(r.ctl.state == "overload", "nothing left to shed: %s" % r.ctl.state)
""")


def test_per_leg_limit_checked_on_the_worse_leg():
    mpy(r"""
# 40 A per leg. L1 is lightly loaded; L2 is near its limit.
l1_load = onoff("l1_heater", 9, 1800, leg="L1", volts=120)   # lowest priority, on L1 only
l2_load = onoff("l2_heater", 5, 1800, leg="L2", volts=120)
r = Rig([l1_load, l2_load], Limits(setpoint_a=40), settle_s=1, stagger_s=1)
r.set_base(600, 2400)
r.settle(10)
check(l1_load.on and l2_load.on, "both on")
r.set_base(600, 3600)              # L2: 30 A base + 15 A heater = 45 A > 40 A
r.step()
check(r.m.leg_ma[0] < 40000 < r.m.leg_ma[1], "only L2 over")
check(l1_load.on, "the L1 load does not help L2: left on despite lowest priority")
check(not l2_load.on, "L2 load shed")
# A 240 V load relieves both legs: 20 A per leg from 4800 W.
evl = ev(prio=9, min_a=6, max_a=32)
r = Rig([evl], Limits(setpoint_a=40), settle_s=1, stagger_s=1)
r.set_base(1200, 1200)             # 10 A per leg
r.settle(60)
check(evl.setpoint_a == 28, "EV fills to the 38 A restore level: %d" % evl.setpoint_a)
r.set_base(1200, 3600)             # L2 now 30 A + 28 A
r.step()
check(evl.setpoint_a == 8, "EV cut to fit the worse leg: %d" % evl.setpoint_a)
""")


def test_restore_waits_until_the_room_has_lasted_the_settle_time():
    mpy(r"""
wh = onoff("wh", 5, 4500)
r = Rig([wh], Limits(setpoint_w=7200), settle_s=10, stagger_s=1)
r.set_base(1000)
r.settle(60)
check(wh.on, "on with room")
r.set_base(6000)                   # 6 kW + 4.5 kW: over
r.step(2)
check(not wh.on, "shed")
r.step(30)
r.set_base(1000)                   # room for 5 s only (a kettle cycling off and on)
r.step(5)
check(not wh.on, "a 5 s dip restores nothing")
r.set_base(6000)
r.step(3)
r.set_base(1000)                   # room for good
r.step(9)
check(not wh.on, "not before 10 s of room")
r.step(3)
check(wh.on, "restored once the room lasted settle_s")
""")


# --- 3. fast down, slow up -----------------------------------------------------------------

def test_fast_down_sheds_several_loads_in_one_step():
    mpy(r"""
a = onoff("a", 1, 2000)
b = onoff("b", 2, 2000)
c = onoff("c", 3, 2000)
r = Rig([a, b, c], Limits(setpoint_w=9000), base_w=1000, settle_s=1, stagger_s=1)
r.settle(20)
check(a.on and b.on and c.on, "all on")
r.set_base(6500)                    # 12,500 W: needs 3,500 W off now
r.step()
check(not c.on and not b.on and a.on, "two lowest shed in one update")
check(r.ctl.projected_w <= 9000, "projected under the limit")
""")


def test_modulated_load_goes_down_by_whole_amps_and_pauses_below_its_floor():
    mpy(r"""
e = ev(min_a=6, max_a=32)
r = Rig([e], Limits(setpoint_w=7200), base_w=500, settle_s=1, stagger_s=1)
r.settle(120)
check(e.setpoint_a == 26, "fills to restore 6840 W: (6840-500)//240 = 26, got %d" % e.setpoint_a)
r.set_base(1500)                   # +1000 W
r.step()
check(e.setpoint_a == 22, "down to (6840-1500)//240 = 22, got %d" % e.setpoint_a)
check(r.ctl.projected_w <= r.ctl.restore_w, "projected at restore level")
r.set_base(6000)                   # room for 840 W: under the 6 A floor -> pause
r.step()
check(e.setpoint_a == 0 and not e.on, "paused, got %d" % e.setpoint_a)
r.set_base(5300)                   # 1,540 W under the restore level: the 6 A floor fits
r.step(400)
check(e.setpoint_a == 6, "resumed at the floor %d" % e.setpoint_a)
""")


def test_slow_up_one_load_per_settle_time_highest_priority_first():
    mpy(r"""
a = onoff("a", 1, 1000)
b = onoff("b", 2, 1000)
c = onoff("c", 3, 1000)
e = ev(prio=4, ramp_step_a=2)
r = Rig([c, e, a, b], Limits(setpoint_w=20000), base_w=500, settle_s=10, stagger_s=10)
r.step()     # first valid data: recovery starts
order = []
times = []
prev = {}
for s in range(400):
    r.step()
    for l in (a, b, c, e):
        st = (l.on, l.setpoint_a)
        if prev.get(l.name) is not None and prev[l.name] != st:
            order.append((l.name, l.setpoint_a))
            times.append(s)
        prev[l.name] = st
check([n for n, _ in order[:3]] == ["a", "b", "c"], "priority order %r" % order)
check(all(t2 - t1 >= 10 for t1, t2 in zip(times, times[1:])), "one change per settle %r" % times)
steps = [sp for n, sp in order if n == "ev"]
check(steps[0] == 6 and all(b2 - b1 <= 2 for b1, b2 in zip(steps, steps[1:])), "ramp %r" % steps)
check(steps[-1] == 32, "EV reaches its max")
""")


def test_restore_only_if_expected_draw_fits():
    mpy(r"""
wh = onoff("wh", 2, 4500)
pump = onoff("pump", 1, 1000)
r = Rig([wh, pump], Limits(setpoint_w=7200), base_w=3500, settle_s=5, stagger_s=5)
r.settle(120)
check(not wh.on, "4500 W does not fit in 6840 - 3500")
check(pump.on, "the pump that fits came back")
r.set_base(1500)   # 1500 + 1000 pump + 4500 = 7000 > 6840: still no
r.settle(60)
check(not wh.on, "needs room under the restore threshold, not the limit")
r.set_base(1300)
r.settle(60)
check(wh.on, "fits now")
""")


def test_higher_priority_load_takes_room_from_a_lower_one():
    mpy(r"""
wh = onoff("wh", 1, 4500, min_off_s=30)
e = ev(prio=2)
r = Rig([wh, e], Limits(setpoint_w=7200), base_w=3000, settle_s=5, stagger_s=5)
r.settle(200)
check(not wh.on and e.setpoint_a >= 6, "EV charging, heater waiting")
r.set_base(500)
r.settle(30)
check(e.setpoint_a > 6, "EV ramped into the room")
r.settle(300)
check(wh.on, "heater back: it outranks the EV")
check(r.total <= 7200, "under the limit")
""")


def test_idle_higher_priority_contactor_keeps_its_room():
    mpy(r"""
wh = onoff("wh", 1, 4500)
e = ev(prio=2)
r = Rig([wh, e], Limits(setpoint_w=7200), base_w=500, settle_s=2, stagger_s=2)
r.want["wh"] = 0                    # thermostat satisfied
r.settle(300)
check(wh.on, "heater enabled")
check(e.setpoint_a * 240 <= 6840 - 500 - 4500, "EV leaves the heater's room: %d A" % e.setpoint_a)
r.want["wh"] = 4500                 # thermostat calls: no excursion
peak = 0
for _ in range(30):
    r.step()
    peak = max(peak, r.total)
check(peak <= 7200, "surprise start stayed under the limit: %d" % peak)
""")


def test_ev_response_delay_does_not_cause_extra_shedding():
    mpy(r"""
wh = onoff("wh", 1, 2000)
e = ev(prio=2)
r = Rig([wh, e], Limits(setpoint_w=7200), base_w=500, delays={"ev": 5}, settle_s=10, stagger_s=10)
r.settle(400)
check(wh.on and e.setpoint_a > 10, "both running")
r.set_base(1500)
r.step()
sp = e.setpoint_a
r.step(8)
check(wh.on, "heater not shed while the EV is still answering")
check(e.setpoint_a == sp, "no second cut: %d then %d" % (sp, e.setpoint_a))
check(r.total <= 7200, "settled under the limit after the delay")
""")


# --- 4. no chattering -----------------------------------------------------------------------

def test_min_on_and_min_off_times():
    mpy(r"""
a = onoff("a", 1, 2000, min_on_s=0, min_off_s=120)
b = onoff("b", 2, 2000, min_on_s=300, min_off_s=0)
r = Rig([a, b], Limits(setpoint_w=7200), base_w=1000, settle_s=1, stagger_s=1)
r.settle(10)
check(a.on and b.on, "both on")
# b was switched on under 300 s ago: a small overload takes a (higher priority) instead.
r.set_base(3600)
r.step()
check(b.on and not a.on, "b kept for its min on time; a shed")
check(b.forced_ops == 0, "nothing forced")
r.set_base(1000)
r.step(100)
check(not a.on, "a stays off for its 120 s min off time")
r.step(30)
check(a.on, "a back after min off")
# With nothing else to shed, the limit wins over min_on, and that is counted.
r.set_base(6000)
r.step()
check(not a.on and not b.on, "both shed")
check(b.forced_ops == 1, "b's min on overridden to hold the limit")
""")


def test_ev_resume_pause_default_five_minutes():
    mpy(r"""
e = ev()
check(e.resume_pause_ms == 300000, "default 5 min")
r = Rig([e], Limits(setpoint_w=7200), base_w=500, settle_s=1, stagger_s=1)
r.settle(60)
r.set_base(7000)
r.step()
check(e.setpoint_a == 0, "paused")
r.set_base(500)
paused = 0
while e.setpoint_a == 0 and paused < 1000:
    r.step()
    paused += 1
check(299 <= paused <= 302, "resumed after the 300 s pause, took %d s" % paused)
""")


def test_switching_operations_capped_per_hour():
    mpy(r"""
a = onoff("a", 1, 3000, max_ops_per_h=4)
r = Rig([a], Limits(setpoint_w=7200), base_w=1000, settle_s=1, stagger_s=1)
r.step(5)
times = []
for minute in range(180):          # base swings across the limit every 30 s for 3 hours
    for half in range(2):
        r.set_base(5000 if half else 1000)
        before = a.switch_ops
        r.step(30)
        if a.switch_ops != before:
            times.append(r.updates)
worst = 0
for i, t in enumerate(times):
    n = len([u for u in times[i:] if u - t < 3600])
    worst = max(worst, n)
check(worst <= 4, "%d ops within an hour" % worst)
check(a.switch_ops >= 10, "still switches, hour after hour: %d" % a.switch_ops)
check(r.total <= 7200 or not a.on, "never left on over the limit")
""")


# --- 5. fail safe -----------------------------------------------------------------------------

def test_invalid_or_stale_measurement_sheds_everything_then_staggers_back():
    mpy(r"""
a = onoff("a", 1, 1000, min_on_s=600)
b = onoff("b", 2, 1000)
e = ev(prio=3)
fridge = Load("fridge", KIND_NEVER, 4, "L1", 200, volts=120)
for how in ("invalid", "stale"):
    r = Rig([a, b, e, fridge], Limits(setpoint_w=20000), base_w=500, stale_ms=5000,
            settle_s=1, stagger_s=20)
    r.settle(400)
    check(a.on and b.on and e.setpoint_a == 32, "all running")
    if how == "invalid":
        r.valid = False
    else:
        r.meas_age_ms = 5001
    r.step()
    check(not a.on and not b.on, how + ": contactors shed (min on overridden)")
    check(e.setpoint_a == 6, how + ": EV at its floor, got %d" % e.setpoint_a)
    check(fridge.on and r.ctl.state == "failsafe", how + ": state %s" % r.ctl.state)
    r.step(30)
    r.valid = True
    r.meas_age_ms = 4000            # 4 s old is still fresh
    changes = []
    last = (a.on, b.on, e.setpoint_a)
    for s in range(200):
        r.step()
        now = (a.on, b.on, e.setpoint_a)
        if now != last:
            changes.append(s)
        last = now
    check(len(changes) >= 3, how + ": loads came back %r" % changes)
    check(changes[0] >= 19, how + ": first after the stagger %r" % changes)
    check(all(t2 - t1 >= 20 for t1, t2 in zip(changes, changes[1:])), how + ": %r" % changes)
""")


# --- 6. ticks wrap, long runs, allocation, purity ---------------------------------------------

def test_timers_survive_days_without_switching():
    mpy(r"""
a = onoff("a", 1, 3000, min_off_s=60)
r = Rig([a], Limits(setpoint_w=7200), base_w=1000, settle_s=1, stagger_s=1)
r.settle(10)
r.set_base(6000)
r.step()
check(not a.on, "shed")
# Seven days above the restore level, one update every 10 s: longer than ticks_diff can span.
for _ in range(7 * 8640):
    r.clock.advance(9000)
    r.step()
check(not a.on, "still shed")
r.set_base(1000)
r.step(3)
check(a.on, "restored at once: its min off time is long past")
""")


def test_steady_update_allocates_nothing():
    mpy(r"""
a = onoff("a", 1, 1000)
e = ev(prio=2)
r = Rig([a, e], Limits(setpoint_w=7200, setpoint_a=40), base_w=500, settle_s=1, stagger_s=1)
r.settle(300)
ctl = r.ctl
m = r.m
clock = r.clock
gc.collect()
gc.disable()
before = gc.mem_alloc()
for i in range(2000):
    clock.t = clock.ticks_add(clock.t, 100)
    m.t_ms = clock.t
    ctl.update(m)
after = gc.mem_alloc()
gc.enable()
check(after == before, "allocated %d bytes in 2000 updates" % (after - before))
""")


def _imports(name):
    src = (ROOT / "firmware" / (name + ".py")).read_text()
    imported = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    return src, imported


def test_shed_is_pure_and_builds_for_the_esp32(tmp_path):
    src, imported = _imports("shed")
    # its constructors' half, the limits it holds the panel under, the load kinds
    assert imported <= {"micropython", "shedsetup", "limits", "loadkind"}, imported
    setup_src, setup_imported = _imports("shedsetup")
    # never shed or limits, which import it to build themselves (tests/test_imports.py)
    assert setup_imported <= {"panelrules", "loadkind"}, setup_imported
    rule_src, rule_imported = _imports("limits")
    # the limit sources: pure ints, their constructor's checks apart
    assert rule_imported <= {"micropython", "shedsetup", "panelrules"}, rule_imported
    panel_src, panel_imported = _imports("panelrules")
    # the capacity rules: pure ints
    assert panel_imported <= {"micropython"}, panel_imported
    kind_src, kind_imported = _imports("loadkind")
    assert kind_imported <= {"micropython"}, kind_imported
    for text in (src, setup_src, rule_src, panel_src, kind_src):
        assert "assert " not in text     # runtime checks raise; mpy-cross -O1 strips asserts
    out = tmp_path / "shed.mpy"
    subprocess.run([MPY_CROSS, "-march=xtensawin", "-o", str(out), str(ROOT / "firmware" / "shed.py")],
                   check=True)
    # The same scenario from a cross-compiled .mpy (-O1, as shipped; host bytecode).
    host = tmp_path / "host"
    host.mkdir()
    subprocess.run([HOST_MPY_CROSS, "-O1", "-march=" + HOST_MARCH, "-o", str(host / "shed.mpy"), str(ROOT / "firmware" / "shed.py")],
                   check=True)
    code = ("import sys\nsys.path.insert(0, %r)\n" % str(host)) + PRELUDE + r"""
check(sys.modules["shed"].__file__.endswith(".mpy"), "loaded " + sys.modules["shed"].__file__)
e = ev()
r = Rig([e], Limits(setpoint_w=7200), base_w=500, settle_s=1, stagger_s=1)
r.settle(120)
check(e.setpoint_a == 26, "same result from the .mpy")
check("machine" not in sys.modules, "no machine")
print("OK")
"""
    proc = run_mpy(code, check=False)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr


def test_bad_configuration_raises_readable_errors():
    mpy(r"""
for args, kw, word in ((("x", 7, 1, "L1", 100), {}, "kind"),
                       (("x", KIND_ONOFF, 1, "L3", 100), {}, "leg"),
                       (("x", KIND_ONOFF, 1, "L1", -5), {}, "rated_w"),
                       (("x", KIND_MODULATED, 1, "L1L2", 7680), {"max_ops_per_h": 1}, "max_ops_per_h")):
    try:
        Load(*args, **kw)
        check(False, "accepted " + word)
    except ValueError as e:
        check(str(e).startswith("error: ") and word in str(e), str(e))
try:
    Controller([onoff("a", 1, 1), onoff("a", 2, 1)], Limits(setpoint_w=1), FakeClock(3000))
    check(False, "duplicate names accepted")
except ValueError as e:
    check("two loads" in str(e), str(e))
""")


def test_a_setpoint_load_without_a_floor_goes_to_zero_and_ramps_back():
    mpy(r"""
hp = Load("heat_pump", KIND_MODULATED, 5, "L1L2", 4800, min_a=0, max_a=20, ramp_step_a=4,
          min_on_s=0, resume_pause_s=0, min_off_s=0)
r = Rig([hp], Limits(setpoint_w=7200), base_w=1000, settle_s=5, stagger_s=5)
r.settle(120)
check(hp.setpoint_a == 20, "at max: %d" % hp.setpoint_a)
r.set_base(7000)
r.step()
check(hp.setpoint_a == 0, "down to zero: %d" % hp.setpoint_a)
r.set_base(1000)
seen = []
for _ in range(60):
    r.step()
    if not seen or seen[-1] != hp.setpoint_a:
        seen.append(hp.setpoint_a)
check(seen == [0, 4, 8, 12, 16, 20], "ramped back in 4 A steps: %r" % seen)
""")
