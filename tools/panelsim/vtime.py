"""Virtual time for the simulator: asyncio and the firmware's clock run on simulated
milliseconds that jump ahead whenever every task sleeps, so a day runs in seconds."""

import time

import asyncio.core as _core

# Start just below the ESP32's 2**30 ms tick wrap, so every simulated run crosses it.
START_MS = (1 << 30) - 90_000


class VirtualTime:
    """A discrete-event clock under asyncio. speed 0 runs as fast as possible; speed s > 0
    runs s simulated seconds per real second (to watch a run live over MQTT)."""

    def __init__(self, start_ms=START_MS, speed=0):
        self.now = start_ms
        self.start_ms = start_ms
        self.speed = speed
        self._watchers = []

    def now_ms(self):
        return self.now

    def elapsed_ms(self):
        return self.now - self.start_ms

    def watch(self, fn):
        """fn(now_ms) is called whenever time moves (the simulated watchdog uses it)."""
        self._watchers.append(fn)

    def advance(self, ms):
        self.now += ms
        for fn in self._watchers:
            fn(self.now)

    def install(self):
        """Points asyncio's scheduler at this clock. Its ticks never wrap on the host (the
        unix port's period is 2**62); the firmware's wrapping ticks come from
        clock.WrappingClock(vt.now_ms)."""
        _core.ticks = self.now_ms
        real_wait = _real_wait
        vt = self

        def wait_io_event(ioq, dt):
            if dt < 0:
                real_wait(ioq, 10)  # nothing scheduled: only sockets can wake us
                return
            if vt.speed:
                t0 = time.ticks_ms()
                real_wait(ioq, int(dt / vt.speed))
                dt = min(dt, int(time.ticks_diff(time.ticks_ms(), t0) * vt.speed) + 1)
            else:
                real_wait(ioq, 0)  # real sockets are still served, without waiting
            if dt > 0:
                vt.advance(dt)

        _core.IOQueue.wait_io_event = wait_io_event

    @staticmethod
    def uninstall():
        _core.ticks = time.ticks_ms
        _core.IOQueue.wait_io_event = _real_wait


_real_wait = _core.IOQueue.wait_io_event
