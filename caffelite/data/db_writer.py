"""DBWriter: a new LMDB or LevelDB database, complete or not at all."""
import os
import shutil
import tempfile

from .errors import DataError, need

BACKENDS = ("lmdb", "leveldb")
LMDB_INITIAL_MAP = 64 << 20


class DBWriter:
    """Writes key/value records into a new database at `path`, built in a hidden temporary
    directory beside it and renamed when `close()` completes; on an error or interruption the
    temporary directory is removed, so `path` never holds half a database.

        with DBWriter("train_lmdb", "lmdb") as db:
            db.put(b"00000000", datum.SerializeToString())
    """

    def __init__(self, path, backend, commit_every=1000):
        if backend not in BACKENDS:
            raise DataError(f"unknown backend '{backend}'; use one of {', '.join(BACKENDS)}")
        if os.path.exists(path):
            raise DataError(f"{path} already exists; remove it or choose another name")
        self.path, self.backend, self.commit_every = path, backend, commit_every
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self.temp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.part-", dir=parent)
        self.pending = []
        self.count = 0
        try:
            self._open()
        except BaseException:
            shutil.rmtree(self.temp, ignore_errors=True)
            raise

    def _open(self):
        if self.backend == "lmdb":
            lmdb = need("lmdb", "Writing an LMDB database")
            self.map_size = LMDB_INITIAL_MAP
            self._db = lmdb.open(self.temp, map_size=self.map_size, subdir=True)
        else:
            plyvel = need("plyvel", "Writing a LevelDB database")
            self._db = plyvel.DB(self.temp, create_if_missing=True, error_if_exists=False,
                                 block_size=64 << 10, write_buffer_size=64 << 20)

    def put(self, key, value):
        key = key.encode() if isinstance(key, str) else bytes(key)
        self.pending.append((key, bytes(value)))
        self.count += 1
        if len(self.pending) >= self.commit_every:
            self.commit()

    def commit(self):
        if not self.pending:
            return
        if self.backend == "lmdb":
            self._commit_lmdb()
        else:
            with self._db.write_batch() as batch:
                for key, value in self.pending:
                    batch.put(key, value)
        self.pending = []

    def _commit_lmdb(self):
        import lmdb

        while True:
            try:
                with self._db.begin(write=True) as txn:
                    for key, value in self.pending:
                        txn.put(key, value)
                return
            except lmdb.MapFullError:  # as Caffe: double the map and write the batch again
                self.map_size *= 2
                self._db.set_mapsize(self.map_size)

    def close(self, complete=True):
        """Commit and rename into place (complete) or throw the temporary database away."""
        if self._db is None:
            return
        try:
            if complete:
                self.commit()
        finally:
            self._db.close()
            self._db = None
        if not complete:
            shutil.rmtree(self.temp, ignore_errors=True)
            return
        if os.path.exists(self.path):
            shutil.rmtree(self.temp, ignore_errors=True)
            raise DataError(f"{self.path} appeared while it was being written; nothing replaced")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.temp, 0o777 & ~umask)  # mkdtemp made it private; a database is not
        os.rename(self.temp, self.path)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        self.close(complete=kind is None)
        return False
