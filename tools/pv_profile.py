"""Generate tools/data/pv/sandpoint_tmy3_5kwp.csv: a year of a rooftop PV array's AC output
from real weather, for tools/sim.py --pv (the replays' PV column).

    python tools/pv_profile.py [--out tools/data/pv/sandpoint_tmy3_5kwp.csv]

Needs pvlib (requirements-pv.txt, hash-pinned; not part of make's .venv: pvlib brings pandas,
scipy and h5py, ~380 MB, for a file that changes only when this script does). The weather is
the TMY3 file pvlib ships in its package data, pvlib/data/703165TY.csv: Sand Point, Alaska,
55.3 N 160.5 W, the shipped file nearest the households' latitudes (51.5-55.9 N) and a
maritime climate. The array: 5 kWp, 35 degrees tilt, due south, close-roof-mounted
glass/glass modules (SAPM cell temperature), PVWatts DC (-0.4 %/K) less PVWatts' default
14 % system losses, a 5 kW PVWatts inverter (96 % nominal); plane-of-array irradiance by the
Hay-Davies transposition on the file's own DNI and DHI, at Sand Point's own sun positions.
Sand Point's clock (UTC-9, 25.5 degrees west of its meridian) is turned into UK solar time:
each value is placed at the UTC hour whose solar time at 1.5 W (mid-way between the three
households) matches, a shift of -1.60 h (the equation of time is the same at both sites on
the same date). Output: one row per hour of a 365-day year from 1 January 00:00 UTC, the
mean AC watts over that hour (ints); February 29 reads February 28.
"""
import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tools" / "data" / "pv" / "sandpoint_tmy3_5kwp.csv"
PDC0_W = 5000
TILT = 35
AZIMUTH = 180
UK_LON = -1.5


def load(path=OUT):
    """The profile's hourly AC W, a list of 8760 ints (no pvlib needed)."""
    with open(path) as f:
        return [int(line.split(",")[1]) for line in f
                if line[0].isdigit()]


def watts(table, t_unix):
    """AC W at unix second t_unix: the hourly means placed at their hours' middles, linear
    between them, by the UTC hour of the year (February 29 reads February 28)."""
    import datetime
    d = datetime.datetime.fromtimestamp(t_unix, datetime.timezone.utc)
    day = d.timetuple().tm_yday - 1
    if d.month > 2 and d.year % 4 == 0 and (d.year % 100 or d.year % 400 == 0):
        day -= 1
    h = day * 24 + d.hour + (d.minute * 60 + d.second) / 3600 - 0.5
    i = int(h // 1)
    f = h - i
    n = len(table)
    return round(table[i % n] * (1 - f) + table[(i + 1) % n] * f)


def add_pv(src, dst, column="PV", path=OUT):
    """Copies a household CSV (.csv or .csv.gz, a Time column as tools/sim.py reads it) to
    dst with a PV column from the profile at each row's time."""
    import csv
    import gzip
    import sys
    sys.path.insert(0, str(ROOT / "tools"))
    import sim
    table = load(path)
    op_in = gzip.open if str(src).endswith(".gz") else open
    op_out = gzip.open if str(dst).endswith(".gz") else open
    with op_in(src, "rt", newline="") as fi, op_out(dst, "wt", newline="") as fo:
        r = csv.reader(fi)
        w = csv.writer(fo)
        head = next(r)
        ti = head.index("Time") if "Time" in head else 0
        w.writerow(head + [column])
        for rec in r:
            if rec:
                w.writerow(rec + [watts(table, sim._time(rec[ti]))])


def main(argv=None):
    import numpy as np
    import pandas as pd
    import pvlib
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    path = os.path.join(os.path.dirname(pvlib.__file__), "data", "703165TY.csv")
    data, meta = pvlib.iotools.read_tmy3(path, coerce_year=2001, map_variables=True)
    lat, lon, alt = meta["latitude"], meta["longitude"], meta["altitude"]
    # TMY3 values are for the hour ending at the stamp: the sun at the hour's middle.
    times = data.index - pd.Timedelta(minutes=30)
    sun = pvlib.solarposition.get_solarposition(times, lat, lon, altitude=alt)
    dni_extra = pvlib.irradiance.get_extra_radiation(times)
    poa = pvlib.irradiance.get_total_irradiance(
        TILT, AZIMUTH, sun["apparent_zenith"].values, sun["azimuth"].values,
        data["dni"].values, data["ghi"].values, data["dhi"].values,
        dni_extra=dni_extra.values, model="haydavies")
    params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["close_mount_glass_glass"]
    t_cell = pvlib.temperature.sapm_cell(poa["poa_global"], data["temp_air"].values,
                                         data["wind_speed"].values, **params)
    dc = pvlib.pvsystem.pvwatts_dc(poa["poa_global"], t_cell, PDC0_W, -0.004)
    dc = dc * (1 - pvlib.pvsystem.pvwatts_losses() / 100)
    ac = pvlib.inverter.pvwatts(dc, PDC0_W / 0.96, eta_inv_nom=0.96)
    ac = np.clip(np.nan_to_num(np.asarray(ac, dtype=float)), 0, PDC0_W)
    # Hour-ending local standard time (UTC-9): its middle, moved to the UTC hour of the same
    # solar time in the UK.
    tz_h = meta["TZ"]
    shift_h = (lon - tz_h * 15) / 15 - UK_LON / 15       # Sand Point clock -> UK solar UTC
    mid_h = np.arange(8760) + 0.5 + shift_h     # hour middles, local clock -> UK UTC h of year
    hours = np.arange(8760) + 0.5
    # Periodic interpolation onto the UTC hour middles of a 365-day year.
    ext_t = np.concatenate([mid_h - 8760, mid_h, mid_h + 8760])
    ext_v = np.concatenate([ac, ac, ac])
    out = np.interp(hours, ext_t, ext_v)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        f.write(f"# {PDC0_W} Wp, tilt {TILT}, azimuth {AZIMUTH}, pvlib {pvlib.__version__} on "
                f"pvlib/data/703165TY.csv (Sand Point AK {lat} N {lon} E); tools/pv_profile.py\n")
        f.write("hour_utc,ac_w\n")
        for h, w in enumerate(out):
            f.write(f"{h},{int(round(w))}\n")
    kwh = out.sum() / 1000
    month = [out[int(d0 * 24):int(d1 * 24)].sum() / 1000 for d0, d1 in zip(
        [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334],
        [31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365])]
    print(f"wrote {args.out}: {kwh:.0f} kWh a year ({kwh / PDC0_W * 1000:.0f} kWh/kWp), "
          f"shift {shift_h:+.2f} h; by month kWh: " + " ".join(f"{m:.0f}" for m in month))


if __name__ == "__main__":
    main()
