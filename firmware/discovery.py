"""Home Assistant MQTT discovery: the retained config message of every entity, built one at
a time. telemetry.Reporter imports this module to announce after each (re)connect and drops
it after, so its code is in RAM only while it runs."""

import json

from loadkind import takes_amps
from version import VERSION

# One entity a line: component;object id;name;topic (s state, d diag);template body;device
# class;unit. One string, not tuples of strings: a single object while announcing.
_PANEL = """sensor;power;Panel power;s;value_json.total_w;power;W
sensor;current_l1;L1 current;s;(value_json.leg_ma[0] / 1000) | round(1);current;A
sensor;current_l2;L2 current;s;(value_json.leg_ma[1] / 1000) | round(1);current;A
sensor;voltage;Voltage;s;(value_json.vrms_mv / 1000) | round(1);voltage;V
sensor;headroom;Headroom;s;value_json.headroom_w;power;W
sensor;limit;Limit in force;s;value_json.limit_w;power;W
sensor;control;Control state;s;value_json.control;;
binary_sensor;fault;Metering fault;s;'ON' if value_json.faults else 'OFF';problem;"""
_LOAD = """binary_sensor;%s;%s on;s;'ON' if %s.on else 'OFF';power;
sensor;%s_power;%s power;s;%s.power_w;power;W"""
_SETPOINT = "sensor;%s_setpoint;%s setpoint;s;%s.setpoint_a;current;A"
# The limit sources over time, when configured (snapshot.py: value_json.demand, .duty).
_DEMAND = """sensor;demand_energy;Demand window energy;s;value_json.demand.window_wh;energy;Wh
sensor;demand_allowed;Demand window allowed power;s;value_json.demand.allowed_w;power;W
sensor;demand_headroom;Demand window headroom;s;value_json.demand.headroom_w;power;W
sensor;demand_peak;Demand peak this month;s;value_json.demand.peak_w;power;W"""
_DUTY = """sensor;duty_average;Three-hour average;s;value_json.duty.avg_w;power;W
sensor;duty_allowed;Duty allowed power;s;value_json.duty.allowed_w;power;W"""
_MAINS = """sensor;mains_meter;Mains meter power;s;value_json.mains_meter.meter_w;power;W
binary_sensor;mains_disagree;Mains meter disagrees;s;'ON' if value_json.mains_meter.fault else 'OFF';problem;"""
# The export limit and surplus, when a Soaker is built (snapshot.py: value_json.export).
_EXPORT = """sensor;export_power;Export power;s;value_json.export.export_w;power;W
sensor;export_limit;Export limit in force;s;value_json.export.limit_w;power;W
sensor;export_excess;Export over its limit;s;value_json.export.excess_w;power;W
sensor;soak_power;Soaking power;s;value_json.export.soak_w;power;W"""
# A PV inverter curtailed (pv_inverter): its cap and what it delivers.
_CURTAIL = """sensor;pv_cap;PV inverter cap;s;value_json.export.pv_cap_w;power;W
sensor;pv_power;PV inverter power;s;value_json.export.pv_w;power;W"""
_DIAGS = """sensor;uptime;Uptime;d;value_json.uptime_s;duration;s
sensor;free_heap;Free heap;d;value_json.free_heap;data_size;B"""


def _lines(text):
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        yield text[start:end]
        start = end + 1


def _entities(bindings, sources, soaker):
    """The entity lines: the panel's, its control sources', the export's, two or three per
    load, then the diagnostics'."""
    for line in _lines(_PANEL):
        yield line
    for src in sources:
        for line in _lines(_DEMAND if src.source == "demand" else
                           _DUTY if src.source == "duty" else
                           _MAINS if src.source == "mains_meter" else ""):
            yield line
    if soaker is not None:
        for line in _lines(_EXPORT):
            yield line
        for line in _lines(_CURTAIL if soaker.curtail is not None else ""):
            yield line
    for b in bindings:
        n = b.load.name
        sel = "value_json.loads['%s']" % n
        for line in _lines(_LOAD):
            yield line % (n, n, sel)
        if takes_amps(b.actuator):
            yield _SETPOINT % (n, n, sel)
    for line in _lines(_DIAGS):
        yield line


def configs(rep):
    """(topic, payload) of every entity of the telemetry.Reporter rep (a generator):
    retained, so Home Assistant finds the device whenever it starts."""
    if not rep.discovery_prefix:
        return
    app = rep.app
    node = rep.node
    name = "panelcap" if rep.prefix == "panelcap" else "panelcap " + rep.prefix
    device = {"identifiers": [node], "name": name,
              "manufacturer": "panelcap", "model": app.board.NAME, "sw_version": VERSION}
    status = rep.prefix + "/status"
    control = getattr(app, "control", None)
    for line in _entities(app.bindings, control.sources if control is not None else (),
                          getattr(app, "soaker", None)):
        comp, obj, name, which, tpl, cls, unit = line.split(";")
        diag = which == "d"
        cfg = {"name": name, "unique_id": node + "_" + obj,
               "state_topic": rep.topic_diag if diag else rep.topic_state,
               "value_template": "{{ " + tpl + " }}", "availability_topic": status,
               "device": device}
        if cls:
            cfg["device_class"] = cls
            if comp == "sensor":
                cfg["unit_of_measurement"] = unit
                # a window's energy starts again at each window: a total, not a meter
                cfg["state_class"] = "total" if cls == "energy" else "measurement"
        if diag:
            cfg["entity_category"] = "diagnostic"
            cfg["state_class"] = "total_increasing" if obj == "uptime" else "measurement"
        yield ("%s/%s/%s/%s/config" % (rep.discovery_prefix, comp, node, obj), json.dumps(cfg))
