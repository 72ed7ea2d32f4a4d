"""Socket semantics under the library equal the kernel's (scenario_sockets.py)."""

import json
import subprocess

from conftest import HERE, LIB, PYTHON, run

SCENARIO = str(HERE / "scenario_sockets.py")

# What the kernel gives for each check (Linux, loopback). Asserted on the plain
# run so the test fails if the scenario itself breaks, not only on a mismatch.
EXPECTED = {
    "tcp_echo": {"eof_after_shutdown": True, "intact": [True] * 4, "nodelay": True,
                 "peername_matches": True, "sizes": [1, 1000, 65536, 1048576]},
    "udp": {"after_truncate": "EAGAIN", "data": "hello-udp", "empty_dontwait": "EAGAIN",
            "msg_trunc_len": 100, "order_ok": True, "peek": "hello-udp",
            "src_is_sender": True, "truncated": "0123"},
    "nonblocking_connect": {"connect_ex": "EINPROGRESS", "data": "ping",
                            "refused_connect_ex": "EINPROGRESS",
                            "refused_poll_revents": ["POLLERR", "POLLHUP", "POLLOUT"],
                            "refused_so_error": "ECONNREFUSED", "second_connect_ex": "0",
                            "so_error": "0", "writable": True},
    "epoll_level": {"after_peer_close": [True], "after_read": 0,
                    "double_unregister": "ENOENT", "empty": 0, "fd_matches": True,
                    "first": [True], "out": [True], "second": [True]},
    "epoll_edge": {"after_drain": 0, "data": "onetwo", "first": 1,
                   "second_no_new_data": 0, "third_new_data": 1},
    "epoll_oneshot": {"data": "xy", "disarmed": 0, "disarmed_again": 0, "first": 1,
                      "rearmed": 1},
    "epoll_many": {"ready_indices": [0, 3, 6, 9, 12, 15, 18]},
    "poll": {"closed_fd": [True], "idle": ["POLLOUT"],
             "peer_shut_wr": ["POLLIN", "POLLOUT", "POLLRDHUP"],
             "timeout_ms_no_events": True, "with_data": ["POLLIN", "POLLOUT"]},
    "select": {"closed_fd": "EBADF", "idle": [0, 1, 0], "other_not_readable": 0,
               "readable": 1},
    "socketpair": {"dgram": ["a", "bc"], "scm_rights_count": 1, "scm_rights_msg": "fd",
                   "scm_rights_works": "via-passed-fd", "stream": "stream-pair",
                   "stream_eof": True},
    "dup": {"dup2_returns_target": True, "dup2_self": True, "dup_same_local": True,
            "dup_type": True, "dupfd_cloexec": True, "peer_eof_after_last_close": True,
            "peer_got": "via-dup2", "read_via_dup": "back", "via_dup": "dup"},
    "fcntl": {"cleared_nonblock": False, "cloexec": True, "cloexec_cleared": False,
              "fionbio": True, "fionread": 3, "fionread_empty": 0,
              "initial_nonblock": True, "initial_rdwr": True,
              "libc_recv_empty": [-1, "EAGAIN"], "read_empty": "EAGAIN",
              "set_nonblock": True, "sock_nonblock_flag": True},
    "shutdown": {"client_read": "response", "send_after_shut_wr": "EPIPE",
                 "server_eof": True, "server_read": "request",
                 "shutdown_unconnected": "ENOTCONN"},
    "sockopts": {"acceptconn_after": 1, "acceptconn_before": 0, "bad_level": "ENOTSUP",
                 "domain": True, "keepalive": True, "reuseaddr": True, "type": True},
    "sendfile": {"intact": True, "sent": 200000},
    "errors": {"accept_unlistened": "EINVAL", "bad_type": "EINVAL",
               "close_minus_1": [-1, "EBADF"], "eaddrinuse_reuse0": "EADDRINUSE",
               "eaddrinuse_reuse1": "EADDRINUSE", "ebadf_connect": "EBADF",
               "ebadf_getsockname": "EBADF", "ebadf_send": "EBADF",
               "econnrefused": "ECONNREFUSED",
               "enotsock_listen_pipe": [-1, "ENOTSOCK"],
               "enotsock_recv_pipe": [-1, "ENOTSOCK"],
               "enotsock_shutdown_file": [-1, "ENOTSOCK"],
               "enotsock_wrap_pipe": "ENOTSOCK", "errno_kept_after_success": "EINTR",
               "getpeername_unconnected": "ENOTCONN", "listen_udp": "ENOTSUP",
               "recv_unconnected": "ENOTCONN", "send_unconnected": "EPIPE"},
    "accept_threads": {"all_ok": True, "connections": 100},
}


def run_scenario(preload):
    cp = run([PYTHON, SCENARIO], preload=preload, timeout=120)
    assert cp.returncode == 0, "scenario failed (preload=%s):\n%s" % (preload, cp.stderr)
    return cp


def test_scenario_kernel_baseline():
    """The scenario gives the expected kernel results without the library."""
    plain = json.loads(run_scenario(False).stdout)
    assert sorted(plain) == sorted(EXPECTED)
    for key, want in EXPECTED.items():
        assert plain[key] == want, key


def test_scenario_identical_under_library(libbypass):
    """Byte-identical results with LD_PRELOAD, and the library prints nothing."""
    plain = run_scenario(False)
    pre = run_scenario(True)
    assert pre.stderr == ""
    a, b = json.loads(plain.stdout), json.loads(pre.stdout)
    for key in a:
        assert b.get(key) == a[key], "check %r differs under the library" % key
    assert pre.stdout == plain.stdout
    for key, want in EXPECTED.items():
        assert b[key] == want, key


def test_library_is_really_loaded(libbypass):
    """The comparisons above are not vacuous: the preloaded process maps the library."""
    code = ("import sys\n"
            "maps = open('/proc/self/maps').read()\n"
            "print('loaded' if %r in maps else 'absent')\n" % str(LIB.resolve()))
    assert run([PYTHON, "-c", code], preload=False).stdout.strip() == "absent"
    cp = run([PYTHON, "-c", code], preload=True)
    assert cp.stdout.strip() == "loaded"
    assert cp.stderr == ""


def test_library_interposes_socket_calls(libbypass):
    """The library defines the libc socket entry points it must pass through."""
    out = subprocess.run(["nm", "-D", "--defined-only", str(libbypass)],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    defined = {line.split()[-1].split("@")[0] for line in out.splitlines() if line.split()}
    needed = {"socket", "bind", "listen", "accept", "accept4", "connect", "close",
              "recv", "send", "recvfrom", "sendto", "recvmsg", "sendmsg",
              "setsockopt", "getsockopt", "shutdown",
              "epoll_ctl", "epoll_wait", "poll", "select"}
    assert needed <= defined, "not interposed: %s" % sorted(needed - defined)


def test_shell_under_library_is_silent(libbypass):
    """A shell and its helpers under LD_PRELOAD run as before and print nothing."""
    cmd = ["/bin/sh", "-c", "echo a | tr a b; ls / >/dev/null; exit 3"]
    plain = run(cmd, preload=False)
    pre = run(cmd, preload=True)
    assert (plain.returncode, plain.stdout, plain.stderr) == (3, "b\n", "")
    assert (pre.returncode, pre.stdout, pre.stderr) == (3, "b\n", "")
