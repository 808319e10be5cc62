"""The aiohttp hello-world baseline: the least a server on this machine can do per request.

Run as ``python -m bench.hello [--port N]``; prints ``listening on http://HOST:PORT`` like
``courier serve`` does, so both are started, driven and measured the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web


async def hello(_: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    return app


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(create_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    for bound in runner.addresses:
        print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.hello")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))
