#!/usr/bin/env python3
"""The status page's heap cost (issue 18): tools/heapfit.py's bisection of the smallest heap
the firmware needs (32-bit port, .mpy as make sim runs it), run with web_port set while a
"phone" on this host's loopback loads the page as a browser does (/api/status every 0.5 s,
/ and /api/history every 5 s), against the same scenario without the page.

    .venv/bin/python tools/webheapfit.py plain|mqtt|all|devices [--hours H] [--lo KB] [--hi KB]

Prints `firmware_heap_kb_<scenario>: N` and `firmware_heap_kb_<scenario>_web: N`, the
requests the phone had answered, and the heap in use per hour of each passing run.
"""
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import heapfit  # noqa: E402
from mqttbroker import free_port  # noqa: E402


class WebScenario(heapfit.Scenario):
    def __init__(self, name, hours, web_port, rom=False):
        super().__init__(name, hours, rom)
        self.web_port = web_port

    def sim_args(self, port):
        return super().sim_args(port) + ["--cfg", "web_port=%d" % self.web_port]


class Phone:
    """Loads the page while the runs go on (a run that is not serving just refuses)."""

    def __init__(self, port):
        self.port = port
        self.answered = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _get(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path),
                                        timeout=5) as r:
                r.read()
                self.answered += 1
        except OSError:
            time.sleep(0.05)

    def _run(self):
        n = 0
        while not self._stop:
            if n % 10 == 0:
                self._get("/")
                self._get("/api/history")
            self._get("/api/status")
            n += 1
            time.sleep(0.5)

    def stop(self):
        self._stop = True
        self._thread.join(10)


def main(argv=None):
    args = heapfit.parse_args(argv, __doc__.split("\n\n")[0],
                              "the firmware's code and microdot in the romfs partition, as "
                              "make deploy installs them on boards/PANELCAP_ESP32 (default: "
                              ".mpy)")
    hours = args.hours
    log = lambda m: print(m, file=sys.stderr, flush=True)     # noqa: E731
    kb, per_hour = heapfit.bisect(heapfit.Scenario(args.scenario, hours, args.rom), args.lo,
                                  args.hi, log=log)
    port = free_port()
    phone = Phone(port)
    try:
        kb_web, per_hour_web = heapfit.bisect(WebScenario(args.scenario, hours, port,
                                                          args.rom), args.lo, args.hi, log=log)
    finally:
        phone.stop()
    rom = "_rom" if args.rom else ""
    print("firmware_heap_kb_%s%s: %d" % (args.scenario, rom, kb))
    print("firmware_heap_kb_%s%s_web: %d (the phone had %d requests answered)" % (
        args.scenario, rom, kb_web, phone.answered))
    print("heap in use per hour without the page (B): %s" % [b for _, b in per_hour])
    print("heap in use per hour with the page (B): %s" % [b for _, b in per_hour_web])


if __name__ == "__main__":
    main()
