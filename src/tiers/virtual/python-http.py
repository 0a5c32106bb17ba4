"""HTTP for the virtual tier's Python, through Kiln's egress policy.

The WASM interpreter has no sockets. ``urllib.request`` (``urlopen`` and any
opener ``build_opener`` makes) sends each request to the host instead: the
request is written to the device /dev/kiln-http, and the read that follows
blocks until the host has answered it through the sandbox's egress path,
the same one the virtual tier's ``curl`` uses: the policy, secrets put in on
the host, the bandwidth cap and the audit log.

Wire format, both ways: 16 bytes of decimal length (space-padded), that many
bytes of JSON, then the body (its length is in the JSON).

Redirects are urllib's own, so each hop comes back here and is checked. A
request the policy refuses gets a 403 whose body and ``X-Kiln-Rule`` header
name the rule, as on the real tiers; a failure to connect is a ``URLError``.
"""
import http.client
import io
import json
import os
import urllib.error
import urllib.response

_DEVICE = "/dev/kiln-http"


def _read_exact(fd, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise urllib.error.URLError("Kiln: the host ended the answer early")
        buf += chunk
    return bytes(buf)


def _body_of(data):
    if data is None:
        return b""
    if isinstance(data, str):
        return data.encode("iso-8859-1")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if hasattr(data, "read"):
        return _body_of(data.read())
    return b"".join(_body_of(part) for part in data)


def _exchange(req):
    body = _body_of(req.data)
    timeout = getattr(req, "timeout", None)
    head = json.dumps({
        "method": req.get_method(),
        "url": req.full_url,
        "headers": req.header_items(),
        "timeoutMs": int(timeout * 1000) if isinstance(timeout, (int, float)) else None,
        "bodyLength": len(body),
    }).encode()
    fd = os.open(_DEVICE, os.O_RDWR)
    try:
        os.write(fd, b"%16d" % len(head) + head + body)
        answer = json.loads(_read_exact(fd, int(_read_exact(fd, 16))))
        content = _read_exact(fd, answer.get("bodyLength", 0))
    finally:
        os.close(fd)
    return answer, content


def _open(req):
    answer, content = _exchange(req)
    if "error" in answer:
        raise urllib.error.URLError(answer["error"])
    msg = http.client.HTTPMessage()
    for name, value in answer["headers"]:
        msg[name] = value
    resp = urllib.response.addinfourl(io.BytesIO(content), msg, answer.get("url", req.full_url), answer["status"])
    resp.msg = answer.get("reason", "")
    return resp


def install(request):
    """Makes every opener of ``request`` (the ``urllib.request`` module, just loaded) use the host.

    ``build_opener()`` and ``urlopen()`` look these names up when called.
    """

    class KilnHTTPHandler(request.HTTPHandler):
        """Opens http:// and https:// URLs through the host's egress path."""

        handler_order = 100  # before any handler that would try a socket

        def http_open(self, req):
            return _open(req)

        https_open = http_open
        https_request = request.AbstractHTTPHandler.do_request_

    class KilnHTTPSHandler(KilnHTTPHandler):
        """The same where an opener adds an HTTPS handler.

        Certificates are verified on the host (the system's roots and the
        server owner's): a ``context`` given here has nothing to do.
        """

        def __init__(self, debuglevel=None, context=None, check_hostname=None):
            super().__init__(debuglevel)

    request.HTTPHandler = KilnHTTPHandler
    request.HTTPSHandler = KilnHTTPSHandler
