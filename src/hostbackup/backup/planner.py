"""Planning a backup: which accounts, webspaces and content go in, for a level and its options.

Configuration always goes in. Web files and database dumps of each webspace unless `only-mail`
or `only-configuration` (databases are hosting content); mail unless `only-hosting` or
`only-configuration` (spec §4.5). The configuration dump lists databases and mailboxes whatever
the options, so even a configuration-only backup says what existed. The plan is computed in one
database transaction, so the archive describes one consistent moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from hostbackup.accounts.databases import POSTGRESQL, databases_of, server_access
from hostbackup.accounts.vault import Vault
from hostbackup.accounts.webspaces import mailboxes_of, webspaces_of
from hostbackup.backup import config_dump
from hostbackup.backup.sources import Source
from hostbackup.backup.sources.dump import DumpSource
from hostbackup.backup.sources.files import TreeSource
from hostbackup.backup.sources.mysql import mysql_source
from hostbackup.backup.sources.postgres import postgres_source
from hostbackup.config import Settings
from hostbackup.db.tables import DbServer, HostedDatabase, Task, User, Webspace
from hostbackup.tasks.task import TargetKind
from hostbackup.xmlapi.results import E


@dataclass
class Plan:
    configuration: bytes
    sources: list[Source] = field(default_factory=list)
    webspaces: list[str] = field(default_factory=list)


def content_flags(options: dict[str, object]) -> dict[str, bool]:
    configuration_only = bool(options.get("only_configuration"))
    hosting = not (configuration_only or options.get("only_mail"))
    return {
        "files": hosting,
        "databases": hosting,
        "mail": not (configuration_only or options.get("only_hosting")),
    }


class _Collector:
    """Walks the accounts of a target, building the configuration tree and the content list."""

    def __init__(self, session: Session, settings: Settings, flags: dict[str, bool]) -> None:
        self.session, self.settings, self.flags = session, settings, flags
        self.sources: list[Source] = []
        self.webspaces: list[str] = []

    def webspace(self, webspace: Webspace) -> etree._Element:
        self.webspaces.append(webspace.name)
        prefix = f"domains/{webspace.name}"
        if self.flags["files"]:
            self.sources.append(TreeSource(self.settings.vhosts_root / webspace.name, f"{prefix}/files", webspace.name))
        if self.flags["databases"]:
            self.sources.extend(self.database(webspace, record) for record in databases_of(self.session, webspace.id))
        if self.flags["mail"]:
            for mailbox in mailboxes_of(self.session, webspace.id):
                root = self.settings.mail_root / webspace.name / mailbox.name
                self.sources.append(
                    TreeSource(root, f"{prefix}/mail/{mailbox.name}", webspace.name, root_may_be_link=False)
                )
        content = {"mail": self.flags["mail"], "databases": self.flags["databases"]}
        return config_dump.webspace_element(self.session, webspace, content)

    def database(self, webspace: Webspace, record: HostedDatabase) -> DumpSource:
        """The dump of one database, run as its server's administrator."""
        server = self.session.get(DbServer, record.db_server_id)
        if server is None:
            raise LookupError(f"database server of {record.name} no longer exists")
        make = postgres_source if server.type == POSTGRESQL else mysql_source
        return make(webspace.name, record.name, server_access(server, self.vault))

    @cached_property
    def vault(self) -> Vault:
        """Opened only when a database is backed up: it decrypts the servers' admin passwords."""
        return Vault(self.settings.secret_key_file)

    def user(self, user: User) -> etree._Element:
        children = [self.webspace(webspace) for webspace in webspaces_of(self.session, user.id)]
        customers = select(User).where(User.owner_id == user.id, User.kind == "customer").order_by(User.id)
        if user.kind != "customer":
            children += [self.user(customer) for customer in self.session.scalars(customers)]
        return config_dump.user_element(user, children)


def plan_backup(session: Session, settings: Settings, task: Task) -> Plan:
    collector = _Collector(session, settings, content_flags(task.options))
    kind = TargetKind(task.target_kind)
    if kind is TargetKind.WEBSPACE:
        webspace = session.get(Webspace, task.target_id)
        if webspace is None:
            raise LookupError(f"webspace {task.target_name} no longer exists")
        accounts = E("accounts", None, collector.webspace(webspace))
    else:
        user = session.get(User, task.target_id if kind is not TargetKind.SERVER else 1)
        if user is None:
            raise LookupError(f"{kind.value} {task.target_name} no longer exists")
        accounts = E("accounts", None, collector.user(user))
        if kind is TargetKind.SERVER:  # resellers hang below the administrator
            resellers = select(User).where(User.kind == "reseller").order_by(User.id)
            accounts[0].extend(collector.user(reseller) for reseller in session.scalars(resellers))
    configuration = config_dump.dump(task, accounts, collector.flags)
    return Plan(configuration, collector.sources, collector.webspaces)
