"""Runs under MicroPython: the firmware on the simulated board in real time (virtual time at
speed 1) with its status page on, and a probe task that measures the scheduler's worst gap
in real milliseconds (gapprobe.py, as the MQTT tests do). One argument: JSON options. Prints
one JSON line per simulated second (the simulator's truth beside the firmware's view), an
"event" line at once when a load's output changes, and "done" with a summary at the end.
Used by tests/test_web*.py. With cpu_factor, each stretch is also put to the task that ran it
(the page's apart: web_p999_ms, web_worst), as the ESP32 cost model charges it."""

import gc
import json
from array import array
import sys
import time

import asyncio

import simboard as board
from clock import Clock, WrappingClock
import app as firmware_app
from panelsim import machine as sim_machine
from panelsim.vtime import VirtualTime, percentile
from panelsim.panel import Panel, params_with
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


HOLDS = {}      # task name: the worst stretch it held the scheduler, charged ms
APP = []        # the App, once built: its supervised tasks are named by their entries
# The page's stretches (its server task and every connection's), counted by charged ms as
# vtime counts all of them: their percentiles and worst apart from the other tasks'.
WEB_TASKS = ("web", "_serve")
WEB_HOLDS = array("I", bytes(4 * 1001))


def _task_name(t):
    if t is None:
        return "?"
    for app in APP:
        for e in (app.supervisor.entries if app.supervisor else ()):
            if e.task is t:
                return e.name
    r = repr(t.coro)        # <generator object '_serve' at ...>
    return r.split("'")[1] if "'" in r else r


def _attribute_holds(vt):
    # Each stretch vtime charges, put to the task that ran it (asyncio.core's cur_task is
    # still that task when the scheduler next waits), and apart when the heap in use fell in
    # it (the collector ran, or a block was freed): "web gc" is the page's worst stretch with
    # a collection in it. Done after the stretch is charged and before the next begins: not
    # charged itself.
    import asyncio.core as core
    end = vt._end_stretch
    last = [gc.mem_alloc()]

    def end_stretch():
        worst = vt.worst_hold_ms
        vt.worst_hold_ms = 0
        charged = end()
        held = vt.worst_hold_ms
        if held < worst:
            vt.worst_hold_ms = worst
        name = _task_name(core.cur_task)
        if name in WEB_TASKS:
            WEB_HOLDS[held if held < 1000 else 1000] += 1
        if gc.mem_alloc() < last[0]:
            name += " gc"
        if held > HOLDS.get(name, -1):
            HOLDS[name] = held
        last[0] = gc.mem_alloc()
        return charged
    vt._end_stretch = end_stretch


def _oldest_ms(web, net):
    # The age of the oldest connection the server holds (by its own slots, on the real clock):
    # never much past its deadline, whatever the clients do.
    now = net.ticks_ms()
    ages = [net.ticks_diff(now, slot[1]) for slot in web._slots if slot is not None]
    return max(ages) if ages else 0


def _fill(h):
    # The ring as after an hour on a big panel: every point taken, each figure six digits
    # (the longest text a point makes: limits reach 960 kW), so /api/history is the longest
    # it can be.
    for i in range(h.points):
        h.peak_w[i] = 100000 + i
        h.limit_w[i] = 960000 - i
    h.count = h.points
    h._head = 0


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
        _attribute_holds(vt)
    clock = WrappingClock(vt.now_ms)
    # The car plugged in from the start, the tank calling for heat from the start.
    params = params_with(board.PANEL, ev={"arrive_h": 0, "response_delay_ms": 1000},
                         water_heater={"start_c": 50})
    panel = Panel(params, Steps(opts.get("steps", [[0, 1500]])))
    gen = AdcGen(board, panel)
    # adc_read_us: each read holds the scheduler as on the ESP32 (the board's 35 us)
    sim_machine.attach(panel, vt, board, gen, adc_read_us=opts.get("adc_read_us", 0))
    cfg = {"limit_w": opts.get("limit_w", 9600), "web_port": opts.get("port", 0),
           "web_password": opts.get("password", "")}
    if opts.get("web_fails"):
        # The page cannot be built (as when the heap is too small for microdot).
        import web

        class NoMemory:
            def __init__(self, *args, **kw):
                raise MemoryError("memory allocation failed, allocating 718 bytes")
        web.WebServer = NoMemory
    if opts.get("footprint"):
        # The heap this harness takes before the firmware is built (the simulator, the
        # probe; app.py and the board's module too, a few KB): the test gives the firmware its
        # ESP32-sized heap on top of this, as make sim does.
        gc.collect()
        print(json.dumps({"footprint": gc.mem_alloc()}))
        return
    logs = []
    if opts.get("config_dir"):
        # As the board boots: config.json read from "flash" (this directory), safe mode if it
        # is missing or damaged; the options' settings unused.
        import os
        os.chdir(opts["config_dir"])
        app = firmware_app.build(board, sim_machine, clock, None, log=logs.append)
    else:
        app = firmware_app.App(board, sim_machine, clock, cfg, log=logs.append)
    app.net_clock = Clock()      # connection deadlines are about real sockets: real time
    APP.append(app)
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
            if t == 1 and opts.get("history_full") and getattr(app, "web", None):
                _fill(app.web.history)
            if t == 2:
                vt.reset_holds()    # the build and first steps are over: the running holds
                HOLDS.clear()
                for i in range(len(WEB_HOLDS)):
                    WEB_HOLDS[i] = 0
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
                        "errors": web.errors, "oldest_ms": _oldest_ms(web, app.net_clock)},
                    "crashes": {e.name: e.crashes for e in app.supervisor.entries}
                    if app.supervisor else {}}
            probe.window_ms = 0
            print(json.dumps(line))
        gc.collect()
        print(json.dumps({"done": True, "worst_ms": probe.worst_ms, "wakes": probe.wakes,
                          "late": probe.late, "late_ms": probe.late_ms,
                          "hold_ms": vt.worst_hold_ms, "hold_p999_ms": vt.hold_percentile(999),
                          "web_stretches": sum(WEB_HOLDS),
                          "web_p999_ms": percentile(WEB_HOLDS, 999),
                          "web_p99_ms": percentile(WEB_HOLDS, 990),
                          "web_worst": [ms for ms in range(len(WEB_HOLDS)) if WEB_HOLDS[ms]][-8:],
                          "holds": HOLDS,
                          "mem_alloc": gc.mem_alloc(), "mem_free": gc.mem_free(),
                          "modules": sorted(sys.modules)}))

    try:
        asyncio.run(session())
    finally:
        app.force_safe()


main()
