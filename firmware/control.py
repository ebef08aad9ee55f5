"""The control task: each period, feed loads' own metered draw to the shed controller,
run one update, and drive the actuators from what it decided."""

import asyncio
from micropython import const

_EARLY_MS = const(100)      # a measurement this much early still starts the next step


class Binding:
    """One controllable load: its shed.Load, its actuator, and its own CT channel (or -1)."""

    def __init__(self, load, actuator, ct_index=-1):
        self.load = load
        self.actuator = actuator
        self.ct_index = ct_index


class ControlLoop:
    """monitor: a feedback.Monitor (welded contactors, lost chargers) or None."""

    def __init__(self, controller, sampler, bindings, clock, period_ms, monitor=None):
        self.controller = controller
        self.monitor = monitor
        self._sampler = sampler
        self.bindings = bindings
        self._clock = clock
        self.period_ms = period_ms
        self.steps = 0
        self.heartbeat_ms = None
        # Limit sources that follow the metered import (demand.DemandWindow, duty.DutyWindow):
        # stepped before the controller, so their limit is in force at the same update.
        self.sources = []
        # The panel's power from a mains meter instead of the CTs (mainsource.py), or None.
        self.panel = None

    def step(self):
        sampler = self._sampler
        meter = sampler.meter
        p_w = meter.p_w
        fresh = sampler.valid
        for b in self.bindings:
            # Only a load seen drawing counts as relief; a negative reading is CT noise.
            if b.ct_index >= 0 and fresh:
                w = p_w[b.ct_index]
                b.load.measured_w = w if w > 0 else 0
            else:
                b.load.measured_w = -1
        if self.monitor is not None:
            self.monitor.check(sampler)   # before the update: it must see a stuck load
        meas = sampler if self.panel is None else self.panel.refresh(sampler)
        for src in self.sources:
            # The mains check compares the meter with the CTs even where the meter is the
            # panel's source: handed the meter's own reading, it never disagreed.
            m = sampler if src.source == "mains_meter" else meas
            if m.valid:
                src.step(m.total_w)
        self.controller.update(meas)
        for b in self.bindings:
            b.actuator.apply(b.load)
        self.steps += 1
        self.heartbeat_ms = self._clock.ticks_ms()

    async def run(self):
        # Each step follows a new measurement at once (the sampler scans a cycle at a time,
        # so one takes a while): the first measurement, then the first one at least
        # period_ms - _EARLY_MS after the last step. A sampler that stops stops this loop
        # too: both heartbeats go stale and the supervisor lets the watchdog reset the
        # board, outputs off.
        measured = self._sampler.measured
        clock = self._clock
        last = None
        while True:
            await measured.wait()
            measured.clear()
            now = clock.ticks_ms()
            if last is None or clock.ticks_diff(now, last) >= self.period_ms - _EARLY_MS:
                last = now
                self.step()
