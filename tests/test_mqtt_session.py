"""net.MqttLink's session rules from docs/mqtt.md, against mosquitto (and, where a broker
must fall silent, a fake one that answers CONNACK and SUBACK and nothing after): the
keepalive ping every 30 s and the close after 60 s without a byte from the broker, the last
will the broker sends when the link dies, the backoff reset after 30 s connected, and the
inbound queue of 4. The link's deadlines run on an injected clock that the script moves, so
the 30 s and 60 s are simulated, not waited for."""
import json
import time

from conftest import MICROPYTHON, ROOT, mpy_env
from mqtt_helpers import Broker, Client, JsonLinesProcess, _Server, read_packet

SCRIPT = r"""
import sys, json, time, asyncio, net
opts = json.loads(sys.argv[1])
from fakeclock import FakeClock
clock = FakeClock(20000)       # the link's clock: moved only by the script
class Backoff(net.Backoff):
    resets = 0
    def reset(self):
        Backoff.resets += 1
        net.Backoff.reset(self)
backoff = Backoff(200, 400, rand=lambda n: 0)
link = net.MqttLink('sess-' + opts['scenario'], '127.0.0.1', opts['port'], clock,
                    status_topic='ss/status', subscribe_topic='ss/cmd/#', backoff=backoff,
                    log=lambda line: None)
pings = []
real_ping = link.ping
def ping():
    pings.append(clock.ticks_diff(clock.t, link._up_since))
    real_ping()
link.ping = ping
def say(**kw):
    kw['info'] = link.info()
    kw['resets'] = Backoff.resets
    print(json.dumps(kw))
from asyncwait import until
async def connected_for(ms):
    # Moves the link's clock 5 s at a time; after each step the link's task makes a pass
    # (its heartbeat shows the new time) before the next, as a board's would within 200 ms.
    t0 = link._up_since
    while link.connected and clock.ticks_diff(clock.t, t0) < ms:
        clock.advance(5000)
        await until(lambda: link.heartbeat_ms == clock.t or not link.connected, 5000)
    return clock.ticks_diff(clock.t, t0)
async def main():
    asyncio.create_task(link.run())
    s = opts['scenario']
    say(step='connected', ok=await until(lambda: link.connected, 10000))
    if s == 'will':
        await asyncio.sleep_ms(60000)        # killed by the test
    elif s == 'inbox':
        ok = await until(lambda: link.received >= 6, 10000)
        msgs = []
        while link.inbox.n:
            t, m = link.inbox.get()
            msgs.append(m.decode())
        say(step='inbox', ok=ok, msgs=msgs)
    elif s == 'keepalive':
        held = await connected_for(opts['seconds'] * 1000)
        await asyncio.sleep_ms(300)
        say(step='end', held_ms=held, pings=pings, connected=link.connected,
            error=link.last_error)
    elif s == 'backoff':
        await connected_for(10000)
        link._raw.close()                    # the connection drops after 10 s
        ok = await until(lambda: link.failures == 1, 5000)
        say(step='short', ok=ok)
        t0 = time.ticks_ms()                 # the backoff runs on the link's clock: move it
        while not link.connected and time.ticks_diff(time.ticks_ms(), t0) < 10000:
            clock.advance(100)
            await asyncio.sleep_ms(20)
        say(step='again', ok=link.connected)
        await connected_for(35000)
        link._raw.close()                    # and after 35 s
        ok = await until(lambda: link.failures == 2, 5000)
        say(step='long', ok=ok)
    link.deinit()
asyncio.run(main())
"""


class Session(JsonLinesProcess):
    def __init__(self, opts):
        self.lines = []
        super().__init__([MICROPYTHON, "-X", "heapsize=256k", "-c", SCRIPT, json.dumps(opts)],
                         ROOT, mpy_env())

    def handle(self, d):
        self.lines.append(d)

    def wait(self, step, timeout=30):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            for d in self.lines:
                if d.get("step") == step:
                    return d
            if self.exited():
                break
            time.sleep(0.02)
        self.kill()
        raise AssertionError("no %s: %r\n%s" % (step, self.lines, self.stderr_tail()))


class Silent(_Server):
    """Answers CONNECT and SUBSCRIBE, then reads and says nothing; counts PINGREQs."""

    def __init__(self):
        self.pingreqs = 0
        super().__init__()

    def serve(self, conn):
        conn.settimeout(30)
        try:
            while True:
                head, body = read_packet(conn)
                if head == 0x10:
                    conn.sendall(b"\x20\x02\x00\x00")
                elif head == 0x82:
                    conn.sendall(b"\x90\x03" + body[:2] + b"\x00")
                elif head == 0xC0:
                    self.pingreqs += 1       # never answered
        except (OSError, ConnectionError, IndexError, ValueError):
            pass


def test_keepalive_pings_every_30_s_and_a_broker_silent_60_s_is_left():
    with Silent() as server:
        s = Session({"scenario": "keepalive", "port": server.port, "seconds": 120})
        assert s.wait("connected")["ok"], s.lines
        end = s.wait("end")
        s.finish()
    # A ping at 30 s, none answered: closed once 60 s passed without a byte from the broker.
    assert end["pings"][:1] == [30000], end
    assert not end["connected"] and 60000 < end["held_ms"] <= 65000, end   # 5 s steps
    assert end["error"] == "no reply within the keepalive (errno 110)", end
    assert server.pingreqs >= 1


def test_keepalive_against_mosquitto_holds_the_link(tmp_path):
    with Broker(tmp_path) as broker:
        s = Session({"scenario": "keepalive", "port": broker.port, "seconds": 150})
        assert s.wait("connected")["ok"], s.lines
        end = s.wait("end")
        s.finish()
    # Pings every 30 s, each answered: the link is up after 150 s, on its first connection.
    assert end["pings"] == [30000, 60000, 90000, 120000, 150000], end
    assert end["connected"] and end["info"]["connects"] == 1, end


def test_the_broker_sends_the_last_will_when_the_link_dies(tmp_path):
    with Broker(tmp_path) as broker:
        sub = Client(broker.port, "watch")
        sub.subscribe("ss/status")
        s = Session({"scenario": "will", "port": broker.port})
        assert s.wait("connected")["ok"], s.lines
        assert sub.wait_for(lambda m: m[1] == b"online", 10)
        s.kill()                             # no DISCONNECT: the TCP connection just ends
        will = sub.wait_for(lambda m: m[0] == "ss/status", 10)
        sub.close()
        late = Client(broker.port, "late")
        late.subscribe("ss/status")
        kept = late.wait_for(lambda m: m[0] == "ss/status", 5)
        late.close()
    assert will is not None and will[1] == b"offline", will
    assert kept is not None and kept[1] == b"offline" and kept[2], kept   # retained


def test_backoff_resets_only_after_30_s_connected(tmp_path):
    with Broker(tmp_path) as broker:
        s = Session({"scenario": "backoff", "port": broker.port})
        assert s.wait("connected")["ok"], s.lines
        short = s.wait("short")
        assert short["ok"] and short["resets"] == 0, short      # 10 s: the backoff goes on
        assert s.wait("again")["ok"], s.lines
        long = s.wait("long")
        s.finish()
    assert long["ok"] and long["resets"] == 1, long             # 35 s: reset


def test_the_inbound_queue_holds_the_4_newest_commands(tmp_path):
    with Broker(tmp_path) as broker:
        s = Session({"scenario": "inbox", "port": broker.port})
        assert s.wait("connected")["ok"], s.lines
        pub = Client(broker.port, "pub")
        for i in range(6):
            pub.publish("ss/cmd/limit", '{"n": %d}' % i)
        got = s.wait("inbox")
        pub.close()
        s.finish()
    # Nobody took them: the two oldest were dropped, and counted.
    assert got["ok"] and got["msgs"] == ['{"n": %d}' % i for i in range(2, 6)], got
    assert got["info"]["inbox_dropped"] == 2 and got["info"]["received"] == 6, got
