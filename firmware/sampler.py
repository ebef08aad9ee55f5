"""Takes one measurement per period: the board's ADC scan into a preallocated buffer, a
window of one mains cycle at a time, then the meter's RMS and power over all of them.
Holds the latest measurement for the controller."""

import asyncio
from array import array


def window_rounds(nch, slot_us, hz, cycles):
    """Rounds (one sample of every channel) that cover `cycles` mains cycles plus 5/8 of
    one, so the meter can always cut `cycles` whole cycles between zero crossings: the
    first crossing, up or down, comes within half a cycle and the hysteresis' few degrees."""
    round_us = nch * slot_us
    return ((8 * cycles + 5) * 1_000_000 // (8 * hz) + round_us - 1) // round_us


class Sampler:
    """The measurement the controller reads: `valid`, `t_ms` (ticks when taken),
    `total_w`, `leg_ma`, and the meter itself for per-channel figures.

    A measurement is `scans` scans of `rounds` rounds each (window_rounds(..., 1): one
    whole cycle cut from 1 5/8), summed by the meter. On the ESP32 a read costs ~35 us, so
    a 4-cycle window in one scan held the scheduler ~83 ms at 60 Hz; one cycle at a time
    it is ~27 ms (33 at 50 Hz), and other tasks run between the scans. The cycles
    measured, and so the accuracy, are the same."""

    def __init__(self, scanner, meter, clock, nch, rounds, period_ms, scans=1):
        self._scanner = scanner
        self.meter = meter
        self._clock = clock
        self.rounds = rounds
        self.scans = scans
        self.period_ms = period_ms
        self.buf = array("H", bytes(2 * rounds * nch))
        self.valid = False
        self.t_ms = clock.ticks_ms()
        self.total_w = 0
        self.leg_ma = meter.leg_ma
        self.windows = 0            # measurements taken
        self.measured = asyncio.Event()     # set by each new measurement (the control loop)
        self.heartbeat_ms = None

    def sample(self):
        """A whole measurement at once (the console, with the controller stopped)."""
        self.meter.begin()
        for _ in range(self.scans):
            self._scan()
        self._finish()

    def _scan(self):
        self._scanner.scan(self.buf, self.rounds)
        self.meter.add(self.buf, self.rounds)

    def _finish(self):
        self.valid = self.meter.end()
        self.total_w = self.meter.total_w
        self.t_ms = self._clock.ticks_ms()
        self.windows += 1
        self.heartbeat_ms = self.t_ms
        self.measured.set()

    async def run(self):
        clock = self._clock
        while True:
            start = clock.ticks_ms()
            self.meter.begin()
            for i in range(self.scans):
                self._scan()
                await asyncio.sleep_ms(0)     # the other tasks run after each scan
            self._finish()
            # One measurement per period however long the scans took.
            left = clock.ticks_diff(clock.ticks_add(start, self.period_ms), clock.ticks_ms())
            await asyncio.sleep_ms(left if left > 0 else 0)
