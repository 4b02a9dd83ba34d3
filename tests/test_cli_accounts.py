"""`hostbackup customer` and `hostbackup webspace`, run as real subprocesses on a home directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness import ADMIN_PASSWORD

PASSWORD = "Str0ng-Pass!"


def hostbackup(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "HOSTBACKUP_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})}
    command = [sys.executable, "-m", "hostbackup", "--home", str(home), *args]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)


def ok(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = hostbackup(home, *args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def table(output: str) -> list[list[str]]:
    return [line.split("\t") for line in output.splitlines()]


def test_customer_and_webspace_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert "Customer jdoe created: id 2" in ok(home, "customer", "add", "jdoe", "--password", PASSWORD, "--name", "J D")
    ok(home, "customer", "add", "acme", "--password", PASSWORD, "--name", "Acme", "--email", "ops@acme.test")
    assert table(ok(home, "customer", "list")) == [
        ["ID", "LOGIN", "OWNER", "STATUS", "NAME"],
        ["2", "jdoe", "admin", "0", "J D"],
        ["3", "acme", "admin", "0", "Acme"],
    ]

    out = ok(home, "webspace", "add", "Example.COM", "--owner", "jdoe", "--ip", "192.0.2.10", "--ip", "2001:db8::1")
    assert "Webspace example.com created: id 1" in out
    assert (home / "vhosts" / "example.com" / "httpdocs").is_dir()
    ok(home, "webspace", "add", "acme.test", "--owner", "acme")
    assert table(ok(home, "webspace", "list")) == [
        ["ID", "NAME", "OWNER", "STATUS", "IP"],
        ["1", "example.com", "jdoe", "0", "192.0.2.10,2001:db8::1"],
        ["2", "acme.test", "acme", "0", "127.0.0.1"],
    ]
    assert [row[1] for row in table(ok(home, "webspace", "list", "--owner", "acme"))] == ["NAME", "acme.test"]

    assert "Webspace example.com deleted." in ok(home, "webspace", "del", "example.com", "--yes")
    assert (home / "vhosts" / ".deleted" / "example.com.1" / "httpdocs").is_dir()  # content kept by default, aside
    assert "Customer acme deleted." in ok(home, "customer", "del", "acme", "--yes")
    assert [row[1] for row in table(ok(home, "webspace", "list"))] == ["NAME"]  # acme.test went with acme
    assert [row[1] for row in table(ok(home, "customer", "list"))] == ["LOGIN", "jdoe"]


def test_errors_are_one_line_messages(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok(home, "customer", "add", "jdoe", "--password", PASSWORD, "--name", "J D")
    cases = [
        (("customer", "add", "jdoe", "--password", PASSWORD, "--name", "X"), "User account already exists."),
        (("customer", "add", "bad/login", "--password", PASSWORD, "--name", "X"), "Invalid value of login"),
        (("customer", "add", "new", "--password", "abc", "--name", "X"), "the password must be 5-255 characters"),
        (
            ("customer", "add", "new", "--password", PASSWORD, "--name", "X", "--owner", "ghost"),
            "Object owner not found.",
        ),
        (("customer", "del", "ghost", "--yes"), "Customer does not exist."),
        (("webspace", "add", "bad_name!", "--owner", "jdoe"), "Invalid value of name"),
        (("webspace", "add", "ok.test", "--owner", "ghost"), "Object owner not found."),
        (("webspace", "add", "ok.test", "--ip", "999.1.1.1"), "Invalid value of ip_address"),
        (("webspace", "del", "ghost.test", "--yes"), "Webspace does not exist."),
    ]
    for args, message in cases:
        done = hostbackup(home, *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr
    assert "abc" not in hostbackup(home, "customer", "add", "new", "--password", "abc", "--name", "X").stderr


def test_customer_delete_removes_content_when_configured(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok(home, "customer", "add", "jdoe", "--password", PASSWORD, "--name", "J D")
    ok(home, "webspace", "add", "example.com", "--owner", "jdoe")
    assert (home / "vhosts" / "example.com").is_dir()
    ok(home, "customer", "del", "jdoe", "--yes", env={"HOSTBACKUP_REMOVE_CONTENT_ON_DELETE": "true"})
    assert not (home / "vhosts" / "example.com").exists()


def test_delete_asks_for_confirmation(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok(home, "customer", "add", "jdoe", "--password", PASSWORD, "--name", "J D")
    command = [sys.executable, "-m", "hostbackup", "--home", str(home), "customer", "del", "jdoe"]
    environment = {**os.environ, "HOSTBACKUP_ADMIN_PASSWORD": ADMIN_PASSWORD}
    refused = subprocess.run(command, input="n\n", capture_output=True, text=True, env=environment, timeout=120)
    assert refused.returncode == 1
    assert [row[1] for row in table(ok(home, "customer", "list"))] == ["LOGIN", "jdoe"]
