"""Runs under MicroPython: the firmware on the simulated board in real time (virtual time at
speed 1) with its status page on, and a probe task that measures the scheduler's worst gap
in real milliseconds (gapprobe.py, as the MQTT tests do). One argument: JSON options. Prints
one JSON line per simulated second (the simulator's truth beside the firmware's view), an
"event" line at once when a load's output changes, and "done" with a summary at the end.
Used by tests/test_web*.py."""

import gc
import json
import sys
import time

import asyncio

import simboard as board
from clock import Clock, WrappingClock
import app as firmware_app
from panelsim import machine as sim_machine
from panelsim.vtime import VirtualTime
from panelsim.panel import Panel
from panelsim.adcgen import AdcGen
from gapprobe import GapProbe

_PROBE_MS = 5


class Steps:
    """Household watts from a list of [at_s, watts] steps (simulated seconds since start)."""
    linear = False
    path = "<steps>"

    def __init__(self, steps):
        self.steps = [(int(at * 1000), w) for at, w in steps]

    def watts_at_ms(self, t_ms):
        w = self.steps[0][1]
        for at, watts in self.steps:
            if at <= t_ms:
                w = watts
        return w

    def watts_at(self, t_s):
        return self.watts_at_ms(t_s * 1000)

    def next_change_ms(self, t_ms):
        for at, _ in self.steps:
            if at > t_ms:
                return at
        return t_ms + 3600000


def main():
    opts = json.loads(sys.argv[1])
    speed = opts.get("speed", 1)
    vt = VirtualTime(speed=speed)
    vt.install()
    if opts.get("cpu_factor"):
        # Each stretch a task runs costs factor x its host CPU time (panelsim/vtime.py):
        # vt.worst_hold_ms is then the longest the scheduler was held, free of the host's
        # preemptions (1: this host's CPU time; 50: the ESP32 cost model).
        vt.charge_cpu(opts["cpu_factor"])
    clock = WrappingClock(vt.now_ms)
    params = dict(board.PANEL)
    ev = dict(params["ev"])
    ev["arrive_h"] = 0          # the car is plugged in from the start
    ev["response_delay_ms"] = 1000
    params["ev"] = ev
    wh = dict(params["water_heater"])
    wh["start_c"] = 50          # the tank calls for heat from the start
    params["water_heater"] = wh
    panel = Panel(params, Steps(opts.get("steps", [[0, 1500]])))
    gen = AdcGen(board, panel)
    sim_machine.attach(panel, vt, board, gen)
    cfg = {"limit_w": opts.get("limit_w", 9600), "web_port": opts.get("port", 0),
           "web_password": opts.get("password", "")}
    if opts.get("web_fails"):
        # The page cannot be built (as when the heap is too small for microdot).
        import web

        class NoMemory:
            def __init__(self, *args, **kw):
                raise MemoryError("memory allocation failed, allocating 718 bytes")
        web.WebServer = NoMemory
    logs = []
    app = firmware_app.App(board, sim_machine, clock, cfg, log=logs.append)
    app.net_clock = Clock()      # connection deadlines are about real sockets: real time
    probe = GapProbe(_PROBE_MS, _PROBE_MS // speed if speed else 0)
    seconds = opts["seconds"]
    t_start = time.ticks_ms()

    def outputs():
        out = {}
        for b in app.bindings:
            a = b.actuator
            out[b.load.name] = a.amps if hasattr(a, "amps") else int(a.is_on)
        return out

    async def watch():
        # A load's output change, reported the moment it happens (the page must follow
        # within 2 s).
        seen = None
        while True:
            now = outputs()
            if now != seen:
                print(json.dumps({"event": now, "t_ms": vt.elapsed_ms()}))
                seen = now
            await asyncio.sleep_ms(20)

    async def session():
        asyncio.create_task(app.run())
        asyncio.create_task(probe.run())
        asyncio.create_task(watch())
        for t in range(seconds):
            await asyncio.sleep_ms(1000)
            if t == 2:
                vt.reset_holds()    # the build and first steps are over: the running holds
            panel.advance_to(vt.elapsed_ms())
            while logs:
                print(json.dumps({"log": logs.pop(0)}))
            c = app.controller
            web = getattr(app, "web", None)
            line = {"t": t + 1, "real_ms": time.ticks_diff(time.ticks_ms(), t_start),
                    "panel_w": panel.total_w, "measured_w": app.sampler.total_w,
                    "limit_w": c.limit_w, "headroom_w": c.headroom_w, "state": c.state,
                    "outputs": outputs(), "steps": app.control.steps,
                    "feeds": app.supervisor.feeds if app.supervisor else 0,
                    "gap_ms": probe.window_ms, "worst_ms": probe.worst_ms,
                    "failsafe": c.failsafe_count,
                    "web": None if web is None else {
                        "requests": web.requests, "refused": web.refused, "cut": web.cut,
                        "errors": web.errors},
                    "crashes": {e.name: e.crashes for e in app.supervisor.entries}
                    if app.supervisor else {}}
            probe.window_ms = 0
            print(json.dumps(line))
        gc.collect()
        print(json.dumps({"done": True, "worst_ms": probe.worst_ms, "wakes": probe.wakes,
                          "late": probe.late, "late_ms": probe.late_ms,
                          "hold_ms": vt.worst_hold_ms, "hold_p999_ms": vt.hold_percentile(999),
                          "mem_alloc": gc.mem_alloc(), "mem_free": gc.mem_free(),
                          "modules": sorted(sys.modules)}))

    try:
        asyncio.run(session())
    finally:
        app.force_safe()


main()
