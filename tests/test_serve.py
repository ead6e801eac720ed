"""`unmask serve`: the real server (a subprocess on a free loopback port) scores like `unmask scan`,
refuses every bad input with a 4xx that names the reason (and keeps serving), enforces its limits
before reading an oversized body, its token and its allowed folder, and stops cleanly on SIGTERM."""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys

import pytest
import torch
from PIL import Image

import detector
from detector.imageio import save_png
from detector.scan import ScanConfig, read_rows, scan
from tests.corpus import bomb_png, png_bytes
from tests.serve_helpers import ROOT, ServerProc, multipart
from tests.test_reliability import IMAGE_KINDS, OK, _env

TOKEN = "s3cret-token-for-tests"
LIMITS = ["--max-request-mb", "1", "--max-image-mb", "0.5", "--max-images", "6", "--max-pixels", "4000000"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, real_images, fake_images):
    """Real and fake PNGs, a large RGB image (many tiles), a JPEG: the scan/serve comparison set."""
    root = tmp_path_factory.mktemp("serve-files")
    paths = []
    for i in range(6):
        for kind, imgs in (("real", real_images), ("fake", fake_images)):
            p = root / kind / f"{kind}{i}.png"
            p.parent.mkdir(exist_ok=True)
            save_png(imgs[i], p)
            paths.append(p)
    big = root / "big.png"
    save_png(torch.rand(3, 90, 130, generator=torch.Generator().manual_seed(0)), big)
    jpg = root / "photo.jpg"
    Image.new("RGB", (40, 33), (120, 30, 200)).save(jpg, quality=80)
    return root, paths + [big, jpg]


@pytest.fixture(scope="module")
def fs_corpus(tmp_path_factory):
    """The file-system half of the reliability corpus inside an allowed folder, plus escape attempts."""
    tmp = tmp_path_factory.mktemp("serve-fs")
    allowed, outside = tmp / "allowed", tmp / "outside"
    allowed.mkdir()
    outside.mkdir()
    ok = png_bytes(Image.new("L", (28, 28), 77))
    (allowed / "good.png").write_bytes(ok)
    (allowed / "sub").mkdir()
    (allowed / "sub" / "inner.png").write_bytes(ok)
    (outside / "secret.png").write_bytes(ok)
    (allowed / "loop.png").symlink_to(allowed / "loop.png")
    (allowed / "dangling.png").symlink_to(allowed / "never-was.png")
    os.mkfifo(allowed / "pipe.png")
    (allowed / "album.jpg").mkdir()
    (allowed / "denied.png").write_bytes(ok)
    (allowed / "to-outside.png").symlink_to(outside / "secret.png")
    (allowed / "outdir").symlink_to(outside, target_is_directory=True)
    (allowed / "to-inside.png").symlink_to(allowed / "sub" / "inner.png")
    env = _env(tmp, UNMASK_TEST_DENY_READ=str(allowed / "denied.png"))  # the reliability tests' read hook
    return allowed, outside, env


@pytest.fixture(scope="module")
def server(tiny_detector, fs_corpus, tmp_path_factory):
    allowed, _, env = fs_corpus
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    with ServerProc(tiny_detector, "--allow-dir", str(allowed), *LIMITS, env=env, token=TOKEN, log=log) as s:
        yield s


def _scan_rows(det_dir, files, tmp_path) -> dict:
    out = tmp_path / "scan.csv"
    scan(files, detector.load(det_dir), out, ScanConfig(workers=0, batch_size=5, progress=False))
    return {r["path"]: r for r in read_rows(out)}


def _same_as_scan(row: dict, ref: dict) -> None:
    assert abs(row["score"] - float(ref["score"])) <= 1e-6, (row, ref)
    assert row["label"] == ref["label"] and row["threshold"] == float(ref["threshold"])
    assert (row["n_tiles"], row["width"], row["height"], row["policy"]) == (
        int(ref["n_tiles"]), int(ref["width"]), int(ref["height"]), ref["policy"])
    assert row["error"] is None and row["status"] == 200


def test_scores_equal_unmask_scan(server, files, tiny_detector, tmp_path):
    root, paths = files
    ref = _scan_rows(tiny_detector, paths, tmp_path)
    assert {r["label"] for r in ref.values()} == {"real", "fake"}  # both verdicts are exercised
    for p in paths:                                                   # one image per request
        status, data = server.score([(p.name, p.read_bytes())])
        assert status == 200, data
        _same_as_scan(data["results"][0], ref[str(p)])
    for i in range(0, len(paths), 6):                                  # several per request, in order
        chunk = paths[i:i + 6]
        status, data = server.score([(p.name, p.read_bytes()) for p in chunk])
        assert status == 200 and [r["name"] for r in data["results"]] == [p.name for p in chunk]
        for p, row in zip(chunk, data["results"]):
            _same_as_scan(row, ref[str(p)])


def test_heatmap_tiles_aggregate_to_the_score(server, files, tiny_detector):
    _, paths = files
    big = next(p for p in paths if p.name == "big.png")
    status, data = server.score([(big.name, big.read_bytes())], "?heatmap=1")
    row = data["results"][0]
    hm = row["heatmap"]
    assert status == 200 and len(hm["boxes"]) == len(hm["scores"]) == row["n_tiles"] > 1
    spec = json.loads((tiny_detector / "detector.json").read_text())
    assert spec["tile_aggregate"] == "max" and abs(max(hm["scores"]) - row["score"]) <= 1e-6
    for x, y, w, h in hm["boxes"]:                                   # boxes lie on the image
        assert 0 <= x and 0 <= y and x + w <= row["width"] + 1e-6 and y + h <= row["height"] + 1e-6
    assert "heatmap" not in server.score([(big.name, big.read_bytes())])[1]["results"][0]


@pytest.mark.parametrize("kind", [k for k, v in IMAGE_KINDS.items() if v[1] is not None])
def test_every_upload_of_the_reliability_corpus(server, kind):
    name, build, label, what = IMAGE_KINDS[kind]
    status, data = server.score([(name, build())])
    if label == OK:
        assert status == 200, data
        row = data["results"][0]
        assert row["label"] in ("real", "fake") and (row["width"], row["height"]) == what, (kind, row)
    else:
        assert 400 <= status < 500 and what in data["error"], (kind, status, data)
        assert data["results"][0]["label"] == "error" and what in data["results"][0]["error"]
    assert server.request("GET", "/healthz")[0] == 200                 # still serving


def test_bad_inputs_get_the_right_status_and_name_the_limit(server):
    status, data = server.score([("noise.png", os.urandom(2000))])
    assert status == 415 and data["limit"] == "format"
    status, data = server.score([("bomb.png", bomb_png())])
    assert status == 422 and data["limit"] == "max_pixels" and "max_pixels=4000000" in data["error"]
    big = png_bytes(Image.new("L", (2100, 2000), 3))                    # 4.2 Mpx, a small file
    assert server.score([("many.png", big)])[1]["limit"] == "max_pixels"
    status, data = server.score([(f"{i}.png", png_bytes(Image.new("L", (8, 8), i))) for i in range(7)])
    assert status == 413 and data["limit"] == "max_images" and "max_images=6" in data["error"]
    status, data = server.score([("huge.bin", os.urandom(600 * 1024))])
    assert status == 413 and data["limit"] == "max_image_bytes"
    status, data, _ = server.request("POST", "/v1/score", b"x=1", {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and data["limit"] == "content_type"
    body, ctype = multipart([("a.png", b"")])
    status, data, _ = server.request("POST", "/v1/score", body[:-10], {"Content-Type": ctype})
    assert status == 400 and "multipart" in data["error"]
    # one bad image among good ones: 200, the bad one's own row says why
    status, data = server.score([("ok.png", png_bytes(Image.new("L", (28, 28), 9))), ("cut.png", b"\x89PNG\r\n")])
    assert status == 200 and [r["label"] for r in data["results"]][1] == "error"
    assert data["results"][1]["status"] in (415, 422) and data["results"][0]["label"] in ("real", "fake")


def _response(sock: socket.socket) -> str:
    """Read one HTTP response (headers + Content-Length body) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < int(
            dict(line.split(b": ", 1) for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:])
            .get(b"content-length", b"0")):
        more = sock.recv(65536)
        assert more, data
        data += more
    return data.decode("utf-8", "replace")


def test_oversized_upload_refused_before_it_is_read(server):
    # announced: a 10 GB Content-Length is answered after a few bytes of body
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                  + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 10000000000\r\n\r\n--b\r\n")
        head = _response(s)
    assert head.startswith("HTTP/1.1 413") and "max_request_bytes" in head
    # not announced (chunked): counted as it streams, refused once past the limit (1 MiB)
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                  + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n" + b"\0" * 60_000  # not a file part
        sent = 0
        while not select.select([s], [], [], 0.05)[0]:
            assert sent < 50, "server never answered a body 3 MB past its 1 MiB limit"
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += 1
            chunk = b"\0" * 64 * 1024
        head = _response(s)
    assert head.startswith("HTTP/1.1 413") and "max_request_bytes" in head
    assert server.request("GET", "/healthz")[0] == 200


def test_token_required_and_compared(server):
    body, ctype = multipart([("a.png", png_bytes(Image.new("L", (28, 28), 1)))])
    for h in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
              {"Authorization": f"Bearer {TOKEN}x"}):
        status, data, hdrs = server.request("POST", "/v1/score", body, {"Content-Type": ctype, **h}, auth=False)
        assert status == 401 and data["limit"] == "token" and hdrs["www-authenticate"] == "Bearer"
    for path in ("/v1/detector", "/metrics"):
        assert server.request("GET", path, auth=False)[0] == 401
    assert server.request("POST", "/v1/score", body, {"Content-Type": ctype})[0] == 200
    for path in ("/healthz", "/readyz", "/", "/static/app.js", "/v1/openapi.json"):
        assert server.request("GET", path, auth=False)[0] == 200, path


def test_allow_dir_cannot_be_escaped(server, fs_corpus):
    allowed, outside, _ = fs_corpus
    for p in ("../outside/secret.png", "sub/../../outside/secret.png", str(outside / "secret.png"),
              "to-outside.png", "outdir/secret.png", str(allowed / "outdir" / "secret.png"), "/etc/passwd"):
        status, data = server.score_paths([p])
        assert status == 403 and data["limit"] == "allow_dir", (p, data)
    for p in ("good.png", "sub/inner.png", "sub/../good.png", str(allowed / "good.png"), "to-inside.png"):
        status, data = server.score_paths([p])
        assert status == 200 and data["results"][0]["label"] in ("real", "fake"), (p, data)


@pytest.mark.parametrize("name,what", [
    ("loop.png", "symbolic link loop"), ("dangling.png", "dangling symbolic link"), ("pipe.png", "not a regular file"),
    ("album.jpg", "is a directory"), ("denied.png", "permission denied"), ("deleted.png", "file not found")])
def test_file_system_corpus_through_allowed_folder(server, name, what):
    status, data = server.score_paths([name])
    assert 400 <= status < 500 and what in data["error"], (name, status, data)
    assert server.request("GET", "/healthz")[0] == 200


def test_scores_by_path_equal_scan(server, fs_corpus, tiny_detector, tmp_path):
    allowed, _, _ = fs_corpus
    ref = _scan_rows(tiny_detector, [allowed / "good.png", allowed / "sub" / "inner.png"], tmp_path)
    status, data = server.score_paths(["good.png", "sub/inner.png"])
    assert status == 200
    for p, row in zip(("good.png", "sub/inner.png"), data["results"]):
        _same_as_scan(row, ref[str(allowed / p)])


def test_card_openapi_metrics_and_log(server, tiny_detector):
    spec = json.loads((tiny_detector / "detector.json").read_text())
    status, card, _ = server.request("GET", "/v1/detector")
    assert status == 200 and card["threshold"] == spec["threshold"] and card["architecture"] == spec["architecture"]
    assert card["limits"]["max_images"] == 6 and len(card["sha256"]["model.safetensors"]) == 64
    status, doc, _ = server.request("GET", "/v1/openapi.json")
    assert doc["openapi"].startswith("3.") and {"/v1/score", "/v1/score-path", "/v1/detector"} <= set(doc["paths"])
    server.score([("m.png", png_bytes(Image.new("L", (28, 28), 3)))])
    status, text, hdrs = server.request("GET", "/metrics")
    assert status == 200 and hdrs["content-type"].startswith("text/plain")
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert int(lines['unmask_requests_total{route="/v1/score",status="200"}']) >= 1
    assert sum(int(v) for k, v in lines.items() if k.startswith("unmask_images_total")) >= 1
    assert int(lines['unmask_request_seconds_bucket{le="+Inf"}']) == int(lines["unmask_request_seconds_count"]) >= 1
    assert int(lines["unmask_batches_total"]) >= 1
    log = server.log_text()
    assert "unmask serve: http://127.0.0.1:" in log and "max_images=6" in log
    assert any(" POST /v1/score 200 images=1 " in line for line in log.splitlines())
    assert TOKEN not in log


def test_sigterm_lets_in_flight_requests_finish_cors_off_by_default(tiny_detector, tmp_path):
    img = png_bytes(Image.new("L", (28, 28), 50))
    body, ctype = multipart([("late.png", img)])
    with ServerProc(tiny_detector, "--time-limit", "60", log=tmp_path / "s.log") as s:
        status, _, hdrs = s.request("GET", "/v1/detector", headers={"Origin": "http://evil.example"})
        assert status == 200 and not any(k.startswith("access-control-") for k in hdrs)
        with socket.create_connection(("127.0.0.1", s.port)) as c:
            c.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype.encode()
                      + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:100])
            assert s.request("GET", "/healthz")[0] == 200   # the request is in flight (body half sent)
            s.proc.send_signal(signal.SIGTERM)
            c.sendall(body[100:])
            reply = _response(c)
        assert reply.startswith("HTTP/1.1 200") and '"late.png"' in reply
        assert s.proc.wait(60) == 0
    assert "unmask serve: stopped" in s.log_text()


def test_cors_when_asked_memory_bound_and_slow_upload_does_not_stall_others(tiny_detector, tmp_path):
    with ServerProc(tiny_detector, "--cors-origin", "http://app.example", "--time-limit", "3",
                    "--max-inflight-mb", "0.05", log=tmp_path / "s.log") as s:
        status, data = s.score([("big.png", os.urandom(100_000))])   # all uploads together: at most 50 kB
        assert status == 503 and data["limit"] == "max_inflight_bytes"
        status, _, hdrs = s.request("GET", "/healthz", headers={"Origin": "http://app.example"})
        assert hdrs.get("access-control-allow-origin") == "http://app.example"
        body, ctype = multipart([("slow.png", png_bytes(Image.new("L", (28, 28), 8)))])
        with socket.create_connection(("127.0.0.1", s.port)) as slow:
            slow.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype.encode()
                         + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:50])
            status, data = s.score([("fast.png", png_bytes(Image.new("L", (28, 28), 9)))])
            assert status == 200 and data["results"][0]["label"] in ("real", "fake")
            head = _response(slow)   # the stalled upload hits the per-request time limit
        assert head.startswith("HTTP/1.1 408") and "time_limit_s" in head


def test_binding_off_loopback_needs_a_token(tiny_detector):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "unmask", "serve", "--detector", str(tiny_detector), "--host",
                          "0.0.0.0", "--port", "1"], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--token" in res.stderr and "--insecure-no-token" in res.stderr


def test_micro_batcher_scores_requests_arriving_together_in_one_pass(tiny_detector):
    """In-process: five requests queued in the same event-loop turn share one forward pass; the input
    bound splits a bigger crowd; each request gets its own rows back, equal to scoring it alone."""
    import asyncio

    from unmask.serve import engine
    from unmask.serve.batching import MicroBatcher

    det = detector.load(tiny_detector)
    imgs = [torch.rand(1, 28 + 9 * i, 28, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    items = [engine.prepare(det, im) for im in imgs]                  # 1 to 4 tiles each
    batches: list[int] = []

    def score(its):
        batches.append(len(its))
        return engine.score_prepared(det, its)

    async def go(max_inputs: int, n: int):
        b = MicroBatcher(score, max_inputs=max_inputs, wait_s=30.0)  # a long wait: only the bound ends it
        await b.start()
        try:
            return await asyncio.gather(*(b.score([it]) for it in items[:n]))
        finally:
            await b.stop()

    rows = asyncio.run(go(2048, 5))
    assert batches == [5]
    alone = [engine.score_prepared(det, [it])[0] for it in items]
    assert [r[0].score for r in rows] == [a.score for a in alone[:5]]
    batches.clear()
    asyncio.run(go(4, 8))                                            # 20 inputs, about 4 per pass
    assert sum(batches) == 8 and len(batches) > 1, batches
