"""Encryption at rest for secrets (SSH keys, passwords, registry credentials, tokens).

Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`, wrapped in MultiFernet so keys can be
rotated: the first key encrypts, every key decrypts. Keys come from SPECTR_ENCRYPTION_KEYS
(comma separated) or from `<instance>/encryption.key`, created 0600 on first start.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from sqlalchemy.types import String, TypeDecorator


class SecretBox:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured keys") from exc


def load_secret_box(instance_path: str, configured: str | None) -> SecretBox:
    """Build the SecretBox from configured keys or the instance key file."""
    if configured:
        return SecretBox([key.strip().encode() for key in configured.split(",") if key.strip()])
    key_file = Path(instance_path) / "encryption.key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
    return SecretBox([key_file.read_bytes().strip()])


def secret_box() -> SecretBox:
    """Return the app's SecretBox."""
    return current_app.extensions["spectr_secret_box"]


FERNET_OVERHEAD = 57


class EncryptedText(TypeDecorator):
    """A column that stores text encrypted with the app's SecretBox."""

    impl = String
    cache_ok = True

    def plaintext_limit(self) -> int:
        """The longest plaintext (in bytes) whose Fernet token fits the column."""
        if self.impl_instance.length is None:
            return 2**31
        # token: base64 of 57 bytes (version, time, IV, HMAC) + plaintext padded to 16 + 1
        raw = self.impl_instance.length // 4 * 3 - FERNET_OVERHEAD
        return raw // 16 * 16 - 1

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        return None if value is None else secret_box().encrypt(value)

    def process_result_value(self, value: str | None, dialect: object) -> str | None:
        return None if value is None else secret_box().decrypt(value)
