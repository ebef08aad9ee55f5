"""Summarises panelcap's compliance log: limit changes by source (watts and amps per leg),
excursions above the limit in force (count, time, longest, worst peak) by cause and by the
limit exceeded, periods of invalid measurement, and entries lost to failed flash writes.

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


KINDS = ("limit", "excursion", "invalid", "write_failed")


def _over_w(e):
    """W above the W limit at the excursion's peak, or None where no W limit was exceeded."""
    if e.get("limit_w") is None or e["peak_w"] <= e["limit_w"]:
        return None
    return e["peak_w"] - e["limit_w"]


def _over_ma(e):
    """mA above the per-leg limit at the excursion's peak, or None where none was exceeded."""
    if e.get("limit_ma") is None or e.get("peak_ma", 0) <= e["limit_ma"]:
        return None
    return e["peak_ma"] - e["limit_ma"]


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
            if e.get("k") not in KINDS:
                raise ValueError
            entries.append(e)
        except (ValueError, AttributeError):
            bad += 1
    changes = [e for e in entries if e["k"] == "limit"]
    exc = [e for e in entries if e["k"] == "excursion"]
    invalid = [e for e in entries if e["k"] == "invalid"]
    by_source = {}
    for e in changes:
        by_source[e.get("source")] = by_source.get(e.get("source"), 0) + 1
    amp_changes = [e for e in changes if e.get("limit_ma") is not None]
    amp_by_source = {}
    for e in amp_changes:
        amp_by_source[e.get("source_a")] = amp_by_source.get(e.get("source_a"), 0) + 1
    by_cause = {}
    for e in exc:
        c = by_cause.setdefault(e.get("cause"), {"count": 0, "seconds": 0, "worst_over_w": 0,
                                                 "worst_over_ma": 0})
        c["count"] += 1
        c["seconds"] += e["dur_s"]
        c["worst_over_w"] = max(c["worst_over_w"], _over_w(e) or 0)
        c["worst_over_ma"] = max(c["worst_over_ma"], _over_ma(e) or 0)
    # By what was exceeded: the total W, or the amps on a leg (an excursion may be both).
    by_limit = {}
    for key, over in (("W", _over_w), ("A", _over_ma)):
        hit = [e for e in exc if over(e) is not None]
        by_limit[key] = {"count": len(hit), "seconds": sum(e["dur_s"] for e in hit),
                         "worst_over": max([over(e) for e in hit], default=0)}
    stamps = [e["t"] for e in entries if isinstance(e.get("t"), int)]
    worst = max(exc, key=lambda e: _over_w(e) or 0, default=None)
    longest = max(exc, key=lambda e: e["dur_s"], default=None)
    return {
        "entries": len(entries), "bad_lines": bad,
        "first": _when(min(stamps)) if stamps else None,
        "last": _when(max(stamps)) if stamps else None,
        "limit_changes": len(changes), "limit_changes_by_source": by_source,
        "amp_limit_changes": len(amp_changes), "amp_limit_changes_by_source": amp_by_source,
        "excursions": len(exc), "excursion_s": sum(e["dur_s"] for e in exc),
        "by_limit": by_limit,
        "longest": longest, "worst": worst, "by_cause": by_cause,
        "invalid_periods": len(invalid), "invalid_s": sum(e["dur_s"] for e in invalid),
        "entries_lost": sum(e.get("lost", 0) for e in entries if e["k"] == "write_failed"),
    }


def _limits_text(e):
    text = "%s W" % e["limit_w"] if e.get("limit_w") is not None else "no W limit"
    if e.get("limit_ma") is not None:
        text += ", %.1f A per leg (peak %.1f A)" % (e["limit_ma"] / 1000, e["peak_ma"] / 1000)
    return text


def report(s):
    out = ["compliance log: %d entries%s, %s .. %s" % (
        s["entries"], " (%d bad lines skipped)" % s["bad_lines"] if s["bad_lines"] else "",
        s["first"] or "?", s["last"] or "?"),
        "limit changes: %d (%s)" % (s["limit_changes"], ", ".join(
            "%s %d" % (k, v) for k, v in sorted(s["limit_changes_by_source"].items(),
                                                 key=lambda kv: str(kv[0])))),
        "amp limits in force: %d changes (%s)" % (s["amp_limit_changes"], ", ".join(
            "%s %d" % (k, v) for k, v in sorted(s["amp_limit_changes_by_source"].items(),
                                                 key=lambda kv: str(kv[0])))),
        "excursions above the limit in force: %d, %d s in all" % (
            s["excursions"], s["excursion_s"]),
        "  above the W limit: %d, %d s, worst %d W over; above the A per leg limit: %d, %d s, "
        "worst %.1f A over" % (
            s["by_limit"]["W"]["count"], s["by_limit"]["W"]["seconds"],
            s["by_limit"]["W"]["worst_over"], s["by_limit"]["A"]["count"],
            s["by_limit"]["A"]["seconds"], s["by_limit"]["A"]["worst_over"] / 1000)]
    if s["longest"]:
        e = s["longest"]
        out.append("  longest: %d s from %s, peak %d W against %s (%s)" % (
            e["dur_s"], _when(e["t"]), e["peak_w"], _limits_text(e), e["cause"]))
        e = s["worst"]
        if _over_w(e) is not None:
            out.append("  worst: %d W over (%d W against %d W, %d s from %s, %s)" % (
                _over_w(e), e["peak_w"], e["limit_w"], e["dur_s"], _when(e["t"]), e["cause"]))
    for cause, c in sorted(s["by_cause"].items(), key=lambda kv: str(kv[0])):
        out.append("  cause %-28s %3d excursions, %5d s, worst %d W / %.1f A over" % (
            cause, c["count"], c["seconds"], c["worst_over_w"], c["worst_over_ma"] / 1000))
    out.append("invalid measurement: %d periods, %d s in all (no limit can be judged)" % (
        s["invalid_periods"], s["invalid_s"]))
    if s["entries_lost"]:
        out.append("flash writes failed: %d entries lost (the log is incomplete there)"
                   % s["entries_lost"])
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
