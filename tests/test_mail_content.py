"""Mail content end to end: every mailbox's Maildir comes back byte-identical from a backup.

Maildir keeps a message's state in its file name (`…:2,RS` = replied and seen) and its folder
(`new/` unread, `cur/` seen, `tmp/` being delivered), so names and folders matter as much as the
bytes. The backup runs over HTTPS and is extracted with stock tools only.
"""

from __future__ import annotations

from pathlib import Path

from content import assert_same_tree
from dbservers import extract
from harness import Server, progress_of, seed_customer, start_backup, wait_for_task
from test_backup_customer import backup_packet, listing, volumes_of

MESSAGES = {
    "cur/1700000000.M1P1.host:2,RS": b"From: a@example.net\r\nSubject: replied and seen\r\n\r\nbody\r\n",
    "cur/1700000001.M2P1.host:2,FS": "Subject: Grüße aus 東京 🎉\r\n\r\nflagged\r\n".encode(),
    "cur/1700000002.M3P1.host:2,": b"Subject: seen flag cleared\r\n\r\n" + bytes(range(256)),
    "new/1700000003.M4P1.host": b"Subject: unread\r\n\r\n" + b"x" * 70_000,
    "tmp/1700000004.M5P1.host": b"Subject: being delive",
    ".Sent/cur/1700000005.M6P1.host:2,S": b"Subject: sent\r\n\r\nin a Maildir++ folder\r\n",
}


def test_maildirs_restore_byte_identical_with_their_flags(server: Server, tmp_path: Path) -> None:
    seeded = seed_customer(server, "mailer", ("mail.example",), ("info", "empty"))
    maildir = seeded.mail / "mail.example" / "info"
    for name, data in MESSAGES.items():
        (maildir / name).parent.mkdir(parents=True, exist_ok=True)
        (maildir / name).write_bytes(data)
    task = wait_for_task(
        server, start_backup(server, backup_packet("mailer", "<only-mail/>", selector="customer-login"))
    )
    assert task.findtext("status") == "finished"
    [backup] = listing(server, "mailer")
    root = extract(volumes_of(server, "mailer", backup), tmp_path / "restored")
    restored = root / "domains" / "mail.example" / "mail"
    for name, data in MESSAGES.items():
        assert (restored / "info" / name).read_bytes() == data, name
    assert_same_tree(maildir, restored / "info")
    assert_same_tree(seeded.mail / "mail.example" / "empty", restored / "empty")
    assert sorted(path.name for path in (restored / "empty").iterdir()) == ["cur", "new", "tmp"]


def test_a_maildir_that_is_a_link_is_not_followed(server: Server, tmp_path: Path) -> None:
    """A mailbox's Maildir lies in a folder a restore writes into: one replaced by a link to elsewhere on
    the host must not take that elsewhere into the customer's backup."""
    seeded = seed_customer(server, "linkmail", ("linkmail.example",), ("info",))
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "cur").mkdir(parents=True)
    (elsewhere / "cur" / "secret").write_text("not the customer's")
    maildir = seeded.mail / "linkmail.example" / "info"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).rmdir()
    maildir.rmdir()
    maildir.symlink_to(elsewhere)
    task_id = start_backup(server, backup_packet("linkmail", "<only-mail/>", selector="customer-login"))
    assert wait_for_task(server, task_id).findtext("status") == "finished"
    warnings = [w.text or "" for w in progress_of(server, task_id).iter("warning")]
    assert warnings == [f"not backed up: {maildir} is a symbolic link, not a Maildir"]
    [backup] = listing(server, "linkmail")
    root = extract(volumes_of(server, "linkmail", backup), tmp_path / "restored")
    assert not (root / "domains" / "linkmail.example" / "mail" / "info").exists()
