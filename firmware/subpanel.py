"""A profile device that draws up to a limit this controller sets, as a modulated load: a
sub-panel's panelcap (driver "subpanel"; docs/profile.md, "Sub-panels") or a battery's
charger (driver "battery"; "A battery"). Its sensor (`<device>_mains`, a battery's
`<device>_batt`) is what the load draws, its actuator (`<device>_limit`, `<device>_charge`)
takes the limit this controller allows it, in W. Capacity flows down: this panel's limit,
then the device's, then a sub's own loads. The profile's freshness rules apply: a device
whose readings or states stop, or whose state does not show the limit sent, is lost
(feedback.py: shed, its rated_w counted as drawn). Imported only when a load names one of
these drivers."""


from micropython import const

from pcpdevice import attach, decode, is_int, reading, send_setpoint, serve

_ROOT = "pcp/"
_MAX_W = const(500000)           # the profile's range for a panel's w
_PERIODS = const(3)              # the profile's rule: silent 3 intervals, gone
_SAT_PCT = const(10)             # within this of its limit, a sub is using all of it
# Each driver's sensor and actuator, after the device's node id.
_TOPICS = {"subpanel": ("_mains/", "_limit/"), "battery": ("_batt/", "_charge/")}


class SubPanel:
    """The actuator (set_amps, amps, apply, safe) and the confirmation (confirmed(now),
    actual_ma) of a sub-panel. The controller's amps x volts is the limit sent; below
    floor_a the sub is sent its floor (what its never-shed loads need): off is the floor.
    report_ms: the sub's interval_s; the limit is repeated that often as this controller's
    heartbeat (the sub drops it after its max_wait_s, 3 intervals)."""

    def __init__(self, clock, device, volts, floor_a, max_a, report_ms, log=print,
                 topics=_TOPICS["subpanel"], driver="subpanel"):
        self._clock = clock
        self.device = device
        self._driver = driver
        self._volts = volts
        self.floor_w = floor_a * volts
        self.max_a = max_a
        self.timeout_ms = _PERIODS * report_ms
        self.heartbeat_period_ms = report_ms
        self._log = log
        sensor = _ROOT + device + topics[0]
        actuator = _ROOT + device + topics[1]
        self.set_topic = actuator + "set"
        self.topics = ((sensor + "reading", self.on_reading),
                       (actuator + "state", self.on_state),
                       (actuator + "ack", self.on_ack))
        self.link = None
        self.amps = 0                # what the controller allows now
        self.limit_w = self.floor_w  # the limit it stands for, never below the floor
        self.reading_w = -1          # the sub's last plausible reading; -1: none
        self.shown_w = -1            # the limit the sub's state last showed; -1: none
        self.actual_ma = -1          # what it draws, as a current; -1: none fresh
        now = clock.ticks_ms()
        self._reading_ms = now       # first reading and state awaited timeout_ms after boot
        self._state_ms = now
        self._agree_ms = now
        self._seq = 0
        self._sent_w = -1
        self._sent_ms = now
        self._cmd_id = 0
        self._lost = False
        self._back_ms = None         # lost, then fresh and agreeing since this tick
        self.reports = 0
        self.bad_reports = 0
        self.refused = 0
        self.heartbeat_ms = None

    # --- the network side (called by the link's task: never waits) -----------------------
    def attach(self, link):
        self.link = link
        attach(link, self.topics)

    def on_reading(self, msg):
        r = reading(msg, self._seq, -_MAX_W, _MAX_W)
        if r is None:
            # Implausible (freshness rule 2): out of range, invalid, or a seq going back
            # other than to 1 (a restart): counted, not taken.
            self.bad_reports += 1
            return
        w, self._seq = r
        self.reading_w = w if w > 0 else 0
        self._reading_ms = self._clock.ticks_ms()
        self.reports += 1

    def on_state(self, msg):
        d = decode(msg)
        w = d.get("setpoint") if d else None
        if not is_int(w) or d.get("safe") not in (True, False):
            self.bad_reports += 1
            return
        now = self._clock.ticks_ms()
        self._state_ms = now
        # In its safe state it holds its own setpoint, not ours: not under our control.
        self.shown_w = -1 if d["safe"] else w
        if self.shown_w == self.limit_w:
            self._agree_ms = now

    def on_ack(self, msg):
        d = decode(msg)
        # Only the answer to our last command: anyone on the broker may send the sub others.
        if d and d.get("ok") is False and d.get("id") == self._cmd_id:
            # A sub that refuses the limit keeps its own: its state will not show ours, and
            # confirmed() calls it lost (its rating counted) until it does.
            self.refused += 1
            if self.refused == 1:
                self._log("%s %s: refused: %s" % (self._driver, self.device, d.get("error")))

    def confirmed(self, now):
        clock = self._clock
        agree = self.shown_w == self.limit_w
        if agree:
            self._agree_ms = now
        t = self.timeout_ms
        if clock.ticks_diff(now, self._reading_ms) > t or \
                clock.ticks_diff(now, self._state_ms) > t or \
                clock.ticks_diff(now, self._agree_ms) > t or (self._lost and not agree):
            self.actual_ma = -1      # a stale reading is no reading
            self._lost = True
            self._back_ms = None
            return False
        if self._lost:
            # Back only after three intervals of fresh, agreeing messages (the profile's
            # rule): what a broker or a slow link held back arrives in one burst, from a
            # sub that may have been silent since.
            if self._back_ms is None:
                self._back_ms = now
            if clock.ticks_diff(now, self._back_ms) < t:
                self.actual_ma = -1
                return False
            self._back_ms = None
        self._lost = False
        w = self.reading_w
        lim = self.limit_w
        if lim > w >= lim - lim * _SAT_PCT // 100:
            # Its own band keeps it a little under its limit: it uses all it is given and
            # would take more (shed.py raises a modulated load only when it draws near its
            # setpoint). Counting more than it draws errs toward shedding.
            w = lim
        self.actual_ma = w * 1000 // self._volts
        return True

    def run(self):
        """Subscribes after every (re)connect of the link, and sends the limit again."""
        return serve(self, self._clock)

    def wake(self, now, reconnected):
        if reconnected:
            self._send(now, True)

    # --- the actuator --------------------------------------------------------------------
    def set_amps(self, amps):
        amps = int(amps)
        if amps > self.max_a:
            amps = self.max_a
        if amps < 0:
            amps = 0
        self.amps = amps
        w = amps * self._volts
        if w < self.floor_w:
            w = self.floor_w
        now = self._clock.ticks_ms()
        if w != self.limit_w:
            self.limit_w = w
            self._agree_ms = now     # the sub has timeout_ms to show it
        if w != self._sent_w:
            self._send(now, True)
        elif self._clock.ticks_diff(now, self._sent_ms) >= self.heartbeat_period_ms:
            self._send(now, False)   # the heartbeat: the sub keeps our limit while it comes

    def _send(self, now, change):
        self._sent_ms = now
        link = self.link
        if link is None:
            return
        self._cmd_id = send_setpoint(link, self.set_topic, self._cmd_id, self.limit_w, change)
        self._sent_w = self.limit_w

    def apply(self, load):
        self.set_amps(load.setpoint_a if load.on else 0)

    def safe(self):
        # The least it may have: its floor. Should this controller then fall silent, the sub
        # goes back to its own setpoint after its max_wait_s (it holds its own limit).
        self.amps = 0
        self.limit_w = self.floor_w
        self._send(self._clock.ticks_ms(), True)


def from_spec(spec, load, clock, log=print):
    """The device of `load` (driver "subpanel" or "battery"): spec's device (its node id),
    report_s (its interval_s, 10 s if not given), the floor (a sub's: the load's min_a,
    what its never-shed loads need; a battery's: 0, off is no charging) and max_a."""
    driver = spec["driver"]
    floor_a = load.min_a if driver == "subpanel" else 0
    return SubPanel(clock, spec["device"], load.volts, floor_a, load.max_a,
                    spec.get("report_s", 10) * 1000, log, _TOPICS[driver], driver)
