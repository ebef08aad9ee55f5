"""The mains reading of an IP meter beside the CTs, cross-checked (issue 15 item 2; docs/profile.md,
"A mains meter beside the CTs"): the meter speaks the device profile as a sensor
(`pcp/<id>/reading`, {"seq", "valid", "w"}). Each control step with a fresh CT reading and
a new meter reading compares the two; a disagreement beyond the tolerance three readings in
a row is a fault: the check's limit source goes to 0 W, so every controllable load is shed
(panelcap fails toward shedding), until three readings in a row agree again. A silent
meter (3 intervals) only loses the check, logged; an implausible reading (not valid, out of
range, its seq going back) counts as none. Imported by netsetup only when mains_meter is set."""

import asyncio
import json

from micropython import const

SOURCE = "mains_check"          # the limits.Limits source the fault lives in
_AGREE = const(3)               # readings in a row that raise or clear the fault
_MAX_W = const(500000)
_WAKE_MS = const(1000)


class MainsCheck:
    """A control source (step(ct_total_w), as control.ControlLoop.sources) and the meter's
    MQTT side (attach(link), run())."""

    def __init__(self, limits, clock, sensor_id, interval_ms, tolerance_w, log=print):
        self.limits = limits
        self._clock = clock
        self.topic = "pcp/" + sensor_id + "/reading"
        self.timeout_ms = 3 * interval_ms
        self.tolerance_w = tolerance_w
        self._log = log
        self.link = None
        self.meter_w = None          # the meter's last plausible reading
        self._meter_ms = clock.ticks_ms()
        self._new = False            # a reading arrived since the last comparison
        self._seq = None
        self.fault = False
        self.silent = False
        self._run = 0                # comparisons in a row that disagree (>0) or agree (<0)
        self.readings = 0
        self.bad_readings = 0
        self.disagreements = 0
        self._subscribed = 0
        self.heartbeat_ms = None

    # --- the meter ---------------------------------------------------------------------
    def attach(self, link):
        self.link = link
        link.route(self.topic, self.on_reading)

    def on_reading(self, msg):
        try:
            d = json.loads(msg)
            seq = d["seq"]
            w = d["w"]
            ok = d["valid"] is True and isinstance(seq, int) and isinstance(w, int) and \
                not isinstance(w, bool) and -_MAX_W <= w <= _MAX_W and \
                (self._seq is None or seq > self._seq or seq == 1)   # 1: it restarted
        except Exception:  # untrusted bytes: whatever the parser objects to counts as none
            ok = False
        if not ok:
            self.bad_readings += 1
            return
        self._seq = seq
        self.meter_w = w
        self._meter_ms = self._clock.ticks_ms()
        self._new = True
        self.readings += 1

    async def run(self):
        """Subscribes after every (re)connect of the link."""
        while True:
            link = self.link
            self.heartbeat_ms = self._clock.ticks_ms()
            if link is not None and link.connected and link.connects != self._subscribed \
                    and link.subscribe(self.topic):
                self._subscribed = link.connects
            await asyncio.sleep_ms(_WAKE_MS)

    # --- the check (the control task calls it: never waits) ------------------------------
    def step(self, ct_total_w):
        now = self._clock.ticks_ms()
        if self._clock.ticks_diff(now, self._meter_ms) > self.timeout_ms:
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
