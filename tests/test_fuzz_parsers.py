"""Every parser fed generated input (issue 17 item 3): the REPL console's arguments (cfg.set
and the rest), config files as the boot reads them, MQTT commands, and the replay tool's CSVs.
None may crash, stall or change state on input it refuses, and each refusal is one line.

hypothesis (pinned in requirements.txt; seeded, derandomized, database=None: the same cases
every run) draws the input in CPython; the firmware's parsers run in one micropython process
(tests/fuzz_driver.py, the 32-bit port), a case a line, each answered within 10 s or the case
stalled. tools/sim.py's CSV reader is CPython and runs here. Each test prints how many cases
its parser was given ("fuzz <parser>: N cases ...").

The open profile's messages (docs/profile.md): the commands a controller sends panelcap's
actuator (`pcp/<node>_limit/set`, devprofile.Device.on_set), each answered by exactly one
`ack`; a refusal is `ok: false` with a one-line `error` and changes nothing; an accepted one
never leaves a limit above the installer's setpoint.

Not here: grid messages (cmd/grid/...: tests/test_grid*.py).
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from conftest import MICROPYTHON, ROOT, mpy_env
from jsonpipe import JsonPipe

sys.path.insert(0, str(ROOT / "tools"))
import sim  # noqa: E402

DRIVER = ROOT / "tests" / "fuzz_driver.py"
SEED = 17
CASES = int(os.environ.get("PANELCAP_FUZZ_CASES", "600"))     # per parser and per test
STALL_S = 10


def fuzz(strategy, n=CASES):
    """Runs the decorated check over n generated cases, the same every run, whichever tests
    ran before: seeded with SEED and the check's name (derandomize would take one seed from
    the wrapper's code, the same for every parser)."""
    def wrap(check):
        @seed(SEED * 1000 + sum(check.__name__.encode()))
        @settings(max_examples=n, derandomize=False, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck), print_blob=False,
                  phases=[Phase.explicit, Phase.generate, Phase.shrink])
        @given(strategy)
        def prop(case):
            check(case)
        return prop
    return wrap


def plain(v):
    """A generated value as JSON can carry it (bytes as latin-1 text; NaN stays NaN)."""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("latin-1")
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def enc(v):
    """A value as the driver's JSON: bytes and non-finite floats tagged."""
    if isinstance(v, (bytes, bytearray)):
        return {"$b": bytes(v).hex()}
    if isinstance(v, float) and not math.isfinite(v):
        return {"$f": repr(v)}
    if isinstance(v, dict):
        return {str(k): enc(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [enc(x) for x in v]
    return v


class Driver(JsonPipe):
    def __init__(self, tmp):
        # a JSON "\\ud800" becomes a str that is not UTF-8 in MicroPython; what it prints
        # back is read as it can be
        super().__init__(DRIVER, "1m", mpy_env(), tmp, args=(tmp,), errors="replace")
        self.counts = {}

    def run(self, parser, **case):
        case["p"] = parser
        got = self.ask(json.dumps(enc(case)), STALL_S, repr(case))
        c = self.counts.setdefault(parser, {"cases": 0, "taken": 0, "refused": 0})
        c["cases"] += 1
        c["taken" if got["ok"] else "refused"] += 1
        assert got["error"] is None, "%r crashed the parser:\n%s" % (case, got["error"])
        return got


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    d = Driver(tmp_path_factory.mktemp("fuzz"))
    yield d
    d.close()


def report(capsys, parser, counts):
    with capsys.disabled():
        print("\nfuzz %s: %d cases, %d taken, %d refused with one line each, 0 crashes, "
              "0 stalls, no state changed by a refusal" % (
                  parser, counts["cases"], counts["taken"], counts["refused"]))


# --- values an operator or a network can send ------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
SCALAR = st.one_of(
    st.none(), st.booleans(),
    st.integers(-5, 100001), st.integers(-(1 << 64), 1 << 64),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    TEXT, st.binary(max_size=12),
    st.sampled_from(["L1", "L2", "L1L2", "split", "single", "onoff", "modulated", "never",
                     "pilot", "mqtt", "auto", "off", "max_a", "", "CT3", "ev", "A", "mA"]))
VALUE = st.recursive(SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=8)


# --- the REPL console: cfg.* -----------------------------------------------------------------

def _keys():
    import_rows = []
    # the schema's names, read from the source (config.py is firmware: not imported here)
    text = (ROOT / "firmware" / "config.py").read_text()
    for line in text.splitlines():
        s = line.strip()
        if s.startswith('("') and '", "' in s:
            import_rows.append(s[2:s.index('"', 2)])
    return import_rows


NAMES = _keys()
KEY = st.one_of(
    st.sampled_from(NAMES),
    st.builds(lambda a, b: "ct.%s.%s" % (a, b), st.sampled_from(["L1", "L2", "CT3", "CT4", "x"]),
              st.sampled_from(NAMES + ["", "gain."])),
    st.builds(lambda a, b: "loads.%s.%s" % (a, b),
              st.sampled_from(["ev", "water_heater", "nope", ""]), st.sampled_from(NAMES)),
    st.sampled_from(["loads.ev", "loads.water_heater", "loads", "ct", "ct.L1", "loads.x"]),
    TEXT, VALUE)
LOAD_FIELDS = st.dictionaries(st.one_of(st.sampled_from(NAMES), TEXT), VALUE, max_size=6)

NEAR = st.one_of(st.integers(-10, 100000), st.floats(0, 3, width=32),
                 st.sampled_from(["L1", "L1L2", "single", "onoff", "pilot", "on", "x" * 70]))
CALL = st.one_of(
    st.fixed_dictionaries({"m": st.just("set"), "a": st.tuples(KEY, VALUE)}),
    st.fixed_dictionaries({"m": st.just("set"), "a": st.tuples(KEY, NEAR)}),
    st.fixed_dictionaries({"m": st.just("set"), "a": st.tuples(KEY, NEAR)}),
    st.fixed_dictionaries({"m": st.just("set"), "a": st.tuples(
        st.sampled_from(["loads.ev", "loads.water_heater"]), LOAD_FIELDS)}),
    st.fixed_dictionaries({"m": st.just("show"), "a": st.one_of(st.tuples(), st.tuples(KEY))}),
    st.fixed_dictionaries({"m": st.just("confirm"), "a": st.tuples(VALUE)}),
    # (a name given twice, positionally and as a keyword, is Python's own TypeError at the call)
    st.fixed_dictionaries({"m": st.just("add_load"), "a": st.tuples(VALUE), "k": st.dictionaries(
        st.sampled_from([n for n in NAMES if n != "name"]), VALUE, max_size=6)}),
    st.fixed_dictionaries({"m": st.just("remove_load"), "a": st.tuples(VALUE)}),
    st.fixed_dictionaries({"m": st.just("revert"), "a": st.tuples()}),
    st.fixed_dictionaries({"m": st.just("push"), "a": st.tuples(st.one_of(
        VALUE, st.just("pushed.json"), st.just("/nonexistent/x.json")))}),
    st.fixed_dictionaries({"m": st.just("push"), "a": st.just(["pushed.json"]),
                           "file": st.deferred(lambda: config_files())}),
    st.fixed_dictionaries({"m": st.just("cal.current"), "a": st.tuples(
        st.one_of(st.sampled_from(["L1", "L2", "CT3", "CT4", "CT5", "V1"]), VALUE),
        st.one_of(NEAR, VALUE))}),
    st.fixed_dictionaries({"m": st.just("cal.voltage"), "a": st.tuples(st.one_of(NEAR, VALUE))}),
)


def test_console_arguments(driver, capsys):
    @fuzz(CALL)
    def check_console(call):
        got = driver.run("cfg", **call)
        if not got["ok"]:
            assert len(got["out"]) == 1, (call, got["out"])
            assert "\n" not in got["out"][0], (call, got["out"])
            assert not got["changed"], (call, got)
    check_console()
    report(capsys, "console (cfg.set, show, confirm, add_load, remove_load, revert, push; "
                   "cal.current, cal.voltage)",
           driver.counts["cfg"])
    assert driver.counts["cfg"]["cases"] >= CASES


# --- config files ----------------------------------------------------------------------------

def _good_config():
    out = subprocess.run([MICROPYTHON, "-c", "import config, esp32_dinrail as b\n"
                          "print(config.to_json(config.defaults(b)))"],
                         capture_output=True, text=True, env=mpy_env(), check=True, cwd=ROOT)
    return json.loads(out.stdout)


GOOD = None


@st.composite
def config_files(draw):
    """A valid config with generated damage: values replaced, keys added or dropped, the text
    cut, bytes flipped, or nothing like a config at all."""
    global GOOD
    if GOOD is None:
        GOOD = _good_config()
    how = draw(st.sampled_from(["edit", "edit", "edit", "cut", "flip", "json", "bytes"]))
    if how == "bytes":
        return draw(st.binary(max_size=300))
    if how == "json":
        return json.dumps(plain(draw(VALUE))).encode()
    data = json.loads(json.dumps(GOOD))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "top", "ct", "load", "drop", "version"]))
        if where == "top":
            data[draw(st.one_of(st.sampled_from(NAMES), TEXT))] = draw(VALUE)
        # An earlier damage may have dropped or replaced "ct" or "loads": then there is
        # nothing of that kind left to damage.
        elif where == "ct":
            cts = data.get("ct")
            if isinstance(cts, dict) and cts:
                ct = cts[draw(st.sampled_from(sorted(cts)))]
                if isinstance(ct, dict):
                    ct[draw(st.one_of(st.sampled_from(["gain", "leg", "rating_a", "phase_deg"]),
                                      TEXT))] = draw(VALUE)
        elif where == "load":
            loads = data.get("loads")
            if isinstance(loads, list) and loads:
                spec = loads[draw(st.integers(0, len(loads) - 1))]
                if isinstance(spec, dict):
                    spec[draw(st.one_of(st.sampled_from(NAMES), TEXT))] = draw(VALUE)
        elif where == "drop":
            if data:
                data.pop(draw(st.sampled_from(sorted(data))), None)
        else:
            data["version"] = draw(VALUE)
    text = json.dumps(plain(data)).encode()
    if how == "cut":
        text = text[:draw(st.integers(0, len(text)))]
    elif how == "flip":
        b = bytearray(text)
        for _ in range(draw(st.integers(1, 4))):
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        text = bytes(b)
    return text


def test_config_files(driver, capsys):
    @fuzz(config_files())
    def check_config(data):
        got = driver.run("config", b=data)
        assert not got["changed"]
        assert not [line for line in got["out"] if line.startswith("UNUSABLE")], (data, got)
        assert all("\n" not in line for line in got["out"]), (data, got["out"])
        if not got["ok"]:
            # refused: the boot says why in one line, and runs nothing (safe mode)
            safe = [line for line in got["out"] if line.startswith("config: SAFE MODE: ")]
            assert len(safe) == 1, (data, got["out"])
    check_config()
    report(capsys, "config files (config.load at boot)", driver.counts["config"])
    assert driver.counts["config"]["cases"] >= CASES


# --- MQTT commands ---------------------------------------------------------------------------

TOPIC_NAME = st.one_of(
    st.sampled_from(["limit", "status", "load/ev", "load/water_heater", "load/nope", "load/",
                     "config", "grid", "limit/x", "", "status/"]),
    TEXT)
PAYLOAD_OBJ = st.dictionaries(
    st.one_of(st.sampled_from(["id", "limit_w", "duration_s", "mode", "max_a"]), TEXT),
    st.one_of(st.integers(-10, 20000), st.sampled_from(["auto", "off", "max_a"]), VALUE),
    max_size=5)


EDGE_INT = st.one_of(st.sampled_from([-1, 0, 1, 5, 6, 32, 80, 81, 9600, 9601, 86400, 86401,
                                      1 << 30, -(1 << 30) - 1]), st.integers(-100, 90000))
OPTIONAL_ID = {"id": st.one_of(TEXT, st.integers(-(1 << 31), 1 << 31), VALUE)}
NEAR_LIMIT = st.fixed_dictionaries(
    {}, optional={"limit_w": st.one_of(st.none(), EDGE_INT), "duration_s": EDGE_INT,
                  **OPTIONAL_ID})
NEAR_LOAD = st.fixed_dictionaries(
    {}, optional={"mode": st.sampled_from(["auto", "off", "max_a", "on", ""]),
                  "max_a": EDGE_INT, "duration_s": EDGE_INT, **OPTIONAL_ID})


@st.composite
def mqtt_commands(draw):
    """Half near the commands' own shapes (edge values, fields missing or extra), half
    anything: other topics, other JSON, bytes, payloads too long."""
    if draw(st.booleans()):
        name = draw(st.sampled_from(["limit", "limit", "load/ev", "load/water_heater",
                                     "status"]))
        obj = draw(NEAR_LIMIT if name == "limit" else NEAR_LOAD)
        if draw(st.integers(0, 5)) == 0:
            obj[draw(TEXT)] = draw(VALUE)
        payload = json.dumps(plain(obj)).encode()
        if name == "status" and draw(st.booleans()):
            payload = b""
        return ("panelcap/cmd/" + name).encode(), payload
    prefix = draw(st.sampled_from(["panelcap/cmd/", "panelcap/cmd/", "panelcap/", "other/cmd/",
                                   ""]))
    topic = (prefix + draw(TOPIC_NAME)).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        topic = draw(st.binary(max_size=40))
    how = draw(st.sampled_from(["obj", "obj", "json", "bytes", "long"]))
    if how == "obj":
        payload = json.dumps(plain(draw(PAYLOAD_OBJ))).encode()
    elif how == "json":
        payload = json.dumps(plain(draw(VALUE))).encode()
    elif how == "long":
        obj = draw(PAYLOAD_OBJ)
        payload = json.dumps(plain(obj)).encode()
        payload += b" " * draw(st.integers(0, 300))
    else:
        payload = draw(st.binary(max_size=300))
    return topic, payload


def test_mqtt_commands(driver, capsys):
    @fuzz(mqtt_commands())
    def check_mqtt(msg):
        topic, payload = msg
        got = driver.run("mqtt", t=topic, b=payload)
        events = [json.loads(e) for e in got["out"] if e.startswith("{")]
        assert len(events) == len(got["out"]) == 1, (msg, got["out"])  # one answer, always
        if not got["ok"]:
            assert not got["changed"], (msg, got)
            assert events[0]["ok"] is False
            assert isinstance(events[0]["error"], str) and "\n" not in events[0]["error"]
    check_mqtt()
    report(capsys, "MQTT commands (commands.handle)", driver.counts["mqtt"])
    assert driver.counts["mqtt"]["cases"] >= CASES


# --- the open profile's commands (devprofile.Device.on_set) ----------------------------------

PROFILE_ID = st.one_of(
    st.integers(-2, 5), st.sampled_from([(1 << 30) - 1, 1 << 30, -(1 << 31), 1 << 64, True,
                                         False, None, 1.0, "", "c-41", "x" * 32, "x" * 33,
                                         "a\nb", "\x7f", "\u00e9"]),
    TEXT, VALUE)
PROFILE_SETPOINT = st.one_of(
    st.sampled_from([-1, 0, 1, 6000, 9599, 9600, 9601, 1 << 30, 1 << 64, True, None, 6000.0,
                     "6000", float("nan"), float("inf")]),
    st.integers(-100, 20000), VALUE)


@st.composite
def profile_commands(draw):
    """Half near a command's shape (id and setpoint at and past their edges, a field missing
    or added), half anything: other JSON, bytes that are not UTF-8, payloads past 256 bytes."""
    how = draw(st.sampled_from(["good", "good", "near", "near", "json", "bytes", "long"]))
    if how == "good":       # valid but for, now and then, one thing
        obj = {"id": draw(st.one_of(st.integers(0, (1 << 30) - 1), st.text(
                   st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=32))),
               "setpoint": draw(st.integers(0, 9600))}
        if draw(st.integers(0, 2)) == 0:
            obj[draw(st.sampled_from(["id", "setpoint", "extra"]))] = draw(
                st.one_of(PROFILE_ID, PROFILE_SETPOINT))
        return json.dumps(plain(obj), allow_nan=True).encode()
    if how == "bytes":
        return draw(st.binary(max_size=300))
    if how == "json":
        return json.dumps(plain(draw(VALUE))).encode()
    obj = draw(st.fixed_dictionaries({}, optional={"id": PROFILE_ID,
                                                   "setpoint": PROFILE_SETPOINT}))
    if draw(st.integers(0, 4)) == 0:
        obj[draw(st.one_of(st.sampled_from(["on", "Setpoint", "seq", "id ", ""]), TEXT))] = \
            draw(VALUE)
    payload = json.dumps(plain(obj), allow_nan=True).encode()
    if how == "long":
        payload += b" " * draw(st.integers(0, 300))
    return payload


def test_profile_commands(driver, capsys):
    @fuzz(profile_commands())
    def check_profile(payload):
        got = driver.run("profile", b=payload)
        sent = [json.loads(m) for m in got["out"] if m.startswith("[")]
        assert len(sent) == len(got["out"]), (payload, got["out"])   # nothing but messages
        acks = [json.loads(msg) for topic, msg in sent if topic.endswith("_limit/ack")]
        assert len(acks) == 1, (payload, got["out"])                 # one answer, always
        ack = acks[0]
        if not got["ok"]:
            assert ack["ok"] is False and len(sent) == 1, (payload, got)
            assert isinstance(ack["error"], str) and "\n" not in ack["error"], ack
            assert not got["changed"], (payload, got)
        else:
            assert 0 <= ack["setpoint"] <= 9600 and got["changed"], (payload, got)
    check_profile()
    report(capsys, "open profile commands (devprofile.Device.on_set)", driver.counts["profile"])
    assert driver.counts["profile"]["cases"] >= CASES


def test_found_profile_refusal_echoes_only_a_valid_id(driver):
    for payload, ident in ((b'{"id": "c-1", "setpoint": 9601}', "c-1"),
                           (b'{"id": true, "setpoint": 1}', None),
                           (b'{"id": "%s", "setpoint": 1}' % (b"x" * 33), None)):
        got = driver.run("profile", b=payload)
        (topic, msg), = [json.loads(m) for m in got["out"]]
        ack = json.loads(msg)
        assert not got["ok"] and not got["changed"] and ack["id"] == ident, (payload, ack)
    got = driver.run("profile", b=b'{"id": 7, "setpoint": 9600}')
    assert got["ok"] and got["changed"]


# --- the replay tool's CSVs (tools/sim.py, CPython) ------------------------------------------

CELL = st.one_of(
    st.integers(-10, 100000).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "1e400", "null", "na", " 12 ", "1,5",
                     "2026-11-26T18:30:00Z", "2026-11-26 18:30", "0", "0.0", "1e20", "-0"]),
    TEXT)


@st.composite
def csv_files(draw):
    cols = ["Time", "total", "ev"]
    if draw(st.integers(0, 4)) == 0:
        cols = draw(st.lists(st.sampled_from(cols + ["x", ""]), max_size=4))
    lines = [",".join(cols)]
    t = draw(st.integers(0, 1 << 31))
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["good"] * 6 + ["cell", "time", "time", "raw"]))
        t += draw(st.sampled_from([1] * 8 + [10, 60, 0, -5]))
        row = [str(t), str(draw(st.integers(0, 20000))), str(draw(st.integers(0, 7680)))]
        if kind == "time":
            row[0] = draw(st.one_of(CELL, st.floats(t - 2, t + 2).map(repr)))
            line = ",".join(row)
        elif kind == "cell":
            row[draw(st.integers(0, 2))] = draw(CELL)
            if draw(st.booleans()):
                row.append(draw(CELL))
            line = ",".join(row)
        elif kind == "raw":
            line = draw(TEXT)
        else:
            line = ",".join(row)
        if draw(st.integers(0, 5)) == 0 and "." not in row[0]:
            line = line.replace(str(t), "%d.%d" % (t, draw(st.integers(0, 9))), 1)
        lines.append(line)
    text = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        text = draw(st.binary(max_size=200))
    return text


def test_replay_csvs(tmp_path, capsys):
    counts = {"cases": 0, "taken": 0, "refused": 0}
    path = tmp_path / "house.csv"

    @fuzz(csv_files(), n=CASES * 2)
    def check_csv(data):
        path.write_bytes(data)
        counts["cases"] += 1
        try:
            rows, t0 = sim.read_csv(str(path), None, "total", ["ev"])
        except sim.InputError as e:
            counts["refused"] += 1
            assert "\n" not in str(e) and str(e).startswith(str(path) + ":"), str(e)
            return
        counts["taken"] += 1
        # what main() does with the rows before the controller sees them
        out, step, clipped, missing = sim.prepare(rows, 300)
        assert step >= 1 and out
        # (a row is (second, ...): the columns after it grew with tools/sim.py's options)
        assert all(isinstance(r[0], int) for r in out)
        assert [r[0] for r in out] == sorted({r[0] for r in out})
    check_csv()
    report(capsys, "replay CSVs (tools/sim.py read_csv, prepare)", counts)
    assert counts["cases"] >= CASES * 2


# --- what the fuzzing found, each fixed and kept here -------------------------------------

def test_found_push_of_a_non_string_is_one_line(driver):
    # cfg.push(None) raised a TypeError traceback at the REPL (consolecfg._read).
    got = driver.run("cfg", m="push", a=[None])
    assert got["out"] == ["error: path must be the name of the copied file, like 'new.json', "
                          "got None; nothing changed"], got
    assert not got["changed"]


def test_found_a_pushed_file_that_is_not_text_is_one_line(driver):
    # cfg.push of a file with a byte that is not UTF-8 raised a UnicodeError traceback.
    got = driver.run("cfg", m="push", a=["pushed.json"], file=b'{"band_pct": 5\x80}')
    assert len(got["out"]) == 1 and got["out"][0].startswith("error: push of pushed.json "
                                                              "refused: config file is corrupt "
                                                              "(not UTF-8 text)"), got
    assert not got["changed"]


def test_found_a_push_refused_is_one_line(driver):
    # A pushed file refused printed each of its rejected keys first, then the refusal.
    data = json.loads(json.dumps(_good_config()))
    data["panel_rating_a"] = None
    data["band_pct"] = "wide"
    got = driver.run("cfg", m="push", a=["pushed.json"], file=json.dumps(data).encode())
    assert len(got["out"]) == 1, got["out"]
    assert got["out"][0].startswith("error: push of pushed.json refused: config file is corrupt "
                                    "or incomplete (panel_rating_a): "), got["out"]
    assert "(2 problems in all)" in got["out"][0]
    assert not got["changed"]


def test_found_a_config_file_that_is_not_text_boots_in_safe_mode(driver):
    # A config.json with a byte that is not UTF-8 (a flipped bit) crashed config.load at boot
    # with a UnicodeError instead of safe mode.
    got = driver.run("config", b=b'\x80{"band_pct": 5}')
    assert got["out"] == ["config: SAFE MODE: config file is corrupt (not UTF-8 text)"], got


def test_found_a_key_with_a_newline_is_rejected_on_one_line(driver):
    # A key read from the file was printed as it was: one with a newline made two lines.
    data = json.loads(json.dumps(_good_config()))
    data["band\npct"] = 5
    data["ct"]["L1"]["gain\n"] = 1
    data["loads"][0]["name"] = "water\nheater"
    got = driver.run("config", b=json.dumps(data).encode())
    assert all("\n" not in line for line in got["out"]), got["out"]
    assert "config: rejected 'band\\npct': unknown setting, ignored" in got["out"]
    assert "config: rejected ct.L1.'gain\\n': unknown CT setting, ignored" in got["out"]
    assert any(line.startswith("config: SAFE MODE: ") and "loads[0]" in line
               for line in got["out"]), got["out"]


@pytest.mark.parametrize("rows, problem", [
    ("nan,0,0\n2,0,0", "2: bad time 'nan'"),                 # crashed prepare() (NaN to int)
    ("1,0,0\ninf,0,0", "3: bad time 'inf'"),                 # crashed prepare() (overflow)
    ("1,0,0\n1e300,0,0", "3: bad time '1e300'"),             # a replay that never ends
    ("1.1,0,0\n1.2,0,0", "3: the rows span less than a second"),   # crashed prepare()
    ("0,0,0\n86400000,0,0", "3: the rows span 1000 days"),
])
def test_found_replay_csvs_refused_in_one_line(tmp_path, rows, problem):
    path = tmp_path / "house.csv"
    path.write_text("Time,total,ev\n" + rows + "\n")
    with pytest.raises(sim.InputError) as e:
        sim.read_csv(str(path), None, "total", ["ev"])
    assert str(e.value).startswith("%s:%s" % (path, problem)), str(e.value)
