"""Whether the Hugging Face Hub can be reached from here, asked through the hub client's own HTTP session (so
HTTPS_PROXY, NO_PROXY, HF_ENDPOINT and HF_HUB_OFFLINE count as they do for every download)."""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)

PROBE_PATH = "/api/models/google/vit-base-patch16-224"


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout_s: float = 3.0) -> bool:
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.HF_HUB_OFFLINE:
        log.info("HF_HUB_OFFLINE is set: building from local sources")
        return False
    url = constants.ENDPOINT.rstrip("/") + PROBE_PATH
    try:
        response = get_session().head(url, timeout=timeout_s, allow_redirects=True)
    except Exception as exc:  # noqa: BLE001 - any failure to get an answer means: offline
        log.info("the Hugging Face Hub at %s gave no answer within %g s (%s): building from local sources",
                 constants.ENDPOINT, timeout_s, type(exc).__name__)
        return False
    if response.status_code >= 500:
        log.info("the Hugging Face Hub at %s answered %d: building from local sources", constants.ENDPOINT,
                 response.status_code)
        return False
    return True
