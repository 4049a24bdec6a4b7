"""An http.server served from a thread for the duration of a test."""

from __future__ import annotations

import threading
from contextlib import contextmanager


@contextmanager
def serving_in_thread(server):
    """Serve `server` (an http.server bound on 127.0.0.1) from a daemon thread and yield its base URL
    `http://127.0.0.1:PORT`; always shut down and closed."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
