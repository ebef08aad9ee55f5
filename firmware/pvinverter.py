"""A PV inverter whose output can be capped, as a device of the open profile (docs/profile.md,
"A curtailable source"): its sensor `pcp/<device>_pv/reading` ({"seq", "valid", "w"}: what it
delivers, W) and its actuator `pcp/<device>_cap` (`set` {"id", "setpoint"}: the most it may
deliver, W; `state` {"seq", "setpoint", "safe"}). It is the source curtail.Curtail steps
(rated_w, output_w, cap_w, shown_w, set_cap, response_ms); its network side is a sub-panel's
(attach(link), run()). Imported by appbuild only when pv_inverter is set."""


from micropython import const

from pcpdevice import attach, decode, is_int, reading, send_setpoint, serve

_ROOT = "pcp/"
_PERIODS = const(3)              # the profile's rule: silent 3 intervals, gone
_MAX_W = const(500000)
_METER_MS = const(2000)          # a change seen by the CTs: a measurement, a control step


class PvInverter:
    """interval_ms: its interval_s; it follows a new cap within that, and the cap is
    repeated that often as the controller's heartbeat (a device that hears nothing for its
    max_wait_s takes its own safe state: its installer's export setting). What it delivers
    under a new cap shows in its reading up to an interval after that, and in the panel's
    own measurement a measurement and a control step after it follows: response_ms is all
    three (shorter, each correction is made again before the last one shows, and the cap
    rings: seen on the broker with a 1 s interval)."""

    def __init__(self, clock, device, rated_w, interval_ms, log=print):
        self._clock = clock
        self.device = device
        self.rated_w = rated_w
        self.interval_ms = interval_ms
        self.response_ms = 2 * interval_ms + _METER_MS
        self.timeout_ms = _PERIODS * interval_ms
        self._log = log
        self.set_topic = _ROOT + device + "_cap/set"
        self.topics = ((_ROOT + device + "_pv/reading", self.on_reading),
                       (_ROOT + device + "_cap/state", self.on_state))
        self.link = None
        self.cap_w = rated_w         # the cap commanded; rated_w: none
        self.output_w = -1           # what it delivers, from a fresh reading; -1: not known
        self.shown_w = -1            # the cap its state last showed; -1: none
        now = clock.ticks_ms()
        self._reading_ms = now
        self._seq = 0
        self._cmd_id = 0
        self._sent_ms = now
        self.reports = 0
        self.bad_reports = 0
        self.heartbeat_ms = None

    # --- the network side (called by the link's task: never waits) -----------------------
    def attach(self, link):
        self.link = link
        attach(link, self.topics)

    def on_reading(self, msg):
        r = reading(msg, self._seq, 0, _MAX_W)
        if r is None:
            self.bad_reports += 1    # implausible (freshness rule 2): counted, not taken
            return
        self.output_w, self._seq = r
        self._reading_ms = self._clock.ticks_ms()
        self.reports += 1

    def on_state(self, msg):
        d = decode(msg)
        w = d.get("setpoint") if d else None
        if not is_int(w) or d.get("safe") not in (True, False):
            self.bad_reports += 1
            return
        self.shown_w = -1 if d["safe"] else w

    def run(self):
        """Subscribes after every (re)connect and sends the cap again; repeats it every
        interval; a reading older than 3 intervals is no reading (output_w -1)."""
        return serve(self, self._clock)

    def wake(self, now, reconnected):
        if self.output_w >= 0 and self._clock.ticks_diff(now, self._reading_ms) > self.timeout_ms:
            self.output_w = -1
        if reconnected:
            self._send(now, True)
        elif self._clock.ticks_diff(now, self._sent_ms) >= self.interval_ms:
            self._send(now, False)

    # --- the source (curtail.Curtail) ----------------------------------------------------
    def set_cap(self, w):
        self.cap_w = w
        self._send(self._clock.ticks_ms(), True)

    def _send(self, now, change):
        self._sent_ms = now
        link = self.link
        if link is None:
            return
        self._cmd_id = send_setpoint(link, self.set_topic, self._cmd_id, self.cap_w, change)
