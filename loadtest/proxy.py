"""A TCP proxy that can freeze links: ``python -m loadtest.proxy LISTEN:TARGET [...]``.

It forwards each listening port on 127.0.0.1 to its target port. On SIGUSR1 every flow open at
that moment from 127.0.0.1 (chatd's side) stops forwarding, in both directions, without
closing: what a stale NAT or firewall entry does. SIGUSR2 does the same to the flows from
127.0.0.2 (replication links between Redis nodes). New flows work as before. SIGTERM stops
it.

This is how the fault tests make a silent link: nothing is closed, nothing is answered, and
chatd must notice by itself (docs/operations.md, "Silent links").
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys


class Flow:
    __slots__ = ("pumps", "source", "frozen")

    def __init__(self, pumps: list[asyncio.Task[None]], source: str) -> None:
        self.pumps = pumps
        self.source = source
        self.frozen = False


class Proxy:
    def __init__(self) -> None:
        self.flows: set[Flow] = set()
        self.frozen: list[asyncio.StreamWriter] = []  # kept open (silent) until the end

    async def listen(self, port: int, target: int) -> asyncio.AbstractServer:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            source = writer.get_extra_info("peername")[0]
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
            except OSError:
                writer.close()
                return
            flow = Flow([asyncio.ensure_future(_pump(reader, up_writer)),
                         asyncio.ensure_future(_pump(up_reader, writer))], source)
            self.flows.add(flow)
            try:
                await asyncio.wait(flow.pumps, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:  # the proxy is stopping
                pass
            finally:
                self.flows.discard(flow)
                for pump in flow.pumps:
                    pump.cancel()
                if flow.frozen:
                    self.frozen += [writer, up_writer]
                else:  # one side closed: close the other
                    writer.close()
                    up_writer.close()

        return await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)

    def freeze(self, source: str) -> int:
        victims = [f for f in self.flows if f.source == source]
        for flow in victims:
            flow.frozen = True
            for pump in flow.pumps:
                pump.cancel()
        return len(victims)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass


async def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.proxy")
    p.add_argument("maps", nargs="+", metavar="LISTEN:TARGET")
    args = p.parse_args(argv)
    proxy = Proxy()
    for m in args.maps:
        listen, target = (int(x) for x in m.split(":"))
        await proxy.listen(listen, target)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def on_freeze(source: str) -> None:
        n = proxy.freeze(source)
        print(f"proxy: froze {n} flow(s) from {source}", file=sys.stderr, flush=True)
    loop.add_signal_handler(signal.SIGUSR1, on_freeze, "127.0.0.1")
    loop.add_signal_handler(signal.SIGUSR2, on_freeze, "127.0.0.2")
    print("proxy: ready", file=sys.stderr, flush=True)
    await stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
