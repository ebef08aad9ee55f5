"""An OpenEVSE charger (its WiFi gateway, v4+) as a modulated load (a load with driver
"openevse"; docs/profile.md, "OpenEVSE"), on OpenEVSE's published MQTT API under its base
topic: panelcap holds an EVSE claim (`<base>/claim/set` {"state": "active",
"charge_current": A} or {"state": "disabled"}), which the gateway echoes, retained, on
`<base>/claim`: the echo is the acknowledgement. `<base>/amp` (milliamps) and
`<base>/state` (the J1772 state number) are its readings, every status period (30 s by
default). The current rules (max_a, nothing between 1 and 5 A, the heartbeat) are
evmqtt.MqttCharger's; this adds the claim, its echo and the profile's freshness rules:
silent 3 periods, or its echo not showing the command 3 periods after it was sent, or a
stuck relay reported: lost (feedback.py: shed, its rated power counted). Imported only
when a load names this driver."""

import json

from micropython import const

from evmqtt import MqttCharger
from pcpdevice import serve

_PERIODS = const(3)              # the profile's rule: silent 3 report periods, gone
_STATE_MAX = const(255)          # OpenEVSE's state numbers: 0..255 (254 sleeping, 255 disabled)
_STATE_STUCK_RELAY = const(8)    # its relay welded: it cannot stop charging


class OpenEvse(MqttCharger):
    def __init__(self, clock, base, max_a, report_ms, log=print):
        MqttCharger.__init__(self, clock, max_a, base + "/claim/set", base + "/amp",
                             _PERIODS * report_ms, True, log)
        self.topics = ((base + "/amp", self.on_report), (base + "/state", self.on_state),
                       (base + "/claim", self.on_claim))
        self.claimed_a = None        # what its claim echo shows; None: none, or not ours
        self.evse_state = None       # its last state number
        self._agree_ms = clock.ticks_ms()   # last time the echo showed the command
        self._lost = False

    # --- the network side -------------------------------------------------------------
    def attach(self, link):
        self.link = link
        for topic, handler in self.topics:
            link.route(topic, handler)

    def on_state(self, msg):
        try:
            s = int(msg)
        except ValueError:
            self.bad_reports += 1
            return
        if not 0 <= s <= _STATE_MAX:
            self.bad_reports += 1
            return
        self.evse_state = s
        self._report_ms = self._clock.ticks_ms()   # a reading: it is alive
        self.reports += 1

    def on_claim(self, msg):
        try:
            d = json.loads(msg)
            state = d["state"]
            if state == "disabled":
                a = 0
            elif state == "active":
                a = d["charge_current"]
                if not isinstance(a, int) or not 0 <= a <= 80:
                    raise ValueError
            else:
                a = None             # "null": no claim of panelcap's
        except Exception:  # untrusted bytes: whatever the parser objects to is a bad report
            self.bad_reports += 1
            return
        self.claimed_a = a
        if a == self.amps:
            self._agree_ms = self._clock.ticks_ms()

    def confirmed(self, now):
        clock = self._clock
        agree = self.claimed_a == self.amps
        if agree:
            self._agree_ms = now
        if clock.ticks_diff(now, self._report_ms) > self.timeout_ms or \
                clock.ticks_diff(now, self._agree_ms) > self.timeout_ms or \
                self.evse_state == _STATE_STUCK_RELAY or (self._lost and not agree):
            # Once lost, back only when the echo shows the command again: a charger that
            # talks while still holding a higher claim is not under control yet.
            self.actual_ma = -1      # a stale reading is no reading
            self._lost = True
            return False
        self._lost = False
        return True

    def run(self):
        """Subscribes after every (re)connect of the link, and claims again."""
        return serve(self, self._clock)

    def wake(self, now, reconnected):
        if reconnected:
            self._send(self.amps, now)

    # --- the actuator -----------------------------------------------------------------
    def set_amps(self, amps):
        before = self.amps
        MqttCharger.set_amps(self, amps)
        if self.amps != before:
            self._agree_ms = self._clock.ticks_ms()    # its echo has timeout_ms to show it

    def _send(self, amps, now):
        self._sent_ms = now
        link = self.link
        if link is None:
            return
        if amps:
            claim = '{"state":"active","charge_current":%d,"auto_release":false}' % amps
        else:
            claim = '{"state":"disabled","auto_release":false}'
        if amps != self._sent_a:
            link.publish_event(self.set_topic, claim)   # a change must go out
        else:
            link.publish(self.set_topic, claim)         # the heartbeat
        self._sent_a = amps

    def safe(self):
        if self.amps:
            self._agree_ms = self._clock.ticks_ms()
        self.amps = 0
        self._sent_a = -1            # sent as a change
        self._send(0, self._clock.ticks_ms())


def from_spec(spec, load, clock, log=print):
    """The charger of `load` (driver "openevse"): spec's device (its MQTT base topic) and
    report_s (its status period, 30 s if not given)."""
    return OpenEvse(clock, spec["device"], load.max_a, spec.get("report_s", 30) * 1000, log)
