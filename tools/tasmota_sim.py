#!/usr/bin/env python3
"""A Tasmota relay with an energy monitor, simulated in CPython on the project's MQTT client,
speaking Tasmota's published MQTT API with the default FullTopic %prefix%/%topic%/, so the
firmware's adapter (firmware/adapt_tasmota.py) can be tested against the dialect, not
against itself:

- `cmnd/<topic>/POWER` with ON, OFF, TOGGLE (or 1, 0, 2; any case), or empty to ask: the
  answer on `stat/<topic>/RESULT` ({"POWER": "ON"}) and `stat/<topic>/POWER` (ON / OFF);
- every TelePeriod: `tele/<topic>/STATE` ({"Time", "UptimeSec", "POWER"}) and
  `tele/<topic>/SENSOR` ({"Time", "ENERGY": {"Total", "Power", "Voltage", "Current", ...}});
- `tele/<topic>/LWT`: Online (retained) at start; Offline, as the broker publishes a
  Tasmota's last will, when it is made to drop off (`offline()`);
- PulseTime (`--pulse-s`): on, the relay turns itself off this long after the last ON.

    tools/tasmota_sim.py --broker HOST:PORT --topic TOPIC [--rated-w W] [--tele-period S]
        [--pulse-s S] [--seconds S]

Tests drive its faults from Python: silent() (it stops talking), resume(), offline(),
online(), stuck(True) (it answers, but its relay ignores commands).

`--meter` makes it an energy meter on the mains instead (TasmotaMeterSim; the firmware's
mains_tasmota.py): its SENSOR's Power is what set_power(w) last gave (signed: export
negative, as a bidirectional meter reports it), a list of one value per phase with
`--phases 3` (as Tasmota's SDM630 and ADE7880 drivers publish it)."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simdevice import Every, SimDevice, run_from_command_line  # noqa: E402


class TasmotaSim(SimDevice):
    def __init__(self, host, port, topic, rated_w=2000, tele_period_s=10, pulse_s=0,
                 volts=240):
        self.topic = topic
        self.rated_w = rated_w
        self.tele_period_s = tele_period_s
        self.pulse_s = pulse_s
        self.volts = volts
        self.on = False
        self.total_wh = 0.0
        self.commands = []           # payloads received on cmnd/<topic>/POWER, in order
        self._stuck = False
        self._on_since = None        # monotonic time of the last ON (PulseTime)
        self._t0 = time.monotonic()
        super().__init__(host, port, "tasmota-" + topic)

    # --- faults, for tests (and silent, resume, offline, online) -------------------------
    def publish_offline(self):
        # What the broker does with Tasmota's last will when its connection is lost.
        self.publish("tele/%s/LWT" % self.topic, "Offline", retain=True)

    def publish_online(self):
        self.publish("tele/%s/LWT" % self.topic, "Online", retain=True)

    def stuck(self, flag):
        self._stuck = flag

    # --- the dialect ---------------------------------------------------------------------
    def deliver(self, topic, payload, retain):
        if topic != "cmnd/%s/POWER" % self.topic:
            return
        word = payload.decode("utf-8", "replace").strip().upper()
        with self.mutex:
            self.commands.append(word)
            if self._quiet:
                return
            if not self._stuck:
                if word in ("ON", "1"):
                    self.on = True
                    self._on_since = time.monotonic()
                elif word in ("OFF", "0"):
                    self.on = False
                elif word in ("TOGGLE", "2"):
                    self.on = not self.on
                    self._on_since = time.monotonic() if self.on else None
                elif word:
                    return           # Tasmota answers {"Command": "Error"}: not modelled
        self.answer()

    def answer(self):
        state = "ON" if self.on else "OFF"
        self.publish("stat/%s/RESULT" % self.topic, json.dumps({"POWER": state}))
        self.publish("stat/%s/POWER" % self.topic, state)

    def power_w(self):
        return self.rated_w if self.on else 0

    def telemetry(self):
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        w = self.power_w()
        up = int(time.monotonic() - self._t0)
        self.publish("tele/%s/STATE" % self.topic, json.dumps(
            {"Time": now, "UptimeSec": up, "POWER": "ON" if self.on else "OFF"}))
        self.publish("tele/%s/SENSOR" % self.topic, json.dumps(
            {"Time": now, "ENERGY": {"TotalStartTime": "2026-01-01T00:00:00",
                                     "Total": round(self.total_wh / 1000, 3), "Yesterday": 0,
                                     "Today": round(self.total_wh / 1000, 3), "Period": 0,
                                     "Power": w, "ApparentPower": w, "ReactivePower": 0,
                                     "Factor": 1.0 if w else 0, "Voltage": self.volts,
                                     "Current": round(w / self.volts, 3)}}))

    def hello(self):
        self.subscribe("cmnd/%s/POWER" % self.topic)
        self.online()
        self._tele = Every(self.tele_period_s, time.monotonic())
        self._last = time.monotonic()

    def step(self, now):
        with self.mutex:
            self.total_wh += self.power_w() * (now - self._last) / 3600
            self._last = now
            if self.pulse_s and self.on and now - self._on_since >= self.pulse_s:
                self.on = False          # PulseTime ran out: off by itself
                changed = True
            else:
                changed = False
        if changed and not self._quiet:
            self.answer()
        if self._tele.due(now) and not self._quiet:
            self.telemetry()


class TasmotaMeterSim(TasmotaSim):
    """A bidirectional energy meter (no relay to speak of): Power is set_power()'s W."""

    def __init__(self, host, port, topic, tele_period_s=10, phases=1, volts=240):
        self.phases = phases
        self.meter_w = 0
        super().__init__(host, port, topic, 0, tele_period_s, 0, volts)

    def set_power(self, w):
        with self.mutex:
            self.meter_w = w

    def power_w(self):
        return self.meter_w

    def telemetry(self):
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        w = self.power_w()
        if self.phases == 1:
            power, volts, amps = w, self.volts, round(abs(w) / self.volts, 3)
        else:
            share = round(w / self.phases, 1)
            power = [share] * (self.phases - 1) + [round(w - share * (self.phases - 1), 1)]
            volts = [self.volts] * self.phases
            amps = [round(abs(p) / self.volts, 3) for p in power]
        self.publish("tele/%s/SENSOR" % self.topic, json.dumps(
            {"Time": now, "ENERGY": {"TotalStartTime": "2026-01-01T00:00:00",
                                     "Total": round(self.total_wh / 1000, 3), "Yesterday": 0,
                                     "Today": round(self.total_wh / 1000, 3),
                                     "Power": power, "Voltage": volts, "Current": amps}}))


def options(ap):
    ap.add_argument("--topic", required=True)
    ap.add_argument("--rated-w", type=int, default=2000)
    ap.add_argument("--tele-period", type=float, default=10)
    ap.add_argument("--pulse-s", type=float, default=0)
    ap.add_argument("--seconds", type=float, default=3600)
    ap.add_argument("--meter", action="store_true", help="an energy meter on the mains")
    ap.add_argument("--meter-w", type=int, default=0, help="with --meter: the W it reports")
    ap.add_argument("--phases", type=int, choices=(1, 3), default=1)


def build(host, port, args):
    if args.meter:
        dev = TasmotaMeterSim(host, port, args.topic, args.tele_period, args.phases)
        dev.set_power(args.meter_w)
        return dev
    return TasmotaSim(host, port, args.topic, args.rated_w, args.tele_period, args.pulse_s)


def main(argv=None):
    return run_from_command_line(__doc__, options, build, argv)


if __name__ == "__main__":
    sys.exit(main())
