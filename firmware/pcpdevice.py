"""The controller's side of a device on the MQTT link, shared by the drivers that talk to one
(subpanel.py, pvinverter.py, adaptrelay.py, adapt_openevse.py): a profile reading taken only
when plausible (docs/profile.md, freshness rule 2), and the subscriptions renewed after every
(re)connect of the link. Imported only with such a driver."""

import asyncio
import json

from micropython import const

_MAX_ID = const(0x3FFFFFFF)     # command ids wrap below the 31-bit small int
_WAKE_MS = const(1000)


def attach(link, topics):
    """Routes each (topic, handler) of topics on the link."""
    for topic, handler in topics:
        link.route(topic, handler)


async def serve(driver, clock):
    """A driver's task: every second its heartbeat_ms, its topics subscribed again after a
    (re)connect of driver.link, then driver.wake(now, reconnected): send its command again,
    age its readings. A restarted task subscribes and sends again, as after a reconnect."""
    done = 0                 # link.connects when the subscriptions were last all taken
    while True:
        driver.heartbeat_ms = now = clock.ticks_ms()
        was = done
        done = resubscribe(driver.link, driver.topics, done)
        driver.wake(now, done != was)
        await asyncio.sleep_ms(_WAKE_MS)


def resubscribe(link, topics, done):
    """For a driver's task: after a (re)connect of the link (link.connects not done),
    subscribes each (topic, handler) of topics. Returns link.connects once all were taken
    (the driver keeps it, and sends its command again), else done: a refused subscription
    shows up as silence, and is tried again at the next call."""
    if link is None or not link.connected or link.connects == done:
        return done
    for topic, _ in topics:
        if not link.subscribe(topic):
            return done
    return link.connects


def send_setpoint(link, topic, cmd_id, w, change):
    """Sends an actuator the command {"id", "setpoint": w} with the id after cmd_id, and
    returns that id. change: an event the outbox never drops (a lower limit must go out);
    else a periodic repeat, the controller's heartbeat, that the next one supersedes."""
    cmd_id = cmd_id + 1 if cmd_id < _MAX_ID else 1
    payload = '{"id": %d, "setpoint": %d}' % (cmd_id, w)
    if change:
        link.publish_event(topic, payload)
    else:
        link.publish(topic, payload)
    return cmd_id


def reading(msg, last_seq, lo_w, hi_w):
    """(w, seq) of a profile reading {"seq", "valid": true, "w"} with w an int in lo_w..hi_w
    and seq above last_seq (or 1: the device restarted); None for anything else."""
    d = decode(msg)
    w = d.get("w") if d else None
    seq = d.get("seq") if d else None
    if not (is_int(w) and lo_w <= w <= hi_w and is_int(seq) and d.get("valid") is True) \
            or (seq <= last_seq and seq != 1):
        return None
    return w, seq


def decode(msg):
    """The JSON object in msg, or None: untrusted bytes, whatever the parser objects to."""
    try:
        d = json.loads(msg)
    except Exception:
        return None
    return d if isinstance(d, dict) else None


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)
