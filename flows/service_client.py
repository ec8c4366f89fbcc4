"""Reading the running service from a flow (the drift window, the shadow's statistics):
within a byte bound, and with "nothing listens there" as an answer rather than an error,
so that a scheduled run with no service to watch is skipped, not failed."""

from __future__ import annotations

from mnistflow.errors import MnistflowError


def get_from_service(service_url: str, path: str, max_bytes: int) -> bytes | str:
    """The body of ``GET service_url + path``; or, when nothing listens there, the line that says so."""
    import httpx

    url = f"{service_url.rstrip('/')}{path}"
    try:
        with httpx.stream("GET", url, timeout=30) as response:
            if response.status_code != 200:
                raise MnistflowError(f"service_url: {url} answered {response.status_code}: "
                                     f"{response.read()[:200].decode(errors='replace')}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise MnistflowError(f"service_url: {url}: the answer is over {max_bytes:,} bytes; refused")
    except httpx.ConnectError as exc:
        return (f"no service answers at {service_url} ({exc}): nothing to watch; start one (`make serve`) "
                "or give service_url")
    except httpx.HTTPError as exc:
        raise MnistflowError(f"service_url: {url}: {exc}") from None
    return bytes(body)
