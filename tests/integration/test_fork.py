"""fork, posix_spawn, subprocess and exec from a preloaded program."""

import json

from conftest import HERE, PYTHON, run

SCENARIO = str(HERE / "scenario_fork.py")

EXPECTED = {
    "fork": {"child": {"accepted_from_parent": "to-child!", "reply": "parent-reply"},
             "child_ack": "child-ack", "child_exit": 0, "child_lib_same_as_parent": True,
             "from_child": "child-hello", "self_conn_ok": True,
             "socketpair": "over-socketpair"},
    "spawn": {"exec_inherit_exit": 0, "exec_inherit_recv": "from-exec-child",
              "exec_inherit_reply": "to-exec-child",
              "posix_spawn": {"exit": 0, "lib_inherited": True, "reply": "echo:spawned"},
              "shell": "Hi",
              "subprocess": {"exit": 0, "lib_inherited": True,
                             "reply": "echo:subprocess"}},
}


def scenario(preload):
    cp = run([PYTHON, SCENARIO], preload=preload, timeout=60)
    assert cp.returncode == 0, cp.stderr
    return cp


def test_fork_kernel_baseline():
    assert json.loads(scenario(False).stdout) == EXPECTED


def test_fork_identical_under_library(libbypass):
    plain = scenario(False)
    pre = scenario(True)
    assert pre.stderr == ""
    assert json.loads(pre.stdout) == EXPECTED
    assert pre.stdout == plain.stdout
