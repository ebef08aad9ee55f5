"""Duty mode (firmware/duty.py) under micropython on the 32-bit build: the panel may reach 100 %
of its rating at any moment, its rolling three-hour average stays at or under 80 %, and the EV
gets the headroom in between; the mode is opt-in, protected, and refused with a setpoint."""
from conftest import run_mpy

PRELUDE = r"""
from snippet import check, fails
from fakeclock import FakeClock
from limits import Limits
from loadkind import KIND_MODULATED
from shed import Load, Controller, Measurement
import duty

RATING_W = 100 * 2 * 120           # a 100 A 120/240 V panel: 24,000 W

def run(duty_on, base_of, seconds):
    # A base the controller cannot touch and an EV (48 A at 240 V) that follows its setpoint
    # one second after the command. Returns per-second totals and the EV's energy, W*s.
    clock = FakeClock(5000)
    if duty_on:
        limits = Limits(setpoint_w=RATING_W, rating_a=100, band_pct=2, clock=clock, duty=True)
    else:
        limits = Limits(rating_a=100, band_pct=2, clock=clock)       # the plain 80 %
    ev = Load("ev", KIND_MODULATED, 1, "L1L2", 11520, min_on_s=0, min_off_s=0,
              resume_pause_s=0, max_a=48, response_s=1)
    ctl = Controller([ev], limits, clock, settle_s=5, stagger_s=0)
    dw = duty.DutyWindow(limits, clock, RATING_W, [ev]) if duty_on else None
    m = Measurement()
    m.valid = True
    ev_w = 0
    totals = []
    ev_ws = 0
    for s in range(seconds):
        total = base_of(s) + ev_w
        totals.append(total)
        ev_ws += ev_w
        if dw is not None:
            dw.step(total)
        m.t_ms = clock.t
        m.total_w = total
        m.leg_ma[0] = m.leg_ma[1] = total * 1000 // 240
        ev.measured_w = ev_w
        ctl.update(m)
        ev_w = ev.setpoint_a * 240
        clock.advance(1000)
    return totals, ev_ws, dw

def worst_3h_avg(totals):
    # the highest mean over any 10,800 consecutive seconds (a running sum)
    n = 10800
    acc = sum(totals[:n])
    worst = acc
    for i in range(n, len(totals)):
        acc += totals[i] - totals[i - n]
        if acc > worst:
            worst = acc
    return worst // n
"""


def mpy_checks(code, **kw):
    # The harness keeps every second's total (8 hours of them): a host-sized heap for it.
    out = run_mpy(PRELUDE + code + "\nprint('fails', len(fails))\n", heap="4m", **kw).stdout
    assert "fails 0" in out, out[-4000:]
    return out


def test_duty_mode_holds_100_pct_at_any_moment_and_80_pct_over_three_hours():
    out = mpy_checks(r"""
# Three quiet hours (2 kW), then a 15 kW base (a heat pump and an oven) for two hours with
# the EV asking all it can, then 6 kW.
def base(s):
    if s < 3 * 3600:
        return 2000
    return 15000 if s < 5 * 3600 else 6000
secs = 8 * 3600
d_tot, d_ev, dw = run(True, base, secs)
p_tot, p_ev, _ = run(False, base, secs)
over_100 = sum(1 for t in d_tot if t > RATING_W)
worst = worst_3h_avg(d_tot)
print('duty: worst 3-h average %d W, seconds over 100 %% %d, EV %d kWh; plain 80 %%: EV %d kWh, '
      'peak %d W' % (worst, over_100, d_ev // 3600000, p_ev // 3600000, max(p_tot)))
check(worst <= 19200 + 192, 'worst 3-h average %d W, over 80 %% (19,200 W)' % worst)
check(max(d_tot) > 19200 + 2000, 'it used the room above 80 %%: peak %d W' % max(d_tot))
check(over_100 <= 2, '%d s over 100 %% (the EV answers in 1 s)' % over_100)
check(d_ev > p_ev, 'the EV got more than under the plain 80 %%: %d vs %d' % (d_ev, p_ev))
p_over = sum(1 for t in p_tot if t > 19200)
check(p_over <= 2, 'the plain run holds 80 %% but for the EV\'s response: %d s over' % p_over)
check(dw.average_w() <= 19200, 'the window agrees: %d' % dw.average_w())
""")
    print(out.splitlines()[0])


def test_at_boot_the_unknown_past_counts_as_spent_at_80_pct():
    mpy_checks(r"""
# Right after boot, a 12 kW base and the EV: each minute may average only 80 %, because the
# three hours before the boot are taken as spent at 80 %.
totals, ev_ws, dw = run(True, lambda s: 12000, 600)
for k in range(1, 10):
    avg = sum(totals[k * 60:(k + 1) * 60]) // 60
    check(avg <= 19200 + 192, 'minute %d averaged %d W' % (k, avg))
check(ev_ws > 0, 'the EV charged')
""")


def test_duty_needs_a_rating_and_only_duty_takes_100_pct():
    mpy_checks(r"""
try:
    Limits(setpoint_w=RATING_W, rating_a=100)
    check(False, 'plain mode took a 100 % setpoint')
except ValueError as e:
    check('at most 80% of the rating' in str(e), str(e))
Limits(setpoint_w=RATING_W, rating_a=100, duty=True)
try:
    Limits(setpoint_w=RATING_W + 1, rating_a=100, duty=True)
    check(False, 'duty took more than the rating')
except ValueError as e:
    check('at most 100% of the rating' in str(e), str(e))
try:
    Limits(setpoint_w=10000, duty=True)
    check(False, 'duty without a rating')
except ValueError as e:
    check(str(e) == 'error: duty mode needs rating_a', str(e))
""")


def test_duty_mode_is_opt_in_protected_and_refuses_a_setpoint():
    mpy_checks(r"""
import config, simboard
c = config.defaults(simboard)
check(c['duty_mode'] == 'off', 'off by default')
check('duty_mode' in config.PROTECTED, 'protected')
check(config.setpoint_w(c) == 19200, 'plain: 80 %%: %d' % config.setpoint_w(c))
c['duty_mode'] = 'on'
check(config.validate(c, simboard) == [], config.validate(c, simboard))
check(config.setpoint_w(c) == 24000, 'duty: the rating: %d' % config.setpoint_w(c))
c['limit_w'] = 15000
errs = config.validate(c, simboard)
check(len(errs) == 1 and errs[0].startswith('duty_mode on holds the rating') and
      errs[0].endswith('limit_w must be 0, got 15000'), errs)
""")


def test_the_window_sums_exactly_the_last_179_minutes_across_the_wrap():
    mpy_checks(r"""
from limits import Limits
clock = FakeClock(90000)          # the ticks wrap in the second minute
lim = Limits(setpoint_w=RATING_W, rating_a=100, clock=clock, duty=True)
dw = duty.DutyWindow(lim, clock, RATING_W)
readings = []
for minute in range(400):
    w = 1000 * (minute % 7) + 37 * (minute % 11)
    for s in range(60):
        dw.step(w)
        readings.append(w)
        clock.advance(1000)
dw.step(0)                        # closes the last minute
readings.append(0)
# A reading is the power over the second that ends with it: minute m holds the readings of
# seconds 60m+1 .. 60m+60.
hist = [18960] * 180              # what it assumes of the three hours before boot (79 %)
for m in range(400):
    hist.append(sum(readings[60 * m + 1:60 * m + 61]) // 60)
want = sum(hist[-179:])
check(dw._sum_prev == want, 'sum of the last 179 minutes %d, want %d' % (dw._sum_prev, want))
check(dw.average_w() == (want + 0) // 180, 'average %d' % dw.average_w())
""")


EVENING = r"""
# A 40 A 120/240 V panel (9,600 W; the 80 % line 7,680 W), an EV of 32 A at 240 V (7,680 W)
# that follows its setpoint after 1 s, and a house of 300 W. At 3 h the house cooks for an
# hour (3.5 kW); at 7 h the EV arrives wanting 30 kWh, and 2 h 45 min later the house cooks
# again, as the UK-DALE replay's worst evening did: the EV has filled the three-hour window
# by then, and the minutes about to leave it are the quiet ones before the EV came.
PANEL_W = 9600
LINE_W = PANEL_W * 80 // 100

def base(s):
    if 3 * 3600 <= s < 4 * 3600 or 7 * 3600 + 165 * 60 <= s < 7 * 3600 + 225 * 60:
        return 3500
    return 300

def evening(seconds):
    clock = FakeClock(5000)
    limits = Limits(setpoint_w=PANEL_W, rating_a=40, band_pct=2, clock=clock, duty=True)
    ev = Load("ev", KIND_MODULATED, 1, "L1L2", 7680, min_on_s=0, min_off_s=0,
              resume_pause_s=0, max_a=32, response_s=1)
    ctl = Controller([ev], limits, clock, settle_s=5, stagger_s=0)
    dw = duty.DutyWindow(limits, clock, PANEL_W, [ev])
    m = Measurement()
    m.valid = True
    ev_w = 0
    owed_ws = 0
    totals = []
    base_ws = 0
    for s in range(seconds):
        if s == 7 * 3600:
            owed_ws = 30000 * 3600
        b = base(s)
        draw = ev_w if ev_w < owed_ws else owed_ws
        owed_ws -= draw
        total = b + draw
        totals.append(total)
        ev.measured_w = draw
        dw.step(total)
        m.t_ms = clock.t
        m.total_w = total
        m.leg_ma[0] = m.leg_ma[1] = total * 1000 // 240
        ctl.update(m)
        ev_w = ev.setpoint_a * 240
        clock.advance(1000)
    return totals, owed_ws, dw
"""


def test_the_window_keeps_room_for_the_house_it_has_seen_so_the_ev_cannot_fill_it():
    # Before: each minute could take all the window had left, so the EV filled it and the
    # house's cooking, with nothing controllable left to shed, put the three-hour average at
    # 80.7 % here (7,750 W; the replays: UK-DALE 81.1 %, IDEAL 81.2 %). Now each minute leaves the windows
    # it belongs to the room the house has needed before over as many minutes.
    out = mpy_checks(EVENING + r"""
totals, owed, dw = evening(11 * 3600)
worst = worst_3h_avg(totals)
base_worst = worst_3h_avg([base(s) for s in range(len(totals))])
over_100 = sum(1 for t in totals if t > PANEL_W)
print('worst 3-h average %d W (%d.%d %%), the house alone %d W; EV short %d Wh; reserve %d W'
      % (worst, worst * 100 // PANEL_W, worst * 1000 // PANEL_W % 10, base_worst,
         owed // 3600, dw.reserve_w()))
check(base_worst < LINE_W, 'the house alone stays under the line: %d' % base_worst)
check(worst <= LINE_W, 'worst 3-h average %d W, over 80 %% (%d W)' % (worst, LINE_W))
check(worst <= dw.avg_cap_w + 10, 'worst 3-h average %d W, over the %d W held (79 %%)'
      % (worst, dw.avg_cap_w))
check(over_100 <= 2, '%d s over 100 %%' % over_100)
check(dw.reserve_w() >= (3500 * 60 + 300 * 119) // 179 - 2,
      'the reserve is the house\'s worst three hours: %d W' % dw.reserve_w())
check(owed < 30000 * 3600 // 2, 'the EV still got most of its 30 kWh: %d Wh short' % (owed // 3600))
""")
    print(out.splitlines()[0])


def test_status_shows_the_three_hour_average_what_it_allows_and_the_reserve(tmp_path):
    from test_console import run
    out = run(tmp_path, """
c = config.defaults(board)
c['duty_mode'] = 'on'
c['limit_w'] = 0
a = app.App(board, machine, Clock(), c)
console.attach(a)
from console import status
dw = [s for s in a.control.sources if s.source == 'duty'][0]
print('before', dw.allowed_w)
dw.step(5000)
status()
""")
    lines = [l for l in out if l.startswith("three-hour average")]
    assert "before None" in out, out
    cap = 24000 * 79 // 100
    # at boot the three hours before count as spent at the cap (the minute in progress has
    # used nothing yet), and nothing is known of the house: the minute's room is the cap
    assert lines == ["three-hour average %d W (held at %d W), %d W allowed now, 0 W kept for "
                     "the house's own loads" % (cap * 179 // 180, cap, cap)], out


def test_a_long_stall_closes_its_empty_minutes_at_once_and_keeps_what_it_learned():
    mpy_checks(r"""
import time
clock = FakeClock(5000)
lim = Limits(setpoint_w=RATING_W, rating_a=100, clock=clock, duty=True)
dw = duty.DutyWindow(lim, clock, RATING_W)
for s in range(3600):
    dw.step(3000 if s < 1800 else 500)
    clock.advance(1000)
env = list(dw.env)
check(dw.reserve_w() > 0, 'it learned the house: %d' % dw.reserve_w())
clock.advance(5 * 3600 * 1000)        # no valid measurement for five hours: no steps
t0 = time.ticks_us()
dw.step(0)
us = time.ticks_diff(time.ticks_us(), t0)
print('catch-up after 5 h: %d us' % us)     # 180 minutes closed, not 300, each empty one cheap
check(dw._sum_prev == 0, 'the window holds only the stall: %d' % dw._sum_prev)
# (the minute in progress when it stalled closes with the house it saw: it may add)
check(all(a >= b for a, b in zip(dw.env, env)), 'what it learned of the house is kept')
check(dw.minute_w == dw._plan(), 'the minute now running is planned')
""")
