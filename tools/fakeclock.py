"""The fake clock of tests and tools: clock.WrappingClock's ESP32 ticks (wrap at 2**30) over
a time that moves only when told, started just below the wrap so every timer crosses it."""

from clock import WrappingClock


class FakeClock(WrappingClock):
    """`t` is the current tick: advance(ms) moves it across the wrap, set(t) puts it anywhere.
    Starts before_wrap_ms below the wrap, or at t where given."""

    def __init__(self, before_wrap_ms=5000, t=None):
        super().__init__(None)      # ticks_ms reads t itself: no source to call
        self.t = self.ticks_add(0, -before_wrap_ms) if t is None else t

    def ticks_ms(self):
        return self.t

    def advance(self, ms):
        self.t = self.ticks_add(self.t, ms)

    def set(self, t):
        self.t = t
