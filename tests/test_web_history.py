"""history.py under the 32-bit port: the last hour in a fixed ring across the tick wrap, each
point the highest power and the lowest limit of its 10 s, streamed as JSON oldest first."""
import json

from conftest import run_mpy

CODE = r"""
import asyncio, json
from fakeclock import FakeClock
from history import History
clock = FakeClock(before_wrap_ms=3 * 3600 * 1000)   # crosses the 2**30 ms wrap mid-run
h = History(clock, points=360, period_ms=10000)
before = len(h.peak_w)
# 400 periods of 10 one-second steps: power ramps inside each period, a limit dips once
for p in range(400):
    for s in range(10):
        lim = 5000 if (p == 399 and s == 3) else (None if p == 398 else 7200)
        h.add(clock.ticks_ms(), 1000 + p * 10 + s, lim)
        clock.advance(1000)
h.add(clock.ticks_ms(), 0, 7200)        # closes period 399
async def body():
    out = []
    async for piece in h.json_body(clock.ticks_ms(), per_chunk=7):
        out.append(piece)
    return "".join(out)
d = json.loads(asyncio.run(body()))
print(json.dumps({"d": d, "len": [len(h.peak_w), len(h.limit_w), before]}))
"""


def test_ring_keeps_the_last_hour_peaks_and_lowest_limits():
    proc = run_mpy(CODE)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    d = out["d"]
    assert out["len"] == [360, 360, 360]          # preallocated, never grown
    assert d["period_s"] == 10 and d["points"] == 360 and d["age_s"] == 0, d
    assert len(d["peak_w"]) == len(d["limit_w"]) == 360
    # oldest first: periods 40..399, each its highest reading (the 10th second's)
    assert d["peak_w"] == [1000 + p * 10 + 9 for p in range(40, 400)], d["peak_w"][:5]
    # the lowest limit in force in the period; none (0) where nothing limited
    assert d["limit_w"][-1] == 5000 and d["limit_w"][-2] == 0 and d["limit_w"][-3] == 7200
    assert set(d["limit_w"][:-2]) == {7200}


def test_lan_only_addresses():
    # web.lan_address: the ESP32's (ip, port) tuples and the unix port's raw sockaddr bytes.
    code = r"""
import web
ok = [("192.168.1.20", 5), ("10.0.0.7", 5), ("172.16.3.4", 5), ("172.31.0.1", 5),
      ("127.0.0.1", 5), ("169.254.9.9", 5), bytes([2, 0, 0, 80, 192, 168, 0, 9, 0, 0])]
no = [("8.8.8.8", 5), ("172.32.0.1", 5), ("172.15.255.1", 5), ("192.169.1.1", 5),
      ("fe80::1", 5), ("", 5), (None, 5), None, bytes([10, 0, 0, 80, 192, 168, 0, 9]),
      bytes([2, 0, 0, 80, 8, 8, 8, 8])]
print([web.lan_address(p) for p in ok], [web.lan_address(p) for p in no])
"""
    out = run_mpy(code, heap="512k").stdout.strip().splitlines()[-1]
    assert out == str([True] * 7) + " " + str([False] * 10), out
