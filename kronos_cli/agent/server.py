"""The Model Context Protocol server (the official `mcp` SDK's low-level `Server`) over a `Toolbox`: stdio, or
streamable HTTP with `kronos serve`'s bearer-token rule.

The low-level server is used rather than the decorator API so that a tool's input schema is the HTTP API's own
request schema (`ForecastRequest` with the server's limits), checked by the same pydantic model.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

import mcp_types as types
import uvicorn
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from kronos_cli import __version__
from kronos_cli.agent.tools import Toolbox, ToolProblem
from kronos_cli.serve.app import UNAUTHORISED
from kronos_cli.serve.responses import error_response

log = logging.getLogger(__name__)
NAME = "kronos"
PATH = "/mcp"


def _answer(payload: dict[str, Any]) -> types.CallToolResult:
    text = json.dumps(payload, allow_nan=False)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=payload)


def _tool_error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def build_server(box: Toolbox) -> Server:
    """An MCP server whose tools and resources are `box`'s; every failure of a call is a tool error."""

    async def list_tools(_ctx, _params) -> types.ListToolsResult:
        tools = [
            types.Tool(name=s.name, description=s.description, input_schema=s.input_schema, output_schema=s.output)
            for s in box.specs()
        ]
        return types.ListToolsResult(tools=tools)

    async def call_tool(_ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            return _answer(await box.call(params.name, params.arguments))
        except ToolProblem as exc:
            return _tool_error(str(exc))
        except Exception as exc:  # a failure, not the caller's mistake: answered, and the server keeps running
            log.error("tool %s failed: %s: %s", params.name, type(exc).__name__, exc)
            return _tool_error(f"{params.name} failed ({type(exc).__name__}: {exc}); the server keeps running")

    async def list_resources(_ctx, _params) -> types.ListResourcesResult:
        found = [
            types.Resource(name=uri.rsplit("/", 1)[-1], uri=uri, description=about, mime_type="application/json")
            for uri, about, _ in box.resources()
        ]
        return types.ListResourcesResult(resources=found)

    async def read_resource(_ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        try:
            text = box.read(str(params.uri))
        except ToolProblem as exc:
            raise MCPError(code=types.INVALID_PARAMS, message=str(exc)) from None
        contents = [types.TextResourceContents(uri=params.uri, text=text, mime_type="application/json")]
        return types.ReadResourceResult(contents=contents)

    return Server(
        NAME,
        version=__version__,
        instructions="Forecast OHLCV bars with a (fine-tuned) Kronos model; `model_info` says what is served.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
    )


async def run_stdio(box: Toolbox) -> None:
    """Serve one client over stdin/stdout until it closes them."""
    server = build_server(box)
    await box.service.start()
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await box.service.stop()


class BearerOnly:
    """`kronos serve`'s token rule: every request needs `Authorization: Bearer <token>` (compared in constant
    time), else 401 before the MCP app sees it."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        scheme, _, credentials = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token):
            return await self.app(scope, receive, send)
        await error_response(401, [(None, UNAUTHORISED)], {"WWW-Authenticate": "Bearer"})(scope, receive, send)


async def run_http(
    box: Toolbox, sock: socket.socket, token: str | None, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve streamable HTTP at `PATH` on `sock` until interrupted; with `token`, every request needs it."""
    host, port = sock.getsockname()[:2]
    app = build_server(box).streamable_http_app(streamable_http_path=PATH, host=host)
    config = uvicorn.Config(
        BearerOnly(app, token) if token else app, log_config=None, lifespan="on", server_header=False
    )
    server = uvicorn.Server(config)
    await box.service.start()
    try:
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not (server.started or serving.done()):
            await asyncio.sleep(0.05)
        if server.started and on_ready is not None:
            on_ready(f"http://{'[' + host + ']' if ':' in host else host}:{port}{PATH}")
        await serving
    finally:
        await box.service.stop()
