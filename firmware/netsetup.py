"""Builds the network side once at start: Wi-Fi (wifi.py, where the port has a `network`
module), the MQTT link (net.py), the reporter (telemetry.py) and command handling, loaded
with the first command. The app imports this module for setup() and drops it after: the
building code is not in RAM while the firmware runs."""

import net
import supervisor as supervisor_mod
import telemetry


def check_prefix(prefix):
    """Raise ValueError unless prefix is a usable MQTT topic prefix."""
    if not isinstance(prefix, str) or not 1 <= len(prefix) <= 64 or prefix[0] == "/" or \
            prefix[-1] == "/" or "+" in prefix or "#" in prefix or "//" in prefix:
        raise ValueError("mqtt_topic must be 1..64 characters, no + or #, no leading, "
                         "trailing or double /, got %r" % (prefix,))
    for ch in prefix:
        if ord(ch) < 0x21 or ord(ch) > 0x7E:
            raise ValueError("mqtt_topic must be printable ASCII, got %r" % (prefix,))


def node_id(prefix):
    out = []
    for ch in prefix:
        out.append(ch if ("a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9") else "_")
    return "".join(out)


def setup(app, net_clock=None, network=None, log=None):
    """setup_tasks(), except that a bad network setting is logged and leaves the firmware
    running without reporting: control never depends on it."""
    try:
        return setup_tasks(app, net_clock, network, log)
    except Exception as e:  # e.g. an unusable topic prefix: report it, run without MQTT
        (log or app.log)("mqtt: not started: %s" % e)
        return []


def setup_tasks(app, net_clock=None, network=None, log=None):
    """Builds the network side for `app` from its settings: Wi-Fi (on a port with a
    `network` module and an SSID), the MQTT link, command handling and the reporter.
    Returns the supervisor entries; none of them is critical, so no network trouble can
    starve the watchdog."""
    cfg = app.cfg
    clock = app.clock
    net_clock = net_clock or getattr(app, "net_clock", None) or clock
    log = log or app.log
    prefix = cfg["mqtt_topic"]
    check_prefix(prefix)
    entries = []
    wifi = None
    if network is not None or cfg["wifi_ssid"]:
        import wifi as wifi_mod
        wifi = wifi_mod.build(cfg, net_clock, log, network)
        if wifi is not None:
            entries.append(supervisor_mod.Supervised("wifi", supervisor_mod.task(wifi), 60000,
                                                     critical=False))
    client_id = "panelcap-" + "".join("%02x" % b for b in app.hw.unique_id())
    link = net.MqttLink(client_id, cfg["mqtt_host"], cfg["mqtt_port"], net_clock,
                        user=cfg["mqtt_user"], password=cfg["mqtt_password"],
                        tls=cfg["mqtt_tls"] in ("on", True, 1), ca_file=cfg["mqtt_ca_file"],
                        status_topic=prefix + "/status", subscribe_topic=prefix + "/cmd/#",
                        wifi=wifi, log=log)
    link.events(prefix + "/event")   # command answers: readings never take their room
    # The override gates (and loadgate.py) wait with commands.py for the first command; the
    # actuators run unwrapped until then. No function is defined here: one that outlived
    # setup would keep this module's code in RAM (supervisor.task makes the restarts).
    cmds = telemetry.LazyCommands(app)
    reporter = telemetry.Reporter(app, link, cmds, clock, cfg["telemetry_period_ms"], prefix,
                                  node_id(prefix), cfg["mqtt_discovery"])
    cmds.reporter = reporter
    app.mqtt = link
    app.reporter = reporter
    # After a crash the link drops its old socket and starts clean.
    entries.append(supervisor_mod.Supervised("mqtt", supervisor_mod.task(link, link._close),
                                             60000, critical=False))
    entries.append(supervisor_mod.Supervised("report", supervisor_mod.task(reporter),
                                             cfg["telemetry_period_ms"] + 60000, critical=False))
    # panelcap as a device of the open profile (docs/profile.md): opt-in, for its ~5 KB of
    # heap. (Its readings once crowded command events out of the link's queue; events now
    # have room readings cannot take: net.Outbox.)
    if cfg.get("profile_device") == "on":
        import devprofile
        dev = devprofile.Device(app, link, net_clock, node_id(prefix),
                                max(1000, cfg["telemetry_period_ms"]), prefix + "/status")
        app.profile = dev
        log("profile: sensor %s actuator %s" % (dev.sensor_id, dev.actuator_id))
        entries.append(supervisor_mod.Supervised("profile", supervisor_mod.task(dev), 60000,
                                                 critical=False))
        dev = None
    if cfg.get("mains_meter"):
        # A mains meter beside the CTs, cross-checked each control step (mainscheck.py).
        import mainscheck
        dialect = __import__("mains_" + cfg.get("mains_meter_dialect", "profile"))
        chk = mainscheck.MainsCheck(app.limits, clock, dialect, cfg["mains_meter"],
                                    cfg["mains_meter_s"] * 1000, cfg["mains_tolerance_w"], log)
        chk.attach(link)
        app.control.sources.append(chk)
        app.mains_check = chk
        if cfg.get("mains_source") == "meter":
            # The meter instead of the CTs, under a stricter limit (mainsource.py).
            import limits
            import mainsource
            app.control.panel = mainsource.MeterMeasurement(chk, clock, limits.legs(cfg["system"]),
                                                            cfg["volts"])
            pct = mainsource.margin_pct(cfg["mains_meter_s"])
            app.limits.set(mainsource.SOURCE, w=app.setpoint_w * (100 - pct) // 100)
            log("mains: the meter is the panel's source, limit %d %% lower" % pct)
        entries.append(supervisor_mod.Supervised("mains", supervisor_mod.task(chk), 60000,
                                                 critical=False))
        chk = dialect = None
    if cfg.get("grid_subscription_w") or cfg.get("grid_fallback_w") or \
            (cfg.get("demand_window_min") and app.wall() is None):
        # Grid signals configured, or a demand window with no RTC time: grid.py and its task
        # from the start (the task keeps the wall clock by SNTP).
        app.get_grid()
        entries.append(app.grid_entry())
    return entries
