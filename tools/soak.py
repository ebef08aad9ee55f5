#!/usr/bin/env python3
"""`make soak`: a month of the firmware on the 32-bit unix port (as `make sim` runs it, the
firmware compiled to .mpy and unchanged) against the simulated panel, on a shipped household
(tools/data/households), with faults injected on a seeded schedule (tools/soak_faults.py).
tools/soak_sim.py is the simulation side; this side runs the broker (a real mosquitto behind
a proxy that can go silent or become a tarpit), watches the telemetry as a subscriber, reads
the simulation's rows, and checks:

- no crash: the run ends, no exception, no watchdog reset, every boot has its config;
- the heap in use after gc.collect() flat: a least-squares line through the hourly samples
  from the end of the first day on (boot transients aside), its slope in bytes per day;
- every overload relieved within the response time when a controllable load was drawing;
- telemetry gaps only during outages (broker down, tarpit, Wi-Fi drop, power cuts);
- the compliance log complete: no failed write, every excursion the firmware measured logged.

Writes out/soak.json and out/soak.png; exits 1 when a check fails.
"""

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import run_sim  # noqa: E402
import soak_faults  # noqa: E402
from mqttbroker import Broker, free_port, wait_port  # noqa: E402
from mqttclient import Mqtt  # noqa: E402
from toolchain import MICROPYTHON  # noqa: E402

PROFILE = ROOT / "tools" / "data" / "households" / "ideal_house65_2018-02_1min.csv.gz"
MONTH = ["2018-02-%02d" % d for d in range(1, 29)]      # the file's days, replayed in turn
LIMIT_W = 7200
TELEMETRY_S = 10
# An overload with a controllable load drawing is relieved within: the EV's response delay
# (5 s, boards/simboard.py), one control period (1 s) and the measurement behind it (1 s).
RESPONSE_S = 7
WATER_DRAWS = run_sim._firmware()[2].PANEL["water_heater"]["draws"]    # boards/simboard.py
# A telemetry gap is an outage's when it lies within one: from the fault (less a report
# period) to its end plus the longest backoff of what has to come back and two report
# periods: the MQTT link's (60 s, net.py), or after a Wi-Fi drop the station's rejoin
# (120 s, wifi.py; the link connects as soon as it has joined). The first month run
# counted a Wi-Fi drop's recovery against the link's 60 s and failed by 9 s.
RECOVER_S = 60 + 2 * TELEMETRY_S
WIFI_RECOVER_S = 120 + 2 * TELEMETRY_S
GAP_S = 2 * TELEMETRY_S + 5         # a gap: no report for this long
SOAK_HEAP_EXTRA = 16 * 1024         # the soak's own driver and fault models, on top of make sim's


class Proxy:
    """The network path between the firmware and mosquitto, on its own port: 'pass'
    forwards both ways; 'silent' (a Wi-Fi drop) forwards nothing and accepts nothing new;
    'tarpit' drops what is connected and accepts new connections that never hear a byte."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.mode = "pass"
        self.port = free_port()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.conns = []
        self.lock = threading.Lock()
        self.stopped = False
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def set_mode(self, mode):
        with self.lock:
            self.mode = mode
            if mode == "tarpit":
                self._drop_all()

    def drop_all(self):
        with self.lock:
            self._drop_all()

    def _drop_all(self):
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass
        self.conns = []

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                continue
            self.accepted += 1
            with self.lock:
                mode = self.mode
                self.conns.append(conn)
            if mode == "silent":
                conn.close()        # no network: nothing answers (the firmware waits no Wi-Fi)
                continue
            if mode == "tarpit":
                continue            # held open, never a byte
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
            except OSError:
                conn.close()        # the broker is down: refused
                continue
            with self.lock:
                self.conns.append(up)
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.mode != "pass":
                    continue        # the path is gone (or a tarpit): bytes go nowhere
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        self.stopped = True
        self.lsock.close()
        self.drop_all()


class Watcher:
    """Subscribes to the firmware's diag (uptime_s in every report) on mosquitto directly."""

    def __init__(self, port, boots):
        self.port = port
        self.reports = []           # uptime_s of each report, in the order received
        self.client = None
        self.boots = boots          # the simulated s each boot began (filled as they come)
        self._boot = -1
        self.latest_t = -1          # the simulated s of the last report received
        self.lagged = []            # [t, last report's t] where catch_up gave up

    def catch_up(self, t, timeout=5.0):
        """Waits (real time, bounded) for the reports published up to simulated second t
        to arrive: at full speed a simulated minute is a few real ms, and what is still on
        its way when a fault cuts the path is lost with it."""
        t0 = time.monotonic()
        while self.latest_t < t and time.monotonic() - t0 < timeout:
            time.sleep(0.01)
        if self.latest_t < t:
            self.lagged.append([t, self.latest_t])

    def connect(self):
        for _ in range(50):
            try:
                self.client = Mqtt("127.0.0.1", self.port, "soak-watcher",
                                   on_message=self._on, keepalive_s=0)
                self.client.subscribe("panelcap/diag")
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the watcher cannot reach the broker")

    def _on(self, topic, payload):
        try:
            up = json.loads(payload)["uptime_s"]
        except (ValueError, KeyError):
            return
        if self.reports and up < self.reports[-1]:
            self._boot += 1
        elif not self.reports:
            self._boot = 0
        self.reports.append(up)
        if self._boot < len(self.boots):
            self.latest_t = self.boots[self._boot] + up

    def close(self):
        if self.client is not None:
            self.client.close()
            self.client = None


def own_build(dest, source="HEAD"):
    """(env, figures) for the soak's own build: firmware, board and simulator compiled into
    dest by tools/hostbuild.py's build(dest=...), soak_sim.py copied beside them, and a
    MICROPYPATH that reaches nothing else. A month's reboots load the firmware's modules
    again; from the shared build directory they came half from a rebuild another engineer
    made mid-run (BENCHMARKS.md, the first month run).

    source "HEAD" (or any commit): built from that commit's files (git archive into
    dest's sibling src/, with lib/ and the 32-bit port's tools linked from this tree), so
    the work tree's uncommitted edits, shared with other engineers, are not soaked either;
    "worktree": from the files as they are. Either way the figures record what was built."""
    dest = Path(dest).resolve()
    figures = {"source": source}
    root = ROOT
    if source != "worktree":
        rev = subprocess.run(["git", "rev-parse", "--verify", source + "^{commit}"], cwd=ROOT,
                             capture_output=True, text=True)
        if rev.returncode != 0:
            sys.exit("error: --source %s: not a commit here (%s); --source worktree builds "
                     "the files as they are" % (source, rev.stderr.strip()))
        figures["commit"] = rev.stdout.strip()[:12]
        root = dest.parent / "src"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", "--format=tar", figures["commit"]],
                                 cwd=ROOT, capture_output=True, check=True).stdout
        import io
        import tarfile
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(root)
        # lib/ (pinned, not in git), the 32-bit port and the venv: this tree's.
        shutil.copytree(ROOT / "lib", root / "lib", symlinks=True, dirs_exist_ok=True)
        (root / "build").mkdir(exist_ok=True)
        for rel in ("build/unix32", ".venv"):
            if (ROOT / rel).exists():
                (root / rel).symlink_to(ROOT / rel)
    else:
        figures["commit"] = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                                           capture_output=True, text=True).stdout.strip()
        figures["uncommitted"] = [l.strip() for l in subprocess.run(
            ["git", "status", "--porcelain", "--", "firmware", "boards", "tools/panelsim",
             "tools/soak_sim.py"],
            cwd=ROOT, capture_output=True, text=True).stdout.split("\n") if l.strip()]
    # hostbuild.build(dest=...) of that tree, in its own process (its ROOT is its file's).
    proc = subprocess.run([sys.executable, "-c",
                           "import sys; sys.path.insert(0, %r); import hostbuild as h; "
                           "b = h.build(dest=%r); print(h.micropypath(b)); "
                           "print(h.frozen_rom(b))" % (str(root / "tools"), str(dest))],
                          cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit("error: building the soak's firmware into %s failed: %s" % (
            dest, proc.stderr.strip()[-800:]))
    path, rom = proc.stdout.split("\n")[-3:-1]
    # From the same tree as the simulator it imports: the work tree's copy beside HEAD's
    # panelsim failed to import it when the two had moved apart.
    shutil.copyfile(root / "tools" / "soak_sim.py", dest / "soak_sim.py")
    env = dict(os.environ, MICROPYPATH=path, PANELCAP_FROZEN_ROM=str(Path(rom).resolve()))
    digest = hashlib.sha256()
    for f in sorted(dest.rglob("*.mpy")):
        digest.update(f.relative_to(dest).as_posix().encode() + b"\0" + f.read_bytes())
    figures["build"] = str(dest)
    figures["micropypath"] = path
    figures["mpy_sha256"] = digest.hexdigest()[:16]
    return env, figures


def in_build(path, build):
    """True if path (a module's __file__ as the firmware saw it) lies in build."""
    try:
        Path(path).resolve().relative_to(Path(build).resolve())
        return True
    except (ValueError, TypeError, OSError):
        return False


def link_events(log_path, what="mqtt:"):
    """[(simulated s, message)] of the firmware's log lines (stderr) that start with `what`
    (the MQTT link's by default: what the link said near a telemetry gap no outage explains),
    or, what None, that name a MemoryError anywhere."""
    found = []
    try:
        with open(log_path) as f:
            for line in f:
                t, sep, msg = line.partition(" s: ")
                if not sep or not t.isdigit():
                    continue
                if msg.startswith(what) if what else "MemoryError" in msg:
                    found.append((int(t), msg.strip()))
    except OSError:
        pass
    return found


def heap_slope(samples, boots, settle_s):
    """Bytes per day: one least-squares slope through the samples of every boot, each boot
    with its own intercept (a power cut empties the board's RAM, so drift lives within a
    boot); samples in the first settle_s after a boot are left out (start-up transients)."""
    segments = {}
    for t, b in samples:
        i = sum(1 for s in boots if s <= t) - 1
        if t - boots[i] >= settle_s:
            segments.setdefault(i, []).append((t / 86400, b))
    sxy = sxx = 0.0
    used = []
    for pts in segments.values():
        if len(pts) < 2:
            continue
        mx = sum(x for x, _ in pts) / len(pts)
        my = sum(y for _, y in pts) / len(pts)
        sxy += sum((x - mx) * (y - my) for x, y in pts)
        sxx += sum((x - mx) ** 2 for x, _ in pts)
        used += pts
    return (sxy / sxx if sxx else 0.0), used


class Analysis:
    """Streams the rows (one per simulated second) into the figures the checks need."""

    def __init__(self, limit_w):
        self.limit_w = limit_w
        self.rows = 0
        self.run_ctl = 0                 # seconds over the limit with a controllable load on
        self.longest_ctl = 0
        self.slow_reliefs = []           # [start_s, seconds] over RESPONSE_S
        self.over_s = 0
        self.longest_over = 0
        self.run_over = 0
        self.view_run = 0                # the firmware's own view: measured above its limit
        self.view_excursions = 0
        self.view_cut = 0                # ... cut short by a power cut or the run's end
        self.plot = []                   # per 10 min: t, max panel, limit, max wh+ev
        self._bucket = None

    def row(self, f):
        t, panel_w, limit_w, meas_w, wh_w, ev_w, wh_ok, ev_ok, valid, conn = f
        self.rows += 1
        over = panel_w > self.limit_w
        ctl = (wh_w > 0 and wh_ok) or (ev_w > 0 and ev_ok)
        if over:
            self.over_s += 1
            self.run_over += 1
            self.longest_over = max(self.longest_over, self.run_over)
        else:
            self.run_over = 0
        if over and ctl:
            self.run_ctl += 1
            if self.run_ctl > self.longest_ctl:
                self.longest_ctl = self.run_ctl
            if self.run_ctl == RESPONSE_S + 1:
                self.slow_reliefs.append([t - RESPONSE_S, 0])
            if self.run_ctl > RESPONSE_S:
                self.slow_reliefs[-1][1] = self.run_ctl
        else:
            self.run_ctl = 0
        if valid and limit_w and meas_w > limit_w:
            self.view_run += 1
        else:
            if self.view_run >= 3:
                self.view_excursions += 1
            self.view_run = 0
        k = t // 600
        if self._bucket is None or self._bucket[0] != k:
            if self._bucket is not None:
                self.plot.append(self._bucket[1:])
            self._bucket = [k, t, panel_w, limit_w, wh_w + ev_w]
        else:
            b = self._bucket
            b[2] = max(b[2], panel_w)
            b[4] = max(b[4], wh_w + ev_w)

    def cut(self):
        """A power cut: an excursion in progress is never logged (the log writes one at its
        end), so it is counted apart."""
        if self.view_run >= 3:
            self.view_cut += 1
        self.view_run = 0

    def end(self):
        if self._bucket is not None:
            self.plot.append(self._bucket[1:])
        self.cut()


def telemetry_gaps(reports, boots, outages):
    """Gaps between consecutive reports (simulated s: the boot's start + uptime_s), and
    those no outage explains."""
    times = []
    boot_i = -1
    last = None
    for up in reports:
        if last is None or up < last:
            boot_i += 1
        last = up
        if boot_i < len(boots):
            times.append(boots[boot_i] + up)
    gaps, unexplained = [], []
    for a, b in zip(times, times[1:]):
        if b - a > GAP_S:
            gaps.append([a, b])
            # (the reports in flight when a connection dies die with it: QoS 0)
            if not any(o[0] - GAP_S <= a and b <= o[1] + (o[2] if len(o) > 2 else RECOVER_S)
                       for o in outages):
                unexplained.append([a, b])
    return times, gaps, unexplained


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--hours", type=float, help="simulated hours instead of --days")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--source", default="HEAD",
                    help="what firmware to soak: a commit (default %(default)s: the committed "
                         "files, not the shared work tree's edits) or 'worktree'")
    ap.add_argument("--out", default="out")
    ap.add_argument("--pace", type=float, default=50,
                    help="simulated s per real s while the MQTT link is down (real sockets)")
    ap.add_argument("--restart-every-h", type=float, default=4)
    ap.add_argument("--start-ms", type=int, default=(1 << 30) - 90_000,
                    help="the ticks at the start (2**30 wraps: 90 s after the start, then "
                         "every 12.4 days)")
    ap.add_argument("--start-h", type=int, default=0,
                    help="the hour of the first day the run starts at (the house's time)")
    ap.add_argument("--limit-w", type=int, default=LIMIT_W, help="the installer's setpoint")
    ap.add_argument("--firmware-kb", type=int, default=run_sim.FIRMWARE_HEAP // 1024,
                    help="heap for the firmware, KB (default: the ESP32's %(default)s)")
    ap.add_argument("--heap-every-s", type=int, default=3600,
                    help="simulated s between heap samples (gc.collect(), gc.mem_alloc())")
    ap.add_argument("--heap-slope-limit", type=float, default=soak_faults.HEAP_SLOPE_LIMIT,
                    help="bytes per day the heap in use may drift (default %(default)s)")
    ap.add_argument("--plant", choices=("leak", "no_relief"), action="append", default=[],
                    help="plant a bug to watch the checks fail (tests/test_soak.py); "
                         "leak: 2 KB kept every simulated hour; no_relief: the shed "
                         "controller's shed pass does nothing from a fifth of the run on")
    args = ap.parse_args(argv)
    hours = args.hours if args.hours is not None else args.days * 24
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "soak_work"                     # the board's flash: config, wear, the log
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    schedule = soak_faults.schedule(hours, args.seed, args.restart_every_h)
    if "no_relief" in args.plant:
        schedule = soak_faults.with_plant(schedule, hours)
    schedule_path = work / "schedule.jsonl"
    schedule_path.write_text("".join(json.dumps(e) + "\n" for e in schedule))
    cfg = {"limit_w": args.limit_w, "mqtt_host": "127.0.0.1", "mqtt_port": 0, "wifi_ssid": "soak",
           "ntp_host": "", "telemetry_period_ms": TELEMETRY_S * 1000,
           "grid_fallback_w": args.limit_w}
    build_dir = work / "build"
    env, firmware = own_build(build_dir, args.source)
    days_path = work / "household_days.bin"      # the month read once (soak_sim.prepare)
    prep = subprocess.run([str(MICROPYTHON), "-X", "heapsize=2m", "-c",
                           "import soak_sim; soak_sim.prepare(%r, %r, %r)" % (
                               str(PROFILE), MONTH, str(days_path))],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if prep.returncode != 0:
        sys.exit("error: reading %s failed: %s" % (PROFILE.name, prep.stderr.strip()[-500:]))
    sim_kb = (run_sim.simulator_footprint(env) + SOAK_HEAP_EXTRA + 1023) // 1024
    heap = args.firmware_kb + sim_kb
    t_real0 = time.monotonic()
    broker = Broker(work).start()
    proxy = Proxy(broker.port)
    boots = []
    watcher = Watcher(broker.port, boots)
    watcher.connect()
    cfg["mqtt_port"] = proxy.port
    opts = {"days_path": str(days_path.resolve()), "dates": MONTH, "hours": hours, "start_ms": args.start_ms,
            "cfg": cfg, "cfg_saved": dict(cfg, stagger_s=20),
            "schedule_path": str(schedule_path.resolve()),
            "pace": args.pace, "heap_every_s": args.heap_every_s, "start_s": args.start_h * 3600,
            # the EV comes and goes daily (soak_sim.py); the hot water draws at house hours
            "panel": [["ev.arrive_h", None], ["water_heater.draws", [
                [(h - args.start_h) % 24, litres] for h, litres in WATER_DRAWS]]],
            "ev": {"arrive_s": 17 * 3600 + 1800, "leave_s": 7 * 3600 + 1800,
                   "need_wh": 30000},
            # the planted leak: 2 KB a simulated hour (49 KB a day), kept at each sample
            "plant_leak": 2048 * args.heap_every_s // 3600 if "leak" in args.plant else 0}
    cmd = [str(MICROPYTHON), "-X", "heapsize=%dk" % heap, "-c",
           "import soak_sim; soak_sim.main(%r)" % json.dumps(opts)]
    print("panelcap soak: %g simulated days on %s (%s..), limit %d W, seed %d, heap %d KB "
          "(%d KB firmware + %d KB simulator and soak driver), firmware built into %s" % (
              hours / 24, PROFILE.name, MONTH[0], args.limit_w, args.seed, heap,
              args.firmware_kb, sim_kb, firmware["build"]), flush=True)
    an = Analysis(args.limit_w)
    heap_samples, events, crashes, log_lines = [], [], [], {}
    log_failed = 0
    outages = []            # [start_s, end_s(, recovery s)] of what may cut telemetry
    open_faults = {}
    done = None
    foreign = []            # [t, path]: a boot that loaded its firmware from outside build_dir
    answers = {}            # keepalive answers the run was paced for (soak_sim.ANSWER_S)
    log_path = out / "soak.log"
    with open(log_path, "w") as errlog:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=errlog, text=True, bufsize=1)
        try:
            next_day = 86400
            for line in proc.stdout:
                if not line.startswith("#"):
                    an.row([int(x) for x in line.split(",")])
                    if an.rows % 86400 == 0 and an.rows // 86400 * 86400 >= next_day:
                        next_day += 86400
                        slope_so_far, _ = heap_slope(heap_samples, boots or [0], 3600)
                        print("soak: day %d/%g, %.0f s real, heap in use %s B, slope so far "
                              "%+.0f B/day, longest controllable excursion %d s, faults %d" % (
                                  an.rows // 86400, hours / 24, time.monotonic() - t_real0,
                                  heap_samples[-1][1] if heap_samples else "?", slope_so_far,
                                  an.longest_ctl, sum(1 for e in events if e.get("on"))),
                              flush=True)
                    continue
                ev = json.loads(line[1:])
                if "heap" in ev:
                    heap_samples.append((ev["t"], ev["heap"]))
                elif "log" in ev:
                    log_lines[ev["log"]] = 1
                elif "log_counts" in ev:
                    log_failed = max(log_failed, ev["log_counts"]["failed"])
                elif "boot" in ev:
                    boots.append(ev["t"])
                    events.append(ev)
                    if not in_build(ev.get("firmware"), build_dir):
                        foreign.append([ev["t"], ev.get("firmware")])
                    if ev["boot"] > 1:
                        outages.append([ev["t"], ev["t"]])
                elif "fault" in ev:
                    events.append(ev)
                    kind = ev["fault"]
                    if kind in ("reboot", "reboot_saving"):
                        outages.append([ev["t"], ev["t"]])
                    elif kind in soak_faults.NETWORK:
                        if ev["on"]:
                            open_faults[kind] = ev["t"]
                        else:
                            outages.append([open_faults.pop(kind), ev["t"],
                                            WIFI_RECOVER_S if kind == "wifi_drop" else RECOVER_S])
                elif "host" in ev:
                    kind, on = ev["host"], ev["on"]
                    if on:
                        # (cut_power, before a reboot: only this wait, for what is in flight)
                        watcher.catch_up(ev["t"] - TELEMETRY_S)
                    if kind == "broker_restart":
                        if on:
                            watcher.close()
                            proxy.drop_all()
                            broker.stop()
                        else:
                            broker.start()
                            watcher.connect()
                    elif kind == "tarpit":
                        proxy.set_mode("tarpit" if on else "pass")
                    elif kind == "net_silent":
                        proxy.set_mode("silent" if on else "pass")
                    proc.stdin.write("ok\n")
                    proc.stdin.flush()
                elif "crash" in ev or "watchdog" in ev:
                    crashes.append(ev)
                elif "power_cut" in ev:
                    events.append(ev)
                    an.cut()
                elif "answers" in ev:
                    answers = ev["answers"]
                elif "done" in ev:
                    done = ev
                    answers = {"slow": ev["slow_answers"], "longest_ms": ev["longest_answer_ms"]}
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            watcher.close()
            proxy.close()
            broker.stop()
    an.end()
    wall_s = time.monotonic() - t_real0
    for kind, start in open_faults.items():
        outages.append([start, an.rows])
    if rc != 0 and not crashes:
        crashes.append({"exit": rc, "stderr": log_path.read_text()[-1500:]})
    if done is None and not crashes:
        crashes.append({"exit": rc, "why": "the run did not reach its end"})
    # Heap: the samples after gc.collect(), an hour after each boot on (a short run: an
    # eighth of it), fitted within boots.
    slope, fit = heap_slope(heap_samples, boots or [0], min(3600, hours * 3600 / 8))
    heap_ok = len(fit) >= 3 and abs(slope) <= args.heap_slope_limit
    weeks = {}
    for t, b in heap_samples:
        weeks.setdefault("week %d" % (t // (7 * 86400) + 1), []).append(b)
    times, gaps, unexplained = telemetry_gaps(watcher.reports, boots, outages)
    entries = [json.loads(l) for l in log_lines]
    logged = [e for e in entries if e.get("k") == "excursion"]
    logged_3s = [e for e in logged if e.get("dur_s", 0) >= 3]
    log_ok = log_failed == 0 and len(logged) >= an.view_excursions and \
        len(logged_3s) <= len(logged) and bool(entries)
    relief_ok = an.longest_ctl <= RESPONSE_S
    telemetry_ok = bool(times) and not unexplained
    configs_ok = all(e.get("safe_reason") is None for e in events if "boot" in e)
    link_log = link_events(log_path)
    # A MemoryError the firmware survived (a report skipped, a task restarted) is no crash,
    # but it is the firmware out of heap in its budget (--firmware-kb): it fails the soak.
    memory_errors = link_events(log_path, None)
    explained = [[a, b, [m for t, m in link_log if a - GAP_S <= t <= b]] for a, b in unexplained]
    checks = {"no_crash": not crashes and configs_ok, "own_build": bool(boots) and not foreign,
              "no_memory_error": not memory_errors,
              "heap_flat": heap_ok,
              "overloads_relieved": relief_ok, "telemetry_gaps_only_in_outages": telemetry_ok,
              "compliance_log_complete": log_ok}
    wraps = (args.start_ms + an.rows * 1000) // (1 << 30) - args.start_ms // (1 << 30)
    faults = [e for e in events if "fault" in e and e.get("on", True)]
    result = {
        "passed": all(checks.values()),
        "checks": checks,
        "days": round(an.rows / 86400, 3),
        "wall_s": round(wall_s, 1),
        "seed": args.seed,
        "profile": PROFILE.name,
        "limit_w": args.limit_w,
        "faults_injected": len(faults),
        "faults_by_kind": {k: sum(1 for e in faults if e["fault"] == k)
                           for k in sorted({e["fault"] for e in faults})},
        "tick_wraps_crossed": wraps,
        "boots": len(boots),
        # [simulated s, reset cause, heap the simulator held as the firmware booted (B)]: a
        # reboot clears the board's RAM, so the last figure must not grow boot by boot
        "boots_detail": [[e["t"], e.get("cause"), e.get("sim_alloc")]
                         for e in events if "boot" in e][:20],
        "crashes": len(crashes),
        "crash_details": crashes,
        "memory_errors": len(memory_errors),
        "memory_error_lines": memory_errors[:10],
        "firmware_kb": args.firmware_kb,
        "heap_slope_bytes_per_day": round(slope, 1),
        "heap_slope_limit_bytes_per_day": args.heap_slope_limit,
        "heap_mean_by_week_bytes": {w: round(sum(v) / len(v)) for w, v in weeks.items()},
        "heap_in_use_bytes": {"min": min((b for _, b in fit), default=None),
                              "max": max((b for _, b in fit), default=None),
                              "samples": len(fit)},
        "longest_controllable_excursion_s": an.longest_ctl,
        "response_s": RESPONSE_S,
        "slow_reliefs": an.slow_reliefs[:20],
        "seconds_over_limit": an.over_s,
        "longest_excursion_s": an.longest_over,
        "telemetry_reports": len(times),
        "telemetry_gaps": len(gaps),
        "telemetry_gaps_unexplained": explained[:20],
        "keepalive_answers_paced": answers.get("slow"),
        "keepalive_longest_answer_ms": answers.get("longest_ms"),
        "firmware": dict(firmware, boots_from_elsewhere=foreign[:5]),
        "watcher_lagged": watcher.lagged[:20],
        "outages": len(outages),
        "compliance_log": {"lines": len(entries), "excursions_logged": len(logged),
                           "excursions_measured": an.view_excursions,
                           "excursions_cut_by_power_or_end": an.view_cut,
                           "failed_writes": log_failed},
        "plant": args.plant,
    }
    with open(out / "soak.json", "w") as f:
        json.dump(result, f, indent=1)
    plot(out / "soak.png", an.plot, heap_samples, events, args.limit_w)
    print("soak: %s after %.2f simulated days in %.0f s real" % (
        "PASSED" if result["passed"] else "FAILED", result["days"], wall_s))
    for name, ok in checks.items():
        print("  %-32s %s" % (name, "ok" if ok else "FAILED"))
    print("  faults injected %d %s, tick wraps crossed %d, boots %d, crashes %d" % (
        result["faults_injected"], result["faults_by_kind"], wraps, len(boots), len(crashes)))
    print("  heap slope %+.1f B/day (limit %d), longest controllable excursion %d s (limit %d), "
          "telemetry gaps %d (%d outside outages), compliance log %d lines" % (
              slope, args.heap_slope_limit, an.longest_ctl, RESPONSE_S, len(gaps),
              len(unexplained), len(entries)))
    for t, msg in memory_errors[:3]:
        print("  at %d s, with %d KB for the firmware: %s" % (t, args.firmware_kb, msg))
    for a, b, said in explained[:5]:
        print("  gap %d..%d s outside outages; the link said: %s" % (a, b, "; ".join(said) or
                                                                     "nothing"))
    print("  keepalive answers paced %s (longest wait %s ms simulated); firmware from %s"
          " (commit %s%s)" % (answers.get("slow"), answers.get("longest_ms"), firmware["build"],
                              firmware.get("commit"),
                              ", uncommitted: " + " ".join(firmware["uncommitted"])
                              if firmware.get("uncommitted") else ""))
    print("wrote %s, %s" % (out / "soak.json", out / "soak.png"))
    return 0 if result["passed"] else 1


def plot(path, rows, heap, events, limit_w):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("soak: matplotlib missing, no plot")
        return
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
    days = [r[0] / 86400 for r in rows]
    a1.plot(days, [r[1] for r in rows], lw=0.5, label="panel, max per 10 min (W)")
    a1.plot(days, [r[3] for r in rows], lw=0.5, label="water heater + EV, max (W)")
    a1.axhline(limit_w, color="r", lw=0.8, label="limit")
    for e in events:
        if "fault" in e and e.get("on", True):
            a1.axvline(e["t"] / 86400, color="k", alpha=0.25, lw=0.6)
    a1.legend(loc="upper right", fontsize=7)
    a1.set_ylabel("W")
    a2.plot([t / 86400 for t, _ in heap], [b / 1024 for _, b in heap], ".", ms=2)
    a2.set_ylabel("heap in use after gc (KB)")
    a2.set_xlabel("simulated day (grey lines: faults)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
