"""The control task: each period, feed loads' own metered draw to the shed controller,
run one update, and drive the actuators from what it decided."""

import asyncio


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
        self.controller.update(sampler)
        for b in self.bindings:
            b.actuator.apply(b.load)
        self.steps += 1
        self.heartbeat_ms = self._clock.ticks_ms()

    async def run(self):
        while True:
            self.step()
            await asyncio.sleep_ms(self.period_ms)
