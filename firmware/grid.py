"""Grid capacity signals in the running app: attach(app) builds the Grid (gridlimits.py)
from the settings, and GridTask runs it each control period: boundaries and expiries, the
wall clock (sntp.py when the board's clock does not know the time), compliance samples, and
what the Grid sends, through the MQTT link it is given. App.get_grid imports this on first
use, so none of the grid code is loaded before grid signals are configured or received."""

import asyncio
import json

from gridlimits import Grid
# What tests and tools take from grid: the grid signals' time formats (gridtime.py).
from gridtime import format_time, parse_duration, parse_time  # noqa: F401


def attach(app):
    """Builds app.grid (and app.grid_task when app has an MQTT link) from app's settings:
    App.get_grid calls it on first use, so none of this is loaded before."""
    import compliance
    cfg = app.cfg
    g = Grid(app.limits, app.clock, app.setpoint_w, cfg["grid_subscription_w"],
             cfg["grid_fallback_w"], cfg["grid_silence_s"], cfg["volts"])
    # Judged against the limit in force, in W and in mA on each leg (the meter's array).
    g.monitor = compliance.Monitor(
        compliance.Log(publish=lambda line: g.send("grid/log", line)), g.stamp, app.limits,
        app.sampler.leg_ma)
    g.soaker = getattr(app, "soaker", None)     # the envelope's export limit (export.py)
    g.update(app.clock.ticks_ms())
    app.grid = g
    if getattr(app, "mqtt", None) is not None:
        app.grid_task = GridTask(app, app.mqtt, cfg["mqtt_topic"], cfg["control_period_ms"])
        if app.supervisor is not None:
            # Built by a grid message while running: supervised from the next pass.
            app.supervisor.add(app.grid_entry())


class GridTask:
    """The grid signals' task, each control period: interval boundaries and expiries, the
    wall clock, one compliance sample, and what the Grid has to send (reservation requests,
    compliance log lines; the whole log when asked) through the MQTT link's bounded queue.
    app.get_grid() builds it with the Grid, so none of this is loaded until grid signals
    are configured or received."""

    def __init__(self, app, link, prefix, period_ms):
        self.app = app
        self.link = link
        self.prefix = prefix
        self.period_ms = period_ms
        self._wall_next = None
        self.heartbeat_ms = None
        self.ntp_port = 123
        self._ntp = None                  # an sntp.SntpClient, built by the first query

    async def _sntp(self):
        """Unix seconds from the SNTP server (sntp.py, loaded by the first query), or None:
        nothing is asked before the network is up."""
        host = self.app.cfg.get("ntp_host")
        if not host or not getattr(self.link, "connected", False):
            return None          # no network yet: try again next time
        if self._ntp is None:
            import sntp
            self._ntp = sntp.SntpClient(host, self.ntp_port)
        return await self._ntp.unix_s()

    async def run(self):
        app = self.app
        clock = app.clock
        while True:
            now = clock.ticks_ms()
            self.heartbeat_ms = now
            g = app.grid
            if g is not None:
                if self._wall_next is None or clock.ticks_diff(now, self._wall_next) >= 0:
                    # Until the wall clock is known, try each minute; then re-read it hourly.
                    unix_s = app.wall()
                    if unix_s is None:
                        unix_s = await self._sntp()
                    now = clock.ticks_ms()
                    if unix_s is not None:
                        try:
                            g.set_wall(unix_s, now)
                        except ValueError:   # a server's nonsense (before 2024): not taken
                            pass
                    self._wall_next = clock.ticks_add(now, 3600000 if g.wall_known() else 60000)
                g.update(now)
                c = app.controller
                s = app.sampler
                if app.control.steps:       # the controller has taken a limit
                    g.watch(now, bool(s.valid), s.total_w, c.limit_w, c.state == "overload",
                            c.limit_source)
                while g.outbox:
                    sub, payload = g.outbox.pop(0)
                    await self.link.send(self.prefix + "/" + sub, payload)
                if g.replay_wanted:
                    g.replay_wanted = False
                    await self._replay(g)
            await asyncio.sleep_ms(self.period_ms)

    async def _replay(self, g):
        # The whole log from flash, a few lines per message, each sent once the queue has room.
        topic = self.prefix + "/grid/compliance"
        chunk = []
        size = 0
        n = 0
        for line in g.monitor.log.read():
            chunk.append(line)
            size += len(line) + 1
            n += 1
            if size > 700:
                await self.link.send(topic, "\n".join(chunk))
                self.heartbeat_ms = self.app.clock.ticks_ms()
                chunk = []
                size = 0
        if chunk:
            await self.link.send(topic, "\n".join(chunk))
        await self.link.send(topic, json.dumps({"end": n}))
