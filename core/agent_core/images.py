"""Image references and the operator's registry allow-list, one rule for every container backend.

An image reference is parsed the way the Docker engine parses it (the grammar of the
``distribution/reference`` package the engine, containerd, ECS's container agent and Fargate
share), without any SDK: ``busybox`` is ``docker.io/library/busybox``, ``team/etl`` is
``docker.io/team/etl``, a first component with a ``.`` or a ``:``, ``localhost`` or an upper-case
letter is a registry (``localhost:5000/x``, ``[::1]:5000/x``, ``registry.example:443/a/b``), and a
tag and a digest may both follow the name (``name:tag@sha256:...``; the digest is what is pulled).

The allow-list (``allowed_registries``) compares the registry an image would be pulled from,
and optionally a path prefix: an entry is ``host[:port]`` or ``host[:port]/path``. Hub's other
names (``index.docker.io``, ``registry-1.docker.io``, ``registry.hub.docker.com``) count as
``docker.io``, in entries and in images alike, so an operator who allows Docker Hub need not
list them (and one who does not cannot be bypassed by them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from agent_core.errors import InvalidImageName

DOCKER_HUB = "docker.io"
HUB_ALIASES = frozenset({"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
NAME_TOTAL_LENGTH_MAX = 255  # registry and path together, as the engine counts them

# The grammar of distribution/reference (regexp.go), ASCII only.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*", re.ASCII)
REGISTRY_RE = re.compile(rf"{_HOST}(?::[0-9]+)?", re.ASCII)
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
DIGEST_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}", re.ASCII)
_IMAGE_ID_RE = re.compile(r"(?:sha256:)?[a-f0-9]{64}", re.ASCII)


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference: where it is pulled from and which version of it."""

    registry: str  # host[:port], lower-case host, Hub's aliases as docker.io
    path: str  # the repository path in that registry (library/NAME for Hub's official images)
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The fully qualified repository name, ``registry/path``."""
        return f"{self.registry}/{self.path}"


def _looks_like_registry(first: str) -> bool:
    # The engine's rule (normalize.go splitDockerDomain): Hub user names are lower-case and
    # have neither a "." nor a ":", so anything else in the first component names a registry.
    return first == "localhost" or "." in first or ":" in first or first.lower() != first


def parse_image(image: str) -> ImageReference:
    """Parse an image reference as the Docker engine does.

    :raise InvalidImageName: not an image reference (the message says why).
    """
    if not isinstance(image, str) or not image:
        raise InvalidImageName(f"invalid image name {image!r}: empty")
    if _IMAGE_ID_RE.fullmatch(image):
        raise InvalidImageName(f"invalid image name {image!r}: an image id names no registry, give its name")
    rest, at, digest = image.partition("@")
    if at and not DIGEST_RE.fullmatch(digest):
        raise InvalidImageName(f"invalid image name {image!r}: {digest!r} is not a digest (ALGORITHM:HEX)")
    head, slash, last = rest.rpartition("/")
    last, colon, tag = last.partition(":")
    if colon and not TAG_RE.fullmatch(tag):
        raise InvalidImageName(f"invalid image name {image!r}: {tag!r} is not a tag")
    name = f"{head}{slash}{last}"
    first, sep, remainder = name.partition("/")
    if sep and _looks_like_registry(first):
        if not REGISTRY_RE.fullmatch(first):
            raise InvalidImageName(f"invalid image name {image!r}: {first!r} is not a registry (host[:port])")
        registry, path = normalize_registry(first), remainder
    else:
        registry, path = DOCKER_HUB, name
    if path.lower() != path:
        raise InvalidImageName(f"invalid image name {image!r}: the repository name must be lower-case")
    if not PATH_RE.fullmatch(path):
        raise InvalidImageName(f"invalid image name {image!r}: {path!r} is not a repository path")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if len(f"{first}/{remainder}" if sep else name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidImageName(f"invalid image name {image!r}: longer than {NAME_TOTAL_LENGTH_MAX} characters")
    return ImageReference(registry=registry, path=path, tag=tag or None, digest=digest or None)


def registry_of(image: str) -> tuple[str, str]:
    """``(registry, repository path)`` of an image reference, as the engine resolves them.

    ``python:3.12`` -> ``("docker.io", "library/python")``;
    ``registry.example.com:5000/team/etl@sha256:...`` -> ``("registry.example.com:5000", "team/etl")``.

    :raise InvalidImageName: not an image reference.
    """
    ref = parse_image(image)
    return ref.registry, ref.path


def normalize_registry(entry: str) -> str:
    """An allow-list entry (or a registry) as compared: no scheme, no trailing slash, lower-case host, Hub aliases."""
    text = entry.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    host, sep, path = text.partition("/")
    host = host.lower()
    if host in HUB_ALIASES:
        host = DOCKER_HUB
    return f"{host}{sep}{path}"


def registry_entry_problem(entry: str) -> str | None:
    """Why ``entry`` is not an allow-list entry (``host[:port]`` or ``host[:port]/path``), or None."""
    host, _, path = normalize_registry(entry).partition("/")
    if not REGISTRY_RE.fullmatch(host) or (path and not PATH_RE.fullmatch(path)):
        return f"invalid registry {entry!r}: write host[:port] or host[:port]/path (registry.example.com/team)"
    return None


def allowed(image: str, registries: Iterable[str]) -> bool:
    """Whether ``image`` comes from one of ``registries`` (``host[:port]`` or ``host[:port]/path``).

    A path entry allows the images at that path and below it (``docker.io/library`` allows
    ``python``, not ``someone/python``); it matches whole components (``team`` is not ``teammate``).

    :raise InvalidImageName: ``image`` is not an image reference.
    """
    registry, path = registry_of(image)
    for entry in registries:
        host, _, prefix = normalize_registry(entry).partition("/")
        if host == registry and (not prefix or path == prefix or path.startswith(prefix + "/")):
            return True
    return False


def refused_registry(image: str, registries: list[str]) -> str | None:
    """The registry of ``image`` when a non-empty ``registries`` does not allow it, else None.

    The backends word the refusal themselves (what was not pulled, registered or started).

    :raise InvalidImageName: ``registries`` is set and ``image`` is not an image reference.
    """
    if not registries or allowed(image, registries):
        return None
    return registry_of(image)[0]
