"""A layered (Sugiyama-style) layout with orthogonal edge routing, for net drawings without
Graphviz.

The steps are the classic ones: break cycles, give every node a rank (longest path from the
inputs), split edges that span several ranks with dummy nodes, order each rank to reduce
crossings (barycentre sweeps, then adjacent swaps), place nodes across the flow (a weighted
least-squares fit to their neighbours that keeps the order and the gaps), then route each edge
through the channels between ranks.

Why no edge can cross a box: between two ranks lies a channel that holds no node; an edge
leaves its tail straight along the flow into the channel, runs across it on a track of its
own, and enters its head straight along the flow. Inside a rank, nodes (dummies included)
occupy disjoint intervals across the flow, so the straight parts only ever pass through the
node they start or end at; an edge spanning ranks passes them through its dummies' intervals.

All geometry is computed in (cross, flow) coordinates, flow pointing from inputs to outputs,
and turned into x/y for the rankdir at the end.
"""
from collections import defaultdict
from dataclasses import dataclass, field

from .draw_routing import MARGIN, route

GAP = 22           # between neighbours in a rank, across the flow
DUMMY = 6          # the width of a long edge's passage through a rank
SWEEPS = 16        # barycentre passes (down and up) for crossing reduction
PLACEMENT = 24     # placement passes


@dataclass
class Layout:
    """boxes {id: (cx, cy, w, h)} (centre and size), routes [(tail, head, [(x, y), ...])]
    in the order of the edges given, the drawing's width and height, and the number of
    crossings left between adjacent ranks (before routing)."""
    boxes: dict
    routes: list
    width: float
    height: float
    crossings: int = 0
    ranks: dict = field(default_factory=dict)


def layered_layout(sizes, edges, rankdir="TB"):
    """Lay out nodes {id: (w, h)} joined by directed edges [(tail, head)]."""
    horizontal = rankdir in ("LR", "RL")
    cross = {n: (h if horizontal else w) for n, (w, h) in sizes.items()}
    along = {n: (w if horizontal else h) for n, (w, h) in sizes.items()}
    oriented = _acyclic(list(sizes), edges)
    rank = _ranks(list(sizes), oriented)
    graph = _Layered(rank, oriented, cross, along)
    crossings = graph.order()
    graph.place()
    flow_of, extent = route(graph)
    boxes, routes = {}, []
    size = (max((graph.x[n] + cross[n] / 2 for n in sizes), default=0) + MARGIN, extent)
    flip = _orientation(rankdir, size)
    for n, (w, h) in sizes.items():
        cx, cy = flip((graph.x[n], graph.centre[rank[n]]))
        boxes[n] = (cx, cy, w, h)
    for a, b in edges:
        points = flow_of.get((a, b))
        if points is None:  # a self-loop, or an edge turned round to break a cycle
            points = flow_of.get((b, a), [])[::-1]
        routes.append((a, b, [flip(p) for p in points]))
    width, height = (size[1], size[0]) if horizontal else size
    return Layout(boxes, routes, width, height, crossings, rank)


def _orientation(rankdir, size):
    """(cross, flow) -> (x, y) for the rankdir."""
    cross_extent, flow_extent = size
    return {"TB": lambda p: (p[0], p[1]),
            "BT": lambda p: (p[0], flow_extent - p[1]),
            "LR": lambda p: (p[1], p[0]),
            "RL": lambda p: (flow_extent - p[1], p[0])}[rankdir]


def _acyclic(nodes, edges):
    """Edges without self-loops or repeats, those closing a cycle turned round (by DFS)."""
    succ = defaultdict(list)
    unique = list(dict.fromkeys((a, b) for a, b in edges if a != b))
    for a, b in unique:
        succ[a].append(b)
    state, backward = {}, set()
    for root in nodes:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                backward.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(succ[child])))
    turned = [(b, a) if (a, b) in backward else (a, b) for a, b in unique]
    return list(dict.fromkeys(turned))


def _ranks(nodes, edges):
    """Longest path from the inputs; an input node moves down to just above its first user."""
    preds, succs = defaultdict(list), defaultdict(list)
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    indegree = {n: len(preds[n]) for n in nodes}
    ready = [n for n in nodes if indegree[n] == 0]
    rank, order = {}, []
    while ready:
        n = ready.pop(0)
        order.append(n)
        rank[n] = max((rank[p] + 1 for p in preds[n]), default=0)
        for s in succs[n]:
            indegree[s] -= 1
            if indegree[s] == 0:
                ready.append(s)
    for n in order:
        if not preds[n] and succs[n]:
            rank[n] = min(rank[s] for s in succs[n]) - 1
    low = min(rank.values(), default=0)
    return {n: r - low for n, r in rank.items()}


class _Layered:
    """The graph with dummies, rank by rank: order, placement across the flow, routing."""

    def __init__(self, rank, edges, cross, along):
        self.rank, self.cross, self.along = dict(rank), dict(cross), dict(along)
        self.up, self.down = defaultdict(list), defaultdict(list)
        self.chains = {}
        self.dummies = set()
        for a, b in edges:
            chain = [a]
            for r in range(rank[a] + 1, rank[b]):
                d = ("dummy", a, b, r)
                self.rank[d], self.cross[d], self.along[d] = r, DUMMY, 0
                self.dummies.add(d)
                chain.append(d)
            chain.append(b)
            self.chains[(a, b)] = chain
            for u, v in zip(chain, chain[1:]):
                self.down[u].append(v)
                self.up[v].append(u)
        self.layers = self._initial_order(list(rank))

    # -- ordering ---------------------------------------------------------------------------
    def _initial_order(self, nodes):
        """Depth-first from the inputs in the file's order, so branches stay together."""
        count = max(self.rank.values(), default=-1) + 1
        layers, seen = [[] for _ in range(count)], set()
        for root in nodes:
            stack = [root]
            while stack:
                n = stack.pop()
                if n in seen:
                    continue
                seen.add(n)
                layers[self.rank[n]].append(n)
                stack.extend(reversed(self.down[n]))
        return layers

    def _positions(self):
        return {n: i for layer in self.layers for i, n in enumerate(layer)}

    def crossings(self, pos=None):
        pos = pos or self._positions()
        total = 0
        for layer in self.layers[:-1]:
            pairs = sorted((pos[u], pos[v]) for u in layer for v in self.down[u])
            for i, (_, b1) in enumerate(pairs):
                total += sum(1 for a2, b2 in pairs[i + 1:] if b2 < b1 and a2 != pairs[i][0])
        return total

    def order(self):
        """Barycentre sweeps keeping the best order seen, then adjacent swaps; returns the
        crossings left."""
        best, best_layers = self.crossings(), [list(layer) for layer in self.layers]
        for sweep in range(SWEEPS):
            downward = sweep % 2 == 0
            ranks = range(1, len(self.layers)) if downward else range(len(self.layers) - 2, -1, -1)
            for r in ranks:
                self._sort_by_barycentre(r, self.up if downward else self.down)
            count = self.crossings()
            if count < best:
                best, best_layers = count, [list(layer) for layer in self.layers]
            if best == 0:
                break
        self.layers = best_layers
        self._transpose()
        return self.crossings()

    def _sort_by_barycentre(self, r, neighbours):
        pos = self._positions()
        layer = self.layers[r]

        def key(item):
            i, n = item
            near = [pos[m] for m in neighbours[n]]
            return (sum(near) / len(near) if near else i, i)

        self.layers[r] = [n for _, n in sorted(enumerate(layer), key=key)]

    def _pair_crossings(self, u, v, pos):
        """Crossings between u's and v's edges when u is left of v."""
        count = 0
        for neighbours in (self.up, self.down):
            count += sum(1 for a in neighbours[u] for b in neighbours[v] if pos[a] > pos[b])
        return count

    def _transpose(self):
        for _ in range(8):
            improved = False
            for layer in self.layers:
                pos = self._positions()
                for i in range(len(layer) - 1):
                    u, v = layer[i], layer[i + 1]
                    if self._pair_crossings(v, u, pos) < self._pair_crossings(u, v, pos):
                        layer[i], layer[i + 1] = v, u
                        pos[u], pos[v] = i + 1, i
                        improved = True
            if not improved:
                break

    # -- placement across the flow ---------------------------------------------------------
    def _weight(self, a, b):
        """Long edges pull hardest, so they run straight (Gansner et al.'s weights)."""
        return 1 + 3 * ((a in self.dummies) + (b in self.dummies))

    def place(self):
        self.x = {}
        for layer in self.layers:
            at = MARGIN
            for n in layer:
                self.x[n] = at + self.cross[n] / 2
                at += self.cross[n] + GAP
        passes = [self.up, self.down]
        for k in range(PLACEMENT):
            neighbours = passes[k % 2]
            ranks = range(len(self.layers))
            for r in (ranks if k % 2 == 0 else reversed(ranks)):
                self._fit(self.layers[r], neighbours)
        for layer in self.layers:  # both sides at the end, so a node sits between them
            self._fit(layer, None)
        self._straighten()
        low = min((self.x[n] - self.cross[n] / 2 for n in self.x), default=MARGIN)
        for n in self.x:
            self.x[n] += MARGIN - low

    def _straighten(self):
        """Lines up one-to-one links (a chain of layers, a long edge's dummies) exactly where
        the rank has room, so they draw as straight lines instead of small jogs."""
        index = {n: (r, i) for r, layer in enumerate(self.layers) for i, n in enumerate(layer)}
        for pull, push in ((self.up, self.down), (self.down, self.up)):
            ranks = list(range(len(self.layers)))
            for r in (ranks if pull is self.up else ranks[::-1]):
                for n in self.layers[r]:
                    near = list(dict.fromkeys(pull[n]))
                    if len(near) == 1 and len(set(push[near[0]])) == 1:
                        self._move_if_room(n, self.x[near[0]], *index[n])

    def _move_if_room(self, n, x, r, i):
        layer = self.layers[r]
        half = self.cross[n] / 2
        if i > 0:
            left = layer[i - 1]
            if x - half < self.x[left] + self.cross[left] / 2 + GAP - 1e-6:
                return
        if i + 1 < len(layer):
            right = layer[i + 1]
            if x + half > self.x[right] - self.cross[right] / 2 - GAP + 1e-6:
                return
        self.x[n] = x

    def _fit(self, layer, neighbours):
        """Least-squares positions towards the neighbours' mean, keeping order and gaps
        (isotonic regression by pool-adjacent-violators on gap-shifted targets)."""
        offsets, at = [], 0.0
        for i, n in enumerate(layer):
            if i:
                at += (self.cross[layer[i - 1]] + self.cross[n]) / 2 + GAP
            offsets.append(at)
        blocks = []  # [weight, weighted sum, count]
        for n, offset in zip(layer, offsets):
            near = (self.up[n] + self.down[n]) if neighbours is None else neighbours[n]
            weights = [self._weight(n, m) for m in near]
            if weights:
                total = sum(weights)
                target = sum(w * self.x[m] for w, m in zip(weights, near)) / total
            else:
                total, target = 0.05, self.x[n]
            blocks.append([total, total * (target - offset), 1])
            while len(blocks) > 1 and blocks[-2][1] / blocks[-2][0] > blocks[-1][1] / blocks[-1][0]:
                w, s, c = blocks.pop()
                blocks[-1][0] += w
                blocks[-1][1] += s
                blocks[-1][2] += c
        i = 0
        for w, s, c in blocks:
            for _ in range(c):
                self.x[layer[i]] = s / w + offsets[i]
                i += 1
