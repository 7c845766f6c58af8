"""A fast webhook receiver for benchmarks: asyncio, HTTP/1.1 keep-alive, answers at once.

Run as `python -m benchmarks.receiver PORT OUTFILE`. A path starting with `/hang` never
answers, one starting with `/fail` answers 500, any other 200. For every POST it records the
path, the status it answered (0 for a hang, recorded on arrival), the time of receipt, the
`sent_at` the benchmark put in the payload, the webhook headers and the body; on SIGTERM it
writes them to OUTFILE as JSON lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
FAIL = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
SENT_AT = re.compile(rb'"sent_at":\s*([0-9.]+)')
received: list[dict] = []


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            headers = {}
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower().decode()] = value.strip().decode()
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            hangs = path.startswith("/hang")
            status = 0 if hangs else 500 if path.startswith("/fail") else 200
            match = SENT_AT.search(body)
            received.append({
                "path": path, "status": status, "at": time.time(),
                "sent_at": float(match.group(1)) if match else 0.0,
                "headers": {k: v for k, v in headers.items() if k.startswith("webhook-")},
                "body": body.decode(),
            })  # fmt: skip
            if hangs:
                await asyncio.sleep(3600)
            writer.write(FAIL if status == 500 else OK)
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(port: int, out: str) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    with open(out, "w") as file:
        for record in received:
            file.write(json.dumps(record) + "\n")
    os._exit(0)  # connections still open (the hanging ones) need no goodbye


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
