"""Replay a whole-house power CSV against panelcap's shed controller and two baselines.

    .venv/bin/python tools/sim.py FILE.csv[.gz] --total COL [--ev COL] [--water-heater COL]
        (--limit-w W | --limit-a A [--volts V]) [--json F] [--plot F.png] [--csv F]
        [--pv COL [--export-limit-w W [--curtail-w W]] [--surplus]]

FILE has a time column (ISO date-time or epoch seconds) and watt columns. --total names the
whole-house column; --ev / --water-heater (repeatable) name controllable loads metered inside
that total; their order on the command line is their priority (first = most important).
The uncontrolled base is total minus the controllable loads. A controllable load's column is
its unconstrained demand: energy it cannot take when asked is owed and drawn later.
--pv names a PV generation column (W): the panel then sees base + loads - PV, negative when
the site exports; --export-limit-w and --surplus let panelcap soak the export into the
water heaters' tanks (--soak-store-wh) and the EVs' batteries (--ev-soak-wh) through
firmware/export.py.

Control steps every simulated second (the base is held between rows). The panelcap
strategy's decisions come from firmware/shed.py running under the MicroPython unix port
(tools/replay_mpy.py); no_control and current_shaper (EV amps = (limit - house power without
the EV) / volts, OpenEVSE's formula) run in the same replay so all three see the same panel.
Long runs of exact zeros in the total (--gap-rows) and empty/NaN totals are missing data:
the controller gets no valid measurement there (its failsafe acts) and the base is 0.
Bad input (missing column, malformed row) prints one line "FILE:LINE: problem", a bad
option one line with the option's problem ("--band-pct: band_pct must be ..."); exit 2.
"""
import argparse
import csv
import datetime
import gzip
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from toolchain import MICROPYTHON  # noqa: E402
MICROPYPATH = ":".join([".frozen", str(ROOT / "firmware"), str(ROOT / "boards"),
                        str(ROOT / "lib"), str(ROOT / "tools")])
STRATEGIES = ("panelcap", "no_control", "current_shaper")


class InputError(Exception):
    pass


def _num(text):
    """Float from a CSV cell; None for empty/NaN (missing), ValueError for anything else."""
    s = text.strip()
    if s == "" or s.lower() in ("nan", "na", "null"):
        return None
    v = float(s)
    if math.isinf(v):
        raise ValueError
    return None if math.isnan(v) else v


def _time(text):
    """Epoch seconds from a time cell; ValueError for anything else (NaN and infinities too,
    and epoch seconds outside the years 1..9999 that ISO times can name)."""
    s = text.strip()
    try:
        v = float(s)
    except ValueError:
        dt = datetime.datetime.fromisoformat(s)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=datetime.timezone.utc)
        return dt.timestamp()
    if not -_MAX_EPOCH_S <= v <= _MAX_EPOCH_S:      # also False for NaN
        raise ValueError
    return v


_MAX_EPOCH_S = 253402300800.0        # 10000-01-01: beyond it a "time" is not one
MAX_SPAN_DAYS = 800                 # the replay steps every second: a longer file is a mistake


def read_table(path, time_col, columns):
    """Reads a CSV or .csv.gz with a time column (time_col; default 'Time', else the first
    column; ISO date-times or epoch seconds, advancing row by row) and watt columns, checking
    every row. columns: (option, column name) pairs, the option for the error message.
    Returns (header, time column, rows), each row (line number, t_s epoch seconds, the row's
    fields, [watts or None (missing) per column]). Raises InputError "FILE:LINE: problem".
    tools/sim.py and tools/layer_loads.py read their input with it."""
    name = str(path)
    opener = gzip.open if name.endswith(".gz") else open
    try:
        fh = opener(path, "rt", newline="")
        reader = csv.reader(fh)
        header = next(reader, None)
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise InputError(f"{name}: cannot read: {e}")
    if not header:
        raise InputError(f"{name}:1: empty file, expected a header row")
    header = [h.strip() for h in header]
    if time_col is None:
        time_col = "Time" if "Time" in header else header[0]
    for option, col in [("--time", time_col)] + list(columns):
        if col not in header:
            raise InputError(f"{name}:1: no column {col!r} ({option}); columns are {', '.join(header)}")
    ti = header.index(time_col)
    cols = [(col, header.index(col)) for _, col in columns]
    width = len(header)
    rows = []
    prev = None
    lineno = 1
    try:
        for lineno, rec in enumerate(reader, start=2):
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            if len(rec) != width:
                raise InputError(f"{name}:{lineno}: {len(rec)} fields, header has {width}")
            try:
                ts = _time(rec[ti])
            except ValueError:
                raise InputError(f"{name}:{lineno}: bad time {rec[ti]!r} in column {time_col!r}")
            if prev is not None and ts <= prev:
                raise InputError(f"{name}:{lineno}: time {rec[ti]!r} does not advance")
            prev = ts
            vals = []
            for col, i in cols:
                try:
                    vals.append(_num(rec[i]))
                except ValueError:
                    raise InputError(f"{name}:{lineno}: bad number {rec[i]!r} in column {col!r}")
            rows.append((lineno, ts, rec, vals))
    except csv.Error as e:
        raise InputError(f"{name}:{lineno}: {e}")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise InputError(f"{name}:{lineno}: cannot read: {e}")
    finally:
        fh.close()
    return header, time_col, rows


def read_csv(path, time_col, total_col, load_cols, pv_col=None):
    """Rows as (t_s, total or None, [load W], PV W); t_s from the first row. Raises
    InputError."""
    named = list(load_cols) + ([pv_col] if pv_col else [])
    if len(set(named)) != len(named) or total_col in named:
        raise InputError(f"{path}:1: a column is named twice among --total/--ev/--water-heater/--pv")
    header, _, table = read_table(path, time_col, [("--total", total_col)] + [
        ("--ev/--water-heater", c) for c in load_cols] + ([("--pv", pv_col)] if pv_col else []))
    if len(table) < 2:
        lineno = table[-1][0] if table else 1
        raise InputError(f"{path}:{lineno}: need at least two data rows, got {len(table)}")
    t0 = table[0][1]
    lineno, last = table[-1][0], table[-1][1]
    if round(last - t0) < 1:
        raise InputError(f"{path}:{lineno}: the rows span less than a second; the replay "
                         f"steps once a second")
    if last - t0 > MAX_SPAN_DAYS * 86400:
        raise InputError(f"{path}:{lineno}: the rows span {(last - t0) / 86400:.0f} days; "
                         f"the replay takes at most {MAX_SPAN_DAYS}")
    k = 1 + len(load_cols)
    rows = [(ts - t0, vals[0], [max(0.0, v or 0.0) for v in vals[1:k]],
             max(0.0, vals[k] or 0.0) if pv_col else 0.0)
            for _, ts, _, vals in table]
    return rows, t0


def zero_runs(values, min_run):
    """[bool] per value: True inside a run of at least min_run exact zeros. A meter that
    reads 0.0 for that long was not reading (missing data), the house was not empty."""
    n = len(values)
    marked = [False] * n
    i = 0
    while i < n:
        if values[i] == 0.0:
            j = i
            while j < n and values[j] == 0.0:
                j += 1
            if j - i >= min_run:
                for k in range(i, j):
                    marked[k] = True
            i = j
        else:
            i += 1
    return marked


def prepare(rows, gap_rows):
    """Mark missing totals; base = total - loads. Returns (secs, base or None, loads), step_s."""
    missing = [r[1] is None or gap for r, gap in
               zip(rows, zero_runs([r[1] for r in rows], gap_rows))]
    out = []
    last_s = -1
    clipped = 0
    for (t, total, loads, pv), miss in zip(rows, missing):
        s = int(round(t))
        if s == last_s:
            out.pop()        # finer than a second: the last row in each second wins
        last_s = s
        ld = [int(round(v)) for v in loads]
        if miss:
            base = None
            ld = [0] * len(ld)
            pv = 0.0
        else:
            base = int(round(total)) - sum(ld)
            if base < 0:
                clipped += 1
                base = 0
        out.append((s, base, ld, int(round(pv))))
    diffs = sorted(out[k + 1][0] - out[k][0] for k in range(len(out) - 1))
    step = max(1, diffs[len(diffs) // 2])
    return out, step, clipped, sum(missing)


def write_rows(path, hdr, rows, end_s):
    pv = hdr.get("pv")
    with open(path, "w") as f:
        f.write(json.dumps(hdr) + "\n")
        for s, base, ld, pv_w in rows:
            f.write(f"{s} {'x' if base is None else base} {f'{pv_w} ' if pv else ''}"
                    f"{' '.join(map(str, ld))}\n")
        f.write(f"end {end_s}\n")


# What firmware/shed.py calls a setting, and the option of this tool that gives it.
_OPTION_OF = {"band_pct": "--band-pct", "settle_s": "--settle-s", "stagger_s": "--stagger-s",
              "stale_ms": "--stale-s", "min_on_s": "--min-on-s", "min_off_s": "--min-off-s",
              "max_ops_per_h": "--max-ops-per-h", "ramp_step_a": "--ramp-step-a",
              "resume_pause_s": "--resume-pause-s", "max_a": "--ev-max-a", "volts": "--volts",
              "response_s": "--ev-delay-s", "setpoint_w": "--limit-w"}


class OptionError(Exception):
    """A controller option the firmware's shed module refused: str() is one line."""


def run_strategies(rows_path, strategies, trace_dir):
    env = dict(os.environ, MICROPYPATH=MICROPYPATH)
    procs = {}
    for name in strategies:
        cmd = [MICROPYTHON, "-X", "heapsize=2m", str(ROOT / "tools" / "replay_mpy.py"), rows_path, name]
        if trace_dir:
            cmd.append(os.path.join(trace_dir, name + ".trace"))
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, cwd=ROOT, env=env)
    results = {}
    try:
        for name, p in procs.items():
            out, err = p.communicate()
            last = (err.strip().splitlines() or [""])[-1]
            if p.returncode == 2 and last.startswith("error: "):
                # replay_mpy.py: shed.py refused a setting ("error: band_pct must be ...")
                problem = last[len("error: "):]
                option = _OPTION_OF.get(problem.split(" ", 1)[0])
                raise OptionError(f"{option}: {problem}" if option else problem)
            if p.returncode != 0:
                raise RuntimeError(f"replay of {name} failed ({p.returncode}): "
                                   f"{last or (out or err).strip()[-2000:]}")
            results[name] = json.loads(out.strip().splitlines()[-1])
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def read_trace(path, n):
    cols = [[] for _ in range(4 + n)]
    with open(path) as f:
        for line in f:
            for c, v in zip(cols, line.split()):
                c.append(int(v))
    return cols


def format_table(results, load_names, strategies):
    lines = []
    head = ["strategy", "over s", "ctl on s", "base only s", "over Wh", "longest s", "longest ctl s"]
    for ln in load_names:
        head += [f"{ln} del/asked kWh", f"{ln} late", f"{ln} ops"]
    if "worst_3h_avg_pct" in results[strategies[0]]:
        head += ["worst 3 h avg % of rating", "over 100 % s"]
    if "peak_window_kw" in results[strategies[0]]:
        head += ["peak window kW", "windows over budget (controllable)"]
    if "export_wh" in results[strategies[0]]:
        head += ["PV kWh", "export kWh", "soaked kWh"]
        if "export_over_wh" in results[strategies[0]]:
            head += ["over export limit kWh", "over export s (room)"]
        if any("curtailed_wh" in results[s] for s in strategies):
            head += ["curtailed kWh"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for s in strategies:
        r = results[s]
        cells = [s, r["over_s"], r["over_controllable_s"], r["over_base_only_s"], r["over_wh"],
                 r["longest_excursion_s"], r["longest_controllable_excursion_s"]]
        for ln in load_names:
            lr = r["loads"][ln]
            cells += [f"{lr['delivered_wh'] / 1000:.1f} / {lr['asked_wh'] / 1000:.1f}",
                      _dur(lr["late_s"]), lr["switch_ops"]]
        if "worst_3h_avg_pct" in r:
            cells += [r["worst_3h_avg_pct"], r["over_100pct_s"]]
        if "peak_window_kw" in r:
            cells += [r["peak_window_kw"], f"{r['over_budget_windows']} "
                      f"({r['over_budget_windows_controllable']})"]
        if "export_wh" in r:
            cells += [f"{r['pv_wh'] / 1000:.1f}", f"{r['export_wh'] / 1000:.1f}",
                      f"{r['soaked_wh'] / 1000:.1f}"]
            if "export_over_wh" in r:
                cells += [f"{r['export_over_wh'] / 1000:.1f}",
                          f"{r['export_over_s']} ({r['export_over_room_s']})"]
            if "curtailed kWh" in head:
                cells += [f"{r.get('curtailed_wh', 0) / 1000:.1f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def _dur(s):
    if s >= 172800:
        return f"{s / 86400:.1f} days"
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def write_csv(path, traces, load_names, strategies, t0, step):
    first = traces[strategies[0]]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        head = ["time", "base_w"]
        for s in strategies:
            head += [f"{s}_total_mean_w", f"{s}_total_max_w"] + [f"{s}_{ln}_w" for ln in load_names]
        w.writerow(head)
        for k in range(len(first[0])):
            ts = datetime.datetime.fromtimestamp(t0 + first[0][k], datetime.timezone.utc)
            row = [ts.strftime("%Y-%m-%d %H:%M:%S"), first[1][k]]
            for s in strategies:
                tr = traces[s]
                row += [tr[2][k], tr[3][k]] + [tr[4 + i][k] for i in range(len(load_names))]
            w.writerow(row)


def write_plot(path, traces, load_names, strategies, t0, limit_w, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    nc = traces["no_control"] if "no_control" in traces else traces[strategies[0]]
    t = np.array(nc[0]) / 86400.0
    fig, axes = plt.subplots(2, 1, figsize=(12, 7.5))
    ax = axes[0]
    colours = {"no_control": "tab:red", "current_shaper": "tab:orange", "panelcap": "tab:blue"}
    # Drawn worst first so panelcap's trace stays visible on top.
    order = [s for s in ("no_control", "current_shaper", "panelcap") if s in strategies]
    for s in order:
        ax.plot(t, traces[s][3], lw=0.5, color=colours.get(s), label=f"{s} (max per interval)")
    ax.axhline(limit_w, color="k", ls="--", lw=1, label=f"limit {limit_w} W")
    ax.set_xlabel("day")
    ax.set_ylabel("W")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    # Zoom: the day on which no control went furthest over the limit.
    mx = np.array(nc[3])
    k = int(np.argmax(mx))
    day0 = math.floor(t[k])
    sel = (t >= day0) & (t < day0 + 1)
    ax = axes[1]
    hours = (t[sel] - day0) * 24
    for s in order:
        ax.plot(hours, np.array(traces[s][3])[sel], lw=0.8, color=colours.get(s), label=f"{s} total")
    pc = traces.get("panelcap")
    if pc is not None:
        for i, ln in enumerate(load_names):
            ax.fill_between(hours, 0, np.array(pc[4 + i])[sel], alpha=0.25, step="post",
                            label=f"panelcap {ln} draw")
    ax.plot(hours, np.array(nc[1])[sel], lw=0.8, color="grey", label="uncontrolled base")
    ax.axhline(limit_w, color="k", ls="--", lw=1)
    d = datetime.datetime.fromtimestamp(t0 + day0 * 86400, datetime.timezone.utc)
    ax.set_xlabel(f"hour of {d:%Y-%m-%d} (busiest day)")
    ax.set_ylabel("W")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class _LoadAction(argparse.Action):
    def __call__(self, parser, ns, values, option_string=None):
        lst = getattr(ns, "loads", None) or []
        lst.append(("ev" if option_string == "--ev" else "wh", values))
        ns.loads = lst


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="sim.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", help="CSV (or .csv.gz) with a time column and watt columns")
    ap.add_argument("--time", dest="time_col", help="time column (default Time, else the first)")
    ap.add_argument("--total", required=True, help="whole-house watts column")
    ap.add_argument("--ev", action=_LoadAction, dest="loads", metavar="COL",
                    help="an EV charger's demand column (repeatable)")
    ap.add_argument("--water-heater", action=_LoadAction, dest="loads", metavar="COL",
                    help="a water heater's demand column (repeatable)")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--limit-w", type=int, help="limit, total watts")
    g.add_argument("--limit-a", type=int, help="limit, amps (times --volts)")
    ap.add_argument("--volts", type=int, default=240, help="EV and limit voltage (default 240)")
    ap.add_argument("--json", help="write metrics JSON here")
    ap.add_argument("--plot", help="write a PNG here")
    ap.add_argument("--csv", dest="out_csv", help="write the run (one row per --trace-step-s)")
    ap.add_argument("--trace-step-s", type=int, default=60)
    ap.add_argument("--ev-delay-s", type=int, default=5, help="EV response delay (default 5)")
    ap.add_argument("--ev-max-a", type=int, help="EV max amps (default: its column's peak / volts)")
    ap.add_argument("--band-pct", type=int, default=5, help="restore band below the limit, %%")
    ap.add_argument("--settle-s", type=int, default=10)
    ap.add_argument("--stagger-s", type=int, default=15)
    ap.add_argument("--stale-s", type=int, default=5)
    ap.add_argument("--min-on-s", type=int, default=60)
    ap.add_argument("--min-off-s", type=int, default=60)
    ap.add_argument("--max-ops-per-h", type=int, default=12)
    ap.add_argument("--ramp-step-a", type=int, default=2)
    ap.add_argument("--resume-pause-s", type=int, default=300)
    ap.add_argument("--window-min", type=int, choices=(15, 60),
                    help="demand window, clock-aligned minutes; with --budget-kw: panelcap holds "
                         "each window's mean import to the budget (firmware/demand.py)")
    ap.add_argument("--budget-kw", type=float, help="demand-window budget, kW")
    ap.add_argument("--duty-mode", action="store_true",
                    help="the limit is the 80 %% line of a rating 100/80 of it: panelcap may "
                         "use up to the rating at any moment, 80 %% as a 3-hour average")
    ap.add_argument("--pv", dest="pv_col", metavar="COL",
                    help="a PV generation column, W: the panel sees base + loads - PV")
    ap.add_argument("--export-limit-w", type=int,
                    help="export limit, W (with --pv): panelcap soaks export above it "
                         "(firmware/export.py)")
    ap.add_argument("--export-measure-w", type=int,
                    help="count export above this W (default: --export-limit-w) without "
                         "acting on it")
    ap.add_argument("--surplus", action="store_true",
                    help="surplus mode (with --pv): panelcap soaks any export")
    ap.add_argument("--curtail-w", type=int,
                    help="the PV inverter's AC rating, W (with --export-limit-w): panelcap "
                         "also curtails it where soaking cannot hold the limit "
                         "(firmware/curtail.py)")
    ap.add_argument("--curtail-response-s", type=int, default=2,
                    help="how long the inverter takes to follow a new cap, s (default 2)")
    ap.add_argument("--soak-store-wh", type=int, default=6000,
                    help="what each water heater's tank takes ahead of demand, Wh (default "
                         "6000: 250 l from 55 to 75 C)")
    ap.add_argument("--ev-soak-wh", type=int, default=0,
                    help="what each EV takes ahead of its sessions, Wh (default 0)")
    ap.add_argument("--gap-rows", type=int, default=10,
                    help="this many exact-zero totals in a row are missing data (default 10)")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--title", default=None)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    args.loads = args.loads or []
    return ap, args


def main(argv=None):
    ap, args = parse_args(argv)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad or not strategies:
        ap.exit(2, f"sim.py: error: unknown strategy {','.join(bad)}; choose from {','.join(STRATEGIES)}\n")
    limit_w = args.limit_w if args.limit_w is not None else args.limit_a * args.volts
    if limit_w <= 0:
        ap.exit(2, "sim.py: error: the limit must be positive\n")
    # The replay's own model (tools/replay_mpy.py); the controller's options are checked by
    # firmware/shed.py itself when the panelcap strategy builds it.
    for option, value in (("--volts", args.volts), ("--ev-delay-s", args.ev_delay_s),
                          ("--trace-step-s", args.trace_step_s), ("--gap-rows", args.gap_rows)):
        if value < 1:
            ap.exit(2, f"sim.py: error: {option} must be at least 1, got {value}\n")
    if (args.window_min is None) != (args.budget_kw is None):
        ap.exit(2, "sim.py: error: --window-min and --budget-kw go together\n")
    if args.budget_kw is not None and not 0.1 <= args.budget_kw <= 200:
        ap.exit(2, f"sim.py: error: --budget-kw must be in 0.1..200, got {args.budget_kw}\n")
    if (args.export_limit_w is not None or args.surplus or args.export_measure_w is not None) \
            and not args.pv_col:
        ap.exit(2, "sim.py: error: --export-limit-w, --export-measure-w and --surplus need a "
                   "--pv column\n")
    if args.curtail_w is not None and (args.export_limit_w is None or
                                       not 1 <= args.curtail_w <= 500000):
        ap.exit(2, "sim.py: error: --curtail-w needs --export-limit-w and is in 1..500000 W, "
                   f"got {args.curtail_w}\n")
    if not 1 <= args.curtail_response_s <= 600:
        ap.exit(2, "sim.py: error: --curtail-response-s must be in 1..600, "
                   f"got {args.curtail_response_s}\n")
    if args.export_limit_w is not None and not 0 <= args.export_limit_w <= 500000:
        ap.exit(2, f"sim.py: error: --export-limit-w must be in 0..500000, got {args.export_limit_w}\n")
    for option, value in (("--soak-store-wh", args.soak_store_wh), ("--ev-soak-wh", args.ev_soak_wh)):
        if not 0 <= value <= 200000:
            ap.exit(2, f"sim.py: error: {option} must be in 0..200000, got {value}\n")
    t_start = time.monotonic()
    cols = [c for _, c in args.loads]
    try:
        raw, t0 = read_csv(args.csv, args.time_col, args.total, cols, args.pv_col)
    except InputError as e:
        print(f"sim.py: error: {e}", file=sys.stderr)
        return 2
    rows, step, clipped, missing = prepare(raw, args.gap_rows)
    end_s = rows[-1][0] + step
    load_specs = []
    for i, (kind, col) in enumerate(args.loads):
        peak = max(r[2][i] for r in rows)
        if kind == "ev":
            max_a = args.ev_max_a or min(80, max(6, math.ceil(peak / args.volts)))
            rated = max_a * args.volts
        else:
            max_a = 0
            rated = max(1, peak)
        load_specs.append({"name": col, "kind": kind, "rated_w": int(rated), "volts": args.volts,
                           "max_a": max_a, "min_a": 6})
        if args.pv_col:
            load_specs[-1]["store_wh"] = args.ev_soak_wh if kind == "ev" else args.soak_store_wh
    hdr = {"limit_w": limit_w, "volts": args.volts, "loads": load_specs,
           "ev_delay_s": args.ev_delay_s, "band_pct": args.band_pct, "settle_s": args.settle_s,
           "stagger_s": args.stagger_s, "stale_s": args.stale_s, "min_on_s": args.min_on_s,
           "min_off_s": args.min_off_s, "max_ops_per_h": args.max_ops_per_h,
           "ramp_step_a": args.ramp_step_a, "resume_pause_s": args.resume_pause_s,
           "trace_step_s": args.trace_step_s}
    if args.duty_mode:
        hdr["duty"] = True
    if args.pv_col:
        hdr["pv"] = True
        if args.export_limit_w is not None:
            hdr["export_limit_w"] = args.export_limit_w
        if args.export_measure_w is not None:
            hdr["export_measure_w"] = args.export_measure_w
        if args.surplus:
            hdr["surplus"] = True
        if args.curtail_w is not None:
            hdr["curtail_w"] = args.curtail_w
            hdr["curtail_response_s"] = args.curtail_response_s
    if args.window_min:
        hdr.update(window_min=args.window_min, budget_w=round(args.budget_kw * 1000),
                   t0_unix=int(t0))
    want_trace = bool(args.plot or args.out_csv)
    with tempfile.TemporaryDirectory(prefix="panelcap-sim-") as tmp:
        rows_path = os.path.join(tmp, "rows.txt")
        write_rows(rows_path, hdr, rows, end_s)
        try:
            results = run_strategies(rows_path, strategies, tmp if want_trace else None)
        except OptionError as e:
            print(f"sim.py: error: {e}", file=sys.stderr)
            return 2
        except RuntimeError as e:
            print(f"sim.py: error: {e}", file=sys.stderr)
            return 1
        traces = {s: read_trace(os.path.join(tmp, s + ".trace"), len(cols)) for s in strategies} \
            if want_trace else None
    elapsed = time.monotonic() - t_start
    run = {"file": os.path.basename(args.csv), "limit_w": limit_w, "volts": args.volts,
           "rows": len(raw), "row_step_s": step, "simulated_s": end_s, "missing_rows": missing,
           "base_clipped_rows": clipped, "loads": load_specs, "elapsed_s": round(elapsed, 1),
           "priority": [c for _, c in args.loads]}
    title = args.title or f"{os.path.basename(args.csv)}: limit {limit_w} W"
    if not args.quiet:
        print(f"{title}; {_dur(end_s)} at 1 s steps, {missing} missing rows; ran in {elapsed:.1f} s")
        print(format_table(results, cols, strategies))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**{s: results[s] for s in strategies}, "run": run}, f, indent=1)
    if args.out_csv:
        write_csv(args.out_csv, traces, cols, strategies, t0, args.trace_step_s)
    if args.plot:
        write_plot(args.plot, traces, cols, strategies, t0, limit_w, title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
