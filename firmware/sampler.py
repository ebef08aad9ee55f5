"""Takes one measurement window per period: the board's ADC scan into a preallocated
buffer, then the meter's RMS and power. Holds the latest measurement for the controller."""

import asyncio
from array import array


def window_rounds(nch, slot_us, hz, cycles):
    """Rounds (one sample of every channel) that cover `cycles` mains cycles plus one, so
    the meter can always cut a whole number of cycles between zero crossings."""
    round_us = nch * slot_us
    return ((cycles + 1) * 1_000_000 // hz + round_us - 1) // round_us


class Sampler:
    """The measurement the controller reads: `valid`, `t_ms` (ticks when taken),
    `total_w`, `leg_ma`, and the meter itself for per-channel figures."""

    def __init__(self, scanner, meter, clock, nch, rounds, period_ms):
        self._scanner = scanner
        self.meter = meter
        self._clock = clock
        self.rounds = rounds
        self.period_ms = period_ms
        self.buf = array("H", bytes(2 * rounds * nch))
        self.valid = False
        self.t_ms = clock.ticks_ms()
        self.total_w = 0
        self.leg_ma = meter.leg_ma
        self.windows = 0
        self.heartbeat_ms = None

    def sample(self):
        meter = self.meter
        self._scanner.scan(self.buf, self.rounds)
        self.valid = meter.process(self.buf, self.rounds)
        self.total_w = meter.total_w
        self.t_ms = self._clock.ticks_ms()
        self.windows += 1
        self.heartbeat_ms = self.t_ms

    async def run(self):
        while True:
            self.sample()
            await asyncio.sleep_ms(self.period_ms)
