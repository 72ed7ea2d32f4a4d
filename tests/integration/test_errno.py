"""C-level results and errno values are the kernel's, unchanged by the library."""

import subprocess

import pytest

from conftest import HERE, run

SRC = HERE / "c" / "errno_check.c"

# A sample of the kernel's answers, asserted on the plain run so the test fails
# if the program itself breaks.
EXPECTED_LINES = [
    ("close(-1)", "-1", "EBADF"),
    ("recv(pipe)", "-1", "ENOTSOCK"),
    ("connect(closed port)", "-1", "ECONNREFUSED"),
    ("bind(in use)", "-1", "EADDRINUSE"),
    ("getsockopt(bad level)", "-1", "EOPNOTSUPP"),
    ("getsockopt(bad opt)", "-1", "ENOPROTOOPT"),
    ("epoll_ctl(ADD again)", "-1", "EEXIST"),
    ("recv(NULL buf)", "-1", "EFAULT"),
    ("recv(ok)", "5", "unchanged"),
    ("send(after RST)", "-1", "EPIPE"),
    ("recv(EINTR, no restart)", "-1", "EINTR"),
    ("recv(SA_RESTART, restarted)", "5", "unchanged"),
    ("recv(SA_RESTART, RCVTIMEO)", "-1", "EINTR"),
    ("epoll_wait(SA_RESTART)", "-1", "EINTR"),
]


@pytest.fixture(scope="module")
def errno_check(tmp_path_factory):
    exe = tmp_path_factory.mktemp("errno") / "errno_check"
    subprocess.run(["gcc", "-O1", "-Wall", "-pthread", "-o", str(exe), str(SRC)], check=True)
    return str(exe)


def parse(out):
    rows = {}
    for line in out.splitlines():
        name, _, rest = line.partition("  ")
        rows[name.strip()] = rest.split()
    return rows


def test_errno_kernel_baseline(errno_check):
    cp = run([errno_check], preload=False, timeout=30, check=True)
    rows = parse(cp.stdout)
    for name, rv, err in EXPECTED_LINES:
        assert rows.get(name) == [rv, err], name
    for name in ("errno after socket() ok", "errno after close() ok",
                 "errno after poll() ok"):
        assert rows.get(name) == ["unchanged"], name


def test_errno_identical_under_library(errno_check, libbypass):
    plain = run([errno_check], preload=False, timeout=30, check=True)
    pre = run([errno_check], preload=True, timeout=30, check=True)
    assert pre.stderr == ""
    p, q = parse(plain.stdout), parse(pre.stdout)
    diffs = ["%s: kernel %s, library %s" % (k, p[k], q.get(k)) for k in p if q.get(k) != p[k]]
    assert not diffs, "\n".join(diffs)
    assert pre.stdout == plain.stdout
