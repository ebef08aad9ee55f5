"""The mains meter *instead of* the CTs (config mains_source "meter"; docs/profile.md): the
control loop's panel power is the meter's last plausible reading. Freshness rule of the
profile: a meter silent for 3 intervals (or whose readings are all implausible) makes the
measurement invalid, so the shed controller takes its fail-safe (every controllable load
shed and counted as drawn), as stale CT data does. A slow meter hides a rise for up to one
interval, so a stricter limit holds while it is the source: 1 % of the setpoint per second
of interval (10 % for a DSMR 4's 10 s), source "mains_source". Imported only then."""

SOURCE = "mains_source"


def margin_pct(interval_s):
    return interval_s if interval_s < 20 else 20


class MeterMeasurement:
    """What shed.Controller.update reads (valid, t_ms, total_w, leg_ma, meter), from a
    mainscheck.MainsCheck's readings. Per-leg: the dialect's own legs when it has them,
    else the whole reading on every leg (fails toward shedding)."""

    def __init__(self, check, clock, legs, volts):
        self._check = check
        self._clock = clock
        self._nlegs = legs
        self._volts = volts
        self.meter = None            # the sampler's meter, for loads' own CT channels
        self.valid = False
        self.t_ms = clock.ticks_ms()
        self.total_w = 0
        self.leg_ma = [0, 0]         # shed.py reads two legs; a 1-leg system's second: 0

    def refresh(self, sampler):
        chk = self._check
        now = self._clock.ticks_ms()
        self.meter = sampler.meter
        w = chk.meter_w
        # The staleness check: silent 3 intervals (or never heard) is no measurement.
        fresh = w is not None and self._clock.ticks_diff(now, chk.meter_ms) <= chk.timeout_ms
        self.valid = fresh
        if not fresh:
            return self
        self.t_ms = now
        self.total_w = w
        legs_w = chk.meter_legs
        v = self._volts
        for i in range(self._nlegs):
            lw = legs_w[i] if legs_w and i < len(legs_w) else w
            self.leg_ma[i] = lw * 1000 // v if lw > 0 else 0
        return self
