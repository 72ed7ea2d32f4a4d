import time
from .test_fork import spawn_prefork, run_echo_clients, kill_all, echo_client_code
from .conftest import PYTHON

def test_zz(netpair, request):
    net = netpair()
    port = 7001
    srv, workers = spawn_prefork(net, port, 4, "exit", 400)
    request.addfinalizer(lambda: kill_all(workers))
    assert srv.wait(10) == 0
    start = time.monotonic()
    rounds = 0
    fails = []
    while time.monotonic() - start < 200:
        cp = net.run("client", [PYTHON, "-c", echo_client_code(net.srv_ip, port, 40, 16384, 4)], timeout=240)
        rounds += 1
        if cp.stdout.strip() != "ok 40":
            fails.append((rounds, cp.stdout, cp.stderr))
            print("FAIL", rounds, cp.stdout, cp.stderr, flush=True)
    print("rounds", rounds, "fails", len(fails))
    print(srv.out()[-3000:])
    assert not fails
