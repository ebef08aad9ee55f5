"""Virtual time for the simulator: asyncio and the firmware's clock run on simulated
milliseconds that jump ahead whenever every task sleeps, so a day runs in seconds."""

import time
from array import array

import asyncio.core as _core

# Start just below the ESP32's 2**30 ms tick wrap, so every simulated run crosses it.
START_MS = (1 << 30) - 90_000

# The ESP32's costs, charged to simulated time (VirtualTime.charge_cpu; the ADC's in
# panelsim.machine, from the board file's ADC_SLOT_US: ~35 us a read, measured in a viper
# loop on an ESP32 in micropython/micropython#7495, 36.8 us from ESP-IDF's adc1_get_raw at
# 240 MHz, labfruits.com's ADC benchmark).
# Python and viper run ~50 times slower on a 240 MHz ESP32 than on a PC: pystone on the unix
# port of a PC, 81,433/s (micropython/micropython#4268), against 1,602-1,661/s on ESP32s at
# 240 MHz (#6565, #5673; pystone_lowmem). A rough figure across scripts, versions and PCs:
# stated here, once, as the model's assumption.
ESP32_CPU_FACTOR = 50

try:
    # The host's CPU time for this thread (tools/unix32/hostcpu/hostcpu.c, built into the
    # 32-bit port): a stretch costs what the firmware ran, not the time the host's other
    # processes took the core from it. The 64-bit wheel has only wall time.
    from hostcpu import thread_us as _cpu_us
except ImportError:
    _cpu_us = time.ticks_us


def percentile(h, per_mille):
    """The index (ms) that per_mille/1000 of a histogram's counts stay at or under (h[i]:
    how many stretches held i ms; the last bin counts the longest and above)."""
    total = 0
    for n in h:
        total += n
    want = total * per_mille // 1000
    seen = 0
    for ms in range(len(h)):
        seen += h[ms]
        if seen >= want:
            return ms
    return len(h) - 1


class VirtualTime:
    """A discrete-event clock under asyncio. speed 0 runs as fast as possible; speed s > 0
    runs s simulated seconds per real second (to watch a run live over MQTT).

    charge_cpu(factor): from then on, every stretch a task runs between two awaits costs
    factor times the CPU time the host spent on it in simulated time (the simulator's own
    work, between sim_begin() and sim_end(), excepted), so timing runs as on the ESP32;
    worst_hold_ms is the longest stretch the scheduler was held, in simulated ms: the worst
    gap any task saw beyond its own wake-up. CPU time, not wall time: a 2 ms preemption by
    another process on the host read as a 100 ms hold. What is left of the host's noise
    (caches, a busy neighbour core) still scales by the factor, so hold_percentile() gives a
    figure that only what recurs can move: a stretch the firmware takes every second is in
    its 99.9th percentile."""

    def __init__(self, start_ms=START_MS, speed=0):
        self.now = time.ticks_add(start_ms, 0)
        self.speed = speed
        self._elapsed_ms = 0
        self._watchers = []
        self.cpu_factor = 0
        self.worst_hold_ms = 0
        self.holds = array("I", bytes(4 * 1001))   # stretches by held ms (1000: 1000 or more)
        self._slice_us = _cpu_us()          # when the running stretch began (host CPU time)
        self._sim_us = 0                    # simulator work within it, not charged
        self._held_us = 0                   # simulated us charged within it (ADC reads)
        self._cost_rem_us = 0               # charged cost not yet a whole ms
        self._pace = None                   # (real ms tick, simulated ms) the pace keeps to

    def reset_holds(self):
        self.worst_hold_ms = 0
        h = self.holds
        for i in range(len(h)):
            h[i] = 0

    def hold_percentile(self, per_mille):
        """The held ms that per_mille/1000 of the stretches stayed at or under."""
        return percentile(self.holds, per_mille)

    def charge_cpu(self, factor=ESP32_CPU_FACTOR):
        self.cpu_factor = factor

    def sim_begin(self):
        return _cpu_us()

    def sim_end(self, t0_us):
        self._sim_us += time.ticks_diff(_cpu_us(), t0_us)

    def hold_us(self, us):
        """The running task holds the scheduler for us simulated us (a blocking ADC scan)."""
        self._held_us += us
        us += self._cost_rem_us
        ms = us // 1000
        self._cost_rem_us = us - ms * 1000
        if ms:
            self.advance(ms)

    def _end_stretch(self):
        """Charges the stretch that just ended (a task ran from the last wait until now)."""
        now_us = _cpu_us()
        host_us = time.ticks_diff(now_us, self._slice_us) - self._sim_us
        held_us = self._held_us
        self._sim_us = 0
        self._held_us = 0
        charged_ms = 0
        if self.cpu_factor and host_us > 0:
            cost_us = host_us * self.cpu_factor + self._cost_rem_us
            charged_ms = cost_us // 1000
            self._cost_rem_us = cost_us - charged_ms * 1000
            held_us += host_us * self.cpu_factor
            if charged_ms:
                self.advance(charged_ms)
        held_ms = held_us // 1000
        if held_ms > self.worst_hold_ms:
            self.worst_hold_ms = held_ms
        self.holds[held_ms if held_ms < 1000 else 1000] += 1
        return charged_ms

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
            # Called by asyncio before each task step: the previous step's stretch ends here.
            charged = vt._end_stretch()
            if dt > 0:
                dt = max(0, dt - charged)
            try:
                _wait(ioq, dt)
            finally:
                vt._slice_us = _cpu_us()

        def _wait(ioq, dt):
            if dt < 0:
                real_wait(ioq, 10)  # nothing scheduled: only sockets can wake us
                return
            if vt.speed:
                # Paced from a fixed point, not wait by wait: a wait shorter than a real ms
                # rounded to none, and summing them capped the speed at a few hundred.
                now = time.ticks_ms()
                if vt._pace is None or (vt._elapsed_ms - vt._pace[1]) / vt.speed \
                        - time.ticks_diff(now, vt._pace[0]) < -1000:
                    vt._pace = (now, vt._elapsed_ms)    # start, or over a second behind
                real0, sim0 = vt._pace
                ahead_ms = (vt._elapsed_ms + dt - sim0) / vt.speed - time.ticks_diff(now, real0)
                real_wait(ioq, int(ahead_ms) + 1 if ahead_ms > 0 else 0)
                due = int(time.ticks_diff(time.ticks_ms(), real0) * vt.speed) + sim0
                dt = max(0, min(dt, due - vt._elapsed_ms))
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
