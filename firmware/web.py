"""The status page at the panel (docs/web.md): one more supervised, non-critical asyncio task
serving, with microdot, a page for a phone (webpage.py) and a read-only JSON API built from
the same status snapshot as MQTT's state (snapshot.py), plus the last hour (history.py).
Nothing here changes the controller. Imported only when web_port is set.

Hostile clients stall nothing: one connection accepted per _PASS_MS at most (the page's
share of the CPU is bounded, whatever the flood), at most _MAX_CONN open at once (more are
refused in one line), a request head of at most _HEAD_MAX bytes read in pieces (never an
unbounded readline), one request parsed and answered at a time, and every connection cut
_DEADLINE_MS after it opened, on the real clock. No stretch is long: on the ESP32 cost model
the page's 99.9th percentile under attack is ~35 ms (tests/test_web_costs.py). microdot
parses, routes and writes; this module owns the sockets. Served in safe mode too (app.py)."""

import asyncio

from micropython import const
from microdot import AsyncBytesIO, Microdot, Request, Response

import snapshot
from history import History

_MAX_CONN = const(6)
_HEAD_MAX = const(1024)
_DEADLINE_MS = const(5000)
_PASS_MS = const(100)           # accept (one connection a pass), history, uptime, reaper
_JSON = "application/json"

_listening = None               # the listening socket, closed by the next run if left open


def entry(app):
    """The supervisor entry for the page, from the App's settings (web_port, web_password)."""
    import supervisor as supervisor_mod
    server = WebServer(app, app.cfg["web_port"], app.cfg["web_password"])
    app.web = server
    return supervisor_mod.Supervised("web", supervisor_mod.task(server, server.close), 60000,
                                     critical=False)


def lan_address(peer):
    """True for a client on the LAN: an IPv4 private (10/8, 172.16/12, 192.168/16),
    link-local (169.254/16) or loopback address. peer: (ip, port) on the ESP32, the raw
    sockaddr bytes on the unix port."""
    if isinstance(peer, tuple):
        try:
            ip = [int(x) for x in peer[0].split(".")]
        except (ValueError, AttributeError):
            return False
        if len(ip) != 4:
            return False
    elif peer is not None and len(peer) >= 8 and peer[0] == 2:     # AF_INET sockaddr
        ip = peer[4:8]
    else:
        return False
    a, b = ip[0], ip[1]
    return a == 10 or a == 127 or (a == 172 and 16 <= b <= 31) or (a == 192 and b == 168) \
        or (a == 169 and b == 254)


_KEEP = (b"authorization", b"content-length", b"content-type")


def _trim(head):
    """The request head with only the headers the page reads (_KEEP): a phone sends a dozen
    others, which cost microdot's parse 5.5 KB of heap and ~9 ms on the ESP32 (cost model)
    for nothing. A line that is no header at all is kept, so that microdot refuses it."""
    keep = []
    lines = head.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():            # the blank line: the head ends, the rest stays
            return b"\n".join(keep + lines[i:])
        if i == 0 or b":" not in line or line.split(b":", 1)[0].strip().lower() in _KEEP:
            keep.append(line)
    return b"\n".join(keep)


def _line(status, reason, text, extra=""):
    # A refusal in one line, written before microdot has a request to answer.
    return ("HTTP/1.0 %d %s\r\nContent-Type: text/plain\r\n%sContent-Length: %d\r\n\r\n%s\n" % (
        status, reason, extra, len(text) + 1, text)).encode()


class WebServer(Microdot):
    def __init__(self, app, port, password="", host=None, net_clock=None):
        super().__init__()
        import sys
        self._app = app
        self._clock = app.clock
        # Deadlines are about real sockets: the simulator's virtual time may run fast.
        self._net = net_clock or getattr(app, "net_clock", None) or app.clock
        self._log = app.log
        self.port = port
        self._password = password
        # LAN only: on the ESP32 the station interface is the LAN; on the unix port (the
        # simulator) loopback.
        self.host = host or ("0.0.0.0" if sys.platform == "esp32" else "127.0.0.1")
        self.history = History(app.clock)
        self._slots = [None] * _MAX_CONN      # (task, opened at) per open connection
        self._turn = asyncio.Lock()           # held while one request is parsed and answered
        self._sock = None
        self._steps = -1
        self._last_ms = app.clock.ticks_ms()
        self._uptime_ms = 0
        self.heartbeat_ms = None
        self.requests = 0       # answered by a route
        self.refused = 0        # 4xx and 503 answers
        self.cut = 0            # connections cut at their deadline
        self.errors = 0
        self.route("/")(self._page)
        self.route("/api/status")(self._status)
        self.route("/api/history")(self._history)
        self.before_request(self._check_password)
        self.errorhandler(404)(self._not_found)
        self.errorhandler(405)(self._not_allowed)

    # --- the task ---------------------------------------------------------------------
    async def run(self):
        global _listening
        import socket
        if _listening is not None:      # a run stopped without its finally (Ctrl-C, reset)
            _listening.close()
            _listening = None
        ai = socket.getaddrinfo(self.host, self.port)[0]     # an address: no DNS wait
        s = socket.socket(ai[0], socket.SOCK_STREAM)
        _listening = self._sock = s
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(ai[-1])
        s.listen(2)
        s.setblocking(False)
        self._log("web: http://%s:%d/" % (self.host, self.port) if self.host != "0.0.0.0"
                  else "web: serving on port %d (LAN only)" % self.port)
        clock = self._clock
        try:
            while True:
                now = clock.ticks_ms()
                self.heartbeat_ms = now
                self._uptime_ms += clock.ticks_diff(now, self._last_ms)
                self._last_ms = now
                self._record(now)
                self._reap()
                self._accept()
                await asyncio.sleep_ms(_PASS_MS)
        finally:
            self.close()

    def close(self):
        """Stops listening and drops every connection (before a restart, or at the end)."""
        global _listening
        if self._sock is not None:
            self._sock.close()
            if _listening is self._sock:
                _listening = None
            self._sock = None
        for i in range(_MAX_CONN):
            slot = self._slots[i]
            self._slots[i] = None
            if slot is not None:
                slot[0].cancel()

    def _accept(self):
        # One connection a pass at most: a flood of clients gets _PASS_MS apart, so the
        # page can never take more than its share of the CPU from the control loop; the
        # rest wait in the listen backlog or are refused by the network stack.
        try:
            conn, peer = self._sock.accept()
        except OSError:         # EAGAIN: nobody waiting
            return
        conn.setblocking(False)
        for i in range(_MAX_CONN):
            if self._slots[i] is None:
                stream = asyncio.StreamReader(conn, {"peername": peer})
                self._slots[i] = (asyncio.create_task(self._serve(stream, i)),
                                  self._net.ticks_ms())
                return
        self.refused += 1
        try:
            conn.write(_line(503, "Busy", "error: too many connections, try again"))
        except OSError:  # its buffer full or reset: it gets the close alone
            pass
        conn.close()

    def _record(self, now):
        control = getattr(self._app, "control", None)
        if control is not None and control.steps != self._steps:
            self._steps = control.steps
            self.history.add(now, self._app.sampler.total_w, self._app.controller.limit_w)

    def _reap(self):
        net = self._net
        now = net.ticks_ms()
        for i in range(_MAX_CONN):
            slot = self._slots[i]
            if slot is not None and net.ticks_diff(now, slot[1]) >= _DEADLINE_MS:
                self._slots[i] = None
                self.cut += 1
                slot[0].cancel()

    # --- one connection ---------------------------------------------------------------
    async def _serve(self, stream, slot):
        try:
            await self._handle(stream, stream)
        except asyncio.CancelledError:      # cut at its deadline (or the server closed)
            pass
        except Exception as e:  # a reset connection, or a bug: never the other tasks' problem
            self.errors += 1
            if self.errors <= 3:
                self._log("web: %s: %s" % (type(e).__name__, e))
        finally:
            entry = self._slots[slot]
            if entry is not None and entry[0] is asyncio.current_task():
                self._slots[slot] = None
            try:
                await stream.wait_closed()
            except Exception:  # already closed or reset: nothing left to free
                pass

    async def _handle(self, reader, writer):
        peer = writer.get_extra_info("peername")
        if not lan_address(peer):
            self.refused += 1
            writer.write(_line(403, "Forbidden", "error: the status page answers the LAN only"))
            await writer.drain()
            return
        head = await self._read_head(reader)
        if head is None:
            return
        if head is False:
            self.refused += 1
            writer.write(_line(431, "Too Large", "error: request head over %d bytes" % _HEAD_MAX))
            await writer.drain()
            return
        # One request is parsed and answered at a time, the others waiting their turn: the
        # heap holds one parse, not six (under a flood at the 128 KB budget six at once
        # left no room to import the page).
        async with self._turn:
            try:
                req = await Request.create(self, AsyncBytesIO(_trim(head)), writer, peer)
            except Exception:  # a request line or header microdot cannot parse
                req = None
            if req is not None:
                # Parsing, the answer and writing it are separate stretches: the
                # scheduler runs the others between them.
                await asyncio.sleep_ms(0)
                res = await self.dispatch_request(req)
        if req is None:
            self.refused += 1
            writer.write(_line(400, "Bad Request", "error: malformed HTTP request"))
            await writer.drain()
            return
        if res.status_code >= 400:
            self.refused += 1
        else:
            self.requests += 1
        await asyncio.sleep_ms(0)
        await res.write(writer)

    async def _read_head(self, reader):
        """The request line and headers, up to the blank line: bytes; None if the client
        closed first; False if longer than _HEAD_MAX. Read in pieces, so a client that never
        ends a line costs at most _HEAD_MAX bytes."""
        buf = b""
        while True:
            piece = await reader.read(256)
            if not piece:
                return None
            buf += piece
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                end = buf.find(b"\n\n")
            if 0 <= end < _HEAD_MAX:
                return buf
            if end >= 0 or len(buf) > _HEAD_MAX:
                return False    # over, even when the piece that went over also ended it

    # --- routes (GET only: nothing here changes anything) -----------------------------
    def _check_password(self, req):
        if not self._password:
            return None
        auth = req.headers.get("Authorization", "")
        if auth[:6] == "Basic " and self._given_password(auth[6:]) == self._password:
            return None
        return Response("error: this page needs its password\n", 401,
                        {"WWW-Authenticate": 'Basic realm="panelcap"'})

    @staticmethod
    def _given_password(text):
        import binascii
        try:
            pair = binascii.a2b_base64(text).decode()
        except Exception:  # not base64 or not text: no password given
            return None
        return pair.partition(":")[2]

    def _page(self, req):
        # The page's bytes are loaded for the request and dropped after it is written: kept
        # imported they cost 5.3 KB of heap (32-bit port, .mpy) for a file a phone fetches
        # once and then only polls /api/status. Written a piece (<= 1 KB) at a time.
        import sys
        import webpage
        parts = webpage.PARTS
        webpage = None
        # per request: kept, 6.0 KB from .mpy, 0.8 KB from flash (docs/architecture.md)
        sys.modules.pop("webpage", None)
        size = 0
        for part in parts:
            size += len(part)
        return Response(_Pieces(parts), headers={"Content-Type": "text/html; charset=UTF-8",
                                                 "Content-Length": str(size),
                                                 "Cache-Control": "no-store"})

    def _status(self, req):
        app = self._app
        now = self._clock.ticks_ms()
        cmds = getattr(getattr(app, "reporter", None), "commands", None)
        d = snapshot.status(app, now, cmds.gates if cmds is not None else None,
                            cmds.remote_limit(now) if cmds is not None else (None, 0),
                            uptime_s=self._uptime_ms // 1000)
        return Response(d, headers={"Cache-Control": "no-store"})

    def _history(self, req):
        return Response(self.history.json_body(self._clock.ticks_ms()),
                        headers={"Content-Type": _JSON, "Cache-Control": "no-store"})

    def _not_found(self, req):
        return "error: no such page (/, /api/status, /api/history)\n", 404

    def _not_allowed(self, req):
        return "error: GET only: the status page changes nothing\n", 405


class _Pieces:
    """A response body written one piece at a time (microdot awaits each write)."""

    def __init__(self, parts):
        self._parts = parts
        self._i = 0

    def __aiter__(self):
        return self

    async def __anext__(self):
        i = self._i
        if i >= len(self._parts):
            raise StopAsyncIteration
        self._i = i + 1
        return self._parts[i]
