"""`hostbackup admin set-password` changes the password a running server accepts."""

from __future__ import annotations

import subprocess
import sys
import time

from harness import Server
from hostbackup.accounts.auth import RecentLogins

GET_PROTOS = "<packet><server><get_protos/></server></packet>"


def test_set_password_takes_effect_on_the_running_server(fresh_server: Server) -> None:
    assert fresh_server.call(GET_PROTOS).findtext("server/get_protos/result/status") == "ok"
    command = [sys.executable, "-m", "hostbackup", "--home", str(fresh_server.home), "admin", "set-password",
               "--password", "New-Admin-Pass-2"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    time.sleep(RecentLogins().ttl + 0.1)  # a running server honours a change within the login cache's ttl
    assert fresh_server.call(GET_PROTOS).findtext("system/errcode") == "1001"  # the old password
    accepted = fresh_server.call(GET_PROTOS, password="New-Admin-Pass-2")
    assert accepted.findtext("server/get_protos/result/status") == "ok"
    short = subprocess.run([*command[:-1], "abc"], capture_output=True, text=True, timeout=60)
    assert short.returncode != 0 and "5-255 characters" in short.stderr


def test_every_command_is_listed_and_a_light_one_starts_without_the_server_stack(server: Server) -> None:
    listed = subprocess.run([sys.executable, "-m", "hostbackup", "--help"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    names = ("serve", "admin", "demo", "worker", "backup", "verify", "restore", "customer", "webspace", "ftp-check")
    for name in names:
        assert f"  {name} " in listed.stdout, name
    command = [sys.executable, "-X", "importtime", "-m", "hostbackup", "--home", str(server.home), "customer", "list"]
    traced = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert traced.returncode == 0, traced.stderr
    lines = traced.stderr.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time")}
    assert "hostbackup.accounts.users" in imported  # what the command needs (importlib's own imports go unlisted)
    assert not {"uvicorn", "hostbackup.cli.serve", "alembic"} & imported  # a command's start pays for its own needs


PROBE = """
import ctypes, gc, sys, click
from hostbackup.cli import main as cli_main

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                      "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

def mapped_after_a_large_free() -> int:
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = MallInfo2
    libc.free(libc.malloc(16 << 20))  # by default, this raises the mmap threshold to 16 MiB
    block = libc.malloc(8 << 20)
    mapped = libc.mallinfo2().hblkhd  # bytes in blocks with a mapping of their own
    libc.free(block)
    return mapped

@click.command()
def probe() -> None:
    print(gc.isenabled(), gc.get_freeze_count(), mapped_after_a_large_free() >= 8 << 20)

cli_main.COMMANDS["probe"] = "__main__:probe"
sys.argv = ["hostbackup", "--home", sys.argv[1], "probe"]
cli_main.main()
"""


def test_a_command_runs_with_the_collector_on_and_large_blocks_given_back(server: Server) -> None:
    probed = subprocess.run([sys.executable, "-c", PROBE, str(server.home)], capture_output=True, text=True, timeout=60)
    assert probed.returncode == 0, probed.stderr
    enabled, frozen, mapped = probed.stdout.split()
    assert enabled == "True"  # a long restore must still collect its cycles
    assert int(frozen) > 10_000  # the imports' objects are out of every collection, at exit too
    assert mapped == "True"  # a large block freed back to the system, so a worker's heap does not creep up
