#!/usr/bin/env python3
"""A Shelly Gen2+ switch with a power meter (a Plus 1PM, say), simulated in CPython on the
project's MQTT client, speaking Shelly's published MQTT API, so the firmware's adapter
(firmware/adapt_shelly.py) is tested against the dialect, not against itself:

- JSON-RPC 2.0 requests on `<prefix>/rpc` ({"id", "src", "method", "params"}), each answered
  on `<src>/rpc` with {"id", "src": <device id>, "dst": <src>, "result"} or "error"
  ({"code", "message"}): Switch.Set ({"id": 0, "on": bool, "toggle_after": s}, result
  {"was_on"}), Switch.Toggle, Switch.GetStatus (the status below), anything else 404;
- the switch's status {"id": 0, "source", "output", "apower", "voltage", "current",
  "aenergy": {"total"}, "temperature": {"tC", "tF"}} on `<prefix>/status/switch:0` whenever
  it changes (the MQTT component's status_ntf), and its power every report period;
- `<prefix>/online`: true (retained) at start; false, as the broker publishes its last will,
  when it is made to drop off (`offline()`);
- toggle_after: the output flips back this long after the Set that asked for it.

    tools/shelly_sim.py --broker HOST:PORT --prefix PREFIX [--rated-w W] [--period S]
        [--seconds S]

Tests drive its faults from Python: silent(), resume(), offline(), online(), stuck(True).

`--meter em` makes it a Pro 3EM on the mains instead (ShellyEmSim; the firmware's
mains_shelly.py): the em:0 status ({"a_act_power", ..., "total_act_power", ...}) on
`<prefix>/status/em:0` every period and whenever set_power(w) changes it by more than the
Pro 3EM's default reporting threshold (5 % or 10 W, the larger), and EM.GetStatus
answered; `--meter em1` a Pro EM's channel 0 (`em1:0`, {"act_power", ...}). set_errors()
makes its status name errors, as the meter does when a CT is out of range."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simdevice import Every, SimDevice, run_from_command_line  # noqa: E402


class ShellySim(SimDevice):
    def __init__(self, host, port, prefix, rated_w=2000, period_s=60, volts=240):
        self.prefix = prefix
        self.device_id = "shellyplus1pm-sim" + str(abs(hash(prefix)) % 100000)
        self.rated_w = rated_w
        self.period_s = period_s
        self.volts = volts
        self.on = False
        self.total_wh = 0.0
        self.requests = []           # (method, params) received, in order
        self._stuck = False
        self._flip_at = None         # monotonic time toggle_after runs out
        super().__init__(host, port, self.device_id)

    # --- faults, for tests (and silent, resume, offline, online) -------------------------
    def publish_offline(self):
        self.publish(self.prefix + "/online", "false", retain=True)

    def publish_online(self):
        self.publish(self.prefix + "/online", "true", retain=True)

    def stuck(self, flag):
        self._stuck = flag

    # --- the dialect ---------------------------------------------------------------------
    def status(self):
        w = self.rated_w if self.on else 0
        return {"id": 0, "source": "MQTT", "output": self.on, "apower": float(w),
                "voltage": float(self.volts), "current": round(w / self.volts, 3),
                "aenergy": {"total": round(self.total_wh, 3)},
                "temperature": {"tC": 41.2, "tF": 106.2}}

    def notify(self):
        self.publish(self.prefix + "/status/switch:0", json.dumps(self.status()))

    def deliver(self, topic, payload, retain):
        if topic != self.prefix + "/rpc":
            return
        try:
            req = json.loads(payload)
            ident, src, method = req["id"], req["src"], req["method"]
            params = req.get("params") or {}
        except (ValueError, KeyError, TypeError):
            return                   # no id or src: nowhere to answer
        with self.mutex:
            self.requests.append((method, params))
            if self._quiet:
                return
            changed = False
            result = error = None
            if method in ("Switch.Set", "Switch.Toggle", "Switch.GetStatus") and \
                    params.get("id") != 0:
                error = {"code": -105, "message": "Argument 'id', value %r not found!"
                         % params.get("id")}
            elif method == "Switch.Set":
                if not isinstance(params.get("on"), bool):
                    error = {"code": -103, "message": "Invalid argument 'on'!"}
                else:
                    result = {"was_on": self.on}
                    if not self._stuck:
                        changed = self.on != params["on"]
                        self.on = params["on"]
                        after = params.get("toggle_after")
                        self._flip_at = time.monotonic() + after if after else None
            elif method == "Switch.Toggle":
                result = {"was_on": self.on}
                if not self._stuck:
                    self.on = not self.on
                    changed = True
            elif method == "Switch.GetStatus":
                result = self.status()
            else:
                error = {"code": 404, "message": "No handler for %s" % method}
        answer = {"id": ident, "src": self.device_id, "dst": src}
        if error is None:
            answer["result"] = result
        else:
            answer["error"] = error
        self.publish(src + "/rpc", json.dumps(answer))
        if changed:
            self.notify()

    def hello(self):
        self.subscribe(self.prefix + "/rpc")
        self.online()
        self.notify()
        self._beat = Every(self.period_s, time.monotonic() + self.period_s)
        self._last = time.monotonic()

    def step(self, now):
        with self.mutex:
            self.total_wh += (self.rated_w if self.on else 0) * (now - self._last) / 3600
            self._last = now
            flip = self._flip_at is not None and now >= self._flip_at
            if flip:
                self._flip_at = None
                self.on = not self.on    # toggle_after ran out: flipped back
        beat = self._beat.due(now)
        if (flip or beat) and not self._quiet:
            self.notify()


class ShellyEmSim(ShellySim):
    """A Pro 3EM (component em:0) or a Pro EM's channel 0 (em1:0) on the mains: it reports
    set_power()'s W, signed (export negative), split evenly over its phases. It runs as the
    switch does: never on and rated 0 W, each pass of its clock only reports when due."""

    def __init__(self, host, port, prefix, component="em", period_s=10, volts=230):
        self.component = component + ":0"
        self.meter_w = 0.0
        self.errors = []
        self._sent_w = None
        super().__init__(host, port, prefix, 0, period_s, volts)
        self.device_id = "shellypro3em-sim" + str(abs(hash(prefix)) % 100000)

    def set_power(self, w):
        with self.mutex:
            self.meter_w = float(w)
            # status_ntf: a change past the threshold is published as it happens
            last = self._sent_w
            due = last is None or abs(w - last) > max(10.0, 0.05 * abs(last))
        if due and not self._quiet:
            self.notify()

    def set_errors(self, errors):
        with self.mutex:
            self.errors = list(errors)

    def status(self):
        w = self.meter_w
        if self.component == "em1:0":
            st = {"id": 0, "current": round(abs(w) / self.volts, 3), "voltage": self.volts,
                  "act_power": round(w, 1), "aprt_power": round(abs(w), 1),
                  "pf": 1.0 if w else 0.0, "freq": 50.0, "calibration": "factory"}
        else:
            st = {"id": 0}
            for p in "abc":
                st.update({p + "_current": round(abs(w) / 3 / self.volts, 3),
                           p + "_voltage": float(self.volts),
                           p + "_act_power": round(w / 3, 1),
                           p + "_aprt_power": round(abs(w) / 3, 1),
                           p + "_pf": 1.0 if w else 0.0, p + "_freq": 50.0})
            st.update({"n_current": None, "total_current": round(abs(w) / self.volts, 3),
                       "total_act_power": round(w, 1), "total_aprt_power": round(abs(w), 1),
                       "user_calibrated_phase": []})
        if self.errors:
            st["errors"] = self.errors
        return st

    def notify(self):
        with self.mutex:
            body = json.dumps(self.status())
            self._sent_w = self.meter_w
        self.publish(self.prefix + "/status/" + self.component, body)

    def deliver(self, topic, payload, retain):
        if topic != self.prefix + "/rpc" or self._quiet:
            return
        try:
            req = json.loads(payload)
            ident, src, method = req["id"], req["src"], req["method"]
        except (ValueError, KeyError, TypeError):
            return
        answer = {"id": ident, "src": self.device_id, "dst": src}
        if method == ("EM1.GetStatus" if self.component == "em1:0" else "EM.GetStatus"):
            with self.mutex:
                answer["result"] = self.status()
        else:
            answer["error"] = {"code": 404, "message": "No handler for %s" % method}
        self.publish(src + "/rpc", json.dumps(answer))


def options(ap):
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--rated-w", type=int, default=2000)
    ap.add_argument("--period", type=float, default=60)
    ap.add_argument("--seconds", type=float, default=3600)
    ap.add_argument("--meter", choices=("em", "em1"), help="an energy meter on the mains")
    ap.add_argument("--meter-w", type=int, default=0, help="with --meter: the W it reports")


def build(host, port, args):
    if args.meter:
        dev = ShellyEmSim(host, port, args.prefix, args.meter, args.period)
        dev.set_power(args.meter_w)
        return dev
    return ShellySim(host, port, args.prefix, args.rated_w, args.period)


def main(argv=None):
    return run_from_command_line(__doc__, options, build, argv)


if __name__ == "__main__":
    sys.exit(main())
