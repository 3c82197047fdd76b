"""Is the Hugging Face hub reachable? Asked once, quickly, before any hub download.

`huggingface_hub` retries an unreachable host for about 25 seconds before giving up, and has no
public "am I online" check; one TCP connection with a short timeout answers in a moment, so
offline users get the offline fallback or a clear error at once.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """False when offline mode is set (`HF_HUB_OFFLINE`) or the hub's host does not answer."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True
