"""Duty mode's rolling limit: the panel may run up to 100 % of its rating at any moment, but
its average over any three hours stays at or under 80 %, the continuous-load rule read as
what it is (a duty limit) rather than a ceiling at every second. A limit source, like the
demand window: it can only tighten the 100 % limit the setpoint then holds."""
# Opt-in and protected (config duty_mode): where the authority asks for an NEC 750 setpoint,
# that setpoint is the 80 % limit held at every second, not this (docs/shed.md).
#
# The last three hours are 180 one-minute buckets of average W (array('i'), preallocated).
# A minute may use only what leaves every three-hour window it belongs to enough room for
# the uncontrolled base still to come: for each window closing k = 0..179 minutes after this
# one, the cap less the minutes already in it less the most the base has drawn in k minutes
# (learned: the base's highest energy over each span of 1..179 minutes, today or yesterday).
# Spending the whole window on the EV and leaving nothing for the base is what put the
# replays at 81 %: once the window was full, the base's evening cooking had no room, and
# nothing controllable was left to shed (docs/shed.md, "Duty mode").
# Within the minute the limit is what is left of that minute's energy over its seconds left.
# At boot the past three hours are unknown: they count as spent at the cap, so the first
# limit is the cap, and room appears only as measured minutes replace the assumed ones.

from array import array

from micropython import const

from loadkind import KIND_NEVER

SOURCE = "duty"
WINDOW_MIN = const(180)        # three hours of one-minute buckets
_DAY_MIN = const(1440)         # the base's envelope is kept per day: today's and yesterday's
_MINUTE_MS = const(60000)
_MAX_W = const(200000)         # a reading above this is a fault, counted as this
_MAX_STEP_MS = const(5000)     # a longer gap between steps counts as this long
_LIMIT_CAP_W = const(500000)   # Limits.set's own bound
_HELD_PCT = const(79)          # the three-hour average it holds, % of the rating


class DutyWindow:
    """limits: the Limits (its setpoint is 100 % of the rating in duty mode); rating_w: the
    panel's rating in W; the rolling average is held at 79 % of it (80 % with a point kept).
    loads: the controller's shed.Loads: what they draw (metered, else their command) is not
    the uncontrolled base; a 'never' load is part of the base."""
    source = SOURCE                # its key in the status snapshot (snapshot.py)

    def __init__(self, limits, clock, rating_w, loads=()):
        self.limits = limits
        self.clock = clock
        self.loads = [ld for ld in loads if ld.kind != KIND_NEVER]
        # Held at 79 %: a three-hour span starts at any second, not on a minute, and a load
        # follows a cut only after its response time; the point kept in hand covers both.
        self.avg_cap_w = rating_w * _HELD_PCT // 100
        self.minutes = array("i", [self.avg_cap_w] * WINDOW_MIN)   # assumed spent at boot
        self.base = array("i", bytes(4 * WINDOW_MIN))   # the base's minutes, same ring (0: unknown)
        # The base's highest sum of j+1 consecutive minutes (W x min / min): today, yesterday.
        self.env = array("i", bytes(4 * WINDOW_MIN))
        self.env_prev = array("i", bytes(4 * WINDOW_MIN))
        self._day_left = _DAY_MIN
        self._head = 0                 # the oldest bucket, replaced when a minute ends
        self._sum_prev = self.avg_cap_w * (WINDOW_MIN - 1)   # the 179 minutes before this
        self._minute_ms = clock.ticks_ms()
        self._ws = 0                   # this minute's energy, W*s ...
        self._rem_wms = 0              # ... and what is under a W*s
        self._bws = 0                  # the base's share of it, W*s ...
        self._brem_wms = 0
        self._last_ms = None
        self.allowed_w = None
        self.base_w = 0
        self.minute_w = self._plan()   # what this minute may average, W

    def average_w(self):
        """The last three hours' mean power, the minute in progress counted as it stands."""
        return (self._sum_prev + self._ws // 60) // WINDOW_MIN

    def reserve_w(self):
        """The room kept for the base: the most it has drawn over three hours, as an average."""
        r = self.env[WINDOW_MIN - 2]
        p = self.env_prev[WINDOW_MIN - 2]
        return (r if r > p else p) // (WINDOW_MIN - 1)

    def report(self):
        """The window for the status snapshot (MQTT state, the page's API): docs/mqtt.md."""
        return {"avg_w": self.average_w(), "cap_w": self.avg_cap_w, "allowed_w": self.allowed_w,
                "reserve_w": self.reserve_w()}

    def step(self, import_w):
        clock = self.clock
        now = clock.ticks_ms()
        w = import_w if import_w > 0 else 0
        if w > _MAX_W:
            w = _MAX_W
        ctl = 0
        for ld in self.loads:
            m = ld.measured_w
            ctl += m if m >= 0 else ld.command_w()
        b = w - ctl if w > ctl else 0
        self.base_w = b
        last = self._last_ms
        self._last_ms = now
        if last is not None:
            dt = clock.ticks_diff(now, last)
            if dt > 0:
                if dt > _MAX_STEP_MS:
                    dt = _MAX_STEP_MS
                e = w * dt + self._rem_wms
                self._ws += e // 1000
                self._rem_wms = e % 1000
                e = b * dt + self._brem_wms
                self._bws += e // 1000
                self._brem_wms = e % 1000
        elapsed = clock.ticks_diff(now, self._minute_ms)
        if elapsed >= _MINUTE_MS:
            n = elapsed // _MINUTE_MS
            elapsed -= n * _MINUTE_MS
            self._minute_ms = clock.ticks_add(self._minute_ms, n * _MINUTE_MS)
            if n > WINDOW_MIN:
                # After a stall this long the window holds nothing but the stall's empty
                # minutes: closing more would change nothing but the day's count.
                self._day_left -= n - WINDOW_MIN
                n = WINDOW_MIN
            while n:
                self._close_minute()
                n -= 1
            self.minute_w = self._plan()       # once, for the minute now running
        minute_w = self.minute_w
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

    def _plan(self):
        # The least, over the windows this minute belongs to (closing k = 0..179 minutes
        # after it), of the cap less their past minutes less the base's reserve for their k
        # minutes to come. Once a minute: 2 x 180 steps, no allocation.
        m = self.minutes
        env = self.env
        envp = self.env_prev
        h = self._head
        cap = self.avg_cap_w * WINDOW_MIN
        past = self._sum_prev
        best = cap - past
        for k in range(1, WINDOW_MIN):
            past -= m[(h + k) % WINDOW_MIN]          # the window closing k minutes later
            r = env[k - 1]
            rp = envp[k - 1]
            room = cap - past - (r if r > rp else rp)
            if room < best:
                best = room
        return best

    def _close_minute(self):
        m = self.minutes
        h = self._head
        avg = self._ws // 60
        # The bucket leaving the 179 before the next minute is the oldest; this minute joins.
        self._sum_prev += avg - m[(h + 1) % WINDOW_MIN]
        m[h] = avg
        base = self.base
        b = base[h] = self._bws // 60
        # The base's spans ending now: its highest energy over 1..180 minutes, per day.
        self._day_left -= 1
        env = self.env
        if self._day_left <= 0:
            self._day_left = _DAY_MIN
            self.env, self.env_prev = self.env_prev, env
            env = self.env
            for j in range(WINDOW_MIN):
                env[j] = 0
        if b:
            # (a minute of no base adds no span longer than one already kept: skipped, so
            # the empty minutes after a stall cost nothing)
            s = 0
            i = h
            for j in range(WINDOW_MIN):
                s += base[i]
                if s > env[j]:
                    env[j] = s
                i = i - 1 if i else WINDOW_MIN - 1
        self._head = (h + 1) % WINDOW_MIN
        self._ws = 0
        self._rem_wms = 0
        self._bws = 0
        self._brem_wms = 0
