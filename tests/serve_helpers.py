"""Starting the real ``unmask serve`` as a subprocess on a free loopback port, and talking to it
with the standard library's ``http.client`` (no extra test dependency, full control of the bytes)."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ServerProc", "free_port", "multipart", "ROOT"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(files: list[tuple[str | bytes, bytes]], boundary: str | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body with one ``image`` file part per ``(filename, bytes)``."""
    b = boundary or uuid.uuid4().hex
    out = bytearray()
    for name, data in files:
        raw = name if isinstance(name, bytes) else os.fsencode(name)
        out += (f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"".encode()
                + raw.replace(b'"', b"%22") + b"\"\r\nContent-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    out += f"--{b}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={b}"


class ServerProc:
    """``python -m unmask serve`` on a free port; ``with`` starts it (waits for /readyz) and stops it."""

    def __init__(self, detector_dir: Path, *args: str, env: dict | None = None, token: str | None = None,
                 log: Path | None = None) -> None:
        self.port, self.token = free_port(), token
        self.args = [sys.executable, "-m", "unmask", "serve", "--detector", str(detector_dir), "--port",
                     str(self.port), "--threads", "1", *(["--token", token] if token else []), *args]
        base = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                    OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.env = env or base
        self.log = log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "ServerProc":
        self.logf = open(self.log, "wb") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=self.logf, stderr=self.logf)
        deadline = time.monotonic() + 120  # a bound on a broken start, not a timing assertion
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"unmask serve exited with {self.proc.returncode}: {self.log_text()[-2000:]}")
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("unmask serve did not become ready")

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, timeout: float = 60) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.logf.close()
        return self.proc.returncode if self.proc else 0

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                auth: bool = True) -> tuple[int, dict | str, dict]:
        """``(status, parsed JSON body (or text), headers)``."""
        h = dict(headers or {})
        if auth and self.token:
            h.setdefault("Authorization", f"Bearer {self.token}")
        c = self.connect()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            raw = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        text = raw.decode("utf-8", "replace")
        is_json = hdrs.get("content-type", "").startswith("application/json")
        return r.status, (json.loads(text) if is_json else text), hdrs

    def score(self, files: list[tuple[str | bytes, bytes]], query: str = "", **kw) -> tuple[int, dict]:
        body, ctype = multipart(files)
        status, data, _ = self.request("POST", "/v1/score" + query, body, {"Content-Type": ctype}, **kw)
        return status, data

    def score_paths(self, paths: list[str], query: str = "") -> tuple[int, dict]:
        status, data, _ = self.request("POST", "/v1/score-path" + query, json.dumps({"paths": paths}).encode(),
                                       {"Content-Type": "application/json"})
        return status, data
