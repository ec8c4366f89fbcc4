"""Who sent a correction: a named client with a token, or an anonymous address.

The operator may give the service a tokens file (``--feedback-tokens``): one
client a line, ``<sha256 of the token, hex> <name>``, ``#`` comments. It holds
hashes only, so the file leaks no token; ``python -m serving.clients`` prints
the line for a token read from standard input. A request with
``Authorization: Bearer <token>`` whose hash is listed is that client; a token
that is not listed is a 401. Without a token the client is
``anonymous:<address>``, the socket's peer; ``X-Forwarded-For`` is believed only
when that peer is a proxy the operator lists (``--trusted-proxy``), and then
its last address not itself a trusted proxy is the client.

``--feedback token`` refuses anonymous corrections (401); ``open`` (the
default) takes them. For a public page, use ``token``, or keep ``open`` and
rely on intake's label score and per-client shares (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mnistflow.errors import MnistflowError

from .inbox import Refused

MAX_TOKENS_FILE_BYTES = 1 * 2**20


@dataclass(frozen=True)
class FeedbackAccess:
    mode: str = "open"  # open: anonymous corrections taken; token: only named clients'
    tokens: dict[str, str] = field(default_factory=dict)  # sha256 hex of a token -> the client's name
    trusted_proxies: tuple[str, ...] = ()

    def client(self, authorization: str | None, peer: str | None, forwarded_for: str | None) -> str:
        """The client's name for a request, or ``Refused`` (401)."""
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Refused(401, "Authorization: use 'Bearer <token>'")
            digest = hashlib.sha256(token.strip().encode()).hexdigest()
            for known, name in self.tokens.items():
                if hmac.compare_digest(known, digest):
                    return name
            raise Refused(401, "Authorization: this token is not one the service knows")
        if self.mode == "token":
            raise Refused(401, "this service takes corrections from clients with a token only "
                               "(Authorization: Bearer <token>)")
        return f"anonymous:{self.address(peer, forwarded_for)}"

    def address(self, peer: str | None, forwarded_for: str | None) -> str:
        address = peer or "unknown"
        if not forwarded_for or not self._trusted(address):
            return address
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            if not self._trusted(hop):
                return hop
        return address

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(proxy, strict=False) for proxy in self.trusted_proxies)


def read_tokens(path: Path) -> dict[str, str]:
    """A tokens file's hashes and names; a bad line is one error naming the file and line."""
    try:
        if path.stat().st_size > MAX_TOKENS_FILE_BYTES:
            raise MnistflowError(f"--feedback-tokens: {path}: larger than {MAX_TOKENS_FILE_BYTES:,} bytes")
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise MnistflowError(f"--feedback-tokens: {path}: cannot read it ({exc})") from None
    tokens: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        digest, _, name = line.partition(" ")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not name.strip():
            raise MnistflowError(f"--feedback-tokens: {path} line {number}: expected '<sha256 hex of the token> "
                                 "<client name>'")
        tokens[digest] = name.strip()
    return tokens


def check_proxies(proxies: list[str]) -> tuple[str, ...]:
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise MnistflowError(f"--trusted-proxy: {proxy!r} is not an IP address or network") from None
    return tuple(proxies)


def main() -> None:
    """Print the tokens-file line for a token (read from standard input) and a client name (the argument)."""
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m serving.clients NAME < token-file   (prints the tokens-file line)")
    token = sys.stdin.read().strip()
    if not token:
        raise SystemExit("no token on standard input")
    print(f"{hashlib.sha256(token.encode()).hexdigest()} {sys.argv[1]}")


if __name__ == "__main__":
    main()
