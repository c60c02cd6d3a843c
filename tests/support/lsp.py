"""A minimal Language Server Protocol client over stdio, for driving yaml-language-server as an
editor does: open a document, read the diagnostics it publishes, ask for completions and hovers.

JSON-RPC messages are framed by ``Content-Length`` headers. A reader thread puts every message
the server sends on a queue; requests from the server (configuration, registrations) are
answered with null, as a client without those features does.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

from tests.support.common import REPO

NODE_TOOLS = REPO / "tests" / "support" / "node"
YAML_LANGUAGE_SERVER = NODE_TOOLS / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"


class LspError(RuntimeError):
    pass


class LanguageServer:
    """``with LanguageServer(["node", server, "--stdio"], root) as ls: ls.open(path, text)``."""

    def __init__(self, command: list[str], root: Path, timeout: float = 30.0) -> None:
        self.command = command
        self.root = root
        self.timeout = timeout
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.notifications: list[dict[str, Any]] = []
        self._next_id = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LanguageServer:
        self.proc = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=self.root
        )
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        self.request(
            "initialize",
            {
                "processId": None,
                "rootUri": self.root.as_uri(),
                "capabilities": {
                    "textDocument": {
                        "completion": {"completionItem": {"snippetSupport": True, "documentationFormat": ["markdown"]}},
                        "hover": {"contentFormat": ["markdown", "plaintext"]},
                        "publishDiagnostics": {},
                    }
                },
            },
        )
        self.notify("initialized", {})
        settings = {"yaml": {"validate": True, "completion": True, "hover": True, "schemaStore": {"enable": False}}}
        self.notify("workspace/didChangeConfiguration", {"settings": settings})
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
            self.proc.wait(timeout=5)
        except (LspError, OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()

    # -- the wire -------------------------------------------------------------
    def _read(self, stream: IO[bytes]) -> None:
        while True:
            length = 0
            while True:
                header = stream.readline()
                if not header:
                    self.inbox.put(None)
                    return
                if header in (b"\r\n", b"\n"):
                    break
                name, _, value = header.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.inbox.put(json.loads(stream.read(length)))

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: Any) -> Any:
        self._next_id += 1
        ident = self._next_id
        self._send({"id": ident, "method": method, "params": params})
        message = self._wait(lambda m: m.get("id") == ident and "method" not in m)
        if "error" in message:
            raise LspError(f"{method}: {message['error']}")
        return message.get("result")

    def _wait(self, wanted: Any) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LspError("the language server did not answer in time")
            try:
                message = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if message is None:
                raise LspError("the language server exited")
            if "method" in message and "id" in message:  # a request from the server
                self._send({"id": message["id"], "result": None})
                continue
            if "method" in message:
                self.notifications.append(message)
            if wanted(message):
                return message

    # -- what an editor does ------------------------------------------------------
    def open(self, path: Path, text: str) -> list[dict[str, Any]]:
        """Open ``path`` holding ``text``; the diagnostics the server publishes for it."""
        uri = path.as_uri()
        params = {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}}
        self.notify("textDocument/didOpen", params)
        found = self._wait(
            lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri
        )
        diagnostics: list[dict[str, Any]] = found["params"]["diagnostics"]
        return diagnostics

    def completion(self, path: Path, line: int, character: int) -> list[dict[str, Any]]:
        result = self.request(
            "textDocument/completion",
            {"textDocument": {"uri": path.as_uri()}, "position": {"line": line, "character": character}},
        )
        items: list[dict[str, Any]] = result["items"] if isinstance(result, dict) else (result or [])
        return items

    def hover(self, path: Path, line: int, character: int) -> Any:
        return self.request(
            "textDocument/hover",
            {"textDocument": {"uri": path.as_uri()}, "position": {"line": line, "character": character}},
        )
