"""Remotes that store compressed objects (``compression: zstd``), and local compressed versions
pushed to any remote.

Each side chooses its own form for dated versions: a remote with ``compression: zstd`` stores
``<version>.pth.zst`` objects, one without stores ``<version>.pth``; the current file and the
backup slot are always plain. A push maps every local version to the object the remote holds
for it (either form: after the setting is switched, old objects stay and stay readable) or, when
it holds none, to the form its setting asks for, and prepares the bytes: a local ``.zst`` is
decompressed into a temp in the state dir for a plain remote (when an upload needs it), a plain
version is compressed into one for a zstd remote. Delta push (part copies) applies to
uncompressed remotes only: a compressed object has no stable ranges to reuse.

A compressed object's remote catalog entry keeps the model bytes' identity in ``size`` and
``sha256`` and the object's own in ``stored_size`` and ``stored_sha256``. The code that compares
objects with their entries (verify, pull, repair, retention, the push plan) sees the stored
identity through ``stored_view``; ``persisted`` turns a view back before it is written.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.local import compress
from agent.local.stored import plain_target
from agent.rules.codec import ZSTD, codec_of, plain_name, stored_name
from agent.rules.push_plan import LocalFile

if TYPE_CHECKING:
    from agent.local.store import Store
    from agent.remote.connect import Remote

STORED_KEYS = ("codec", "stored_size", "stored_sha256")


def stored_view(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """A remote catalog entry as the object comparisons need it: for a compressed object,
    ``size``/``sha256`` are the object's own, the model's kept as ``model_size``/``model_sha256``
    (range hashes, which are the model bytes', are left out)."""
    if not entry or not entry.get("codec") or not entry.get("stored_sha256"):
        return entry
    view = {k: v for k, v in entry.items() if k != "ranges"}
    view.update(
        model_size=entry.get("size"),
        model_sha256=entry.get("sha256"),
        size=entry.get("stored_size"),
        sha256=entry.get("stored_sha256"),
    )
    return view


def persisted(entry: dict[str, Any]) -> dict[str, Any]:
    """The form a remote catalog entry is written in (undoes ``stored_view``)."""
    out = dict(entry)
    if "model_sha256" in out:
        out["size"], out["sha256"] = out.pop("model_size"), out.pop("model_sha256")
    if out.get("codec"):
        out.pop("ranges", None)
    return out


def model_sha256(entry: dict[str, Any] | None) -> str | None:
    if not entry:
        return None
    return entry.get("model_sha256") or entry.get("sha256")


@dataclass
class _Forms:
    """For one command: where each remote-side name's bytes come from, and as which local file
    and content it is judged by the checker."""

    sources: dict[str, Callable[[], Path]] = field(default_factory=dict)
    judged_as: dict[str, tuple[str, str]] = field(default_factory=dict)
    temps: list[Path] = field(default_factory=list)


_FORMS: weakref.WeakKeyDictionary[Store, _Forms] = weakref.WeakKeyDictionary()


def _forms(store: Store) -> _Forms:
    return _FORMS.setdefault(store, _Forms())


def source_path(store: Store, name: str) -> Path:
    """The file holding the bytes to send as object ``name``."""
    make = _forms(store).sources.get(name)
    return make() if make is not None else store.path(name)


def judged_as(store: Store, lf: LocalFile) -> tuple[str, str]:
    """The local file and content the checker judges for ``lf``."""
    return _forms(store).judged_as.get(lf.name, (lf.name, lf.sha256))


def release(store: Store) -> None:
    """Remove the temps this command prepared."""
    forms = _FORMS.pop(store, None)
    for temp in forms.temps if forms else []:
        with suppress(FileNotFoundError):
            temp.unlink()


def _held(remote: Remote, names: Iterable[str], sha256: str) -> str | None:
    """The name of an object on ``remote`` that holds content ``sha256`` (either form)."""
    for name in names:
        obj = remote.objects.get(name)
        if obj is not None and obj.recorded and model_sha256(obj.recorded) == sha256:
            return name
    return None


def remote_name_of(remote: Remote, name: str, sha256: str) -> str:
    """The object on ``remote`` for local version ``name``: the one holding its content, in
    whichever form, else the form the remote's setting asks for."""
    plain = plain_name(name)
    zst = stored_name(plain, ZSTD)
    held = _held(remote, (plain, zst), sha256)
    if held is not None:
        return held
    if plain in remote.objects and zst not in remote.objects:
        return plain  # an object without our catalog entry: the push plan compares it
    return zst if remote.config.compression == ZSTD else plain


def for_remote(
    store: Store,
    remote: Remote,
    files: Iterable[tuple[LocalFile, dict[str, Any]]],
    *,
    prepare: bool,
) -> list[tuple[LocalFile, dict[str, Any]]]:
    """``files`` (agent.remote.outgoing) as ``remote`` stores them. ``prepare``: compress what
    must be sent compressed now (a real push), so its stored identity is known to the plan;
    otherwise (a dry run, a listing) its model identity stands in."""
    forms = _forms(store)
    out = []
    for lf, entry in files:
        if entry.get("kind") != "version" or entry.get("companion") is not None:
            out.append((lf, entry))
            continue
        want = remote_name_of(remote, lf.name, entry["sha256"])
        local_codec, want_codec = codec_of(lf.name), codec_of(want)
        base = {k: v for k, v in entry.items() if k not in STORED_KEYS}
        if want == lf.name:
            if local_codec:  # the local .zst goes as it is: the plan compares stored bytes
                lf = replace(lf, size=entry["stored_size"], sha256=entry["stored_sha256"])
            out.append((lf, entry))
            continue
        forms.judged_as[want] = (lf.name, entry["sha256"])
        if want_codec is None:  # a local .zst to a plain remote
            local = store.path(lf.name)
            forms.sources[want] = _decompressed(store, local, want, entry["sha256"])
            out.append((replace(lf, name=want, size=entry["size"]), {**base, "name": want}))
            continue
        if not prepare:
            out.append((replace(lf, name=want, sha256=f"{entry['sha256']}.zst"), entry))
            continue
        temp, digests = compress.compress_to_temp(
            store.path(lf.name), store.state_dir / want, expected_sha256=entry["sha256"]
        )
        forms.temps.append(temp)
        forms.sources[want] = lambda temp=temp: temp
        stored = {"codec": ZSTD, "stored_size": digests.stored_size}
        stored["stored_sha256"] = digests.stored_sha256
        new = replace(lf, name=want, size=digests.stored_size, sha256=digests.stored_sha256)
        out.append((new, {**base, **stored, "name": want}))
    return out


def _decompressed(store: Store, local: Path, name: str, sha256: str) -> Callable[[], Path]:
    made: list[Path] = []

    def make() -> Path:
        if not made:
            temp, _ = compress.decompress_to_temp(
                local, store.state_dir / name, expected_sha256=sha256
            )
            _forms(store).temps.append(temp)
            made.append(temp)
        return made[0]

    return make


def object_sha256(entry: dict[str, Any]) -> str:
    """The sha256 of the object's own bytes for a catalog entry (persisted form)."""
    return str(entry.get("stored_sha256") or entry["sha256"])


def fetch_form(
    store: Store,
    name: str,
    key: str,
    recorded: dict[str, Any] | None,
    object_size: int,
    sha256: str,
    size: int,
) -> tuple[Path, str] | None:
    """How to bring content ``sha256`` (``size`` bytes, in ``name``'s form) back under local
    ``name`` from object ``key``: (where to fetch it, the sha256 its bytes must have), or None
    when that object cannot serve. A ``.zst`` comes as it is (asked by the object's own
    identity, or by its model's: a local ``.zst`` healed from a compressed object); plain bytes
    for a ``.zst`` go to a temp, compressed into place afterwards (``compress_into``)."""
    local_zst, object_zst = codec_of(name) is not None, codec_of(key) is not None
    if object_zst and not local_zst:
        return None  # no plain copy is made from a .zst object here
    if object_zst:
        view = recorded or {}
        if object_size == size and view.get("sha256") in (sha256, None):
            return store.path(name), sha256
        if model_sha256(view) == sha256 and view.get("sha256") and view.get("size") == object_size:
            return store.path(name), str(view["sha256"])
        return None
    if object_size != size:
        return None
    if local_zst:
        return plain_target(store, name), sha256
    return store.path(name), sha256


class ModelCheck:
    """The model bytes of a ``.zst`` object, checked while its bytes are read back for their
    own sha256 (``verify --deep``): fed chunk by chunk, decompressed through a writer that
    hands on bounded pieces, hashed."""

    def __init__(self, sha256: str, size: int | None) -> None:
        import hashlib

        self.want = (sha256, size)
        self.sha = hashlib.sha256()
        self.size = 0
        self.why = ""
        zstd = compress._zstd()
        self._error = zstd.ZstdError
        self._writer = zstd.ZstdDecompressor().stream_writer(self, write_size=compress.CHUNK)

    @classmethod
    def of(cls, view: dict[str, Any]) -> ModelCheck | None:
        if not view.get("codec") or not view.get("model_sha256"):
            return None
        return cls(str(view["model_sha256"]), view.get("model_size"))

    def write(self, data: bytes) -> int:  # the decompressor's output
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def feed(self, chunk: bytes) -> None:
        if self.why:
            return
        try:
            self._writer.write(chunk)
        except self._error as exc:
            self.why = f"not a readable zstd frame ({exc})"

    def ok(self) -> bool:
        if self.why:
            return False
        sha, size = self.want
        if self.sha.hexdigest() != sha or (size is not None and self.size != size):
            self.why = f"{self.size} bytes hashing to {self.sha.hexdigest()[:12]}"
            return False
        return True
