"""Simplestreams over HTTP: read a remote's index and products files, and download an image's
files into a cache directory, verified, with progress and resume.

Imports lxmgr.images.simplestreams, lxmgr.images.remotes (the recipe names an unreachable
server's message offers instead), lxmgr.model.remote, lxmgr.errors; aiohttp as the client.
A server that cannot be connected to (DNS, refused, connect timeout) is ServerUnreachable:
one line naming the remote and host and what works without it. No error message carries a
Python repr. Must not import the image store or the importer (lxmgr.images.lxdformat unpacks what
fetch_image returns). Contract of the cache: cache_dir/<fingerprint>/<name> holds only files
whose sha256 was verified; downloads in progress are '<name>.part' beside them and are resumed
with an HTTP Range request (by a retry after a dropped connection, or by the next call). A file
that fails its checksum, exceeds its announced size or breaks the combined fingerprint is
hostile or corrupt: the whole cache_dir/<fingerprint> is removed. Every request has timeouts.
Two concurrent calls for the same image must be serialized by the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from lxmgr.errors import InvalidConfig, LxmgrError, NotFound
from lxmgr.images.remotes import recipe_names
from lxmgr.images.simplestreams import (
    ROOTFS_TYPES,
    StreamFile,
    StreamImage,
    assign_aliases,
    default_os_for,
    parse_index,
    parse_product_candidates,
)
from lxmgr.model.remote import unreachable_message, validate_remote_url

log = logging.getLogger(__name__)

INDEX_PATH = "streams/v1/index.json"
MAX_INDEX_BYTES = 4 * 1024**2
MAX_PRODUCTS_BYTES = 64 * 1024**2  # cloud-images' releases download.json is ~10 MiB
CHUNK = 256 * 1024
FLUSH_BYTES = 1024**2  # write and hash in a thread once this much is buffered
PROGRESS_INTERVAL = 0.2
RETRIES = 3
RETRY_DELAY = 0.5
JSON_TIMEOUT = aiohttp.ClientTimeout(total=120, connect=30, sock_read=60)
FILE_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30, sock_read=60)
# Local names in the cache, by ftype (server names like ubuntu-24.04-...-lxd.tar.xz vary).
LOCAL_NAMES = {"lxd.tar.xz": "lxd.tar.xz", "squashfs": "rootfs.squashfs",
               "root.tar.xz": "root.tar.xz", "lxd_combined.tar.gz": "lxd_combined.tar.gz"}
_NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)
_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")


class ServerUnreachable(LxmgrError):
    """The image server could not be connected to; the message says what works without it."""

    status = 503

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(unreachable_message(url, reason, recipe_names()))
        self.url, self.reason = url, reason


@dataclass(frozen=True)
class DownloadProgress:
    """Progress of one file: stage is 'metadata' or 'rootfs'; rate in bytes per second."""

    stage: str
    done: int
    total: int
    rate: float

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def text(self) -> str:
        """As LXD prints it: 'rootfs: 45% (12.34MB/s)'."""
        return f"{self.stage}: {int(self.fraction * 100)}% ({format_rate(self.rate)})"


ProgressCallback = Callable[[DownloadProgress], None]


def format_rate(rate: float) -> str:
    """Bytes per second in LXD's units (decimal, two decimals): '12.34MB/s'."""
    for unit in ("B", "kB", "MB", "GB"):
        if rate < 1000 or unit == "GB":
            return f"{rate:.2f}{unit}/s" if unit != "B" else f"{int(rate)}B/s"
        rate /= 1000
    raise AssertionError("unreachable")


def image_cache_dir(cache_dir: Path, fingerprint: str) -> Path:
    """Where fetch_image puts an image's files."""
    return cache_dir / fingerprint


async def fetch_products(remote_url: str, session: aiohttp.ClientSession | None = None, *,
                         rootfs_preference: tuple[str, ...] = ROOTFS_TYPES
                         ) -> list[StreamImage]:
    """Every container image a simplestreams remote offers (index.json, then each products
    file with image downloads), aliases assigned across all of them."""
    validate_remote_url(remote_url)
    base = remote_url.rstrip("/")
    async with _session(session) as s:
        index = await _get_json(s, base, INDEX_PATH, MAX_INDEX_BYTES)
        found = []
        for path in parse_index(index):
            data = await _get_json(s, base, path, MAX_PRODUCTS_BYTES)
            found += await asyncio.to_thread(
                parse_product_candidates, data, default_os=default_os_for(base),
                rootfs_preference=rootfs_preference)
    return assign_aliases(found)


async def fetch_image(remote_url: str, image: StreamImage, cache_dir: Path, *,
                      progress: ProgressCallback | None = None,
                      session: aiohttp.ClientSession | None = None,
                      retries: int = RETRIES) -> list[Path]:
    """Download (or find cached) the image's files, metadata first, into
    cache_dir/<fingerprint>/; returns their paths in that order, ready for import_image."""
    validate_remote_url(remote_url)
    if not _FINGERPRINT_RE.match(image.fingerprint):
        raise InvalidConfig(f"Invalid image fingerprint '{image.fingerprint[:80]}'")
    base = remote_url.rstrip("/")
    target_dir = image_cache_dir(cache_dir, image.fingerprint)
    target_dir.mkdir(parents=True, exist_ok=True)
    combined: Any = hashlib.sha256()  # sha256 over all files in order: LXD's fingerprint
    paths = []
    try:
        async with _session(session) as s:
            for file, stage in zip(image.files, _stages(image), strict=True):
                target = target_dir / LOCAL_NAMES[file.ftype]
                job = _FileJob(s, base, file, target, stage, combined, progress, retries)
                paths.append(await job.run())
                combined = job.running
        _check_fingerprint(image, combined)
    except (InvalidConfig, NotFound):  # bad data, or the image is gone: nothing to resume
        await asyncio.to_thread(shutil.rmtree, target_dir, True)
        raise
    return paths


def _stages(image: StreamImage) -> list[str]:
    return ["metadata", "rootfs"] if len(image.files) > 1 else ["rootfs"]


def _check_fingerprint(image: StreamImage, combined: Any) -> None:
    got = combined.hexdigest()
    if got != image.fingerprint:
        raise InvalidConfig(f"Fingerprint mismatch for image '{image.product}': the server "
                            f"announced {image.fingerprint}, its files hash to {got}")


class _FileJob:
    """One file into target: reuse a verified copy, else resume target.part, retrying after
    network errors. `running` ends as combined_before fed with this file's bytes."""

    def __init__(self, session: aiohttp.ClientSession, base: str, file: StreamFile,
                 target: Path, stage: str, combined_before: Any,
                 progress: ProgressCallback | None, retries: int) -> None:
        self.session, self.server, self.file, self.target = session, base, file, target
        self.url = f"{base}/{file.path}"
        self.part = target.with_name(target.name + ".part")
        self.stage, self.progress, self.retries = stage, progress, retries
        self.base = combined_before.copy()
        self.running = combined_before.copy()
        self.hasher: Any = hashlib.sha256()
        self.offset = 0
        self.started = time.monotonic()
        self.fresh = 0  # bytes received by this call, for the rate
        self.last_report = 0.0

    async def run(self) -> Path:
        if await asyncio.to_thread(self._reuse_cached):
            self._report(force=True)
            return self.target
        await asyncio.to_thread(self._load_part)
        failures = 0
        while self.offset < self.file.size:
            before = self.offset
            try:
                await self._request()
            except _NETWORK_ERRORS as err:
                failures = 0 if self.offset > before else failures + 1
                if failures >= self.retries:
                    raise _failure(self.server, f"Failed to download '{self.url}'", err) \
                        from err
                log.info("Download of %s interrupted at %d bytes (%s), resuming", self.url,
                         self.offset, _describe(err))
                await asyncio.sleep(RETRY_DELAY * failures)
        await asyncio.to_thread(self._finish)
        self._report(force=True)
        return self.target

    def _reuse_cached(self) -> bool:
        """A complete file from an earlier call, re-hashed; removed if it went bad."""
        try:
            if self.target.stat().st_size == self.file.size:
                digest, running = self._hash_file(self.target)
                if digest.hexdigest() == self.file.sha256:
                    self.hasher, self.running = digest, running
                    self.offset = self.file.size
                    return True
            self.target.unlink()
        except FileNotFoundError:
            pass
        return False

    def _load_part(self) -> None:
        """Hash what an interrupted call left, to resume after it (or drop it if too big)."""
        try:
            size = self.part.stat().st_size
        except FileNotFoundError:
            return
        if size > self.file.size:
            self.part.unlink()
            return
        self.hasher, self.running = self._hash_file(self.part)
        self.offset = size

    def _hash_file(self, path: Path) -> tuple[Any, Any]:
        digest, running = hashlib.sha256(), self.base.copy()
        with open(path, "rb") as f:
            while block := f.read(FLUSH_BYTES):
                digest.update(block)
                running.update(block)
        return digest, running

    async def _request(self) -> None:
        headers = {"Range": f"bytes={self.offset}-"} if self.offset else {}
        async with self.session.get(self.url, headers=headers, timeout=FILE_TIMEOUT) as resp:
            self._accept(resp)
            buffer = bytearray()
            try:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    self._check_size(len(buffer) + len(chunk))
                    buffer += chunk
                    if len(buffer) >= FLUSH_BYTES:
                        await self._flush(buffer)
            except _NETWORK_ERRORS:
                await self._flush(buffer)  # keep what arrived: the retry resumes after it
                raise
            await self._flush(buffer)
        if self.offset < self.file.size:
            raise aiohttp.ClientPayloadError(f"Response ended at {self.offset} of "
                                             f"{self.file.size} bytes")

    def _accept(self, resp: aiohttp.ClientResponse) -> None:
        """Check the status; restart from zero when the server ignores or refuses the range."""
        m = _CONTENT_RANGE_RE.match(resp.headers.get("Content-Range", ""))
        if resp.status == 206 and self.offset and m and int(m.group(1)) == self.offset:
            self._check_size(resp.content_length or 0)
            return
        if resp.status in (200, 206, 416) and self.offset:
            self._restart()
            if resp.status != 200:
                raise aiohttp.ClientPayloadError(f"Server answered {resp.status} to a Range")
        elif resp.status == 404:
            raise NotFound(f"Failed to download '{self.url}': 404 Not Found")
        elif resp.status >= 500:  # a mirror having a moment: retried like a dropped link
            raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status,
                                              message=f"{resp.status} {resp.reason}")
        elif resp.status != 200:
            raise LxmgrError(f"Failed to download '{self.url}': {resp.status} {resp.reason}")
        self._check_size(resp.content_length or 0)

    def _restart(self) -> None:
        log.info("Server ignored the Range request for %s, restarting", self.url)
        self.part.unlink(missing_ok=True)
        self.hasher = hashlib.sha256()
        self.running = self.base.copy()
        self.offset = 0

    def _check_size(self, pending: int) -> None:
        if self.offset + pending > self.file.size:
            raise InvalidConfig(f"Refusing '{self.file.path}': the server sends more than the "
                                f"{self.file.size} bytes it announced")

    async def _flush(self, buffer: bytearray) -> None:
        if not buffer:
            return
        data = bytes(buffer)
        buffer.clear()
        await asyncio.to_thread(self._append, data)
        self.offset += len(data)
        self.fresh += len(data)
        self._report()

    def _append(self, data: bytes) -> None:
        with open(self.part, "ab") as f:
            f.write(data)
        self.hasher.update(data)
        self.running.update(data)

    def _finish(self) -> None:
        got = self.hasher.hexdigest()
        if got != self.file.sha256:
            raise InvalidConfig(f"Checksum mismatch for '{self.file.path}': expected "
                                f"{self.file.sha256}, got {got}")
        self.part.rename(self.target)

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress is None or (not force and now - self.last_report < PROGRESS_INTERVAL):
            return
        self.last_report = now
        rate = self.fresh / max(now - self.started, 1e-6)
        self.progress(DownloadProgress(self.stage, self.offset, self.file.size, rate))


def _describe(err: BaseException) -> str:
    """Why a request failed, in words: no reprs (aiohttp's own text for a refused connection
    ends in "[Connect call failed ('127.0.0.1', 9)]")."""
    if isinstance(err, aiohttp.ClientResponseError):
        return err.message
    if isinstance(err, aiohttp.ClientConnectorCertificateError):
        return f"certificate not trusted ({err.certificate_error.verify_message or 'TLS'})"
    if isinstance(err, aiohttp.ClientConnectorError):
        return _os_reason(err.os_error)
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, OSError):
        return _os_reason(err)
    return str(err) or type(err).__name__


def _os_reason(err: OSError) -> str:
    if isinstance(err, ssl.SSLError):
        return f"TLS error ({getattr(err, 'reason', None) or err.strerror or 'handshake failed'})"
    if isinstance(err.errno, int) and err.errno > 0:
        return os.strerror(err.errno)
    return err.strerror or str(err) or type(err).__name__


def _unreachable(err: BaseException) -> bool:
    """A failure to connect at all (name resolution, refused, no route, connect timeout),
    as opposed to a server that answered badly."""
    if isinstance(err, aiohttp.ClientSSLError):
        return False
    return isinstance(err, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def _failure(base: str, what: str, err: BaseException) -> LxmgrError:
    """The error for a request that failed on the network: ServerUnreachable, or what and
    why."""
    if _unreachable(err):
        return ServerUnreachable(base, _describe(err))
    return LxmgrError(f"{what}: {_describe(err)}")


@contextlib.asynccontextmanager
async def _session(session: aiohttp.ClientSession | None
                   ) -> AsyncIterator[aiohttp.ClientSession]:
    if session is not None:
        yield session
        return
    async with aiohttp.ClientSession(timeout=JSON_TIMEOUT) as own:
        yield own


async def _get_json(session: aiohttp.ClientSession, base: str, path: str, limit: int) -> Any:
    """GET base/path, a JSON document of at most limit bytes, parsed in a thread."""
    url = f"{base}/{path}"
    try:
        async with session.get(url, timeout=JSON_TIMEOUT) as resp:
            # Index and products are trusted only as far as TLS goes: no redirect to http://.
            validate_remote_url(str(resp.url.origin()))
            if resp.status == 404:
                raise NotFound(f"Failed to fetch '{url}': 404 Not Found")
            if resp.status != 200:
                raise LxmgrError(f"Failed to fetch '{url}': {resp.status} {resp.reason}")
            body = await _read_capped(resp, url, limit)
    except _NETWORK_ERRORS as err:
        raise _failure(base, f"Failed to fetch '{url}'", err) from err
    try:
        return await asyncio.to_thread(json.loads, body)
    except ValueError as err:
        raise InvalidConfig(f"Invalid simplestreams data: '{url}' is not JSON: {err}") from err


async def _read_capped(resp: aiohttp.ClientResponse, url: str, limit: int) -> bytes:
    if (resp.content_length or 0) > limit:
        raise InvalidConfig(f"Refusing '{url}': larger than {limit} bytes")
    body = bytearray()
    async for chunk in resp.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > limit:
            raise InvalidConfig(f"Refusing '{url}': larger than {limit} bytes")
    return bytes(body)
