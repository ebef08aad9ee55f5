"""The one place firmware reads time: wraps ticks_ms so tests can inject a clock, and reads
the wall clock (the RTC) where one was set."""

import time


class Clock:
    """Real time. Code never adds, subtracts or compares raw ticks: ticks wrap (2**30 ms on
    the ESP32, about 12 days), so every sum and difference goes through these methods."""

    def __init__(self):
        # The builtins themselves, not methods that call them: the controller reads the
        # clock a dozen times per update, and each Python call costs a frame on the board.
        self.ticks_ms = time.ticks_ms
        self.ticks_diff = time.ticks_diff
        self.ticks_add = time.ticks_add

    def sleep_ms(self, ms):
        # Blocks: only for the console, whose commands run with the controller stopped.
        time.sleep_ms(ms)


class WrappingClock:
    """Ticks that wrap at 2**30 like the ESP32's, on any port, driven by `now_ms()` of a
    source; used by the simulator and tests so the host's 2**62 period hides nothing."""

    PERIOD = 1 << 30

    def __init__(self, now_ms, sleep_ms=None):
        # sleep_ms(ms), where given, lets the source's time pass (the console's waits).
        self._now_ms = now_ms
        if sleep_ms is not None:
            self.sleep_ms = sleep_ms
        if time.ticks_add(0, -1) == self.PERIOD - 1:
            # A 32-bit port wraps where the ESP32 does: its own ticks_* do the same sums
            # without the intermediate values past 2**30 that would be heap ints there.
            self.ticks_diff = time.ticks_diff
            self.ticks_add = time.ticks_add

    def ticks_ms(self):
        return self._now_ms() & (self.PERIOD - 1)

    def ticks_diff(self, a, b):
        half = self.PERIOD >> 1
        return ((a - b + half) & (self.PERIOD - 1)) - half

    def ticks_add(self, t, delta_ms):
        return (t + delta_ms) & (self.PERIOD - 1)


def wall_unix():
    """Unix seconds from the RTC if it was ever set (not at an ESP32's boot), else None:
    grid.GridTask then asks an SNTP server itself."""
    t = time.time() + (946684800 if time.gmtime(0)[0] == 2000 else 0)   # ESP32: from 2000
    return t if t >= 1704067200 else None
