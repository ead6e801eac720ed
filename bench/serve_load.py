"""Load test of ``unmask serve`` on loopback: many concurrent clients, zero errors, latency,
throughput vs ``unmask scan`` on the same files, and the server's memory staying flat.

A warm-up of 1,000 images (50 clients x 20) then the measured phase: 200 concurrent clients, each
on its own keep-alive connection sending 20 images one request at a time (4,000 images; tiny: 20
warm-up, 20 clients x 5). Files: 256-px RGB PNGs (bench.scan_speed.make_photos, a photo-sized
upload) scored by the default-size ``dcgan_d`` stand-in (resize policy), the same files and detector
``unmask scan`` reads for the comparison (2 decoding workers, batch 64, 1 torch thread; run before
and after the server, the faster of the two counts, so other jobs' load favours the scan). The server
runs as a subprocess with 1 torch thread and 2 decoding threads. Bounded: every phase has a
deadline; the clients are plain asyncio sockets in this process (no extra dependency).

Reported: p50/p99 request latency, images/s of the measured phase, server RSS after the warm-up
vs its peak during the measured phase (``memory_ratio``), scan images/s and ``ratio`` = serve / scan,
and the CPU milliseconds each spends per image (the server process alone; the scan with its
workers), which other jobs' load on a shared machine does not move the way it moves wall time.
"""
from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import pin_threads, stand_in

ROOT = Path(__file__).resolve().parents[1]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds of this process and of its reaped children (the scan's DataLoader workers)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024.0


def _request(data: bytes, name: str) -> bytes:
    b = uuid.uuid4().hex
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    head = (f"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={b}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(v) for k, _, v in (ln.partition(": ") for ln in lines[1:]) if k.lower() == "content-length")
    return status, await reader.readexactly(length)


async def _client(port: int, requests: list[bytes], lat: list[float], errors: list[str], done: list[int],
                  on_done) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for req in requests:
            t0 = time.perf_counter()
            writer.write(req)
            await writer.drain()
            status, body = await _read_response(reader)
            lat.append(time.perf_counter() - t0)
            row = json.loads(body)["results"][0] if status == 200 else {}
            if status != 200 or row.get("label") not in ("real", "fake"):
                errors.append(f"{status}: {body[:200]!r}")
            done[0] += 1
            on_done(done[0])
    finally:
        writer.close()


async def _phase(port: int, reqs: list[bytes], clients: int, per_client: int, on_done, deadline_s: float) -> dict:
    lat: list[float] = []
    errors: list[str] = []
    done = [0]
    jobs = [[reqs[(c * per_client + i) % len(reqs)] for i in range(per_client)] for c in range(clients)]
    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*[_client(port, j, lat, errors, done, on_done) for j in jobs]), deadline_s)
    return {"seconds": time.perf_counter() - t0, "latencies": sorted(lat), "errors": errors, "images": done[0]}


def _start_server(det_dir: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "unmask", "serve", "--detector", str(det_dir), "--port", str(port),
                             "--threads", "1", "--decode-workers", "2", "--max-images", "32"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 120
    while time.monotonic() < end and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                c.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if c.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc, port
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("unmask serve did not become ready")


def _scan_rate(root: Path, det, n: int) -> tuple[float, float]:
    """(images/s, CPU ms per image of all the scan's processes)."""
    from detector.scan import ScanConfig, scan

    c0 = _own_cpu_s()
    r = scan([root], det, root.parent / "scan.csv", ScanConfig(workers=2, batch_size=64, overwrite=True,
                                                               progress=False), log=lambda m: None)
    assert r.n_files == n and r.n_errors == 0
    return n / r.seconds, 1000 * (_own_cpu_s() - c0) / n


def _pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run(tiny: bool = False) -> dict:
    from bench.scan_speed import make_photos

    pin_threads(1)
    warm_clients, clients, per_client = (4, 20, 5) if tiny else (50, 200, 20)
    det = stand_in("resize")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        det.save(tmp / "det")
        n = warm_clients * per_client + clients * per_client
        files = make_photos(tmp / "photos" / "rgb", n)
        reqs = [_request(Path(p).read_bytes(), Path(p).name) for p in files[:64]]
        scan_rates = [_scan_rate(tmp / "photos" / "rgb", det, n)]
        proc, port = _start_server(tmp / "det")
        rss: list[float] = []
        try:
            asyncio.run(_phase(port, reqs, warm_clients, per_client, lambda k: None, 600))
            rss_warm = _rss_mb(proc.pid)
            sample = lambda k: rss.append(_rss_mb(proc.pid)) if k % 100 == 0 else None  # noqa: E731
            c0 = _cpu_s(proc.pid)
            main = asyncio.run(_phase(port, reqs, clients, per_client, sample, 600))
            serve_cpu_ms = 1000 * (_cpu_s(proc.pid) - c0) / main["images"]
            rss.append(_rss_mb(proc.pid))
        finally:
            proc.terminate()
            proc.wait(60)
        scan_rates.append(_scan_rate(tmp / "photos" / "rgb", det, n))  # before and after: the better one counts
    scan_rate, scan_cpu_ms = max(scan_rates)
    if main["errors"]:
        raise RuntimeError(f"{len(main['errors'])} failed requests, e.g. {main['errors'][0]}")
    lat = main["latencies"]
    rate = main["images"] / main["seconds"]
    return {"clients": clients, "images_per_client": per_client, "images": main["images"], "errors": 0,
            "p50_ms": 1000 * _pct(lat, 0.50), "p99_ms": 1000 * _pct(lat, 0.99), "serve_images_per_s": rate,
            "scan_images_per_s": scan_rate, "ratio": rate / scan_rate, "rss_mb_after_warmup": rss_warm,
            "rss_mb_peak_measured": max(rss), "memory_ratio": max(rss) / rss_warm,
            "serve_cpu_ms_per_image": serve_cpu_ms, "scan_cpu_ms_per_image": scan_cpu_ms,
            "load_average": list(os.getloadavg()), "warmup_images": warm_clients * per_client,
            "files": "256-px RGB PNG, dcgan_d width 64, resize"}


if __name__ == "__main__":
    print(json.dumps(run(tiny="--tiny" in sys.argv), indent=1))
