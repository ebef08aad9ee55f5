"""Runs the firmware on the simulated board for a number of simulated hours.

micropython tools/panelsim/run.py [--profile FILE] [--day YYYY-MM-DD] [--limit-w W]
    [--hours H] [--speed S] [--reboot-at-s S] [--mqtt HOST:PORT] [--telemetry-ms MS]
    [--panel KEY=VALUE]... [--cfg KEY=VALUE]... [--quiet] [--check]

--day replays that date of the profile (default: its first day). --panel changes the
simulated panel (boards/simboard.py PANEL, `section.key`), --cfg a firmware setting by its
top-level name (firmware/config.py; `loads` and `ct` whole, as JSON): VALUE is JSON, else
text. tools/run_sim.py checks every option first and takes the console's dotted names.
--mqtt publishes telemetry to a broker and takes commands from it (docs/mqtt.md); socket
deadlines then run on the host's real clock, everything else on simulated time.
--check stops before the firmware starts: it loads the profile, builds the panel and checks
the settings, then prints the date replayed (or "-" for a profile timed in seconds).

Writes one CSV row per simulated second to stdout (header first) and progress to stderr.
The firmware (firmware/app.py) runs unchanged; only the board and machine are simulated.
"""

import gc
import sys
import time

# First: mounts the board's frozen umqtt before anything can import it from elsewhere.
from panelsim import frozen  # noqa: F401
import asyncio

import simboard as board
from panelsim import machine as sim_machine
from panelsim.vtime import ESP32_CPU_FACTOR, VirtualTime
from panelsim.panel import Panel
from panelsim.adcgen import AdcGen
from panelsim import profile as profile_mod
from limits import NO_LIMIT

DEFAULT_PROFILE = "tools/data/profiles/default_day.csv"
BOOT_MS = 60_000      # the worst scheduler hold is reported apart for the first minute
COLUMNS = ("t_s", "base_w", "water_heater_w", "ev_w", "panel_w", "measured_w", "limit_w",
           "ev_setpoint_a", "water_heater_on", "valid", "l1_a", "l2_a", "ev_energy_wh",
           "limit_a")
# limit_w, limit_a: the limit in force (0: none), W and A per leg; the controller plans
# lower ahead of a known step (limits.Limits.effective), and that is not the limit.


def parse_args(argv):
    opts = {"profile": DEFAULT_PROFILE, "limit_w": 7200, "hours": 24, "speed": 0, "day": None,
            "panel": [], "cfg": [],
            "reboot_at_s": -1, "quiet": False, "check": False, "mqtt": "",
            "telemetry_ms": 10000, "cpu_factor": 0, "adc_read_us": 0}
    names = {"--profile": ("profile", str), "--limit-w": ("limit_w", int),
             "--hours": ("hours", float), "--speed": ("speed", float), "--day": ("day", str),
             "--reboot-at-s": ("reboot_at_s", int), "--mqtt": ("mqtt", str),
             "--telemetry-ms": ("telemetry_ms", int),
             # the ESP32 cost model (panelsim/vtime.py): 0 turns either part off
             "--cpu-factor": ("cpu_factor", int), "--adc-read-us": ("adc_read_us", int)}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--quiet", "--check"):
            opts[arg[2:]] = True
            i += 1
            continue
        if arg == "--esp32-costs":
            # the ESP32's costs charged to simulated time (panelsim/vtime.py has the model)
            opts["cpu_factor"] = ESP32_CPU_FACTOR
            opts["adc_read_us"] = board.ADC_SLOT_US
            i += 1
            continue
        if arg in ("--panel", "--cfg") and i + 1 < len(argv):
            # --panel ev.arrive_h=99 changes the simulated panel (boards/simboard.py PANEL);
            # --cfg band_pct=10 overrides a firmware setting (firmware/config.py)
            key, eq, value = argv[i + 1].partition("=")
            if not eq:
                raise SystemExit("error: %s needs KEY=VALUE, got %r" % (arg, argv[i + 1]))
            opts[arg[2:]].append((key, _value(value)))
            i += 2
            continue
        if arg not in names or i + 1 >= len(argv):
            raise SystemExit("error: unknown or incomplete option %r" % arg)
        key, conv = names[arg]
        try:
            opts[key] = conv(argv[i + 1])
        except ValueError:
            raise SystemExit("error: %s needs a number, got %r" % (arg, argv[i + 1]))
        i += 2
    # What the engine itself cannot run (tools/run_sim.py checks every option, in the
    # installer's terms): a negative pace waits for ever, no time writes nothing.
    if not opts["speed"] >= 0:
        raise SystemExit("error: --speed must be >= 0, got %r" % opts["speed"])
    if not opts["hours"] * 3600 >= 1:
        raise SystemExit("error: --hours must be at least one simulated second, got %r"
                         % opts["hours"])
    return opts


def _value(text):
    """A --panel or --cfg value: JSON (a number, a list, an object, true, false, null), else
    the text itself."""
    import json
    try:
        return json.loads(text)
    except ValueError:
        if text[:1] in "[{":
            raise SystemExit("error: not JSON: %r" % text)
        return text


def panel_params(overrides):
    """boards/simboard.py's PANEL with `section.key` (or `key`) overrides applied, on copies."""
    params = dict(board.PANEL)
    for key, value in overrides:
        section, dot, name = key.partition(".")
        if dot:
            if not isinstance(params.get(section), dict) or name not in params[section]:
                raise SystemExit("error: --panel: no setting %r in PANEL" % key)
            params[section] = dict(params[section])
            target = params[section]
        else:
            if key not in params:
                raise SystemExit("error: --panel: no setting %r in PANEL" % key)
            target, name = params, key
        if _is_number(target[name]) and not _is_number(value) and value is not None:
            # the model multiplies it: text would be repeated, not scaled
            raise SystemExit("error: --panel: %s must be a number, got %r" % (key, value))
        target[name] = value
    return params


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_cfg(cfg):
    """The firmware's own checks on the settings (config.merged, config.validate), before it
    starts: a bad one ends the run with one line. The config module is dropped after, as the
    firmware's build drops it."""
    import config
    try:
        errors = config.validate(config.merged(cfg, board), board)
    except ValueError as e:
        errors = [str(e)]
    config = None
    sys.modules.pop("config", None)
    gc.collect()
    if errors:
        raise SystemExit("error: %s" % errors[0])


class Recorder:
    """Writes the panel's truth and the firmware's view once per simulated second."""

    boot_hold_ms = None     # the worst scheduler hold in the first BOOT_MS

    def __init__(self, vt, panel, app_ref, end_ms, out, progress, reboot_at_ms=-1):
        self.reboot_at_ms = reboot_at_ms
        self.vt = vt
        self.panel = panel
        self.app_ref = app_ref
        self.end_ms = end_ms
        self.out = out
        self.progress = progress

    async def run(self):
        vt, panel, out = self.vt, self.panel, self.out
        next_hour = 3_600_000
        next_ms = vt.elapsed_ms()
        while True:
            t0 = vt.sim_begin()     # recording is the simulator's work: not charged
            now = vt.elapsed_ms()
            if now >= self.end_ms:
                return
            if 0 <= self.reboot_at_ms <= now:
                raise _Reboot()
            panel.advance_to(now)
            app = self.app_ref[0]
            ev = wh = None
            for b in app.bindings:
                if b.load.name == "ev":
                    ev = b
                elif b.load.name == "water_heater":
                    wh = b
            s = app.sampler
            lim = app.limits
            lim.in_force()
            out.write("%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%.3f,%.3f,%d,%.1f\n" % (
                now // 1000, panel.base_w, panel.wh_w, panel.ev_w, panel.total_w,
                s.total_w, lim.limit_w if lim.limit_w < NO_LIMIT else 0,
                ev.actuator.amps if ev else 0, 1 if wh and wh.actuator.is_on else 0,
                1 if s.valid else 0, s.leg_ma[0] / 1000, s.leg_ma[1] / 1000,
                panel.ev_energy_j // 3600,
                lim.limit_ma / 1000 if lim.limit_ma < NO_LIMIT else 0))
            if self.progress and now >= next_hour:
                gc.collect()      # hourly: the heap in use after collection must not grow
                sys.stderr.write("sim: hour %d/%d, heap in use %d B, free %d B\n" % (
                    now // 3_600_000, self.end_ms // 3_600_000, gc.mem_alloc(), gc.mem_free()))
                next_hour += 3_600_000
            if self.boot_hold_ms is None and now >= BOOT_MS:
                # The build and first connect are over: from here the worst hold is the
                # running firmware's (the goal: < 50 ms, with MQTT on).
                self.boot_hold_ms = vt.worst_hold_ms
                vt.reset_holds()
            vt.sim_end(t0)
            # One row per simulated second, on the second, however late this wake-up was.
            next_ms += 1000
            await asyncio.sleep_ms(max(0, next_ms - vt.elapsed_ms()))


def guarded(run, arg, on_crash=None):
    """run(arg), as a simulator's entry point: a bad option or setting ends it with one
    `error: ...` line on stderr (exit 2), a crash with its traceback there, on_crash(e) and
    an `error: ...` line last (exit 1)."""
    try:
        run(arg)
    except SystemExit as e:
        code = e.args[0] if e.args else 0
        if isinstance(code, str):
            sys.stderr.write(code + "\n")
            code = 2
        sys.exit(code)
    except Exception as e:      # a bug or an exhausted heap: the whole story, then one line
        sys.print_exception(e, sys.stderr)
        if on_crash is not None:
            on_crash(e)
        sys.stderr.write("error: %s: %s\n" % (type(e).__name__, e))
        sys.exit(1)


def main(argv):
    """Runs the simulation. stdout carries only CSV rows (errors: guarded above)."""
    guarded(_main, argv)


def _main(argv):
    opts = parse_args(argv)
    from clock import Clock as RealClock, WrappingClock
    import app as firmware_app
    try:
        prof = profile_mod.load(opts["profile"], date=opts["day"])
    except profile_mod.ProfileError as e:
        sys.stderr.write("error: %s\n" % e)
        sys.exit(2)
    except OSError as e:
        sys.stderr.write("error: %s: cannot read profile (%s)\n" % (opts["profile"], e))
        sys.exit(2)
    vt = VirtualTime(speed=opts["speed"])
    vt.install()
    wall_start = int(time.time())
    sim_wall = wall_clock(vt, wall_start)
    if opts["cpu_factor"] > 0:
        vt.charge_cpu(opts["cpu_factor"])
    clock = WrappingClock(vt.now_ms)
    try:
        panel = Panel(panel_params(opts["panel"]), prof)
    except (ValueError, TypeError) as e:     # the model's own checks on its parameters
        if not opts["panel"]:
            raise                   # PANEL as shipped: a bug, not a mistake
        raise SystemExit("error: --panel: %s" % e)
    end_ms = int(opts["hours"] * 3_600_000)
    cfg = {"limit_w": opts["limit_w"]}
    for key, value in opts["cfg"]:
        cfg[key] = value
    if opts["mqtt"]:
        host, _, port = opts["mqtt"].rpartition(":")
        if not host or not port.isdigit():
            sys.stderr.write("error: --mqtt needs HOST:PORT, got %r\n" % opts["mqtt"])
            sys.exit(2)
        cfg.update(mqtt_host=host, mqtt_port=int(port), telemetry_period_ms=opts["telemetry_ms"])
        cfg.setdefault("profile_device", "on")    # make sim MQTT= announces it (docs/profile.md)
    if opts["check"]:
        # Here only, in a process of its own (tools/run_sim.py runs it first): importing
        # config beside the firmware cost the firmware's heap 12 KB at its build's peak.
        # A run without it meets the same checks in the firmware's own build (below).
        check_cfg(cfg)
        print(prof.date or "-")
        return
    gen = AdcGen(board, panel)
    out = sys.stdout
    header = True
    app_ref = [None]
    cause = sim_machine.PWRON_RESET
    reboot_at_ms = opts["reboot_at_s"] * 1000
    log = (lambda msg: None) if opts["quiet"] else (lambda msg: sys.stderr.write(msg + "\n"))
    # Where simulated time sits on the wall clock: clock-aligned windows (grid schedules,
    # the demand window) start at wall times, not at t_s multiples.
    log("sim: wall clock at t_s 0: unix %d" % wall_start)
    app = None
    while True:
        sim_machine.attach(panel, vt, board, gen, reset_cause=cause,
                           adc_read_us=max(0, opts["adc_read_us"]))
        app = app_ref[0] = None     # the rebooted board keeps nothing of the old firmware
        gc.collect()
        try:
            app = firmware_app.build(board, sim_machine, clock, cfg, log=log)
        except ValueError as e:       # the firmware's own config checks: a bad setting
            if not header:
                raise
            msg = str(e)
            raise SystemExit("error: " + (msg[8:] if msg.startswith("config: ") else msg))
        if header:                    # stdout holds CSV rows only: a refusal writes none
            out.write(",".join(COLUMNS) + "\n")
            header = False
        app.net_clock = RealClock()   # socket deadlines are about real sockets
        # The wall clock runs with simulated time from the host's time at the start: read
        # from the host's clock, it fell back ~3,500 s at every hourly re-read of a run
        # faster than real time, and log stamps repeated. Across a reboot it runs on.
        app.wall = sim_wall
        app_ref[0] = app
        recorder = Recorder(vt, panel, app_ref, end_ms, out, not opts["quiet"], reboot_at_ms)
        try:
            asyncio.run(_session(app, recorder))
            app.force_safe()
            break
        except sim_machine.WatchdogReset as e:
            app.force_safe()
            log("sim: board reset: %s" % e)
            cause = sim_machine.WDT_RESET
        except _Reboot:
            app.force_safe()
            log("sim: power cycled at %d s" % (vt.elapsed_ms() // 1000))
            cause = sim_machine.PWRON_RESET
            reboot_at_ms = -1
        asyncio.new_event_loop()
    panel.advance_to(vt.elapsed_ms())
    ops = " ".join("%s=%d" % (b.load.name, b.actuator.ops) for b in app.bindings
                   if hasattr(b.actuator, "ops"))
    sys.stderr.write("sim: done; contactor ops: %s\n" % ops)
    if opts["cpu_factor"] or opts["adc_read_us"]:
        sys.stderr.write("sim: worst scheduler hold %d ms running, %d ms in the first minute, "
                         "%d ms at the 99.9th percentile (ESP32 cost model: Python x%d, ADC %d "
                         "us a read)\n" % (
                             vt.worst_hold_ms, recorder.boot_hold_ms or 0,
                             vt.hold_percentile(999), opts["cpu_factor"], opts["adc_read_us"]))


def wall_clock(vt, start_unix):
    """The simulated board's wall clock (app.wall): unix seconds that advance with
    simulated time from start_unix, whatever the pace of the run."""
    return lambda: start_unix + vt.elapsed_ms() // 1000


class _Reboot(Exception):
    pass


async def _session(app, recorder):
    # The recorder is awaited, so its end (or a simulated power cycle) ends the run; the
    # firmware's tasks are left behind with the event loop.
    asyncio.create_task(app.run())
    await recorder.run()


if __name__ == "__main__":
    main(sys.argv[1:])
