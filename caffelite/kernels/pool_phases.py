"""Window max and sum on column-phase planes: top[i, j] = ⊕_{a,b} x[i·s − p + a, j·s − p + b].

NumPy runs strided loops several times slower than contiguous ones, and it pays a fixed cost
for every inner loop, so each pass should run over one long contiguous stretch. The input is
copied once into s_w column-phase planes, P[φ][r, u] = x[r − p_h, u·s_w + φ − p_w] (rows r of
the padded image; cells outside the image hold the fill), after which window cell (a, b) of
output (i, j) is P[b mod s_w][i·s_h + a, j + b÷s_w]: on the flattened planes each kernel offset
is one shifted slice. Rows are reduced first (over b, the shift b÷s_w), then columns (over a,
the shift a·T_w, at every row r; the rows i·s_h are kept), so with a strict > the first
maximum in Caffe's h-then-w window order wins.

When the image rows split evenly into phases (p_w = 0, s_w divides W), the planes are packed
(T_w = W/s_w): a phase is then one long strided copy of x instead of a copy per row. Windows
that reach past the last column read the next row there, so those columns are reduced again
from the offsets inside the image.

The batch is worked through in chunks of images (CHUNK_CELLS input cells), so that the planes,
row results and tracks stay in the core's cache across the passes over them. The views a
chunk's passes use are made once per call (_Forward, _Backward), not once per chunk.
"""
import numpy as np

from ..runtime import get_array_module, num_threads
from .im2col import FLT_MAX

# Input cells per chunk and thread. A pass over arrays held in L2 runs 3-5x faster than one
# over arrays streamed from memory; a chunk's planes, rows and tracks take about 4x its input.
# With more threads chunks grow: each array call hands the GIL over, and calls of a few
# microseconds spend more time waiting for it than in their loops.
CHUNK_CELLS = 1 << 16


class PhaseGeometry:
    """Planes for pooling (N·C, H, W) with kernel, pad, stride -> (oh, ow)."""

    def __init__(self, nc, size, kernel, pad, stride, out_size):
        self.nc, self.size, self.kernel, self.pad, self.stride = nc, size, kernel, pad, stride
        self.out_size = out_size
        (height, width), (kh, kw), (ph, pw), (sh, sw), (oh, ow) = (size, kernel, pad, stride,
                                                                   out_size)
        self.rows = max((oh - 1) * sh + kh, ph + height)  # every window row, every image row
        self.packed = pw == 0 and width % sw == 0 and ow <= width // sw
        # Packed: the image columns only. Else every window cell of the outputs has a column.
        self.cols = width // sw if self.packed else max(ow + (kw - 1) // sw, -(-(width + pw) // sw))
        self.image_cells = self.rows * self.cols  # cells of one image's plane
        self.tail = (kw - 1) // sw  # row reduction reads up to this far past the last cell
        # Columns whose windows reach past the last plane column (packed planes only).
        self.clipped = [j for j in range(ow) if j + (kw - 1) // sw >= self.cols]
        self.key = (size, kernel, pad, stride, out_size)  # all a chunk's plan depends on

    def sizes(self, nc):
        """(cells of nc images' planes, cells where the column reduction reads whole windows)."""
        cells = nc * self.image_cells
        return cells, cells - (self.kernel[0] - 1) * self.cols

    def chunks(self, xp):
        """(start, stop) chunks of the N·C images; one chunk off the CPU, where each array
        call is a kernel launch and large arrays are what the device wants."""
        cells = self.nc * self.size[0] * self.size[1]
        per_chunk = CHUNK_CELLS * num_threads()
        count = 1 if xp is not np else max(1, min(self.nc, -(-cells // per_chunk)))
        bounds = [self.nc * i // count for i in range(count + 1)]
        return list(zip(bounds[:-1], bounds[1:]))

    def row_offsets(self):
        """(b, phase, shift) per kernel column offset b."""
        sw = self.stride[1]
        return [(b, b % sw, b // sw) for b in range(self.kernel[1])]

    def column_offsets(self):
        """(a, phase, shift) per kernel row offset a: one phase, shifted a rows."""
        return [(a, 0, a * self.cols) for a in range(self.kernel[0])]

    def inside(self, phase):
        """(plane column slice, image column slice) of the image cells of column phase φ."""
        (width, pw, sw), cols = (self.size[1], self.pad[1], self.stride[1]), self.cols
        first = max(0, -((phase - pw) // sw))  # ceil((p − φ) / s)
        count = max(0, min(cols, (width - 1 + pw - phase) // sw + 1) - first)
        start = first * sw + phase - pw
        return (slice(first, first + count),
                slice(start, start + (count - 1) * sw + 1 if count else start, sw))

    def image_rows(self):
        return slice(self.pad[0], self.pad[0] + self.size[0])

    def output_cells(self, grid):
        """The (oh, ow) outputs in a plane-shaped grid (n, rows, cols): rows i·s_h."""
        oh, ow = self.out_size
        return grid[:, 0:(oh - 1) * self.stride[0] + 1:self.stride[0], :ow]

    def clipped_offsets(self):
        """(j, number of row offsets whose cells lie inside the row) per clipped column."""
        return [(j, sum(j + shift < self.cols for _, _, shift in self.row_offsets()))
                for j in self.clipped]


def _grid(flat, geo, nc):
    return flat[:nc * geo.image_cells].reshape(nc, geo.rows, geo.cols)


def _plans(plan, geo, chunks, ws, dtype, xp, option):
    """{chunk size: plan(geo, nc, ws, dtype, xp, option)}, largest first, each built once per
    workspace (memo): building one's views costs about 20 µs of Python, and with two threads
    that time holds the GIL."""
    sizes = sorted({stop - start for start, stop in chunks}, reverse=True)
    return {nc: ws.memo((plan, geo.key, nc, np.dtype(dtype), option),
                        lambda nc=nc: plan(geo, nc, ws, dtype, xp, option)) for nc in sizes}


class _Forward:
    """The planes, row results and their views for chunks of nc images."""

    def __init__(self, geo, nc, ws, dtype, xp, fill):
        self.geo, self.nc = geo, nc
        cells, column_cells = geo.sizes(nc)
        # Named by chunk size: a chunk of another size must not refill this one's border.
        planes = ws.padded(f"planes{nc}", (geo.stride[1], cells + geo.tail), dtype, fill, xp)
        self.copies = []
        for phase in range(geo.stride[1]):
            plane_cols, image_cols = geo.inside(phase)
            self.copies.append((_grid(planes[phase], geo, nc)[:, geo.image_rows(), plane_cols],
                                image_cols))
        self.rows = ws.scratch("rows", (cells,), dtype, xp)
        self.row_sources = [planes[phase, shift:shift + cells]
                            for _, phase, shift in geo.row_offsets()]
        full = ws.scratch("full", (cells,), dtype, xp)
        self.full = full[:column_cells]
        self.column_sources = [self.rows[shift:shift + column_cells]
                               for _, _, shift in geo.column_offsets()]
        self.top = geo.output_cells(_grid(full, geo, nc))
        rows, plane_grids = _grid(self.rows, geo, nc), [_grid(p, geo, nc) for p in planes]
        self.clipped = [(j, rows[:, :, j], [plane_grids[phase][:, :, j + shift]
                                            for _, phase, shift in geo.row_offsets()[:count]])
                        for j, count in geo.clipped_offsets()]

    def load(self, x):
        """Copy the chunk x (nc, H, W) into the planes."""
        for plane, image_cols in self.copies:
            plane[...] = x[:, :, image_cols]


def _max_chain(sources, dst, better, lowest):
    """dst = max of the sources, in order, with a strict >: better[k − 1] marks where source
    k beat the maximum of those before it, so the winner is the last marked source, or source
    0. With `lowest` (an array of −FLT_MAX) the maximum starts there, so NaN and −inf never
    win and nothing wins a window holding no input; without it source 0 starts it."""
    xp = get_array_module(dst)
    if lowest is not None:
        xp.fmax(sources[0], lowest, out=dst)
    elif len(sources) == 1:
        dst[...] = sources[0]
    running = dst if lowest is not None else sources[0]
    for k, src in enumerate(sources[1:]):
        if better is not None:
            xp.greater(src, running, out=better[k])
        xp.fmax(src, running, out=dst)  # on ties fmax keeps its second argument: the first
        running = dst


def _sum_chain(sources, dst):
    """dst = Σ sources, added in order."""
    if len(sources) == 1:
        dst[...] = sources[0]
        return
    get_array_module(dst).add(sources[0], sources[1], out=dst)
    for src in sources[2:]:
        dst += src


def _tracks(ws, geo, chunks, xp):
    """Per chunk, the `better` masks of the row reduction (k_w − 1, cells) and of the column
    reduction (k_h − 1, cells), as contiguous views of one kept buffer."""
    (kh, kw) = geo.kernel
    sizes = [geo.sizes(stop - start) for start, stop in chunks]
    buf = ws.scratch("better", (sum((kw - 1) * cells + (kh - 1) * column_cells
                                    for cells, column_cells in sizes),), np.bool_, xp)
    tracks, used = [], 0
    for cells, column_cells in sizes:
        rows = buf[used:used + (kw - 1) * cells].reshape(kw - 1, cells)
        used += rows.size
        columns = buf[used:used + (kh - 1) * column_cells].reshape(kh - 1, column_cells)
        used += columns.size
        tracks.append((rows, columns))
    return tracks


def window_max(x, geo, ws, track=True, out=None):
    """(top (N, C, oh, ow), track) of MAX pooling; track: per chunk (row masks, column
    masks, found), found None when every window holds an input above −FLT_MAX."""
    xp = get_array_module(x)
    oh, ow = geo.out_size
    top = xp.empty((geo.nc, oh, ow), x.dtype) if out is None else out.reshape(geo.nc, oh, ow)
    x3 = x.reshape(geo.nc, *geo.size)
    chunks = geo.chunks(xp)
    plans = _plans(_Forward, geo, chunks, ws, x.dtype, xp, -np.inf)
    lowest = ws.padded("lowest", (max(plans) * geo.image_cells,), x.dtype, -FLT_MAX, xp)
    masks = (ws.memo((_tracks, geo.key, tuple(chunks)), lambda: _tracks(ws, geo, chunks, xp))
             if track else [(None, None)] * len(chunks))
    tracks = []
    for (start, stop), (row_better, column_better) in zip(chunks, masks):
        plan = plans[stop - start]
        plan.load(x3[start:stop])
        _max_rows(plan, lowest, row_better)
        _max_chain(plan.column_sources, plan.full, column_better, None)  # rows are >= lowest
        chunk_top = top[start:stop]
        chunk_top[...] = plan.top
        found = None
        if track and not chunk_top.min() > -FLT_MAX:
            found = chunk_top > -FLT_MAX  # windows with no input above −FLT_MAX: no gradient
        tracks.append((row_better, column_better, found))
    return top.reshape(x.shape[:2] + (oh, ow)), (tracks if track else None)


def _max_rows(plan, lowest, better):
    """The row maxima of a loaded chunk; clipped columns again from the cells in the row."""
    _max_chain(plan.row_sources, plan.rows, better, lowest[:plan.rows.size])
    if plan.clipped:
        column_lowest = lowest[:plan.nc * plan.geo.rows].reshape(plan.nc, plan.geo.rows)
        for j, rows, sources in plan.clipped:
            _max_chain(sources, rows, None, column_lowest)
            if better is not None:  # the offsets past the row never won
                better.reshape(-1, plan.nc, plan.geo.rows, plan.geo.cols)[
                    len(sources) - 1:, :, :, j] = False


class _Backward:
    """The gradient arrays, their views and the routes for chunks of nc images."""

    def __init__(self, geo, nc, ws, dtype, xp, masked):
        self.geo, self.nc = geo, nc
        cells, column_cells = geo.sizes(nc)
        (kh, kw), sw = geo.kernel, geo.stride[1]
        grad = ws.padded(f"grad{nc}", (cells,), dtype, 0, xp)  # zero outside the outputs
        self.grad = grad[:column_cells]
        self.grad_cells = geo.output_cells(_grid(grad, geo, nc))
        parts = ws.scratch("parts", (max(kh, kw), cells), dtype, xp)
        self.drows = ws.scratch("drows", (cells,), dtype, xp)
        dplanes = ws.scratch("dplanes", (sw, cells + geo.tail), dtype, xp)
        self.zero = [self.drows[column_cells:], dplanes[:, cells:]]  # reached by shifts only
        self.columns = _Route(geo.column_offsets(), self.drows[None], column_cells, parts)
        self.rows = _Route(geo.row_offsets(), dplanes, cells, parts)
        # AVE: a shifted part must not reach the next row from a clipped column.
        self.drop = [] if masked else [
            (k, [_grid(parts[k], geo, nc)[:, :, j] for j, count in geo.clipped_offsets()
                 if k >= count]) for k in range(kw)]
        self.scatters = []
        for phase in range(sw):
            plane_cols, image_cols = geo.inside(phase)
            self.scatters.append((image_cols, _grid(dplanes[phase], geo, nc)[:, geo.image_rows(),
                                                                           plane_cols]))

    def run(self, dtop, dx, row_better=None, column_better=None, found=None):
        """dx (nc, H, W) from dtop (nc, oh, ow): back through the column reduction, then the
        row reduction (MAX: to the winners the masks name; AVE: to every cell)."""
        xp = get_array_module(dtop)
        if found is None:
            self.grad_cells[...] = dtop
        else:
            xp.multiply(dtop, found, out=self.grad_cells)
        for zero in self.zero:
            zero[...] = 0
        self.columns.run(self.grad, column_better)
        self.rows.run(self.drows, row_better, self.drop)
        for image_cols, plane in self.scatters:
            dx[:, :, image_cols] = plane


class _Route:
    """targets[phase][shift:shift + n] += the part of a gradient each kernel offset takes:
    with masks (MAX) the winner's, without (AVE) all of it; parts are summed in offset order.

    The winner is the last offset whose `better` mask is set, else offset 0: from the last
    offset down, part = rest·better and rest −= part (exact: each is all or nothing), and
    offset 0 takes what is left. The first offset to reach a phase (k = phase, shift 0)
    writes its part there; the others are added. A MAX run leaves the rest in grad.
    """

    def __init__(self, offsets, targets, n, parts):
        firsts = {}
        for k, phase, _ in offsets:
            firsts.setdefault(phase, k)
        self.firsts = sorted(firsts.values())
        self.dest = [targets[phase, :n] if firsts[phase] == k else parts[k, :n]
                     for k, phase, _ in offsets]
        self.adds = [(k, targets[phase, shift:shift + n]) for k, phase, shift in offsets
                     if firsts[phase] != k]
        # Stride > kernel: phases no offset reaches hold cells in no window.
        self.unreached = [targets[phase] for phase in range(targets.shape[0])
                          if phase not in firsts]

    def run(self, grad, better, drop=()):
        xp = get_array_module(grad)
        dest = self.dest
        if better is None:
            for k in self.firsts:
                dest[k][...] = grad
            parts = [grad] * len(dest)
            for k, columns in drop:
                if columns and k not in self.firsts:
                    parts[k] = dest[k]
                    dest[k][...] = grad
                    for column in columns:
                        column[...] = 0
        else:
            if len(dest) == 1:
                dest[0][...] = grad
            for k in range(len(dest) - 1, 0, -1):  # grad becomes the rest, in place
                xp.multiply(grad, better[k - 1], out=dest[k])
                xp.subtract(grad, dest[k], out=dest[0] if k == 1 else grad)
            parts = dest
        for k, target in self.adds:
            target += parts[k]
        for target in self.unreached:
            target[...] = 0


def window_max_backward(dtop, track, geo, ws, dx):
    """dx of window_max: each top diff goes to the cell that won its window."""
    xp = get_array_module(dtop)
    oh, ow = geo.out_size
    dtop3, dx3 = dtop.reshape(geo.nc, oh, ow), dx.reshape(geo.nc, *geo.size)
    chunks = geo.chunks(xp)
    plans = _plans(_Backward, geo, chunks, ws, dtop.dtype, xp, True)
    for (start, stop), chunk_track in zip(chunks, track):
        plans[stop - start].run(dtop3[start:stop], dx3[start:stop], *chunk_track)
    return dx


def window_sum(x, geo, ws, out=None):
    """Σ over each window (cells outside the image add 0), (N, C, oh, ow)."""
    xp = get_array_module(x)
    oh, ow = geo.out_size
    top = xp.empty((geo.nc, oh, ow), x.dtype) if out is None else out.reshape(geo.nc, oh, ow)
    x3 = x.reshape(geo.nc, *geo.size)
    chunks = geo.chunks(xp)
    plans = _plans(_Forward, geo, chunks, ws, x.dtype, xp, 0)
    for start, stop in chunks:
        plan = plans[stop - start]
        plan.load(x3[start:stop])
        _sum_chain(plan.row_sources, plan.rows)
        for _, rows, sources in plan.clipped:
            _sum_chain(sources, rows)
        _sum_chain(plan.column_sources, plan.full)
        top[start:stop] = plan.top
    return top.reshape(x.shape[:2] + (oh, ow))


def window_sum_backward(dtop, geo, ws, dx):
    """dx of window_sum: each top diff added to every image cell of its window."""
    xp = get_array_module(dtop)
    oh, ow = geo.out_size
    dtop3, dx3 = dtop.reshape(geo.nc, oh, ow), dx.reshape(geo.nc, *geo.size)
    chunks = geo.chunks(xp)
    plans = _plans(_Backward, geo, chunks, ws, dtop.dtype, xp, False)
    for start, stop in chunks:
        plans[stop - start].run(dtop3[start:stop], dx3[start:stop])
    return dx


def _winner(better, xp):
    """The winning offset (the last source whose mask is set, else 0) per cell."""
    offset = xp.zeros(better.shape[1:], xp.int64)
    for k in range(better.shape[0]):
        offset[better[k]] = k + 1
    return offset


def phase_mask(track, geo, width):
    """Caffe's MAX mask h·W + w of each window's winner (−1 if none), (N·C, oh, ow)."""
    xp = get_array_module(track[0][0])
    return xp.concatenate([_chunk_mask(chunk_track, geo, stop - start, width)
                           for (start, stop), chunk_track in zip(geo.chunks(xp), track)])


def _chunk_mask(track, geo, nc, width):
    row_better, column_better, found = track
    xp = get_array_module(column_better)
    (sh, sw), (ph, pw), (oh, ow) = geo.stride, geo.pad, geo.out_size
    i, j = xp.arange(oh)[:, None], xp.arange(ow)
    start = (xp.arange(nc)[:, None, None] * geo.rows + i * sh) * geo.cols + j  # window starts
    a = _winner(column_better, xp)[start]  # the winning row offset
    b = _winner(row_better, xp)[start + a * geo.cols]  # the winning column offset in that row
    mask = (i * sh - ph + a) * width + j * sw - pw + b
    return mask if found is None else xp.where(found, mask, -1)
