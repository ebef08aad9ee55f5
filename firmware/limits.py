"""The panel's limits, one home for their rules: the panel's shape (legs), its rating and the
80 % setpoint, the cap a big uncontrolled load puts on the target, and the limit sources
(schedule, grid, remote) of which the strictest wins (Limits)."""
# config.py (validation, the console's figures), the build, the controller (shed.py), grid,
# commands and the console read it. The rules themselves are in panelrules.py (re-exported
# here); the constructor's checks run in shedsetup.py, dropped after the build: kept here
# they cost the plain run 3 KB of heap.

from panelrules import (NO_LIMIT, SETPOINT_PCT, SYSTEMS, LEGS, check_int, legs,  # noqa: F401
                        rating_w, max_setpoint_a, max_setpoint_w, leg_volts,
                        uncontrolled_caps)


def _below(new, old):
    """A value (W or mA, None: no limit) lower than the one it replaces."""
    return new is not None and (old is None or new < old)


class Limits:
    """Installer setpoint plus other limit sources (schedule, grid); the strictest one wins.

    Two limits: the one *in force* (in_force(): the sources that have started; what the
    compliance log judges against) and the one the controller *plans* with (effective()):
    the same, except that a queued source (a known boundary: a reservation's end, a lower
    schedule interval, a window's end) counts from lead_ms before its start, so loads slow
    to respond are turned down in time and the step lands with no excursion. A lower limit
    set at once (an emergency, a remote limit, a cancel) has no notice: `cuts` counts them,
    so the compliance log can name such an overshoot unannounced."""

    lead_ms = 0     # the app sets it: the slowest load's response_s plus one control period
    _near = 0       # queued sources within lead_ms of their start, as _expire last counted
    cuts = 0        # limits lowered without notice (set() below the source's last value)

    def __init__(self, setpoint_w=None, setpoint_a=None, volts=120, band_pct=5, rating_a=None,
                 big_uncontrolled_w=0, big_uncontrolled_leg="L1L2", clock=None, system="split",
                 duty=False):
        # duty: duty mode (duty.py), the setpoint may reach 100 % of the rating, and the
        # 80 % rule is held as a three-hour average by the "duty" source.
        # The checks and the fields: shedsetup.init_limits, imported to build and dropped by
        # the app after, so this code is not in RAM while the controller runs.
        import shedsetup
        shedsetup.init_limits(self, setpoint_w, setpoint_a, volts, band_pct, rating_a,
                              big_uncontrolled_w, big_uncontrolled_leg, clock, system, duty)

    def add_uncontrolled(self, rated_w, leg="L1L2"):
        """List an uncontrolled load; the target drops so its surprise start stays under the
        rating (uncontrolled_caps, applied by shedsetup once, not on every effective())."""
        import shedsetup
        shedsetup.add_uncontrolled(self, rated_w, leg)

    def set(self, name, w=None, a=None, until_ms=None, from_ms=None):
        """Add or replace a limit source: total watts and/or amps per leg, optionally from
        one tick (a limit queued for an interval boundary) until another. A source named
        "x>" with from_ms is x's next value: at from_ms it replaces x."""
        if w is None and a is None:
            raise ValueError("error: limit %r needs w or a" % (name,))
        self._catch_up()
        new = [None if w is None else check_int("w", w, 0, 500000, "W"),
               None if a is None else check_int("a", a, 0, 2000, "A") * 1000, until_ms, from_ms]
        if from_ms is None:
            old = self._sources.get(name)
            if old is None or old[3] is not None or _below(new[0], old[0]) or \
                    _below(new[1], old[1]):
                self.cuts += 1      # in force at once, lower than before: no notice
        self._sources[name] = new
        self.version += 1

    def clear(self, name):
        self._catch_up()
        if self._sources.pop(name, None) is not None:
            self.version += 1

    def _catch_up(self):
        # A queued "x>" whose start has passed is x's own since then, whether or not an
        # update has looked: what is set or cleared now comes after it, never under it.
        if self.clock is not None and self._sources:
            self._expire(self.clock.ticks_ms())

    def sources(self):
        return list(self._sources)

    def in_force_w(self):
        """{source: W} of the sources limiting total watts now (queued ones left out)."""
        out = {}
        for name in self._sources:
            src = self._sources[name]
            if src[3] is None and src[0] is not None:
                out[name] = src[0]
        return out

    def in_force_ma(self):
        """{source: mA per leg} of the sources limiting amps now (queued ones left out)."""
        out = {}
        for name in self._sources:
            src = self._sources[name]
            if src[3] is None and src[1] is not None:
                out[name] = src[1]
        return out

    def strictest(self):
        """Name of the source that sets the total-watt limit: 'setpoint' unless one is lower."""
        w = NO_LIMIT if self.setpoint_w is None else self.setpoint_w
        name = "setpoint"
        for key in self._sources:
            src = self._sources[key]
            if src[3] is None and src[0] is not None and src[0] < w:
                w = src[0]
                name = key
        return name

    def _expire(self, now_ms):
        clock = self.clock
        nxt = None
        near = 0             # queued sources within lead_ms of their start: planned with
        srcs = self._sources
        names = srcs
        if clock is not None:
            for name in srcs:
                src = srcs[name]
                if (src[3] is not None and clock.ticks_diff(now_ms, src[3]) >= 0) or \
                        (src[2] is not None and clock.ticks_diff(now_ms, src[2]) >= 0):
                    # Something starts or ends: walk a copy of the names, the table changes.
                    # Otherwise nothing is allocated (the compliance monitor reads the limit
                    # in force every control period).
                    names = list(srcs)
                    break
        for name in names:
            src = srcs.get(name)
            if src is None or clock is None:
                continue     # gone: a queued "x>" took x's place and ended with it
            start = src[3]
            if start is not None:
                ahead = clock.ticks_diff(start, now_ms)
                if ahead > 0:
                    if ahead > self.lead_ms:
                        # the controller looks again when it starts to plan with it
                        ahead -= self.lead_ms
                    else:
                        near += 1
                    if nxt is None or ahead < clock.ticks_diff(nxt, now_ms):
                        nxt = clock.ticks_add(now_ms, ahead)
                    continue
                src[3] = None
                self.version += 1
                if name[-1] == ">":
                    # "x>" is x's next value, queued for x's boundary: now it is x's own, so
                    # the source in force is never reported under the queued name.
                    del self._sources[name]
                    name = name[:-1]
                    self._sources[name] = src
            until = src[2]
            if until is None:
                continue
            if clock.ticks_diff(now_ms, until) >= 0:
                del self._sources[name]
                self.version += 1
            elif nxt is None or clock.ticks_diff(until, nxt) < 0:
                nxt = until
        self.next_expiry_ms = nxt
        if near != self._near:
            # One more planned with (or one fewer): whoever looked first (the controller, the
            # compliance monitor, telemetry), a cache kept by version sees it.
            self._near = near
            self.version += 1

    def effective(self, now_ms=None):
        """(total W, per-leg mA) to plan with now: in force, or queued to start within
        lead_ms; NO_LIMIT where nothing limits. Drops expired sources."""
        self._limit(now_ms, self.lead_ms)
        return self.limit_w, self.limit_ma

    def in_force(self, now_ms=None):
        """The limit in force now, left in limit_w and limit_ma (NO_LIMIT where nothing
        limits) and its sources' names in source_w and source_a ("setpoint" where none is
        lower): attributes, so the compliance monitor's steady sample allocates nothing."""
        self._limit(now_ms, 0)

    def _limit(self, now_ms, lead):
        if now_ms is None and self.clock is not None:
            now_ms = self.clock.ticks_ms()
        if now_ms is not None:
            self._expire(now_ms)
        else:
            lead = 0
        w = NO_LIMIT if self.setpoint_w is None else self.setpoint_w
        ma = NO_LIMIT if self.setpoint_a is None else self.setpoint_a * 1000
        cap_w = self._cap_w
        if cap_w < NO_LIMIT:
            # Held low enough that the biggest listed uncontrolled load starting by surprise
            # still leaves the panel at or under its rating (uncontrolled_caps).
            cap_ma = self._cap_ma
            if ma < NO_LIMIT:
                ma = min(ma, cap_ma)
            if w < NO_LIMIT:
                w = min(w, cap_w)
            if w >= NO_LIMIT and ma >= NO_LIMIT:
                ma = cap_ma
        src_w = src_a = "setpoint"
        for name in self._sources:
            src = self._sources[name]
            if src[3] is not None and (not lead or self.clock.ticks_diff(src[3], now_ms) > lead):
                continue         # queued: not started yet (nor within the lead)
            if src[0] is not None and src[0] < w:
                w = src[0]
                src_w = name
            if src[1] is not None and src[1] < ma:
                ma = src[1]
                src_a = name
        # Planned within the lead, a queued "x>" is named as what it becomes at its start.
        if src_w[-1] == ">":
            src_w = src_w[:-1]
        if src_a[-1] == ">":
            src_a = src_a[:-1]
        self.limit_w = w
        self.limit_ma = ma
        self.source_w = src_w
        self.source_a = src_a

    def effective_w(self, now_ms=None):
        w = self.effective(now_ms)[0]
        return None if w >= NO_LIMIT else w

    def effective_a(self, now_ms=None):
        ma = self.effective(now_ms)[1]
        return None if ma >= NO_LIMIT else ma // 1000
