#!/usr/bin/env python3
"""`make sim`: runs the firmware on the MicroPython unix port against the simulated panel,
replaying a real household day with an EV and a water heater on top; prints a summary and
writes a CSV of the run and a PNG plot (panel power against the limit, loads stacked).
Every option is checked before the firmware starts: a bad one prints one `error:` line and
exits 2, and no output of an earlier run is left in --out."""

import argparse
import csv
import datetime
import functools
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
import toolchain  # noqa: E402
from toolchain import MICROPYTHON  # noqa: E402
sys.path.insert(0, str(ROOT / "tools"))
import hostbuild  # noqa: E402

# The ESP32's heap for the firmware (README: what a WROOM build has to spare). The
# simulator's own share is measured and given on top, so the firmware gets exactly this.
FIRMWARE_HEAP = 128 * 1024


def simulator_footprint(env):
    """Bytes of heap the simulator itself takes under the unix port (its modules, profile,
    panel model), measured in a separate run."""
    proc = subprocess.run([str(MICROPYTHON), "-X", "heapsize=1m", "-c",
                           "import panelsim.footprint"], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit("error: measuring the simulator's heap failed: %s" % proc.stderr.strip())
    return int(proc.stdout.split()[-1])


def micropython_env(firmware_in_rom=False):
    build = hostbuild.build(firmware_in_rom=firmware_in_rom)
    if firmware_in_rom:
        # As on the board: the image in the port's ROMFS segment (tools/unix32/romseg), a
        # static buffer mounted at /rom, outside the heap. Held in the heap instead (as
        # panelsim/frozen.py holds umqtt's small image) it would be swept by every
        # collection, charged to the firmware's stretches under the ESP32 cost model.
        return dict(os.environ, PANELCAP_ROMFS=str(hostbuild.frozen_rom(build)),
                    MICROPYPATH=".frozen:/rom:" + str(build))
    return dict(os.environ, MICROPYPATH=hostbuild.micropypath(build),
                PANELCAP_FROZEN_ROM=str(hostbuild.frozen_rom(build)))


DEFAULT_PROFILE = ROOT / "tools" / "data" / "profiles" / "default_day.csv"
OUTPUTS = ("sim.csv", "sim.png", "summary.json", "sim.log")     # what a run writes in --out


def firmware_command(sim_args, heap="auto", log=print, firmware_kb=FIRMWARE_HEAP // 1024,
                     firmware_in_rom=False, env=None):
    """(cmd, env) that run tools/panelsim/run.py's main(sim_args) under the unix port,
    compiled (.mpy) as the board's firmware is; heap "auto" gives the firmware firmware_kb
    (an ESP32's 128 KB by default), MQTT or not, on top of the simulator's measured
    footprint. firmware_in_rom: the firmware runs from a ROM image (hostbuild.build)."""
    env = env or micropython_env(firmware_in_rom)
    if heap == "auto":
        sim_bytes = simulator_footprint(env)
        heap = firmware_kb * 1024 + sim_bytes
        log("heap: %d KB for the firmware (its code %s) + %d KB the simulator measured for "
            "itself%s" % (
            firmware_kb, "in the romfs partition, in place" if firmware_in_rom
            else "loaded from .mpy", (sim_bytes + 1023) // 1024,
            "" if toolchain.WORD_BITS == 32 else " (64-bit figures: twice the ESP32's)"))
    cmd = [str(MICROPYTHON), "-X", "heapsize=%s" % heap, "-c",
           "from panelsim import run; run.main(%r)" % (list(sim_args),)]
    return cmd, env


class Refused(Exception):
    """An option the run cannot take: str() is its one line, without "error: "."""


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _value(text):
    """An option's VALUE as tools/panelsim/run.py reads it: JSON, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _key_value(option, item):
    key, eq, text = item.partition("=")
    if not eq or not key:
        raise Refused("%s needs KEY=VALUE, got %r" % (option, item))
    return key, text


@functools.cache
def _firmware():
    """The firmware's config and configuration-console modules and the simulated board,
    imported into this process (pure Python): the settings' names, checks and the panel the
    simulator models are theirs, not copies."""
    saved = sys.path[:]
    sys.path[:0] = [str(ROOT / "firmware"), str(ROOT / "boards")]
    try:
        import config
        import consolecfg
        import simboard as board
    finally:
        sys.path[:] = saved
    return config, consolecfg, board


def panel_overrides(items, hours):
    """--panel KEY=VALUE items as (key, value) pairs, each checked against boards/simboard.py's
    PANEL: the key exists, the value has the default's type, numbers are finite and not
    negative (temperatures, *_c, may be), an hour (*_h) falls within the run (or is null:
    the EV never comes). The panel model checks the rest when the simulator builds it."""
    _, _, board = _firmware()
    out = []
    for item in items:
        key, text = _key_value("--panel", item)
        section, dot, name = key.partition(".")
        table = board.PANEL.get(section) if dot else board.PANEL
        name = name if dot else key
        if not isinstance(table, dict) or name not in table:
            raise Refused("--panel: no setting %r in the simulated panel (boards/simboard.py PANEL)"
                          % key)
        default = table[name]
        value = text if isinstance(default, str) else _value(text)
        if isinstance(default, bool):
            ok, want = isinstance(value, bool), "true or false"
        elif name.endswith("_h"):
            ok = value is None or (_is_number(value) and 0 <= value < hours)
            want = "an hour within the run, 0 to under %g (null: never)" % hours
        elif _is_number(default) or default is None:
            ok = (value is None and default is None) or (
                _is_number(value) and (value >= 0 or name.endswith("_c")))
            want = ("a number" if name.endswith("_c") else "a number >= 0") + (
                " or null" if default is None else "")
        elif isinstance(default, (list, tuple)):
            ok, want = isinstance(value, list), "a JSON list"
        elif isinstance(default, dict):
            ok, want = isinstance(value, dict), "a JSON object"
        else:
            ok, want = isinstance(value, str), "text"
        if not ok:
            raise Refused("--panel: %s must be %s, got %r" % (key, want, text))
        out.append((key, value))
    return out


def firmware_overrides(limit_w, items, mqtt=None, web=None):
    """The firmware's settings for the run: --limit-w, then each --cfg KEY=VALUE by the
    console's names ('band_pct', 'ct.CT3.gain', 'loads.water_heater.min_off_s', or 'loads' /
    'loads.<load>' whole, as JSON), looked up and checked as cfg.set does (consolecfg._split,
    config.check), then the whole through config.validate with the simulated board.
    Returns (setpoint W, [(key, value)]): the top-level settings that differ from the
    defaults, whole `loads` and `ct` included, as tools/panelsim/run.py takes them."""
    config, consolecfg, board = _firmware()
    defaults = config.defaults(board)
    cfg = config.copy(defaults)
    given = [("--limit-w", "limit_w", limit_w)]
    for item in items:
        key, text = _key_value("--cfg", item)
        given.append(("--cfg %s" % item, key, text))
    if mqtt:
        host, _, port = mqtt.rpartition(":")
        given += [("--mqtt", "mqtt_host", host), ("--mqtt", "mqtt_port", int(port))]
    if web:
        given.append(("--web", "web_port", web))
    for option, key, text in given:
        try:
            if key in ("loads", "ct") or (key.startswith("loads.") and key.count(".") == 1):
                value = _value(text)
                if key == "loads" or key == "ct":
                    cfg[key] = value
                else:           # 'loads.ev': one load whole, as cfg.set takes it
                    name = key[6:]
                    old = config.find_load(cfg, name)
                    if old is None or not isinstance(value, dict):
                        raise consolecfg.Mistake("%s must be a JSON object replacing a load "
                                                 "(%s)" % (key, ", ".join(
                                                     spec.get("name", "?")
                                                     for spec in cfg["loads"])))
                    value = dict(value)
                    value.setdefault("name", name)
                    cfg["loads"][cfg["loads"].index(old)] = value
                continue
            row, target, field = consolecfg._split(key, cfg)
            value = text
            if isinstance(text, str) and row[1] in ("int", "float"):
                value = _value(text)
            if value in (None, "null") and target is not cfg and row[5] is None \
                    and field not in config._REQUIRED_LOAD:
                target.pop(field, None)     # an optional load setting removed, as cfg.set
                continue
            target[field] = config.check(row, value)
        except (consolecfg.Mistake, ValueError) as e:
            raise Refused("%s: %s" % (option, str(e).replace(
                " (cfg.show() lists them)", " (firmware/config.py lists them)")))
    errors = config.validate(cfg, board)
    if errors:
        raise Refused("%s: %s" % ("--limit-w" if errors[0].startswith("limit_w") else "--cfg",
                                  errors[0]))
    changed = [(key, cfg[key]) for key in cfg
               if cfg[key] != defaults[key] and key not in ("mqtt_host", "mqtt_port")]
    return config.setpoint_w(cfg), changed


def check_options(args):
    """Every option, before anything runs: raises Refused with the first problem. Fills in
    args.setpoint_w and the checked args.panel_items and args.cfg_items."""
    for option, conv in (("--limit-w", int), ("--hours", float), ("--speed", float),
                         ("--reboot-at-s", int), ("--cpu-factor", int), ("--adc-read-us", int)):
        name = option[2:].replace("-", "_")
        text = getattr(args, name)
        if isinstance(text, str):
            try:
                setattr(args, name, conv(text))
            except ValueError:
                raise Refused("%s must be %s, got %r" % (
                    option, "an int" if conv is int else "a number", text))
    if not (_is_number(args.hours) and args.hours * 3600 >= 1):
        raise Refused("--hours must be a number of simulated hours, at least one second, "
                      "got %g" % args.hours)
    if not (_is_number(args.speed) and args.speed >= 0):
        raise Refused("--speed must be a number >= 0 (simulated seconds per real second; 0: "
                      "as fast as the host can), got %g" % args.speed)
    run_s = int(args.hours * 3600)
    if args.reboot_at_s is not None and not 0 <= args.reboot_at_s < run_s:
        raise Refused("--reboot-at-s must be a simulated second of the run, 0..%d, got %d"
                      % (run_s - 1, args.reboot_at_s))
    if args.day is not None:
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", args.day):
                raise ValueError
            datetime.date.fromisoformat(args.day)
        except ValueError:
            raise Refused("--day must be a date YYYY-MM-DD (e.g. 2018-02-05), got %r" % args.day)
    for option, value in (("--cpu-factor", args.cpu_factor), ("--adc-read-us", args.adc_read_us)):
        if value is not None and value < 0:
            raise Refused("%s must be >= 0 (0: that part of the cost model off), got %d"
                          % (option, value))
    if args.heap != "auto" and not re.fullmatch(r"[1-9]\d*[kKmM]?", args.heap):
        raise Refused("--heap must be auto or a size such as 256k or 2m, got %r" % args.heap)
    if args.mqtt:
        host, _, port = args.mqtt.rpartition(":")
        if not host or not port.isdigit():
            raise Refused("--mqtt needs HOST:PORT (MQTT=localhost:1883), got %r" % args.mqtt)
    if args.web and not (args.web.isdigit() and 1 <= int(args.web) <= 65535):
        raise Refused("--web needs a TCP port, 1..65535 (WEB=8080), got %r" % args.web)
    args.panel_items = panel_overrides(args.panel, args.hours)
    args.setpoint_w, args.cfg_items = firmware_overrides(args.limit_w, args.cfg, args.mqtt,
                                                         args.web)


def simulator_args(args):
    """The checked options as tools/panelsim/run.py takes them (values as JSON)."""
    sim_args = ["--profile", str(args.profile), "--limit-w", str(args.limit_w),
                "--hours", repr(args.hours)]
    if args.day:
        sim_args += ["--day", args.day]
    if args.speed:
        sim_args += ["--speed", repr(args.speed)]
    if args.reboot_at_s is not None:
        sim_args += ["--reboot-at-s", str(args.reboot_at_s)]
    if args.mqtt:
        sim_args += ["--mqtt", args.mqtt]
    for key, value in args.panel_items:
        sim_args += ["--panel", "%s=%s" % (key, json.dumps(value))]
    for key, value in args.cfg_items:
        sim_args += ["--cfg", "%s=%s" % (key, json.dumps(value))]
    if args.esp32_costs:
        sim_args += ["--esp32-costs"]
    if args.cpu_factor is not None:
        sim_args += ["--cpu-factor", str(args.cpu_factor)]
    if args.adc_read_us is not None:
        sim_args += ["--adc-read-us", str(args.adc_read_us)]
    return sim_args


def simulator_check(sim_args, env):
    """The simulator's own checks, before the firmware starts (run.py --check): the profile
    and the day in it, the panel model's parameters, the firmware's settings. Returns the
    date replayed ('YYYY-MM-DD', or None for a profile timed in seconds)."""
    proc = subprocess.run([str(MICROPYTHON), "-X", "heapsize=2m", "-c",
                           "from panelsim import run; run.main(%r)" % (sim_args + ["--check"],)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        print(errors[-1] if errors else "error: the simulator's check failed (exit %d): %s" % (
            proc.returncode, (proc.stderr or proc.stdout).strip()[-2000:]), file=sys.stderr)
        sys.exit(proc.returncode)
    date = proc.stdout.split()[-1]
    return None if date == "-" else date


def run_firmware(args, csv_path, sim_args, env):
    """Runs the firmware on the simulated panel; streams its CSV into csv_path."""
    cmd, env = firmware_command(sim_args, args.heap, env=env, firmware_in_rom=args.rom)
    summary = {}
    holds = {}
    last_error = None
    mqtt_failed = None
    with open(csv_path, "w") as out, open(csv_path.with_suffix(".log"), "w") as log:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True, env=env,
                                cwd=ROOT)
        for line in proc.stderr:
            log.write(line)
            line = line.rstrip()
            if line.startswith("sim: hour"):
                if sys.stdout.isatty():
                    print("\r" + line, end="", flush=True)     # one line, updated
                else:
                    print(line, flush=True)
            elif line.startswith("sim: worst scheduler hold "):
                words = line.split()
                holds["worst_gap_ms"] = int(words[4])
                holds["boot_gap_ms"] = int(words[7])
                holds["gap_p999_ms"] = int(words[13])
            elif line.startswith("sim: done; contactor ops:"):
                for item in line.split(":", 2)[2].split():
                    name, _, n = item.partition("=")
                    summary[name] = int(n)
            elif line.startswith("error: "):
                last_error = line
            elif line.startswith("mqtt: not started") or line.startswith("web: not started"):
                # the board carries on without MQTT or the page; asked for, it is an error
                mqtt_failed = line
                print(line, flush=True)
            elif line:
                print(line, flush=True)
        rc = proc.wait()
    if sys.stdout.isatty():
        print()
    if rc != 0:
        _drop_if_no_rows(csv_path)
    if rc != 0 and last_error:
        print(last_error, file=sys.stderr)    # its one line says it all; sim.log has the rest
        sys.exit(rc)
    if rc != 0:
        sys.exit("error: the firmware simulation failed (exit %d); see %s" % (
            rc, csv_path.with_suffix(".log")))
    if mqtt_failed:
        sys.exit("error: --%s was asked for but the firmware could not start it (%s)" %
                 (mqtt_failed.split(":")[0], mqtt_failed))
    return summary, holds


def _drop_if_no_rows(csv_path):
    # A run that ended before its first simulated second leaves no CSV, not a header alone.
    with open(csv_path) as f:
        f.readline()
        if not f.readline():
            csv_path.unlink()


def read_run(csv_path):
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit("error: %s: the simulation wrote no rows" % csv_path)
    cols = {k: [float(r[k]) for r in rows] for k in rows[0]}
    return cols


def summarise(cols, ops, args):
    panel, limit = cols["panel_w"], cols["limit_w"]
    drawing = [wh > 0 or ev > 0 for wh, ev in zip(cols["water_heater_w"], cols["ev_w"])]
    over = [p > lim > 0 for p, lim in zip(panel, limit)]
    longest = longest_ctl = run = run_ctl = 0
    for o, d in zip(over, drawing):
        run = run + 1 if o else 0
        run_ctl = run_ctl + 1 if o and d else 0
        longest, longest_ctl = max(longest, run), max(longest_ctl, run_ctl)
    # Metering error on steady seconds only: where the panel changed within the second the
    # firmware's window and the recorder's instant legitimately disagree.
    errors = [abs(cols["measured_w"][i] - panel[i]) for i in range(1, len(panel) - 1)
              if cols["valid"][i] and panel[i - 1] == panel[i] == panel[i + 1]]
    return {
        "hours": len(panel) / 3600,
        "limit_w": args.setpoint_w,
        "peak_panel_w": max(panel),
        "seconds_above_limit": sum(over),
        "over_controllable_s": sum(o and d for o, d in zip(over, drawing)),
        "over_base_only_s": sum(o and not d for o, d in zip(over, drawing)),
        "longest_excursion_s": longest,
        "longest_controllable_excursion_s": longest_ctl,
        "ev_energy_wh": cols["ev_energy_wh"][-1],
        "water_heater_energy_wh": sum(cols["water_heater_w"]) / 3600,
        "contactor_ops": ops,
        "metering_error_max_w": max(errors) if errors else None,
        "metering_error_mean_w": sum(errors) / len(errors) if errors else None,
    }


def plot(cols, summary, png_path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    hours = [t / 3600 for t in cols["t_s"]]
    fig, ax = plt.subplots(figsize=(12, 5), dpi=110)
    ax.stackplot(hours, [w / 1000 for w in cols["base_w"]],
                 [w / 1000 for w in cols["water_heater_w"]],
                 [w / 1000 for w in cols["ev_w"]],
                 labels=["household (uncontrolled)", "water heater (contactor)",
                         "EV (J1772 pilot)"],
                 colors=["#9aa5b1", "#f0a35e", "#4c9be8"], linewidth=0)
    ax.plot(hours, [w / 1000 for w in cols["limit_w"]], color="#c0392b", lw=1.5,
            label="limit (setpoint)")
    ax.plot(hours, [w / 1000 for w in cols["measured_w"]], color="black", lw=0.5, alpha=0.6,
            label="panel power as metered by the firmware")
    ax.set_xlabel("hour of the simulated day")
    ax.set_ylabel("kW")
    ax.set_xlim(hours[0], hours[-1])
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, "error: %s (--help lists the options)\n" % message)


def main(argv=None):
    ap = _Parser(description=__doc__)
    ap.add_argument("--profile", default="",
                    help="household CSV (Time, Aggregate columns; .csv.gz too); default: "
                         "tools/data/profiles/default_day.csv, IDEAL house 65 on 2018-02-05")
    ap.add_argument("--day", default=None, metavar="YYYY-MM-DD",
                    help="the date in the profile to replay (default: its first day)")
    ap.add_argument("--limit-w", default=7200,
                    help="installer setpoint, W (0: 80 %% of the panel rating)")
    ap.add_argument("--hours", default=24.0,
                    help="simulated hours (the profile's day repeats)")
    ap.add_argument("--speed", default=0.0,
                    help="simulated seconds per real second (0: as fast as possible; a pace "
                         "the host cannot keep runs as fast as it can)")
    ap.add_argument("--reboot-at-s", default=None,
                    help="power-cycle the simulated board at this simulated second")
    ap.add_argument("--mqtt", default="",
                    help="host:port of a broker to publish telemetry to and take commands "
                         "from (docs/mqtt.md); sets --speed 60 unless given")
    ap.add_argument("--web", default="", metavar="PORT",
                    help="serve the status page on http://127.0.0.1:PORT/ (docs/web.md); "
                         "sets --speed 60 unless given")
    ap.add_argument("--panel", action="append", default=[], metavar="KEY=VALUE",
                    help="change the simulated panel, e.g. ev.arrive_h=18 (null: no EV) "
                         "(boards/simboard.py PANEL)")
    ap.add_argument("--cfg", action="append", default=[], metavar="KEY=VALUE",
                    help="override a firmware setting by the console's name, e.g. band_pct=10 "
                         "or loads.water_heater.min_off_s=120 (docs/installation.md)")
    ap.add_argument("--heap", default="auto",
                    help="MicroPython heap; auto: 128 KB for the firmware (an ESP32's) plus "
                         "the simulator's own measured footprint")
    ap.add_argument("--rom", action="store_true",
                    help="the firmware's code in the board's romfs partition, run in place "
                         "from flash, as make deploy installs it on boards/PANELCAP_ESP32 "
                         "(default: .mpy files loaded into the heap, as on a stock MicroPython: "
                         "the stricter of the two)")
    ap.add_argument("--esp32-costs", action="store_true",
                    help="charge the ESP32's costs to simulated time (an ADC read 35 us, "
                         "Python x50: tools/panelsim/vtime.py) and report the scheduler's "
                         "worst gap; the host's noise enters the figures")
    ap.add_argument("--cpu-factor", default=None,
                    help="with --esp32-costs: Python and viper this many times slower than "
                         "on this host instead of 50 (0: free)")
    ap.add_argument("--adc-read-us", default=None,
                    help="with --esp32-costs: an ADC read holds the scheduler this long "
                         "instead of the board's ADC_SLOT_US (0: scans are instant)")
    ap.add_argument("--out", default="out")
    args = ap.parse_args(argv)
    args.profile = Path(args.profile) if args.profile else DEFAULT_PROFILE
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in OUTPUTS:        # an earlier run's: nothing here may outlive a failed run
            (out / name).unlink(missing_ok=True)
    except OSError as e:
        print("error: --out %s: %s" % (out, e.strerror or e), file=sys.stderr)
        sys.exit(2)
    try:
        check_options(args)
        if (args.mqtt or args.web) and not args.speed:
            args.speed = 60     # watchable: a simulated minute per second, a day in 24 min
    except Refused as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(2)
    sim_args = simulator_args(args)
    env = micropython_env(firmware_in_rom=args.rom)
    date = simulator_check(sim_args, env)
    csv_path, png_path = out / "sim.csv", out / "sim.png"
    name = "%s (%s)" % (args.profile.name, date) if date else args.profile.name
    print("panelcap sim: %s, limit %d W, %g h" % (name, args.setpoint_w, args.hours))
    print("micropython: %s" % toolchain.describe())
    t0 = time.monotonic()
    ops, holds = run_firmware(args, csv_path, sim_args, env)
    wall = time.monotonic() - t0
    cols = read_run(csv_path)
    summary = summarise(cols, ops, args)
    summary.update(holds)
    plot(cols, summary, png_path, "panelcap on %s, limit %d W" % (name, args.setpoint_w))
    print("summary (%g simulated h in %.1f s real):" % (summary["hours"], wall))
    print("  peak panel power      %8.0f W (limit %d W)" % (summary["peak_panel_w"],
                                                           args.setpoint_w))
    print("  seconds above limit   %8d s: %d with a controllable load drawing, %d the "
          "household alone" % (summary["seconds_above_limit"], summary["over_controllable_s"],
                               summary["over_base_only_s"]))
    print("  longest excursion     %8d s (%d s with a controllable load drawing)" % (
        summary["longest_excursion_s"], summary["longest_controllable_excursion_s"]))
    print("  EV energy delivered   %8.0f Wh" % summary["ev_energy_wh"])
    print("  water heater energy   %8.0f Wh" % summary["water_heater_energy_wh"])
    print("  contactor operations  %s" % " ".join("%s=%d" % kv for kv in ops.items()))
    if summary["metering_error_max_w"] is not None:
        print("  metering error        %8.1f W mean, %.0f W max (steady seconds)" % (
            summary["metering_error_mean_w"], summary["metering_error_max_w"]))
    if "worst_gap_ms" in holds:
        print("  scheduler gap         %8d ms at the 99.9th percentile, %d ms worst, %d ms in "
              "the first minute (ESP32 cost model; goal < 50 ms)" % (
                  holds["gap_p999_ms"], holds["worst_gap_ms"], holds["boot_gap_ms"]))
    with open(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    print("wrote %s, %s" % (csv_path, png_path))


if __name__ == "__main__":
    main()
