"""A load's sensor as a profile device (issue 15 item 2; docs/profile.md, "A load's sensor"):
`loads.<name>.sensor` names a sensor publishing `pcp/<id>/reading` ({"seq", "valid", "w"})
every `report_s`, which confirms what the load draws instead of its CT (its `w` is then the
load's measured draw) or beside it. The profile's freshness rules: no plausible reading for
3 × report_s (silent), or one implausible reading (`valid` not true, `w` not an int in
0..100000 W, `seq` going back other than to 1), and the load's confirmation is lost:
feedback.py counts it as uncontrollable, drawing its rated power. It comes back after
plausible readings for three intervals. Duck-types evmqtt.MqttCharger's confirmation side
(confirmed(now), actual_ma; attach, run) so feedback.Monitor and app.py take it as they take
a charger. Imported by appbuild only when a load names a sensor."""

import asyncio
import json

from micropython import const

_PERIODS = const(3)              # the profile's rule: silent 3 intervals, gone; 3 to come back
_AGREE_PCT = const(10)           # beside a CT: the two agree within this much of rated_w
_AGREE_MIN_W = const(100)        # (and at least this: two meters' error and a reading's age)
_MAX_W = const(100000)           # config's rated_w bound
_WAKE_MS = const(1000)


class LoadSensor:
    """load: the shed.Load it confirms; where the load has its own CT too (its measured_w
    is then the CT's, >= 0, when confirmed() is called), each new reading is compared with
    it, and 3 in a row that disagree by more than tolerance_w lose the load as silence
    does (the profile: where two sensors see the same current, a disagreement is a fault)."""

    def __init__(self, clock, sensor_id, volts, interval_ms, log=print, load=None):
        self._clock = clock
        self.sensor_id = sensor_id
        self.topic = "pcp/" + sensor_id + "/reading"
        self._volts = volts
        self.timeout_ms = _PERIODS * interval_ms
        self._log = log
        self.link = None
        self.w = None                # its last plausible reading
        self.actual_ma = -1          # the same as a current (feedback's unit); -1: none fresh
        self._reading_ms = clock.ticks_ms()   # a first reading is awaited for timeout_ms
        self._seq = None
        self._good = _PERIODS        # plausible readings in a row since it was last gone
        self.readings = 0
        self.bad_readings = 0
        self._subscribed = 0
        self.heartbeat_ms = None
        self.load = load
        rated = load.rated_w if load is not None else 0
        self.tolerance_w = max(_AGREE_MIN_W, rated * _AGREE_PCT // 100)
        self._new = False            # a reading not yet compared with the CT
        self._disagree = 0           # readings in a row that disagree with the CT
        self.disagreements = 0

    def attach(self, link):
        self.link = link
        link.route(self.topic, self.on_reading)

    def on_reading(self, msg):
        try:
            d = json.loads(msg)
            seq = d["seq"]
            w = d["w"]
            ok = d["valid"] is True and isinstance(seq, int) and isinstance(w, int) and \
                0 <= w <= _MAX_W and (self._seq is None or seq > self._seq or seq == 1)
        except Exception:  # untrusted bytes: whatever the parser objects to is implausible
            ok = False
        if not ok:
            # Implausible: gone at once (freshness rule 2), back after 3 good ones.
            self.bad_readings += 1
            self._good = 0
            self.actual_ma = -1
            return
        now = self._clock.ticks_ms()
        if self._clock.ticks_diff(now, self._reading_ms) > self.timeout_ms:
            self._good = 0           # it was silent, whether or not a step saw it yet
        self._seq = seq
        self.w = w
        self._reading_ms = now
        self._good += 1
        self._new = True
        self.readings += 1
        self.actual_ma = w * 1000 // self._volts

    def confirmed(self, now):
        if self._clock.ticks_diff(now, self._reading_ms) > self.timeout_ms:
            self._good = 0           # silent: gone; back after 3 readings in a row
        load = self.load
        if self._new and load is not None and load.measured_w >= 0:
            self._new = False
            d = self.w - load.measured_w
            if d > self.tolerance_w or -d > self.tolerance_w:
                self._disagree += 1
                self.disagreements += 1
                if self._disagree == _PERIODS:
                    self._log("sensor %s disagrees with %s's CT: CT %d W, sensor %d W" % (
                        self.sensor_id, load.name, load.measured_w, self.w))
            else:
                self._disagree = 0
        if self._disagree >= _PERIODS:
            self._good = 0           # lost as silence is: back after 3 that agree
        if self._good < _PERIODS:
            self.actual_ma = -1      # what it said is no reading of the load now
            return False
        return True

    async def run(self):
        """Subscribes after every (re)connect of the link."""
        while True:
            link = self.link
            self.heartbeat_ms = self._clock.ticks_ms()
            if link is not None and link.connected and link.connects != self._subscribed \
                    and link.subscribe(self.topic):
                self._subscribed = link.connects   # refused: silence, handled
            await asyncio.sleep_ms(_WAKE_MS)


def from_spec(spec, load, clock, log=print):
    """The sensor of `load`: spec's sensor (a profile device id), every report_s (10 s)."""
    return LoadSensor(clock, spec["sensor"], load.volts, spec.get("report_s", 10) * 1000, log,
                      load)
