"""The soak's simulation side (`make soak`, tools/soak.py): runs under the 32-bit unix port as
`make sim` does (tools/panelsim/run.py), the firmware unchanged and compiled, for many
simulated days on a month of a shipped household, with faults injected on a schedule that
tools/soak.py draws (seeded) and hands over as JSON.

What it adds to the simulator, all from outside the firmware:
- the month: each simulated day replays the next day of the household file, the EV plugs in
  every evening and leaves every morning;
- faults, at their simulated second: the broker's and the network's are done by tools/soak.py
  (this side prints `#{"fault": ...}` and waits for its "ok" on stdin, so they land at that
  simulated second however fast the run goes); the rest here: the Wi-Fi association lost (a
  `network` module whose WLAN drops), power cuts (one in the middle of a config save),
  a welded contactor, a CT unplugged (its channel reads the bias alone), an EV charger gone
  stale (it stops following the pilot, keeps drawing what it drew);
- one row per simulated second on stdout, hourly heap samples after gc.collect(), the
  compliance log read back from flash each simulated day.

The firmware keeps the board's one clock for everything, sockets included: while the MQTT
link is not connected the run is paced (VirtualTime.speed) so that a real broker's answer
arrives within the firmware's simulated deadlines. A connected link runs at full speed, a
simulated minute in about 0.1 real s; there a keepalive ping's answer, a few real ms away,
could be a simulated minute late when the host stalls (the first month run lost its link to
"no reply within the keepalive" four times, each a telemetry gap no outage explained). So
once a ping has waited ANSWER_S without its answer, the run is paced at ANSWER_PACE until the
broker's next byte (looked for every WATCH_MS, so full speed resumes at once): a board's LAN
broker answers in milliseconds of its clock, and here a broker has 28 simulated s = 2.8 real
s before the firmware gives up on it. A broker that stays
silent that long (the tarpit) still costs the link, as it would the board.
"""

import gc
import json
import sys

from panelsim import frozen  # noqa: F401   (first: the board's frozen umqtt)
import asyncio

import simboard as board
from panelsim import machine as sim_machine
from panelsim.vtime import VirtualTime
from panelsim.panel import Panel
from panelsim.adcgen import AdcGen
from panelsim import profile as profile_mod
from panelsim.run import guarded, panel_params

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
ANSWER_S = 2            # a ping unanswered this long (simulated) paces the run ...
ANSWER_PACE = 10        # ... at this many simulated s per real s, until the broker's answer
WATCH_MS = 20           # how often (simulated) a paced run looks for that answer


class PowerCut(Exception):
    """The board loses power: the simulator reboots the firmware."""


class SaveAtRepl(Exception):
    """The installer stops the firmware (Ctrl-C) to save a setting at the REPL, as
    docs/installation.md has it; args[0] is how much of the file is written when the power
    goes."""


# --- the Wi-Fi the firmware's wifi.py drives (netsetup imports `network`) -----------------
class _Wlan:
    def __init__(self, net):
        self._net = net

    def active(self, flag=None):
        return True

    def config(self, **kw):
        pass

    def connect(self, ssid, password):
        pass

    def disconnect(self):
        pass

    def isconnected(self):
        return self._net.up


class FakeNetwork:
    STA_IF = 0

    def __init__(self):
        self.up = True

    def WLAN(self, iface):
        return _Wlan(self)


# --- the month's household ---------------------------------------------------------------
class MonthProfile:
    """The household file's days in turn: the panel asks for ms since the start (no period),
    day d plays the file's day `d mod days`. The days were read once, before the firmware
    started (prepare()), into a file of 1440 watts a day; a day is read from it at midnight
    into the same buffer, so the simulator's heap does not move (a .gz read at midnight
    would want a 32 KB window from the firmware's heap)."""

    linear = False
    period_ms = 0

    def __init__(self, days_path, days, offset_ms=0):
        from array import array
        self.path = days_path
        self.days = days
        self.offset_ms = offset_ms      # the run starts this far into the first day
        self.watts = array("i", bytes(4 * 1440))
        self._day = -1

    def _at(self, t_ms):
        t_ms += self.offset_ms
        day = t_ms // DAY_MS
        if day != self._day:
            with open(self.path, "rb") as f:
                f.seek(day % self.days * 4 * 1440)
                f.readinto(self.watts)
            self._day = day
        return t_ms - day * DAY_MS

    def watts_at_ms(self, t_ms):
        t = self._at(t_ms)
        return self.watts[t // 60000]

    def next_change_ms(self, t_ms):
        return (t_ms // 60000 + 1) * 60000      # whole minutes: the offset is too


def prepare(profile, dates, days_path):
    """Reads each date of the household file as make sim does (panelsim.profile: missing
    minutes held, 1-minute steps) and writes its 1440 watts to days_path."""
    with open(days_path, "wb") as f:
        for date in dates:
            p = profile_mod.load(profile, date=date)
            f.write(p.watts)
            p = None
            gc.collect()
    print(len(dates))


class UnpluggedCt(AdcGen):
    """AdcGen whose channel `unplugged` (or -1) reads the mid-rail bias alone."""

    unplugged = -1

    def setup(self, t0_us, t0_s=0):
        AdcGen.setup(self, t0_us, t0_s)
        c = self.unplugged
        if c >= 0:
            k = 4 + c * 5        # adcgen's _HDR + c * _PER_CH: amplitude terms a, b at zero
            self.params[k] = 0x20000000
            self.params[k + 1] = 0x20000000


class Faults:
    """The physical faults, switched on and off by the schedule."""

    def __init__(self, panel, gen, net, wh_output):
        self.panel = panel
        self.gen = gen
        self.net = net
        self.wh_output = wh_output
        self.ev_stale = False
        self.welded = False
        self._set_pilot = panel.set_pilot_amps
        panel.set_pilot_amps = self._pilot

    def _pilot(self, amps):
        if not self.ev_stale:
            self._set_pilot(amps)

    def apply(self, kind, on):
        if kind == "welded":
            self.welded = on
            self.panel.fail_contactor_welded(self.wh_output, on)
        elif kind == "ct_unplugged":
            names = [ch["name"] for ch in self.gen.channels]
            self.gen.unplugged = names.index("L1") if on else -1     # the mains CT on L1
        elif kind == "ev_stale":
            self.ev_stale = on
        elif kind == "wifi_drop":
            self.net.up = not on
        else:
            return False
        return True


def say(obj):
    sys.stdout.write("#" + json.dumps(obj) + "\n")


def host(obj):
    """A fault the host does (the broker, the network path): said, then waited for, so it
    lands at this simulated second."""
    say(obj)
    line = sys.stdin.readline()
    if line.strip() != "ok":
        raise SystemExit("error: the host did not do %r: %r" % (obj, line))


def save_cut_midway(overrides, fraction_pm):
    """The installer's save (config.save, atomicfile.write) of the defaults with `overrides`,
    the power cut partway through writing the temporary file, after fraction_pm/1000 of it."""
    import config
    import atomicfile
    text = config.to_json(config.merged(overrides, board))
    cut_at = len(text) * fraction_pm // 1000

    class Cutting:
        def __init__(self, path, mode):
            self._f = open(path, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

        def write(self, data):
            self._f.write(data[:cut_at])
            self._f.close()
            raise PowerCut("power cut writing config at byte %d of %d" % (cut_at, len(text)))

    atomicfile.open = Cutting
    try:
        atomicfile.write(config.FILE, text)
    finally:
        del atomicfile.open
        sys.modules.pop("atomicfile", None)
        sys.modules.pop("config", None)


def _scrub_stack(depth=60):
    """Overwrites the C stack the old firmware ran on: the unix port's collector scans it
    conservatively, and a stale pointer there kept the powered-off App alive (up to 30 KB
    that the board, whose RAM a power cut clears, would not have lost)."""
    a = b = c = d = e = f = g = h = None     # noqa: F841
    if depth:
        _scrub_stack(depth - 1)


def _no_shed(*args):
    pass


class Driver:
    def __init__(self, opts, vt, panel, faults, app_ref):
        self.o = opts
        self.vt = vt
        self.panel = panel
        self.faults = faults
        self.app_ref = app_ref
        # One JSON line per fault, [t_s, kind, on, arg], sorted: read one at a time (the
        # month's few hundred held at once took 36 KB from the heap the firmware shares).
        self._schedule = open(opts["schedule_path"])
        self._next = None
        self._read_next()
        self.end_ms = int(opts["hours"] * HOUR_MS)
        self.leak = []
        self.ev_home = False
        self.planted = False
        self.log_seen = 0
        self.slow_answers = 0       # pings whose answer was awaited paced (see the docstring)
        self.longest_answer_ms = 0  # the longest wait for one, simulated ms
        self._awaited = None        # link._last_ping of the ping being awaited
        self._watching = False      # a watch_answer task runs

    def skip_done(self):
        t_s = self.vt.elapsed_ms() // 1000
        while self._next is not None and self._next[0] < t_s:
            self._read_next()

    def _read_next(self):
        line = self._schedule.readline()
        self._next = json.loads(line) if line.strip() else None

    def inject(self, now_ms):
        t_s = now_ms // 1000
        while self._next is not None and self._next[0] <= t_s:
            at, kind, on, arg = self._next
            self._read_next()
            say({"fault": kind, "on": on, "t": t_s})
            if kind in ("reboot", "reboot_saving"):
                # The reports already on their way (sent, still in the proxy, the broker or
                # the watcher) arrive before the power goes, as in the board's real
                # milliseconds they would: at full speed those are tens of simulated
                # seconds, and the watcher would count them as a gap before the cut.
                host({"host": "cut_power", "on": True, "t": t_s})
            if kind == "reboot":
                raise PowerCut("power cut at %d s" % t_s)
            if kind == "reboot_saving":
                raise SaveAtRepl(arg)
            elif kind == "plant_no_relief":
                self.planted = True         # from now on, every boot's (see run())
            elif not self.faults.apply(kind, on):
                host({"host": kind, "on": on, "t": t_s})
            if kind == "wifi_drop":      # the radio gone: the path to the broker goes silent too
                host({"host": "net_silent", "on": on, "t": t_s})

    def household(self, now_ms):
        """The EV comes home every evening and leaves every morning."""
        day_s = (now_ms + self.o["start_s"] * 1000) % DAY_MS // 1000
        ev = self.o["ev"]
        home = day_s >= ev["arrive_s"] or day_s < ev["leave_s"]
        if home and not self.ev_home:
            self.panel.ev_plug_in(ev["need_wh"])
        elif not home and self.ev_home:
            self.panel.ev_unplug()
        self.ev_home = home

    def awaiting_answer_ms(self, link):
        """Simulated ms a connected link has waited for the answer to its last keepalive
        ping (0: none awaited). Read from outside, as a tap on the wire would: the link's
        own times of its last ping and its last byte received."""
        last_ping = link._last_ping
        if last_ping == link._up_since:
            return 0                # no ping since the connect
        clock = link._clock
        if clock.ticks_diff(last_ping, link._last_rx) <= 0:
            if self._awaited == last_ping:      # answered (or a byte came) after pacing
                self._awaited = None
            return 0
        waited = clock.ticks_diff(clock.ticks_ms(), last_ping)
        if waited > self.longest_answer_ms:
            self.longest_answer_ms = waited
        return waited

    def pace(self, link, connected):
        """The clock's speed: full while the link is up, paced while it is not (real sockets
        answer in real time) and while a connected link's ping has waited ANSWER_S for its
        answer (the module's docstring)."""
        speed = 0 if connected else self.o["pace"]
        if connected and self.awaiting_answer_ms(link) >= ANSWER_S * 1000:
            speed = ANSWER_PACE
            if self._awaited != link._last_ping:
                self._awaited = link._last_ping
                self.slow_answers += 1
        vt = self.vt
        if speed != vt.speed:
            vt.speed = speed
            vt._pace = None     # paced from now, not from the last paced stretch
        return speed

    async def watch_answer(self, link):
        """While the run is paced for a ping's answer: looks every WATCH_MS, so that full
        speed resumes as soon as the broker's answer is in (a simulated second paced at
        ANSWER_PACE is 100 real ms: looked for once a second, the month ran at a fifth of
        its speed)."""
        try:
            while self.vt.speed == ANSWER_PACE:
                await asyncio.sleep_ms(WATCH_MS)
                app = self.app_ref[0]
                if app is None or getattr(app, "mqtt", None) is not link:
                    break
                self.pace(link, link.connected)
        finally:
            self._watching = False

    async def run(self):
        self._watching = False      # a power cut took the last boot's tasks with it
        vt, panel, out = self.vt, self.panel, sys.stdout
        next_ms = vt.elapsed_ms()
        every = self.o.get("heap_every_s", 3600) * 1000
        next_hour = (next_ms // every + 1) * every
        next_day = (next_ms // DAY_MS + 1) * DAY_MS
        plant_leak = self.o.get("plant_leak", 0)
        while True:
            t0 = vt.sim_begin()
            now = vt.elapsed_ms()
            if now >= self.end_ms:
                self.read_log()
                return
            self.inject(now)
            self.household(now)
            panel.advance_to(now)
            app = self.app_ref[0]
            if self.planted:
                app.controller._shed_pass = _no_shed    # the planted bug: nothing is shed
            link = getattr(app, "mqtt", None)
            connected = link is not None and link.connected
            if self.pace(link, connected) == ANSWER_PACE and not self._watching:
                self._watching = True
                asyncio.create_task(self.watch_answer(link))
            f = self.faults
            s = app.sampler
            out.write("%d,%d,%d,%d,%d,%d,%d,%d,%d,%d\n" % (
                now // 1000, panel.total_w, app.controller.limit_w or 0, s.total_w,
                panel.wh_w, panel.ev_w, 0 if f.welded else 1, 0 if f.ev_stale else 1,
                1 if s.valid else 0, 1 if connected else 0))
            if now >= next_hour:
                next_hour += every
                if plant_leak:
                    self.leak.append(bytearray(plant_leak))
                gc.collect()
                say({"heap": gc.mem_alloc(), "free": gc.mem_free(), "t": now // 1000})
            if now >= next_day:
                next_day += DAY_MS
                self.read_log()
                say({"answers": {"slow": self.slow_answers,
                                 "longest_ms": self.longest_answer_ms}})
            vt.sim_end(t0)
            next_ms += 1000
            await asyncio.sleep_ms(max(0, next_ms - vt.elapsed_ms()))

    def read_log(self):
        """The compliance log on flash, read back as the REPL's grid.log() does: lines past
        those already read are printed (the log keeps 2 x 128 lines; read daily)."""
        app = self.app_ref[0]
        grid = getattr(app, "grid", None)
        if grid is None or grid.monitor is None:
            return
        log = grid.monitor.log
        say({"log_counts": {"written": log.written, "failed": log.failed}})
        for line in log.read():
            say({"log": line})


async def _session(app, driver):
    asyncio.create_task(app.run())
    await driver.run()


def main(argv):
    guarded(lambda a: _main(json.loads(a)), argv,
            lambda e: say({"crash": "%s: %s" % (type(e).__name__, e)}))


def _main(o):
    net = FakeNetwork()
    sys.modules["network"] = net
    simulator_modules = set(sys.modules)     # a power cut clears the rest from RAM
    from clock import WrappingClock
    vt = VirtualTime(start_ms=o["start_ms"])
    vt.install()
    clock = WrappingClock(vt.now_ms)
    params = panel_params(o["panel"])
    panel = Panel(params, MonthProfile(o["days_path"], len(o["dates"]), o["start_s"] * 1000))
    gen = UnpluggedCt(board, panel)
    faults = Faults(panel, gen, net, params["water_heater"]["output"])
    import config       # the board's flash holds its config: written once, dropped after
    config.save(config.merged(o["cfg"], board))
    config = None
    sys.modules.pop("config", None)
    sys.modules.pop("atomicfile", None)
    app_ref = [None]
    driver = Driver(o, vt, panel, faults, app_ref)
    cause = sim_machine.PWRON_RESET
    log = lambda msg: sys.stderr.write("%d s: %s\n" % (vt.elapsed_ms() // 1000, msg))  # noqa: E731
    boots = 0
    saving = None
    firmware_app = None
    while True:
        sim_machine.attach(panel, vt, board, gen, reset_cause=cause)
        # The board's RAM starts empty: the firmware's modules are loaded again, as at boot.
        # The last boot's app module goes too: held here until the import rebinds the name,
        # all its code (14-32 KB) stayed in the heap through the next boot's build, a peak
        # the board never has (a 6-hour run at 128 KB: free heap at boot 81.6, 68.0, 67.8,
        # 49.5 KB over four boots, and the reports after the fourth failed on MemoryError).
        app = app_ref[0] = firmware_app = None
        for name in [m for m in sys.modules if m not in simulator_modules]:
            del sys.modules[name]
        _scrub_stack()
        gc.collect()
        before_boot = gc.mem_alloc()     # what the simulator holds as the board boots
        import app as firmware_app
        # As on the board: the config comes from flash (config.json in the working directory).
        app = firmware_app.build(board, sim_machine, clock, None, log=log,
                                 wear_path="wear.json")
        boots += 1
        say({"boot": boots, "t": vt.elapsed_ms() // 1000, "cause": app.reset_cause,
             "safe_reason": app.safe_reason, "limit_w": app.setpoint_w,
             "firmware": firmware_app.__file__, "sim_alloc": before_boot})
        app.net_clock = clock       # the board's one clock, sockets included (paced while down)
        app_ref[0] = app
        try:
            asyncio.run(_session(app, driver))
            app.force_safe()
            break
        except sim_machine.WatchdogReset as e:
            app.force_safe()
            say({"watchdog": str(e), "t": vt.elapsed_ms() // 1000})
            cause = sim_machine.WDT_RESET
        except PowerCut as e:
            app.force_safe()
            say({"power_cut": str(e), "t": vt.elapsed_ms() // 1000})
            cause = sim_machine.PWRON_RESET
        except SaveAtRepl as e:
            app.force_safe()        # Ctrl-C: every output safe, the tasks stopped
            saving = e.args[0]
        link = getattr(app, "mqtt", None)
        if link is not None:
            link._close()           # power gone: the socket goes with it (the broker's will)
        link = e = app = app_ref[0] = None
        asyncio.core.cur_task = None    # the old loop's last task would keep the old app alive
        asyncio.new_event_loop()        # and its tasks too
        if saving is not None:
            gc.collect()
            try:
                save_cut_midway(o["cfg_saved"], saving)
            except PowerCut as e:
                say({"power_cut": str(e), "t": vt.elapsed_ms() // 1000})
                cause = sim_machine.PWRON_RESET
            saving = e = None
        driver.skip_done()
    panel.advance_to(vt.elapsed_ms())
    say({"done": vt.elapsed_ms() // 1000, "boots": boots, "slow_answers": driver.slow_answers,
         "longest_answer_ms": driver.longest_answer_ms})
