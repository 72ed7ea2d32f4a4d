"""The launcher (build/bypass) and the install: `bypass run` preloads the library, sets
BYPASS_CONFIG and a profile's defaults (explicit variables win), passes the exit status
through; `cmake --install` gives a working bypass, library, engine and bypass.pc."""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import LIB, PYTHON, base_env

BUILD = LIB.parent
LAUNCHER = BUILD / "bypass"

# Prints the environment the command saw, then serves one connection over TCP loopback
# under the library, to show the preloaded program works.
PROBE = r"""
import json, os, socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
cli = socket.create_connection(srv.getsockname()); conn, _ = srv.accept()
cli.sendall(b"ping"); got = conn.recv(4)
maps = open("/proc/self/maps").read()
print(json.dumps({"env": {k: v for k, v in os.environ.items()
                          if k == "LD_PRELOAD" or k.startswith("BYPASS_")},
                  "echo": got.decode(), "mapped": [l.split()[-1] for l in maps.splitlines()
                                                   if "libbypass" in l]}))
"""


@pytest.fixture(scope="module")
def launcher(libbypass):
    if not LAUNCHER.is_file():
        pytest.fail("%s is missing: the build failed or was not run" % LAUNCHER,
                    pytrace=False)
    return LAUNCHER


def launch(launcher, args, env=None, cwd=None, timeout=60):
    """Run `bypass ARGS` with a clean environment (no LD_PRELOAD, no BYPASS_*) plus @env."""
    return subprocess.run([str(launcher)] + args, env=base_env(env), cwd=cwd,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def probe(launcher, opts=("run",), env=None, cwd=None, python=PYTHON):
    cp = launch(launcher, list(opts) + ["--", python, "-c", PROBE], env=env, cwd=cwd)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def test_run_preloads_the_library_beside_it(launcher):
    out = probe(launcher)
    assert out["env"]["LD_PRELOAD"] == str(LIB)
    assert str(LIB) in out["mapped"]
    assert out["echo"] == "ping"
    # Nothing but LD_PRELOAD is set without options.
    assert set(out["env"]) == {"LD_PRELOAD"}


def test_run_prepends_to_an_existing_ld_preload(launcher, tmp_path):
    # A second, harmless preload: libc itself, by absolute path.
    libc = subprocess.run(["/usr/bin/ldd", PYTHON], stdout=subprocess.PIPE, text=True)
    path = next(l.split("=>")[1].split()[0] for l in libc.stdout.splitlines()
                if "libc.so" in l)
    out = probe(launcher, env={"LD_PRELOAD": path})
    assert out["env"]["LD_PRELOAD"] == "%s:%s" % (LIB, path)


def test_exit_status_passes_through(launcher):
    assert launch(launcher, ["run", "--", "/bin/sh", "-c", "exit 7"]).returncode == 7
    assert launch(launcher, ["run", "/bin/sh", "-c", "exit 0"]).returncode == 0
    # Killed by a signal: the launcher is gone (exec), so the shell sees the signal.
    cp = launch(launcher, ["run", "--", "/bin/sh", "-c", "kill -TERM $$"])
    assert cp.returncode == -15


def test_latency_profile_and_explicit_variable_wins(launcher):
    out = probe(launcher, ["run", "--profile", "latency"])
    assert out["env"]["BYPASS_SPIN_USEC"] == "-1"
    assert out["env"]["BYPASS_PROGRESS_USEC"] == "1000"
    out = probe(launcher, ["run", "--profile=latency"], env={"BYPASS_SPIN_USEC": "5"})
    assert out["env"]["BYPASS_SPIN_USEC"] == "5"
    assert out["env"]["BYPASS_PROGRESS_USEC"] == "1000"


def test_throughput_profile(launcher):
    out = probe(launcher, ["run", "--profile", "throughput"])
    assert out["env"]["BYPASS_SPIN_USEC"] == "100"
    assert out["env"]["BYPASS_PROGRESS_USEC"] == "200"


def test_config_file_key_wins_over_profile(launcher, tmp_path):
    conf = tmp_path / "app.conf"
    conf.write_text("spin_usec = 7;\nrules = ( );\n")
    out = probe(launcher, ["run", "--profile", "latency", "--config", str(conf)])
    assert "BYPASS_SPIN_USEC" not in out["env"]
    assert out["env"]["BYPASS_PROGRESS_USEC"] == "1000"


def test_config_is_made_absolute(launcher, tmp_path):
    (tmp_path / "app.conf").write_text("rules = ( );\n")
    out = probe(launcher, ["run", "--config", "app.conf"], cwd=tmp_path)
    assert out["env"]["BYPASS_CONFIG"] == str((tmp_path / "app.conf").resolve())
    cp = launch(launcher, ["run", "--config", "missing.conf", "--", "/bin/true"],
                cwd=tmp_path)
    assert cp.returncode == 2
    assert cp.stderr.startswith("bypass: ") and "missing.conf" in cp.stderr


@pytest.mark.parametrize("args, words", [
    (["run", "--profile", "fastest", "--", "/bin/true"], ["unknown profile", "fastest",
                                                          "latency", "throughput"]),
    (["run", "--bogus", "--", "/bin/true"], ["unknown option", "--bogus"]),
    (["run"], ["no command"]),
    (["run", "--profile"], ["needs a value"]),
    (["launch", "/bin/true"], ["unknown command", "launch"]),
])
def test_usage_errors_exit_2(launcher, args, words):
    cp = launch(launcher, args)
    assert cp.returncode == 2
    assert cp.stdout == ""
    assert cp.stderr.startswith("bypass: ")
    for w in words:
        assert w in cp.stderr


def test_exec_failure_is_127(launcher, tmp_path):
    cp = launch(launcher, ["run", "--", str(tmp_path / "no-such-program")])
    assert cp.returncode == 127
    assert cp.stderr.startswith("bypass: ") and "no-such-program" in cp.stderr


def test_help_and_version(launcher):
    cp = launch(launcher, ["--help"])
    assert cp.returncode == 0 and "bypass run" in cp.stdout
    cp = launch(launcher, ["run", "--help"])
    assert cp.returncode == 0
    assert "--profile" in cp.stdout and "BYPASS_SPIN_USEC=-1" in cp.stdout
    cp = launch(launcher, ["version"])
    assert cp.returncode == 0 and str(LIB) in cp.stdout


@pytest.fixture(scope="module")
def installed(launcher):
    """`cmake --install build --prefix <tmp>`; the prefix, removed afterwards."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.fail("cmake is not installed", pytrace=False)
    prefix = Path(tempfile.mkdtemp(prefix="bypass-install-"))
    try:
        cp = subprocess.run([cmake, "--install", str(BUILD), "--prefix", str(prefix)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=120)
        assert cp.returncode == 0, cp.stdout
        yield prefix
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def test_install_layout(installed):
    for f in ("bin/bypass", "lib/libbypass.so", "lib/libbypass-engine.so",
              "lib/xdp_steer.bpf.o", "include/bypass/bypass.h",
              "lib/pkgconfig/bypass.pc"):
        assert (installed / f).is_file(), f
    if (BUILD / "bypass-stat").is_file():
        assert (installed / "bin/bypass-stat").is_file()


def test_installed_launcher_runs_from_anywhere(installed, tmp_path):
    lib = installed / "lib" / "libbypass.so"
    # `python3` found on a PATH of our choosing, from a folder far from the build tree.
    out = probe(installed / "bin" / "bypass", ["run"], cwd=tmp_path, python="python3",
                env={"PATH": "/usr/bin:/bin"})
    assert out["env"]["LD_PRELOAD"] == str(lib)
    assert out["mapped"] and all(m == str(lib) for m in out["mapped"])
    assert out["echo"] == "ping"


def test_installed_library_loads_the_installed_engine(installed, tmp_path, port):
    """An accelerated socket makes the installed libbypass.so dlopen the engine from its
    own folder.  The interface does not exist, so the engine starts, fails, and says so;
    the socket stays on the kernel."""
    conf = tmp_path / "app.conf"
    conf.write_text('interface = "bypnone0";\n'
                    'rules = ( { action = "accelerate"; proto = "tcp"; port = %d; } );\n' % port)
    code = ('import socket; s = socket.socket(); s.bind(("0.0.0.0", %d)); s.listen(); '
            'print("ok")' % port)
    cp = launch(installed / "bin" / "bypass", ["run", "--config", str(conf), "--", PYTHON,
                                               "-c", code],
                env={"LD_DEBUG": "files", "LD_DEBUG_OUTPUT": str(tmp_path / "ld")},
                cwd=tmp_path)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == "ok"
    assert "no such interface" in cp.stderr, cp.stderr
    trace = "".join(p.read_text(errors="replace") for p in tmp_path.glob("ld*"))
    assert str(installed / "lib" / "libbypass-engine.so") in trace
    assert str(BUILD / "libbypass-engine.so") not in trace


def test_pkg_config_preload(installed):
    pkgconfig = shutil.which("pkg-config") or shutil.which("pkgconf")
    if pkgconfig is None:
        pytest.fail("pkg-config is not installed", pytrace=False)
    pc = installed / "lib" / "pkgconfig" / "bypass.pc"
    cp = subprocess.run([pkgconfig, "--variable=preload", str(pc)], stdout=subprocess.PIPE,
                        text=True, check=True)
    assert cp.stdout.strip() == str(installed / "lib" / "libbypass.so")
    cp = subprocess.run([pkgconfig, "--libs", str(pc)], stdout=subprocess.PIPE, text=True,
                        check=True)
    assert str(installed / "lib" / "libbypass.so") in cp.stdout
