"""Opens N TCP connections at once, then has each send a message and check its echo.

    many_clients.py HOST PORT N

All N connections are established before any sends, so the server holds N at once.
Prints one JSON object: {"connected": c, "echoed": e, "errors": [first few]}.
"""

import asyncio
import json
import resource
import sys


async def one(i, host, port, opened, go, errors):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
    except Exception as e:  # reported, not raised: we count what worked
        errors.append("connect %d: %r" % (i, e))
        opened.release()
        return False
    opened.release()
    try:
        await go.wait()
        msg = ("conn-%05d:" % i).encode() + bytes((i + j) % 251 for j in range(200)) + b"\n"
        writer.write(msg)
        await writer.drain()
        got = await asyncio.wait_for(reader.readexactly(len(msg)), 30)
        if got != msg:
            errors.append("echo %d differs" % i)
            return False
        return True
    except Exception as e:
        errors.append("echo %d: %r" % (i, e))
        return False
    finally:
        writer.close()


async def main(host, port, n):
    opened, go, errors = asyncio.Semaphore(0), asyncio.Event(), []
    tasks = [asyncio.create_task(one(i, host, port, opened, go, errors)) for i in range(n)]
    for _ in range(n):
        await opened.acquire()
    connected = n - len(errors)
    go.set()
    results = await asyncio.gather(*tasks)
    return {"connected": connected, "echoed": sum(results), "errors": errors[:10]}


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    out = asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    print(json.dumps(out))
