"""The configuration as data: one schema table (type, range, unit, help), validate() with
readable errors, and flash persistence (temporary file renamed over the old one, a schema
version with migrations, field-by-field fallback on load). Pure: no machine, no network."""
# Over 500 lines because most of it is the schema (TOP, CT, LOAD: a row per setting with
# its range, unit and help); the code is validate(), parse() and load() over it.

import json

import limits
import loadkind
from loadkind import KIND_MODULATED, KIND_NEVER, KIND_ONOFF

VERSION = 2                 # schema version written into every saved file
FILE = "config.json"

# Keys that set the panel limit (NEC 750.30(C)(3) asks for them to be protected): they change
# only at the REPL with a confirmation, never remotely, and a bad one on flash means safe mode.
PROTECTED = ("panel_rating_a", "limit_w", "system", "volts", "duty_mode")

LEGS = limits.LEGS
SYSTEMS = limits.SYSTEMS
KINDS = loadkind.KIND_NAMES

# One row per setting: key, type, low, high, unit, default, help. For "str" low..high is the
# length; for "enum" low is the tuple of choices. Secrets are never printed back.
TOP = (
    ("panel_rating_a", "int", 15, 2000, "A", 100,
     "main breaker or service rating, per leg (from the panel label)"),
    ("limit_w", "int", 0, 960000, "W", 0,
     "installer setpoint; 0 means 80 % of the rating (NEC 220.70), never above it"),
    ("system", "enum", SYSTEMS, None, "", "split",
     "split: 120/240 V, two legs L1 L2; single: one leg (L1), e.g. 230 V"),
    ("volts", "int", 100, 277, "V", 120, "nominal leg voltage, line to neutral"),
    ("band_pct", "int", 1, 50, "%", 5, "loads come back this far below the setpoint"),
    ("v_gain", "float", 0.5, 2.0, "", 1.0, "voltage calibration factor (cal.voltage)"),
    ("sample_period_ms", "int", 200, 10000, "ms", 1000, "one measurement window per period"),
    ("control_period_ms", "int", 200, 10000, "ms", 1000, "one shed decision per period"),
    ("window_cycles", "int", 1, 20, "cycles", 4, "mains cycles per measurement window"),
    ("stale_ms", "int", 1000, 60000, "ms", 5000,
     "an older measurement counts as invalid and sheds everything"),
    ("supervisor_period_ms", "int", 100, 2000, "ms", 500, "supervisor and watchdog pass"),
    ("stagger_s", "int", 0, 600, "s", 15,
     "after boot or a metering outage, loads come back this far apart"),
    ("maintenance_min", "int", 1, 240, "min", 30,
     "after Ctrl-C the board restarts the controller this long later if left stopped"),
    ("wifi_ssid", "str", 0, 32, "", "", "Wi-Fi network name; empty: no network"),
    ("wifi_password", "secret", 0, 64, "", "", "Wi-Fi password"),
    ("mqtt_host", "str", 0, 64, "", "", "broker address; empty: no telemetry"),
    ("mqtt_port", "int", 1, 65535, "", 1883, "broker TCP port"),
    ("mqtt_topic", "str", 1, 64, "", "panelcap", "topic prefix for telemetry"),
    ("mqtt_user", "str", 0, 32, "", "", "broker user name; empty: anonymous"),
    ("mqtt_password", "secret", 0, 64, "", "", "broker password"),
    # MQTT reporting (net.py, telemetry.py, commands.py; topics in docs/mqtt.md).
    ("mqtt_tls", "enum", ("off", "on"), None, "", "off", "on: TLS to the broker (port 8883)"),
    ("mqtt_ca_file", "str", 0, 64, "", "",
     "CA certificate file that verifies the broker under TLS; empty: not verified"),
    ("mqtt_discovery", "str", 0, 32, "", "homeassistant",
     "Home Assistant discovery prefix; empty: no discovery messages"),
    ("telemetry_period_ms", "int", 1000, 3600000, "ms", 10000,
     "one state and one diag message per period"),
    # A mains meter beside the CTs (mainscheck.py; docs/profile.md): empty, not imported.
    ("mains_meter", "str", 0, 64, "", "",
     "a device-profile sensor on the mains (pcp/<id>/reading) cross-checked with the CTs"),
    ("mains_meter_s", "int", 1, 3600, "s", 10, "mains meter: its interval_s"),
    ("mains_meter_dialect", "enum", ("profile", "p1", "shelly", "tasmota"), None, "", "profile",
     "mains meter: what it speaks (mains_<dialect>.py, imported only then)"),
    ("mains_tolerance_w", "int", 50, 100000, "W", 500,
     "mains meter: a larger disagreement 3 readings in a row: every load shed"),
    ("mains_source", "enum", ("ct", "meter"), None, "", "ct",
     "the panel's power: from the CTs, or from the mains meter instead (a stricter limit)"),
    ("profile_device", "enum", ("off", "on"), None, "", "off",
     "on: announce panelcap in the open device profile as a sensor and an actuator "
     "(docs/profile.md); off: devprofile.py is not imported"),
    # The status page (web.py; docs/web.md). Port 0: web.py and microdot are not imported.
    ("web_port", "int", 0, 65535, "", 0, "status page TCP port on the LAN (80 is usual); 0: off"),
    ("web_password", "secret", 0, 64, "", "", "status page password; empty: none"),
    # A load with driver "mqtt" (docs/mqtt.md).
    ("charger_set_topic", "str", 1, 64, "", "evse/set/current", "charger: current allowed, A"),
    ("charger_current_topic", "str", 1, 64, "", "evse/current", "charger: current drawn"),
    ("charger_current_unit", "enum", ("A", "mA"), None, "", "A", "charger: its report's unit"),
    ("charger_timeout_s", "int", 5, 600, "s", 30, "charger: silent this long, it is lost"),
    # Grid capacity signals (grid.py; docs/grid.md). All 0: grid.py is not even imported.
    ("grid_subscription_w", "int", 0, 500000, "W", 0,
     "subscribed grid capacity; reservations add to it for their window; 0: none"),
    ("grid_fallback_w", "int", 0, 500000, "W", 0,
     "import limit when no schedule interval covers now or the grid went silent; 0: none"),
    ("grid_silence_s", "int", 0, 604800, "s", 0,
     "the grid must send its schedule again within this; else the fallback applies; 0: no check"),
    ("ntp_host", "str", 0, 64, "", "pool.ntp.org",
     "SNTP server for the wall clock grid schedules need (an IP address avoids a DNS wait)"),
    # Demand-window budget (demand.py; docs/shed.md). Window 0: demand.py is not imported.
    ("demand_window_min", "int", 0, 60, "min", 0,
     "capacity-tariff window, clock-aligned: 15 or 60; 0: off"),
    ("demand_budget_w", "int", 0, 200000, "W", 0,
     "each window's average import is held at or under this (it only ever tightens)"),
    ("demand_follow_peak", "enum", ("off", "on"), None, "", "off",
     "on: plan to this month's highest window when above the budget (billed anyway)"),
    # Duty mode (duty.py; docs/shed.md): opt-in, protected, where the authority allows it.
    ("duty_mode", "enum", ("off", "on"), None, "", "off",
     "on: up to 100 % of the rating at any moment, 80 % as a three-hour average; "
     "NOT an NEC 750 setpoint"),
    # Export limit and solar surplus (export.py; docs/shed.md): loads with a soak rank take
    # what the site exports. Neither set and no MQTT (no grid envelope): not imported.
    ("export_limit_w", "int", 0, 500000, "W", 0,
     "installer's export limit: export above it is soaked into loads with a soak rank; 0: none"),
    ("surplus_mode", "enum", ("off", "on"), None, "", "off",
     "on: soak any solar surplus into loads with a soak rank (solar charging)"),
    ("pv_rated_w", "int", 0, 100000, "W", 0,
     "AC rating of the PV behind the mains CTs (the meter allows for it); 0: no PV"),
    # A PV inverter whose output can be capped (pvinverter.py, curtail.py; docs/shed.md):
    # curtailed where the soaking loads cannot hold the export limit. Empty: not imported.
    ("pv_inverter", "str", 0, 64, "", "",
     "the PV inverter's profile device id (pcp/<id>_pv reading, pcp/<id>_cap actuator)"),
    ("pv_inverter_s", "int", 1, 3600, "s", 10, "PV inverter: its interval_s"),
)

# Per current transformer, keyed by the board's channel name ("ct.L1.gain").
CT = (
    ("rating_a", "int", 1, 2000, "A", None, "CT primary rating (from its label)"),
    ("leg", "enum", LEGS, None, "", None, "leg the CT clamps (L1L2: a 240 V load's wire)"),
    ("gain", "float", 0.5, 2.0, "", 1.0, "current calibration factor (cal.current)"),
    ("phase_deg", "float", -20.0, 20.0, "deg", 0.0, "how far the CT's signal lags, at mains Hz"),
)

# Per load ("loads.ev.priority"). Only name, kind, priority, leg and rated_w are required;
# a load has an output (contactor index) or a driver ("pilot": the board's J1772 pilot;
# RELAY_DRIVERS: another maker's relay over MQTT, its adapter module adapt_<driver>.py).
RELAY_DRIVERS = ("tasmota", "shelly")
CHARGER_DRIVERS = ("openevse",)  # another maker's EV charger: adapt_<driver>.py
# Profile devices that draw up to a limit this controller sets (subpanel.py): a sub-panel's
# panelcap, a battery's charger. The device's node id, as the owner's noun.
SETPOINT_DRIVERS = {"subpanel": "the sub's", "battery": "the battery's"}
LOAD = (
    ("name", "str", 1, 16, "", None, "short name, letters, digits and _"),
    ("kind", "enum", KINDS, None, "", None,
     "onoff: behind a contactor; modulated: EV charger pilot; never: listed, never shed"),
    ("priority", "int", 0, 1000, "", None, "1 is the most important; higher numbers shed first"),
    ("leg", "enum", LEGS, None, "", None, "leg(s) the load is on"),
    ("rated_w", "int", 0, 100000, "W", None, "nameplate power"),
    ("output", "int", 0, 15, "", None, "contactor output index (K1 is 0)"),
    ("driver", "enum", ("pilot", "mqtt", "subpanel", "battery") + RELAY_DRIVERS +
     CHARGER_DRIVERS, None, "", None,
     "pilot: the J1772 pilot; mqtt: a charger over MQTT; tasmota, shelly: their relays; "
     "subpanel: a sub-panel's panelcap; battery: a battery's charger (profile)"),
    ("device", "str", 1, 32, "", None,
     "tasmota: the relay's Topic (cmnd/<device>/POWER); shelly: its topic prefix; "
     "subpanel: the sub's node id (pcp/<device>_limit/set); battery: its node id "
     "(pcp/<device>_charge/set)"),
    ("report_s", "int", 1, 3600, "s", None,
     "tasmota: its TelePeriod; shelly: status asked this often; subpanel, battery: the "
     "device's interval_s (default 10); silent 3 times this, it is lost"),
    ("feed_output", "int", 0, 15, "", None, "contactor feeding a charger"),
    ("ct", "str", 0, 8, "", None, "the load's own CT channel, e.g. CT3; empty: none"),
    ("sensor", "str", 1, 64, "", None,
     "a profile sensor (pcp/<sensor>/reading) confirming what the load draws, every report_s"),
    ("min_on_s", "int", 0, 86400, "s", None, "shortest on time (contactor wear, compressors)"),
    ("min_off_s", "int", 0, 86400, "s", None, "shortest off time"),
    ("max_a", "int", 1, 80, "A", None, "highest pilot current (charger or circuit rating)"),
    ("min_a", "int", 0, 80, "A", None, "lowest pilot current before pausing (J1772: 6)"),
    ("resume_pause_s", "int", 0, 86400, "s", None, "wait before resuming a paused charger"),
    ("soak", "int", 0, 1000, "", None,
     "soak order for export and surplus: 1 soaks first; 0 or absent: never soaked"),
)
_REQUIRED_LOAD = ("name", "kind", "priority", "leg", "rated_w")

# A typical installation: the water heater sheds first, then the EV is throttled.
DEFAULT_LOADS = (
    {"name": "water_heater", "kind": "onoff", "priority": 2, "leg": "L1L2", "rated_w": 4500,
     "output": 0, "ct": "CT3", "min_on_s": 60, "min_off_s": 60},
    {"name": "ev", "kind": "modulated", "priority": 1, "leg": "L1L2", "rated_w": 7680,
     "driver": "pilot", "max_a": 32, "ct": "CT4"},
)


def _row(table, key):
    for row in table:
        if row[0] == key:
            return row
    return None


def describe(row):
    """'an int in 15..2000 A' for a schema row."""
    _, typ, lo, hi, unit, _, _ = row
    if typ == "enum":
        return "one of " + ", ".join(repr(c) for c in lo)
    if typ in ("str", "secret"):
        return "a string of %d..%d characters" % (lo, hi)
    if typ == "float":
        text = "a number in %s..%s" % (lo, hi)
    else:
        text = "an int in %d..%d" % (lo, hi)
    return text + (" " + unit if unit else "")


def check(row, value):
    """The value converted for `row`, or raises ValueError with a readable line."""
    key, typ, lo, hi = row[0], row[1], row[2], row[3]
    given = value
    ok = False
    if typ == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
    elif typ == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
            ok = lo <= value <= hi
    elif typ in ("str", "secret"):
        ok = isinstance(value, str) and lo <= len(value) <= hi
    elif typ == "enum":
        ok = value in lo and isinstance(value, str)
    if not ok:
        if typ == "secret":
            raise ValueError("%s must be %s" % (key, describe(row)))
        raise ValueError("%s must be %s, got %r" % (key, describe(row), given))
    return value


def legs(cfg):
    return limits.legs(cfg["system"])


def max_setpoint_w(cfg):
    """The highest setpoint allowed (the rule: limits)."""
    return limits.max_setpoint_w(cfg["panel_rating_a"], legs(cfg), cfg["volts"])


def setpoint_w(cfg):
    """The installer's limit in watts: explicit, or the highest allowed; in duty mode the
    rating itself (the 80 % is then a three-hour average, duty.py)."""
    if cfg.get("duty_mode") == "on":
        return limits.rating_w(cfg["panel_rating_a"], legs(cfg), cfg["volts"])
    return cfg["limit_w"] or max_setpoint_w(cfg)


def defaults(board=None):
    """A complete configuration for `board` (CT entries come from its channel table)."""
    cfg = {row[0]: row[5] for row in TOP}
    cfg["ct"] = {}
    if board is not None:
        for ch in board.CHANNELS:
            if ch["kind"] == "ct":
                cfg["ct"][ch["name"]] = {"rating_a": ch["rating_a"], "leg": ch["leg"],
                                         "gain": 1.0, "phase_deg": 0.0}
    cfg["loads"] = [dict(spec) for spec in DEFAULT_LOADS]
    return cfg


def copy(cfg):
    """A deep copy (configs nest one dict of dicts and one list of dicts)."""
    out = dict(cfg)
    out["ct"] = {name: dict(ct) for name, ct in cfg.get("ct", {}).items()}
    out["loads"] = [dict(spec) for spec in cfg.get("loads", ())]
    return out


def find_load(cfg, name):
    for spec in cfg["loads"]:
        if spec.get("name") == name:
            return spec
    return None


def _check_load(spec, where):
    errors = []
    if not isinstance(spec, dict):
        return ["%s must be a table of load settings, got %r" % (where, spec)]
    for key in spec:
        row = _row(LOAD, key)
        if row is None:
            errors.append("%s: unknown load setting %r" % (where, key))
            continue
        try:
            check(row, spec[key])
        except ValueError as e:
            errors.append("%s: %s" % (where, e))
    for key in _REQUIRED_LOAD:
        if key not in spec:
            errors.append("%s: %s is missing" % (where, key))
    name = spec.get("name")
    if isinstance(name, str) and not _is_name(name):
        errors.append("%s: name must be letters, digits and _, got %r" % (where, name))
    if not errors:
        has_out, has_drv = "output" in spec, "driver" in spec
        kind = loadkind.kind(spec["kind"])
        if kind == KIND_NEVER:
            if has_out or has_drv:
                errors.append("%s: a 'never' load has no output or driver" % where)
        elif has_out == has_drv:
            errors.append("%s: give exactly one of output (a contactor) or driver" % where)
        elif kind == KIND_MODULATED and not has_drv:
            errors.append("%s: a modulated load needs driver 'pilot', 'mqtt', 'subpanel' or "
                          "'battery'" % where)
        elif kind == KIND_MODULATED and spec["driver"] in RELAY_DRIVERS:
            errors.append("%s: driver %r is for an onoff load" % (where, spec["driver"]))
        elif kind == KIND_ONOFF and not has_out and spec["driver"] not in RELAY_DRIVERS:
            errors.append("%s: an onoff load needs an output or a relay driver (%s)" % (
                where, ", ".join(RELAY_DRIVERS)))
        if spec.get("driver") in SETPOINT_DRIVERS and not _is_device_id(spec.get("device")):
            errors.append("%s: driver %r needs device, %s node id (no /, + or #), got %r" % (
                where, spec["driver"], SETPOINT_DRIVERS[spec["driver"]], spec.get("device")))
        if spec.get("driver") in RELAY_DRIVERS and "device" not in spec:
            errors.append("%s: driver %r needs device" % (where, spec["driver"]))
        if spec.get("driver") in CHARGER_DRIVERS and "device" not in spec:
            errors.append("%s: driver %r needs device, its MQTT base topic" % (
                where, spec["driver"]))
        if "feed_output" in spec and not has_drv:
            errors.append("%s: feed_output is for a charger (a load with a driver)" % where)
        if kind == KIND_NEVER and spec.get("soak"):
            errors.append("%s: a 'never' load cannot soak (no actuator), got soak %d" % (
                where, spec["soak"]))
        if spec.get("min_a", 0) > spec.get("max_a", 80):
            errors.append("%s: min_a (%d A) is above max_a (%d A)" % (
                where, spec["min_a"], spec["max_a"]))
    return errors


def _say(key):
    """A key as a log line shows it: a plain name as it is, anything else by its repr (a
    key read from a file may hold a newline, which would make one refusal two lines)."""
    return key if isinstance(key, str) and key and _is_name(key) else repr(key)


def _is_device_id(text):
    return isinstance(text, str) and text != "" and \
        "/" not in text and "+" not in text and "#" not in text


def _is_name(text):
    for c in text:
        if not (c.isalpha() or c.isdigit() or c == "_"):
            return False
    return True


def validate(cfg, board=None):
    """Every problem with `cfg` as a readable line; an empty list means it is usable."""
    errors = []
    for key in cfg:
        if key not in ("ct", "loads") and _row(TOP, key) is None:
            errors.append("unknown setting %r" % key)
    for row in TOP:
        if row[0] not in cfg:
            errors.append("%s is missing" % row[0])
            continue
        try:
            check(row, cfg[row[0]])
        except ValueError as e:
            errors.append(str(e))
    if errors:
        return errors
    if cfg["limit_w"] > max_setpoint_w(cfg):
        errors.append("limit_w must be at most %d %% of the panel rating (%d W for %d A on %d x "
                      "%d V), got %d" % (limits.SETPOINT_PCT, max_setpoint_w(cfg),
                                         cfg["panel_rating_a"], legs(cfg), cfg["volts"],
                                         cfg["limit_w"]))
    if cfg["duty_mode"] == "on" and cfg["limit_w"]:
        errors.append("duty_mode on holds the rating at any moment and 80 %% over three hours: "
                      "limit_w must be 0, got %d" % cfg["limit_w"])
    if cfg["demand_window_min"] not in (0, 15, 60):
        errors.append("demand_window_min must be 0 (off), 15 or 60 min, got %d"
                      % cfg["demand_window_min"])
    elif cfg["demand_window_min"] and cfg["demand_budget_w"] < 100:
        errors.append("demand_budget_w must be at least 100 W with a demand window, got %d"
                      % cfg["demand_budget_w"])
    m = cfg["mains_meter"]
    # Another maker's dialect names a topic prefix (Shelly's may end in /em1:<n>): a / is allowed.
    if m and (("/" in m and cfg["mains_meter_dialect"] == "profile") or "+" in m or "#" in m
              or not cfg["mqtt_host"]):
        errors.append("mains_meter must be a device id (no /, + or #) and needs mqtt_host, "
                      "got %r" % m)
    if cfg["mains_source"] == "meter" and not m:
        errors.append("mains_source meter needs mains_meter")
    cts = cfg.get("ct")
    if not isinstance(cts, dict):
        errors.append("ct must be a table of CT settings, got %r" % (cts,))
        cts = {}
    for name, ct in cts.items():
        if not isinstance(ct, dict):
            errors.append("ct.%s must be a table of CT settings, got %r" % (_say(name), ct))
            continue
        for row in CT:
            if row[0] not in ct:
                errors.append("ct.%s: %s is missing" % (_say(name), row[0]))
                continue
            try:
                check(row, ct[row[0]])
            except ValueError as e:
                errors.append("ct.%s: %s" % (_say(name), e))
        for key in ct:
            if _row(CT, key) is None:
                errors.append("ct.%s: unknown CT setting %r" % (_say(name), key))
    loads = cfg.get("loads")
    if not isinstance(loads, (list, tuple)):
        return errors + ["loads must be a list of loads, got %r" % (loads,)]
    names, outputs = [], []
    for i, spec in enumerate(loads):
        where = "loads[%d]" % i
        if isinstance(spec, dict) and isinstance(spec.get("name"), str) and \
                _is_name(spec["name"]):
            where = "loads.%s" % spec["name"]
        errs = _check_load(spec, where)
        errors += errs
        if errs:
            continue
        if spec["name"] in names:
            errors.append("%s: the name is used twice" % where)
        names.append(spec["name"])
        for key in ("output", "feed_output"):
            if key in spec:
                if spec[key] in outputs:
                    errors.append("%s: output %d drives another load too" % (where, spec[key]))
                outputs.append(spec[key])
                if board is not None and spec[key] >= len(board.OUTPUTS):
                    errors.append("%s: %s must be 0..%d on board %s, got %d" % (
                        where, key, len(board.OUTPUTS) - 1, board.NAME, spec[key]))
        try:
            limits.leg_volts(spec["leg"], legs(cfg), cfg["volts"])
        except ValueError as e:
            errors.append("%s: %s" % (where, e))
        if spec.get("ct") and spec["ct"] not in cts:
            errors.append("%s: ct %r is not a CT channel (%s)" % (
                where, spec["ct"], ", ".join(sorted(cts))))
        if board is not None:
            if spec.get("driver") == "pilot" and not getattr(board, "PILOT", None):
                errors.append("%s: board %s has no J1772 pilot" % (where, board.NAME))
        if (spec.get("driver") in ("mqtt",) + RELAY_DRIVERS or
                spec.get("driver") in SETPOINT_DRIVERS) and not cfg["mqtt_host"]:
            errors.append("%s: driver %r needs mqtt_host" % (where, spec["driver"]))
        if spec.get("driver") in CHARGER_DRIVERS and not cfg["mqtt_host"]:
            errors.append("%s: driver %r needs mqtt_host" % (where, spec["driver"]))
        if "sensor" in spec and (not _is_device_id(spec["sensor"]) or not cfg["mqtt_host"]):
            errors.append("%s: sensor must be a device id (no /, + or #) and needs mqtt_host, "
                          "got %r" % (where, spec["sensor"]))
    if cfg["pv_inverter"] and (not _is_device_id(cfg["pv_inverter"]) or not cfg["mqtt_host"]
                               or not cfg["pv_rated_w"]):
        errors.append("pv_inverter must be a device id (no /, + or #) and needs mqtt_host and "
                      "pv_rated_w, got %r" % (cfg["pv_inverter"],))
    if (cfg["export_limit_w"] or cfg["surplus_mode"] == "on") and not cfg["pv_inverter"] and \
            not [spec for spec in loads if isinstance(spec, dict) and spec.get("soak")]:
        errors.append("%s needs a load to soak into: set loads.<name>.soak to 1 or more" % (
            "export_limit_w" if cfg["export_limit_w"] else "surplus_mode on"))
    elif (cfg["export_limit_w"] or cfg["surplus_mode"] == "on") and not cfg["pv_rated_w"]:
        # A soak draws more than the mains while the PV exports: without the PV's current
        # allowed for, the meter's check (a mains leg well below its loads) fails safe.
        errors.append("%s needs pv_rated_w, the PV's AC rating in W, got 0" % (
            "export_limit_w" if cfg["export_limit_w"] else "surplus_mode on"))
    if board is not None:
        for ch in board.CHANNELS:
            if ch["kind"] == "ct" and ch["name"] not in cts:
                errors.append("ct.%s is missing (a CT channel of board %s)" % (
                    ch["name"], board.NAME))
        for name in cts:
            if name not in [ch["name"] for ch in board.CHANNELS if ch["kind"] == "ct"]:
                errors.append("ct.%s: board %s has no such CT channel" % (_say(name), board.NAME))
    return errors


def merged(overrides=None, board=None):
    """Defaults with `overrides` (a dict of top-level keys) applied; raises ValueError on an
    unknown key. Used by the simulator and tests, which do not read flash."""
    cfg = defaults(board)
    if overrides:
        for key in overrides:
            if key not in cfg:
                raise ValueError("unknown setting %r" % key)
            cfg[key] = overrides[key]
    return cfg


# --- persistence -------------------------------------------------------------------------

def _migrate_1(data):
    # Version 1 (the settings.py defaults) had no voltage system: two legs were implied.
    data.setdefault("system", "split")
    return data


MIGRATIONS = {1: _migrate_1}    # from version n to n + 1


def to_json(cfg):
    data = copy(cfg)
    data["version"] = VERSION
    return json.dumps(data)


def save(cfg, path=FILE):
    """Writes `cfg` so that a power cut leaves either the old file or the new one: the text
    goes to a temporary file first, which is then renamed over the old one (atomicfile.py;
    flash is written only on an operator's command)."""
    import atomicfile
    atomicfile.write(path, to_json(cfg))


class Loaded:
    """What load() found: `cfg` (always usable for building hardware), `rejected` (one line
    per key that fell back to its default), and `safe_reason` (None, or why the controller
    must not run: every controllable load stays shed)."""

    def __init__(self, cfg, rejected, safe_reason, migrated_from=None):
        self.cfg = cfg
        self.rejected = rejected
        self.safe_reason = safe_reason
        self.migrated_from = migrated_from


NOT_TEXT = "config file is corrupt (not UTF-8 text)"


def parse(text, board=None):
    """A Loaded from the text of a config file."""
    base = defaults(board)
    try:
        data = json.loads(text)
    except (ValueError, TypeError) as e:
        return Loaded(base, [], "config file is corrupt (not JSON: %s)" % e)
    if not isinstance(data, dict):
        return Loaded(base, [], "config file is corrupt (not a table of settings)")
    version = data.pop("version", 1)
    if not isinstance(version, int) or version < 1:
        return Loaded(base, [], "config file is corrupt (bad version %r)" % (version,))
    if version > VERSION:
        return Loaded(base, [], "config file is version %d, this firmware reads up to %d"
                      % (version, VERSION))
    migrated_from = version if version < VERSION else None
    while version < VERSION:
        data = MIGRATIONS[version](data)
        version += 1
    cfg = copy(base)         # base stays the pure defaults, for safe mode
    rejected = []
    critical = []
    for key in data:
        if key in ("ct", "loads"):
            continue
        row = _row(TOP, key)
        if row is None:
            rejected.append("%s: unknown setting, ignored" % _say(key))
            continue
        try:
            cfg[key] = check(row, data[key])
        except ValueError as e:
            rejected.append("%s; using the default %r" % (e, row[5]))
            if key in PROTECTED:
                critical.append(key)
    for key in PROTECTED:
        # duty_mode's default (off) is the stricter limit: a file saved before the setting
        # existed runs on it.
        if key not in data and key != "duty_mode":
            critical.append(key)
            rejected.append("%s is missing" % key)
    _parse_cts(data.get("ct"), cfg, rejected)
    loads = data.get("loads")
    if loads is None:
        critical.append("loads")
        rejected.append("loads is missing")
    else:
        cfg["loads"] = loads
    errors = validate(cfg, board)
    if errors:
        rejected += errors
        critical.append("loads" if loads is not None else "settings")
    reason = None
    if critical:
        reason = "config file is corrupt or incomplete (%s): %s" % (
            ", ".join(critical), (errors or rejected)[0])
        # Defaults for everything but the network settings that were read fine, so that
        # telemetry and the status page can still say why the board is in safe mode.
        for row in TOP:
            if row[0].startswith(_NETWORK_PREFIXES):
                base[row[0]] = cfg[row[0]]
        cfg = base
    return Loaded(cfg, rejected, reason, migrated_from)


_NETWORK_PREFIXES = ("wifi_", "mqtt_", "telemetry_", "web_")


def _parse_cts(cts, cfg, rejected):
    # Calibration falls back entry by entry: a wrong gain costs accuracy, not safety.
    if cts is None:
        return
    if not isinstance(cts, dict):
        rejected.append("ct must be a table of CT settings; using the defaults")
        return
    for name, ct in cts.items():
        target = cfg["ct"].get(name)
        if target is None:
            if cfg["ct"]:
                rejected.append("ct.%s: no such CT channel, ignored" % _say(name))
                continue
            target = cfg["ct"][name] = {"rating_a": 100, "leg": "L1", "gain": 1.0,
                                        "phase_deg": 0.0}
        if not isinstance(ct, dict):
            rejected.append("ct.%s must be a table of CT settings; using the defaults"
                            % _say(name))
            continue
        for key in ct:
            row = _row(CT, key)
            if row is None:
                rejected.append("ct.%s.%s: unknown CT setting, ignored" % (_say(name), _say(key)))
                continue
            try:
                target[key] = check(row, ct[key])
            except ValueError as e:
                rejected.append("ct.%s: %s; using %r" % (_say(name), e, target.get(key)))


def load(path=FILE, board=None, log=print):
    """Reads `path` (or the old file a cut save left set aside: atomicfile.read); prints
    every rejected key and the reason for safe mode, if any."""
    import atomicfile
    try:
        text = atomicfile.read(path)
    except OSError:
        result = Loaded(defaults(board), [], "no configuration saved yet: set it at the REPL "
                        "(cfg.set ... cfg.save())")
    except UnicodeError:
        result = Loaded(defaults(board), [], NOT_TEXT)
    else:
        result = parse(text, board)
    if result.migrated_from is not None:
        log("config: migrated from version %d to %d (cfg.save() writes it back)" % (
            result.migrated_from, VERSION))
    for line in result.rejected:
        log("config: rejected %s" % line)
    if result.safe_reason:
        log("config: SAFE MODE: %s" % result.safe_reason)
    return result


# --- what the rest of the firmware reads -------------------------------------------------

def channels(board, cfg):
    """The board's channel table with the configured CT rating, leg and calibration, for the
    meter: each dict gains "gain" and "phase_deg" (the voltage channel: v_gain)."""
    out = []
    for ch in board.CHANNELS:
        ch = dict(ch)
        if ch["kind"] == "ct":
            ct = cfg["ct"].get(ch["name"])
            if ct:
                ch.update(ct)
        else:
            ch["gain"] = cfg["v_gain"]
            ch["phase_deg"] = 0.0
        out.append(ch)
    return tuple(out)


def load_spec(spec):
    """The load as appbuild._bind reads it (a copy without an empty ct)."""
    spec = dict(spec)
    if not spec.get("ct"):
        spec.pop("ct", None)
    return spec
