"""Runs under MicroPython: the firmware on the simulated board in real time (virtual time at
speed 1), with MQTT configured, and a probe task that measures the scheduler's worst gap in
real milliseconds. One argument: JSON options ("setup_fails": the network side runs out of
memory as it is built). Prints one JSON line per simulated second and
"done" with a summary at the end. Used by tests/test_mqtt_*.py."""

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
from panelsim.panel import Panel, params_with
from panelsim.adcgen import AdcGen
from gapprobe import GapProbe

_PROBE_MS = 5


class StepProfile:
    """Household watts: w0, then w1 from at_ms on (simulated ms since start)."""
    linear = False

    def __init__(self, w0, w1, at_ms):
        self.w0 = w0
        self.w1 = w1
        self.at_ms = at_ms
        self.path = "<step>"

    def watts_at_ms(self, t_ms):
        return self.w1 if 0 <= self.at_ms <= t_ms else self.w0

    def watts_at(self, t_s):
        return self.watts_at_ms(t_s * 1000)

    def next_change_ms(self, t_ms):
        return self.at_ms if t_ms < self.at_ms else t_ms + 3600000


def main():
    opts = json.loads(sys.argv[1])
    speed = opts.get("speed", 1)
    vt = VirtualTime(speed=speed)
    vt.install()
    clock = WrappingClock(vt.now_ms)
    prof = StepProfile(opts.get("base_w", 1500), opts.get("step_w", 1500),
                       int(opts.get("step_at_s", -1) * 1000))
    # The car plugged in from the start, the tank calling for heat from the start.
    params = params_with(board.PANEL, ev={"arrive_h": 0, "response_delay_ms": 1000},
                         water_heater={"start_c": 50})
    panel = Panel(params, prof)
    gen = AdcGen(board, panel)
    sim_machine.attach(panel, vt, board, gen)
    cfg = {"limit_w": opts.get("limit_w", 9600), "mqtt_host": opts.get("host", "127.0.0.1"),
           "mqtt_port": opts["port"], "telemetry_period_ms": opts.get("period_ms", 1000),
           "mqtt_topic": opts.get("prefix", "panelcap")}
    for key in ("mqtt_user", "mqtt_password", "mqtt_discovery", "profile_device"):
        if key in opts:
            cfg[key] = opts[key]
    if opts.get("setup_fails"):
        # The network side cannot be built (as when the heap is too small for it): the
        # link's constructor runs out of memory inside netsetup.setup.
        import net

        def no_memory(*args, **kw):
            raise MemoryError("memory allocation failed, allocating 2048 bytes")
        net.MqttLink = no_memory
    logs = []
    app = firmware_app.App(board, sim_machine, clock, cfg, log=logs.append)
    app.net_clock = Clock()      # socket deadlines are about real sockets: real time
    probe = GapProbe(_PROBE_MS, _PROBE_MS // speed if speed else 0)
    seconds = opts["seconds"]
    t_start = time.ticks_ms()

    async def session():
        asyncio.create_task(app.run())
        asyncio.create_task(probe.run())
        steps_prev = 0
        max_step_gap_s = 0
        last_step_t = 0
        for t in range(seconds):
            await asyncio.sleep_ms(1000)
            panel.advance_to(vt.elapsed_ms())
            link = getattr(app, "mqtt", None)
            c = app.controller
            wh = ev = None
            for b in app.bindings:
                if b.load.name == "ev":
                    ev = b
                else:
                    wh = b
            steps = app.control.steps
            if steps != steps_prev:
                last_step_t = t
                steps_prev = steps
            elif t - last_step_t > max_step_gap_s:
                max_step_gap_s = t - last_step_t
            while logs:
                print(json.dumps({"log": logs.pop(0)}))
            line = {"t": t + 1, "real_ms": time.ticks_diff(time.ticks_ms(), t_start),
                    "mqtt": link.state if link else None,
                    "connects": link.connects if link else 0,
                    "limit_w": c.limit_w, "state": c.state,
                    "wh_on": wh.actuator.is_on, "ev_a": ev.actuator.amps,
                    "panel_w": panel.total_w, "measured_w": app.sampler.total_w,
                    "steps": steps, "feeds": app.supervisor.feeds if app.supervisor else 0,
                    "gap_ms": probe.window_ms, "worst_ms": probe.worst_ms,
                    "failsafe": c.failsafe_count,
                    "crashes": {e.name: e.crashes for e in app.supervisor.entries}
                    if app.supervisor else {}}
            probe.window_ms = 0
            print(json.dumps(line))
        gc.collect()
        print(json.dumps({"done": True, "worst_ms": probe.worst_ms, "wakes": probe.wakes,
                          "late": probe.late, "late_ms": probe.late_ms,
                          "max_step_gap_s": max_step_gap_s, "mem_alloc": gc.mem_alloc(),
                          "mem_free": gc.mem_free()}))

    try:
        asyncio.run(session())
    finally:
        app.force_safe()


main()
