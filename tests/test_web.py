"""The status page (firmware/web.py) served by the firmware on the simulated board in real
time (tests/web_fw.py): the JSON API against the simulator's truth, bad requests answered
in one line and changing nothing, the password, and hostile clients (page loads in a loop,
held-open connections, slow and malformed requests) while a probe task measures the
scheduler's worst gap in real milliseconds, as the MQTT tests do."""
import base64
import json
import socket
import threading
import time
import urllib.error
import urllib.request

from conftest import MICROPYTHON, ROOT, mpy_env, run_mpy
from mqtt_helpers import JsonLinesProcess, free_port
from test_mqtt_broker import GAP_LIMIT_MS, LATE_MS, _control_ok, _gaps_ok  # noqa: F401

HEAP = "512k"       # behaviour; the heap the page costs is measured in tests/test_web_heap.py


class WebFirmware(JsonLinesProcess):
    """tests/web_fw.py under micropython; its per-second JSON lines, collected live."""

    def __init__(self, opts, heap=HEAP, env=None):
        self.lines = []
        self.logs = []
        self.events = []        # (host monotonic s, {load: output})
        self.done = None
        self.port = opts.setdefault("port", free_port())
        super().__init__([MICROPYTHON, "-X", "heapsize=" + heap,
                          str(ROOT / "tests" / "web_fw.py"), json.dumps(opts)],
                         ROOT, env or mpy_env())

    def handle(self, d):
        if "raw" in d:
            return
        if "log" in d:
            self.logs.append(d["log"])
        elif "event" in d:
            self.events.append((time.monotonic(), d["event"]))
        elif "done" in d:
            self.done = d
        elif "footprint" in d:
            self.footprint = d["footprint"]
        else:
            self.lines.append(d)

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def wait_serving(self, timeout=30):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if any(line.startswith("web: http://127.0.0.1:") for line in self.logs):
                return
            assert not self.exited(), self.stderr_tail()
            time.sleep(0.05)
        raise AssertionError("the page never served: %s" % self.logs)

    def wait_t(self, t, timeout=60):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.lines and self.lines[-1]["t"] >= t:
                return self.lines[-1]
            assert not self.exited(), self.stderr_tail()
            time.sleep(0.05)
        raise AssertionError("firmware did not reach t=%s" % t)

    def finish(self, timeout=60):
        err = super().finish(timeout)
        assert self.done is not None, err[-3000:]
        return self.done


def get(url, headers=None, timeout=5):
    """(status, content type, body text) of a GET; 4xx/5xx are answers too."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def raw(port, data, timeout=5):
    """Sends bytes, returns everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                piece = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not piece:
                break
            out += piece
    return out


def _body(answer):
    return answer.split(b"\r\n\r\n", 1)[1].decode()


STATUS_KEYS = (("total_w", int), ("limit_w", int), ("limit_source", str), ("headroom_w", int),
               ("leg_a", list), ("loads", list), ("alarms", list), ("version", str),
               ("uptime_s", int), ("reset_cause", str))


def test_status_api_page_history_and_bad_requests_in_one_line():
    fw = WebFirmware({"seconds": 28, "steps": [[0, 1500]], "password": ""})
    try:
        fw.wait_serving()
        line = fw.wait_t(22)          # loads back on after the boot stagger; a point closed
        code, ctype, text = get(fw.url("/api/status"))
        assert code == 200 and ctype.startswith("application/json"), (code, ctype, text)
        d = json.loads(text)
        for key, typ in STATUS_KEYS:
            assert isinstance(d[key], typ), (key, d)
        # Against the simulator's truth: the household's 1500 W plus what the loads draw,
        # metered; the installer's limit.
        truth = fw.lines[-1]
        assert abs(d["total_w"] - truth["panel_w"]) <= 0.02 * truth["panel_w"] + 50, (d, truth)
        assert d["limit_w"] == 9600 and d["limit_source"] == "setpoint"
        assert d["headroom_w"] == truth["headroom_w"] or abs(
            d["headroom_w"] - truth["headroom_w"]) < 200, (d, truth)
        assert abs(sum(d["leg_a"]) * 120 - d["total_w"]) < 0.05 * d["total_w"] + 120, d
        loads = {ld["name"]: ld for ld in d["loads"]}
        assert set(loads) == {"water_heater", "ev"}
        for ld in d["loads"]:
            assert set(("name", "state", "setpoint_a", "reason")) <= set(ld), ld
            assert ld["state"] in ("on", "off", "limited"), ld
        out = truth["outputs"]
        assert (loads["water_heater"]["state"] == "on") == bool(out["water_heater"]), (d, out)
        assert loads["ev"]["setpoint_a"] == out["ev"] or loads["ev"]["output_a"] == out["ev"]
        assert d["alarms"] == [] and d["version"] == "0.1.0" and d["reset_cause"] == "power-on"
        assert 18 <= d["uptime_s"] <= 30, d

        code, ctype, page = get(fw.url("/"))
        assert code == 200 and ctype.startswith("text/html")
        for ident in ("total_w", "limit_w", "limit_source", "headroom_w", "loads", "alarms",
                      "chart", "version", "uptime", "reset_cause"):
            assert 'id="%s"' % ident in page, ident
        assert "api/status" in page and "api/history" in page

        code, ctype, text = get(fw.url("/api/history"))
        h = json.loads(text)
        assert code == 200 and h["period_s"] == 10 and h["points"] >= 1, h
        assert len(h["peak_w"]) == len(h["limit_w"]) == h["points"]
        assert all(1400 <= w <= 16000 for w in h["peak_w"]) and set(h["limit_w"]) == {9600}, h

        # Bad requests: a 4xx in one line, and nothing changes.
        answers = {
            "garbage": raw(fw.port, b"garbage\r\n\r\n"),
            "bad header": raw(fw.port, b"GET / HTTP/1.0\r\nno colon here\r\n\r\n"),
            "bad length": raw(fw.port, b"GET / HTTP/1.0\r\nContent-Length: lots\r\n\r\n"),
            # (sent whole before the answer: a longer one would be cut mid-send, RST)
            "too long": raw(fw.port, b"GET /" + b"a" * 1150 + b" HTTP/1.0\r\n\r\n"),
            "big headers": raw(fw.port, b"GET / HTTP/1.0\r\n" + b"X-Pad: %s\r\n" % (b"p" * 90)
                               * 12 + b"\r\n"),
            "no version": raw(fw.port, b"GET /\r\n\r\n"),
            "bad version": raw(fw.port, b"GET / HTTP1.0\r\n\r\n"),
            "post": raw(fw.port, b"POST /api/status HTTP/1.0\r\nContent-Length: 17\r\n\r\n"
                                 b'{"limit_w": 20000}'),
            "put limit": raw(fw.port, b"PUT /api/limit HTTP/1.0\r\n\r\n"),
            "unknown": raw(fw.port, b"GET /api/config HTTP/1.0\r\n\r\n"),
            "binary": raw(fw.port, bytes(range(256)) + b"\r\n\r\n"),
        }
        for name, answer in answers.items():
            status = int(answer.split(b" ", 2)[1])
            body = _body(answer)
            assert 400 <= status < 500, (name, answer)
            assert body.startswith("error: ") and body.count("\n") == 1, (name, body)
        after = json.loads(get(fw.url("/api/status"))[2])
        assert after["limit_w"] == 9600 and after["limit_source"] == "setpoint", after
        done = fw.finish()
    finally:
        fw.kill()
    _control_ok(fw.lines)
    _gaps_ok(done)
    last = fw.lines[-1]
    assert last["web"]["errors"] == 0 and last["crashes"]["web"] == 0, last
    assert last["web"]["refused"] >= len(answers), last
    print("worst gap %d ms" % done["worst_ms"])


def test_password_is_asked_and_never_shown():
    secret = "s3cret-Panel-pw"
    fw = WebFirmware({"seconds": 8, "password": secret})
    try:
        fw.wait_serving()
        for path in ("/", "/api/status", "/api/history"):
            code, _, body = get(fw.url(path))
            assert code == 401 and body.startswith("error: ") and body.count("\n") == 1, body
            wrong = base64.b64encode(b"x:wrong").decode()
            assert get(fw.url(path), {"Authorization": "Basic " + wrong})[0] == 401
            assert get(fw.url(path), {"Authorization": "Basic %%%"})[0] == 401
        good = {"Authorization": "Basic " + base64.b64encode(b"admin:" + secret.encode()).decode()}
        shown = ""
        for path in ("/", "/api/status", "/api/history"):
            code, _, body = get(fw.url(path), good)
            assert code == 200, (path, body)
            shown += body
        assert secret not in shown and secret not in "".join(fw.logs)
        fw.finish()
    finally:
        fw.kill()


def test_disabled_by_default_and_not_imported():
    # web_port 0 (the default): nothing listens, and neither web.py nor microdot is loaded.
    fw = WebFirmware({"seconds": 3, "port": 0})
    try:
        done = fw.finish()
    finally:
        fw.kill()
    for module in ("web", "webpage", "history", "snapshot", "microdot"):
        assert module not in done["modules"], done["modules"]
    assert fw.lines[-1]["web"] is None


def test_when_the_page_cannot_start_the_controller_runs_without_it():
    fw = WebFirmware({"seconds": 6, "web_fails": True})
    try:
        fw.finish()
    finally:
        fw.kill()
    assert any(line.startswith("web: not started: memory allocation failed")
               for line in fw.logs), fw.logs
    assert fw.lines[-1]["web"] is None
    _control_ok(fw.lines)


def safe_mode_config(tmp_path, port):
    """A config.json that puts the board in safe mode (its protected settings and loads are
    gone, as in a damaged save) with the page's port still readable in it."""
    (tmp_path / "config.json").write_text(json.dumps({"version": 2, "web_port": port}))
    return {"seconds": 10, "port": port, "config_dir": str(tmp_path)}


def test_safe_mode_is_said_plainly_and_the_page_still_serves(tmp_path):
    fw = WebFirmware(safe_mode_config(tmp_path, free_port()))
    try:
        fw.wait_serving()
        fw.wait_t(3)
        code, _, text = get(fw.url("/api/status"))
        d = json.loads(text)
        code_page, _, page = get(fw.url("/"))
        done = fw.finish()
    finally:
        fw.kill()
    assert code == 200 and d["safe_mode"].startswith("config file is corrupt or incomplete"), d
    assert d["alarms"] == ["safe mode: " + d["safe_mode"]], d
    assert d["loads"] == [] and d["version"] == "0.1.0", d
    assert code_page == 200 and 'id="safe"' in page and "SAFE MODE" in page
    assert any(line.startswith("SAFE MODE: every controllable load shed") for line in fw.logs)
    # Nothing but the page runs: no controller, no sampler, nothing energised.
    assert fw.lines[-1]["steps"] == 0 and fw.lines[-1]["outputs"] == {}, fw.lines[-1]
    assert set(fw.lines[-1]["crashes"]) == {"web"}, fw.lines[-1]
    assert "web" in done["modules"]


# --- hostile clients ----------------------------------------------------------------------
class Attack:
    """Bounded load from this host's loopback only: each kind runs in its own thread until
    stop_at (monotonic s), and counts what it saw."""

    def __init__(self, port, stop_at):
        self.port = port
        self.stop_at = stop_at
        self.counts = {}
        self.lock = threading.Lock()
        self.threads = []
        self.held_closed_s = []     # (s the server kept a silent connection, its answer)
        self.endless_s = []         # how long an endless request line was read

    def count(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def start(self, kind, n=1):
        for _ in range(n):
            t = threading.Thread(target=getattr(self, kind), daemon=True)
            t.start()
            self.threads.append(t)

    def start_all(self):
        """Every kind at once: three reloading the page, three holding connections open, two
        trickling a request, garbage, endless request lines."""
        self.start("page_loads", 3)
        self.start("hold_open", 3)
        self.start("slow", 2)
        self.start("malformed")
        self.start("endless_line")

    def join(self):
        for t in self.threads:
            t.join(30)

    def _running(self):
        return time.monotonic() < self.stop_at

    def page_loads(self):
        # What a browser does on a reload, again and again. (As fast as the server answers,
        # three of these take every connection it accepts, 10 a second, and the other
        # clients below would wait in the listen backlog instead of being tested.)
        while self._running():
            for path in ("/", "/api/status", "/api/history"):
                try:
                    code = get("http://127.0.0.1:%d%s" % (self.port, path), timeout=10)[0]
                    self.count("page %d" % code)
                except OSError:
                    self.count("page failed")
            time.sleep(0.2)

    def hold_open(self):
        # Start a request and never finish it: the server must cut the connection at its
        # deadline (or refuse it at once when every connection slot is taken). Some bytes
        # are sent: a client that sends none at all may never leave a full listen backlog.
        while self._running():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=15)
            except OSError:
                # Never let in by the network stack (its backlog full all along, on a busy
                # host): nothing the server held open.
                self.count("hold not connected")
                continue
            try:
                with s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: panel\r\n")
                    t0 = time.monotonic()     # connected (a full backlog delays the SYN)
                    got = s.recv(100)
                    with self.lock:
                        self.held_closed_s.append((time.monotonic() - t0, got[:12]))
            except socket.timeout:
                self.count("hold never cut")
            except OSError:
                self.count("hold failed")

    def slow(self):
        # A request trickled a byte at a time, never finished.
        while self._running():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=15) as s:
                    for b in b"GET /api/status HTTP/1.0\r\nX-Slow: " + b"z" * 200:
                        s.send(bytes([b]))
                        time.sleep(0.3)
                        if not self._running():
                            break
            except OSError:
                self.count("slow cut")

    def malformed(self):
        import random
        rnd = random.Random(7)
        while self._running():
            data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 600)))
            try:
                answer = raw(self.port, data + b"\r\n\r\n", timeout=10)
                self.count("malformed %s" % answer[9:12].decode(errors="replace"))
            except OSError:
                self.count("malformed failed")
            time.sleep(0.3)

    def endless_line(self):
        # A request line that never ends: 100 KB without a newline. The server must give up
        # after its head limit (431 or a reset), long before the connection's deadline.
        while self._running():
            t0 = None
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                    t0 = time.monotonic()     # connected (a full backlog delays the SYN)
                    for _ in range(100):
                        s.sendall(b"G" * 1024)
                    got = s.recv(100)
                    self.count("endless %s" % (got[9:12].decode(errors="replace") or "closed"))
            except OSError:
                self.count("endless reset")
            if t0 is not None:
                with self.lock:
                    self.endless_s.append(time.monotonic() - t0)
            time.sleep(0.5)


def test_hostile_clients_stall_nothing_and_an_overload_is_still_shed():
    fw = WebFirmware({"seconds": 56, "steps": [[0, 1500], [40, 8500]]})
    try:
        fw.wait_serving()
        fw.wait_t(4)
        attack = Attack(fw.port, time.monotonic() + 44)
        attack.start_all()
        attack.join()
        # After the attack the page answers again at once.
        code, _, text = get(fw.url("/api/status"))
        assert code == 200 and json.loads(text)["total_w"] > 0
        done = fw.finish(timeout=60)
    finally:
        fw.kill()
    lines = fw.lines
    print("attack: %s" % sorted(attack.counts.items()))
    print("held open, s until cut or refused: %s; the server's oldest connection %d ms" % (
        sorted(round(t, 1) for t, _ in attack.held_closed_s),
        max(ln["web"]["oldest_ms"] for ln in lines)))
    print("web: %s; worst gap %d ms, %d of %d wakes over %d ms late" % (
        lines[-1]["web"], done["worst_ms"], done["late"], done["wakes"], done["late_ms"]))
    _control_ok(lines)
    _gaps_ok(done)
    assert lines[-1]["crashes"]["web"] == 0 and lines[-1]["web"]["errors"] == 0, lines[-1]
    # Pages were served all along, the flood was refused in one line, silent clients cut.
    assert attack.counts.get("page 200", 0) >= 30, attack.counts
    assert lines[-1]["web"]["cut"] >= 3, lines[-1]
    held = [s for s, got in attack.held_closed_s if got == b""]
    busy = [s for s, got in attack.held_closed_s if got.startswith(b"HTTP/1.0 503")]
    # Cut at the 5 s deadline; a client the network stack let connect before the server
    # accepted it (a full backlog) waits that long on top.
    assert held and all(4.5 <= s <= 14 for s in held), attack.held_closed_s
    # The server never held a connection much past its 5 s deadline (sampled each second).
    # A client may still wait longer than that for its answer: one the network stack took
    # in while the listen backlog was full waits there until the server accepts it, seen
    # now and then on a loaded host ("hold never cut": one of ~25 at load 15, two with a
    # month's soak and two heap bisections beside the suite). The server's own figure is
    # the bound; the clients' is kept to a tenth of the holds.
    oldest = max(ln["web"]["oldest_ms"] for ln in lines)
    assert oldest <= 6000, oldest
    holds = len(attack.held_closed_s) + attack.counts.get("hold never cut", 0)
    assert attack.counts.get("hold never cut", 0) <= max(1, holds // 10), attack.counts
    assert len(held) + len(busy) == len(attack.held_closed_s), attack.held_closed_s
    # An endless request line is refused at the head limit (431, or a reset or a bare close
    # where the close beat the answer to the client), never read on until its 5 s deadline
    # cuts it: each such connection ends well before that.
    assert attack.counts.get("endless 431", 0) >= 1, attack.counts
    assert attack.endless_s and max(attack.endless_s) < 4.5, (sorted(attack.endless_s)[-5:],
                                                              attack.counts)
    # The household's step at 40 s puts the panel over its limit with the EV charging: the
    # controller must pause it within a few control periods despite the attack.
    before = [ln for ln in lines if 30 <= ln["t"] < 40]
    assert before and before[-1]["outputs"]["ev"] > 0, before[-1]
    after = [ln for ln in lines if ln["t"] >= 40 + 6]
    assert after and all(ln["panel_w"] <= 9600 and ln["outputs"]["ev"] == 0 for ln in after), [
        (ln["t"], ln["panel_w"], ln["outputs"]) for ln in lines[36:]]


def test_a_crowd_of_idle_connections_stalls_nothing_and_leaves_no_trace():
    # 40 clients connect at once and send nothing (more than the 6 slots and the listen
    # backlog: the rest wait in the network stack), twice; control runs on, every slot is
    # cut at its deadline or refused, and the page answers at once when they are gone.
    fw = WebFirmware({"seconds": 24, "steps": [[0, 1500]]})
    socks = []
    try:
        fw.wait_serving()
        fw.wait_t(3)
        for _ in range(2):
            for _ in range(40):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", fw.port))
                socks.append(s)
            time.sleep(7)
            for s in socks:
                s.close()
            socks = []
        code, _, text = get(fw.url("/api/status"), timeout=3)
        assert code == 200 and json.loads(text)["total_w"] > 0
        done = fw.finish()
    finally:
        for s in socks:
            s.close()
        fw.kill()
    _control_ok(fw.lines)
    _gaps_ok(done)
    last = fw.lines[-1]
    assert last["crashes"]["web"] == 0 and last["web"]["errors"] == 0, last
    print("web: %s; worst gap %d ms" % (last["web"], done["worst_ms"]))
    assert last["web"]["cut"] + last["web"]["refused"] >= 6, last


def test_make_sim_web_serves_the_page_and_refuses_a_bad_port(tmp_path):
    # `make sim WEB=PORT`: tools/run_sim.py --web PORT prints one line with the address and
    # serves the page and the API from the simulated controller while it runs.
    import subprocess
    import sys
    port = free_port()
    sim = subprocess.Popen([sys.executable, str(ROOT / "tools/run_sim.py"), "--web", str(port),
                            "--hours", "0.1", "--out", str(tmp_path / "out")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        out = []
        for line in sim.stdout:
            out.append(line)
            if line.startswith("web: "):
                break
        assert out[-1] == "web: http://127.0.0.1:%d/\n" % port, out
        code, ctype, page = get("http://127.0.0.1:%d/" % port)
        assert code == 200 and ctype.startswith("text/html") and 'id="total_w"' in page
        d = json.loads(get("http://127.0.0.1:%d/api/status" % port)[2])
        for key, typ in STATUS_KEYS:
            assert isinstance(d[key], typ), (key, d)
        assert d["limit_w"] == 7200, d
        rest, _ = sim.communicate(timeout=120)
    finally:
        if sim.poll() is None:
            sim.kill()
    assert sim.returncode == 0, "".join(out) + rest
    assert "".join(out + [rest]).count("web: http://") == 1
    bad = subprocess.run([sys.executable, str(ROOT / "tools/run_sim.py"), "--web", "http",
                          "--out", str(tmp_path / "bad")], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0, bad.stderr
    assert bad.stderr.startswith("error: --web needs a TCP port"), bad.stderr


def test_a_page_without_mqtt_joins_the_wifi():
    """Only the MQTT side started Wi-Fi: with the page on and MQTT off, a board never joined
    its network and no phone could reach the page. Now the page's entries bring Wi-Fi; with
    MQTT on, netsetup starts it once, as before."""
    code = r"""
import sys
from snippet import check, fails
from clock import Clock
class Network:
    STA_IF = 0
    def WLAN(self, iface):
        return object()
sys.modules['network'] = Network()
import app as app_mod
class Fake:
    web_entries = app_mod.App.web_entries
    def __init__(self, **cfg):
        self.cfg = {'web_port': 8080, 'web_password': '', 'mqtt_host': '', 'wifi_ssid': 'home',
                    'wifi_password': 'pw'}
        self.cfg.update(cfg)
        self.clock = Clock()
        self.logs = []
        self.log = self.logs.append
names = lambda a: [e.name for e in a.web_entries()]
check(names(Fake()) == ['web', 'wifi'], 'page alone: web and wifi %r' % names(Fake()))
check(names(Fake(mqtt_host='10.0.0.2')) == ['web'], 'with MQTT, netsetup joins it')
check(names(Fake(wifi_ssid='')) == ['web'], 'no SSID: nothing to join')
del sys.modules['network']
check(names(Fake()) == ['web'], 'a port whose network is simply there')
print('fails', len(fails))
"""
    out = run_mpy(code, heap="512k", extra_path=["tests", "lib"]).stdout
    assert "fails 0" in out, out
