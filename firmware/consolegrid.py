"""The grid console `grid` (docs/grid.md): the limits in force, reservations, emergencies and
the compliance log at the REPL; with the controller stopped it runs the MQTT link, the
reporter and the grid task itself until the grid answers a request."""

import consoleapp
from consoleapp import Mistake, guard


class GridConsole:
    """Grid capacity signals at the REPL (docs/grid.md): grid.show(), grid.reserve(start,
    duration_s, extra_w, max_fee_cents=0), grid.accept(id), grid.cancel(id),
    grid.emergency(share_pct, duration_s), grid.log(). With the controller stopped, a
    request is exchanged over MQTT right away (up to wait_s); running, the grid task sends it."""

    def _grid(self):
        app = consoleapp.get_app()
        g = app.get_grid()
        now = app.clock.ticks_ms()
        if not g.wall_known():
            unix_s = app.wall()
            if unix_s is not None:
                g.set_wall(unix_s, now)
        g.update(now)
        return app, g, now

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except ValueError as e:
            raise Mistake(str(e))

    @guard
    def show(self):
        """The limits in force, the schedule, subscription, reservations and answers."""
        app, g, now = self._grid()
        st = g.state(now)
        print("limit in force %s W, set by %s; sources %s" % (
            app.limits.effective_w(now), app.limits.strictest(), app.limits.in_force_w()))
        print("wall clock %s; import limit %s W / %s A from the %s (%d intervals, next "
              "change in %s s); export limit %s W" % (
                  g._show(g.mono_s(now)) if st["wall_clock"] else "unknown", st["import_limit_w"],
                  st["import_limit_a"], st["limit_from"], st["intervals"],
                  st["next_change_s"], st["export_limit_w"]))
        print("subscription %s W, now %s W; emergency %s W for %d s; %d awaiting an answer; "
              "%d notices awaiting the grid's ack (%d given up)" % (
                  st["subscription_w"], st["subscription_now_w"], st["emergency_w"],
                  st["emergency_s"], st["pending"], st["notices"], st["notices_lost"]))
        for r in g.reservations:
            print("  reservation %s: %s .. %s +%d W, fee %d cents" % (
                r[4], g._show(r[0]), g._show(r[1]), r[2], r[3]))
        for a in g.answers:
            print("  answer %s" % a)

    @guard
    def reserve(self, start, duration_s, extra_w, max_fee_cents=0, wait_s=15):
        """grid.reserve('2026-11-26T18:00:00Z', 4 * 3600, 3000): extra_w above the
        subscription for that window, if the grid grants it. start None: now."""
        app, g, now = self._grid()
        rid = self._call(g.reserve, start, duration_s, extra_w, now, max_fee_cents)
        return self._await(app, g, rid, wait_s)

    @guard
    def accept(self, rid, wait_s=15):
        """Asks again for a window answered with a fee, agreeing to pay that fee."""
        app, g, now = self._grid()
        return self._await(app, g, self._call(g.accept, rid, now), wait_s)

    @guard
    def cancel(self, rid):
        app, g, now = self._grid()
        self._call(g.cancel, rid, now)
        print("reservation %s cancelled" % rid)

    @guard
    def emergency(self, share_pct, duration_s=3600):
        """Holds demand at share_pct of the subscription (None: ends it), from now."""
        app, g, now = self._grid()
        w = self._call(g.emergency, share_pct, duration_s, now)
        print("emergency ended" if w is None else "emergency: %d W for %d s" % (w, duration_s))

    @guard
    def log(self):
        """The compliance log on flash, oldest first."""
        app, g, now = self._grid()
        n = 0
        for line in g.monitor.log.read():
            print(line)
            n += 1
        print("%d entries" % n)

    def _await(self, app, g, rid, wait_s):
        if consoleapp.running():
            print("request %s queued; the grid task sends it (grid.show() for the answer)" % rid)
            return rid
        if not app.cfg["mqtt_host"]:
            raise Mistake("no mqtt_host: a reservation request needs the grid's broker")
        import asyncio
        if getattr(app, "mqtt", None) is None:
            app.network_entries()
        if getattr(app, "grid_task", None) is None:
            import grid as grid_mod
            app.grid_task = grid_mod.GridTask(app, app.mqtt, app.cfg["mqtt_topic"],
                                              app.cfg["control_period_ms"])
        print("request %s: asking the grid (up to %d s)..." % (rid, wait_s))

        async def talk():
            tasks = [asyncio.create_task(app.mqtt.run()),
                     asyncio.create_task(app.reporter.run()),
                     asyncio.create_task(app.grid_task.run())]
            t0 = app.clock.ticks_ms()
            # the answer, then the grid's ack of what the site made of it (grid.notices)
            while (rid in g.pending or g.notices) and \
                    app.clock.ticks_diff(app.clock.ticks_ms(), t0) < wait_s * 1000:
                await asyncio.sleep_ms(100)
            await asyncio.sleep_ms(300)     # the event goes out too
            for t in tasks:
                t.cancel()
            app.mqtt.deinit()
        asyncio.run(talk())
        for a in g.answers:
            if a["id"] == rid:
                print("answer: %s" % a)
                return rid
        print("no answer yet; grid.show() later")
        return rid


grid = GridConsole()
