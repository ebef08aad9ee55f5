"""A Tasmota relay with an energy monitor as an on/off load (a load with driver "tasmota";
docs/profile.md, "Adapters"), on Tasmota's published MQTT API with its default FullTopic
%prefix%/%topic%/: the command `cmnd/<topic>/POWER` ON or OFF, its answer and every change
on `stat/<topic>/POWER`, the meter in `tele/<topic>/SENSOR` ({"ENERGY": {"Power": W}} every
TelePeriod), and `tele/<topic>/LWT` (retained Online, Offline as its last will). Relay 1
only. Imported only when a load names this driver."""

import json

from adaptrelay import Relay


class Tasmota(Relay):
    def __init__(self, clock, topic, volts, report_ms, log=print):
        Relay.__init__(self, clock, volts, report_ms, log)
        self.cmnd_topic = "cmnd/" + topic + "/POWER"
        self.topics = (("stat/" + topic + "/POWER", self.on_power),
                       ("tele/" + topic + "/SENSOR", self.on_sensor),
                       ("tele/" + topic + "/LWT", self.on_lwt))

    def on_power(self, msg):
        if msg == b"ON":
            self.seen_state(True)
        elif msg == b"OFF":
            self.seen_state(False)
        else:
            self.bad_reports += 1

    def on_sensor(self, msg):
        try:
            w = json.loads(msg)["ENERGY"]["Power"]
            if isinstance(w, list):
                w = w[0]             # a device with several channels: relay 1's
        except Exception:  # untrusted bytes: whatever the parser objects to is a bad report
            w = None
        if isinstance(w, (int, float)) and not isinstance(w, bool):
            self.seen_power(w)
        else:
            self.bad_reports += 1

    def on_lwt(self, msg):
        self.seen_online(msg == b"Online")

    def command(self, on, change):
        payload = "ON" if on else "OFF"
        if change:
            self.link.publish_event(self.cmnd_topic, payload)   # a change must go out
        else:
            self.link.publish(self.cmnd_topic, payload)


def from_spec(spec, load, clock, log=print):
    """The relay of `load` (driver "tasmota"): spec's device (Tasmota's Topic) and
    report_s (its TelePeriod, 10 s if not given)."""
    return Tasmota(clock, spec["device"], load.volts, spec.get("report_s", 10) * 1000, log)
