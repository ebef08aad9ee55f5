"""Devices of the open profile that take a setpoint, simulated on a real broker: a PV
inverter whose output can be capped (docs/profile.md, "A curtailable source": its reading
`pcp/<id>_pv/reading`, its actuator `pcp/<id>_cap`) and a battery whose charging can be
limited ("A battery": `pcp/<id>_batt/reading`, `pcp/<id>_charge`). Each follows a setpoint
response_s after it arrives (acked; one out of 0..rated refused), reports every interval
what it delivers or draws and its state, and with no word from the controller for
max_wait_s returns to its safe state, its installer's own setting (safe_w). What it
delivers or draws is handed to on_output for a simulated panel (tests/test_curtail.py).

    tools/setpoint_sim.py --broker HOST:PORT --kind inverter|battery --id ID --rated-w W
        [--sun-w W] [--capacity-wh WH] [--interval S] [--response S] [--max-wait S]
        [--safe-w W] [--seconds S]

Prints a line each time its output changes: `<seconds> output <W> setpoint <W> safe <bool>`."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simdevice import DeviceClient, Every, run_from_command_line  # noqa: E402


class SetpointSim(DeviceClient):
    """The profile's side of a setpoint actuator with a sensor beside it; output_w() is the
    device's own (what it delivers or draws under the setpoint in force). on_output(w) is
    called every interval with it."""
    sensor = actuator = ""

    def __init__(self, host, port, dev_id, rated_w, interval_s=1.0, response_s=1.0,
                 max_wait_s=5.0, safe_w=0, on_output=None):
        self.base = "pcp/" + dev_id
        self.on_output = on_output
        self._every = Every(interval_s, time.monotonic())
        self.rated_w = rated_w
        self.interval_s = interval_s
        self.response_s = response_s
        self.max_wait_s = max_wait_s
        self.safe_w = safe_w
        self.setpoint_w = safe_w     # the setpoint it follows now
        self.safe = True             # no controller yet: its own setting
        self.heard = None            # monotonic time of the controller's last command
        self.pending = []            # (monotonic time it takes effect, setpoint)
        self.commands = []           # every command received, as decoded (or the raw bytes)
        self.reporting = True        # False: silent (follows setpoints, reports nothing)
        self._seq = 0
        super().__init__(host, port, "setpointsim-" + dev_id)

    def deliver(self, topic, payload, retain):
        if topic != self.base + self.actuator + "/set":
            return
        try:
            d = json.loads(payload)
        except ValueError:
            d = None
        ok = isinstance(d, dict) and set(d) == {"id", "setpoint"} and \
            isinstance(d["setpoint"], int) and not isinstance(d["setpoint"], bool) and \
            0 <= d["setpoint"] <= self.rated_w
        with self.mutex:
            self.commands.append(d if d is not None else payload)
            if ok:
                self.heard = time.monotonic()
                self.pending.append((self.heard + self.response_s, d["setpoint"]))
        ack = {"id": d.get("id") if isinstance(d, dict) else None, "ok": ok}
        if not ok:
            ack["error"] = "setpoint must be an int in 0..%d W" % self.rated_w
        self.publish(self.base + self.actuator + "/ack", json.dumps(ack))

    def silent(self):
        self.reporting = False

    def resume(self):
        self.reporting = True

    def hello(self):
        self.subscribe(self.base + self.actuator + "/set")

    def step(self, now):
        """Every interval: follows the setpoints that are due, falls back to its safe state
        when the controller has been silent for max_wait_s, reports, and hands on what it
        delivers or draws."""
        if not self._every.due(now):
            return
        with self.mutex:
            while self.pending and self.pending[0][0] <= now:
                self.setpoint_w = self.pending.pop(0)[1]
                self.safe = False
            if self.heard is not None and now - self.heard > self.max_wait_s:
                self.heard = None
                self.pending.clear()
                self.setpoint_w = self.safe_w
                self.safe = True
            self._seq += 1
            seq = self._seq
            state = {"seq": seq, "setpoint": self.setpoint_w, "safe": self.safe}
        self.publish(self.base + self.actuator + "/state", json.dumps(state))
        w = self.output_w()
        if self.reporting:
            self.publish(self.base + self.sensor + "/reading",
                         json.dumps({"seq": seq, "valid": True, "w": w}))
        self.account(w, self.interval_s)
        if self.on_output is not None:
            self.on_output(w)

    def account(self, w, seconds):
        """What w for seconds does to the device (a battery fills)."""


class PvInverterSim(SetpointSim):
    """Delivers the sun it is given (sun_w, set by the caller), up to its cap."""
    sensor, actuator = "_pv", "_cap"

    def __init__(self, host, port, dev_id, rated_w, sun_w, interval_s=1.0, response_s=1.0,
                 max_wait_s=5.0, safe_w=None, on_output=None):
        self.sun_w = sun_w
        super().__init__(host, port, dev_id, rated_w, interval_s, response_s, max_wait_s,
                         rated_w if safe_w is None else safe_w, on_output)

    @property
    def cap_w(self):
        return self.setpoint_w

    def output_w(self):
        return min(self.sun_w, self.setpoint_w, self.rated_w)


class BatterySim(SetpointSim):
    """Charges at its setpoint while it has room (capacity_wh, from empty), then at 0; its
    safe state is its own setting (safe_w, 0 by default: idle)."""
    sensor, actuator = "_batt", "_charge"

    def __init__(self, host, port, dev_id, rated_w, capacity_wh, interval_s=1.0,
                 response_s=1.0, max_wait_s=5.0, safe_w=0, on_output=None):
        self.capacity_ws = capacity_wh * 3600
        self.stored_ws = 0
        super().__init__(host, port, dev_id, rated_w, interval_s, response_s, max_wait_s,
                         safe_w, on_output)

    def output_w(self):
        if self.stored_ws >= self.capacity_ws:
            return 0
        return min(self.setpoint_w, self.rated_w)

    def account(self, w, seconds):
        self.stored_ws += w * seconds


def _options(ap):
    ap.add_argument("--kind", required=True, choices=("inverter", "battery"))
    ap.add_argument("--id", required=True, dest="dev_id",
                    help="its node id (pv_inverter; a battery load's device)")
    ap.add_argument("--rated-w", type=int, required=True)
    ap.add_argument("--sun-w", type=int, default=0, help="inverter: what the array delivers")
    ap.add_argument("--capacity-wh", type=int, default=5000, help="battery: from empty")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--response", type=float, default=1.0)
    ap.add_argument("--max-wait", type=float, default=5.0)
    ap.add_argument("--safe-w", type=int, default=None,
                    help="its own setting (inverter: its rating; battery: 0)")
    ap.add_argument("--seconds", type=float, default=3600)


def _build(host, port, args):
    t0 = time.monotonic()
    last = [None]

    def show(w):
        now = (w, sim.setpoint_w, sim.safe)
        if now != last[0]:
            last[0] = now
            print("%.1f output %d setpoint %d safe %s" % (time.monotonic() - t0, *now),
                  flush=True)
    timing = (args.interval, args.response, args.max_wait)
    if args.kind == "inverter":
        sim = PvInverterSim(host, port, args.dev_id, args.rated_w, args.sun_w, *timing,
                            args.safe_w, show)
    else:
        sim = BatterySim(host, port, args.dev_id, args.rated_w, args.capacity_wh, *timing,
                         args.safe_w or 0, show)
    return sim


def main(argv=None):
    return run_from_command_line(__doc__, _options, _build, argv)


if __name__ == "__main__":
    sys.exit(main())
