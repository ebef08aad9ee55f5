"""What every relay adapter shares (adapt_tasmota.py, adapt_shelly.py): another maker's
switch with a power meter, driven over MQTT as an on/off load's actuator, and the profile's
freshness rules applied to it (docs/profile.md, "Freshness"). A relay is confirmed while its
power reports are fresh (within 3 report periods), its availability topic does not say it is
gone, and the state it reports follows the command within the same time; otherwise
feedback.py marks it lost, the controller sheds it and counts its rated power as drawn.
Imported only with an adapter, which is imported only when a load names it as its driver."""


from micropython import const

from pcpdevice import serve

_MAX_REPORT_W = const(100000)    # config's rated_w bound: anything above is implausible
_PERIODS = const(3)              # the profile's rule: silent 3 report periods, gone


class Relay:
    """The actuator (set, is_on, apply, safe) and the confirmation (confirmed(now),
    actual_ma) of an on/off load behind another maker's relay. A dialect subclass sets
    `topics` ((topic, handler), ...: subscribed to and routed), parses its messages into
    seen_power(w), seen_state(on) and seen_online(flag), and sends the command with
    command(on, change) (change False: a repeat, the heartbeat)."""

    def __init__(self, clock, volts, report_ms, log=print):
        self._clock = clock
        self._volts = volts
        self.timeout_ms = _PERIODS * report_ms
        self.heartbeat_period_ms = self.timeout_ms // 3
        self._log = log
        self.link = None
        self.is_on = False           # what panelcap commands
        self.reported_on = None      # what the relay last said it is; None: not yet
        self.online = True           # its availability topic (retained) says so
        self.actual_ma = -1          # its metered draw as a current; -1: none fresh
        self.ops = 0
        now = clock.ticks_ms()
        self._report_ms = now        # a first report is awaited for timeout_ms after boot
        self._agree_ms = now         # last time the reported state matched the command
        self._sent_ms = now
        self._sent = None            # the last command sent (True/False), None: none yet
        self._lost = False           # confirmed() said no last time
        self.reports = 0
        self.bad_reports = 0
        self.heartbeat_ms = None
        self.topics = ()

    # --- the network side (the dialect's handlers call these) --------------------------
    def attach(self, link):
        self.link = link
        for topic, handler in self.topics:
            link.route(topic, handler)

    def seen_power(self, w):
        if not 0 <= w <= _MAX_REPORT_W:
            self.bad_reports += 1
            return
        self.actual_ma = int(w * 1000 / self._volts + 0.5)
        self._report_ms = self._clock.ticks_ms()
        self.reports += 1

    def seen_state(self, on):
        self.reported_on = on
        if on == self.is_on:
            self._agree_ms = self._clock.ticks_ms()

    def seen_online(self, flag):
        self.online = flag
        if not flag:
            self.actual_ma = -1

    def confirmed(self, now):
        clock = self._clock
        agree = self.reported_on == self.is_on
        if agree:
            self._agree_ms = now
        if not self.online or clock.ticks_diff(now, self._report_ms) > self.timeout_ms or \
                clock.ticks_diff(now, self._agree_ms) > self.timeout_ms or \
                (self._lost and not agree):
            # Once lost, it is back only when it shows the command again: a fresh report of
            # a relay still on after it was told off is not control.
            self.actual_ma = -1      # a stale reading is no reading
            self._lost = True
            return False
        self._lost = False
        return True

    def run(self):
        """Subscribes after every (re)connect of the link, and sends the command again."""
        return serve(self, self._clock)

    def wake(self, now, reconnected):
        if reconnected:
            self._send(self.is_on, now, False)

    # --- the actuator -----------------------------------------------------------------
    def set(self, on):
        on = bool(on)
        now = self._clock.ticks_ms()
        if on != self.is_on:
            self.is_on = on
            self.ops += 1
            self._agree_ms = now     # the relay has timeout_ms to show it
        if on != self._sent:
            self._send(on, now, True)
        elif self._clock.ticks_diff(now, self._sent_ms) >= self.heartbeat_period_ms:
            # Repeated as the controller's heartbeat (a relay with an auto-off timer, such
            # as Tasmota's PulseTime, then falls back to off when panelcap goes silent).
            self._send(on, now, False)

    def _send(self, on, now, change):
        self._sent_ms = now
        if self.link is not None:
            self.command(on, change)
            self._sent = on

    def apply(self, load):
        self.set(load.on)

    def safe(self):
        self.is_on = False
        self._send(False, self._clock.ticks_ms(), True)
