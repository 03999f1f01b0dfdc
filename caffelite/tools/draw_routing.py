"""Edge routing for draw_layout: each edge leaves its tail straight along the flow, crosses
the channel between two ranks on a track of its own, and enters its head straight along the
flow; long edges pass through the ranks between at their dummies' places. Channels hold no
node and nodes in a rank occupy disjoint intervals, so no route meets a box it does not
start or end at."""
from collections import defaultdict

CHANNEL_PAD = 14   # a channel's margin before its first and after its last track
MARGIN = 12        # around the drawing
PORT = 10          # between the ends of edges entering one node
TRACK = 8          # between parallel segments in a channel


def route(g):
    """({(tail, head): [(cross, flow), ...]}, the flow extent of the drawing)."""
    for layer in g.layers:  # a hair's difference would draw as a tiny jog
        for v in layer:
            tails = set(g.up[v])
            if len(tails) == 1 and abs(g.x[next(iter(tails))] - g.x[v]) < 0.5:
                g.x[v] = g.x[next(iter(tails))]
    thickness = [max((g.along[n] for n in layer), default=0) for layer in g.layers]
    g.centre, spans, at = [], [], MARGIN
    tracks = [_tracks(g, r) for r in range(len(g.layers) - 1)]
    for r, thick in enumerate(thickness):
        g.centre.append(at + thick / 2)
        at += thick
        if r < len(tracks):
            count = max(tracks[r][1], 1)
            spans.append(at + CHANNEL_PAD)
            at += 2 * CHANNEL_PAD + TRACK * (count - 1)
    pieces = {}
    for r, (assignment, _) in enumerate(tracks):
        for (u, v), (track, port) in assignment.items():
            start = (g.x[u], _end(g, u, +1))
            end = (port, _end(g, v, -1))
            if start[0] == end[0]:
                pieces[(u, v)] = [start, (start[0], end[1])]
            else:
                y = spans[r] + track * TRACK
                pieces[(u, v)] = [start, (start[0], y), (end[0], y), end]
    routes = {}
    for key, chain in g.chains.items():
        points = []
        for u, v in zip(chain, chain[1:]):
            points.extend(pieces[(u, v)])
        routes[key] = _simplify(points)
    return routes, at + MARGIN

def _end(g, n, side):
    """Where edges leave (side +1) or enter (-1) n along the flow; a dummy spans its rank."""
    r = g.rank[n]
    if n in g.dummies:
        thick = max((g.along[m] for m in g.layers[r]), default=0)
        return g.centre[r] + side * thick / 2
    return g.centre[r] + side * g.along[n] / 2

def _ports(g, v, tails):
    """Cross positions where the edges from tails enter v, spread in the tails' order."""
    k = len(tails)
    if k == 1:
        return {tails[0]: g.x[v]}
    spacing = min(PORT, max(g.cross[v] - 8, 0) / (k - 1))
    ordered = sorted(tails, key=lambda t: g.x[t])
    return {t: g.x[v] + (i - (k - 1) / 2) * spacing for i, t in enumerate(ordered)}

def _tracks(g, r):
    """({(u, v): (track, entry port)}, tracks used) for the channel below rank r. Edges
    from one tail share a track (a bus); an edge whose tail sits above another edge's
    head port takes a track above that edge, so their straight parts never overlap."""
    ports = {}
    for v in g.layers[r + 1]:
        tails = list(dict.fromkeys(g.up[v]))
        for t, p in _ports(g, v, tails).items():
            ports[(t, v)] = p
    nets = {}
    for u in g.layers[r]:
        heads = list(dict.fromkeys(g.down[u]))
        if heads:
            pins = [ports[(u, v)] for v in heads]
            nets[u] = (g.x[u], pins, heads)
    busy = {u for u, (top, pins, _) in nets.items()
            if any(abs(p - top) >= 0.5 for p in pins)}
    above = {u: set() for u in busy}  # u must lie above each of these
    for u in busy:
        top = nets[u][0]
        for w in busy:
            if w != u and any(abs(p - top) < TRACK / 2 for p in nets[w][1]):
                above[u].add(w)
    track_of = _assign_tracks(busy, above, {u: (min([t, *p]), max([t, *p]))
                                            for u, (t, p, _) in nets.items()})
    assignment = {}
    for u, (_, _, heads) in nets.items():
        for v in heads:
            assignment[(u, v)] = (track_of.get(u, 0), ports[(u, v)])
    return assignment, max(track_of.values(), default=-1) + 1


def _assign_tracks(nets, above, spans):
    """Left-edge track assignment honouring 'above' constraints (broken where they cycle)."""
    below_count = {u: 0 for u in nets}
    for u in nets:
        for w in above[u]:
            below_count[w] += 1
    remaining, track_of, occupied = set(nets), {}, defaultdict(list)
    while remaining:
        free = [u for u in remaining if below_count[u] == 0]
        if not free:  # a cycle of constraints: drop the least constrained one's
            free = [min(remaining, key=lambda u: (below_count[u], spans[u]))]
        u = min(free, key=lambda n: spans[n])
        remaining.discard(u)
        lowest = max((track_of[p] + 1 for p in nets if u in above.get(p, ()) and p in track_of),
                     default=0)
        lo, hi = spans[u]
        t = lowest
        while any(lo - TRACK < b and a < hi + TRACK for a, b in occupied[t]):
            t += 1
        track_of[u] = t
        occupied[t].append((lo, hi))
        for w in above[u]:
            below_count[w] -= 1
    return track_of


def _simplify(points):
    """Drops repeated points and the middle of three collinear ones."""
    out = []
    for p in points:
        if out and abs(out[-1][0] - p[0]) < 1e-6 and abs(out[-1][1] - p[1]) < 1e-6:
            continue
        if len(out) >= 2:
            (ax, ay), (bx, by) = out[-2], out[-1]
            if abs((bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax)) < 1e-6:
                out[-1] = p
                continue
        out.append(p)
    return out
