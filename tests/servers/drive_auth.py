"""The emulator's token endpoint and discovery document.

The token endpoint implements the two grants oauth2client uses: the service-account JWT bearer
grant (the assertion's RS256 signature is checked against the key registered for its ``iss``, so
a key file with the wrong key is refused as Google would) and the refresh-token grant.
"""

from __future__ import annotations

import base64
import json
import uuid
from importlib import resources
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.servers.drive_state import DriveState

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_valid(state: DriveState, assertion: str) -> bool:
    try:
        head, payload, sig = assertion.split(".")
        key = state.public_keys.get(json.loads(_b64(payload)).get("iss", ""))
        if key is None:
            return False
        key.verify(_b64(sig), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return True
    except Exception:  # any malformed or badly signed assertion is simply refused
        return False


def token_reply(state: DriveState, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    grant = form.get("grant_type", "")
    if grant == JWT_BEARER:
        ok = jwt_valid(state, form.get("assertion", ""))
    elif grant == "refresh_token":
        ok = form.get("refresh_token") in state.refresh_tokens
    else:
        ok = False
    if not ok:
        return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    token = "ya29.emu-" + uuid.uuid4().hex
    with state.lock:
        state.tokens.add(token)
    return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}


def discovery_document(root_url: str) -> dict[str, Any]:
    """The Drive v2 discovery document shipped with google-api-python-client, pointed at
    ``root_url``, for clients that build from a discovery URL."""
    doc = json.loads(
        resources.files("googleapiclient")
        .joinpath("discovery_cache/documents/drive.v2.json")
        .read_text(encoding="utf-8")
    )
    doc["rootUrl"] = root_url
    doc["baseUrl"] = root_url + doc["servicePath"]
    return doc
