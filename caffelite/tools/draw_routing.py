"""Edge routing for draw_layout: each edge leaves its tail straight along the flow, crosses
the channel between two ranks on a track of its own, and enters its head straight along the
flow; long edges pass through the ranks between at their dummies' places. Channels hold no
node and nodes in a rank occupy disjoint intervals, so no route meets a box it does not
start or end at."""
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
    if spacing < TRACK / 2:  # too many to tell apart: they join into one entry (a bus)
        spacing = 0
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
    busy = [u for u, (top, pins, _) in nets.items() if any(abs(p - top) >= 0.5 for p in pins)]
    track_of = _assign_tracks({u: nets[u][:2] for u in busy})
    assignment = {}
    for u, (_, _, heads) in nets.items():
        for v in heads:
            assignment[(u, v)] = (track_of.get(u, 0), ports[(u, v)])
    return assignment, max(track_of.values(), default=-1) + 1


HARD = 1000  # the cost of two straight parts overlapping, against 1 per crossing


def _above_cost(a, b, nets, spans):
    """What putting net a's track above net b's costs: b's exit crossing a's track, a's
    entries crossing b's track, and (HARD) a's entry running along b's exit."""
    (_, a_pins), (b_top, _) = nets[a], nets[b]
    (lo_a, hi_a), (lo_b, hi_b) = spans[a], spans[b]
    cost = (lo_a < b_top < hi_a) + sum(lo_b < p < hi_b for p in a_pins)
    return cost + HARD * any(abs(p - b_top) < TRACK / 2 for p in a_pins)


def _assign_tracks(nets):
    """{net: track} for nets {tail: (exit, [entries])}: an order from the top that never
    lays straight parts along each other where it can help it and keeps crossings low
    (greedy: next, among the nets free to go, the one that most prefers being above the
    rest), then each net one track below the overlapping nets placed before it."""
    spans = {u: (min(top, *pins), max(top, *pins)) for u, (top, pins) in nets.items()}
    overlap = {u: [v for v in nets if v != u and spans[u][0] - TRACK < spans[v][1]
                   and spans[v][0] < spans[u][1] + TRACK] for u in nets}
    cost = {(u, v): _above_cost(u, v, nets, spans) for u in nets for v in overlap[u]}
    first = {u: {v for v in overlap[u] if cost[(u, v)] >= HARD > cost[(v, u)]} for u in nets}
    remaining, track_of = list(nets), {}
    while remaining:
        free = [u for u in remaining if first[u] <= track_of.keys()] or remaining
        u = min(free, key=lambda n: sum(cost[(n, v)] % HARD - cost[(v, n)] % HARD
                                        for v in overlap[n] if v not in track_of))
        remaining.remove(u)
        track_of[u] = max((track_of[v] + 1 for v in overlap[u] if v in track_of), default=0)
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
