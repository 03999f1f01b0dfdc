"""A background thread that makes the next batches while the net computes (Caffe keeps
`data_param.prefetch` = 4 ready).

The thread calls `produce()` again and again and queues what it returns, at most `depth` items
ahead. Batches come out in the order they were made, and everything random in a batch is drawn
from a generator of that batch's own (see BatchMaker), so what a layer emits does not depend on
thread timing. `stop()` ends the thread promptly (it never blocks for more than a tenth of a
second); a layer that is garbage collected, and every prefetcher at interpreter exit, is
stopped, so neither Ctrl-C nor the end of a run ever hangs on it.
"""
import atexit
import queue
import threading
import time
import weakref

POLL_SECONDS = 0.1
# The most memory the batches waiting in a queue may take (streamed.prefetch_depth).
PREFETCH_BYTES = 256 << 20
_live = weakref.WeakSet()


class Prefetcher:
    """`get()` returns (item, seconds waited) in production order; an exception raised by
    produce() is raised again by the `get()` that reaches it."""

    def __init__(self, produce, depth=4, name="caffelite-prefetch"):
        self.produce, self.depth, self.name = produce, max(1, int(depth)), name
        self._thread = None
        self._stop = threading.Event()
        self._queue = None

    @property
    def running(self):
        return self._thread is not None

    def start(self):
        if self._thread is not None:
            return
        self._stop.clear()
        self._queue = queue.Queue(self.depth)
        self._thread = threading.Thread(target=_run, args=(self.produce, self._queue, self._stop),
                                        name=self.name, daemon=True)
        _live.add(self)
        self._thread.start()

    def get(self):
        if self._thread is None:
            self.start()
        begin = time.perf_counter()
        while True:
            try:
                ok, value = self._queue.get(timeout=POLL_SECONDS)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError(f"{self.name}: the prefetch thread ended") from None
        waited = time.perf_counter() - begin
        if not ok:
            self.stop()
            raise value
        return value, waited

    def stop(self):
        """End the thread and drop the batches it made (the producer may then be repositioned
        and the prefetcher started again)."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        while thread.is_alive():
            _drain(self._queue)
            thread.join(POLL_SECONDS)
        self._thread = self._queue = None
        _live.discard(self)


def _run(produce, out, stop):
    """The thread: produce items and queue them until stopped or produce() raises."""
    while not stop.is_set():
        try:
            item = (True, produce())
        except BaseException as exc:  # handed to the consumer, which raises it
            item = (False, exc)
        while not stop.is_set():
            try:
                out.put(item, timeout=POLL_SECONDS)
                break
            except queue.Full:
                continue
        if not item[0]:
            return


def _drain(q):
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass


@atexit.register
def stop_all():
    """Stop every running prefetcher (at exit, before the modules they use are torn down)."""
    for prefetcher in list(_live):
        prefetcher.stop()
