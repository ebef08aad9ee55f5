"""The compliance log (firmware/compliance.py) under the unix port: bounded on flash,
oldest first, excursions with start, duration, peak and cause, limit changes; and the host
tool (tools/compliance_report.py) that summarises what the board wrote."""
import json
import sys

from conftest import ROOT, run_mpy

sys.path.insert(0, str(ROOT / "tools"))
import compliance_report  # noqa: E402

PRELUDE = r"""
import os, json
import compliance
from snippet import check, fails
"""


def test_log_is_bounded_and_keeps_the_newest(tmp_path):
    out = run_mpy(PRELUDE + r"""
seen = []
log = compliance.Log('c.log', max_lines=5, publish=seen.append)
for i in range(23):
    log.add({'k': 'limit', 't': i, 'limit_w': 1000 + i, 'source': 'grid'})
lines = list(log.read())
check(len(lines) <= 10, 'bounded: %d lines' % len(lines))
ts = [json.loads(l)['t'] for l in lines]
check(ts == list(range(23 - len(ts), 23)), 'newest kept, oldest first: %r' % ts)
check(len(seen) == 23 and json.loads(seen[-1])['t'] == 22, 'each line published')
check(os.stat('c.log')[6] < 5 * 80 and os.stat('c.log.1')[6] < 5 * 80, 'files small')
# A restart counts what is already there and goes on rotating.
log2 = compliance.Log('c.log', max_lines=5)
check(log2.lines == len(ts) - 5, 'counted %d' % log2.lines)
for i in range(23, 30):
    log2.add({'k': 'limit', 't': i, 'limit_w': 0, 'source': 'x'})
ts = [json.loads(l)['t'] for l in log2.read()]
check(ts[-1] == 29 and len(ts) <= 10 and ts == list(range(30 - len(ts), 30)), 'after restart %r' % ts)
print('fails', len(fails))
""", cwd=tmp_path).stdout
    assert "fails 0" in out, out


def test_monitor_logs_limit_changes_and_excursions(tmp_path):
    out = run_mpy(PRELUDE + r"""
log = compliance.Log('c.log')
now = [1795716000]
m = compliance.Monitor(log, lambda: now[0])
# (limit, power, source, overload) per second
script = [(5000, 3000, 'grid', False)] * 5 + [(5000, 5600, 'grid', False),
          (5000, 6100, 'grid', False), (5000, 5200, 'grid', True)] + \
         [(5000, 4000, 'grid', False)] * 3 + [(3000, 4000, 'emergency', False)] * 4 + \
         [(3000, 2900, 'emergency', False)] * 2 + [(None, 8000, 'setpoint', False)] * 2
for i, (lim, p, src, ov) in enumerate(script):
    m.sample(i, True, p, lim, src, ov)
    now[0] += 1
# an invalid measurement ends an excursion too; an excursion in progress is not logged yet
m.sample(30, True, 4000, 3000, 'emergency', False)
m.sample(31, False, 4000, 3000, 'emergency', False)
entries = [json.loads(l) for l in log.read()]
for e in entries:
    print(e)
lim = [e for e in entries if e['k'] == 'limit']
exc = [e for e in entries if e['k'] == 'excursion']
check([(e['limit_w'], e['source']) for e in lim] ==
      [(5000, 'grid'), (3000, 'emergency'), (None, 'setpoint'), (3000, 'emergency')], repr(lim))
check(len(exc) == 3, '%d excursions' % len(exc))
check(exc[0] == {'k': 'excursion', 't': 1795716005, 'dur_s': 3, 'peak_w': 6100, 'limit_w': 5000,
                 'cause': 'grid/overload'}, repr(exc[0]))
check(exc[1]['t'] == 1795716011 and exc[1]['dur_s'] == 4 and exc[1]['peak_w'] == 4000 and
      exc[1]['cause'] == 'emergency', repr(exc[1]))
check(exc[2]['dur_s'] == 1 and m.excursions == 3 and m.excursion_s == 8, repr(exc[2]))
# Without a wall clock the stamp says uptime.
m2 = compliance.Monitor(compliance.Log('u.log'), lambda: 'u%d' % 42)
m2.sample(42, True, 100, 50, 'grid', False)
check(json.loads(list(m2.log.read())[0])['t'] == 'u42', 'uptime stamp')
print('fails', len(fails))
""", cwd=tmp_path).stdout
    assert "fails 0" in out, out
    # The host tool's summary of that very file.
    s = compliance_report.summarise((tmp_path / "c.log").read_text().splitlines() +
                                    ["not json", '{"k": "other"}'])
    assert s["bad_lines"] == 2 and s["entries"] == 7
    assert s["limit_changes"] == 4 and s["limit_changes_by_source"] == {
        "grid": 1, "emergency": 2, "setpoint": 1}
    assert s["excursions"] == 3 and s["excursion_s"] == 8
    assert s["longest"]["dur_s"] == 4 and s["worst"]["peak_w"] == 6100
    assert s["by_cause"]["grid/overload"] == {"count": 1, "seconds": 3, "worst_over_w": 1100}
    assert s["first"] == "2026-11-26 18:00:00Z"
    text = compliance_report.report(s)
    assert "excursions above the limit in force: 3, 8 s" in text
    assert "worst: 1100 W over" in text
    rc = compliance_report.main([str(tmp_path / "c.log"), "--json", str(tmp_path / "s.json")])
    assert rc == 0 and json.loads((tmp_path / "s.json").read_text())["excursions"] == 3
    assert compliance_report.main([str(tmp_path / "missing.log")]) == 2
