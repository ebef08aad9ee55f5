#!/usr/bin/env python3
"""An OpenEVSE charger (its ESP32 WiFi gateway, v4+) with a car plugged in, simulated in
CPython on the project's MQTT client, speaking OpenEVSE's published MQTT API (its
docs/mqtt.md and src/mqtt.cpp), so the firmware's adapter (firmware/adapt_openevse.py) and
the plain MQTT charger (evmqtt.py, with OpenEVSE's RAPI topic) are tested against the
dialect, not against themselves:

- at connect, `openevse/announce/<id4>` (retained) {"state": "connected", "id", "name",
  "mqtt", "http"}; its last will the same with "disconnected" (`offline()` publishes it);
- `<base>/claim/set` a JSON claim ({"state": "active"|"disabled", "charge_current": A,
  "max_current", "auto_release"}; fields merge into the claim held, "clear" removes one) or
  `release`: the claim held is echoed, retained, on `<base>/claim` ({"state": "null"} when
  none);
- `<base>/override/set` the same for the manual override (echo `<base>/override`; toggle,
  clear), which outranks an MQTT claim as it does on the device;
- `<base>/rapi/in/$SC` <A> [V]: set the pilot (RAPI's answer on `<base>/rapi/out`): as
  open_evse's SetCurrentCapacity does, below 6 A it sets 6 A and answers `$NK` (RAPI
  cannot pause a car this way), and without `V` every one is written to EEPROM;
  `<base>/divertmode/set` 1|2;
- every status period: `<base>/amp` (milliamps drawn), `<base>/state` (1 not connected,
  3 charging, 254 sleeping, 255 disabled, 8 stuck relay), `<base>/pilot` (A), `<base>/voltage`.

The car draws the pilot (at most its own `car_max_a`) while the EVSE is active.

    tools/openevse_sim.py --broker HOST:PORT [--base BASE] [--max-a A] [--car-max-a A]
        [--period S] [--seconds S]

Tests drive its faults from Python: silent(), resume(), offline(), online(), deaf(True) (it
talks, but takes no claim), stuck_relay(True) (state 8: it draws whatever it last drew)."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simdevice import Every, SimDevice, run_from_command_line  # noqa: E402

_STATE_NOT_CONNECTED, _STATE_CHARGING, _STATE_STUCK_RELAY = 1, 3, 8
_STATE_SLEEPING, _STATE_DISABLED = 254, 255
_CLAIM_FIELDS = ("state", "charge_current", "max_current", "auto_release")


class OpenEvseSim(SimDevice):
    def __init__(self, host, port, base="openevse", max_a=32, car_max_a=32, period_s=30,
                 volts=240, device_id="c44f330dsimx"):
        self.base = base
        self.max_a = max_a                  # max_current_soft: the charger's own setting
        self.car_max_a = car_max_a
        self.period_s = period_s
        self.volts = volts
        self.device_id = device_id
        self.announce_topic = "openevse/announce/" + device_id[-4:]
        self.claim = {}                     # the MQTT service's claim; {}: none
        self.override = {}
        self.rapi_pilot = None              # $SC: the EVSE's own current, below any claim
        self.divert_mode = 1
        self.amp_ma = 0
        self.claims = []                    # payloads received on claim/set, in order
        self.eeprom_writes = 0              # $SC without V: each one written to EEPROM
        self._deaf = False
        self._stuck = False
        super().__init__(host, port, "openevse-" + device_id[-4:])

    # --- faults, for tests (and silent, resume, offline, online) -------------------------
    def publish_offline(self):
        # What the broker does with the gateway's last will when its connection is lost.
        self.publish(self.announce_topic, json.dumps(
            {"state": "disconnected", "id": self.device_id, "name": "openevse-sim"}),
            retain=True)

    def publish_online(self):
        self.announce()

    def deaf(self, flag):
        self._deaf = flag

    def stuck_relay(self, flag):
        self._stuck = flag

    # --- the dialect ---------------------------------------------------------------------
    def announce(self):
        self.publish(self.announce_topic, json.dumps(
            {"state": "connected", "id": self.device_id, "name": "openevse-sim",
             "mqtt": self.base, "http": "http://127.0.0.1/"}), retain=True)

    def _in_force(self):
        """(active, amps) from the override, else the claim, else the EVSE's own setting."""
        for props in (self.override, self.claim):
            if props:
                if props.get("state") == "disabled":
                    return False, 0
                a = props.get("charge_current", self.max_a)
                return True, min(a, props.get("max_current", self.max_a), self.max_a)
        a = self.rapi_pilot if self.rapi_pilot is not None else self.max_a
        return True, min(a, self.max_a)

    def state(self):
        if self._stuck:
            return _STATE_STUCK_RELAY
        active, amps = self._in_force()
        if not active:
            return _STATE_SLEEPING
        return _STATE_CHARGING if amps else _STATE_SLEEPING

    def _draw(self):
        if self._stuck:
            return                           # the relay is welded: whatever it drew
        active, amps = self._in_force()
        self.amp_ma = min(amps, self.car_max_a) * 1000 if active else 0

    @staticmethod
    def _merge(props, payload):
        """A claim's JSON merged into props; None when it is not a claim."""
        try:
            d = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(d, dict) or not d or any(k not in _CLAIM_FIELDS for k in d):
            return None
        if "state" in d and d["state"] not in ("active", "disabled", "clear"):
            return None
        for k in ("charge_current", "max_current"):
            if k in d and d[k] != "clear" and (not isinstance(d[k], int) or
                                               isinstance(d[k], bool) or d[k] < 0):
                return None
        out = dict(props)
        for k, v in d.items():
            if v == "clear":
                out.pop(k, None)
            else:
                out[k] = v
        return out

    def echo(self, which):
        props = self.claim if which == "claim" else self.override
        self.publish("%s/%s" % (self.base, which),
                     json.dumps(props if props else {"state": "null"}), retain=True)

    def deliver(self, topic, payload, retain):
        base = self.base
        text = payload.decode("utf-8", "replace").strip()
        with self.mutex:
            if topic == base + "/claim/set":
                self.claims.append(text)
            if self._quiet or self._deaf:
                return
            which = None
            if topic in (base + "/claim/set", base + "/override/set"):
                which = topic.split("/")[-2]
                held = self.claim if which == "claim" else self.override
                if text in ("release", "clear"):
                    held = {}
                elif text == "toggle" and which == "override":
                    held = {} if held else {"state": "disabled"}
                else:
                    held = self._merge(held, text)
                    if held is None:
                        return               # the device ignores what it cannot parse
                if which == "claim":
                    self.claim = held
                else:
                    self.override = held
            elif topic == base + "/rapi/in/$SC":
                # open_evse's SetCurrentCapacity: below J1772's 6 A it sets 6 A and answers
                # NK (it cannot pause); without a second token (V) it writes EEPROM.
                words = text.split()
                try:
                    amps = int(words[0])
                except (ValueError, IndexError):
                    self.publish(base + "/rapi/out", "$NK^21")
                    return
                self.rapi_pilot = max(6, min(amps, self.max_a))
                if len(words) < 2:
                    self.eeprom_writes += 1
                self.publish(base + "/rapi/out", "$NK^21" if amps < 6 else "$OK^20")
            elif topic == base + "/divertmode/set" and text in ("1", "2"):
                self.divert_mode = int(text)
            else:
                return
            self._draw()
        if which is not None:
            self.echo(which)

    def status(self):
        with self.mutex:
            self._draw()
            active, amps = self._in_force()
            out = {"amp": self.amp_ma, "state": self.state(), "pilot": amps if active else 0,
                   "voltage": self.volts}
        for k, v in out.items():
            self.publish("%s/%s" % (self.base, k), str(v))

    def hello(self):
        for t in ("/claim/set", "/override/set", "/rapi/in/#", "/divertmode/set"):
            self.subscribe(self.base + t)
        self.announce()
        self.echo("claim")
        self.echo("override")
        self._beat = Every(self.period_s, time.monotonic())

    def step(self, now):
        if self._beat.due(now) and not self._quiet:
            self.status()


def options(ap):
    ap.add_argument("--base", default="openevse")
    ap.add_argument("--max-a", type=int, default=32)
    ap.add_argument("--car-max-a", type=int, default=32)
    ap.add_argument("--period", type=float, default=30)
    ap.add_argument("--seconds", type=float, default=3600)


def build(host, port, args):
    return OpenEvseSim(host, port, args.base, args.max_a, args.car_max_a, args.period)


def main(argv=None):
    return run_from_command_line(__doc__, options, build, argv)


if __name__ == "__main__":
    sys.exit(main())
