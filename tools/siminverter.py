"""A PV inverter whose output can be capped, simulated for firmware/curtail.py (the replay,
tools/replay_mpy.py, and tests/test_curtail.py): it follows a new cap response_s after it is
sent, and delivers what the sun gives up to that cap."""


class SimInverter:
    def __init__(self, rated_w, response_s):
        self.rated_w = rated_w
        self.cap_w = rated_w         # the cap last commanded
        self.output_w = -1           # what it delivered last second (its report)
        self.response_ms = response_s * 1000
        self.effective = rated_w     # the cap it follows now
        self.shown_w = rated_w       # what its state shows: the cap it follows
        self._delay = response_s
        self._pending = []           # (second it takes effect, cap)
        self._t = 0
        self.curtailed_ws = 0        # sun it did not deliver for its cap

    def set_cap(self, w):
        self.cap_w = w
        self._pending.append((self._t + self._delay, w))

    def tick(self, t, sun_w):
        """What it delivers in second t with sun_w available."""
        self._t = t
        while self._pending and self._pending[0][0] <= t:
            self.effective = self.shown_w = self._pending.pop(0)[1]
        out = sun_w if sun_w < self.effective else self.effective
        self.curtailed_ws += sun_w - out
        self.output_w = out
        return out
