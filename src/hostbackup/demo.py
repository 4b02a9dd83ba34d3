"""Demo data: a reseller, two customers, three webspaces with web content, mailboxes with mail.

Deterministic (seeded), a few MB in all, so that a newcomer can run a real backup against the
service seconds after `make run`. Seeding is done once per home.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from hostbackup.accounts.users import Role, create_user
from hostbackup.accounts.webspaces import create_mailbox, create_webspace
from hostbackup.db.tables import User
from hostbackup.xmlapi.context import Services

DEMO_PASSWORD = "demo-Pass-1"
RESELLER = "demo-reseller"
CUSTOMERS = (("jdoe", "John Doe", None), ("acme", "Acme Corp", RESELLER))
WEBSPACES = (("example.com", "jdoe"), ("shop.example.com", "jdoe"), ("acme.test", "acme"))
MAILBOXES = (("example.com", "info"), ("example.com", "sales"), ("acme.test", "office"))


def _write_site(root: Path, rng: random.Random) -> None:
    docs = root / "httpdocs"
    for folder in ("wp-includes", "wp-content/themes/demo", "wp-content/uploads/2026/11"):
        (docs / folder).mkdir(parents=True, exist_ok=True)
    (docs / "index.php").write_text("<?php\nrequire __DIR__ . '/wp-includes/load.php';\n")
    for index in range(120):
        body = "".join(f"function demo_{index}_{n}() {{ return {rng.randint(0, 10**6)}; }}\n" for n in range(40))
        (docs / "wp-includes" / f"module-{index:03d}.php").write_text(f"<?php\n{body}")
    for index in range(30):
        (docs / "wp-content/themes/demo" / f"style-{index}.css").write_text(
            "".join(f".c{index}-{n} {{ margin: {n}px; color: #{rng.randrange(16**6):06x}; }}\n" for n in range(80))
        )
    for index in range(12):  # media: incompressible
        (docs / "wp-content/uploads/2026/11" / f"photo-{index}.jpg").write_bytes(rng.randbytes(200_000))
    (docs / "latest").symlink_to("wp-content/uploads/2026/11")
    (root / "logs" / "access_log").write_text('127.0.0.1 - - [26/Nov/2026] "GET / HTTP/1.1" 200 512\n' * 500)


def _write_mail(maildir: Path, address: str, rng: random.Random) -> None:
    for index in range(25):
        folder, suffix = ("cur", ":2,S") if index % 3 else ("new", "")
        stamp = 1_790_000_000 + index * 3600
        message = (
            f"From: sender{index}@example.net\r\nTo: {address}\r\nSubject: Demo message {index}\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime(stamp))}\r\n\r\n"
            + "Lorem ipsum dolor sit amet. " * rng.randint(5, 200)
            + "\r\n"
        )
        path = maildir / folder / f"{stamp}.M{index}P1.demo{suffix}"
        path.write_text(message)
        os.utime(path, (stamp, stamp))


def seed_demo(services: Services, say: Callable[[str], None], *, port: int, https: bool) -> None:
    settings = services.settings
    rng = random.Random(2026)
    with services.db.session() as session:
        if session.scalar(select(User.id).where(User.login == RESELLER)) is not None:
            say("Demo data already present.")
            return
        reseller = create_user(
            session,
            role=Role.RESELLER,
            login=RESELLER,
            password=DEMO_PASSWORD,
            owner_id=1,
            pname="Demo Reseller",
        )
        users = {RESELLER: reseller}
        for login, pname, owner in CUSTOMERS:
            owner_id = users[owner].id if owner else 1
            users[login] = create_user(
                session,
                role=Role.CUSTOMER,
                login=login,
                password=DEMO_PASSWORD,
                owner_id=owner_id,
                pname=pname,
            )
        webspaces = {}
        for name, owner in WEBSPACES:
            webspaces[name] = create_webspace(
                session,
                settings.vhosts_root,
                name=name,
                owner=users[owner],
                ip_addresses=[settings.default_ip_address],
            )
            _write_site(settings.vhosts_root / name, rng)
        for domain, name in MAILBOXES:
            create_mailbox(
                session,
                settings.mail_root,
                webspaces[domain],
                name=name,
                password=DEMO_PASSWORD,
                mailbox_enabled=True,
            )
            _write_mail(settings.mail_root / domain / name, f"{name}@{domain}", rng)
        customer_id = users["jdoe"].id
    say(
        f"Demo data: reseller '{RESELLER}', customers 'jdoe' (id {customer_id}) and 'acme', webspaces "
        f"{', '.join(name for name, _ in WEBSPACES)}; their password is '{DEMO_PASSWORD}'."
    )
    scheme = "https" if https else "http"
    password = os.environ.get("HOSTBACKUP_ADMIN_PASSWORD") or "<admin password>"
    packet = (
        f"<packet><backup-manager><backup-customer><customer-id>{customer_id}</customer-id><local/>"
        "<description>Standard weekly backup</description><split-size>0</split-size>"
        "</backup-customer></backup-manager></packet>"
    )
    say("Start a backup of customer jdoe:")
    say(
        f"  curl -sk {scheme}://127.0.0.1:{port}/enterprise/control/agent.php -H 'HTTP_AUTH_LOGIN: admin' "
        f"-H 'HTTP_AUTH_PASSWD: {password}' -H 'Content-Type: text/xml' --data-binary '{packet}'"
    )
