"""SNTP at the network edge: the time from a time server, in unix seconds, without blocking
the scheduler. Loaded only when the board's clock does not know the time."""

import asyncio
import socket


class SntpClient:
    """host: the time server's name, resolved on the first query and kept."""

    def __init__(self, host, port=123):
        self.host = host
        self.port = port
        self._addr = None

    async def unix_s(self):
        """Unix seconds, or None: one UDP request on a non-blocking socket, its answer polled
        for up to 2 s (the other tasks run meanwhile)."""
        s = None
        try:
            if self._addr is None:
                self._addr = socket.getaddrinfo(self.host, self.port, 0,
                                                socket.SOCK_DGRAM)[0][-1]
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            q = bytearray(48)
            q[0] = 0x1B          # SNTP v3, client
            s.sendto(q, self._addr)
            for _ in range(40):
                await asyncio.sleep_ms(50)
                try:
                    r = s.recv(48)
                except OSError:
                    continue
                if len(r) == 48:
                    return int.from_bytes(r[40:44], "big") - 2208988800   # from 1900
            return None
        except OSError:
            return None
        finally:
            if s is not None:
                s.close()
