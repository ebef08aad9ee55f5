"""An EV charger that takes its current over MQTT and reports what it draws, in the style of
OpenEVSE's and evcc's MQTT interfaces (topics in docs/mqtt.md). panelcap publishes the
current it allows on every change and again every heartbeat; the charger's reports are its
confirmation: when they stop for timeout_ms the charger counts as lost (feedback.py), and
its draw as uncontrollable. Imported only when a load has driver "mqtt"."""

import asyncio

from micropython import const

from actuators import J1772_MIN_A

_MAX_REPORT_A = const(100)
_WAKE_MS = const(1000)


class MqttCharger:
    """The actuator (set_amps, apply, safe, amps) and the confirmation (confirmed(now),
    actual_ma). Talks to the MQTT link only through its public, non-blocking methods (publish,
    route, subscribe); attach(link) once the link exists, and run() keeps the subscription."""

    def __init__(self, clock, max_a, set_topic, current_topic, timeout_ms, unit_ma=False,
                 log=print):
        self._clock = clock
        self.max_a = max_a
        self.set_topic = set_topic
        self.current_topic = current_topic
        self.timeout_ms = timeout_ms
        self.heartbeat_period_ms = timeout_ms // 3
        self._unit_ma = unit_ma
        self._log = log
        self.link = None
        self.amps = 0                # what panelcap allows now
        self.actual_ma = -1          # what the charger last said it draws; -1: never said
        now = clock.ticks_ms()
        self._report_ms = now        # a first report is awaited for timeout_ms after boot
        self._sent_a = -1
        self._sent_ms = now
        self._subscribed = 0         # link.connects when the subscription was last sent
        self.reports = 0
        self.bad_reports = 0
        self.heartbeat_ms = None

    # --- the network side -------------------------------------------------------------
    def attach(self, link):
        """The charger's reports come to on_report; the link's other messages go on as before."""
        self.link = link
        link.route(self.current_topic, self.on_report)

    def on_report(self, msg):
        try:
            value = float(msg)
        except ValueError:
            self.bad_reports += 1
            return
        if self._unit_ma:
            value /= 1000
        if not 0 <= value <= _MAX_REPORT_A:
            self.bad_reports += 1
            return
        self.actual_ma = int(value * 1000 + 0.5)
        self._report_ms = self._clock.ticks_ms()
        self.reports += 1

    def confirmed(self, now):
        return self._clock.ticks_diff(now, self._report_ms) <= self.timeout_ms

    async def run(self):
        """Subscribes to the charger's reports after every (re)connect of the link."""
        while True:
            link = self.link
            self.heartbeat_ms = self._clock.ticks_ms()
            if link is not None and link.connected and link.connects != self._subscribed \
                    and link.subscribe(self.current_topic):
                # A refused subscription shows up as silence, and silence is handled.
                self._subscribed = link.connects
                self._send(self.amps, self.heartbeat_ms)
            await asyncio.sleep_ms(_WAKE_MS)

    # --- the actuator -----------------------------------------------------------------
    def set_amps(self, amps):
        amps = int(amps)
        if amps > self.max_a:
            amps = self.max_a        # never above the charger's or the circuit's rating
        if amps < J1772_MIN_A:
            amps = 0
        self.amps = amps
        now = self._clock.ticks_ms()
        if amps != self._sent_a or \
                self._clock.ticks_diff(now, self._sent_ms) >= self.heartbeat_period_ms:
            self._send(amps, now)

    def _send(self, amps, now):
        self._sent_ms = now
        if self.link is not None:
            self.link.publish(self.set_topic, str(amps))
            self._sent_a = amps

    def apply(self, load):
        self.set_amps(load.setpoint_a if load.on else 0)

    def safe(self):
        self.amps = 0
        self._send(0, self._clock.ticks_ms())


def from_cfg(cfg, load, clock, log=print):
    """The charger of `load` (driver "mqtt") from the configuration's charger_* settings."""
    return MqttCharger(clock, load.max_a, cfg["charger_set_topic"], cfg["charger_current_topic"],
                       cfg["charger_timeout_s"] * 1000, cfg["charger_current_unit"] == "mA", log)
