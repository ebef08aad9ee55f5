"""A Shelly Gen2+ switch with a power meter (Plus/Pro ...PM) as an on/off load (a load with
driver "shelly"; docs/profile.md, "Adapters"), on Shelly's published MQTT API: JSON-RPC
requests on `<prefix>/rpc` (Switch.Set {"id": 0, "on": ...}, Switch.GetStatus {"id": 0})
answered on `<src>/rpc`, the switch's status ({"output", "apower", ...}) on
`<prefix>/status/switch:0` when it changes, and `<prefix>/online` (retained true, false as
its last will). Switch 0 only. Imported only when a load names this driver."""

import json

from micropython import const

from adaptrelay import Relay

_ID_OFF = const(0)               # request ids: Switch.Set off / on, Switch.GetStatus
_ID_ON = const(1)
_ID_STATUS = const(2)


class Shelly(Relay):
    def __init__(self, clock, prefix, volts, report_ms, log=print):
        Relay.__init__(self, clock, volts, report_ms, log)
        self.rpc_topic = prefix + "/rpc"
        self.src = "panelcap-" + prefix.replace("/", "-")   # answers come on <src>/rpc
        # An ON carries Shelly's flip-back timer: the switch turns itself off if panelcap
        # does not repeat it within 3 report periods (the profile's max_wait_s).
        self._toggle_s = self.timeout_ms // 1000
        self.topics = ((self.src + "/rpc", self.on_answer),
                       (prefix + "/status/switch:0", self.on_status),
                       (prefix + "/online", self.on_online))

    def on_status(self, msg):
        try:
            self._status(json.loads(msg))
        except Exception:  # untrusted bytes: whatever the parser objects to is a bad report
            self.bad_reports += 1

    def _status(self, st):
        on = st["output"]
        w = st["apower"]
        if not isinstance(on, bool) or isinstance(w, bool) or not isinstance(w, (int, float)):
            raise ValueError
        self.seen_state(on)
        self.seen_power(w)

    def on_answer(self, msg):
        try:
            d = json.loads(msg)
            ident = d["id"]
            res = d["result"]        # an error answer has none: a bad report
            if ident == _ID_STATUS:
                self._status(res)
            elif ident == _ID_ON or ident == _ID_OFF:
                if not isinstance(res.get("was_on"), bool):
                    raise ValueError
                self.seen_state(ident == _ID_ON)     # the switch took the command
        except Exception:  # as above
            self.bad_reports += 1

    def on_online(self, msg):
        self.seen_online(msg == b"true")

    def command(self, on, change):
        link = self.link
        if on:
            req = '{"id":1,"src":"%s","method":"Switch.Set","params":{"id":0,"on":true,' \
                  '"toggle_after":%d}}' % (self.src, self._toggle_s)
        else:
            req = '{"id":0,"src":"%s","method":"Switch.Set","params":{"id":0,"on":false}}' % \
                self.src
        if change:
            link.publish_event(self.rpc_topic, req)   # a change must go out
        else:
            link.publish(self.rpc_topic, req)
        # Its status changes are published only as they happen: ask for the meter too.
        link.publish(self.rpc_topic, '{"id":2,"src":"%s","method":"Switch.GetStatus",'
                     '"params":{"id":0}}' % self.src)


def from_spec(spec, load, clock, log=print):
    """The switch of `load` (driver "shelly"): spec's device (its MQTT topic prefix) and
    report_s (how often panelcap asks for its status, 10 s if not given)."""
    return Shelly(clock, spec["device"], load.volts, spec.get("report_s", 10) * 1000, log)
