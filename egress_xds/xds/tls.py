"""TLS for the xDS port: server credentials whose certificate, key and client CA are re-read when their files change.

gRPC asks a certificate-configuration fetcher at every new handshake; the fetcher here compares the files' stat
(inode, size, mtime) with what it loaded last, and only when one changed reads them again. A new pair is used only
if it is consistent (the key matches the certificate, checked with the standard library's `ssl`) and the files did
not change while being read; otherwise the last good configuration stays and a warning says why. Connections that
are already open keep their session: rotation never drops a stream.
"""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger("egress_xds.xds.tls")


@dataclass(frozen=True)
class ServerTls:
    """`serve --tls-cert --tls-key [--client-ca]`."""

    cert: Path
    key: Path
    client_ca: Path | None = None  # with it, every client must present a certificate that chains to it

    @property
    def verifies_clients(self) -> bool:
        return self.client_ca is not None


class TlsFilesError(Exception):
    """The certificate files cannot be used (missing, unreadable, key not matching): one line, no secret."""


_Stamp = tuple[tuple[int, int, int, int], ...]


@dataclass(frozen=True)
class _Loaded:
    stamp: _Stamp
    cert: bytes
    key: bytes
    client_ca: bytes | None


class ReloadingCertificates:
    """The certificate configuration of a `ServerTls`, re-read when its files change (see the module doc)."""

    def __init__(self, tls: ServerTls) -> None:
        self.tls = tls
        self._loaded = self._load()  # raises TlsFilesError: the server does not start on unusable files
        self._failed: _Stamp | None = None  # the files' stamp when they last could not be used
        self.reloads = 0

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return _configuration(self._loaded)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's fetcher: a new configuration if the files changed (and are usable), else None (keep the last)."""
        try:
            stamp = self._stamp()
            if stamp in (self._loaded.stamp, self._failed):
                return None  # unchanged, or the same unusable state already reported (once, not per handshake)
            loaded = self._load()
        except TlsFilesError as error:
            self._failed = _failed_stamp(self._paths())
            log.warning("TLS files changed but cannot be used, keeping the previous certificate: %s", error)
            return None
        except Exception as error:  # never let a fetcher failure reach gRPC's core (it would fail the handshake)
            log.warning("TLS files changed but cannot be read (%s), keeping the previous certificate", error)
            return None
        if (loaded.cert, loaded.key, loaded.client_ca) == (self._loaded.cert, self._loaded.key, self._loaded.client_ca):
            self._loaded = loaded  # touched, same content
            return None
        self._loaded = loaded
        self.reloads += 1
        log.info("TLS certificate files changed: new handshakes use the new certificate (%s)", self.tls.cert)
        return _configuration(loaded)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self.configuration(), self.fetch, require_client_authentication=self.tls.verifies_clients
        )

    def _paths(self) -> tuple[Path, ...]:
        return (self.tls.cert, self.tls.key) + ((self.tls.client_ca,) if self.tls.client_ca else ())

    def _stamp(self) -> _Stamp:
        return _stamp_of(self._paths())

    def _load(self) -> _Loaded:
        before = self._stamp()
        cert, key = _read(self.tls.cert), _read(self.tls.key)
        client_ca = _read(self.tls.client_ca) if self.tls.client_ca is not None else None
        _check_pair(self.tls.cert, self.tls.key)
        if client_ca is not None:
            _check_ca(self.tls.client_ca, client_ca)
        if self._stamp() != before:
            raise TlsFilesError("the files changed while being read; trying again at the next connection")
        return _Loaded(before, cert, key, client_ca)


def _failed_stamp(paths: tuple[Path, ...]) -> _Stamp | None:
    """The stamp of files that could not be used (None when one is missing: then it is checked again)."""
    try:
        return _stamp_of(paths)
    except TlsFilesError:
        return None


def _stamp_of(paths: tuple[Path, ...]) -> _Stamp:
    stamps = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError as error:
            raise TlsFilesError(f"{path}: {(error.strerror or str(error)).lower()}") from None
        stamps.append((info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
    return tuple(stamps)


def _configuration(loaded: _Loaded) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(loaded.key, loaded.cert)], root_certificates=loaded.client_ca)


def _read(path: Path | None) -> bytes:
    assert path is not None
    try:
        return path.read_bytes()
    except OSError as error:
        raise TlsFilesError(f"{path}: {(error.strerror or str(error)).lower()}") from None


_NOT_A_PAIR = "not a PEM certificate and its unencrypted private key"


def _check_pair(cert: Path, key: Path) -> None:
    """The key belongs to the certificate (a rotation caught between writing the two files fails here)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_password)  # an encrypted key fails, never prompts
    except ssl.SSLError as error:
        reason = error.reason.lower().replace("_", " ") if error.reason else _NOT_A_PAIR
        raise TlsFilesError(f"{cert} / {key}: {reason}") from None
    except OSError as error:
        raise TlsFilesError(f"{cert} / {key}: {(error.strerror or str(error)).lower()}") from None


def _check_ca(path: Path | None, data: bytes) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=data.decode("ascii", errors="replace"))
    except (ssl.SSLError, ValueError):
        raise TlsFilesError(f"{path}: no PEM CA certificate in it") from None


def _no_password() -> bytes:
    """gRPC cannot use an encrypted key; without a callback OpenSSL would prompt on the terminal."""
    return b""
