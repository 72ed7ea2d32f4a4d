"""redis-server, unmodified, under the library: same answers as on the kernel."""

import csv
import io

from conftest import bypass_lines, free_port, run

BIG = "x" * 30000
COMMANDS = "\n".join([
    "SET k v1", "GET k", "INCR n", "INCRBY n 41", "LPUSH l a b c", "LRANGE l 0 -1",
    "DEL k", "GET k", "SET big " + BIG, "STRLEN big", "GET big",
    "HSET h f1 1 f2 2", "HGETALL h", "DBSIZE",
]) + "\n"
EXPECTED = ["OK", "v1", "1", "42", "3", "c", "b", "a", "1", "", "OK", "30000", BIG,
            "2", "f1", "1", "f2", "2", "4"]


def redis_cmd(port, tmp_path):
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
            "--protected-mode", "yes", "--loglevel", "warning"]


def session(servers, tmp_path, server_preload, client_preload):
    port = free_port()
    srv = servers.start(redis_cmd(port, tmp_path), port, preload=server_preload)
    cli = run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)], preload=client_preload,
              input=COMMANDS, timeout=30, check=True)
    _, err = servers.stop(srv)
    return cli, err


def test_redis_kernel_baseline(servers, tmp_path):
    cli, _ = session(servers, tmp_path, False, False)
    assert cli.stdout.split("\n")[:-1] == EXPECTED


def test_redis_same_answers_under_library(servers, tmp_path, libbypass):
    plain, _ = session(servers, tmp_path, False, False)
    pre, server_err = session(servers, tmp_path, True, True)
    assert pre.stdout == plain.stdout
    assert pre.stdout.split("\n")[:-1] == EXPECTED
    assert pre.stderr == ""
    assert bypass_lines(server_err) == []


def test_redis_benchmark_under_library(servers, tmp_path, libbypass):
    port = free_port()
    srv = servers.start(redis_cmd(port, tmp_path), port, preload=True)
    cp = run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", "20000",
              "-c", "10", "-P", "4", "-t", "set,get,lpush,lpop", "--csv"],
             preload=True, timeout=120, check=True)
    rows = {r["test"]: float(r["rps"]) for r in csv.DictReader(io.StringIO(cp.stdout))}
    assert set(rows) >= {"SET", "GET", "LPUSH", "LPOP"}, cp.stdout
    assert all(v > 0 for v in rows.values()), rows
    # The server served every request and is still answering afterwards.
    info = run(["redis-cli", "-p", str(port), "INFO", "stats"], preload=False,
               timeout=10, check=True).stdout
    total = int(next(l.split(":")[1] for l in info.splitlines()
                     if l.startswith("total_commands_processed")))
    assert total >= 80000
    assert srv.poll() is None
    _, err = servers.stop(srv)
    assert bypass_lines(err) == []
