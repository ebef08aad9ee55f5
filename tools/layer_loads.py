"""Layer a synthetic Level-2 EV and an electric water heater onto a household CSV.

    .venv/bin/python tools/layer_loads.py IN.csv[.gz] OUT.csv[.gz] [--seed N] [--time COL]
        [--total COL]

IN is what tools/sim.py takes, read by its reader: a CSV or .csv.gz with a time column (ISO
date-times or epoch seconds; default `Time`, else the first column) and a whole-house watts
column (--total, default `Aggregate`). Adds columns `EV` and `WaterHeater` (watts) and adds
them into the total, so the replay sees them as controllable loads metered inside it; OUT is
gzipped if its name ends in .gz. Bad input prints one line "FILE:LINE: problem", exit 2. The profiles are
deterministic for a given seed (default: derived from the file name):
- EV: 32 A at 240 V (7,680 W) while charging. Weekdays: plugged in on 5 days out of 7 between
  17:00 and 19:30, needing 8-24 kWh. Weekends: on half the days, plugged in between 10:00
  and 14:00, needing 6-16 kWh. It charges flat out until the energy is delivered.
- Water heater: one 4,500 W element. Reheats after the morning draw (06:00-08:00, 20-45 min),
  the evening draw (18:00-21:30, 15-40 min) and a 10-min standby top-up around 13:00 and 02:00.
Rows inside a run of missing data (--gap-rows exact zeros in Aggregate) stay all zero.
"""
import argparse
import csv
import datetime
import gzip
import io
import random
import sys
import zlib

# tools/sim.py: the replay's reader and its rule for missing data
from sim import InputError, read_table, zero_runs

EV_W = 7680
WH_W = 4500


def _intervals_for_day(rng, day):
    """(start_min, minutes, watts, column) for one day; minutes from that day's midnight."""
    out = []
    weekend = day.weekday() >= 5
    if weekend:
        if rng.random() < 0.5:
            start = rng.randint(600, 840)
            kwh = rng.uniform(6, 16)
            out.append((start, round(kwh * 60000 / EV_W), EV_W, "EV"))
    elif rng.random() < 5 / 7:
        start = rng.randint(1020, 1170)
        kwh = rng.uniform(8, 24)
        out.append((start, round(kwh * 60000 / EV_W), EV_W, "EV"))
    out.append((rng.randint(360, 480), rng.randint(20, 45), WH_W, "WaterHeater"))
    out.append((rng.randint(1080, 1290), rng.randint(15, 40), WH_W, "WaterHeater"))
    out.append((rng.randint(765, 795), 10, WH_W, "WaterHeater"))
    out.append((rng.randint(105, 135), 10, WH_W, "WaterHeater"))
    return out


def layer(in_path, out_path, seed=None, gap_rows=10, time_col=None, total_col="Aggregate"):
    """Writes in_path with the EV and the water heater layered in to out_path; returns the
    seed. Raises sim.InputError ("FILE:LINE: problem") on bad input."""
    in_path = str(in_path)
    if seed is None:
        seed = zlib.crc32(in_path.split("/")[-1].encode())
    rng = random.Random(seed)
    header, _, rows = read_table(in_path, time_col, [("--total", total_col)])
    if not rows:
        raise InputError(f"{in_path}:1: no data rows")
    ai = header.index(total_col)
    data = [rec for _, _, rec, _ in rows]
    # Wall-clock times as the file gives them (naive times are read as UTC and come back so).
    times = [datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).replace(tzinfo=None)
             for _, ts, _, _ in rows]
    agg = [vals[0] for _, _, _, vals in rows]       # None: empty or NaN, missing
    missing = [a is None or gap for a, gap in zip(agg, zero_runs(agg, gap_rows))]
    # Demand per minute-of-run, built day by day; a session may run past midnight.
    t0 = times[0].replace(hour=0, minute=0, second=0)
    span_min = int((times[-1] - t0).total_seconds() // 60) + 1 + 24 * 60
    ev = [0] * span_min
    wh = [0] * span_min
    day = t0
    while day <= times[-1]:
        base_min = int((day - t0).total_seconds() // 60)
        for start, minutes, watts, col in _intervals_for_day(rng, day):
            arr = ev if col == "EV" else wh
            for m in range(base_min + start, min(span_min, base_min + start + minutes)):
                arr[m] = watts
        day += datetime.timedelta(days=1)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header + ["EV", "WaterHeater"])
    for r, t, a, miss in zip(data, times, agg, missing):
        m = int((t - t0).total_seconds() // 60)
        e, h = (0, 0) if miss else (ev[m], wh[m])
        r = list(r)
        r[ai] = repr(a + e + h) if not miss else r[ai]
        w.writerow(r + [e, h])
    opener = gzip.open if str(out_path).endswith(".gz") else open
    with opener(out_path, "wt", newline="") as f:
        f.write(out.getvalue())
    return seed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--gap-rows", type=int, default=10)
    ap.add_argument("--time", dest="time_col", help="time column (default Time, else the first)")
    ap.add_argument("--total", default="Aggregate", help="whole-house watts column")
    args = ap.parse_args(argv)
    try:
        seed = layer(args.src, args.dst, args.seed, args.gap_rows, args.time_col, args.total)
    except InputError as e:
        print(f"layer_loads.py: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.dst}: EV and WaterHeater layered, seed {seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
