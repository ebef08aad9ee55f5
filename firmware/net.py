"""The network edge: Wi-Fi station mode and an MQTT link that never holds the scheduler.

Every call here returns within a few milliseconds: sockets are non-blocking, each wait polls
and yields, each wait has a deadline, and outages are normal states, not exceptions that
reach the control path. The control path and this module meet only at two bounded queues
(`MqttLink.outbox` for telemetry and events, `MqttLink.inbox` for commands).

Why umqtt.simple is extended rather than used as is: its connect() resolves the host, opens
the TCP connection and waits for CONNACK in one blocking call, subscribe() and QoS 1 publish
wait for the broker's answer, and wait_msg() switches the socket back to blocking in the
middle of a packet. A silent broker would freeze every task. So MqttLink keeps umqtt's
packet code (publish, ping, disconnect, the PUBLISH parser and its callback) but gives it an
in-memory `_Pipe` as its socket: umqtt writes packets into a bounded buffer that the link
flushes without blocking, and umqtt reads only a packet the link has already received whole.
The two operations that must wait for the broker (CONNECT/CONNACK, SUBSCRIBE/SUBACK) are
done here, with deadlines.
"""
# Over 500 lines because MqttLink is umqtt.simple's client with each of its blocking steps
# replaced (connect, subscribe, receive, keepalive) and its queues beside it: split, the
# link's socket, pipe and deadlines would be state shared across modules.

import asyncio
import errno
import select
import socket

from micropython import const
from umqtt.simple import MQTTClient, MQTTException

from backoff import Backoff, describe_error  # noqa: F401 (net.Backoff for the link's users)

_POLL_MS = const(20)            # poll period while waiting on a socket operation
_IDLE_MS = const(200)           # poll period of a connected, quiet link
_RX_SIZE = const(1024)          # largest packet accepted from the broker (commands are small)
_TX_SIZE = const(2048)          # outgoing bytes buffered; a publish waits in the queue if full
_WRITE_CHUNK = const(1460)      # bytes handed to the socket per write call
_MAX_PACKETS_PER_PASS = const(4)
_STABLE_MS = const(30000)       # a connection that lived this long resets the backoff
_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY)
_POLL_FAIL = const(0x18)        # POLLERR | POLLHUP

_CONNACK_REASONS = ("accepted", "unacceptable protocol version", "client id rejected",
                    "server unavailable", "bad user name or password", "not authorised")


class Oversized:
    """The payload of a message skipped for its size: only its length is known. It goes to
    the inbox in the payload's place, so the command layer refuses it in one line naming its
    limit (commands.py) and the sender hears of it, where a silent skip told no one."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


class DropQueue:
    """A bounded FIFO that, when full, drops its oldest item and counts it."""

    def __init__(self, size):
        self._items = [None] * size
        self._head = 0
        self.n = 0
        self.dropped = 0

    def put(self, item):
        size = len(self._items)
        if self.n == size:
            self._head = (self._head + 1) % size
            self.n -= 1
            self.dropped += 1
        self._items[(self._head + self.n) % size] = item
        self.n += 1

    def peek(self):
        return self._items[self._head] if self.n else None

    def get(self):
        if not self.n:
            return None
        item = self._items[self._head]
        self._items[self._head] = None
        self._head = (self._head + 1) % len(self._items)
        self.n -= 1
        return item

    def room(self):
        return len(self._items) - self.n


class Outbox:
    """The link's bounded FIFO of outgoing (topic, msg, retain), with room that periodic
    readings cannot take. Readings (state, diag, profile readings: each superseded by the
    next) hold at most `readings` slots, drop-oldest among themselves; events (command acks,
    grid notices, retained announcements: each must go out) may use every slot, and a full
    queue makes room for one by evicting the oldest reading, never an event while a reading
    is queued. Only events flooding all `readings + events` slots drop an event (oldest
    first, counted in `events_dropped`). Fixed size: the slots are preallocated."""

    def __init__(self, readings, events):
        size = readings + events
        self._items = [None] * size
        self._event = bytearray(size)    # 1 where the slot holds an event
        self._head = 0
        self.n = 0
        self.readings = 0                # readings queued
        self.max_readings = readings
        self.dropped = 0                 # everything dropped, events included
        self.events_dropped = 0

    def put(self, item, event=False):
        """Queue item; drops (and counts) one message when there is no room for it."""
        size = len(self._items)
        if event:
            if self.n == size:
                self._evict(self.readings == 0)
        elif self.readings >= self.max_readings or self.n == size:
            if not self.readings:
                self.dropped += 1        # every slot holds an event: this reading goes
                return
            self._evict(False)
        i = (self._head + self.n) % size
        self._items[i] = item
        self._event[i] = 1 if event else 0
        self.n += 1
        if not event:
            self.readings += 1

    def _evict(self, event):
        # The oldest message of this kind goes; the ones behind it move up one slot.
        items = self._items
        flags = self._event
        size = len(items)
        h = self._head
        want = 1 if event else 0
        k = 0
        while flags[(h + k) % size] != want:
            k += 1
        while k < self.n - 1:
            i = (h + k) % size
            j = (i + 1) % size
            items[i] = items[j]
            flags[i] = flags[j]
            k += 1
        items[(h + self.n - 1) % size] = None
        self.n -= 1
        self.dropped += 1
        if event:
            self.events_dropped += 1
        else:
            self.readings -= 1

    def peek(self):
        return self._items[self._head] if self.n else None

    def get(self):
        if not self.n:
            return None
        h = self._head
        item = self._items[h]
        self._items[h] = None
        if not self._event[h]:
            self.readings -= 1
        self._head = (h + 1) % len(self._items)
        self.n -= 1
        return item

    def room(self):
        """Free slots: what send() may fill without evicting anything."""
        return len(self._items) - self.n


class _Pipe:
    """What umqtt.simple sees as its socket. write() appends to a preallocated buffer and
    raises when it is full (it never waits); read() serves the one whole packet the link
    loaded, so umqtt's 'blocking' reads inside wait_msg() always return at once."""

    def __init__(self, size):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.start = 0           # first byte not yet written to the socket
        self.end = 0             # end of buffered bytes
        self._pkt = None         # memoryview of the packet being parsed
        self._pos = 0

    def pending(self):
        return self.end - self.start

    def free(self):
        return len(self.buf) - self.pending()

    def write(self, data, n=-1):
        if isinstance(data, str):
            data = data.encode()
        if n < 0:
            n = len(data)
        if self.end + n > len(self.buf):
            rem = self.end - self.start
            if rem + n > len(self.buf):
                raise OSError(errno.ENOBUFS)
            self.buf[0:rem] = bytes(self.mv[self.start:self.end])
            self.start = 0
            self.end = rem
        self.mv[self.end:self.end + n] = memoryview(data)[:n]
        self.end += n
        return n

    def sent(self, n):
        self.start += n
        if self.start >= self.end:
            self.start = self.end = 0

    def load(self, packet):
        self._pkt = packet
        self._pos = 0

    def read(self, n):
        pkt = self._pkt
        if pkt is None:
            return None          # check_msg() with nothing loaded: "no message"
        i = self._pos
        if i + n > len(pkt):
            raise OSError(errno.EIO)     # the packet is shorter than its own fields say
        self._pos = i + n
        return bytes(pkt[i:i + n])

    def unread(self):
        return 0 if self._pkt is None else len(self._pkt) - self._pos

    def setblocking(self, flag):
        pass

    def close(self):
        pass


def _bytes(s):
    # umqtt.simple counts len() of what it sends: a str holding non-ASCII text would be
    # sent with a wrong length and corrupt the stream. Bytes are counted right.
    return s.encode() if isinstance(s, str) else s


def _put_varint(pipe, n):
    b = bytearray(4)
    i = 0
    while True:
        b[i] = (n & 0x7F) | (0x80 if n > 0x7F else 0)
        n >>= 7
        i += 1
        if not n:
            break
    pipe.write(b, i)


class MqttLink(MQTTClient):
    """An MQTT 3.1.1 session kept up by its own task (`run()`), with QoS 0 publishing from
    a bounded queue (Outbox: readings drop-oldest in `outbox_size` slots, events with
    `event_slots` more that readings never take) and incoming messages on `subscribe_topic` delivered to a bounded
    inbox. Its status topic is retained: "online" once connected, "offline" as its will.

    clock: ticks_ms/ticks_diff/ticks_add for socket deadlines (the host's real clock in the
    simulator: deadlines are about real sockets). wifi: an object with `up`, or None.
    resolve(host, port) -> address; injected in tests, socket.getaddrinfo otherwise.
    """

    def __init__(self, client_id, host, port, clock, user=None, password=None, tls=False,
                 ca_file="", keepalive_s=60, status_topic=None, subscribe_topic=None,
                 outbox_size=4, event_slots=2, inbox_size=4, connect_timeout_ms=5000,
                 response_timeout_ms=5000, write_timeout_ms=5000, backoff=None, wifi=None,
                 resolve=None, log=print):
        MQTTClient.__init__(self, client_id, host, port or (8883 if tls else 1883),
                            user=user or None, password=password or None,
                            keepalive=keepalive_s)
        self._clock = clock
        self._ca_file = ca_file
        self._ca_der = None          # the CA certificate, read once
        self._tls = tls
        self.status_topic = status_topic
        self.subscribe_topic = subscribe_topic
        self.outbox = Outbox(outbox_size, event_slots)
        self._event_topics = []      # topics whose publish() is an event (events())
        self.inbox = DropQueue(inbox_size)
        self.connect_timeout_ms = connect_timeout_ms
        self.response_timeout_ms = response_timeout_ms
        self.write_timeout_ms = write_timeout_ms
        self._backoff = backoff or Backoff(1000, 60000)
        self._wifi = wifi
        self._resolve = resolve or _getaddrinfo
        self._log = log
        if status_topic:
            self.set_last_will(status_topic, b"offline", retain=True)
        self.set_callback(self._on_message)
        self._routes = None          # {topic: handler} taken before the inbox (route())
        self.pipe = _Pipe(_TX_SIZE)
        self._rx = bytearray(_RX_SIZE)
        self._rxmv = memoryview(self._rx)
        self._rx_len = 0
        self._skip = 0               # bytes of an oversized packet still to discard
        self._io = None              # the real (possibly TLS) socket
        self._raw = None
        self._poller = None
        self._addr = None
        self._write_since = None     # ticks when buffered output first waited
        self._last_rx = 0
        self._last_ping = 0
        self._up_since = 0
        self.connected = False
        self.state = "starting"
        self.last_error = None
        # Counters (telemetry).
        self.connects = 0
        self.failures = 0
        self.published = 0
        self.received = 0
        self.oversized = 0
        self.heartbeat_ms = None

    # --- what other tasks call: never waits ----------------------------------------------
    def publish(self, topic, msg, retain=False, qos=0):
        """Queue a QoS 0 message: a periodic reading (drop-oldest among readings), or an
        event if its topic was declared with events()."""
        if qos:
            raise ValueError("only QoS 0 is sent: QoS 1 would wait for the broker")
        topic = _bytes(topic)
        self.outbox.put((topic, _bytes(msg), retain), topic in self._event_topics)

    def publish_event(self, topic, msg, retain=False):
        """Queue a message that must go out (a command's ack, a notice): readings never
        take its room, and a full queue evicts the oldest reading for it."""
        self.outbox.put((_bytes(topic), _bytes(msg), retain), True)

    def events(self, topic):
        """Every later publish() on `topic` is an event (publish_event())."""
        self._event_topics.append(_bytes(topic))

    async def send(self, topic, msg, retain=False, timeout_ms=10000):
        """Queue a message without dropping one (discovery, retained state, grid requests):
        on a connected link once the queue is empty, so a burst of them holds one message's
        RAM at a time, not a full queue's; on a link that is down, if the queue has room (it
        goes out after the reconnect). Queued as an event: later readings never evict it.
        False if it could not be queued: the link is down with a full queue, or the wait
        timed out."""
        clock = self._clock
        t0 = clock.ticks_ms()
        while self.outbox.n:
            if not self.connected:
                if self.outbox.room():
                    break
                return False
            if clock.ticks_diff(clock.ticks_ms(), t0) > timeout_ms:
                return False
            await asyncio.sleep_ms(_POLL_MS)
        self.outbox.put((_bytes(topic), _bytes(msg), retain), True)
        return True

    async def drained(self, timeout_ms=10000):
        """Wait until the queue is empty; False if the link went down or time ran out."""
        clock = self._clock
        t0 = clock.ticks_ms()
        while self.outbox.n:
            if not self.connected or clock.ticks_diff(clock.ticks_ms(), t0) > timeout_ms:
                return False
            await asyncio.sleep_ms(_POLL_MS)
        return True

    def route(self, topic, handler):
        """Messages on `topic` go to handler(msg) (called by the link's task: it must not
        wait) instead of the inbox, and are not counted as received commands."""
        if self._routes is None:
            self._routes = {}
        self._routes[_bytes(topic)] = handler

    def subscribe(self, topic):
        """Sends a SUBSCRIBE to `topic` without waiting: True if it was queued, False (nothing
        sent) while the link is down or its buffer is too full. The SUBACK is skipped when it
        comes, so a refused subscription shows up as silence. Sessions start clean: subscribe
        again after every reconnect (`connects` counts them)."""
        topic = _bytes(topic)
        if not self.connected or self.pipe.free() <= len(topic) + 8:
            return False
        self._subscribe_packet(topic)
        return True

    def info(self):
        return {"state": self.state, "connects": self.connects, "failures": self.failures,
                "published": self.published, "received": self.received,
                "dropped": self.outbox.dropped, "events_dropped": self.outbox.events_dropped,
                "inbox_dropped": self.inbox.dropped,
                "oversized": self.oversized}

    # --- the task -------------------------------------------------------------------------
    async def run(self):
        clock = self._clock
        while True:
            self.heartbeat_ms = clock.ticks_ms()
            if self._wifi is not None and not self._wifi.up:
                self.state = "no network"
                await asyncio.sleep_ms(500)
                continue
            try:
                await self._session()
            except Exception as e:  # outages are normal: log one line, back off, retry
                self.last_error = describe_error(e)
            self._close()
            self.failures += 1
            up_ms = clock.ticks_diff(clock.ticks_ms(), self._up_since)
            if self.state == "connected" and up_ms >= _STABLE_MS:
                self._backoff.reset()
            delay = self._backoff.next_ms()
            self.state = "waiting"
            self._log("mqtt: %s:%d: %s; retry in %d ms" % (self.server, self.port,
                                                          self.last_error, delay))
            await self._sleep(delay)

    async def _sleep(self, ms):
        # In slices, so the heartbeat shows the task alive through a long backoff.
        clock = self._clock
        t0 = clock.ticks_ms()
        while True:
            left = ms - clock.ticks_diff(clock.ticks_ms(), t0)
            if left <= 0:
                return
            self.heartbeat_ms = clock.ticks_ms()
            await asyncio.sleep_ms(left if left < 1000 else 1000)

    async def _session(self):
        clock = self._clock
        self.state = "connecting"
        if self._addr is None:
            # Resolved once. An IP literal costs no DNS; a host name blocks once, here,
            # in the resolver (ESP-IDF has no asynchronous getaddrinfo).
            self._addr = self._resolve(self.server, self.port)
        self._raw = sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.connect(self._addr)
        except OSError as e:
            if e.args[0] not in _IN_PROGRESS:
                raise
        self._io = sock
        self._poller = select.poll()
        self._poller.register(sock, select.POLLOUT)
        await self._wait_writable(self.connect_timeout_ms, "TCP connect")
        self._poller.modify(sock, select.POLLIN)
        if self._tls:
            import mqtttls           # a plain link never loads the TLS code
            if self._ca_file and self._ca_der is None:
                self._ca_der = mqtttls.read_ca(self._ca_file)
            self._io = mqtttls.wrap(sock, self.server, self._ca_der)
            self._poller = select.poll()
            self._poller.register(self._io, select.POLLIN)
        self._rx_len = 0
        self._skip = 0
        self._reset_pipe()
        self._connect_packet()
        self._last_rx = clock.ticks_ms()
        await self._flush_all()
        op, pkt = await self._expect(0x20, self.response_timeout_ms, "CONNACK")
        if len(pkt) != 4 or pkt[1] != 2:
            raise MQTTException("malformed CONNACK")
        if pkt[3]:
            rc = pkt[3]
            why = _CONNACK_REASONS[rc] if rc < len(_CONNACK_REASONS) else "code %d" % rc
            raise MQTTException("broker refused: %s" % why)
        if self.subscribe_topic:
            self._subscribe_packet(self.subscribe_topic)
            await self._flush_all()
            op, pkt = await self._expect(0x90, self.response_timeout_ms, "SUBACK")
            if len(pkt) != 5 or pkt[4] == 0x80:
                raise MQTTException("subscription refused")
        if self.status_topic:
            MQTTClient.publish(self, self.status_topic, b"online", True)
        now = clock.ticks_ms()
        self._up_since = self._last_ping = now
        self.connected = True
        self.state = "connected"
        self.connects += 1
        self._log("mqtt: connected to %s:%d" % (self.server, self.port))
        while True:
            self.heartbeat_ms = now = clock.ticks_ms()
            self._pump()
            ka = self.keepalive * 1000
            if ka:
                if clock.ticks_diff(now, self._last_rx) > ka:
                    raise OSError(errno.ETIMEDOUT, "no reply within the keepalive")
                if clock.ticks_diff(now, self._last_ping) >= ka >> 1:
                    self._last_ping = now
                    self.ping()
            await asyncio.sleep_ms(_POLL_MS if self.pipe.pending() or self.outbox.n else _IDLE_MS)

    def deinit(self):
        """Say goodbye if connected (best effort, one non-blocking write) and close."""
        if self.connected:
            try:
                if self.status_topic:
                    MQTTClient.publish(self, self.status_topic, b"offline", True)
                MQTTClient.disconnect(self)   # writes DISCONNECT into the pipe
                self._write_some()
            except Exception:  # closing anyway
                pass
        self._close()
        self.state = "stopped"

    # --- I/O -------------------------------------------------------------------------------
    def _close(self):
        self.connected = False
        for s in (self._io, self._raw):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self._io = self._raw = self._poller = None
        self._write_since = None
        self.pipe.load(None)

    def _reset_pipe(self):
        self.pipe.start = self.pipe.end = 0
        self.pipe.load(None)
        self.sock = self.pipe      # umqtt.simple writes and reads here

    def _events(self):
        res = self._poller.poll(0)
        return res[0][1] if res else 0

    async def _wait_writable(self, timeout_ms, what):
        clock = self._clock
        t0 = clock.ticks_ms()
        while True:
            ev = self._events()
            if ev & _POLL_FAIL:
                raise OSError(errno.ECONNREFUSED, what + " failed")
            if ev & select.POLLOUT:
                return
            if clock.ticks_diff(clock.ticks_ms(), t0) > timeout_ms:
                raise OSError(errno.ETIMEDOUT, what + " timed out")
            await asyncio.sleep_ms(_POLL_MS)

    def _write_some(self):
        """Hand buffered bytes to the socket without waiting; True if all went out."""
        pipe = self.pipe
        while pipe.pending():
            n = pipe.pending()
            if n > _WRITE_CHUNK:
                n = _WRITE_CHUNK
            k = self._io.write(pipe.mv[pipe.start:pipe.start + n])
            if not k:
                break                # the socket's buffer is full (or TLS wants to read)
            pipe.sent(k)
        if pipe.pending():
            if self._write_since is None:
                self._write_since = self._clock.ticks_ms()
            return False
        self._write_since = None
        return True

    def _check_write_deadline(self):
        if self._write_since is not None and self._clock.ticks_diff(
                self._clock.ticks_ms(), self._write_since) > self.write_timeout_ms:
            raise OSError(errno.ETIMEDOUT, "broker not reading")

    async def _flush_all(self):
        while not self._write_some():
            self._check_write_deadline()
            await asyncio.sleep_ms(_POLL_MS)

    def _read_some(self):
        """Move what the socket holds into the receive buffer; raise on end of stream."""
        free = _RX_SIZE - self._rx_len
        if free <= 0:
            return 0
        n = self._io.readinto(self._rxmv[self._rx_len:])
        if n is None:
            return 0
        if n == 0:
            raise OSError(errno.ECONNRESET, "closed by the broker")
        self._last_rx = self._clock.ticks_ms()
        if self._skip:
            drop = n if n < self._skip else self._skip
            self._skip -= drop
            rest = n - drop
            if rest:
                self._rx[0:rest] = bytes(self._rxmv[drop:n])
            self._rx_len = rest
        else:
            self._rx_len += n
        return n

    def _next_packet(self):
        """Length of the whole packet at the start of the receive buffer, or 0 if it has
        not all arrived. An oversized packet is skipped (counted) as it streams in."""
        rx = self._rx
        have = self._rx_len
        if have < 2:
            return 0
        n = 0
        shift = 0
        i = 1
        while True:
            if i >= have:
                return 0
            b = rx[i]
            n |= (b & 0x7F) << shift
            i += 1
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MQTTException("malformed packet length")
        total = i + n
        if total > _RX_SIZE:
            self.oversized += 1
            self._skip = total - have
            self._rx_len = 0
            if rx[0] & 0xF0 == 0x30 and have >= i + 2:
                self._refuse_oversized(i, n, have)
            return 0
        return total if total <= have else 0

    def _refuse_oversized(self, i, n, have):
        # A PUBLISH too large to read: its topic came with its first bytes (in practice
        # always), and a command topic gets its refusal (a message routed to a device
        # handler, a reading, is only counted).
        tlen = (self._rx[i] << 8) | self._rx[i + 1]
        if have < i + 2 + tlen:
            return
        topic = bytes(self._rxmv[i + 2:i + 2 + tlen])
        routes = self._routes
        if routes is not None and topic in routes:
            return
        qos = (self._rx[0] >> 1) & 3
        self.received += 1
        self.inbox.put((topic, Oversized(n - 2 - tlen - (2 if qos else 0))))

    def _consume(self, total):
        rest = self._rx_len - total
        if rest:
            self._rx[0:rest] = bytes(self._rxmv[total:self._rx_len])
        self._rx_len = rest

    async def _expect(self, op_want, timeout_ms, what):
        """Wait for a packet of type op_want; PUBLISH and PINGRESP on the way are handled."""
        clock = self._clock
        t0 = clock.ticks_ms()
        while True:
            self._write_some()
            self._read_some()
            total = self._next_packet()
            if total:
                op = self._rx[0] & 0xF0
                if op == op_want:
                    pkt = bytes(self._rxmv[:total])
                    self._consume(total)
                    return op, pkt
                self._dispatch(total)
                continue
            if clock.ticks_diff(clock.ticks_ms(), t0) > timeout_ms:
                raise OSError(errno.ETIMEDOUT, "no %s from the broker" % what)
            ev = self._events()
            if ev & _POLL_FAIL and not ev & select.POLLIN:
                raise OSError(errno.ECONNRESET, "connection lost awaiting " + what)
            await asyncio.sleep_ms(_POLL_MS)

    def _dispatch(self, total):
        op = self._rx[0] & 0xF0
        if op == 0x30 or op == 0xD0:
            # PUBLISH or PINGRESP: umqtt.simple parses it from the pipe (and answers a QoS 1
            # PUBLISH with PUBACK into the pipe). A packet shorter than its fields raises.
            pipe = self.pipe
            pipe.load(self._rxmv[:total])
            try:
                MQTTClient.check_msg(self)
                if pipe.unread():
                    raise MQTTException("trailing bytes in a packet")
            finally:
                pipe.load(None)
        self._consume(total)

    def _pump(self):
        """One bounded pass: read and handle up to a few packets, queue what fits, write."""
        self._read_some()
        for _ in range(_MAX_PACKETS_PER_PASS):
            total = self._next_packet()
            if not total:
                break
            self._dispatch(total)
        q = self.outbox
        pipe = self.pipe
        while q.n:
            topic, msg, retain = q.peek()
            need = 6 + len(topic) + len(msg)
            if need > pipe.free():
                if not pipe.pending():
                    q.get()                # can never fit: drop it, counted
                    q.dropped += 1
                    continue
                break
            q.get()
            MQTTClient.publish(self, topic, msg, retain)
            self.published += 1
        self._write_some()
        self._check_write_deadline()

    def _on_message(self, topic, msg):
        routes = self._routes
        if routes is not None:
            handler = routes.get(topic)
            if handler is not None:
                handler(msg)
                return
        self.received += 1
        self.inbox.put((topic, msg))

    # --- packets umqtt.simple cannot build without waiting --------------------------------
    def _connect_packet(self):
        pipe = self.pipe
        flags = 0x02                       # clean session
        size = 10 + 2 + len(self.client_id)
        if self.lw_topic:
            flags |= 0x04 | (self.lw_qos << 3) | (0x20 if self.lw_retain else 0)
            size += 4 + len(self.lw_topic) + len(self.lw_msg)
        if self.user is not None:
            flags |= 0x80
            size += 2 + len(self.user)
            if self.pswd is not None:
                flags |= 0x40
                size += 2 + len(self.pswd)
        pipe.write(b"\x10")
        _put_varint(pipe, size)
        pipe.write(b"\x00\x04MQTT\x04")
        ka = self.keepalive
        pipe.write(bytes((flags, ka >> 8, ka & 0xFF)))
        self._send_str(self.client_id)
        if self.lw_topic:
            self._send_str(self.lw_topic)
            self._send_str(self.lw_msg)
        if self.user is not None:
            self._send_str(self.user)
            if self.pswd is not None:
                self._send_str(self.pswd)

    def _subscribe_packet(self, topic):
        self.pid = (self.pid % 65535) + 1
        pipe = self.pipe
        pipe.write(b"\x82")
        _put_varint(pipe, 2 + 2 + len(topic) + 1)
        pipe.write(bytes((self.pid >> 8, self.pid & 0xFF)))
        self._send_str(topic)
        pipe.write(b"\x00")                # QoS 0


def _getaddrinfo(host, port):
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]
