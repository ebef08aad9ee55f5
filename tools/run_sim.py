#!/usr/bin/env python3
"""`make sim`: runs the firmware on the MicroPython unix port against the simulated panel,
replaying a real household day with an EV and a water heater on top; prints a summary and
writes a CSV of the run and a PNG plot (panel power against the limit, loads stacked)."""

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
MICROPYPATH = ":".join([".frozen", str(ROOT / "firmware"), str(ROOT / "boards"),
                        str(ROOT / "lib"), str(ROOT / "tools")])
DEFAULT_PROFILE = ROOT / "tools" / "data" / "profiles" / "default_day.csv"


def run_firmware(args, csv_path):
    """Runs tools/panelsim/run.py under micropython; streams its CSV into csv_path."""
    cmd = [str(MICROPYTHON), "-X", "heapsize=%s" % args.heap, str(ROOT / "tools/panelsim/run.py"),
           "--profile", str(args.profile), "--limit-w", str(args.limit_w),
           "--hours", str(args.hours), "--day", str(args.day)]
    if args.speed:
        cmd += ["--speed", str(args.speed)]
    if args.reboot_at_s is not None:
        cmd += ["--reboot-at-s", str(args.reboot_at_s)]
    if args.mqtt:
        cmd += ["--mqtt", args.mqtt]
    env = dict(os.environ, MICROPYPATH=MICROPYPATH)
    summary = {}
    with open(csv_path, "w") as out, open(csv_path.with_suffix(".log"), "w") as log:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True, env=env,
                                cwd=ROOT)
        for line in proc.stderr:
            log.write(line)
            line = line.rstrip()
            if line.startswith("sim: hour"):
                print("\r" + line, end="", flush=True)
            elif line.startswith("sim: done; contactor ops:"):
                for item in line.split(":", 2)[2].split():
                    name, _, n = item.partition("=")
                    summary[name] = int(n)
            elif line:
                print("\r" + line, flush=True)
        rc = proc.wait()
    print()
    if rc != 0:
        sys.exit("error: the firmware simulation failed (exit %d); see %s" % (
            rc, csv_path.with_suffix(".log")))
    return summary


def read_run(csv_path):
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit("error: %s: the simulation wrote no rows" % csv_path)
    cols = {k: [float(r[k]) for r in rows] for k in rows[0]}
    return cols


def summarise(cols, ops, args):
    panel = cols["panel_w"]
    limit = cols["limit_w"]
    over = [p > lim for p, lim in zip(panel, limit)]
    longest = run = 0
    for o in over:
        run = run + 1 if o else 0
        longest = max(longest, run)
    ev_wh = cols["ev_energy_wh"][-1]
    return {
        "hours": len(panel) / 3600,
        "limit_w": args.limit_w,
        "peak_panel_w": max(panel),
        "seconds_above_limit": sum(over),
        "longest_excursion_s": longest,
        "ev_energy_wh": ev_wh,
        "water_heater_energy_wh": sum(cols["water_heater_w"]) / 3600,
        "contactor_ops": ops,
        "max_metering_error_w": max(abs(m - p) for m, p, v in
                                    zip(cols["measured_w"], panel, cols["valid"]) if v) if any(cols["valid"]) else None,
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
    ap.add_argument("--heap", default="128k", help="MicroPython heap (ESP32-like)")
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
    t0 = time.monotonic()
    ops = run_firmware(args, csv_path)
    wall = time.monotonic() - t0
    cols = read_run(csv_path)
    summary = summarise(cols, ops, args)
    plot(cols, summary, png_path, "panelcap on %s, limit %d W" % (args.profile.name,
                                                                   args.limit_w))
    print("summary (%.0f simulated h in %.1f s real):" % (summary["hours"], wall))
    print("  peak panel power      %8.0f W (limit %d W)" % (summary["peak_panel_w"],
                                                           args.limit_w))
    print("  seconds above limit   %8d s (longest %d s)" % (summary["seconds_above_limit"],
                                                            summary["longest_excursion_s"]))
    print("  EV energy delivered   %8.0f Wh" % summary["ev_energy_wh"])
    print("  water heater energy   %8.0f Wh" % summary["water_heater_energy_wh"])
    print("  contactor operations  %s" % " ".join("%s=%d" % kv for kv in ops.items()))
    if summary["max_metering_error_w"] is not None:
        print("  max metering error    %8.0f W" % summary["max_metering_error_w"])
    print("wrote %s, %s" % (csv_path, png_path))


if __name__ == "__main__":
    main()
