"""Summarises panelcap's compliance log: limit changes by source, excursions above the limit
in force (count, time, longest, worst peak) by cause.

    .venv/bin/python tools/compliance_report.py compliance.log.1 compliance.log [--json F]
    .venv/bin/python tools/compliance_report.py --mqtt 127.0.0.1:1883 --prefix panelcap

Files are copied from the board (`mpremote cp :compliance.log .`, and `.1`, the older
half). With --mqtt the tool asks the board for its log (`<p>/cmd/grid/log`) and reads the
replay from `<p>/grid/compliance`. Each line is one JSON entry (docs/grid.md). Bad lines
are counted and reported, not fatal.
"""
import argparse
import datetime
import json
import sys
import time
from pathlib import Path


def _when(t):
    if isinstance(t, int):
        return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%SZ")
    return "uptime %ss" % str(t)[1:]


def summarise(lines):
    """The summary dict of an iterable of log lines."""
    entries = []
    bad = 0
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            e = json.loads(line)
            if e.get("k") not in ("limit", "excursion"):
                raise ValueError
            entries.append(e)
        except (ValueError, AttributeError):
            bad += 1
    changes = [e for e in entries if e["k"] == "limit"]
    exc = [e for e in entries if e["k"] == "excursion"]
    by_source = {}
    for e in changes:
        by_source[e.get("source")] = by_source.get(e.get("source"), 0) + 1
    by_cause = {}
    for e in exc:
        c = by_cause.setdefault(e.get("cause"), {"count": 0, "seconds": 0, "worst_over_w": 0})
        c["count"] += 1
        c["seconds"] += e["dur_s"]
        c["worst_over_w"] = max(c["worst_over_w"], e["peak_w"] - e["limit_w"])
    stamps = [e["t"] for e in entries if isinstance(e.get("t"), int)]
    worst = max(exc, key=lambda e: e["peak_w"] - e["limit_w"], default=None)
    longest = max(exc, key=lambda e: e["dur_s"], default=None)
    return {
        "entries": len(entries), "bad_lines": bad,
        "first": _when(min(stamps)) if stamps else None,
        "last": _when(max(stamps)) if stamps else None,
        "limit_changes": len(changes), "limit_changes_by_source": by_source,
        "excursions": len(exc), "excursion_s": sum(e["dur_s"] for e in exc),
        "longest": longest, "worst": worst, "by_cause": by_cause,
    }


def report(s):
    out = ["compliance log: %d entries%s, %s .. %s" % (
        s["entries"], " (%d bad lines skipped)" % s["bad_lines"] if s["bad_lines"] else "",
        s["first"] or "?", s["last"] or "?"),
        "limit changes: %d (%s)" % (s["limit_changes"], ", ".join(
            "%s %d" % (k, v) for k, v in sorted(s["limit_changes_by_source"].items(),
                                                 key=lambda kv: str(kv[0])))),
        "excursions above the limit in force: %d, %d s in all" % (
            s["excursions"], s["excursion_s"])]
    if s["longest"]:
        e = s["longest"]
        out.append("  longest: %d s from %s, peak %d W over a %d W limit (%s)" % (
            e["dur_s"], _when(e["t"]), e["peak_w"], e["limit_w"], e["cause"]))
        e = s["worst"]
        out.append("  worst: %d W over (%d W against %d W, %d s from %s, %s)" % (
            e["peak_w"] - e["limit_w"], e["peak_w"], e["limit_w"], e["dur_s"], _when(e["t"]),
            e["cause"]))
    for cause, c in sorted(s["by_cause"].items(), key=lambda kv: str(kv[0])):
        out.append("  cause %-24s %3d excursions, %5d s, worst %d W over" % (
            cause, c["count"], c["seconds"], c["worst_over_w"]))
    return "\n".join(out)


def fetch(broker, prefix, timeout=20.0, user=None, password=None):
    """The log's lines, replayed by the board over MQTT."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from grid_responder import broker_address
    from mqttclient import Mqtt
    lines = []
    done = {}

    def on_message(topic, payload):
        if topic != prefix + "/grid/compliance":
            return
        text = payload.decode()
        if text.startswith("{\"end\""):
            done["n"] = json.loads(text)["end"]
        else:
            lines.extend(text.split("\n"))

    host, port = broker_address(broker)
    client = Mqtt(host, port, "compliance-report", user, password, on_message)
    client.subscribe(prefix + "/grid/compliance")
    client.publish(prefix + "/cmd/grid/log", "{}")
    t0 = time.monotonic()
    while "n" not in done and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    client.close()
    if "n" not in done:
        raise SystemExit("compliance_report.py: error: no replay from %s within %d s"
                         % (prefix, timeout))
    if len(lines) != done["n"]:
        print("warning: the board sent %d lines, %d arrived" % (done["n"], len(lines)),
              file=sys.stderr)
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="log files, oldest first")
    ap.add_argument("--mqtt", help="HOST:PORT: fetch the log from the board instead")
    ap.add_argument("--prefix", default="panelcap")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--json", help="write the summary as JSON here")
    args = ap.parse_args(argv)
    if args.mqtt:
        lines = fetch(args.mqtt, args.prefix, user=args.user, password=args.password)
    elif args.files:
        lines = []
        for f in args.files:
            try:
                lines += Path(f).read_text().splitlines()
            except OSError as e:
                print("compliance_report.py: error: %s" % e, file=sys.stderr)
                return 2
    else:
        ap.error("give log files or --mqtt")
    s = summarise(lines)
    print(report(s))
    if args.json:
        Path(args.json).write_text(json.dumps(s, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
