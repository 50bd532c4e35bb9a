"""Keeping secrets out of what the agent, the server and the CLI print.

Two kinds of secret are masked, everywhere text leaves the process (log lines, tracebacks,
error messages, ``agent config show``):

- the password of any URL (``scheme://user:PASSWORD@host``) and secret-named query parameters
  (``?password=...``, ``&token=...``), recognised by their shape wherever they appear;
- the literal values of the configuration's secrets (``[api] key``, ``workload_api_key``,
  ``metrics_token``, backend settings named like a secret, ``[agent] env`` variables named like
  one, URL passwords), which a :class:`SecretMasker` replaces wherever they appear, even where
  nothing marks them as secret (a key echoed inside a message).

A mask shows nothing of the secret: :data:`MASK` whatever its length or first characters.

Standard library only: the CLI's cheap paths import it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote

MASK = "***"
SECRET_WORDS = ("key", "password", "passwd", "secret", "token", "credential")
#: Shorter literal values are not replaced in text: masking every "ab" would garble the log and
#: such a value protects nothing anyway. URL passwords are masked by shape whatever their length.
MIN_LITERAL = 6

_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]*)(?P<tail>@)")
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:[a-z_]*(?:password|passwd|secret|token|api_?key|access_?key|credential)[a-z_]*)=)"
    r"(?P<secret>[^&;#\s'\"]+)",
    re.IGNORECASE,
)


# Cached: the log filter walks the configuration's keys for every log line (secret_values).
@functools.lru_cache(maxsize=4096)
def is_secret(name: str) -> bool:
    """Whether a setting or variable named ``name`` holds a secret (``key``, ``DB_PASSWORD``...)."""
    return any(word in name.lower() for word in SECRET_WORDS)


def mask(value: Any) -> Any:
    """What is shown of a secret value: :data:`MASK` when it is set, the empty value as it is.

    A boolean is shown: ``pass_api_key = true`` is a switch, not a secret.
    """
    if value in ("", None, [], {}) or isinstance(value, bool):
        return value
    return MASK


def same_secret(sent: str, expected: str) -> bool:
    """Whether ``sent`` is ``expected``, in a time that depends on neither (not even their
    lengths): the SHA-256 digests are compared with :func:`hmac.compare_digest`."""
    return hmac.compare_digest(hashlib.sha256(sent.encode()).digest(), hashlib.sha256(expected.encode()).digest())


def mask_passwords(text: str) -> str:
    """``text`` with the password of every URL in it and every secret-named query parameter as ``***``."""
    text = _URL_PASSWORD.sub(rf"\g<head>{MASK}\g<tail>", text)
    return _QUERY_SECRET.sub(rf"\g<head>{MASK}", text)


def mask_url(url: str) -> str:
    """A URL with its password (``user:PASSWORD@host``) and secret query parameters masked."""
    return mask_passwords(url)


def url_secrets(text: str) -> list[str]:
    """The passwords of the URLs in ``text``, as written and percent-decoded."""
    found = [m.group("secret") for m in _URL_PASSWORD.finditer(text)]
    found += [m.group("secret") for m in _QUERY_SECRET.finditer(text)]
    return [form for secret in found if secret for form in {secret, unquote(secret)}]


def secret_values(tree: Mapping[str, Any], *, inside_secret: bool = False) -> list[str]:
    """Every secret value of a settings tree (the effective configuration's ``values``).

    A value is secret when its key (or the key of a table holding it) is named like a secret;
    the password of any URL among the values is secret too.
    """
    found: list[str] = []
    for key, value in tree.items():
        secret = inside_secret or is_secret(str(key))
        if isinstance(value, Mapping):
            found += secret_values(value, inside_secret=secret)
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, str):
                    found += url_secrets(item)
                    if secret:
                        found.append(item)
        elif isinstance(value, str):
            found += url_secrets(value)
            if secret:
                found.append(value)
        elif secret and value is not None and not isinstance(value, bool):
            found.append(str(value))
    return found


class SecretMasker:
    """Masks URL passwords by shape and a set of known secret values wherever they appear.

    ``sources`` are called on every :meth:`mask` for the values to hide, so that secrets set
    after the masker was made (``agent start --key``) are masked too.
    """

    def __init__(self, values: Iterable[str] = (), sources: Iterable[Callable[[], Iterable[str]]] = ()) -> None:
        self._values: set[str] = set()
        self._sources = list(sources)
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        self._values.update(v for v in values if isinstance(v, str) and len(v.strip()) >= MIN_LITERAL)

    def add_source(self, source: Callable[[], Iterable[str]]) -> None:
        self._sources.append(source)

    def values(self) -> list[str]:
        known = set(self._values)
        for source in self._sources:
            try:
                known.update(v for v in source() if isinstance(v, str) and len(v.strip()) >= MIN_LITERAL)
            except Exception:  # a broken source must never stop a log line
                continue
        # Longest first: a secret that contains another is replaced whole.
        return sorted(known, key=len, reverse=True)

    def mask(self, text: str) -> str:
        return _mask_with(self.values(), text)

    def mask_all(self, texts: Iterable[str]) -> list[str]:
        """Each of ``texts`` masked, asking the sources once for all (a batch of run-log lines)."""
        values = self.values()
        return [_mask_with(values, text) for text in texts]


def _mask_with(values: Iterable[str], text: str) -> str:
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return mask_passwords(text)


def agent_secrets(settings: Any) -> list[str]:
    """The secret values an agent's settings (``AgentSettings``) hold: its key, the workloads'
    key, ``[agent] env`` variables named like a secret, backend and extension settings named
    like one, and URL passwords anywhere among them."""
    tree = {
        "api": {"key": settings.api_key, "url": settings.api_url},
        "agent": {"workload_api_key": settings.workload_api_key, "env": settings.env},
        "backends": {settings.backend: settings.backend_settings},
        "plugins": settings.plugin_settings,
    }
    return secret_values(tree)


class MaskSecrets(logging.Filter):
    """A handler filter that rewrites each record with its secrets masked.

    On the handler, so that it covers every logger (ours, SQLAlchemy's, waitress's, a plugin's),
    the arguments of the message, and the traceback of a logged exception (rendered here, masked,
    and kept as the record's ``exc_text``, which formatters render instead of the raw one).
    """

    def __init__(self, masker: SecretMasker | None = None) -> None:
        super().__init__()
        self.masker = masker or SecretMasker()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it itself
            return True
        masked = self.masker.mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        # exc_info stays (other handlers, pytest's caplog, read it): a formatter renders a
        # record's exc_text when set, so the masked text is what every formatter prints.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.masker.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.masker.mask(record.stack_info)
        return True
