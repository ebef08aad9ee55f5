"""Cuts the power at every block write of a save, on littlefs (MicroPython), for
tests/test_powercut.py.

    micropython powercut_driver.py SUBJECT SEED CASES [IMAGE_DIR]

The flash is a RAM block device mounted as littlefs (vfs.VfsLfs2, 4096-byte blocks as on the
ESP32). For each case (random old and new content, seeded), it writes the old version whole,
counts the block writes and erases of saving the new one, then for every n in 1..that count
repeats the save on a copy of the old image with a device that dies at its n-th operation:
that write reaches the flash torn (a random prefix of it) and nothing after it does. The
power comes back: a new device over what the flash holds, a new mount, the subject's own
load, as at boot; then one more save, which must work. One JSON line per cut:
{"s", "case", "cut", "of", "done", "seen": "old"|"new"|"none"|"BROKEN ...", "why", "after"}.
With IMAGE_DIR, the flash after each cut of the first cases is kept there (a fresh process
boots the firmware from it: boot_image below)."""

import json
import os
import random
import sys

import vfs

BS = 4096                   # the ESP32's flash sector
NBLOCKS = 24
MOUNT = "/flash"
EIO = -5                    # what a dead device answers: littlefs's LFS_ERR_IO


class Flash:
    """A RAM block device (littlefs's extended interface); budget: the operation (a program
    or an erase) at which the power fails. That one reaches the flash torn (a random part of
    it) and no later one reaches it at all: each answers EIO, so littlefs unwinds cleanly
    (an exception raised through its C code would leave its files open) and the firmware sees
    an OSError, which changes nothing on the flash any more."""

    def __init__(self, data, budget=0, rng=None):
        self.data = data
        self.budget = budget
        self.rng = rng
        self.ops = 0
        self.dead = False

    def _cut(self):
        self.ops += 1
        if self.ops == self.budget:
            self.dead = True
            return True
        return False

    def readblocks(self, n, buf, off=0):
        if self.dead:
            return EIO
        a = n * BS + off
        buf[:] = memoryview(self.data)[a:a + len(buf)]
        return 0

    def writeblocks(self, n, buf, off=0):
        if self.dead:
            return EIO
        a = n * BS + off
        if self._cut():
            k = self.rng.randint(0, len(buf))
            self.data[a:a + k] = memoryview(buf)[:k]
            return EIO
        self.data[a:a + len(buf)] = buf
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return NBLOCKS
        if op == 5:
            return BS
        if op == 6:
            if self.dead:
                return EIO
            a = arg * BS
            k = BS
            if self._cut():
                k = self.rng.randint(0, BS)       # an erase cut part way
            self.data[a:a + k] = b"\xff" * k
            return EIO if self.dead else 0
        return 0


def mount(dev):
    vfs.mount(vfs.VfsLfs2(dev), MOUNT)
    os.chdir(MOUNT)


def unmount():
    os.chdir("/")
    try:
        vfs.umount(MOUNT)
    except Exception:      # a mount whose flash died under it
        pass


def blank():
    dev = Flash(bytearray(b"\xff" * (BS * NBLOCKS)))
    vfs.VfsLfs2.mkfs(dev)
    return bytes(dev.data)


def word(rng, lo, hi):
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_")
                   for _ in range(rng.randint(lo, hi)))


def quiet(line):
    pass


# --- the subjects: gen(rng) -> (old or None, new); save(x); load() -> (value, why) ----------

class ConfigFile:
    import config
    import esp32_dinrail as board
    path = "config.json"

    def gen(self, rng):
        return self.one(rng), self.one(rng)

    def one(self, rng):
        config, board = self.config, self.board
        c = config.defaults(board)
        c["band_pct"] = rng.randint(1, 50)
        c["limit_w"] = rng.choice([0, rng.randint(1000, config.max_setpoint_w(c))])
        c["wifi_ssid"] = word(rng, 0, 32)
        c["mqtt_host"] = word(rng, 0, 64)
        c["mqtt_password"] = word(rng, 0, 64)
        c["stale_ms"] = rng.randint(1000, 60000)
        for ct in c["ct"].values():
            ct["gain"] = rng.randint(500, 2000) / 1000
        for out in range(1, rng.randint(1, 4)):        # up to three more loads, K2..K4
            c["loads"].append({"name": "l%d_%s" % (out, word(rng, 0, 8)), "kind": "onoff",
                               "priority": rng.randint(0, 1000), "leg": "L1",
                               "rated_w": rng.randint(0, 100000), "output": out,
                               "min_on_s": rng.randint(0, 86400)})
        assert config.validate(c, board) == [], config.validate(c, board)
        # what a load of this file gives (floats as the port reads them back)
        return config.to_json(config.parse(config.to_json(c), board).cfg)

    def save(self, text):
        cfg = self.config.parse(text, self.board).cfg
        self.config.save(cfg, self.path)

    def load(self):
        said = []
        r = self.config.load(self.path, self.board, log=said.append)
        if r.safe_reason:
            return None, r.safe_reason
        return self.config.to_json(r.cfg), "; ".join(said)


class WearFile:
    import wear
    path = "wear.json"

    class Contactor:
        def __init__(self, ops):
            self.ops = ops

    def gen(self, rng):
        names = ["water_heater", "k1", "k2", "k3"][:rng.randint(1, 4)]
        old = {n: rng.randint(0, 1 << 29) for n in names}
        new = {n: old[n] + rng.randint(0, 5000) for n in names}
        if rng.randint(0, 1):
            new["added_" + word(rng, 1, 8)] = rng.randint(0, 100)
        return old, new

    def save(self, totals):
        w = self.wear.Wear([], None, path=self.path, log=quiet)
        # the contactors counted since boot whatever the file does not already hold
        w.contactors = [(n, self.Contactor(totals[n] - w.base.get(n, 0))) for n in totals]
        w.save()

    def load(self):
        said = []
        w = self.wear.Wear([], None, path=self.path, log=said.append)
        return (w.base or None), "; ".join(said)


class GridFile:
    import gridlimits
    from fakeclock import FakeClock
    from limits import Limits
    from gridtime import parse_time
    path = "grid.json"
    UNIX = 1795716000
    NOW = parse_time(UNIX)      # grid seconds at boot (mono 0)

    def grid(self):
        clock = self.FakeClock()
        g = self.gridlimits.Grid(self.Limits(setpoint_w=19200), clock, 19200,
                                 subscription_w=6000, fallback_w=4000, path=self.path)
        return g, clock

    def gen(self, rng):
        return self.one(rng), self.one(rng)

    def one(self, rng):
        ivs, t = [], self.NOW + rng.randint(-1800, 3600)
        for _ in range(rng.randint(1, 24)):
            d = rng.randint(60, 7200)
            ivs.append([t, t + d, rng.randint(0, 19200), rng.choice([None, rng.randint(0, 80)]),
                        rng.choice([None, rng.randint(0, 9000)])])
            t += d
        res = []
        for i in range(rng.randint(0, 4)):
            s = self.NOW + rng.randint(-3600, 86400)
            res.append([s, s + rng.randint(60, 7200), rng.randint(100, 9000),
                        rng.randint(0, 500), "r%d" % i])
        res.sort()
        return {"name": word(rng, 1, 30), "heard": self.NOW - rng.randint(0, 600), "iv": ivs,
                "res": res}

    def save(self, data):
        g, clock = self.grid()
        g.set_wall(self.UNIX, clock.t)
        off = g._off
        g.intervals = [[iv[0] - off, iv[1] - off, iv[2], iv[3], iv[4]] for iv in data["iv"]]
        g.reservations = [[r[0] - off, r[1] - off, r[2], r[3], r[4]] for r in data["res"]]
        g.event_name = data["name"]
        g._heard = data["heard"] - off
        g.save()

    def load(self):
        g, clock = self.grid()
        stored = g._stored
        g.set_wall(self.UNIX, clock.t)        # boots on it: restores it, or the fallback
        if stored is None and any(n.startswith(self.path) and not n.endswith(".tmp")
                                  for n in os.listdir()):
            return None, "grid.json unreadable: ignored"
        if stored is None:
            return None, "no grid.json: the fallback %d W applies" % g.fallback_w
        return {k: stored[k] for k in ("name", "heard", "iv", "res")}, \
            "%d intervals restored" % len(g.intervals)


class ComplianceLog:
    import compliance
    path = "compliance.log"
    LINES = 5                   # per file, so that the rotation is cut too

    def gen(self, rng):
        before = [self.entry(rng, i) for i in range(rng.randint(0, 3 * self.LINES))]
        return before, self.entry(rng, 99)

    def entry(self, rng, i):
        return {"k": "limit", "t": rng.randint(0, 1 << 30), "limit_w": rng.randint(0, 19200),
                "source": word(rng, 1, 12), "i": i}

    def setup(self, before):
        log = self.compliance.Log(self.path, self.LINES)
        for e in before:
            log.add(e)

    def save(self, entry):
        self.compliance.Log(self.path, self.LINES).add(entry)

    def load(self):
        log = self.compliance.Log(self.path, self.LINES)
        return [json.loads(line) for line in log.read()], "%d lines in the current file" % (
            log.lines)


class DemandFile:
    import demand
    from fakeclock import FakeClock
    from limits import Limits
    path = "demand.json"

    def window(self, said):
        return self.demand.DemandWindow(self.Limits(setpoint_w=19200), self.FakeClock(),
                                        lambda: None, 15, 5000, path=self.path, log=said.append)

    def gen(self, rng):
        return self.one(rng), self.one(rng)

    def one(self, rng):
        start = rng.randint(0, 1 << 29)
        return {"start_s": start, "energy_ws": rng.randint(0, 1 << 29),
                "saved_s": start + rng.randint(0, 900),
                "month": [rng.randint(2026, 2040), rng.randint(1, 12)],
                "month_peak_w": rng.randint(0, 100000)}

    def save(self, s):
        d = self.window([])
        d.start_s, d.energy_ws, d.wall_s = s["start_s"], s["energy_ws"], s["saved_s"]
        d.month, d.month_peak_w = tuple(s["month"]), s["month_peak_w"]
        d.save()

    def load(self):
        said = []
        d = self.window(said)
        if d.start_s is None:
            return None, "; ".join(said) or "no demand.json: a fresh window"
        return {"start_s": d.start_s, "energy_ws": d.energy_ws, "saved_s": d._gap_from_s,
                "month": list(d.month), "month_peak_w": d.month_peak_w}, "; ".join(said)


SUBJECTS = {"config": ConfigFile, "wear": WearFile, "grid": GridFile,
            "compliance": ComplianceLog, "demand": DemandFile}


def expected_log(subject, before, entry):
    """What a cut add() may leave: the lines before it, or with the entry; a rotation due
    (the current file full) may also drop the older file, as it does by design."""
    n, lines = len(before), subject.LINES
    if n == 0:
        return [[], [entry]]
    cur = (n - 1) % lines + 1                  # lines in the current file
    kept = before[-(lines + cur):] if n > lines else before
    if cur < lines:
        return [kept, kept + [entry]]
    return [kept, before[-lines:], before[-lines:] + [entry]]


def bad(why):
    return "corrupt" in why or "unreadable" in why


def run_case(subject, rng, base, case, image_dir):
    is_log = isinstance(subject, ComplianceLog)
    old, new = subject.gen(rng)
    if case % 5 == 0 and not is_log:
        old = None          # the first save of all: nothing on the flash before it
    dev = Flash(bytearray(base))
    mount(dev)
    if is_log:
        subject.setup(old)
    elif old is not None:
        subject.save(old)
    unmount()
    before = bytes(dev.data)
    dev = Flash(bytearray(before))
    mount(dev)
    subject.save(new)
    total = dev.ops
    unmount()
    outcomes = expected_log(subject, old, new) if is_log else None
    for cut in range(1, total + 1):
        dev = Flash(bytearray(before), cut, rng)
        mount(dev)
        try:
            subject.save(new)
        except OSError:
            if not dev.dead:
                raise
        done = not dev.dead
        unmount()
        flash = dev.data          # the power is back: what the flash holds, nothing else
        if image_dir and case < 3:
            with open("%s/%s-%d-%d.img" % (image_dir, subject.name, case, cut), "wb") as f:
                f.write(flash)
        out = {"s": subject.name, "case": case, "cut": cut, "of": total, "done": done}
        try:
            mount(Flash(flash))
        except OSError as e:
            out["seen"] = "BROKEN file system will not mount: %r" % e
            print(json.dumps(out))
            continue
        try:
            got, why = subject.load()
            if is_log:
                seen = "BROKEN %r" % got
                for i, lines in enumerate(outcomes):
                    if got == lines:
                        seen = "new" if i == len(outcomes) - 1 else "old"
            elif got == new:
                seen = "new"
            elif got == old and old is not None:
                seen = "old"
            elif got is None and old is None and not bad(why):
                seen = "none"
            else:
                seen = "BROKEN %r" % (got,)
            if bad(why):
                seen = "BROKEN " + why
            out["seen"], out["why"] = seen, why
            if isinstance(subject, ConfigFile) and got is not None:
                got = json.loads(got)
                out["cfg"] = [got["band_pct"], got["stale_ms"]]
            # the board keeps working on this flash: the next save and load
            subject.save(new)
            got, _ = subject.load()
            ok = got[-1] == new if is_log else got == new
            out["after"] = "ok" if ok else "BROKEN %r" % (got,)
        except Exception as e:     # noqa: any crash is a finding, reported with its case
            out["seen"] = "BROKEN %s: %s" % (type(e).__name__, e)
        unmount()
        print(json.dumps(out))


class NoRenameOver:
    """os for atomicfile on a file system that will not rename over a file (EEXIST)."""

    def rename(self, a, b):
        try:
            os.stat(b)
        except OSError:
            return os.rename(a, b)
        raise OSError(17)

    def remove(self, p):
        os.remove(p)


def main():
    name, seed, cases = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    image_dir = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    subject = SUBJECTS[name.split("-")[0]]()
    subject.name = name
    if name.endswith("-norename"):
        import atomicfile
        atomicfile.os = NoRenameOver()
    rng = random.Random(seed) if hasattr(random, "Random") else random
    rng.seed(seed)
    base = blank()
    for case in range(cases):
        run_case(subject, rng, base, case, image_dir)


def boot_image(image):
    """A fresh process after a cut: the firmware's own boot (app.build) on that flash; prints
    its banner and the explained state."""
    from standin import machine
    import esp32_dinrail as board
    import app
    from fakeclock import FakeClock
    with open(image, "rb") as f:
        mount(Flash(bytearray(f.read())))
    machine.inject(36, 1970)
    said = []
    a = app.build(board, machine, FakeClock(), log=said.append)
    a.banner()
    a.force_safe()
    print(json.dumps({"safe_reason": a.safe_reason, "cfg": [a.cfg["band_pct"],
                                                            a.cfg["stale_ms"]],
                      "running": a.running, "said": said, "files": sorted(os.listdir())}))


if __name__ == "__main__":
    if sys.argv[1] == "boot":
        boot_image(sys.argv[2])
    else:
        main()
