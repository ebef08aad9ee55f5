"""A schedule too long for one message (a day-ahead envelope), received in pages: each page
an event in itself (gridevent.py checks it) with "page", "pages" and an "id" the same on
every page; checked against the pages held, held apart until every page of its id is in.
Pure: no clock, no I/O; a refusal is a ValueError and changes nothing. Loaded by the first
page (Grid.page), not with the Grid nor by a whole schedule, so a site never sent pages
pays nothing for them."""

from micropython import const

import gridevent

# At most 8 pages of one message each (the link takes 1 KiB packets, commands.py 900 bytes
# of payload: 6 to 14 intervals a page), and gridevent.MAX_INTERVALS in all.
_MAX_PAGES = const(8)


class Pages:
    """The pages of one schedule held so far: sid (its id), n (its pages), heard (mono s of
    its last page), name (page 1's), held (a page's intervals, or None, per page)."""

    def __init__(self, sid, n):
        self.sid = sid
        self.n = n
        self.heard = 0
        self.name = None
        self.held = [None] * n


def _page_of(obj):
    k = obj.get("page")
    n = obj.get("pages")
    for v in (k, n):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError("page and pages must be ints, 1 <= page <= pages, got %r of %r"
                             % (k, n))
    if n > _MAX_PAGES:
        raise ValueError("%d pages, limit %d" % (n, _MAX_PAGES))
    if k > n:
        raise ValueError("page %d of %d pages" % (k, n))
    sid = obj.get("id")
    if not (isinstance(sid, str) and 0 < len(sid) <= 32 or
            isinstance(sid, int) and not isinstance(sid, bool)):
        raise ValueError("a paged schedule needs an id, the same on each page")
    return k, n, sid


def add(pg, obj, m, off):
    """One page, obj, onto pg (the Pages held, or None) at mono second m with the wall
    clock's offset off: returns (the Pages held now, None once complete; the event's fields:
    page, pages, have (pages held), dropped (a schedule half received that this one
    replaces); the whole schedule's intervals and name once complete, else None, None).
    Raises ValueError, pg untouched, for a page that is malformed, overlaps a page held, or
    brings the schedule over gridevent.MAX_INTERVALS."""
    k, n, sid = _page_of(obj)
    ivs, name = gridevent.intervals(obj, m, off)
    if not ivs:
        raise ValueError("page %d of %d has no intervals" % (k, n))
    if k > 1 and "start" not in obj.get("intervalPeriod", {}) and \
            "start" not in obj["intervals"][0].get("intervalPeriod", {}):
        # (from now, it would overlap page 1, or start a day-ahead envelope too soon)
        raise ValueError("page %d of %d needs a start: only page 1 may begin now" % (k, n))
    held = None
    if pg is not None and pg.sid == sid:
        if pg.n != n:
            raise ValueError("schedule %s has %d pages, not %d" % (sid, pg.n, n))
        held = pg.held
    total = len(ivs)
    if held is not None:
        for j in range(n):
            p = held[j]
            if p is None or j == k - 1:
                continue
            total += len(p)
            if j < k - 1 and p[-1][1] > ivs[0][0] or j > k - 1 and ivs[-1][1] > p[0][0]:
                raise ValueError("page %d overlaps page %d (or is out of order)" % (k, j + 1))
    if total > gridevent.MAX_INTERVALS:
        raise ValueError("schedule %s: %d intervals, limit %d"
                         % (sid, total, gridevent.MAX_INTERVALS))
    # Checked whole: from here on it is taken.
    out = {"page": k, "pages": n}
    if held is None:                   # the first page of this schedule: a new one
        if pg is not None:
            out["dropped"] = pg.sid    # the one half received before it
        pg = Pages(sid, n)
        held = pg.held
    held[k - 1] = ivs                  # a page sent again replaces itself
    pg.heard = m
    if k == 1:
        pg.name = name
    have = n - held.count(None)
    out["have"] = have
    if have < n:
        return pg, out, None, None
    ivs = []                           # all in: the schedule, whole and in order
    for p in held:
        ivs.extend(p)
    return None, out, ivs, pg.name
