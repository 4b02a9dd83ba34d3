"""MySQL/MariaDB databases as content, dumped by `mariadb-dump` (or `mysqldump`) as SQL.

`--single-transaction` dumps InnoDB tables from one consistent snapshot without locking the
site out; routines, triggers and events are included, and binary columns are written in hex so
that the dump survives any client character set. The database name is given without
`--databases`, so the dump holds no `CREATE DATABASE`/`USE` and restores into a database of any
name: `mariadb fresh_db < db.sql`.
"""

from __future__ import annotations

from hostbackup.accounts.databases import ServerAccess, first_tool
from hostbackup.backup.sources.dump import DumpSource

OPTIONS = (
    "--single-transaction",
    "--routines",
    "--triggers",
    "--events",
    "--hex-blob",
    "--default-character-set=utf8mb4",
)


def mysql_source(webspace: str, database: str, access: ServerAccess) -> DumpSource:
    tool = first_tool("mariadb-dump", "mysqldump")
    command = (tool, "--no-defaults", *access.connection_args(), *OPTIONS, database)
    return DumpSource(webspace, database, access, command)
