"""A reference device of the open profile (docs/profile.md) in CPython: a sensor (a made-up
meter) or an on/off actuator (a relay), with one flag per defect, so the conformance suite
(tools/conformance.py) can be shown to catch each one.

    tools/refdevice.py --broker HOST:PORT --role sensor|actuator --id ID [--defect NAME]
        [--interval S] [--max-wait S] [--response S] [--seconds S]

Defects: bad_announce (max_wait_s / range left out), not_retained (the announcement
published without the retain flag), stale (reports at 3x the announced
interval), out_of_range (a reading or state outside the announced range), slow_ack (acks
after twice the response time), no_safe (ignores the controller's silence),
accept_malformed (acks ok to anything, applies what it can)."""

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simdevice import DeviceClient, run_from_command_line  # noqa: E402

PROFILE = "panelcap-profile/0.1"
DEFECTS = ("bad_announce", "not_retained", "stale", "out_of_range", "slow_ack", "no_safe", "accept_malformed")


class RefDevice(DeviceClient):
    def __init__(self, host, port, role, dev_id, defect="", interval_s=0.5, max_wait_s=2.0,
                 response_s=1.0):
        self.role = role
        self.id = dev_id
        self.base = "pcp/%s/" % dev_id   # its topics hang off its id
        self.defect = defect
        self.interval_s = interval_s
        self.max_wait_s = max_wait_s
        self.response_s = response_s
        self.on = False              # the relay; off is its safe state
        self.heard = None            # monotonic time the controller last spoke
        self.seq = 0
        super().__init__(host, port, "refdevice-" + dev_id)

    def announcement(self):
        d = {"profile": PROFILE, "role": self.role, "id": self.id, "maker": "refdevice",
             "availability": None, "interval_s": self.interval_s}
        if self.role == "sensor":
            d.update(quantities=["w", "ma", "mv"], legs=["L1"],
                     range={"w": [0, 3680], "ma": [0, 16000], "mv": [0, 260000]})
            if self.defect == "bad_announce":
                del d["range"]
        else:
            d.update(control="onoff", rated_w=2000, leg="L1", min_a=0, max_a=9,
                     response_s=self.response_s, safe_state={"on": False},
                     max_wait_s=self.max_wait_s)
            if self.defect == "bad_announce":
                del d["max_wait_s"]
        return json.dumps(d)

    def deliver(self, topic, payload, retain):
        if topic == self.base + "alive":
            with self.mutex:
                self.heard = time.monotonic()
        elif topic == self.base + "set":
            threading.Thread(target=self.command, args=(payload,), daemon=True).start()

    def command(self, payload):
        try:
            d = json.loads(payload)
        except ValueError:
            d = None
        ident = d.get("id") if isinstance(d, dict) else None
        error = None
        if not isinstance(d, dict):
            error = "payload is not a JSON object"
        elif not isinstance(ident, (str, int)) or isinstance(ident, bool):
            error = "id is required"
        elif set(d) != {"id", "on"}:
            error = "fields must be id and on"
        elif not isinstance(d["on"], bool):
            error = "on must be true or false"
        if self.defect == "accept_malformed":
            if isinstance(d, dict) and "on" in d:
                self.on = bool(d["on"])
            error = None
        if self.defect == "slow_ack":
            time.sleep(2 * self.response_s)
        if error is None:
            with self.mutex:
                self.heard = time.monotonic()
                if isinstance(d, dict) and isinstance(d.get("on"), bool):
                    self.on = d["on"]
            ack = {"id": ident, "ok": True, "on": self.on}
        else:
            ack = {"id": ident, "ok": False, "error": error}
        self.publish(self.base + "ack", json.dumps(ack))
        self.publish_state()

    def publish_state(self):
        with self.mutex:
            self.seq += 1
            st = {"seq": self.seq, "on": self.on, "safe": self.heard is None}
            if self.defect == "out_of_range":
                st["on"] = 1
        self.publish(self.base + "state", json.dumps(st))

    def reading(self):
        self.seq += 1
        w = 1200 + (self.seq % 7) * 10
        d = {"seq": self.seq, "valid": True, "w": w, "ma": [w * 1000 // 230], "mv": 230000}
        if self.defect == "out_of_range" and self.seq % 2 == 0:
            d["w"] = 99999
        self.publish(self.base + "reading", json.dumps(d))

    @property
    def pass_s(self):
        """Each pass reports: every interval_s as announced, 3x that with the stale defect."""
        return self.interval_s * (3 if self.defect == "stale" else 1)

    def hello(self):
        self.subscribe(self.base + "set")
        self.subscribe(self.base + "alive")
        self.publish(self.base + "announce", self.announcement(),
                     retain=self.defect != "not_retained")

    def step(self, now):
        with self.mutex:
            if self.heard is not None and self.defect != "no_safe" and \
                    now - self.heard > self.max_wait_s:
                self.heard = None
                self.on = False          # the announced safe state
        if self.role == "sensor":
            self.reading()
        else:
            self.publish_state()

    def goodbye(self):
        self.publish(self.base + "announce", b"", retain=True)   # retained: cleared


def options(ap):
    ap.add_argument("--role", required=True, choices=("sensor", "actuator"))
    ap.add_argument("--id", required=True, dest="dev_id")
    ap.add_argument("--defect", default="", choices=("",) + DEFECTS)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--max-wait", type=float, default=2.0)
    ap.add_argument("--response", type=float, default=1.0, help="response_s it announces")
    ap.add_argument("--seconds", type=float, default=3600)


def build(host, port, args):
    return RefDevice(host, port, args.role, args.dev_id, args.defect, args.interval,
                     args.max_wait, args.response)


def main(argv=None):
    return run_from_command_line(__doc__, options, build, argv)


if __name__ == "__main__":
    sys.exit(main())
