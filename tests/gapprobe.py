"""The scheduler's gap, as the tests measure it under the unix port: a task that asks to wake
every period_ms; how late each wake comes is the longest stretch some other task held the
scheduler without an await. Times are real (time.ticks_ms), whatever clock the firmware uses.

Real time carries the host's noise: on a loaded 2-core machine the process can lose the CPU
for tens of ms. So the tests bound the worst gap generously (well under the shortest wait a
blocked task would sit through: a socket deadline of seconds) and bound how often a wake is
late by more than late_ms (a task that held the scheduler on every pass would make many
wakes late; the host's preemptions are rare)."""

import asyncio
import time


class GapProbe:
    def __init__(self, period_ms=5, real_sleep_ms=None, late_ms=50):
        self.period_ms = period_ms
        # Under virtual time a sleep of period_ms may take less real time (speed > 1).
        self.real_sleep_ms = period_ms if real_sleep_ms is None else real_sleep_ms
        self.late_ms = late_ms
        self.worst_ms = 0       # since start
        self.window_ms = 0      # since the caller last reset it
        self.wakes = 0
        self.late = 0           # wakes more than late_ms late

    async def run(self):
        last = time.ticks_ms()
        while True:
            await asyncio.sleep_ms(self.period_ms)
            now = time.ticks_ms()
            gap = time.ticks_diff(now, last) - self.real_sleep_ms
            last = now
            self.wakes += 1
            if gap > self.late_ms:
                self.late += 1
            if gap > self.window_ms:
                self.window_ms = gap
            if gap > self.worst_ms:
                self.worst_ms = gap
