"""PostgreSQL databases as content, dumped by `pg_dump` in plain SQL.

Plain format restores with nothing but `psql` (`psql -d fresh_db -f db.sql`), which is what a
user has at hand when hostbackup is not. `pg_dump` runs the whole dump in one repeatable-read
snapshot by itself, so the dump is consistent while the site keeps writing.
"""

from __future__ import annotations

from hostbackup.accounts.databases import ServerAccess
from hostbackup.backup.sources.dump import DumpSource


def postgres_source(webspace: str, database: str, access: ServerAccess) -> DumpSource:
    command = ("pg_dump", *access.connection_args(), "--format=plain", "--encoding=UTF8", "--dbname", database)
    return DumpSource(webspace, database, access, command)
