"""A fast webhook receiver for benchmarks: asyncio, HTTP/1.1 keep-alive, answers 200 at once.

Run as `python -m deliveries.bench.receiver PORT OUTFILE`. For every POST it records the path,
the `webhook-id`, the time of receipt and the `sent_at` the benchmark put in the payload; on
SIGTERM it writes them to OUTFILE as JSON lines.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time

REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
SENT_AT = re.compile(rb'"sent_at":\s*([0-9.]+)')
received: list[tuple[str, str, float, float]] = []


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length, webhook_id = 0, ""
            path = head.split(b" ", 2)[1].decode()
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                lowered = name.lower()
                if lowered == b"content-length":
                    length = int(value)
                elif lowered == b"webhook-id":
                    webhook_id = value.strip().decode()
            body = await reader.readexactly(length)
            match = SENT_AT.search(body)
            sent_at = float(match.group(1)) if match else 0.0
            received.append((path, webhook_id, time.time(), sent_at))
            writer.write(REPLY)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, out: str) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()
    with open(out, "w") as file:
        for record in received:
            file.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
