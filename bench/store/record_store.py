"""Run records kept beside an Optuna storage, so that a trial holds a summary and a key, not a record.

A whole record does not fit a trial attribute everywhere: a paper-profile run's loss history alone is
about 140 KB, over MySQL's 64 KB `TEXT`, and such a write would fail after training had finished.
So a search's trial carries `summary` (a few hundred bytes: what tables, exports and the check that a
trial ran its own point need) and `record_key`, and the record itself lives
- in the table `kdbench_records` of the storage's own database, for SQL storages (SQLite, PostgreSQL,
  MySQL), so every worker that reaches the studies reaches the records;
- in files beside the journal (`PATH.records/KEY.json`), for journal storages, which workers share
  on one file system by design.
Trials written before (the record inline, as the `record` attribute) are read as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial
from sqlalchemy.dialects import mysql

from bench.parts.errors import KdbenchError
from bench.pipeline.storage import write_json
from bench.roles import ROLES

TABLE = "kdbench_records"
SUMMARY, KEY, INLINE = "summary", "record_key", "record"  # trial attributes
_POINT = ("seed", "learning_rate", "per_device_train_batch_size")  # what a search's trial sets

_RECORDS = sqlalchemy.Table(
    TABLE, sqlalchemy.MetaData(),
    sqlalchemy.Column("key", sqlalchemy.String(64), primary_key=True),
    # unbounded on SQLite and PostgreSQL; MySQL's TEXT stops at 64 KB, LONGTEXT at 4 GB
    sqlalchemy.Column("record", sqlalchemy.Text().with_variant(mysql.LONGTEXT(), "mysql"), nullable=False),
)


def summarise(record: dict) -> dict:
    """What a trial carries of its run: task, kind, parts, the point it ran, best score and timings."""
    config = record.get("config", {})
    train = config.get("train", {})
    return {"task": record.get("task"), "kind": record.get("kind"), "method": record.get("method"),
            **{role.name: config.get(role.stored_key, role.default) for role in ROLES[1:]},
            "seed": record.get("seed"), **{k: train.get(k) for k in _POINT if k != "seed"},
            "best": record.get("best"), "timings_s": record.get("timings_s")}


def trial_summary(trial: FrozenTrial) -> dict:
    """A trial's summary, from its `summary` attribute or, for a trial written before, its inline record."""
    return trial.user_attrs.get(SUMMARY) or summarise(trial.user_attrs.get(INLINE, {}))


class _TableStore:
    """Records as rows of `kdbench_records` in the storage's database."""

    def __init__(self, engine: sqlalchemy.engine.Engine) -> None:
        self.engine = engine

    def put(self, key: str, record: dict) -> None:
        text = json.dumps(record, default=str)
        try:
            _RECORDS.create(self.engine, checkfirst=True)
        except sqlalchemy.exc.DatabaseError:  # another worker made it between the check and the create
            if not sqlalchemy.inspect(self.engine).has_table(TABLE):
                raise
        for attempt in range(2):
            try:
                with self.engine.begin() as connection:  # one transaction: the row is whole or absent
                    connection.execute(_RECORDS.delete().where(_RECORDS.c.key == key))  # a run retrained after a crash
                    connection.execute(_RECORDS.insert().values(key=key, record=text))
                return
            except sqlalchemy.exc.IntegrityError:  # another worker stored the same run between our delete and insert
                if attempt:
                    raise

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        if not sqlalchemy.inspect(self.engine).has_table(TABLE):  # readers create nothing
            return found
        with self.engine.connect() as connection:
            for start in range(0, len(keys), 500):  # SQL engines bound the number of parameters
                query = sqlalchemy.select(_RECORDS).where(_RECORDS.c.key.in_(keys[start:start + 500]))
                found.update((row.key, json.loads(row.record)) for row in connection.execute(query))
        return found


class _FileStore:
    """Records as JSON files in a folder beside a journal file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, key: str, record: dict) -> None:
        write_json(self.folder / f"{key}.json", record)

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        paths = {key: self.folder / f"{key}.json" for key in keys}
        return {key: json.loads(path.read_text()) for key, path in paths.items() if path.is_file()}


def record_store(storage: optuna.storages.BaseStorage) -> _TableStore | _FileStore:
    """Where the records of `storage`'s trials are kept."""
    if isinstance(storage, JournalStorage):
        backend = storage._backend  # Optuna keeps the journal's backend private; its file path is ours to reuse
        if not isinstance(backend, JournalFileBackend):
            raise KdbenchError("journal storages other than a file (journal:PATH) are not supported")
        return _FileStore(Path(backend._file_path + ".records"))
    if not isinstance(storage, RDBStorage):
        raise KdbenchError(f"records are kept beside SQL and journal-file storages, not a {type(storage).__name__}: "
                           "open the storage with bench.store.studies.open_storage")
    return _TableStore(storage.engine)


def point_to_record(trial: optuna.Trial, key: str, record: dict) -> None:
    """Give the trial its run's summary and the key its record is kept under (`record_store(...).put`)."""
    trial.set_user_attr(SUMMARY, summarise(record))
    trial.set_user_attr(KEY, key)


def trial_records(storage: optuna.storages.BaseStorage, trials: Iterable[FrozenTrial]) -> list[dict]:
    """Each trial's whole record, in order: inline (trials written before) or from the record store."""
    trials = list(trials)
    keys = [t.user_attrs[KEY] for t in trials if INLINE not in t.user_attrs and KEY in t.user_attrs]
    stored = record_store(storage).get_many(keys) if keys else {}
    records = []
    for trial in trials:
        record = trial.user_attrs.get(INLINE) or stored.get(trial.user_attrs.get(KEY, ""))
        if record is None:
            raise KdbenchError(f"trial {trial.number} names record {trial.user_attrs.get(KEY)!r}, which its storage "
                               f"does not hold (table {TABLE}, or the folder beside a journal file): was the "
                               "storage copied without it?")
        records.append(record)
    return records
