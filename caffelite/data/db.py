"""LMDB and LevelDB key-value databases as Caffe's data tools write them: a cursor that reads
record by record in key order (wrapping at the end); the writers (db_writer.DBWriter) build a
database under a temporary name and rename it into place only when it is complete."""
import os
import threading

from .db_writer import BACKENDS, DBWriter  # noqa: F401  (the writers, with the readers)
from .errors import DataError, need

# An LMDB cursor maps the file: every page read stays in this process's RSS until the map
# is closed, so a reader reopens the environment after this many bytes of values.
LMDB_REMAP_BYTES = 64 << 20


def detect_backend(path):
    """'lmdb' or 'leveldb' from the files in a database directory; None if it is neither."""
    if os.path.isfile(os.path.join(path, "data.mdb")):
        return "lmdb"
    if os.path.isfile(os.path.join(path, "CURRENT")):
        return "leveldb"
    return None


def check_database(path, backend):
    """The backend of the database at path; DataError when it is not one."""
    if not os.path.exists(path):
        raise DataError(f"{path}: no such database")
    if not os.path.isdir(path):
        raise DataError(f"{path} is a file, not an LMDB or LevelDB database (a directory)")
    found = detect_backend(path)
    if found is None:
        raise DataError(f"{path} is not an LMDB or LevelDB database (it has neither data.mdb "
                        "nor CURRENT)")
    if backend and found != backend:
        raise DataError(f"{path} is a {_NAMES[found]} database but backend is "
                        f"{_NAMES[backend]}; set backend: {found.upper()}")
    return found


_NAMES = {"lmdb": "LMDB", "leveldb": "LevelDB"}


def open_cursor(path, backend=None):
    """A cursor on the first record of an LMDB or LevelDB database (backend checked)."""
    backend = check_database(path, backend)
    return LMDBCursor(path) if backend == "lmdb" else LevelDBCursor(path)


class LMDBCursor:
    """Records of an LMDB in key order: key(), value(), next() (wraps; True when it did)."""

    backend = "lmdb"

    def __init__(self, path):
        self.path = path
        self._open()
        if not self._cursor.first():
            self.close()
            raise DataError(f"{path}: the LMDB database is empty")

    def _open(self):
        self._env = _LMDB.acquire(self.path)
        self._txn = self._env.begin()
        self._cursor = self._txn.cursor()
        self._mapped = 0

    def __len__(self):
        return self._env.stat()["entries"]

    def key(self):
        return self._cursor.key()

    def value(self):
        value = self._cursor.value()
        self._mapped += len(value)
        return value

    def next(self):
        wrapped = not self._cursor.next()
        if wrapped:
            self._cursor.first()
        if self._mapped > LMDB_REMAP_BYTES and _LMDB.users(self.path) == 1:
            self._remap()
        return wrapped

    def _remap(self):
        key = self._cursor.key()
        self.close()
        self._open()
        self._cursor.set_key(key)

    def seek(self, key):
        if not self._cursor.set_key(key):
            raise DataError(f"{self.path}: no record with key {key!r} to resume from (the "
                            "database changed since the snapshot?)")

    def close(self):
        if getattr(self, "_env", None) is not None:
            self._txn.abort()
            _LMDB.release(self.path)
            self._env = None


class LevelDBCursor:
    """Records of a LevelDB in key order, as LMDBCursor."""

    backend = "leveldb"

    def __init__(self, path):
        self.path = path
        self._db = _LEVELDB.acquire(path)
        self._it = self._db.raw_iterator()
        self._it.seek_to_first()
        if not self._it.valid():
            self.close()
            raise DataError(f"{path}: the LevelDB database is empty")

    def __len__(self):
        return sum(1 for _ in self._db.iterator(include_value=False))

    def key(self):
        return self._it.key()

    def value(self):
        return self._it.value()

    def next(self):
        self._it.next()
        wrapped = not self._it.valid()
        if wrapped:
            self._it.seek_to_first()
        return wrapped

    def seek(self, key):
        self._it.seek(key)
        if not self._it.valid() or self._it.key() != key:
            raise DataError(f"{self.path}: no record with key {key!r} to resume from (the "
                            "database changed since the snapshot?)")

    def close(self):
        if self._db is not None:
            self._it.close()
            _LEVELDB.release(self.path)
            self._db = None


class _Shared:
    """One open handle per database and process, shared by its readers: LevelDB locks a
    database for one opener, and py-lmdb refuses to open an environment twice (a train and a
    test net, or two solvers, may read the same database)."""

    def __init__(self, opener):
        self._opener = opener
        self._lock = threading.Lock()
        self._open = {}

    def acquire(self, path):
        real = os.path.realpath(path)
        with self._lock:
            if real not in self._open:
                self._open[real] = [self._opener(path, real), 0]
            self._open[real][1] += 1
            return self._open[real][0]

    def users(self, path):
        entry = self._open.get(os.path.realpath(path))
        return entry[1] if entry else 0

    def release(self, path):
        real = os.path.realpath(path)
        with self._lock:
            entry = self._open.get(real)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                entry[0].close()
                del self._open[real]


def _open_leveldb(path, real):
    plyvel = need("plyvel", "Reading a LevelDB database")
    try:
        return plyvel.DB(real, create_if_missing=False)
    except plyvel.Error as exc:
        raise DataError(f"{path} is not a readable LevelDB database ({exc})") from None


def _open_lmdb(path, real):
    lmdb = need("lmdb", "Reading an LMDB database")
    try:
        # No lock file: the data may sit on a read-only disk, and nothing writes it now.
        return lmdb.open(real, readonly=True, lock=False, subdir=True)
    except lmdb.Error as exc:
        raise DataError(f"{path} is not a readable LMDB database ({exc})") from None


_LEVELDB = _Shared(_open_leveldb)
_LMDB = _Shared(_open_lmdb)


def count_records(path, backend=None):
    """The number of records of an LMDB (None for a LevelDB: it would take a scan); checks that
    the database opens and is not empty."""
    cursor = open_cursor(path, backend)
    try:
        return len(cursor) if cursor.backend == "lmdb" else None
    finally:
        cursor.close()


def iterate_records(path, backend=None):
    """(key, value) of every record once, in key order."""
    cursor = open_cursor(path, backend)
    try:
        while True:
            yield cursor.key(), cursor.value()
            if cursor.next():
                return
    finally:
        cursor.close()
