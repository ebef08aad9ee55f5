"""Retrying the network: an exponential backoff with jitter, and one line for a socket error.
Shared by the MQTT link (net.py) and Wi-Fi (wifi.py), which a site with only the status page
runs without the link."""

import errno


class Backoff:
    """Exponential backoff with "equal jitter": the n-th delay is uniform in [d/2, d] with
    d = first_ms * 2**n capped at max_ms, so a fleet that lost its broker together does not
    come back in step. rand(n) returns an int in 0..n-1 (injected for tests)."""

    def __init__(self, first_ms, max_ms, rand=None):
        if rand is None:
            import random
            rand = _randbelow(random)
        self.first_ms = first_ms
        self.max_ms = max_ms
        self._rand = rand
        self.failures = 0

    def next_ms(self):
        d = self.first_ms << min(self.failures, 16)
        if d > self.max_ms:
            d = self.max_ms
        self.failures += 1
        half = d >> 1
        return half + self._rand(d - half + 1)

    def reset(self):
        self.failures = 0


def _randbelow(random):
    def rand(n):
        return (random.getrandbits(16) * n) >> 16
    return rand


def describe_error(e):
    """One line for a failed network call: an OSError by its text or errno name."""
    if isinstance(e, OSError):
        if len(e.args) > 1:
            return "%s (errno %d)" % (e.args[1], e.args[0])
        code = e.args[0] if e.args else 0
        name = errno.errorcode.get(code, "") if hasattr(errno, "errorcode") else ""
        return "socket error %s%s" % (code, " " + name if name else "")
    return "%s: %s" % (type(e).__name__, e)
