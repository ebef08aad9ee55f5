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
        self.now = time.ticks_add(start_ms, 0)
        self.speed = speed
        self._elapsed_ms = 0
        self._watchers = []

    def now_ms(self):
        """Ticks as the port's asyncio sees them: they wrap where the port's ticks_ms does
        (2**30 ms on a 32-bit port, as on the ESP32), so compare them with ticks_diff."""
        return self.now

    def elapsed_ms(self):
        """Simulated ms since the start: never wraps (the panel model's time)."""
        return self._elapsed_ms

    def watch(self, fn):
        """fn(now_ms) is called whenever time moves (the simulated watchdog uses it)."""
        self._watchers.append(fn)

    def advance(self, ms):
        self._elapsed_ms += ms
        self.now = time.ticks_add(self.now, ms)
        for fn in self._watchers:
            fn(self.now)

    def install(self):
        """Points asyncio's scheduler at this clock. Its ticks wrap with the port's own
        period (2**30 on the 32-bit build, 2**62 on the 64-bit one); the firmware's ticks come
        from clock.WrappingClock(vt.now_ms), which wraps at 2**30 on either."""
        _core.ticks = self.now_ms
        if _PyTaskQueue is not None:
            # The C task queue stamps "run now" with the port's real ticks: on a 32-bit port
            # they wrap with virtual ticks, so a real stamp can read as up to 6 days ahead.
            _core.TaskQueue, _core.Task = _PyTaskQueue, _PyTask
            _core.new_event_loop()
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
        _core.TaskQueue, _core.Task = _C_TASK_QUEUE


_real_wait = _core.IOQueue.wait_io_event
_C_TASK_QUEUE = (_core.TaskQueue, _core.Task)
try:
    # asyncio's pure-Python queue, which reads _core.ticks; frozen into the 32-bit build
    # (tools/build_unix32.sh). The 64-bit wheel lacks it and needs it not (period 2**62).
    from asyncio.task import TaskQueue as _PyTaskQueue, Task as _PyTask
except ImportError:
    _PyTaskQueue = _PyTask = None
