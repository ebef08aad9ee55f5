"""Starts the firmware: builds the hardware from the board file, wires sampler, meter,
shed controller and actuators into supervised tasks, and keeps every output safe on any
exit. The same file runs on the ESP32 and, against a simulated board, on the unix port."""

import asyncio
import gc
import sys

from clock import wall_unix
from version import VERSION

WEAR_FILE = "wear.json"
DEMAND_FILE = "demand.json"      # the demand window's energy and the month's peak
_GC_EVERY_BYTES = 8192     # see App.run


class App:
    def __init__(self, board, machine, clock, cfg=None, log=print, safe_reason=None,
                 wear_path=None, drop_config=False, demand_path=None):
        """cfg: a complete config (config.load) or a few overrides of the defaults
        (simulator). safe_reason set: the controller never runs, outputs stay safe.
        drop_config: the config module is dropped once read (the board's boot)."""
        # Every field the system has, here and nowhere else (tests/test_imports.py holds
        # other modules to them); those built later start as None.
        self.board = board
        self.clock = clock
        self.log = log
        self.safe_reason = safe_reason
        self.running = False
        self.wall = wall_unix        # unix seconds or None: the simulator injects its own
        self.net_clock = None        # the network's deadlines' clock; None: self.clock
        # Built by appbuild.build, below: the configuration and the control chain.
        self.cfg = self.setpoint_w = self.hw = self.reset_cause = None
        self.meter = self.sampler = self.limits = self.controller = self.control = None
        self.bindings = self.contactors = self.chargers = self._watches = None
        self.demand = None           # demand.DemandWindow, when a demand budget is set
        self.soaker = None           # export.Soaker, when an export limit or surplus is set
        # Built by tasks(), like the wear counter: after the config module is gone, so
        # neither adds to the peak at build.
        self.monitor = self.wear = self.supervisor = None
        self.wear_path = wear_path
        self.demand_path = demand_path
        # The network side (netsetup.build), the grid (grid.attach, on first use: get_grid)
        # and the status page (web.build); each None while off.
        self.mqtt = self.reporter = self.profile = self.mains_check = None
        self.grid = self.grid_task = None
        self.web = None
        # Hardware, meter, sampler, loads, controller: appbuild.py runs once and is dropped
        # after: kept, it would hold ~7 KB loaded from .mpy (stock MicroPython, where every
        # KB counts), ~5 KB even from the romfs partition (32-bit port, docs/architecture.md).
        import appbuild
        try:
            appbuild.build(self, machine, cfg, drop_config)
        finally:
            appbuild = None
            sys.modules.pop("appbuild", None)

    def get_grid(self):
        """The grid-signal handler (grid.py, compliance.py), imported and built on first use:
        a grid setting at start, or the first grid message (grid.attach)."""
        if self.grid is None:
            import grid
            grid.attach(self)
        return self.grid

    def wall_now(self):
        """Unix seconds: the RTC's, else the grid's SNTP-set clock; None when neither knows."""
        t = self.wall()
        if t is None and self.grid is not None:
            t = self.grid.unix_s(self.clock.ticks_ms())
        return t

    def grid_entry(self):
        import supervisor as supervisor_mod
        return supervisor_mod.Supervised("grid", lambda: self.grid_task, 90000, critical=False)

    def force_safe(self):
        """Every controllable load off, the EV paused. Safe to call any number of times."""
        for b in self.bindings:
            try:
                b.actuator.safe()
            except Exception as e:  # keep going: the other outputs still need to be safe
                self.log("force_safe: %s: %s" % (b.load.name, e))
        self.hw.all_outputs_safe()         # outputs no load is bound to (safe mode) too

    def banner(self):
        gc.collect()
        # In safe mode the setpoint is the defaults', which nothing runs: say so, so that
        # it is not copied onto the NEC 750.30 label.
        self.log("panelcap %s on %s: reset cause %s, free heap %d bytes, setpoint %d W "
                 "(panel %d A%s)" % (VERSION, self.board.NAME, self.reset_cause, gc.mem_free(),
                                     self.setpoint_w, self.cfg["panel_rating_a"],
                                     "; defaults, not configured: not for the label"
                                     if self.safe_reason else ""))
        if self.safe_reason:
            self.log("SAFE MODE: every controllable load shed: %s" % self.safe_reason)

    def tasks(self):
        import supervisor as supervisor_mod
        cfg = self.cfg
        stale = cfg["stale_ms"]
        entries = [
            supervisor_mod.Supervised("sampler", lambda: self.sampler,
                                      cfg["sample_period_ms"] + stale),
            supervisor_mod.Supervised("control", lambda: self.control,
                                      cfg["control_period_ms"] + stale),
        ]
        if self.monitor is None:
            import feedback
            self.monitor = monitor = feedback.Monitor(self.controller, self.clock, self.log)
            for load, contactor, aux, charger in self._watches:
                monitor.add(load, contactor, aux, charger)
            self._watches = None
            self.control.monitor = monitor
        if self.wear is None:
            import wear
            self.wear = wear.Wear(self.contactors, self.clock, self.wear_path, log=self.log)
        if self.wear.path:
            entries.append(supervisor_mod.Supervised("wear", lambda: self.wear, 0,
                                                     critical=False))
        if self.demand is not None and self.demand.path:
            entries.append(supervisor_mod.Supervised("demand", lambda: self.demand, 0,
                                                     critical=False))
        if cfg["mqtt_host"]:
            # Optional reporting and remote commands: non-critical tasks, never gate the watchdog.
            entries += self.network_entries()
            link = self.mqtt
            for charger in self.chargers:
                if link is not None:    # else it is never confirmed: lost, its draw reserved
                    charger.attach(link)
                entries.append(supervisor_mod.Supervised(
                    "charger", lambda c=charger: c, 0, critical=False))
        return entries + self.web_entries()

    def web_entries(self):
        if not self.cfg["web_port"]:
            return []
        # The status page (docs/web.md): web.py and microdot are imported only when on.
        # Optional like MQTT: one that cannot be built (even for want of memory) is logged
        # and the controller runs without it.
        try:
            import web
            entries = [web.entry(self)]
        except Exception as e:  # MemoryError, a bad setting: never the controller's end
            sys.modules.pop("web", None)
            self.log("web: not started: %s" % e)
            return []
        if not self.cfg["mqtt_host"] and self.cfg["wifi_ssid"]:
            # Without MQTT nothing else joins the Wi-Fi, and a phone could not reach the page.
            import supervisor as supervisor_mod
            import wifi
            w = wifi.build(self.cfg, getattr(self, "net_clock", None) or self.clock, self.log)
            if w is not None:
                entries.append(supervisor_mod.Supervised("wifi", supervisor_mod.task(w), 60000,
                                                         critical=False))
        return entries

    def network_entries(self):
        # netsetup.py builds the network side once and is dropped after: 2.3 KB loaded from
        # .mpy, which a stock MicroPython with everything on cannot spare; from the romfs
        # partition it would be 0.7 KB (32-bit port, docs/architecture.md).
        import netsetup
        try:
            return netsetup.setup(self)
        finally:
            netsetup = None
            sys.modules.pop("netsetup", None)

    async def run(self, extra=()):
        """Runs until cancelled. `extra` are coroutines run beside the tasks (simulator)."""
        import supervisor as supervisor_mod
        self.banner()
        # A collection every _GC_EVERY_BYTES allocated, not only when the heap is exhausted:
        # garbage freed early leaves fewer scattered holes (with MQTT on, ~5 KB less heap).
        gc.threshold(_GC_EVERY_BYTES)
        if self.safe_reason:
            self.force_safe()    # no controller and no watchdog
            # Telemetry and the status page alone say why (app.safe_reason); Ctrl-C gives
            # the REPL. Neither on: the REPL is free to fix it.
            entries = (self.network_entries() if self.cfg["mqtt_host"] else []) + \
                self.web_entries()
            if not entries:
                return
            self.supervisor = supervisor_mod.Supervisor(
                self.clock, entries, self.force_safe, None,
                period_ms=self.cfg["supervisor_period_ms"], log=self.log)
            await self.supervisor.run()
            return
        self.running = True
        wdt = self.hw.start_watchdog(getattr(self.board, "WDT_TIMEOUT_MS", 8000))
        self.supervisor = supervisor_mod.Supervisor(
            self.clock, self.tasks(), self.force_safe, wdt,
            period_ms=self.cfg["supervisor_period_ms"], log=self.log)
        for coro in extra:
            asyncio.create_task(coro)
        await self.supervisor.run()


last = None


def build(board, machine, clock, cfg=None, log=print, wear_path=None, demand_path=None):
    """Loads the config (cfg None: config.json on flash; else overrides of the defaults)
    and builds the App; then drops the config module, needed only to build (19 KB of code on
    the 32-bit port)."""
    safe_reason = None
    if cfg is None:
        import config
        loaded = config.load(config.FILE, board)
        cfg, safe_reason = loaded.cfg, loaded.safe_reason
        loaded = config = None
        gc.collect()         # the parse left garbage; the sampler wants one large block
    app = App(board, machine, clock, cfg, log=log, safe_reason=safe_reason, wear_path=wear_path,
              drop_config=True, demand_path=demand_path)
    gc.collect()
    return app


def run(board=None, machine=None, clock=None, cfg=None, wear_path=WEAR_FILE,
        demand_path=DEMAND_FILE):
    """Entry point (main.py calls this on the board)."""
    if board is None:
        import board
    if machine is None:
        import machine
    if clock is None:
        from clock import Clock
        clock = Clock()
    app = None
    try:
        app = build(board, machine, clock, cfg, wear_path=wear_path, demand_path=demand_path)
        global last
        last = app           # the console (imported after the run, to spare RAM) finds it
        asyncio.run(app.run())
    except KeyboardInterrupt:
        print("controller stopped (Ctrl-C): every output safe. status(), cfg.show(); start() "
              "or Ctrl-D runs it again, or the board restarts it in %d min" % (
                  app.cfg["maintenance_min"] if app else 0))
    finally:
        # Whatever ended the run (Ctrl-C, a bug, a reset request), nothing stays energised.
        if app is not None:
            app.running = False
            app.force_safe()
            if app.wear is not None:
                app.wear.save()      # the operations since the last periodic save
            # Time for the installer at the REPL; a board left stopped resets and runs again.
            app.hw.stretch_watchdog(app.cfg["maintenance_min"] * 60000)
