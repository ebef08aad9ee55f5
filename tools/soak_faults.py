"""The soak's fault schedule (tools/soak.py): what goes wrong and when, drawn from a seed so a
run can be repeated. Each entry is [simulated s, kind, on, arg], sorted by time; a fault that
lasts has an "on" entry and an "off" one. Placed as fractions of the run, so a short run
(tests/test_soak.py) meets every kind the month does.

kinds (who does it: tools/soak.py on the host, or tools/soak_sim.py in the simulation):
  broker_restart  mosquitto stopped for BROKER_DOWN_S, then started again (host)
  tarpit          the broker's port accepts and never answers (host, its proxy)
  wifi_drop       the WLAN loses its association and the path goes silent (both)
  reboot          a power cut at a random second
  reboot_saving   a power cut partway through writing config.json (arg: per mille written)
  welded          the water heater's contactor welds shut; repaired WELDED_S later
  ct_unplugged    the mains CT on L1 unplugged for CT_UNPLUGGED_S: its channel reads the bias
  ev_stale        the EV charger stops following the pilot (keeps drawing) for EV_STALE_S
  plant_no_relief (a planted bug, tests only) the shed controller's shed pass does nothing
"""

import random

NETWORK = ("broker_restart", "tarpit", "wifi_drop")     # faults that may cut telemetry
BROKER_DOWN_S = 60
TARPIT_S = 600
WIFI_DROP_S = 600
WELDED_S = 6 * 3600
CT_UNPLUGGED_S = 600
EV_STALE_S = 900
# "Flat": a firmware that kept 1 KB more each day would hold 30 KB more after a month, a
# quarter of its 128 KB; the hourly samples scatter by a few hundred bytes.
HEAP_SLOPE_LIMIT = 1024


def _span(out, t, kind, dur, arg=None):
    out.append([int(t), kind, True, arg])
    out.append([int(t + dur), kind, False, arg])


def schedule(hours, seed, restart_every_h=4):
    rng = random.Random(seed)
    run_s = hours * 3600
    short = hours < 24
    scale = min(1.0, hours / 24)       # a short run gets shorter faults, in proportion
    out = []
    busy = []                          # spans the broker restarts keep clear of

    def place(frac, kind, dur):
        t = run_s * frac
        dur = max(30, int(dur * scale))
        _span(out, t, kind, dur)
        busy.append((t - 900 * scale, t + dur + 900 * scale))

    place(0.30 + rng.uniform(-0.03, 0.03), "tarpit", TARPIT_S)
    place(0.45 + rng.uniform(-0.03, 0.03), "wifi_drop", WIFI_DROP_S)
    place(0.55 + rng.uniform(-0.03, 0.03), "welded", WELDED_S)
    place(0.68 + rng.uniform(-0.03, 0.03), "ct_unplugged", CT_UNPLUGGED_S)
    if short:
        t = run_s * 0.8     # the EV came home at midnight and charges for ~4 h
    else:
        day = int(hours / 24 * 0.8)
        t = day * 86400 + 18 * 3600 + rng.randrange(0, 3600)   # while it charges
    _span(out, t, "ev_stale", max(60, int(EV_STALE_S * scale)))
    busy.append((t, t + EV_STALE_S))
    reboots = sorted(rng.uniform(0.08, 0.95) * run_s for _ in range(3))
    saving = rng.randrange(3)
    for i, t in enumerate(reboots):
        if i == saving:
            out.append([int(t), "reboot_saving", True, rng.randrange(50, 950)])
        else:
            out.append([int(t), "reboot", True, None])
        busy.append((t - 900 * scale, t + 900 * scale))
    every = restart_every_h * 3600
    t = every * rng.uniform(0.5, 1.0)
    while t + BROKER_DOWN_S < run_s - 600:
        if not any(a <= t <= b or a <= t + BROKER_DOWN_S <= b for a, b in busy):
            _span(out, t, "broker_restart", BROKER_DOWN_S)
        t += every * rng.uniform(0.8, 1.2)
    out.sort(key=lambda e: (e[0], not e[2]))
    return out


def with_plant(sched, hours):
    """The schedule with the shed pass broken from a fifth of the run on (tests only)."""
    out = sched + [[int(hours * 3600 * 0.2), "plant_no_relief", True, None]]
    out.sort(key=lambda e: (e[0], not e[2]))
    return out
