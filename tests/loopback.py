"""A throw-away HTTP server on 127.0.0.1 for download tests (nothing leaves the machine)."""
import contextlib
import functools
import http.server
import socket
import threading
from pathlib import Path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


def serve(folder: Path):
    """Serve `folder` on 127.0.0.1 at a free port; yields the base URL."""
    return serve_with(functools.partial(_QuietHandler, directory=str(folder)))


@contextlib.contextmanager
def serve_with(handler):
    """Serve with a request handler class of the test's own (e.g. one that drops the connection)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url(name: str) -> str:
    """A URL on a port nobody listens to: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"
