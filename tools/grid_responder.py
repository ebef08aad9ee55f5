"""A reference grid responder for tests and demos: answers panelcap reservation requests
from a feeder capacity and an hourly table of forecast feeder load and price.

    .venv/bin/python tools/grid_responder.py --broker 127.0.0.1:1883 [--table T.json]
        [--capacity-w W] [--seconds N] [--user U --password P]
        [--envelope E.json --prefix SITE]

It subscribes to `<prefix>/grid/request` and `<prefix>/grid/reservation` for every prefix of
up to three levels (`--prefix` for one site), answers each request on
`<prefix>/cmd/grid/answer` (docs/grid.md):

- denied: some hour of the window has less room than asked (capacity - forecast - already
  granted reservations);
- granted: room everywhere, and the fee is 0 or at most the request's max_fee_cents;
- fee: room everywhere but at a price: the answer lists each hour's window, room and price
  (cents per kW per hour reserved) and the total fee; asking again with max_fee_cents at
  least that fee (the REPL's grid.accept) gets it granted.

A request sent again with the same id gets the same answer (nothing booked twice). Each
notice the site sends of a reservation's new state (granted, refused, cancelled, no answer,
ended) is acknowledged on `<prefix>/cmd/grid/ack` {"n", "id"}; refused, cancelled, no answer
and ended free the room the grant had booked. Every state change, from either side, is
recorded (`history`; `--record FILE` appends them as JSON lines) and printed.

The table (JSON): {"capacity_w": 24000, "hours": [[forecast_w, price], ... 24 rows, UTC]}.

`--envelope E.json` also sends one site (`--prefix`) a day-ahead operating envelope, {"id",
"start" (ISO UTC; default the next whole half-hour), "duration_s" (default 1800),
"values_kw": [one import limit per interval, up to 48]}, as panelcap takes it: in pages of
at most 900 bytes on `<prefix>/cmd/grid/limits` (`envelope_pages`), each sent again every
5 s until the site's event on `<prefix>/event` acknowledges it, until the site says the
schedule is in force or refuses a page (its one-line reason printed).
The MQTT client is tools/mqttclient.py: plain CPython sockets (MQTT 3.1.1, QoS 0).
"""
import argparse
import datetime
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mqttclient import Mqtt  # noqa: E402

DEFAULT_TABLE = {
    # A residential feeder: quiet at night, an evening peak; reserving capacity is free
    # when there is plenty of room, costs money on the shoulders, is refused at the peak.
    "capacity_w": 200000,
    "hours": [[110000, 0]] * 6 + [[140000, 0]] * 3 + [[150000, 2]] * 7 + [[180000, 6]] * 1 +
             [[196000, 12]] * 3 + [[185000, 4]] * 1 + [[160000, 2]] * 1 + [[130000, 0]] * 2,
}


# --- the decision (pure; the tests and the Figure 6 scenario call it directly) -------------

def parse_time(text):
    return int(datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp())


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


class Responder:
    """Keeps the granted reservations; decide(request) returns the answer object."""

    def __init__(self, table=None):
        table = table or DEFAULT_TABLE
        hours = table["hours"]
        if len(hours) != 24:
            raise ValueError("the table needs 24 hourly rows [forecast_w, price], got %d"
                             % len(hours))
        self.capacity_w = int(table["capacity_w"])
        self.hours = [(int(f), int(p)) for f, p in hours]
        self.granted = []          # (start, end, extra_w, site, id)
        self.answered = {}         # (site, id) -> the answer given: a request sent again gets it
        self.history = []          # every state change seen, from either side, oldest first
        self.repeats = 0           # requests and notices received again (the site's retries)
        self.record_path = None

    def hours_of(self, start, end):
        """The window cut at hour boundaries: (start, end, forecast_w, price) per piece."""
        out = []
        t = start
        while t < end:
            nxt = min(end, (t // 3600 + 1) * 3600)
            f, p = self.hours[(t // 3600) % 24]
            out.append((t, nxt, f, p))
            t = nxt
        return out

    def booked_w(self, start, end):
        return sum(g[2] for g in self.granted if g[0] < end and start < g[1])

    def decide(self, req, site=""):
        rid = req.get("id")
        try:
            start = parse_time(req["start"])
            dur = int(req["duration_s"])
            extra = int(req["extra_w"])
            max_fee = int(req.get("max_fee_cents", 0))
        except (KeyError, ValueError, TypeError) as e:
            return {"id": rid, "status": "denied", "reason": "malformed request: %s" % e}
        if dur <= 0 or extra <= 0:
            return {"id": rid, "status": "denied", "reason": "empty window or extra"}
        end = start + dur
        offers = []
        fee = 0
        short = None
        for s, e, forecast, price in self.hours_of(start, end):
            room = self.capacity_w - forecast - self.booked_w(s, e)
            offers.append({"start": iso(s), "duration_s": e - s, "available_w": max(0, room),
                           "price": price})
            fee += extra * (e - s) * price // 3600000     # cents: kW x h x cents/(kW h)
            if room < extra and short is None:
                short = (s, room)
        if short is not None:
            return {"id": rid, "status": "denied",
                    "reason": "feeder full at %s: %d W free" % (iso(short[0])[11:16],
                                                                max(0, short[1]))}
        if fee > max_fee:
            return {"id": rid, "status": "fee", "fee_cents": fee, "offers": offers}
        self.granted.append((start, end, extra, site, rid))
        return {"id": rid, "status": "granted", "fee_cents": fee}

    def record(self, site, rid, by, state, **more):
        entry = dict(site=site, id=rid, by=by, state=state, **more)
        self.history.append(entry)
        if self.record_path:
            with open(self.record_path, "a") as f:
                f.write(json.dumps(entry) + "\n")
        print("%s %s %s: %s %s" % (site, rid, by, state, json.dumps(more) if more else ""),
              flush=True)

    def handle(self, topic, payload):
        """One message from a site: returns the (topic, payload) pairs to publish."""
        for kind in ("/grid/request", "/grid/reservation"):
            if topic.endswith(kind):
                site = topic[:-len(kind)]
                break
        else:
            return []
        try:
            msg = json.loads(payload)
            rid = msg["id"]
        except (ValueError, KeyError, TypeError):
            return []
        if kind == "/grid/request":
            if (site, rid) in self.answered:
                self.repeats += 1      # the site asks again (our answer was lost): same answer
                ans = self.answered[(site, rid)]
            else:
                self.record(site, rid, "site", "requested", request=msg)
                # decide() may return None (a grid that does not answer: tests use that)
                ans = self.answered[(site, rid)] = self.decide(msg, site)
                if ans is not None:
                    self.record(site, rid, "grid", ans["status"], **{
                        k: v for k, v in ans.items() if k in ("fee_cents", "reason")})
            return [] if ans is None else [(site + "/cmd/grid/answer", json.dumps(ans))]
        state = msg.get("state")
        seen = [h for h in self.history if h["site"] == site and h["id"] == rid and
                h["by"] == "site" and h["state"] == state]
        if seen:
            self.repeats += 1          # sent again: our ack was lost or late
        else:
            self.record(site, rid, "site", state, n=msg.get("n"),
                        **({"reason": msg["reason"]} if "reason" in msg else {}))
            if state in ("refused", "cancelled", "no answer", "ended"):
                # the site will not use it (or is done with it): the room is free again
                self.granted = [g for g in self.granted if (g[3], g[4]) != (site, rid)]
        return [(site + "/cmd/grid/ack", json.dumps({"n": msg.get("n"), "id": rid}))]


# --- a day-ahead envelope, in pages ---------------------------------------------------------

MAX_PAGE_BYTES = 900        # firmware/commands.py: the longest cmd/grid/limits payload taken
MAX_INTERVALS = 48          # firmware/gridevent.py's MAX_INTERVALS, gridpages.py's _MAX_PAGES
MAX_PAGES = 8


def envelope_pages(sid, start, values_kw, duration_s=1800, name="day-ahead",
                   max_bytes=MAX_PAGE_BYTES):
    """The JSON texts of the pages of a day-ahead envelope: one import limit (kW) per interval
    of duration_s from start (unix s), as many intervals a page as fit in max_bytes, each page
    an event with its own start, all with id sid. More than panelcap takes (48 intervals, 8
    pages) is still split, so that a test can see the site refuse it."""
    def page(first, count, k, n):
        return json.dumps({
            "id": sid, "page": k, "pages": n, "programID": "panelcap-responder",
            "eventName": name,
            "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}],
            "intervalPeriod": {"start": iso(start + first * duration_s),
                               "duration": "PT%dM" % (duration_s // 60)
                               if duration_s % 60 == 0 else duration_s},
            "intervals": [{"id": first + i, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT",
                                                          "values": [values_kw[first + i]]}]}
                          for i in range(count)]})

    cuts = []
    i = 0
    while i < len(values_kw):
        n = 1              # sized with two-digit page numbers, which no real page exceeds
        while i + n < len(values_kw) and len(page(i, n + 1, 99, 99)) <= max_bytes:
            n += 1
        if len(page(i, n, 99, 99)) > max_bytes:
            raise ValueError("interval %d alone is over %d bytes" % (i, max_bytes))
        cuts.append((i, n))
        i += n
    return [page(first, count, k + 1, len(cuts)) for k, (first, count) in enumerate(cuts)]


class EnvelopeSender:
    """Sends a site the pages of an envelope, each again every resend_s until the site's
    event acknowledges it (at most tries times); done (the interval count) when the site says
    the schedule is in force, error (the site's one line) when it refuses a page."""

    def __init__(self, site, sid, pages, resend_s=5.0, tries=6):
        self.site = site
        self.sid = sid
        self.pages = pages
        self.resend_s = resend_s
        self.tries = tries
        self.sent = {}             # page number -> [last send (monotonic s), sends]
        self.acked = set()
        self.done = None
        self.error = None
        self.resent = 0

    def due(self, now):
        """The (topic, payload) pairs to publish now."""
        if self.done is not None or self.error is not None:
            return []
        out = []
        for k, text in enumerate(self.pages, 1):
            s = self.sent.get(k)
            if k in self.acked or s and (now - s[0] < self.resend_s or s[1] >= self.tries):
                continue
            if s:
                self.resent += 1
            self.sent[k] = [now, (s[1] if s else 0) + 1]
            out.append((self.site + "/cmd/grid/limits", text))
        if out == [] and len(self.sent) == len(self.pages) and \
                all(k in self.acked or self.sent[k][1] >= self.tries for k in self.sent) and \
                len(self.acked) < len(self.pages):
            self.error = "pages %s unacknowledged after %d sends" % (
                sorted(set(self.sent) - self.acked), self.tries)
        return out

    def handle(self, topic, payload):
        """The site's event for one of our pages."""
        if topic != self.site + "/event":
            return
        try:
            ev = json.loads(payload)
        except ValueError:
            return
        if not isinstance(ev, dict) or ev.get("cmd") != "grid/limits" or ev.get("id") != self.sid:
            return
        if not ev.get("ok"):
            self.error = ev.get("error")
            print("envelope %s refused: %s" % (self.sid, self.error), flush=True)
        elif isinstance(ev.get("page"), int):
            self.acked.add(ev["page"])
            if "intervals" in ev:
                self.done = ev["intervals"]
                print("envelope %s: %d intervals in force (%d pages, %d sent again)"
                      % (self.sid, self.done, len(self.pages), self.resent), flush=True)


def connect(responder, host, port, prefix="+", client_id="grid-responder", user=None,
            password=None, envelope=None):
    """An MQTT client that feeds responder every site's requests and notices, and publishes
    what it answers (the tests run one in their own process this way); envelope: an
    EnvelopeSender, fed the site's events (the caller publishes its due() pages)."""
    box = {}

    def on_message(topic, payload):
        if envelope is not None and topic.endswith("/event"):
            envelope.handle(topic, payload)
            return
        for t, p in responder.handle(topic, payload):
            box["client"].publish(t, p)

    box["client"] = client = Mqtt(host, port, client_id, user, password, on_message)
    prefixes = ("+", "+/+", "+/+/+") if prefix == "+" else (prefix,)
    for pre in prefixes:
        for kind in ("/grid/request", "/grid/reservation"):
            client.subscribe(pre + kind)
    if envelope is not None:
        client.subscribe(envelope.site + "/event")
    return client


def load_envelope(path, site, now=None):
    """An EnvelopeSender from an envelope file (see the module's docstring)."""
    with open(path) as f:
        env = json.load(f)
    dur = int(env.get("duration_s", 1800))
    if "start" in env:
        start = parse_time(env["start"])
    else:
        now = time.time() if now is None else now
        start = (int(now) // 1800 + 1) * 1800
    sid = str(env.get("id", "envelope-%d" % start))
    return EnvelopeSender(site, sid, envelope_pages(sid, start, env["values_kw"], dur))


def broker_address(text):
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1"), int(port or 1883)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT")
    ap.add_argument("--prefix", default="+", help="site topic prefix (default: every site)")
    ap.add_argument("--table", help="JSON file: capacity_w and 24 hourly [forecast_w, price]")
    ap.add_argument("--capacity-w", type=int, help="override the table's feeder capacity")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    ap.add_argument("--record", help="append every reservation state change to this file "
                    "(JSON lines)")
    ap.add_argument("--envelope", help="JSON file: a day-ahead envelope to send the site "
                    "--prefix, in pages")
    ap.add_argument("--user")
    ap.add_argument("--password")
    args = ap.parse_args(argv)
    envelope = None
    if args.envelope:
        if args.prefix == "+":
            ap.error("--envelope needs --prefix: the one site to send it to")
        try:
            envelope = load_envelope(args.envelope, args.prefix)
        except (OSError, ValueError, KeyError, TypeError) as e:
            ap.error("--envelope %s: %s" % (args.envelope, e))
    table = DEFAULT_TABLE
    if args.table:
        with open(args.table) as f:
            table = json.load(f)
    if args.capacity_w:
        table = dict(table, capacity_w=args.capacity_w)
    responder = Responder(table)
    responder.record_path = args.record
    host, port = broker_address(args.broker)
    client = connect(responder, host, port, args.prefix, "grid-responder", args.user,
                     args.password, envelope)
    print("grid responder on %s:%d, feeder %d W" % (host, port, responder.capacity_w),
          flush=True)
    if envelope is not None:
        print("envelope %s: %d intervals in %d pages to %s" % (
            envelope.sid, len(json.load(open(args.envelope))["values_kw"]),
            len(envelope.pages), args.prefix), flush=True)
    t0 = time.monotonic()
    try:
        while not args.seconds or time.monotonic() - t0 < args.seconds:
            if envelope is not None:
                for t, p in envelope.due(time.monotonic()):
                    client.publish(t, p)
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
