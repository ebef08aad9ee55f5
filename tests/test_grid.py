"""Grid capacity signals (firmware/grid.py) under the unix port: interval boundaries on the
exact tick (across the 2**30 tick wrap), expiry, fallback and silence, a reboot in the middle
of an interval, refusals with clear errors, reservations (granted, fee, denied, no answer),
an emergency applied within one control period, strictest-wins under the setpoint, and a
steady pass that allocates nothing. The reference responder's decisions run in CPython."""
import json
import subprocess
import sys

import pytest

from conftest import HOST_MARCH, HOST_MPY_CROSS, MPY_CROSS, ROOT, run_mpy

sys.path.insert(0, str(ROOT / "tools"))
import grid_responder  # noqa: E402

T0 = "2026-11-26T18:00:00Z"
T0_UNIX = 1795716000          # the same instant

PRELUDE = r"""
import json, gc
import grid, shed, commands
from limits import Limits
from snippet import check, fails
from fakeclock import FakeClock
T0_UNIX = %d
def iso(s):
    return grid.format_time(grid.parse_time(T0_UNIX) + s)
def event(start_s, dur, values, unit='KW', extra=None):
    ivs = [{'id': i, 'payloads': [{'type': 'IMPORT_CAPACITY_LIMIT', 'values': [v]}]}
           for i, v in enumerate(values)]
    obj = {'programID': 'doe', 'eventName': 'test',
           'payloadDescriptors': [{'payloadType': 'IMPORT_CAPACITY_LIMIT', 'units': unit}],
           'intervalPeriod': {'duration': dur}, 'intervals': ivs}
    if start_s is not None:
        obj['intervalPeriod']['start'] = iso(start_s)
    if extra:
        obj.update(extra)
    return obj
""" % T0_UNIX


def mpy(code, **kw):
    # 512k: compiling grid.py, shed.py and commands.py from source; the size test below
    # measures what the compiled modules cost.
    kw.setdefault("heap", "512k")
    out = run_mpy(PRELUDE + code + "\nprint('fails', len(fails))\n", **kw).stdout
    assert "fails 0" in out, out[-4000:]
    return out


def test_time_formats_round_trip():
    mpy(r"""
check(grid.parse_time('2026-11-26T18:00:00Z') == grid.parse_time(T0_UNIX), 'iso == unix')
check(grid.parse_time('2026-11-26T18:00:00+00:00') == grid.parse_time(T0_UNIX), '+00:00')
for s in (0, 59, 86399, 86400 * 59 + 3, 86400 * 365 * 4 + 7, (1 << 30) - 1):
    check(grid.parse_time(grid.format_time(s)) == s, 'round trip %d' % s)
check(grid.format_time(grid.parse_time('2028-02-29T23:59:59Z')) == '2028-02-29T23:59:59Z', 'leap')
check(grid.parse_duration('PT1H30M') == 5400 and grid.parse_duration('P1DT1S') == 86401, 'dur')
check(grid.parse_duration('PT15M') == 900 and grid.parse_duration(60) == 60, 'dur2')
check(grid.parse_time('2026-12-31T23:59:59Z') + 1 == grid.parse_time('2027-01-01T00:00:00Z'), 'year end')
check(grid.parse_time('2028-02-29T00:00:00Z') + 86400 == grid.parse_time('2028-03-01T00:00:00Z'), 'leap day')
for bad in ('2026-13-01T00:00:00Z', '2026-11-26 18:00:00Z', '2026-11-26T18:00:00', 'x',
            '2023-12-31T23:59:59Z', 1.5, True, None,
            # days that do not exist in their month, not read as the next month's
            '2026-02-30T00:00:00Z', '2026-02-29T12:00:00Z', '2026-04-31T00:00:00Z',
            '2026-11-00T00:00:00Z', '2026-00-10T00:00:00Z',
            # a sign or a space where a digit belongs (int() alone takes them)
            '2026-11-26T+1:00:00Z', '2026-11-26T 1:00:00Z', '2026-+1-26T01:00:00Z',
            ['2026-11-26T18:00:00Z'], {'t': 1}):
    try:
        grid.parse_time(bad)
        check(False, 'accepted time %r' % (bad,))
    except ValueError as e:
        check('time' in str(e), str(e))
for bad in ('PT', 'P1H', 'PT1X', '1H', 0, -5, 'PT-1M', 604801, True,
            'P1DT', 'PT1H1H', 'PT1M1H', 'PDT1H', 'P1T1H', 'PT1HT1M', ['PT1H'], 'PT1.5H'):
    try:
        grid.parse_duration(bad)
        check(False, 'accepted duration %r' % (bad,))
    except ValueError as e:
        check('duration' in str(e), str(e))
""")


def test_boundaries_on_the_exact_tick_across_the_wrap():
    # The grid task runs only every 2 s here; the limit must still change on the boundary's
    # tick (queued in limits.Limits), seen by the controller at its next 250 ms step.
    mpy(r"""
clock = FakeClock()
limits = Limits(setpoint_w=9600, clock=clock)
ev = shed.Load('ev', shed.KIND_MODULATED, 1, 'L1L2', 7680, max_a=32)
ctl = shed.Controller([ev], limits, clock)
g = grid.Grid(limits, clock, 9600, fallback_w=4000, path=None)
start_tick = clock.t
g.set_wall(T0_UNIX, clock.t)
check(limits.effective_w() == 4000, 'fallback before any schedule')
g.schedule(event(3, 'PT4S', [7.0, 5.0, 6.0]), clock.t)
meas = shed.Measurement()
seen = []
wrapped = False
for i in range(80):                 # 20 s in 250 ms steps
    clock.advance(250)
    if clock.t < start_tick:
        wrapped = True
    if i % 8 == 0:
        g.update(clock.t)
    meas.valid = True
    meas.t_ms = clock.t
    meas.total_w = 1000
    ctl.update(meas)
    seen.append(ctl.limit_w)
check(wrapped, 'the ticks wrapped')
# step i is at (i + 1) * 250 ms: 3 s is i = 11
expect = [4000] * 11 + [7000] * 16 + [5000] * 16 + [6000] * 16 + [4000] * 21
check(seen == expect, 'limits by step %r' % seen)
st = g.state(clock.t)
check(st['limit_from'] == 'fallback' and st['intervals'] == 0, 'ran out: %r' % st)
""")


def test_relative_schedule_without_wall_clock_expiry_and_silence():
    mpy(r"""
clock = FakeClock()
limits = Limits(setpoint_w=9600, clock=clock)
g = grid.Grid(limits, clock, 9600, fallback_w=3000, silence_s=30, path=None)
check(not g.wall_known(), 'no wall clock')
# An absolute start is refused clearly; the same schedule relative to now is taken.
try:
    g.schedule(event(60, 'PT10S', [6.0]), clock.t)
    check(False, 'absolute start accepted without a wall clock')
except ValueError as e:
    check('no wall clock' in str(e), str(e))
check(g.schedule(event(None, 'PT20S', [6.0, 5.0]), clock.t) == 2, 'relative accepted')
def at(s):
    while g.mono_s(clock.t) < s:
        clock.advance(1000)
        g.update(clock.t)
    return limits.effective_w(clock.t)
check(at(1) == 6000 and at(19) == 6000 and at(20) == 5000, 'relative intervals')
check(at(29) == 5000, 'still heard')
check(at(30) == 3000 and g.state(clock.t)['limit_from'] == 'silent', 'silent: fallback')
g.schedule(event(None, 'PT10S', [7.0]), clock.t)       # heard again
check(limits.effective_w(clock.t) == 7000, 'heard again: %r' % limits.effective_w(clock.t))
check(at(40) == 3000 and g.state(clock.t)['limit_from'] == 'fallback', 'ran out: fallback')
# An emergency needs no wall clock either, but needs a subscription.
try:
    g.emergency(50, 60, clock.t)
    check(False, 'emergency without a subscription')
except ValueError as e:
    check('subscription' in str(e), str(e))
# Import limit in amps per leg, export limit exposed.
obj = event(None, 'PT60S', [40], unit='A')
obj['intervals'][0]['payloads'].append({'type': 'EXPORT_CAPACITY_LIMIT', 'values': [1.5]})
g.schedule(obj, clock.t)
st = g.state(clock.t)
check(st['import_limit_a'] == 40 and st['export_limit_w'] == 1500 and st['import_limit_w'] is None,
      'amps and export %r' % st)
check(limits.effective_a(clock.t) == 40 and limits.effective_w(clock.t) == 9600, 'amps apply')
# ... and the amp limit is listed with its source, as the state's limits_ma reports it.
ma = limits.in_force_ma()
check(ma.get('grid') == 40000 and limits.in_force_w().get('grid') is None, 'limits_ma %r' % ma)
""")


def test_a_reservation_that_ended_while_off_is_told_once(tmp_path):
    mpy(r"""
def boot(t_unix):
    clock = FakeClock()
    limits = Limits(setpoint_w=9600, clock=clock)
    g = grid.Grid(limits, clock, 9600, subscription_w=5000, path='grid.json')
    g.set_wall(t_unix, clock.t)
    return clock, g
clock, g = boot(T0_UNIX)
rid = g.reserve(None, 60, 1000, clock.t)
g.answer({'id': rid, 'status': 'granted'}, clock.t)
g.outbox.clear()
# Off at +10 s, back at +300 s: the grid hears it ended, once.
clock, g = boot(T0_UNIX + 300)
told = [json.loads(p) for s, p in g.outbox if s == 'grid/reservation']
check([(x['id'], x['state']) for x in told] == [(rid, 'ended')], 'told %r' % told)
check(not g.reservations, 'dropped')
clock, g = boot(T0_UNIX + 400)
check(not [p for s, p in g.outbox if s == 'grid/reservation'], 'not told again %r' % g.outbox)
""", cwd=tmp_path)


def test_export_only_interval_keeps_the_import_fallback_and_amps_round_down():
    mpy(r"""
clock = FakeClock()
limits = Limits(setpoint_w=9600, clock=clock)
g = grid.Grid(limits, clock, 9600, fallback_w=6500, path=None)
g.set_wall(T0_UNIX, clock.t)
obj = event(0, 'PT1M', [7.2, 5.0])
obj['intervals'][1]['payloads'] = [{'type': 'EXPORT_CAPACITY_LIMIT', 'values': [3.0]}]
obj['payloadDescriptors'].append({'payloadType': 'EXPORT_CAPACITY_LIMIT', 'units': 'KW'})
g.schedule(obj, clock.t)
def at(s):
    while g.mono_s(clock.t) < s:
        clock.advance(1000)
        g.update(clock.t)
    return limits.effective_w(clock.t)
check(at(1) == 7200, 'interval 0: 7200 W')
check(at(60) == 6500, 'export only: the import fallback holds, %r' % limits.effective_w(clock.t))
st = g.state(clock.t)
check(st['import_limit_w'] == 6500 and st['export_limit_w'] == 3000, 'state %r' % st)
# Amps per leg apply in whole amps rounded down: never above the grid's limit.
obj = event(None, 'PT1M', [7.9, 0, 1], unit='A')
g.schedule(obj, clock.t)
check(g.intervals[0][3] == 7 and g.intervals[1][3] == 0 and g.intervals[2][3] == 1,
      'amps %r' % g.intervals)
check(limits.effective_a(clock.t) == 7, 'applied 7 A: %r' % limits.effective_a(clock.t))
""")


def test_reboot_in_the_middle_of_an_interval(tmp_path):
    mpy(r"""
import os
path = 'grid.json'
clock = FakeClock()
limits = Limits(setpoint_w=9600, clock=clock)
g = grid.Grid(limits, clock, 9600, subscription_w=5000, fallback_w=4000, path=path)
g.set_wall(T0_UNIX, clock.t)
g.schedule(event(0, 'PT60S', [7.0, 5.0]), clock.t)
g.answer({'id': g.reserve(iso(90), 600, 2000, clock.t), 'status': 'granted'}, clock.t)
for _ in range(30):
    clock.advance(1000)
    g.update(clock.t)
check(limits.effective_w(clock.t) == 5000, 'before: sub 5000 under 7000')
# Power cut at +30 s; the board is back 5 s later with other ticks and an empty RAM.
clock2 = FakeClock(t=123456)
limits2 = Limits(setpoint_w=9600, clock=clock2)
g2 = grid.Grid(limits2, clock2, 9600, subscription_w=5000, fallback_w=4000, path=path)
g2.update(clock2.t)
check(limits2.effective_w(clock2.t) == 4000, 'no wall clock yet: fallback %r' % limits2.effective_w(clock2.t))
clock2.advance(2000)
g2.set_wall(T0_UNIX + 35 + 2, clock2.t)     # NTP answers
check(g2.state(clock2.t)['limit_from'] == 'schedule', 'schedule back')
check(g2.state(clock2.t)['import_limit_w'] == 7000, 'interval 0 again')
check(len(g2.reservations) == 1, 'reservation kept')
seen = {}
for s in range(38, 200):
    while g2.wall_gs(clock2.t) < grid.parse_time(T0_UNIX) + s:
        clock2.advance(500)
        g2.update(clock2.t)
    seen[s] = (g2.state(clock2.t)['import_limit_w'], limits2.effective_w(clock2.t))
check(seen[59] == (7000, 5000) and seen[60] == (5000, 5000), 'boundary at 60: %r' % [seen[59], seen[60]])
check(seen[89] == (5000, 5000), 'before the reservation %r' % (seen[89],))
check(seen[95] == (5000, 5000), 'reservation 7000 above the 5000 interval: %r' % (seen[95],))
check(seen[119] == (5000, 5000) and seen[120] == (4000, 4000), 'ran out at 120: %r' % [seen[119], seen[120]])
check(seen[199][1] == 4000, 'fallback after')
# The same schedule sent again writes nothing; a changed one is written.
os.remove(path)
g2.schedule(event(190, 'PT60S', [3.0]), clock2.t)
check(path in os.listdir(), 'a new schedule is written')
os.remove(path)
g2.schedule(event(190, 'PT60S', [3.0]), clock2.t)
check(path not in os.listdir(), 'the same schedule again: no flash write')
g2.schedule(event(190, 'PT60S', [3.5]), clock2.t)
check(path in os.listdir(), 'a changed schedule is written')
# A damaged file is ignored: the fallback applies.
with open(path, 'w') as f:
    f.write('{"v": 1, "iv": [[1, 2')
g3 = grid.Grid(Limits(setpoint_w=9600, clock=clock2), clock2, 9600, fallback_w=4000, path=path)
g3.set_wall(T0_UNIX + 300, clock2.t)
check(g3.intervals == [] and g3.state(clock2.t)['limit_from'] == 'fallback', 'damaged file')
""", cwd=tmp_path)


REFUSALS = [
    # (payload, substring of the error)
    ({"intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}],
      "intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}],
      "colour": 1}, "unknown field colour"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]},
                    {"intervalPeriod": {"start": "2026-11-26T18:20:00Z"},
                     "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [4]}]}]},
     "interval 1 overlaps interval 0"),
    ({"intervalPeriod": {"start": "2026-11-26T17:00:00Z", "duration": "PT30M"},
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]},
     "interval 0 ended at 2026-11-26T17:30:00Z: expired"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [-1]}]}]},
     "out of range"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": ["5"]}]}]},
     "must be a number"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [501]}]}]},
     "out of range"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z"},
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]},
     "interval 0 has no duration"),
    ({"intervalPeriod": {"start": "2026-11-26 18:10", "duration": "PT30M"},
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]},
     "time must look like"),
    ({"intervalPeriod": {"start": "2026-12-26T18:10:00Z", "duration": "PT30M"},
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]},
     "more than 7 days ahead"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "intervals": [{"payloads": [{"type": "PRICE", "values": [5]}]}]}, "a payload is"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "MW"}],
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]},
     "units KW, W or A"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT1M"},
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}] * 25},
     "payload longer than 900 bytes"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "intervals": [{"payloads": []}]}, "payloads must be a non-empty list"),
    # Issue 19: each of these once passed, or raised TypeError instead of an event.
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "intervals": [{"payloads": [{"type": ["IMPORT_CAPACITY_LIMIT"], "values": [5]}]}]},
     "a payload is"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "payloadDescriptors": [{"payloadType": ["IMPORT_CAPACITY_LIMIT"]}],
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]},
     "payloadDescriptors: payloadType must be"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": {"A": 1}}],
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]},
     "payloadDescriptors: payloadType must be"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}],
                     "limit_w": 12000}]},
     "interval 0: unknown field limit_w"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "intervals": [{"intervalPeriod": {"duration": "PT10M", "randomizeStart": "PT5M"},
                     "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]},
     "interval 0: intervalPeriod: unknown field randomizeStart"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5],
                                   "units": "W"}]}]},
     "interval 0: payload: unknown field units"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M", "x": 1},
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]},
     "intervalPeriod: unknown field x"),
    ({"intervalPeriod": {"start": "2026-11-30T18:10:00Z", "duration": "PT30M"},
      "intervals": [{"intervalPeriod": {"start": "2026-11-31T00:00:00Z"},
                     "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]},
     "time out of range"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT30M"},
      "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "A"}],
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [0.5]}]}]},
     "an amp limit is 0 or 1..2000 A"),
    ({"intervalPeriod": {"start": "2026-11-26T18:10:00Z", "duration": "PT1H1H"},
      "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}]},
     "duration must be like"),
]


def test_bad_overlapping_and_expired_schedules_are_refused_clearly():
    code = r"""
clock = FakeClock()
limits = Limits(setpoint_w=9600, clock=clock)
g = grid.Grid(limits, clock, 9600, fallback_w=4000, path=None)
g.set_wall(T0_UNIX, clock.t)
events = []
cmds = commands.Commands(limits, {}, clock, 9600, events.append, grid=lambda: g)
good = event(0, 'PT30M', [6.0])
check(cmds.handle('pc', 'pc/cmd/grid/limits', json.dumps(good)), 'good taken %r' % events)
check(events[-1]['ok'] and events[-1]['intervals'] == 1, 'event %r' % events[-1])
before = (limits.effective_w(clock.t), [list(iv) for iv in g.intervals], g.event_name)
for payload, want in json.loads(REFUSALS_JSON):
    text = json.dumps(payload)
    check(not cmds.handle('pc', 'pc/cmd/grid/limits', text), 'accepted %s' % text[:80])
    err = events[-1].get('error', '')
    check(want in err, 'error %r lacks %r' % (err, want))
    print('refused:', err)
try:
    g.schedule({'intervalPeriod': {'duration': 60}, 'intervals': [
        {'payloads': [{'type': 'IMPORT_CAPACITY_LIMIT', 'values': [5]}]}] * 49}, clock.t)
    check(False, '49 intervals taken')
except ValueError as e:
    check(str(e) == '49 intervals, limit 48', str(e))
check(not cmds.handle('pc', 'pc/cmd/grid/nosuch', '{}'), 'unknown sub')
check('unknown command' in events[-1]['error'], events[-1]['error'])
after = (limits.effective_w(clock.t), [list(iv) for iv in g.intervals], g.event_name)
check(after == before, 'refusals changed nothing %r %r' % (before, after))
check(not cmds.handle('pc', 'pc/cmd/grid/time', '{"unix_s": 5}'), 'bad time')
# An empty list of intervals clears the schedule: the fallback applies.
check(cmds.handle('pc', 'pc/cmd/grid/limits', '{"intervals": []}'), 'clear')
check(limits.effective_w(clock.t) == 4000, 'cleared to the fallback')
"""
    out = mpy(code.replace("REFUSALS_JSON", repr(json.dumps(REFUSALS))))
    assert out.count("refused:") == len(REFUSALS)


# A day-ahead envelope in pages (issue 19 item 2): page k of n carries intervals
# [first, first + count) of a 48 half-hour envelope starting at T0 + start_s; each page is an
# event in itself, with its own start, under 900 bytes.
PAGES = r"""
def page(k, n, first, count, sid='doe-7', start_s=0, dur=1800, values=None):
    vals = values or [4.0 + (first + i) % 5 * 0.5 for i in range(count)]
    return {'id': sid, 'page': k, 'pages': n, 'programID': 'doe', 'eventName': 'day-ahead',
            'payloadDescriptors': [{'payloadType': 'IMPORT_CAPACITY_LIMIT', 'units': 'KW'}],
            'intervalPeriod': {'start': iso(start_s + first * dur), 'duration': dur},
            'intervals': [{'id': first + i, 'payloads': [{'type': 'IMPORT_CAPACITY_LIMIT',
                                                          'values': [vals[i]]}]}
                          for i in range(count)]}
def want_w(i):
    return int((4.0 + i % 5 * 0.5) * 1000)
"""


def test_day_ahead_envelope_in_pages_out_of_order_lands_on_every_boundary(tmp_path):
    # 48 half-hours in 6 pages of 8, sent out of order with one page twice: nothing changes
    # until the last page is in; then the 48 replace the old schedule at once, are kept on
    # flash whole, and every boundary lands on its tick, across the 2**30 tick wrap.
    out = mpy(PAGES + r"""
clock = FakeClock()
limits = Limits(setpoint_w=19200, clock=clock)
g = grid.Grid(limits, clock, 19200, fallback_w=3000, path='grid.json')
g.set_wall(T0_UNIX, clock.t)
events = []
cmds = commands.Commands(limits, {}, clock, 19200, events.append, grid=lambda: g)
check(cmds.handle('pc', 'pc/cmd/grid/limits', json.dumps(event(0, 'PT1H', [9.0]))), 'old one')
old = list(g.intervals)
sizes = []
for k in (3, 1, 6, 1, 2, 5):
    text = json.dumps(page(k, 6, (k - 1) * 8, 8))
    sizes.append(len(text))
    check(cmds.handle('pc', 'pc/cmd/grid/limits', text), 'page %d: %r' % (k, events[-1]))
    ev = events[-1]
    check(ev['page'] == k and ev['pages'] == 6 and 'intervals' not in ev, 'ack %r' % ev)
    check(g.intervals == old and limits.effective_w(clock.t) == 9000, 'partial: old holds')
check(events[-1]['have'] == 5 and events[-4]['have'] == 3, 'page 1 twice counted once')
check(max(sizes) <= 900, 'pages fit the link: %r' % sizes)
check(cmds.handle('pc', 'pc/cmd/grid/limits', json.dumps(page(4, 6, 24, 8))), 'last page')
check(events[-1] == {'cmd': 'grid/limits', 'ok': True, 'id': 'doe-7', 'page': 4, 'pages': 6,
                     'have': 6, 'intervals': 48}, 'in force %r' % events[-1])
check(g._pg is None and len(g.intervals) == 48 and g.event_name == 'day-ahead', 'taken whole')
check([w for _, _, w, _, _ in g.intervals] == [want_w(i) for i in range(48)], 'in order')
import os
print('grid_json_bytes', os.stat('grid.json')[6])
# Across the wrap: the fake clock starts just below 2**30 ms.
start = clock.t
wrapped = False
g2 = grid.Grid(Limits(setpoint_w=19200, clock=clock), clock, 19200, fallback_w=3000,
               path='grid.json')
g2.set_wall(T0_UNIX, clock.t)
check(len(g2.intervals) == 48 and g2.intervals == g.intervals, 'restored from flash whole')
# A power cut while a later schedule was being written leaves its temporary half written:
# the 48 come back whole.
with open('grid.json.tmp', 'w') as f:
    f.write('{"v": 1, "iv": [[91648800, 9')
g3 = grid.Grid(Limits(setpoint_w=19200, clock=clock), clock, 19200, path='grid.json')
g3.set_wall(T0_UNIX, clock.t)
check(g3.intervals == g.intervals, 'a cut save: the 48 back whole')
# What 48 intervals hold in RAM: what dropping the restored copy frees (a measure that stale
# pointers on the C stack, which the collector keeps, cannot spoil).
gc.collect()
a = gc.mem_alloc()
g2.intervals = []
gc.collect()
print('grid_48_bytes', a - gc.mem_alloc())
for i in range(48):
    b = (i + 1) * 1800            # the end of interval i
    while g.mono_s(clock.t) < b - 1:
        clock.advance(min(600000, (b - 1 - g.mono_s(clock.t)) * 1000))
        g.update(clock.t)
        if clock.t < start:
            wrapped = True
    w = limits.effective_w(clock.t)
    check(w == want_w(i), 'interval %d: %r' % (i, w))
    clock.advance(999)
    check(limits.effective_w(clock.t) == want_w(i), 'interval %d to its end' % i)
    clock.advance(1)              # the boundary's tick, with no pass of the grid task
    nxt = want_w(i + 1) if i < 47 else 3000
    check(limits.effective_w(clock.t) == nxt, 'boundary %d: %r, want %r'
          % (i, limits.effective_w(clock.t), nxt))
check(wrapped, 'the ticks wrapped')
g.update(clock.t)
check(not g.intervals and g.state(clock.t)['limit_from'] == 'fallback', 'ran out')
""", cwd=tmp_path)
    ram = int(out.split("grid_48_bytes ")[1].split()[0])
    disk = int(out.split("grid_json_bytes ")[1].split()[0])
    print("48 intervals: %d B of heap in force (32-bit port), grid.json %d B" % (ram, disk))
    # 48 tuples of 5 (32 B each on a 32-bit port) and their list; as lists of 5 they were 48 B
    assert ram <= 2200, ram


def test_pages_missing_mixed_overlapping_and_oversize_are_refused_or_dropped():
    mpy(PAGES + r"""
clock = FakeClock()
limits = Limits(setpoint_w=19200, clock=clock)
g = grid.Grid(limits, clock, 19200, fallback_w=3000, path=None)
g.set_wall(T0_UNIX, clock.t)
events = []
cmds = commands.Commands(limits, {}, clock, 19200, events.append, grid=lambda: g)
def send(obj):
    return cmds.handle('pc', 'pc/cmd/grid/limits', json.dumps(obj))
def snap():
    pg = g._pg
    return repr((g.intervals, g.event_name, g._heard, limits.effective_w(clock.t),
                 pg and (pg.sid, pg.n, pg.heard, pg.name, pg.held)))
check(send(event(0, 'P1D', [8.0])), 'old one')
old = repr((g.intervals, g.event_name, limits.effective_w(clock.t)))
def unchanged(what):
    check(repr((g.intervals, g.event_name, limits.effective_w(clock.t))) == old,
          '%s: the schedule in force changed' % what)
# Refused, each in one line naming its limit, changing nothing (the pages held neither).
check(send(page(1, 4, 0, 8)) and send(page(3, 4, 16, 8)), 'two pages held')
before = snap()
nostart = page(2, 4, 8, 8)
del nostart['intervalPeriod']['start']
for obj, want in (
        (page(9, 9, 0, 6), '9 pages, limit 8'),
        (page(5, 4, 0, 6), 'page 5 of 4 pages'),
        (page(2, 5, 8, 8), 'schedule doe-7 has 4 pages, not 5'),
        (dict(page(2, 4, 8, 8), page=0), 'page and pages must be ints'),
        (dict(page(2, 4, 8, 8), page='2'), 'page and pages must be ints'),
        (dict(page(2, 4, 8, 8), pages=True), 'page and pages must be ints'),
        ({k: v for k, v in page(2, 4, 8, 8).items() if k != 'pages'}, 'page and pages'),
        ({k: v for k, v in page(2, 4, 8, 8).items() if k != 'id'}, 'needs an id'),
        (page(2, 4, 8, 0), 'page 2 of 4 has no intervals'),
        (nostart, 'page 2 of 4 needs a start'),
        (page(2, 4, 7, 8), 'page 2 overlaps page 1'),
        (page(2, 4, 9, 8), 'page 2 overlaps page 3'),
        (page(4, 4, 20, 8), 'page 4 overlaps page 3'),
        (page(2, 4, 8, 9, dur=60), 'payload longer than 900 bytes'),
        (dict(page(2, 4, 8, 8), colour=1), 'unknown field colour')):
    check(not send(obj), 'accepted %r' % (obj,))
    err = events[-1]['error']
    check(want in err and '\n' not in err, 'error %r lacks %r' % (err, want))
    print('refused:', err)
    check(snap() == before, 'refused %r but changed %r' % (err, snap()))
# Too many intervals: 6 pages of 8 held, a 7th of 4 would make 52. Refused; the 48 held and
# the schedule in force stay; nothing of it is ever in force.
for k in range(1, 7):
    check(send(page(k, 7, (k - 1) * 8, 8, sid='doe-8')), 'page %d of 7' % k)
check(events[-6].get('dropped') == 'doe-7', 'doe-7 half received, dropped %r' % events[-6])
before = snap()
check(not send(page(7, 7, 48, 4, sid='doe-8')), '52 intervals taken')
check(events[-1]['error'] == 'schedule doe-8: 52 intervals, limit 48', events[-1]['error'])
check(snap() == before, 'the 52nd changed something')
unchanged('52 intervals')
try:
    g.page(page(1, 1, 0, 49, sid='big', dur=60), clock.t)    # (not through the 900 bytes)
    check(False, '49 intervals in a page')
except ValueError as e:
    check(str(e) == '49 intervals, limit 48', str(e))
# A missing page: nothing in force; 60 s after the last page the rest are dropped, and a late
# page starts the schedule afresh.
check(send(page(1, 3, 0, 8, sid='m')) and send(page(3, 3, 16, 8, sid='m')), 'pages 1, 3')
for _ in range(59):
    clock.advance(1000)
    g.update(clock.t)
check(g._pg is not None and g._pg.sid == 'm', 'held for 60 s')
clock.advance(1000)
g.update(clock.t)
check(g._pg is None, 'dropped after 60 s')
unchanged('missing page')
check(send(page(2, 3, 8, 8, sid='m')) and events[-1]['have'] == 1, 'afresh: %r' % events[-1])
unchanged('late page')
# Mixed ids: a page of another schedule drops the one half received; its pages never mix.
check(send(page(1, 2, 0, 4, sid='A', values=[5.5] * 4)), 'A1')
check(send(page(1, 2, 0, 4, sid='B', values=[6.5] * 4)), 'B1')
check(events[-1]['dropped'] == 'A' and events[-1]['have'] == 1, 'A dropped %r' % events[-1])
unchanged('B1')
check(send(page(2, 2, 4, 4, sid='B', values=[7.5] * 4)), 'B2')
check(events[-1]['intervals'] == 8 and [iv[2] for iv in g.intervals] == [6500] * 4 + [7500] * 4,
      'B whole, nothing of A: %r' % g.intervals)
# A duplicate of the last page after the schedule is in force starts it afresh (held only).
check(send(page(2, 2, 4, 4, sid='B', values=[7.5] * 4)) and events[-1]['have'] == 1, 'again')
# A whole schedule replaces the schedule in force and drops the pages held.
check(send(event(0, 'PT1H', [4.0])) and g._pg is None and limits.effective_w(clock.t) == 4000,
      'a whole schedule')
# One page of one: taken at once.
check(send(page(1, 1, 0, 8, sid='one')) and events[-1]['intervals'] == 8, 'one page of one')
check(limits.effective_w(clock.t) == 4000, 'interval 0 of one: %r' % limits.effective_w(clock.t))
""")


def test_limits_combine_strictest_and_never_above_the_setpoint():
    mpy(r"""
clock = FakeClock()
limits = Limits(setpoint_w=9600, clock=clock)
g = grid.Grid(limits, clock, 9600, subscription_w=5000, path=None)
g.set_wall(T0_UNIX, clock.t)
events = []
cmds = commands.Commands(limits, {}, clock, 9600, events.append, grid=lambda: g)
g.schedule(event(0, 'PT1H', [12.0]), clock.t)          # a generous envelope: 12 kW
check(limits.effective_w(clock.t) == 5000 and limits.strictest() == 'subscription', 'sub wins')
rid = g.reserve(None, 3600, 4600, clock.t)
g.answer({'id': rid, 'status': 'granted'}, clock.t)
check(limits.effective_w(clock.t) == 9600 and limits.strictest() == 'setpoint',
      'setpoint caps 9600: %r %r' % (limits.effective_w(clock.t), limits.strictest()))
try:
    g.reserve(None, 3600, 4601, clock.t)
    check(False, 'a reservation above the setpoint')
except ValueError as e:
    check('1..4600 W' in str(e), str(e))
check(cmds.handle('pc', 'pc/cmd/limit', '{"limit_w": 3000, "duration_s": 60}'), 'remote')
check(limits.effective_w(clock.t) == 3000 and limits.strictest() == 'remote', 'remote wins')
check(cmds.handle('pc', 'pc/cmd/grid/emergency', '{"share_pct": 40, "duration_s": 60}'), 'em')
check(limits.effective_w(clock.t) == 2000 and limits.strictest() == 'emergency', 'emergency wins')
check(limits.in_force_w() == {'grid': 12000, 'subscription': 9600, 'remote': 3000,
                              'emergency': 2000}, repr(limits.in_force_w()))
""")


def test_reservations_granted_fee_denied_and_unanswered():
    mpy(r"""
clock = FakeClock()
limits = Limits(setpoint_w=9600, clock=clock)
g = grid.Grid(limits, clock, 9600, subscription_w=5000, path=None)
g.next_id = 0       # ids r0000, r0001, ...: 'r9999' below is never one of them
events = []
cmds = commands.Commands(limits, {}, clock, 9600, events.append, grid=lambda: g)
check(not cmds.handle('pc', 'pc/cmd/grid/reserve', json.dumps(
    {'start': iso(60), 'duration_s': 600, 'extra_w': 3000})), 'no wall clock')
check('wall clock' in events[-1]['error'], events[-1]['error'])
g.set_wall(T0_UNIX, clock.t)
check(cmds.handle('pc', 'pc/cmd/grid/reserve', json.dumps(
    {'start': iso(60), 'duration_s': 600, 'extra_w': 3000, 'id': 'ev-1'})), 'queued')
rid = events[-1]['request']
sub, payload = g.outbox.pop(0)
req = json.loads(payload)
check(sub == 'grid/request' and req == {'id': rid, 'start': iso(60), 'duration_s': 600,
      'extra_w': 3000, 'subscription_w': 5000}, 'request %r' % req)
# Granted: the limit rises in the window only.
check(cmds.handle('pc', 'pc/cmd/grid/answer', json.dumps({'id': rid, 'status': 'granted'})), 'ans')
check(events[-1]['status'] == 'granted', repr(events[-1]))
def at(s):
    while g.mono_s(clock.t) < s:
        clock.advance(1000)
        g.update(clock.t)
    return limits.effective_w(clock.t)
check(at(59) == 5000 and at(60) == 8000 and at(659) == 8000 and at(660) == 5000, 'window only')
check(not g.reservations, 'ended reservation dropped')
# Denied with a fee: nothing changes until the fee is accepted; accept() asks again.
rid2 = g.reserve(iso(700), 1200, 2000, clock.t)
offers = [{'start': iso(700), 'duration_s': 500, 'available_w': 6000, 'price': 4},
          {'start': iso(1200), 'duration_s': 700, 'available_w': 2500, 'price': 10}]
check(g.answer({'id': rid2, 'status': 'fee', 'fee_cents': 50, 'offers': offers}, clock.t) == 'fee', 'fee')
check(not g.reservations and at(700) == 5000, 'a fee grants nothing')
check(g.answers[-1]['offers'] == offers and g.answers[-1]['fee_cents'] == 50, 'offers kept')
g.outbox.clear()
rid3 = g.accept(rid2, clock.t)
req = json.loads(g.outbox.pop(0)[1])
check(req['max_fee_cents'] == 50 and req['extra_w'] == 2000 and req['duration_s'] == 1200 - 0,
      'accept asks again with the fee %r' % req)
# A grant with a higher fee than agreed is refused.
check(g.answer({'id': rid3, 'status': 'granted', 'fee_cents': 51}, clock.t) == 'refused', 'overcharged')
check(not g.reservations, 'not taken')
rid4 = g.accept(rid2, clock.t)
check(g.answer({'id': rid4, 'status': 'granted', 'fee_cents': 50}, clock.t) == 'granted', 'granted at fee')
check(at(701) == 7000, 'raised')
# Denied.
rid5 = g.reserve(iso(3000), 600, 1000, clock.t)
check(g.answer({'id': rid5, 'status': 'denied', 'reason': 'feeder full'}, clock.t) == 'denied', 'denied')
check(g.answers[-1]['reason'] == 'feeder full' and len(g.reservations) == 1, 'denied: nothing added')
# Several reservations stack (different prices), an unknown id is refused, no answer times out.
rid6 = g.reserve(iso(800), 600, 1000, clock.t)
g.answer({'id': rid6, 'status': 'granted', 'fee_cents': 0}, clock.t)
check(at(801) == 8000, 'two reservations stack: %r' % limits.effective_w(clock.t))
check(not cmds.handle('pc', 'pc/cmd/grid/answer', json.dumps({'id': 'r9999', 'status': 'granted'})), 'unknown id')
check('no request' in events[-1]['error'], events[-1]['error'])
rid7 = g.reserve(iso(5000), 600, 1000, clock.t)
at(g.mono_s(clock.t) + 61)
check(rid7 not in g.pending and g.answers[-1]['status'] == 'no answer', 'timed out %r' % g.answers[-1])
check(cmds.handle('pc', 'pc/cmd/grid/cancel', json.dumps({'id': rid6})), 'cancel')
check(limits.effective_w(clock.t) == 7000, 'cancelled: %r' % limits.effective_w(clock.t))
""")


def test_every_reservation_state_is_told_to_the_grid_until_acked():
    # granted, refused (fee, table full, late), cancelled, no answer, ended: each a notice on
    # grid/reservation, sent again every 10 s until acked (at most 6 sends); the request
    # itself until answered. A full table refuses the new grant and evicts nothing.
    mpy(r"""
clock = FakeClock()
limits = Limits(setpoint_w=9600, clock=clock)
g = grid.Grid(limits, clock, 9600, subscription_w=5000, path=None)
g.next_id = 0x10
g.set_wall(T0_UNIX, clock.t)
events = []
cmds = commands.Commands(limits, {}, clock, 9600, events.append, grid=lambda: g)
box = []         # what the grid task would have sent (it empties the outbox each period)
def sent(sub):
    box.extend(g.outbox)
    g.outbox.clear()
    out = [json.loads(p) for s, p in box if s == sub]
    box[:] = [x for x in box if x[0] != sub]
    return out
def at(s):
    while g.mono_s(clock.t) < s:
        clock.advance(1000)
        g.update(clock.t)
        box.extend(g.outbox)
        g.outbox.clear()
def ack(n, rid):
    return cmds.handle('pc', 'pc/cmd/grid/ack', json.dumps({'n': n, 'id': rid}))
# Granted: the notice, sent again every 10 s until acked.
rid = g.reserve(iso(100), 600, 1000, clock.t)
check(rid == 'r0010' and g.next_id == 0x11, 'ids counted from next_id: %r' % rid)
check([r['id'] for r in sent('grid/request')] == [rid], 'request sent')
check(g.answer({'id': rid, 'status': 'granted'}, clock.t) == 'granted', 'granted')
check(sent('grid/reservation') == [{'n': 1, 'id': rid, 'state': 'granted'}], 'notice granted')
at(9)
check(sent('grid/reservation') == [], 'not again before 10 s')
at(10)
check(sent('grid/reservation') == [{'n': 1, 'id': rid, 'state': 'granted'}], 'again at 10 s')
check(not ack(2, rid) and 'no notice 2' in events[-1]['error'], 'a wrong n is refused')
check(not ack(1, 'r0000'), 'a wrong id is refused')
check(g.state(clock.t)['notices'] == 1, 'still awaiting its ack')
check(ack(1, rid) and events[-1] == {'cmd': 'grid/ack', 'ok': True, 'id': rid}, 'acked %r' % events[-1])
at(40)
check(sent('grid/reservation') == [] and g.state(clock.t)['notices'] == 0, 'acked: no more')
# Cancelled.
check(cmds.handle('pc', 'pc/cmd/grid/cancel', json.dumps({'id': rid})), 'cancel')
check(sent('grid/reservation') == [{'n': 2, 'id': rid, 'state': 'cancelled'}], 'notice cancelled')
ack(2, rid)
# Refused by the site: a fee above what it agreed to pay; the event says why in one line.
r2 = g.reserve(iso(100), 600, 1000, clock.t, max_fee_cents=20)
check(cmds.handle('pc', 'pc/cmd/grid/answer', json.dumps(
    {'id': r2, 'status': 'granted', 'fee_cents': 21})), 'answer taken')
check(events[-1]['status'] == 'refused' and events[-1]['reason'] == 'fee 21 above the 20 cents agreed',
      repr(events[-1]))
check(sent('grid/reservation') == [{'n': 3, 'id': r2, 'state': 'refused',
                                    'reason': 'fee 21 above the 20 cents agreed'}], 'notice refused')
check(not g.reservations, 'not taken')
ack(3, r2)
# A malformed answer is refused whole: the request still awaits its answer.
r3 = g.reserve(iso(100), 600, 1000, clock.t)
check(not cmds.handle('pc', 'pc/cmd/grid/answer', json.dumps(
    {'id': r3, 'status': 'granted', 'fee_cents': 'free'})), 'bad fee refused')
check(r3 in g.pending and not g.reservations, 'a refused answer changed nothing')
# No answer: the request is sent again every 10 s, then given up at 60 s, and the grid told.
sent('grid/request')
at(g.mono_s(clock.t) + 30)
check([r['id'] for r in sent('grid/request')] == [r3] * 3, 'request resent every 10 s')
at(g.mono_s(clock.t) + 30)
check(r3 not in g.pending and g.answers[-1]['status'] == 'no answer', 'given up')
nb = sent('grid/reservation')
check(nb[-1]['id'] == r3 and nb[-1]['state'] == 'no answer', 'notice no answer %r' % nb)
ack(nb[-1]['n'], r3)
check(not cmds.handle('pc', 'pc/cmd/grid/answer', json.dumps({'id': r3, 'status': 'granted'})),
      'a grant after that is refused')
# Late: granted after its window ended.
m = g.mono_s(clock.t)
r4 = g.reserve(None, 60, 1000, clock.t)
at(m + 59)
check(r4 in g.pending, 'still pending')
g.pending[r4][1] = m + 59      # (its window ends as the answer is on its way)
check(g.answer({'id': r4, 'status': 'granted'}, clock.t) == 'refused', 'late')
nb = sent('grid/reservation')
check(nb[-1]['state'] == 'refused' and 'ended' in nb[-1]['reason'], 'late told %r' % nb[-1])
ack(nb[-1]['n'], r4)
# Eight held; the ninth grant is refused and the eight (the one in force too) stay.
m = g.mono_s(clock.t)
held = []
nb = []
for k in range(8):
    r = g.reserve(None if k == 0 else iso(m + 100 * k), 3600, 500, clock.t)
    g.answer({'id': r, 'status': 'granted'}, clock.t)
    held.append(r)
    box.extend(g.outbox)
    g.outbox.clear()
check(limits.effective_w(clock.t) == 5500, 'first in force: %r' % limits.effective_w(clock.t))
r9 = g.reserve(None, 600, 500, clock.t)
check(cmds.handle('pc', 'pc/cmd/grid/answer', json.dumps({'id': r9, 'status': 'granted'})), 'ans')
check(events[-1]['status'] == 'refused' and events[-1]['reason'] == 'table full: 8 reservations held',
      repr(events[-1]))
check([r[4] for r in g.reservations] == held, 'none evicted: %r' % g.reservations)
check(limits.effective_w(clock.t) == 5500, 'the one in force stays')
nb += sent('grid/reservation')
check([x['state'] for x in nb] == ['granted'] * 8 + ['refused'], 'told %r' % nb)
check(nb[-1] == {'n': nb[-1]['n'], 'id': r9, 'state': 'refused',
                 'reason': 'table full: 8 reservations held'}, repr(nb[-1]))
# The notices awaiting an ack are bounded: 9 sent, 8 kept, the oldest given up.
check(len(g.notices) == 8 and g.notices_lost == 1, 'bounded %d %d' % (len(g.notices), g.notices_lost))
# Unacked notices are sent 6 times in all, then given up and counted.
at(g.mono_s(clock.t) + 120)
check(len(g.notices) == 0 and g.notices_lost == 9, 'given up: %d' % g.notices_lost)
check(g.state(clock.t)['notices_lost'] == 9, 'counted in the state')
# Ended: each reservation's end is told.
sent('grid/reservation')
at(m + 700 + 3600)
nb = sent('grid/reservation')
check(sorted(set(x['id'] for x in nb if x['state'] == 'ended')) == sorted(held), 'ended %r' % nb)
check(not g.reservations and limits.effective_w(clock.t) == 5000, 'all ended')
""")


def test_emergency_applied_within_one_control_period():
    mpy(r"""
clock = FakeClock()
limits = Limits(setpoint_w=9600, clock=clock)
ev = shed.Load('ev', shed.KIND_MODULATED, 1, 'L1L2', 7680, max_a=32, response_s=5)
ctl = shed.Controller([ev], limits, clock, settle_s=0, stagger_s=0)
g = grid.Grid(limits, clock, 9600, subscription_w=8000, path=None)
events = []
cmds = commands.Commands(limits, {}, clock, 9600, events.append, grid=lambda: g)
meas = shed.Measurement()
def step(base_w):
    clock.advance(1000)
    meas.valid = True
    meas.t_ms = clock.t
    ev.measured_w = ev.setpoint_a * 240
    meas.total_w = base_w + ev.measured_w
    ctl.update(meas)
for _ in range(200):
    step(1500)
check(ev.setpoint_a >= 24, 'EV charging %d A under the 8000 W subscription' % ev.setpoint_a)
check(cmds.handle('pc', 'pc/cmd/grid/emergency', '{"share_pct": 50, "duration_s": 120}'), 'em')
check(events[-1]['limit_w'] == 4000, repr(events[-1]))
step(1500)          # the very next control step
check(ctl.limit_w == 4000, 'limit in force at once: %r' % ctl.limit_w)
check(1500 + ev.setpoint_a * 240 <= 4000, 'EV cut to %d A in one step' % ev.setpoint_a)
for _ in range(119):
    step(1500)
check(ctl.limit_w == 8000 and g.state(clock.t)['emergency_s'] == 0, 'over after 120 s: %r' % ctl.limit_w)
check(cmds.handle('pc', 'pc/cmd/grid/emergency', '{"share_pct": 0, "duration_s": 60}'), 'zero')
step(1500)
check(ev.setpoint_a == 0 or ev.setpoint_a == ev.min_a, 'EV at its floor or paused: %d' % ev.setpoint_a)
check(cmds.handle('pc', 'pc/cmd/grid/emergency', '{"share_pct": null}'), 'end')
check(limits.effective_w(clock.t) == 8000, 'ended')
check(not cmds.handle('pc', 'pc/cmd/grid/emergency', '{"share_pct": 101, "duration_s": 60}'), '101')
check(not cmds.handle('pc', 'pc/cmd/grid/emergency', '{"share_pct": 50}'), 'no duration')
check('duration_s' in events[-1]['error'], events[-1]['error'])
""")


def test_steady_grid_pass_allocates_nothing():
    mpy(r"""
import micropython
import compliance
clock = FakeClock()
limits = Limits(setpoint_w=9600, clock=clock)
g = grid.Grid(limits, clock, 9600, subscription_w=5000, fallback_w=4000, silence_s=3600, path=None)
g.monitor = compliance.Monitor(compliance.Log(path='/dev/null'), g.stamp)
g.set_wall(T0_UNIX, clock.t)
g.schedule(event(0, 'PT1H', [6.0, 5.0]), clock.t)
g.answer({'id': g.reserve(iso(1800), 3600, 2000, clock.t), 'status': 'granted'}, clock.t)
g.ack(g.notices[0][0], g.notices[0][1])     # the grid has the grant: nothing left to resend
for _ in range(3):
    clock.advance(1000)
    g.update(clock.t)
    g.watch(clock.t, True, 3000, 5000, False)
ok = 0
for _ in range(50):
    clock.advance(1000)
    micropython.heap_lock()
    try:
        g.update(clock.t)
        g.watch(clock.t, True, 3000, 5000, False)
        ok += 1
    except MemoryError:
        pass
    micropython.heap_unlock()
check(ok == 50, 'allocated in %d of 50 passes' % (50 - ok))
""")


# grid.py and what it loads with the Grid (gridevent.py, gridpages.py, sntp.py and
# atomicfile.py come later, with the first grid message, first page, SNTP query and save).
GRID_MODULES = ("grid", "gridlimits", "gridtime", "compliance")


def test_grid_modules_cross_compile_for_the_esp32(tmp_path):
    for name in GRID_MODULES + ("gridevent", "gridpages", "sntp", "atomicfile"):
        src = ROOT / "firmware" / (name + ".py")
        assert "assert " not in src.read_text()
        subprocess.run([MPY_CROSS, "-O1", "-march=xtensawin", "-o",
                        str(tmp_path / (name + ".mpy")), str(src)], check=True)


def test_grid_code_size_in_ram():
    # What importing grid.py, its modules and compliance.py (as .mpy) and building a Grid
    # costs: paid only once grid signals are configured or received.
    out = run_mpy(r"""
import gc, sys, shed, asyncio, json     # the app has these loaded already
from limits import Limits
limits = Limits(setpoint_w=9600)    # and its Limits, built
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else '')
gc.collect()
a = gc.mem_alloc()
import grid, compliance
class C:
    def ticks_ms(self): return 0
    def ticks_diff(self, a, b): return a - b
    def ticks_add(self, t, d): return t + d
g = grid.Grid(limits, C(), 9600, 5000, 4000, path=None)
g.monitor = compliance.Monitor(compliance.Log('/dev/null'), g.stamp)
gc.collect()
print('grid_bytes', gc.mem_alloc() - a)
print(grid.__file__)
""", heap="512k", args=[_compiled()])
    used = int(out.stdout.split("grid_bytes ")[1].split()[0])
    assert "grid.mpy" in out.stdout, out.stdout
    print("grid.mpy + compliance.mpy + a Grid: %d bytes" % used)
    assert used < 29000, used      # 64-bit port; about half on the ESP32 (with attach())


def _compiled():
    import tempfile
    d = tempfile.mkdtemp(prefix="gridmpy")
    for name in GRID_MODULES:
        subprocess.run([HOST_MPY_CROSS, "-O1", "-march=" + HOST_MARCH, "-o", "%s/%s.mpy" % (d, name),
                        str(ROOT / "firmware" / (name + ".py"))], check=True)
    return d


# --- the reference responder (CPython) --------------------------------------------------

def _table():
    hours = [[10000, 0]] * 24
    hours[18] = [14000, 5]       # 18:00-19:00 UTC: room 6000 W at 5 cents per kW h
    hours[19] = [19000, 0]       # 19:00-20:00: room 1000 W
    return {"capacity_w": 20000, "hours": hours}


def test_responder_grants_quotes_a_fee_and_denies():
    r = grid_responder.Responder(_table())
    a = r.decide({"id": "a", "start": "2026-11-26T16:00:00Z", "duration_s": 7200,
                  "extra_w": 5000})
    assert a == {"id": "a", "status": "granted", "fee_cents": 0}
    # 17:30-18:30: free first half, 5 c/kW h for the second: 4 kW x 0.5 h x 5 = 10 cents.
    b = r.decide({"id": "b", "start": "2026-11-26T17:30:00Z", "duration_s": 3600,
                  "extra_w": 4000})
    assert b["status"] == "fee" and b["fee_cents"] == 10, b
    assert [(o["duration_s"], o["price"], o["available_w"]) for o in b["offers"]] == [
        (1800, 0, 5000), (1800, 5, 6000)]
    # Accepting the fee grants it; the room it takes is gone for the next request.
    c = r.decide({"id": "c", "start": "2026-11-26T17:30:00Z", "duration_s": 3600,
                  "extra_w": 4000, "max_fee_cents": 10})
    assert c == {"id": "c", "status": "granted", "fee_cents": 10}
    d = r.decide({"id": "d", "start": "2026-11-26T18:00:00Z", "duration_s": 600,
                  "extra_w": 3000, "max_fee_cents": 1000})
    assert d["status"] == "denied" and "18:00" in d["reason"], d
    e = r.decide({"id": "e", "start": "2026-11-26T19:10:00Z", "duration_s": 600,
                  "extra_w": 1500})
    assert e["status"] == "denied" and "1000 W free" in e["reason"], e
    f = r.decide({"id": "f", "start": "tomorrow", "duration_s": 600, "extra_w": 1})
    assert f["status"] == "denied" and "malformed" in f["reason"]
    with pytest.raises(ValueError):
        grid_responder.Responder({"capacity_w": 1, "hours": [[0, 0]] * 23})
