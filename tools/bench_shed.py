"""Benchmarks for the shed controller and the replay: run() -> [(name, value)], CPython.

shed_steps_per_s: control steps per second firmware/shed.py sustains under the unix port with
five loads on the list (EV, three contactors, one never-shed load), total and per-leg limits
both in force, one simulated second per step, a base that crosses the limit often enough to
shed and restore. The harness (base profile, load response, clock) is timed on its own with
a do-nothing update and subtracted, so the figure is the shed module alone.
shed_cost_vs_harness: a step of the shed module (the same run, harness subtracted) divided by
a step of that do-nothing harness; both loops run back to back in one process, so the ratio
holds across machines and load where steps per second do not.
replay_30d_s: wall time of tools/sim.py replaying 30 days of a real household (REFIT house
20 with the layered EV and water heater) at 1-s steps, panelcap plus both baselines.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from toolchain import MICROPYTHON  # noqa: E402
MICROPYPATH = ":".join([".frozen", str(ROOT / "firmware"), str(ROOT / "boards"),
                        str(ROOT / "lib"), str(ROOT / "tools")])

_SHED_BENCH = r"""
import time
import shed
from limits import Limits
from loadkind import KIND_ONOFF, KIND_MODULATED, KIND_NEVER
from shed import Load, Controller, Measurement

from fakeclock import FakeClock

try:
    # The thread's CPU time: what the host lent other processes is not charged to the step.
    from hostcpu import thread_us as us
except ImportError:
    us = time.ticks_us

N = %(n)d

def run(real):
    clock = FakeClock(5000)
    loads = [Load("ev", KIND_MODULATED, 5, "L1L2", 7680, min_on_s=60),
             Load("wh", KIND_ONOFF, 4, "L1L2", 4500),
             Load("ac", KIND_ONOFF, 2, "L1L2", 3600),
             Load("pool", KIND_ONOFF, 3, "L1", 1440, volts=120),
             Load("fridge", KIND_NEVER, 1, "L2", 300, volts=120)]
    ctl = Controller(loads, Limits(setpoint_w=9600, setpoint_a=40), clock)
    upd = ctl.update if real else (lambda m: None)
    m = Measurement()
    m.valid = True
    ev, wh, ac, pool, fridge = loads
    seed = 12345
    shed_n = 0
    t0 = us()
    for i in range(N):
        clock.t = time.ticks_add(clock.t, 1000)
        # Base: 500 W, a 3 kW kettle 3 min in every 1000 s, a 7 kW shower 10 min every 2 h,
        # plus noise; the loads draw what they are allowed.
        seed = (seed * 1103515245 + 12345) & 0x3fffffff
        base = 500 + (seed >> 20)
        if i %% 1000 < 180:
            base += 3000
        if i %% 7200 < 600:
            base += 7000
        ev_w = ev.setpoint_a * 240
        wh_w = 4500 if wh.on else 0
        ac_w = 3600 if ac.on else 0
        pool_w = 1440 if pool.on else 0
        ev.measured_w = ev_w
        wh.measured_w = wh_w
        ac.measured_w = ac_w
        pool.measured_w = pool_w
        big = ev_w + wh_w + ac_w
        m.t_ms = clock.t
        m.total_w = base + big + pool_w + 300
        m.leg_ma[0] = (base // 2 + pool_w) * 1000 // 120 + big * 1000 // 240
        m.leg_ma[1] = (base - base // 2 + 300) * 1000 // 120 + big * 1000 // 240
        upd(m)
        if ctl.state == "shedding":
            shed_n += 1
    dt = time.ticks_diff(us(), t0)
    return dt, shed_n, sum(l.switch_ops for l in loads), ev.adjust_ops

dt_idle, _, _, _ = run(False)
dt_real, shed_n, ops, adj = run(True)
print(N, dt_real, dt_idle, shed_n, ops, adj)
"""


def shed_steps_per_s(n=400000):
    env = dict(os.environ, MICROPYPATH=MICROPYPATH)
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=128k", "-c", _SHED_BENCH % {"n": n}],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    n, dt_real, dt_idle, shed_n, ops, adj = map(int, proc.stdout.split())
    if shed_n == 0 or ops == 0 or adj == 0:
        raise RuntimeError("shed bench never shed or restored: the figure would flatter the module")
    net_us = dt_real - dt_idle
    return {"steps": n, "steps_per_s": int(n * 1e6 / net_us), "gross_steps_per_s": int(n * 1e6 / dt_real),
            "harness_steps_per_s": int(n * 1e6 / dt_idle), "cost_vs_harness": round(net_us / dt_idle, 2),
            "shed_steps": shed_n, "switch_ops": ops, "ev_adjusts": adj}


def replay_30d_s():
    sys.path.insert(0, str(ROOT / "tools"))
    import gzip
    import layer_loads
    src = ROOT / "tools" / "data" / "households" / "refit_house20_2014-12_1min.csv.gz"
    with tempfile.TemporaryDirectory(prefix="panelcap-bench-") as tmp:
        layered = os.path.join(tmp, "refit_layered.csv.gz")
        layer_loads.layer(str(src), layered)
        with gzip.open(layered, "rt") as f:
            lines = f.readlines()[:1 + 30 * 1440]     # header + exactly 30 days of minutes
        thirty = os.path.join(tmp, "refit_30d.csv")
        with open(thirty, "w") as f:
            f.writelines(lines)
        cmd = [sys.executable, str(ROOT / "tools" / "sim.py"), thirty, "--total", "Aggregate",
               "--ev", "EV", "--water-heater", "WaterHeater", "--limit-a", "30", "--volts", "240",
               "--json", os.path.join(tmp, "m.json"), "--quiet"]
        t0 = time.monotonic()
        subprocess.run(cmd, check=True, cwd=ROOT)
        return round(time.monotonic() - t0, 1)


def run():
    s = shed_steps_per_s()
    return [("shed_steps_per_s", s["steps_per_s"]), ("shed_cost_vs_harness", s["cost_vs_harness"]),
            ("replay_30d_s", replay_30d_s())]


if __name__ == "__main__":
    if "--detail" in sys.argv:
        print(shed_steps_per_s())
    for name, value in run():
        print(f"{name}: {value}")
