"""Conformance suite for the open device profile (docs/profile.md): runs the profile's checks
against one device on a broker and prints one pass/fail line per check.

    tools/conformance.py --broker HOST:PORT --role sensor|actuator --id ID [--json FILE]

Checks: the announcement is present and valid; readings (a sensor) or state heartbeats (an
actuator) come at the announced interval, numbered, in range; commands are acknowledged
within the announced response time; malformed commands are refused; the safe state is taken
when the controller goes silent. Exit 0 when all pass, 1 otherwise (2: bad arguments or no
broker). CPython, on the project's own MQTT client (tools/mqttclient.py)."""

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mqttclient import Mqtt  # noqa: E402

PROFILE = "panelcap-profile/0.1"
ROOT = "pcp"
_WAIT_RETAINED_S = 3.0
_LATE_SLACK_S = 0.5     # network and scheduling slack on top of an announced time


class Watcher(Mqtt):
    """Keeps every message under pcp/<id>/ with its arrival time."""
    count = 0

    def __init__(self, host, port, dev_id):
        self.messages = []       # (t, topic suffix, payload bytes, retain)
        self.base = "%s/%s/" % (ROOT, dev_id)
        Watcher.count += 1
        super().__init__(host, port, "conformance-%s-%d-%d" % (dev_id, int(time.time() * 1000),
                                                                Watcher.count), keepalive_s=0)

    def deliver(self, topic, payload, retain):
        if topic.startswith(self.base):
            with self.lock:
                self.messages.append((time.monotonic(), topic[len(self.base):], payload,
                                      retain))

    def since(self, t0, suffix):
        with self.lock:
            return [m for m in self.messages if m[0] >= t0 and m[1] == suffix]

    def wait(self, suffix, pred, t0, timeout):
        """The first JSON message on suffix after t0 for which pred(d) holds, or None."""
        end = time.monotonic() + timeout
        while True:
            for m in self.since(t0, suffix):
                d = _json(m[2])
                if d is not None and pred(d):
                    return m[0], d
            if time.monotonic() >= end:
                return None
            time.sleep(0.02)


def _json(payload):
    try:
        d = json.loads(payload)
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_announcement(ann, role, dev_id):
    """A list of what is wrong with an announcement (empty: valid)."""
    if ann is None:
        return ["no retained announcement (or not a JSON object)"]
    bad = []
    if not isinstance(ann.get("profile"), str) or \
            not ann["profile"].startswith("panelcap-profile/0."):
        bad.append("profile %r is not panelcap-profile/0.x" % (ann.get("profile"),))
    if ann.get("role") != role:
        bad.append("role %r, expected %r" % (ann.get("role"), role))
    if ann.get("id") != dev_id:
        bad.append("id %r, expected %r" % (ann.get("id"), dev_id))
    if not _num(ann.get("interval_s")) or not 0 < ann["interval_s"] <= 3600:
        bad.append("interval_s must be a number in (0, 3600]")
    if role == "sensor":
        q = ann.get("quantities")
        if not isinstance(q, list) or not q or not all(k in ("w", "ma", "mv") for k in q):
            bad.append("quantities must be a non-empty list of w, ma, mv")
        rng = ann.get("range")
        if not isinstance(rng, dict) or not all(
                isinstance(rng.get(k), list) and len(rng[k]) == 2 and _num(rng[k][0]) and
                _num(rng[k][1]) and rng[k][0] < rng[k][1] for k in (q or [])
                if isinstance(q, list)):
            bad.append("range must give [lo, hi] for every quantity")
    else:
        control = ann.get("control")
        if control not in ("onoff", "setpoint"):
            bad.append("control must be onoff or setpoint")
        for key in ("rated_w", "response_s", "max_wait_s", "min_a", "max_a"):
            if not _num(ann.get(key)) or ann[key] < 0:
                bad.append("%s must be a number >= 0" % key)
        if ann.get("leg") not in ("L1", "L2", "L3", "L1L2", "L1L2L3"):
            bad.append("leg must be L1, L2, L3, L1L2 or L1L2L3")
        safe = ann.get("safe_state")
        if control == "setpoint":
            if not (_num(ann.get("min")) and _num(ann.get("max")) and ann["min"] < ann["max"]):
                bad.append("a setpoint actuator needs min < max")
            elif not (isinstance(safe, dict) and _num(safe.get("setpoint")) and
                      ann["min"] <= safe["setpoint"] <= ann["max"]):
                bad.append("safe_state must be {\"setpoint\": min..max}")
        elif control == "onoff" and not (isinstance(safe, dict) and
                                         isinstance(safe.get("on"), bool)):
            bad.append("safe_state must be {\"on\": true|false}")
    return bad


class Suite:
    def __init__(self, host, port, role, dev_id, log=print):
        self.role = role
        self.id = dev_id
        self.w = Watcher(host, port, dev_id)
        self.host, self.port = host, port
        self.checks = []
        self.ann = None
        self._log = log
        self._beat = None

    def retained(self, suffix):
        """True if a new subscriber is handed a retained message on suffix (the first one
        seen may have come live, published while we were already subscribed)."""
        if any(m[3] for m in self.w.since(0, suffix)):
            return True
        w = Watcher(self.host, self.port, self.id)
        try:
            w.subscribe(w.base + suffix)
            end = time.monotonic() + _WAIT_RETAINED_S
            while time.monotonic() < end:
                if any(m[3] for m in w.since(0, suffix)):
                    return True
                time.sleep(0.02)
            return False
        finally:
            w.close()

    def result(self, name, ok, detail):
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        self._log("%s %s: %s" % ("PASS" if ok else "FAIL", name, detail))

    def run(self):
        t0 = time.monotonic()
        self.w.subscribe(self.w.base + "#")
        got = self.w.wait("announce", lambda d: True, 0, _WAIT_RETAINED_S)
        ann = got[1] if got else None
        bad = check_announcement(ann, self.role, self.id)
        if ann is not None and not self.retained("announce"):
            bad.append("announcement not retained")
        self.result("announcement", not bad, "; ".join(bad) or "valid, " + ann["profile"])
        if bad:
            for name in self._names()[1:]:
                self.result(name, False, "skipped: no valid announcement")
            return
        self.ann = ann
        self.fresh(t0)
        if self.role == "actuator":
            self.start_beat()
            try:
                self.commands()
                self.malformed()
            finally:
                self.stop_beat()
            self.safe_state()

    def _names(self):
        if self.role == "sensor":
            return ["announcement", "readings"]
        return ["announcement", "heartbeats", "commands", "malformed", "safe_state"]

    # --- readings / heartbeats -------------------------------------------------------
    def fresh(self, t0):
        ann = self.ann
        iv = float(ann["interval_s"])
        suffix = "reading" if self.role == "sensor" else "state"
        name = "readings" if self.role == "sensor" else "heartbeats"
        start = time.monotonic()
        time.sleep(3 * iv + _LATE_SLACK_S)
        msgs = self.w.since(start, suffix)
        bad = []
        if len(msgs) < 2:
            self.result(name, False, "%d %s in %.1f s at an announced %s s" % (
                len(msgs), suffix, 3 * iv + _LATE_SLACK_S, ann["interval_s"]))
            return
        worst = max(b[0] - a[0] for a, b in zip(msgs, msgs[1:]))
        # Commands also bring an actuator's state out early: never too often, but a gap
        # over the interval (plus slack) is a missed beat.
        if worst > 1.5 * iv + _LATE_SLACK_S:
            bad.append("a gap of %.2f s at an announced %s s" % (worst, ann["interval_s"]))
        seqs = []
        for m in msgs:
            d = _json(m[2])
            if d is None:
                bad.append("a %s that is not a JSON object" % suffix)
                break
            seqs.append(d.get("seq"))
            bad += self._range(d)
            if bad:
                break
        if not bad and not all(isinstance(s, int) for s in seqs):
            bad.append("seq missing or not an int")
        elif not bad and any(b <= a for a, b in zip(seqs, seqs[1:])):
            bad.append("seq not increasing: %s" % seqs[:8])
        self.result(name, not bad, "; ".join(bad) or "%d in %.1f s, worst gap %.2f s, seq %d..%d"
                    % (len(msgs), 3 * iv + _LATE_SLACK_S, worst, seqs[0], seqs[-1]))

    def _range(self, d):
        ann = self.ann
        if self.role == "sensor":
            if not isinstance(d.get("valid", True), bool):
                return ["valid must be true or false"]
            out = []
            for q in ann["quantities"]:
                lo, hi = ann["range"][q]
                v = d.get(q)
                vals = v if isinstance(v, list) else [v]
                for x in vals:
                    if not _num(x) or not lo <= x <= hi:
                        out.append("%s %r outside %s..%s" % (q, v, lo, hi))
                        break
            return out
        if ann["control"] == "setpoint":
            v = d.get("setpoint")
            if not _num(v) or not ann["min"] <= v <= ann["max"]:
                return ["state setpoint %r outside %s..%s" % (v, ann["min"], ann["max"])]
        elif not isinstance(d.get("on"), bool):
            return ["state on %r is not true/false" % (d.get("on"),)]
        if not isinstance(d.get("safe"), bool):
            return ["state safe %r is not true/false" % (d.get("safe"),)]
        return []

    # --- the controller's heartbeat ----------------------------------------------------
    def start_beat(self):
        stop = threading.Event()
        every = max(0.2, min(1.0, float(self.ann["max_wait_s"]) / 4))

        def beat():
            n = 0
            while not stop.is_set():
                n += 1
                self.w.publish(self.w.base + "alive", json.dumps({"seq": n}))
                stop.wait(every)
        self._beat = (stop, threading.Thread(target=beat, daemon=True))
        self._beat[1].start()

    def stop_beat(self):
        stop, th = self._beat
        stop.set()
        th.join(5)

    def _target(self):
        """A command that changes the actuator from its safe state, and the state it gives."""
        ann = self.ann
        if ann["control"] == "setpoint":
            safe = ann["safe_state"]["setpoint"]
            v = int(ann["min"] + (ann["max"] - ann["min"]) // 2)
            if v == safe:
                v = int(ann["min"])
            return {"setpoint": v}, ("setpoint", v)
        on = not ann["safe_state"]["on"]
        return {"on": on}, ("on", on)

    def _send(self, ident, body):
        cmd = dict(body, id=ident)
        t = time.monotonic()
        self.w.publish(self.w.base + "set", json.dumps(cmd))
        return t

    def commands(self):
        ann = self.ann
        resp = float(ann["response_s"])
        body, (key, want) = self._target()
        t = self._send("conf-1", body)
        got = self.w.wait("ack", lambda d: d.get("id") == "conf-1", t, resp + _LATE_SLACK_S)
        if got is None:
            self.result("commands", False, "no ack for id conf-1 within %s s" % ann["response_s"])
            return
        dt = got[0] - t
        if got[1].get("ok") is not True or dt > resp + _LATE_SLACK_S:
            self.result("commands", False, "ack %s after %.2f s (response_s %s)" % (
                json.dumps(got[1]), dt, ann["response_s"]))
            return
        st = self.w.wait("state", lambda d: d.get(key) == want, t,
                         resp + float(ann["interval_s"]) + _LATE_SLACK_S)
        self.result("commands", st is not None, "acked in %.2f s; %s" % (
            dt, "state %s=%s" % (key, want) if st else "state never showed %s=%s" % (key, want)))

    def malformed(self):
        ann = self.ann
        resp = float(ann["response_s"])
        body, (key, want) = self._target()
        if ann["control"] == "setpoint":
            above = {"setpoint": ann["max"] + 1}
            wrong = {"setpoint": str(body["setpoint"])}
        else:
            above = {"on": 1}
            wrong = {"on": "yes"}
        cases = [("not JSON", b"{setpoint"), ("no id", json.dumps(body).encode()),
                 ("above max", json.dumps(dict(above, id="bad-1")).encode()),
                 ("wrong type", json.dumps(dict(wrong, id="bad-2")).encode()),
                 ("unknown field", json.dumps(dict(body, id="bad-3", boost=1)).encode())]
        bad = []
        for what, payload in cases:
            t = time.monotonic()
            self.w.publish(self.w.base + "set", payload)
            got = self.w.wait("ack", lambda d: True, t, resp + _LATE_SLACK_S)
            if got is None:
                bad.append("%s: no answer within %s s" % (what, ann["response_s"]))
            elif got[1].get("ok") is not False or not isinstance(got[1].get("error"), str) \
                    or "\n" in got[1]["error"] or not got[1]["error"]:
                bad.append("%s: answered %s" % (what, json.dumps(got[1])[:80]))
        # Nothing refused may change what the actuator holds.
        time.sleep(0.3)
        last = [_json(m[2]) for m in self.w.since(time.monotonic() - 0.3 - 5 * resp, "state")]
        last = [d for d in last if d is not None]
        if last and last[-1].get(key) != want:
            bad.append("state changed to %s=%r" % (key, last[-1].get(key)))
        self.result("malformed", not bad, "; ".join(bad) or "%d refused, state kept" % len(cases))

    def safe_state(self):
        ann = self.ann
        wait = float(ann["max_wait_s"])
        key = "setpoint" if ann["control"] == "setpoint" else "on"
        safe = ann["safe_state"][key]
        t = time.monotonic()
        limit = wait + float(ann["response_s"]) + float(ann["interval_s"]) + 2 * _LATE_SLACK_S
        got = self.w.wait("state", lambda d: d.get(key) == safe and d.get("safe") is True, t,
                          limit)
        if got is None:
            self.result("safe_state", False, "no state %s=%r, safe true within %.1f s of the "
                        "controller's silence (max_wait_s %s)" % (key, safe, limit,
                                                                  ann["max_wait_s"]))
        elif got[0] - t < wait - 2 * _LATE_SLACK_S - 1:
            self.result("safe_state", False, "safe after %.1f s: before max_wait_s %s" % (
                got[0] - t, ann["max_wait_s"]))
        else:
            self.result("safe_state", True, "%s=%r after %.1f s of silence (max_wait_s %s)" % (
                key, safe, got[0] - t, ann["max_wait_s"]))

    def close(self):
        self.w.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--broker", required=True, help="HOST:PORT")
    ap.add_argument("--role", required=True, choices=("sensor", "actuator"))
    ap.add_argument("--id", required=True, dest="dev_id")
    ap.add_argument("--json", default="", help="write the result here")
    args = ap.parse_args(argv)
    host, _, port = args.broker.rpartition(":")
    if not host or not port.isdigit() or "/" in args.dev_id or "+" in args.dev_id or \
            "#" in args.dev_id or not args.dev_id:
        sys.stderr.write("error: --broker needs HOST:PORT and --id a topic level, got %r %r\n"
                         % (args.broker, args.dev_id))
        return 2
    try:
        suite = Suite(host, int(port), args.role, args.dev_id)
    except OSError as e:
        sys.stderr.write("error: broker %s: %s\n" % (args.broker, e))
        return 2
    try:
        suite.run()
    finally:
        suite.close()
    passed = bool(suite.checks) and all(c["ok"] for c in suite.checks)
    print("%s: %d/%d checks passed" % ("PASS" if passed else "FAIL",
                                       sum(c["ok"] for c in suite.checks), len(suite.checks)))
    if args.json:
        Path(args.json).write_text(json.dumps({"passed": passed, "profile": PROFILE,
                                               "checks": suite.checks}, indent=1) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
