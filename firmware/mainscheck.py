"""The mains reading of an IP meter beside the CTs, cross-checked (issue 15 item 2; docs/profile.md,
"A mains meter beside the CTs"). Each control step with a fresh CT reading and a new meter
reading compares the two; a disagreement beyond the tolerance three readings in a row is a
fault: the check's limit source goes to 0 W, so every controllable load is shed (panelcap
fails toward shedding), until three readings in a row agree again. A silent meter (3
intervals) only loses the check, logged; an implausible reading counts as none. Imported by
netsetup only when mains_meter is set.

The meter speaks a dialect (config mains_meter_dialect), the seam to other makers' meters:
a module `mains_<dialect>.py`, imported only when configured, exporting

    topics(device) -> tuple of the MQTT topics to subscribe to (device: mains_meter)
    parse(topic, payload) -> the mains power in whole W (import positive, export
        negative), or None for a message that is not a reading; raises ValueError with a
        one-line reason for an implausible one (it then counts as none).

"profile" (mains_profile.py): a device-profile sensor, pcp/<id>/reading."""

import asyncio

from micropython import const

SOURCE = "mains_check"          # the limits.Limits source the fault lives in
_AGREE = const(3)               # readings in a row that raise or clear the fault
_WAKE_MS = const(1000)


class MainsCheck:
    """A control source (step(ct_total_w) and report(), as control.ControlLoop.sources) and
    the meter's MQTT side (attach(link), run())."""

    source = "mains_meter"       # its key in the status snapshot (snapshot.py)

    def __init__(self, limits, clock, dialect, device, interval_ms, tolerance_w, log=print):
        self.limits = limits
        self._clock = clock
        self._dialect = dialect          # a mains_<dialect> module (the seam above)
        self.topics = dialect.topics(device)
        self.timeout_ms = 3 * interval_ms
        self.tolerance_w = tolerance_w
        self._log = log
        self.link = None
        self.meter_w = None          # the meter's last plausible reading
        self.meter_legs = None       # its per-leg W, when the dialect has legs(payload)
        self.meter_ms = clock.ticks_ms()
        self._new = False            # a reading arrived since the last comparison
        self.fault = False
        self.silent = False
        self._run = 0                # comparisons in a row that disagree (>0) or agree (<0)
        self.readings = 0
        self.bad_readings = 0
        self.last_error = None
        self.disagreements = 0
        self._subscribed = 0
        self.heartbeat_ms = None

    # --- the meter ---------------------------------------------------------------------
    def attach(self, link):
        self.link = link
        for t in self.topics:
            link.route(t, self._handler(t))

    def _handler(self, topic):
        return lambda msg: self.on_reading(msg, topic)

    def on_reading(self, msg, topic=None):
        try:
            w = self._dialect.parse(topic if topic is not None else self.topics[0], msg)
        except Exception as e:  # untrusted bytes: whatever the parser objects to counts as none
            self.bad_readings += 1
            self.last_error = str(e)
            return
        if w is None:
            return
        legs = getattr(self._dialect, "legs", None)
        if legs is not None:
            try:
                self.meter_legs = legs(msg) or None
            except Exception:  # no legs is no reason to refuse the total
                self.meter_legs = None
        self.meter_w = w
        self.meter_ms = self._clock.ticks_ms()
        self._new = True
        self.readings += 1

    async def run(self):
        """Subscribes after every (re)connect of the link."""
        while True:
            link = self.link
            self.heartbeat_ms = self._clock.ticks_ms()
            if link is not None and link.connected and link.connects != self._subscribed \
                    and all(link.subscribe(t) for t in self.topics):
                self._subscribed = link.connects
            await asyncio.sleep_ms(_WAKE_MS)

    def report(self):
        """The meter's part of the status snapshot (MQTT state, /api/status, status())."""
        return {"meter_w": self.meter_w, "fault": self.fault, "silent": self.silent,
                "readings": self.readings, "bad_readings": self.bad_readings,
                "disagreements": self.disagreements}

    # --- the check (the control task calls it: never waits) ------------------------------
    def step(self, ct_total_w):
        now = self._clock.ticks_ms()
        if self._clock.ticks_diff(now, self.meter_ms) > self.timeout_ms:
            if not self.silent:
                self.silent = True
                self._log("mains meter: silent: no cross-check%s" %
                          (" (fault held until they agree)" if self.fault else ""))
            return
        if self.silent:
            self.silent = False
            self._log("mains meter: back")
        if not self._new:
            return
        self._new = False
        diff = self.meter_w - ct_total_w
        if diff > self.tolerance_w or -diff > self.tolerance_w:
            self.disagreements += 1
            self._run = self._run + 1 if self._run > 0 else 1
            if self._run >= _AGREE and not self.fault:
                self.fault = True
                self.limits.set(SOURCE, w=0)
                self._log("alarm: mains meter disagrees: CTs %d W, meter %d W: every load shed"
                          % (ct_total_w, self.meter_w))
        else:
            self._run = self._run - 1 if self._run < 0 else -1
            if -self._run >= _AGREE and self.fault:
                self.fault = False
                self.limits.clear(SOURCE)
                self._log("alarm: mains meter agrees again: cleared")
