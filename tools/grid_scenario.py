"""The capacity-subscription scenario in the spirit of the reference paper's Figure 6: a
house's evening load, an EV on top, the subscription level, and a reservation. The same
evening runs twice, without and with a reservation, under the unix port with the firmware's
own shed.py, grid.py and compliance.py (tools/grid_scenario_mpy.py); the reservation is
asked for as the REPL would and answered by the reference responder (tools/grid_responder.py:
a fee is quoted, accepted, granted). Prints when the EV finished in each run.

    .venv/bin/python tools/grid_scenario.py [--plot docs/grid-figure6.png] [--json F]
        [--subscription-w 5000] [--extra-w 4000] [--from 17:30 --hours 5]

House: tools/data/profiles/default_day.csv (IDEAL house 65, 5 Feb 2018), 16:00 to 08:00.
EV: arrives 17:30, needs 30 kWh, 32 A at 240 V. Installer setpoint 9600 W.
"""
import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import grid_responder  # noqa: E402

from toolchain import MICROPYTHON  # noqa: E402
MICROPYPATH = ":".join([".frozen", str(ROOT / "firmware"), str(ROOT / "tools")])
PROFILE = ROOT / "tools" / "data" / "profiles" / "default_day.csv"
DAY_UNIX = 1795651200          # 2026-11-26T00:00:00Z: the scenario's date (times are UTC)
START_H = 16
HOURS = 16


def base_minutes():
    with open(PROFILE) as f:
        rows = list(csv.DictReader(f))
    day = [int(float(r["Aggregate"]) + 0.5) for r in rows]
    if len(day) != 1440:
        raise SystemExit("grid_scenario.py: error: %s: expected 1440 minutes" % PROFILE)
    start = START_H * 60
    return [day[(start + i) % 1440] for i in range(HOURS * 60)]


def hhmm(s):
    if s is None:
        return "not finished"
    m = (START_H * 60 + s // 60) % 1440
    return "%02d:%02d%s" % (m // 60, m % 60, " (+1 day)" if START_H * 60 + s // 60 >= 1440 else "")


def run(opts, tmp):
    name = "with" if opts.get("reservation") else "without"
    opts = dict(opts, log=str(Path(tmp) / ("compliance-%s.log" % name)))
    opt_file = Path(tmp) / ("opts-%s.json" % name)
    opt_file.write_text(json.dumps(opts))
    trace = Path(tmp) / ("trace-%s.txt" % name)
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=512k",
                           str(ROOT / "tools" / "grid_scenario_mpy.py"), str(opt_file),
                           str(trace)], capture_output=True, text=True, timeout=600,
                          env={"MICROPYPATH": MICROPYPATH})
    if proc.returncode != 0:
        raise SystemExit("grid_scenario.py: error: micropython failed:\n" + proc.stderr[-3000:])
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["trace"] = [list(map(int, line.split())) for line in trace.read_text().splitlines()]
    res["log"] = Path(opts["log"]).read_text().splitlines()
    return res


def scenario(subscription_w=5000, extra_w=4000, res_from="17:30", res_hours=5):
    hh, mm = map(int, res_from.split(":"))
    res_start = DAY_UNIX + hh * 3600 + mm * 60
    common = {"base_w": base_minutes(), "setpoint_w": 9600, "subscription_w": subscription_w,
              "ev_volts": 240, "ev_max_a": 32, "ev_need_wh": 30000,
              "ev_arrive_s": (17 * 60 + 30 - START_H * 60) * 60,
              "start_unix": DAY_UNIX + START_H * 3600}
    # The request the firmware sends, answered by the reference responder: first a fee is
    # quoted, then (accepted at that fee) granted.
    responder = grid_responder.Responder()
    req = {"id": "r", "start": grid_responder.iso(res_start), "duration_s": res_hours * 3600,
           "extra_w": extra_w}
    answers = [responder.decide(req)]
    if answers[0]["status"] == "fee":
        answers.append(responder.decide(dict(req, max_fee_cents=answers[0]["fee_cents"])))
    with_res = dict(common, reservation={
        "ask_at_s": 60, "start": req["start"], "duration_s": req["duration_s"],
        "extra_w": extra_w}, answers=[{k: v for k, v in a.items() if k != "id"}
                                      for a in answers])
    with tempfile.TemporaryDirectory() as tmp:
        without = run(common, tmp)
        withr = run(with_res, tmp)
    return {"without": without, "with": withr, "answers": answers, "request": req,
            "subscription_w": subscription_w, "extra_w": extra_w,
            "window_s": (res_start - common["start_unix"],
                         res_start - common["start_unix"] + res_hours * 3600)}


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 1, figsize=(11, 7), sharex=True, sharey=True)
    w0, w1 = result["window_s"]
    # The areas are minute averages, which hide the worst seconds: each minute's highest
    # second is drawn over them, and the axis reaches the run's true peak.
    top_kw = max(result[k]["peak_w"] for k in ("without", "with")) / 1000
    for ax, key, title in ((axes[0], "without", "subscription only"),
                           (axes[1], "with", "with a reservation (+%d W, granted at a fee)" %
                            result["extra_w"])):
        r = result[key]
        tr = r["trace"]
        h = [START_H + row[0] / 3600 for row in tr]
        base = [row[1] / 1000 for row in tr]
        ev = [row[2] / 1000 for row in tr]
        lim = [row[4] / 1000 for row in tr]
        if key == "with":
            ax.axvspan(START_H + w0 / 3600, START_H + w1 / 3600, color="#e9c46a", alpha=0.35,
                       lw=0, zorder=0, label="reservation")
        ax.fill_between(h, 0, base, step="post", color="#8c8c8c", lw=0, zorder=2,
                        label="house")
        ax.fill_between(h, base, [b + e for b, e in zip(base, ev)], step="post",
                        color="#2a9d8f", lw=0, zorder=2, label="EV")
        peak = [row[3] / 1000 for row in tr]
        ax.step(h, peak, where="post", color="#1d3557", lw=0.6, zorder=3,
                label="highest second")
        ax.step(h, lim, where="post", color="#d62828", lw=1.5, zorder=3, label="limit in force")
        ax.axhline(result["subscription_w"] / 1000, color="#264653", ls="--", lw=1, zorder=4,
                   label="subscription")
        if r["ev_done_s"] is not None:
            x = START_H + r["ev_done_s"] / 3600
            ax.axvline(x, color="k", lw=1)
            ax.text(x + 0.1, top_kw * 0.8, "EV done %s" % hhmm(r["ev_done_s"]), fontsize=9)
        ax.set_title("%s: EV finished %s; peak second %.1f kW" % (
            title, hhmm(r["ev_done_s"]), r["peak_w"] / 1000), fontsize=10)
        ax.set_ylabel("kW")
        ax.set_ylim(0, top_kw * 1.18)
        ax.legend(loc="upper right", fontsize=8, ncol=6)
    ticks = list(range(START_H, START_H + HOURS + 1, 2))
    axes[1].set_xticks(ticks)
    axes[1].set_xticklabels(["%02d:00" % (t % 24) for t in ticks])
    axes[1].set_xlabel("time of day (UTC); house: IDEAL house 65, 5 Feb 2018. Areas: minute "
                       "averages; thin line: each minute's highest second")
    fig.suptitle("Capacity subscription with a reservation: the EV uses the reserved room "
                 "(panelcap firmware, unix port)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plot", help="PNG file")
    ap.add_argument("--json", help="summary JSON file")
    ap.add_argument("--subscription-w", type=int, default=5000)
    ap.add_argument("--extra-w", type=int, default=4000)
    ap.add_argument("--from", dest="res_from", default="17:30", help="reservation start HH:MM")
    ap.add_argument("--hours", type=int, default=5, help="reservation length")
    args = ap.parse_args(argv)
    result = scenario(args.subscription_w, args.extra_w, args.res_from, args.hours)
    for key in ("without", "with"):
        r = result[key]
        print("%-8s reservation: EV finished %-16s delivered %5d Wh, over the limit %4d s "
              "(%d excursions logged, %d limit changes), peak %d W" % (
                  key, hhmm(r["ev_done_s"]), r["ev_delivered_wh"], r["over_s"],
                  r["excursions"], r["limit_changes"], r["peak_w"]))
        causes = {}
        for line in r["log"]:
            e = json.loads(line)
            if e.get("k") == "excursion":
                causes[e["cause"]] = causes.get(e["cause"], 0) + 1
        print("         excursions by cause: %s" % ", ".join(
            "%s %d" % kv for kv in sorted(causes.items())))
    print("answers: %s" % json.dumps(result["answers"]))
    summary = {k: {kk: v for kk, v in result[k].items() if kk not in ("trace", "log")}
               for k in ("without", "with")}
    for k in ("without", "with"):
        summary[k]["ev_done"] = hhmm(result[k]["ev_done_s"])
    summary["answers"] = result["answers"]
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    if args.plot:
        plot(result, args.plot)
        print("plot: %s" % args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
