#!/usr/bin/env python3
"""`make sim`: runs the firmware on the MicroPython unix port against the simulated panel,
replaying a real household day with an EV and a water heater on top; prints a summary and
writes a CSV of the run and a PNG plot (panel power against the limit, loads stacked)."""

import argparse
import csv
import json
import os
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
    return dict(os.environ, MICROPYPATH=hostbuild.micropypath(build),
                PANELCAP_FROZEN_ROM=str(hostbuild.frozen_rom(build)))


DEFAULT_PROFILE = ROOT / "tools" / "data" / "profiles" / "default_day.csv"


def firmware_command(sim_args, heap="auto", log=print, firmware_kb=FIRMWARE_HEAP // 1024,
                     firmware_in_rom=False):
    """(cmd, env) that run tools/panelsim/run.py's main(sim_args) under the unix port,
    compiled (.mpy) as the board's firmware is; heap "auto" gives the firmware firmware_kb
    (an ESP32's 128 KB by default), MQTT or not, on top of the simulator's measured
    footprint. firmware_in_rom: the firmware runs from a ROM image (hostbuild.build)."""
    env = micropython_env(firmware_in_rom)
    if heap == "auto":
        sim_bytes = simulator_footprint(env)
        heap = firmware_kb * 1024 + sim_bytes
        log("heap: %d KB for the firmware + %d KB the simulator measured for itself%s" % (
            firmware_kb, (sim_bytes + 1023) // 1024,
            "" if toolchain.WORD_BITS == 32 else " (64-bit figures: twice the ESP32's)"))
    cmd = [str(MICROPYTHON), "-X", "heapsize=%s" % heap, "-c",
           "from panelsim import run; run.main(%r)" % (list(sim_args),)]
    return cmd, env


def run_firmware(args, csv_path):
    """Runs the firmware on the simulated panel; streams its CSV into csv_path."""
    sim_args = ["--profile", str(args.profile), "--limit-w", str(args.limit_w),
                "--hours", str(args.hours), "--day", str(args.day)]
    if args.speed:
        sim_args += ["--speed", str(args.speed)]
    if args.reboot_at_s is not None:
        sim_args += ["--reboot-at-s", str(args.reboot_at_s)]
    if args.mqtt:
        sim_args += ["--mqtt", args.mqtt]
    for item in args.panel:
        sim_args += ["--panel", item]
    for item in args.cfg:
        sim_args += ["--cfg", item]
    if args.esp32_costs:
        sim_args += ["--esp32-costs"]
    if args.cpu_factor is not None:
        sim_args += ["--cpu-factor", str(args.cpu_factor)]
    if args.adc_read_us is not None:
        sim_args += ["--adc-read-us", str(args.adc_read_us)]
    cmd, env = firmware_command(sim_args, args.heap)
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
            elif line.startswith("sim: done; contactor ops:"):
                for item in line.split(":", 2)[2].split():
                    name, _, n = item.partition("=")
                    summary[name] = int(n)
            elif line.startswith("error: "):
                last_error = line
            elif line.startswith("mqtt: not started"):
                mqtt_failed = line      # the board carries on without MQTT; asked for, it is an error
                print(line, flush=True)
            elif line:
                print(line, flush=True)
        rc = proc.wait()
    if sys.stdout.isatty():
        print()
    if rc != 0 and last_error:
        print(last_error, file=sys.stderr)    # its one line says it all; sim.log has the rest
        sys.exit(rc)
    if rc != 0:
        sys.exit("error: the firmware simulation failed (exit %d); see %s" % (
            rc, csv_path.with_suffix(".log")))
    if mqtt_failed:
        sys.exit("error: --mqtt was asked for but the firmware could not start it (%s)" %
                 mqtt_failed)
    return summary, holds


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
        "limit_w": args.limit_w,
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profile", default="", help="household CSV (Time, Aggregate columns)")
    ap.add_argument("--limit-w", type=int, default=7200, help="installer setpoint, W")
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--day", type=int, default=0, help="day of the profile to replay")
    ap.add_argument("--speed", type=float, default=0,
                    help="simulated seconds per real second (0: as fast as possible)")
    ap.add_argument("--reboot-at-s", type=int, default=None,
                    help="power-cycle the simulated board at this simulated second")
    ap.add_argument("--mqtt", default="",
                    help="host:port of a broker to publish telemetry to and take commands "
                         "from (docs/mqtt.md); sets --speed 60 unless given")
    ap.add_argument("--panel", action="append", default=[], metavar="KEY=VALUE",
                    help="change the simulated panel, e.g. ev.arrive_h=18 (boards/sim.py)")
    ap.add_argument("--cfg", action="append", default=[], metavar="KEY=VALUE",
                    help="override a firmware setting, e.g. band_pct=10")
    ap.add_argument("--heap", default="auto",
                    help="MicroPython heap; auto: 128 KB for the firmware (an ESP32's) plus "
                         "the simulator's own measured footprint")
    ap.add_argument("--esp32-costs", action="store_true",
                    help="charge the ESP32's costs to simulated time (an ADC read 35 us, "
                         "Python x50: tools/panelsim/vtime.py) and report the scheduler's "
                         "worst gap; the host's noise enters the figures")
    ap.add_argument("--cpu-factor", type=int, default=None,
                    help="with --esp32-costs: Python and viper this many times slower than "
                         "on this host instead of 50 (0: free)")
    ap.add_argument("--adc-read-us", type=int, default=None,
                    help="with --esp32-costs: an ADC read holds the scheduler this long "
                         "instead of the board's ADC_SLOT_US (0: scans are instant)")
    ap.add_argument("--out", default="out")
    args = ap.parse_args(argv)
    args.profile = Path(args.profile) if args.profile else DEFAULT_PROFILE
    if args.mqtt:
        host, _, port = args.mqtt.rpartition(":")
        if not host or not port.isdigit():
            sys.exit("error: --mqtt needs HOST:PORT (MQTT=localhost:1883), got %r" % args.mqtt)
        if not args.speed:
            args.speed = 60     # watchable: a simulated minute per second, a day in 24 min
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / "sim.csv", out / "sim.png"
    print("panelcap sim: %s, limit %d W, %g h" % (args.profile.name, args.limit_w, args.hours))
    print("micropython: %s" % toolchain.describe())
    t0 = time.monotonic()
    ops, holds = run_firmware(args, csv_path)
    wall = time.monotonic() - t0
    cols = read_run(csv_path)
    summary = summarise(cols, ops, args)
    summary.update(holds)
    plot(cols, summary, png_path, "panelcap on %s, limit %d W" % (args.profile.name,
                                                                   args.limit_w))
    print("summary (%g simulated h in %.1f s real):" % (summary["hours"], wall))
    print("  peak panel power      %8.0f W (limit %d W)" % (summary["peak_panel_w"],
                                                           args.limit_w))
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
        print("  worst scheduler gap   %8d ms running, %d ms in the first minute (ESP32 cost "
              "model; goal < 50 ms)" % (holds["worst_gap_ms"], holds["boot_gap_ms"]))
    with open(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    print("wrote %s, %s" % (csv_path, png_path))


if __name__ == "__main__":
    main()
