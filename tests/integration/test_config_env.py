"""Bad config and environment input at program level (DESIGN.md "Bad input").

A bad file or variable gives exactly one stderr line starting "bypass:" that
names the file or the variable; the program then runs on the kernel with its
stdout unchanged. BYPASS_STRICT=1 turns the same into exit status 1.
"""

import re
import subprocess

import pytest

from conftest import HERE, PYTHON, bypass_lines, run

# A socket echo over loopback; prints one line on success.
ECHO = r"""
import socket, threading
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
def serve():
    c, _ = l.accept()
    with c:
        c.sendall(b"echo:" + c.recv(100))
t = threading.Thread(target=serve); t.start()
with socket.create_connection(l.getsockname(), timeout=10) as s:
    s.sendall(b"hello")
    print(s.recv(100).decode())
t.join()
"""
ECHO_OUT = "echo:hello\n"

MALFORMED = """\
# malformed on line 3: missing value and semicolon
spin_usec = 100;
interface = ;
rules = ( { action = "accelerate"; proto = "tcp"; port = 6379; } );
"""

UNKNOWN_KEY = """\
spin_usec = 100;
no_such_option = 5;
"""

OUT_OF_RANGE = """\
spin_usec = -7;
"""

VALID_NOTHING_ACCELERATED = """\
spin_usec = 50;
rules = ( { action = "kernel"; proto = "tcp"; port = 1; } );
"""


def echo(env, preload=True):
    return run([PYTHON, "-c", ECHO], preload=preload, env=env, timeout=30)


@pytest.fixture
def conf(tmp_path):
    """Write a config file and return its path."""
    def write(text, name="app.conf"):
        p = tmp_path / name
        p.write_text(text)
        return str(p)
    return write


def bad_inputs(conf):
    """(id, env, text the message must contain, line number or None)."""
    return {
        "missing_file": ({"BYPASS_CONFIG": "/nonexistent/bypass.conf"},
                         "/nonexistent/bypass.conf", None),
        "malformed_file": ({"BYPASS_CONFIG": conf(MALFORMED, "malformed.conf")},
                           "malformed.conf", 3),
        "unknown_key": ({"BYPASS_CONFIG": conf(UNKNOWN_KEY, "unknown.conf")},
                        "unknown.conf", 2),
        "out_of_range": ({"BYPASS_CONFIG": conf(OUT_OF_RANGE, "range.conf")},
                         "range.conf", 1),
        "spin_usec_abc": ({"BYPASS_SPIN_USEC": "abc"}, "BYPASS_SPIN_USEC", None),
        "spin_usec_range": ({"BYPASS_SPIN_USEC": "-2"}, "BYPASS_SPIN_USEC", None),
        "log_level": ({"BYPASS_LOG": "loud"}, "BYPASS_LOG", None),
        "backend": ({"BYPASS_BACKEND": "bogus"}, "BYPASS_BACKEND", None),
    }


CASES = ["missing_file", "malformed_file", "unknown_key", "out_of_range",
         "spin_usec_abc", "spin_usec_range", "log_level", "backend"]


def test_echo_baseline():
    cp = echo({}, preload=False)
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, ECHO_OUT, "")


@pytest.mark.parametrize("case", CASES)
def test_bad_input_falls_back_to_kernel(case, conf, libbypass):
    env, names, line = bad_inputs(conf)[case]
    cp = echo(env)
    msgs = bypass_lines(cp.stderr)
    assert len(msgs) == 1, "want one bypass: line, stderr was:\n" + cp.stderr
    assert cp.stderr.splitlines() == msgs, "only the library's line on stderr"
    assert names in msgs[0]
    if line is not None:
        assert re.search(r"\b%d\b" % line, msgs[0]), "message names no line: " + msgs[0]
    assert cp.returncode == 0
    assert cp.stdout == ECHO_OUT


@pytest.mark.parametrize("case", CASES)
def test_bad_input_strict_exits_1(case, conf, libbypass):
    env, names, _ = bad_inputs(conf)[case]
    cp = echo(dict(env, BYPASS_STRICT="1"))
    assert cp.returncode == 1, "stdout=%r stderr=%r" % (cp.stdout, cp.stderr)
    msgs = bypass_lines(cp.stderr)
    assert msgs and any(names in m for m in msgs), cp.stderr


def test_disable_is_exact_passthrough(libbypass):
    plain = echo({}, preload=False)
    cp = echo({"BYPASS_DISABLE": "1"})
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, plain.stdout, "")


def test_disable_ignores_bad_config(libbypass):
    """BYPASS_DISABLE=1 means "as if not preloaded": not even a config message."""
    cp = echo({"BYPASS_DISABLE": "1", "BYPASS_CONFIG": "/nonexistent/bypass.conf"})
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, ECHO_OUT, "")


def test_no_config_is_silent(libbypass):
    cp = echo({})
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, ECHO_OUT, "")


def test_valid_config_accelerating_nothing_is_silent(conf, libbypass):
    cp = echo({"BYPASS_CONFIG": conf(VALID_NOTHING_ACCELERATED), "BYPASS_SPIN_USEC": "0",
               "BYPASS_LOG": "error"})
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, ECHO_OUT, "")


def test_valid_strict_runs_normally(conf, libbypass):
    cp = echo({"BYPASS_CONFIG": conf(VALID_NOTHING_ACCELERATED), "BYPASS_STRICT": "1"})
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, ECHO_OUT, "")


def test_program_exporting_libconfig_names(conf, libbypass, tmp_path):
    """A program that exports functions named as libconfig's (lighttpd's config_init and
    config_read, -rdynamic): the library reads its config file, well-formed or not, without
    calling them, and the program's own calls still reach its own.  lighttpd crashed in the
    library's constructor when libconfig was linked (libconfig's config_read_file calls
    config_read, which resolved to lighttpd's)."""
    exe = tmp_path / "exports_config"
    subprocess.run(["gcc", "-O1", "-Wall", "-rdynamic", "-o", str(exe),
                    str(HERE / "c" / "exports_config.c")], check=True, timeout=60)
    want = "echo:hello own config_read 42\n"
    plain = run([str(exe)], preload=False, timeout=30)
    assert (plain.returncode, plain.stdout) == (0, want), plain.stderr
    cp = run([str(exe)], preload=True, timeout=30,
             env={"BYPASS_CONFIG": conf(VALID_NOTHING_ACCELERATED)})
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, want, ""), cp.stderr
    cp = run([str(exe)], preload=True, timeout=30, env={"BYPASS_CONFIG": conf(MALFORMED)})
    assert (cp.returncode, cp.stdout) == (0, want), cp.stderr
    msgs = bypass_lines(cp.stderr)
    assert len(msgs) == 1 and ":3:" in msgs[0], cp.stderr
