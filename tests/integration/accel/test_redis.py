"""Issue 3, tests 1, 4 and 5: an unmodified redis-server on the accelerated path, a kernel
redis-benchmark in the other namespace; the hybrid (loopback, another port, ICMP) while it
runs; BGSAVE (fork) under load."""

import csv
import hashlib
import io
import time
from pathlib import Path

import pytest

from .conftest import assert_bypassed, assert_woken_on_time, bypass_lines, write_conf

PORT = 6379
KPORT = 6380  # no rule: the kernel's


def redis_argv(port, workdir):
    return ["redis-server", "--port", port, "--bind", "0.0.0.0", "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--dir", workdir,
            "--loglevel", "warning"]


def start_redis(net, conf, port=PORT, name="redis"):
    workdir = Path(net.dir) / ("%s-%d" % (name, port))
    workdir.mkdir(exist_ok=True)
    srv = net.spawn("server", redis_argv(port, workdir), name=name, conf=conf)
    net.wait_port(port, srv)
    return srv, workdir


def accel_redis(net):
    conf = write_conf(net.dir / "redis.conf", "bypv0", [("tcp", PORT)])
    srv, workdir = start_redis(net, conf)
    return srv, workdir, conf


def bench_argv(net, n, tests, clients=20, extra=()):
    return ["redis-benchmark", "-h", net.srv_ip, "-p", PORT, "-n", n, "-c", clients,
            "-t", tests, "--csv"] + list(extra)


def parse_bench(text, tests):
    """{TEST: rps} from redis-benchmark --csv; every test of @tests reported > 0 rps."""
    rows = {r["test"]: float(r["rps"]) for r in csv.DictReader(io.StringIO(text))}
    want = {t.upper() for t in tests.split(",")}
    got = {t.split()[0] for t in rows}
    assert want <= got, "redis-benchmark did not report %s:\n%s" % (want - got, text)
    assert all(v > 0 for v in rows.values()), rows
    return rows


def value(prefix, i):
    v = "%s-%d-%s" % (prefix, i, hashlib.sha256(b"%d" % i).hexdigest())
    return v * 100 if i % 100 == 7 else v  # some values span several segments


def write_keys(net, prefix, n=1000, host=None, side="client"):
    cmds = "".join("SET %s:%d %s\n" % (prefix, i, value(prefix, i)) for i in range(n))
    cp = net.run(side, ["redis-cli", "-h", host or net.srv_ip, "-p", PORT], input=cmds,
                 timeout=120, check=True)
    assert cp.stdout.split() == ["OK"] * n, cp.stdout[:2000]


def check_keys(net, prefix, n=1000, host=None, side="client"):
    cmds = "".join("GET %s:%d\n" % (prefix, i) for i in range(n))
    cp = net.run(side, ["redis-cli", "-h", host or net.srv_ip, "-p", PORT], input=cmds,
                 timeout=120, check=True)
    got = cp.stdout.split("\n")[:-1]
    bad = [i for i in range(n) if i >= len(got) or got[i] != value(prefix, i)]
    assert not bad, "%d of %d keys %s:* wrong, first %s" % (len(bad), n, prefix, bad[:5])


def cli(net, side, host, port, *args, env=None, conf=None):
    cp = net.run(side, ["redis-cli", "-h", host, "-p", port] + list(args), timeout=30,
                 check=True, env=env, conf=conf)
    return cp.stdout.strip()


def info(net, field):
    text = cli(net, "client", net.srv_ip, PORT, "INFO", "all")
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    pytest.fail("INFO has no %s" % field, pytrace=False)


def test_redis_benchmark_accelerated(netpair):
    """1: redis-benchmark succeeds, 1000 values read back intact, the kernel saw nothing."""
    net = netpair(accel=("server",))
    srv, _, _ = accel_redis(net)
    before = net.tcp_segs("server")
    cp = net.run("client", bench_argv(net, 20000, "set,get,incr,lpush"), timeout=120,
                 check=True)
    parse_bench(cp.stdout, "set,get,incr,lpush")
    write_keys(net, "k1")
    check_keys(net, "k1")
    after = net.tcp_segs("server")
    assert int(info(net, "total_commands_processed")) >= 82000
    assert_bypassed(before, after, 160000, "redis-benchmark against accelerated redis")
    assert_woken_on_time(srv.pid, "redis-benchmark")
    assert srv.poll() is None, srv.describe()
    assert srv.stop() == 0, srv.describe()
    assert bypass_lines(srv.err()) == [], srv.err()


def test_hybrid_while_benchmark_runs(netpair):
    """4: during the benchmark, loopback reaches the same redis through the kernel, a
    kernel-only redis on another port serves the client namespace, ping works."""
    net = netpair(accel=("server",))
    srv, _, conf = accel_redis(net)
    # Same config, no rule for its port: the library leaves it to the kernel.
    ksrv, _ = start_redis(net, conf, port=KPORT, name="redis-kernel")
    before = net.tcp_segs("server")
    bench = net.spawn("client", bench_argv(net, 200000, "set,get"), name="bench")
    rounds, overlapped, deadline = 0, 0, time.monotonic() + 180
    while (bench.poll() is None or rounds < 3) and time.monotonic() < deadline:
        running = bench.poll() is None
        # Loopback in the server's namespace: a plain client, and one under the library
        # whose rule names the remote port (127.0.0.0/8 always goes to the kernel).
        assert cli(net, "server", "127.0.0.1", PORT, "SET", "lo:%d" % rounds, "v%d" % rounds) == "OK"
        pre = net.run("server", ["redis-cli", "-h", "127.0.0.1", "-p", PORT, "GET",
                                 "lo:%d" % rounds], conf=conf, timeout=30, check=True)
        assert pre.stdout.strip() == "v%d" % rounds
        assert bypass_lines(pre.stderr) == [], pre.stderr
        # The same key through the accelerated path from the other namespace.
        assert cli(net, "client", net.srv_ip, PORT, "GET", "lo:%d" % rounds) == "v%d" % rounds
        # The kernel-only server on another port of the same interface.
        assert cli(net, "client", net.srv_ip, KPORT, "SET", "k:%d" % rounds, "w") == "OK"
        assert cli(net, "client", net.srv_ip, KPORT, "GET", "k:%d" % rounds) == "w"
        assert cli(net, "client", net.srv_ip, KPORT, "GET", "lo:%d" % rounds) == ""
        net.run("client", ["ping", "-c", "2", "-i", "0.2", "-W", "2", net.srv_ip],
                timeout=15, check=True)
        net.run("server", ["ping", "-c", "1", "-W", "2", net.cli_ip], timeout=15, check=True)
        overlapped += running and bench.poll() is None
        rounds += 1
    assert bench.wait(60) == 0, bench.describe()
    parse_bench(bench.out(), "set,get")
    assert overlapped >= 1, "the benchmark finished before one hybrid round could overlap it"
    after = net.tcp_segs("server")
    # The benchmark is >= 400,000 segments; each round's kernel sessions (two loopback
    # redis-cli, counted at both ends, three to port 6380, the pings) ~70 in all.
    assert_bypassed(before, after, 400000, "benchmark beside kernel traffic",
                    bound=150 * rounds + 200)
    assert srv.poll() is None and ksrv.poll() is None
    assert srv.stop() == 0, srv.describe()
    assert ksrv.stop() == 0, ksrv.describe()
    assert bypass_lines(srv.err()) == [], srv.err()
    assert bypass_lines(ksrv.err()) == [], ksrv.err()


@pytest.mark.slow
def test_bgsave_under_load(netpair):
    """5: BGSAVE (fork) several times while the benchmark runs: the parent keeps serving,
    keys written before are intact, the dump appears."""
    net = netpair(accel=("server",))
    srv, workdir, _ = accel_redis(net)
    write_keys(net, "keep")
    before = net.tcp_segs("server")
    bench = net.spawn("client", bench_argv(net, 300000, "set,get,incr", extra=("-r", "100000")),
                      name="bench")
    saves, under_load = 0, 0
    for _ in range(5):
        running = bench.poll() is None
        out = cli(net, "client", net.srv_ip, PORT, "BGSAVE")
        assert out.startswith("Background saving started"), out
        deadline = time.monotonic() + 60
        while info(net, "rdb_bgsave_in_progress") != "0":
            # The parent answers while its child saves.
            assert cli(net, "client", net.srv_ip, PORT, "PING") == "PONG"
            assert time.monotonic() < deadline, "BGSAVE did not finish in 60 s"
            time.sleep(0.05)
        assert info(net, "rdb_last_bgsave_status") == "ok"
        saves += 1
        under_load += running and bench.poll() is None
    assert bench.wait(180) == 0, bench.describe()
    parse_bench(bench.out(), "set,get,incr")
    assert under_load >= 1, "no BGSAVE overlapped the benchmark"
    check_keys(net, "keep")
    dump = workdir / "dump.rdb"
    assert dump.is_file() and dump.stat().st_size > 0, "no dump file in %s" % workdir
    after = net.tcp_segs("server")
    assert_bypassed(before, after, 600000, "benchmark with BGSAVE")
    # After the forks the stack is still the parent's and carries new connections: the
    # stats of the redis process count a benchmark run after the last BGSAVE.
    from .test_stats import snapshot
    rx0 = snapshot(srv.pid)["stack"]["rx_pkts"]
    cp = net.run("client", bench_argv(net, 20000, "ping_mbulk"), timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert snapshot(srv.pid)["stack"]["rx_pkts"] - rx0 >= 20000, "the stack did not carry it"
    assert_bypassed(after, net.tcp_segs("server"), 20000, "benchmark after the BGSAVEs")
    assert srv.poll() is None, srv.describe()
    assert srv.stop() == 0, srv.describe()
    assert bypass_lines(srv.err()) == [], srv.err()
