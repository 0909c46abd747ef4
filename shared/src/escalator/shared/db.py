"""Database engines, sessions, and the tables every service carries (outbox and inbox).

One URL picks the backend: PostgreSQL via asyncpg (each service in its own schema,
selected through ``search_path`` so models and migrations stay schema-agnostic) or
SQLite via aiosqlite (each service in its own file).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    event,
    func,
    literal_column,
    select,
    text,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.types import TypeDecorator

from escalator.shared.settings import ServiceSettings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[Any]):
    """Timezone-aware datetimes on both backends (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; Escalator stores UTC-aware datetimes only")
        return value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

#: Tables owned by the shared mechanisms; every service's first migration creates them.
bus_metadata = MetaData(naming_convention=NAMING_CONVENTION)

outbox = Table(
    "outbox",
    bus_metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("event_id", String(255), nullable=False, unique=True),
    Column("topic", String(200), nullable=False),
    Column("key", String(200), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    # The relay scans only unsent rows; a partial index keeps that scan tiny however
    # many sent rows remain.
    Index(
        "ix_outbox_unsent",
        "id",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
)

inbox = Table(
    "inbox",
    bus_metadata,
    Column("event_id", String(255), primary_key=True),
    Column("event_type", String(200), nullable=False),
    Column("topic", String(200), nullable=False),
    Column("processed_at", UTCDateTime, nullable=False),
)


#: How far each consumed partition has been read, in time (``escalator.shared.progress``).
#: Only services that act on time (timers, senders) have it: their own metadata and
#: migrations include ``progress_metadata``.
progress_metadata = MetaData(naming_convention=NAMING_CONVENTION)

consumer_progress = Table(
    "consumer_progress",
    progress_metadata,
    Column("topic", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("read_through", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)


def make_engine(settings: ServiceSettings) -> AsyncEngine:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _sqlite_write_locks(engine)
        return engine
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        connect_args={"server_settings": {"search_path": settings.db_schema,
                                          "application_name": application_name(settings)}},
    )
    _drop_closed_connections(engine)
    return engine


def application_name(settings: ServiceSettings) -> str:
    """How this service's connections are named on the server: in ``pg_stat_activity``
    for the operator, and for the relay, which waits for the service's open transactions
    before it vouches (``outbox._covered_until``). The same for every replica."""
    return f"escalator-{settings.service_name}:{settings.db_schema}"[:63]


def _drop_closed_connections(engine: AsyncEngine) -> None:
    """Replace a pooled connection the server has closed (a restart, a terminated
    backend) at checkout, without a round trip.

    ``pool_pre_ping`` did this with a ping on every checkout, which asyncpg's adapter
    sends as BEGIN, an empty query and ROLLBACK: three round trips before each
    transaction, a quarter of a router batch's statements. asyncpg notices a closed
    socket on its own, so the check is free. A connection that dies unnoticed (no FIN
    yet) fails its first statement as a disconnect; SQLAlchemy then invalidates the
    whole pool, and the callers retry as on any outage (consumers and the relay back
    off; an API request answers 503).
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection._connection.is_closed():
            raise DisconnectionError("connection closed by the server")


def _sqlite_write_locks(engine: AsyncEngine) -> None:
    """Take SQLite's write lock at BEGIN so concurrent transactions queue, not fail.

    Deferred transactions that read and then write fail with "database is locked" when
    another writer got in between; BEGIN IMMEDIATE plus WAL makes them wait instead.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


_ON_COMMIT = "escalator.on_commit"
_PER_TRANSACTION = "escalator.per_transaction"


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A sessionmaker with its own sync Session subclass, so per-service session event
    hooks (the outbox relay's wake-up) never fire for another service in the same process."""
    session_class = type("EscalatorSession", (Session,), {})

    def _after_commit(session: Session) -> None:
        for callback in session.info.pop(_ON_COMMIT, []):
            callback()

    def _after_rollback(session: Session) -> None:
        session.info.pop(_ON_COMMIT, None)

    def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            session.info.pop(_PER_TRANSACTION, None)

    event.listen(session_class, "after_commit", _after_commit)
    event.listen(session_class, "after_rollback", _after_rollback)
    event.listen(session_class, "after_transaction_end", _after_transaction_end)
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=session_class)


def on_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction commits; never if it rolls back.

    For work that must only follow a durable change, such as waking a timer loop for a
    deadline that was just stored.
    """
    session.sync_session.info.setdefault(_ON_COMMIT, []).append(callback)


T = TypeVar("T")


def transaction_info(session: AsyncSession) -> dict[str, Any]:
    """A dict for state that lives as long as the session's outermost transaction.

    Dropped when that transaction ends, not when the session is collected: such state
    usually refers to its transaction, which refers to the session holding the state, and
    that cycle is freed only by the garbage collector. The router's locked rows were
    most of what its young generation held, and each collection of them paused the event
    loop for 3-7 ms, the tail of its decision latency."""
    info: dict[str, Any] = session.info.setdefault(_PER_TRANSACTION, {})
    return info


async def per_transaction(session: AsyncSession, key: str,
                          load: Callable[[], Awaitable[T]]) -> T:
    """``load()`` once per transaction of ``session``, kept (with the rows it holds) under
    ``key`` until the transaction ends (``transaction_info``).

    For configuration a consumer consults per event: it applies a poll of events in one
    transaction, and a read per event was a query that first flushed what the event
    before it had changed (the identity map keeps no row nothing else refers to, so even
    a lookup by key went to the database). A change committed meanwhile applies from the
    next poll on, as if the poll had been applied at once."""
    held = transaction_info(session)
    if key not in held:
        held[key] = await load()
    return held[key]  # type: ignore[no-any-return]


async def read_snapshot(session: AsyncSession) -> None:
    """Make the rest of ``session``'s transaction read one snapshot (PostgreSQL).

    Under READ COMMITTED each statement sees its own snapshot, so a view assembled from
    several reads (a row and its history) can mix two commits. Call this before the
    transaction's first statement. SQLite needs nothing: a transaction there already
    reads one snapshot.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction per unit of work: committed on success, rolled back on error."""
    async with sessionmaker() as session, session.begin():
        yield session


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def conflict_insert(dialect: str) -> Any:
    """The dialect's INSERT construct (PostgreSQL's or SQLite's), the one that has
    ``on_conflict_do_nothing`` / ``on_conflict_do_update``; ``dialect`` is the engine's
    dialect name."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def arrays(*columns: tuple[str, Any]) -> Any:
    """``unnest(one array parameter per (name, type))`` as a derived table whose columns
    are named like the parameters: many rows as one parameter per column on PostgreSQL.
    The arrays are declared one-dimensional: a JSON column's list values are items, not
    a second dimension."""
    return func.unnest(*(bindparam(name, type_=postgresql.ARRAY(kind, dimensions=1))
                         for name, kind in columns)).table_valued(
        *(name for name, _ in columns)).render_derived()


def unnested(table: Table, arrays_of: Sequence[str], scalars: Sequence[str] = (), *,
             prefix: str = "") -> Any:
    """``SELECT * FROM unnest(one array parameter per column)`` plus single parameters,
    for ``insert(table).from_select([*arrays_of, *scalars], ...)`` on PostgreSQL: many
    rows in one statement whose text and parameters do not grow with the rows, so
    nothing is rendered or processed per row (SQLAlchemy's multi-row VALUES binds each
    value of each row). The rows go in array order. Parameters are named ``prefix`` +
    column, so several such inserts can share one statement (``add_cte``)."""
    return select(
        arrays(*((prefix + name, table.c[name].type) for name in arrays_of)),
        *(bindparam(prefix + name, type_=table.c[name].type) for name in scalars),
    )


def held(*columns: Any, dialect: str, where: Sequence[Any] = ()) -> Any:
    """Which of many keys (one array parameter per column, named like it) a table holds,
    among the rows that also meet ``where``; on PostgreSQL ``unnest(arrays) JOIN LATERAL
    (SELECT 1 ... WHERE key = row LIMIT 1)``.

    The lateral subquery with its ``LIMIT`` is planned on its own, as an equality on
    indexed columns, which is an index probe whatever the statistics say;
    ``IN (SELECT unnest(...))`` is a join the planner may hash instead. A prepared
    statement keeps the plan made while its table was empty until the table is analysed:
    the join's plan then read every ticket of the channel for each lookup (24 ms at
    10,000 tickets, single-event ingest at 650 req/s against 1,630 with statistics), the
    probes' stays at one probe per key. ``columns`` must lead an index of one table.
    SQLite takes one ``IN`` list per column: with several columns the answer may hold
    more keys than were asked (each is still in the table), never fewer.
    """
    if dialect != "postgresql":
        return select(*columns).where(
            *(column.in_(bindparam(column.name, expanding=True)) for column in columns),
            *where)
    keys = arrays(*((column.name, column.type) for column in columns))
    hit = (select(literal_column("1"))
           .where(*(column == keys.c[column.name] for column in columns), *where)
           .limit(literal_column("1")).lateral())
    return select(*(keys.c[column.name] for column in columns)).select_from(keys).join(
        hit, true())


def per_key(query: Any, column: Any, name: str, dialect: str) -> tuple[Any, Any]:
    """``query``'s rows whose ``column`` is one of the keys in the array parameter
    ``name``, found on PostgreSQL by probing ``column``'s index per key, as ``held`` does:
    ``unnest($name) JOIN LATERAL (query AND column = key OFFSET 0)``. ``OFFSET 0`` keeps
    the subquery from being merged into a join the planner may hash; a lock
    (``with_for_update``) in ``query`` takes the rows key by key, in the array's order
    (and one key's rows in ``query``'s ``ORDER BY``, if it has one). SQLite takes an
    ``IN`` list. Returns (the rows as a subquery, the FROM clause to select them from):
    select its columns, or ``aliased(Entity, rows)`` for ORM objects."""
    if dialect != "postgresql":
        rows = query.where(column.in_(bindparam(name, expanding=True))).subquery()
        return rows, rows
    keys = arrays((name, column.type))
    rows = query.where(column == keys.c[name]).offset(literal_column("0")).lateral()
    return rows, keys.join(rows, true())


class InsertNew:
    """``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING key`` for many rows: which of
    them went in, the others being there already (an inbox claiming a batch's event ids,
    a timeline storing a batch's events). Built once, for both dialects: on PostgreSQL the
    rows go in as one array per column (``unnested``: one prepared statement for any
    batch, nothing bound per row), on SQLite as one multi-row VALUES from one compiled
    statement ("insertmanyvalues", in the given order), where a statement built per batch
    cost about ten times the insert. ``shared`` columns hold one value for every row (the
    first row's is bound once)."""

    def __init__(self, table: Table, key: str, columns: Sequence[str],
                 shared: Sequence[str] = ()) -> None:
        self._columns, self._shared = list(columns), list(shared)
        self._arrays = (postgresql.insert(table)
                        .from_select([*columns, *shared], unnested(table, columns, shared))
                        .on_conflict_do_nothing(index_elements=[key])
                        .returning(table.c[key]))
        self._rows = (sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])
                      .returning(table.c[key]))

    async def __call__(self, session: AsyncSession, rows: list[dict[str, Any]]) -> set[Any]:
        if not rows:
            return set()
        if session.get_bind().dialect.name == "postgresql":
            params = {name: [row[name] for row in rows] for name in self._columns}
            params.update((name, rows[0][name]) for name in self._shared)
            return set((await session.scalars(self._arrays, params)).all())
        return set((await session.scalars(self._rows, rows)).all())


def among(column: Any, name: str, session: AsyncSession | AsyncConnection | str) -> Any:
    """``column IN (the list bound as name)``, for lists of any length (a batch of a
    thousand ids). On PostgreSQL one array parameter, so the statement's text (and its
    prepared statement) is the same for any number of ids and nothing is rendered per id,
    unnested in a subquery: ``column = ANY($1)`` gets a generic plan that compares every
    row of the table with every id (20 ms for a thousand agents), a semi-join does not.
    But a semi-join planned while the table was empty may hash the whole table on every
    call until it is analysed: lookups by key on tables that grow use ``held`` or
    ``per_key``, which stay index probes. ``session`` may be the dialect's name, for a
    statement built once per dialect."""
    if isinstance(session, str):
        dialect = session
    else:
        bind = session if isinstance(session, AsyncConnection) else session.get_bind()
        dialect = bind.dialect.name
    if dialect == "postgresql":
        ids = bindparam(name, type_=postgresql.ARRAY(column.type))
        return column.in_(select(func.unnest(ids)).scalar_subquery())
    return column.in_(bindparam(name, expanding=True))

