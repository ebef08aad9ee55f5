"""Generated grid messages (issue 19 item 3): none may crash, stall or, refused, change anything.
Schedules come whole or in pages (item 2): pages of one or two ids, in or out of order, some
missing, some twice, some malformed; none may leave a schedule or its pages over their bounds.

hypothesis (pinned in requirements.txt) draws messages in CPython: schedules, reservations,
answers, acks, cancels, emergencies and times, built from valid pieces mixed with the wrong
ones (a list where a name belongs, unknown fields, days that do not exist, sub-amp limits,
NaN, huge numbers, broken JSON); one micropython process (tests/grid_fuzz_driver.py, the
32-bit port) applies each case to a fresh Grid through commands.handle and reports what
broke. Seeded (hypothesis seed 19, database=None): the same cases every run of the same
tests, wherever the repository lies (derandomize would seed from the test's own digest).
(conftest.py keeps hypothesis from drawing constants from the local modules loaded, so the
test files run before this one do not change the cases: 1,000 cases, 3,079 messages, 1,263
pages taken, 189 paged schedules completed.) A driver that does not answer a case within
60 s has stalled.

PANELCAP_GRID_CASES=N for a longer search (default 1,000).
"""
import json
import math
import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import MICROPYPATH, ROOT  # noqa: E402
from jsonpipe import JsonPipe  # noqa: E402

DRIVER = Path(__file__).resolve().parent / "grid_fuzz_driver.py"
CASES = int(os.environ.get("PANELCAP_GRID_CASES", "1000"))
SEED = 19

# --- the generator --------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 40), 1 << 40) |
    st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6)


def mixed(*good):
    """One of the listed values (right and wrong ones) mostly, else anything."""
    pick = st.sampled_from(good)
    return st.one_of(pick, pick, pick, JSON)


TIMES = mixed("2026-11-26T18:05:00Z", "2026-11-26T18:00:00+00:00", "2026-11-27T00:00:00Z",
              "2026-02-30T00:00:00Z", "2026-11-31T10:00:00Z", "2026-11-26T+1:00:00Z",
              "2026-11-26T17:00:00Z", "2026-12-26T18:00:00Z", 1795716300, 1795716000 - 3600,
              "2026-11-26 18:05:00Z", "2026-11-26T24:00:00Z")
DURATIONS = mixed("PT5M", "PT1H", "PT30S", "P1D", "P8D", "PT", "PT1H1H", "P1DT", "PT-1M",
                  60, 0, -1, 604801, 1.5, "PT1.5H")
TYPES = mixed("IMPORT_CAPACITY_LIMIT", "EXPORT_CAPACITY_LIMIT", ["IMPORT_CAPACITY_LIMIT"],
              "PRICE")
UNITS = mixed("KW", "W", "A", ["A"], "MW")
VALUES = st.one_of(st.sampled_from([5, 7.2, 0, 0.5, 0.999, 1, 40, 2000, 2001, -1, 500, 501,
                                    True, "5", None, math.nan, math.inf, 1e300, 10 ** 20]),
                   st.floats(-10, 3000), JSON)
EXTRA = st.dictionaries(st.sampled_from(["x", "limit_w", "randomizeStart", "units", "id",
                                         "targets", "priority"]), JSON, max_size=1)


def maybe(d, key, strat):
    return st.one_of(st.just(d), strat.map(lambda v: dict(d, **{key: v})))


@st.composite
def payload_obj(draw):
    p = {"type": draw(TYPES), "values": draw(st.one_of(VALUES.map(lambda v: [v]),
                                                       st.lists(VALUES, max_size=2), JSON))}
    if draw(st.booleans()) and draw(st.integers(0, 4)) == 0:
        p.update(draw(EXTRA))
    return p


@st.composite
def interval(draw):
    iv = {"payloads": draw(st.lists(payload_obj(), max_size=3))}
    if draw(st.integers(0, 3)) == 0:
        ip = {}
        if draw(st.booleans()):
            ip["start"] = draw(TIMES)
        if draw(st.booleans()):
            ip["duration"] = draw(DURATIONS)
        if draw(st.integers(0, 4)) == 0:
            ip.update(draw(EXTRA))
        iv["intervalPeriod"] = draw(st.one_of(st.just(ip), JSON)) \
            if draw(st.integers(0, 5)) == 0 else ip
    if draw(st.integers(0, 5)) == 0:
        iv.update(draw(EXTRA))
    return iv


@st.composite
def paged(draw, k=None, n=None, sid=None):
    """A page of a small schedule (ids s1 and s2, 2 or 3 pages, page k 15 minutes after page
    k - 1), well formed three times in four, so that pages complete a schedule; else with
    one thing wrong: page, pages or id drawn from right and wrong ones, one of them left
    out, a longer duration (overlapping the next page), a bad value, or any schedule's
    fields over it."""
    n = n or draw(st.sampled_from([2, 3, 3]))
    k = k or draw(st.integers(1, n))
    count = draw(st.sampled_from([1, 2, 2, 3]))
    sid = sid or draw(st.sampled_from(["s1", "s1", "s2"]))
    ev = {"id": sid, "page": k, "pages": n,
          "intervalPeriod": {"start": "2026-11-26T18:%02d:00Z" % (5 + 15 * (k - 1)),
                             "duration": "PT5M"},
          "intervals": [{"payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5 + i]}]}
                        for i in range(count)]}
    fault = draw(st.integers(0, 21)) if draw(st.integers(0, 3)) == 0 else -1
    if 0 <= fault < 3:
        ev[("page", "pages", "id")[fault]] = draw(mixed(0, 1, 2, 4, 9, "2", True, 7, "s3"))
    elif 3 <= fault < 6:
        del ev[("page", "pages", "id")[fault - 3]]
    elif 6 <= fault < 10:
        ev["intervalPeriod"]["duration"] = draw(mixed("PT10M", "PT20M", 0, "PT1H1H"))
    elif fault == 10:
        ev["intervals"][0]["payloads"][0]["values"] = [draw(VALUES)]
    elif fault == 11:
        del ev["intervalPeriod"]["start"]
    elif fault == 12:
        ev["intervals"] = []
    elif fault >= 13:
        ev.update(draw(schedule()))     # another schedule's fields over it
    return ev


@st.composite
def schedule(draw):
    ev = {"intervals": draw(st.one_of(st.lists(interval(), max_size=5), JSON)
                            if draw(st.integers(0, 8)) == 0 else st.lists(interval(), max_size=5))}
    period = {}
    if draw(st.integers(0, 2)):
        period["start"] = draw(TIMES)
    if draw(st.integers(0, 3)):
        period["duration"] = draw(DURATIONS)
    ev["intervalPeriod"] = period
    if draw(st.booleans()):
        ev["payloadDescriptors"] = draw(st.lists(
            st.fixed_dictionaries({"payloadType": TYPES, "units": UNITS}), max_size=2))
    if draw(st.integers(0, 3)) == 0:
        ev.update(draw(EXTRA))
    if draw(st.booleans()):
        ev["eventName"] = draw(mixed("doe-1", "x" * 50))
    return ev


IDS = mixed("r0000", "r0001", "r0002", "r0003", "r9999")
OTHERS = {
    "reserve": st.fixed_dictionaries({}, optional={
        "start": TIMES, "duration_s": DURATIONS, "extra_w": mixed(1, 1000, 4600, 4601, 0),
        "max_fee_cents": mixed(0, 30, 1000001), "accept": IDS, "id": mixed("ev-1", 7)}),
    "answer": st.fixed_dictionaries({"id": IDS, "status": mixed("granted", "fee", "denied",
                                                                "refused"),
                                     "fee_cents": mixed(0, 29, 30, 31, -1)},
                                    optional={"offers": JSON, "reason": JSON}),
    "ack": st.fixed_dictionaries({}, optional={"n": mixed(1, 2, 3, 0), "id": IDS}),
    "cancel": st.fixed_dictionaries({}, optional={"id": IDS}),
    "emergency": st.fixed_dictionaries({}, optional={"share_pct": mixed(0, 50, 100, 101, None),
                                                     "duration_s": mixed(1, 60, 86401)}),
    "time": st.fixed_dictionaries({}, optional={"unix_s": mixed(1795716000, 1704067199, 5)}),
    "log": st.fixed_dictionaries({}, optional={"id": JSON}),
}


@st.composite
def message(draw):
    sub = draw(st.sampled_from(["limits"] * 5 + ["answer", "reserve"] + sorted(OTHERS) +
                               ["nosuch"]))
    if sub == "limits":
        obj = draw(paged() if draw(st.booleans()) else schedule())
    else:
        obj = draw(OTHERS.get(sub, JSON))
    if draw(st.integers(0, 6)) == 0:
        obj = draw(JSON)                     # anything at all, in place of the object
    text = json.dumps(obj)                   # NaN and Infinity as Python writes them
    cut = draw(st.integers(0, 12))
    if cut == 0:
        text = text[:draw(st.integers(0, len(text)))]       # broken JSON
    elif cut == 1:
        text = draw(st.text(max_size=40))
    ms = draw(st.sampled_from([0, 0, 0, 1000, 10000, 61000]))
    return [sub, text, ms]


@st.composite
def page_run(draw):
    """The pages of one paged schedule in any order, one sometimes left out or sent twice, a
    page of another id sometimes among them, a message of any kind sometimes after."""
    n = draw(st.integers(2, 4))
    ks = list(draw(st.permutations(range(1, n + 1))))
    if draw(st.integers(0, 3)) == 0:
        ks.pop(draw(st.integers(0, n - 1)))
    if draw(st.integers(0, 3)) == 0:
        ks.insert(draw(st.integers(0, len(ks))), draw(st.sampled_from(ks)))
    msgs = [["limits", json.dumps(draw(paged(k, n, "s1"))), 0] for k in ks]
    if draw(st.integers(0, 3)) == 0:
        msgs.insert(draw(st.integers(0, len(msgs))),
                    ["limits", json.dumps(draw(paged(None, None, "s2"))), 0])
    if draw(st.integers(0, 2)) == 0:
        msgs.append(draw(message()))
    return {"msgs": msgs}


CASE = st.one_of(st.fixed_dictionaries({"msgs": st.lists(message(), min_size=1, max_size=4)}),
                 page_run())


# --- the driver ------------------------------------------------------------------------------

class Driver(JsonPipe):
    def __init__(self):
        super().__init__(DRIVER, "512k", dict(os.environ, MICROPYPATH=MICROPYPATH), ROOT)

    def replay(self, case):
        return self.ask(json.dumps(case), what=json.dumps(case)[:2000])


def search(driver, max_examples):
    """Runs max_examples generated cases; returns (cases, messages, accepted, refused, pages
    accepted, paged schedules completed)."""
    tally = [0, 0, 0, 0, 0, 0]

    @seed(SEED)
    @settings(max_examples=max_examples, derandomize=False, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False,
              phases=[Phase.explicit, Phase.generate, Phase.shrink])
    @given(CASE)
    def prop(case):
        out = driver.replay(case)
        tally[0] += 1
        tally[1] += len(case["msgs"])
        tally[2] += out["ok"]
        tally[3] += out["refused"]
        tally[4] += out["pages"]
        tally[5] += out["whole"]
        assert not out["bad"], "%s\nreplay: %s" % (out["bad"], json.dumps(case))

    prop()
    return tally


def test_generated_grid_messages_never_crash_stall_or_change_state_when_refused(capsys):
    driver = Driver()
    try:
        cases, msgs, ok, refused, pages, whole = search(driver, CASES)
    finally:
        driver.close()
    with capsys.disabled():
        print("\ngrid fuzz: %d cases, %d messages (%d accepted, %d refused; %d pages taken, "
              "%d paged schedules completed), hypothesis seed %d"
              % (cases, msgs, ok, refused, pages, whole, SEED))
    assert cases >= CASES
    # The generator reaches both sides: refusals, and messages taken; pages held and
    # schedules completed from them.
    assert ok >= cases // 20 and refused >= cases // 2, (ok, refused)
    assert pages >= cases // 20 and whole >= 5, (pages, whole)
