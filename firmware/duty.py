"""Duty mode's rolling limit: the panel may run up to 100 % of its rating at any moment, but
its average over any three hours stays at or under 80 %, the continuous-load rule read as
what it is (a duty limit) rather than a ceiling at every second. A limit source, like the
demand window: it can only tighten the 100 % limit the setpoint then holds."""
# Opt-in and protected (config duty_mode): where the authority asks for an NEC 750 setpoint,
# that setpoint is the 80 % limit held at every second, not this (docs/shed.md).
#
# The last three hours are 180 one-minute buckets of average W (array('i'), preallocated).
# Each minute may average at most 180 x 80 % - the sum of the 179 minutes before it, and
# within the minute the limit is what is left of that minute's energy over its seconds left.
# At boot the past three hours are unknown: they count as spent at 80 %, so the first limit
# is the 80 % one, and room appears only as measured minutes replace the assumed ones.

from array import array

from micropython import const

SOURCE = "duty"
WINDOW_MIN = const(180)        # three hours of one-minute buckets
_MINUTE_MS = const(60000)
_MAX_W = const(200000)         # a reading above this is a fault, counted as this
_MAX_STEP_MS = const(5000)     # a longer gap between steps counts as this long
_LIMIT_CAP_W = const(500000)   # Limits.set's own bound
_HELD_PCT = const(79)          # the three-hour average it holds, % of the rating


class DutyWindow:
    """limits: the Limits (its setpoint is 100 % of the rating in duty mode); rating_w: the
    panel's rating in W; the rolling average is held at 79 % of it (80 % with a point kept)."""

    def __init__(self, limits, clock, rating_w):
        self.limits = limits
        self.clock = clock
        # Held at 79 %: a three-hour span starts at any second, not on a minute, and a load
        # follows a cut only after its response time; the point kept in hand covers both
        # (a replay at 80 % came out at 80.1 %).
        self.avg_cap_w = rating_w * _HELD_PCT // 100
        self.minutes = array("i", [self.avg_cap_w] * WINDOW_MIN)   # assumed spent at boot
        self._head = 0                 # the oldest bucket, replaced when a minute ends
        self._sum_prev = self.avg_cap_w * (WINDOW_MIN - 1)   # the 179 minutes before this
        self._minute_ms = clock.ticks_ms()
        self._ws = 0                   # this minute's energy, W*s ...
        self._rem_wms = 0              # ... and what is under a W*s
        self._last_ms = None
        self.allowed_w = None

    def average_w(self):
        """The last three hours' mean power, the minute in progress counted as it stands."""
        return (self._sum_prev + self._ws // 60) // WINDOW_MIN

    def step(self, import_w):
        clock = self.clock
        now = clock.ticks_ms()
        w = import_w if import_w > 0 else 0
        if w > _MAX_W:
            w = _MAX_W
        last = self._last_ms
        self._last_ms = now
        if last is not None:
            dt = clock.ticks_diff(now, last)
            if dt > 0:
                e = w * (dt if dt < _MAX_STEP_MS else _MAX_STEP_MS) + self._rem_wms
                self._ws += e // 1000
                self._rem_wms = e % 1000
        elapsed = clock.ticks_diff(now, self._minute_ms)
        while elapsed >= _MINUTE_MS:
            self._close_minute()
            elapsed -= _MINUTE_MS
            self._minute_ms = clock.ticks_add(self._minute_ms, _MINUTE_MS)
        # What this minute may still use so the 180-minute sum stays at 180 x the cap.
        minute_w = self.avg_cap_w * WINDOW_MIN - self._sum_prev
        if minute_w > _LIMIT_CAP_W:
            minute_w = _LIMIT_CAP_W        # x 60 stays a small int
        left_s = (_MINUTE_MS - elapsed + 999) // 1000
        allowed = (minute_w * 60 - self._ws) // left_s
        if allowed < 0:
            allowed = 0
        elif allowed > _LIMIT_CAP_W:
            allowed = _LIMIT_CAP_W
        prev = self.allowed_w
        # Down at once; up by 1 % or more, so a modulated load does not follow each rounding.
        if prev is None or allowed < prev or allowed - prev >= prev // 100 + 1:
            self.allowed_w = allowed
            self.limits.set(SOURCE, w=allowed)

    def _close_minute(self):
        m = self.minutes
        h = self._head
        avg = self._ws // 60
        # The bucket leaving the 179 before the next minute is the oldest; this minute joins.
        self._sum_prev += avg - m[(h + 1) % WINDOW_MIN]
        m[h] = avg
        self._head = (h + 1) % WINDOW_MIN
        self._ws = 0
        self._rem_wms = 0
