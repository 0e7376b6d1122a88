"""Push local copies to a remote, and apply retention on the remote.

The facts are gathered here (local files with their catalog state, the remote's objects and
catalog); agent.rules.push_plan decides; this module carries the steps out, one file at a time, and
writes the remote catalog last. Nothing here deletes a remote object because a local file is gone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent import progress
from agent.faultpoints import crash_point
from agent.progress import human_size
from agent.remote.adopt import examine, mark_recognised
from agent.remote.catalog import RemoteCatalog, replaced_since_push
from agent.remote.check_ahead import CheckAhead, CheckRefused
from agent.remote.compressed import for_remote, judged_as, object_sha256, release, source_path
from agent.remote.connect import Remote
from agent.remote.delta import plan_deltas, put_delta
from agent.remote.outgoing import local_files
from agent.remote.prune import remote_good
from agent.remote.push_report import SyncReport, moved
from agent.remote.trees import push_trees
from agent.rules.codec import ZSTD
from agent.rules.naming import identify
from agent.rules.push_plan import Action, LocalFile, Step, plan_push
from agent.rules.retention import Candidate, plan_retention
from providers.base import ObjectInfo
from providers.errors import IntegrityError, NotFound, ProviderError

if TYPE_CHECKING:
    from agent.local.store import Store

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """A stop was requested between two files (the daemon's SIGTERM)."""


# -- push --------------------------------------------------------------------------------------
def plan(
    store: Store, remote: Remote, *, deltas: bool = True, checks: CheckAhead | None = None
) -> tuple[list[Step], dict[str, dict[str, Any]]]:
    """What a push would do; ``deltas=False`` (a listing's "a push would send ...") leaves out
    the choice of delta sources, which may read a file whose range hashes are not known yet.
    With ``checks``, files whose content has no recorded verdict are planned as if they pass
    and judged in the background while the push runs (``check_ahead``); without, every file
    that would leave is judged here first."""
    files = for_remote(store, remote, local_files(store), prepare=checks is not None)
    again = _expired_again(store, remote, [lf.name for lf, _ in files])
    files = [(lf, entry) for lf, entry in files if lf.name not in again]
    sizes = {lf.name: lf.size for lf, _ in files}
    held = remote.provider.capabilities.hashes
    shas = {lf.name: lf.sha256 for lf, _ in files}
    remote_files = {}
    recognised: dict[str, str] = {}  # name -> the checksum that showed it holds the local bytes
    md5s: dict[str, str | None] = {}
    for name, obj in remote.objects.items():
        rf = obj.as_plan_input()
        if rf.recorded is None and sizes.get(name) == rf.size and not set(rf.hashes) & held:
            # Uploaded but never catalogued: by a push killed before its catalog write, or by
            # another tool (aws, rclone, s5cmd). Listings omit checksums the object itself
            # holds, so ask it and compare what it vouches for with the local file
            # (agent.remote.adopt) before sending it all again.
            rf, found = examine(remote.provider, rf, source_path(store, name), shas[name])
            if found is not None:
                md5s[name] = found.md5
                if found.same:
                    recognised[name] = found.how
        remote_files[name] = rf
    can_copy = remote.provider.capabilities.copy is not None
    local = [dataclasses.replace(lf, md5=md5s.get(lf.name, lf.md5)) for lf, _ in files]
    steps = plan_push(local, remote_files, can_copy=can_copy)
    currents = {e["name"] for _, e in files if e.get("kind") == "current"}
    leaving = {s.name for s in steps if s.action in (Action.UPLOAD, Action.COPY)} | currents
    if leaving:
        # What would leave the machine is checked, and the current files whatever the remote
        # holds (a current pulled from a remote that holds a bad copy is reported, not trusted);
        # a dated copy already there was checked when it left. Whatever fails is refused under
        # every name it has.
        local = [_checked(store, lf, checks) if lf.name in leaving else lf for lf in local]
        steps = plan_push(local, remote_files, can_copy=can_copy)
    entries = {lf.name: entry for lf, entry in files}
    mark_recognised(steps, entries, recognised, remote_files)
    deltas = deltas and remote.config.compression != ZSTD  # no part copies of compressed bytes
    return (plan_deltas(store, remote, steps, entries) if deltas else steps), entries


def _checked(store: Store, lf: LocalFile, checks: CheckAhead | None) -> LocalFile:
    from agent.checks.verdicts import judged, recorded, refusal

    if not lf.ok:
        return lf
    name, sha = judged_as(store, lf)  # a version sent in the other form: its local file
    if checks is not None and judged(store, name) and recorded(store, sha) is None:
        checks.start(name, sha)  # new content: judged while the push runs
        return lf
    why = refusal(store, name, sha)
    return dataclasses.replace(lf, blocked=why) if why else lf


def _expired_again(store: Store, remote: Remote, local_names: list[str]) -> set[str]:
    """Local version files this remote's retention removed before and would remove again right
    after this push: sending them would cost a full upload on every run for nothing. A version
    the policy would now keep (it was widened) is sent again."""
    expired = remote.catalog.expired
    back = {n for n in local_names if n in expired and n not in remote.objects}
    if not back:
        return set()
    idents = {n: identify(n, store.config.models) for n in back}
    again: set[str] = set()
    for m in store.config.models:
        returning = {
            n: i for n, i in idents.items() if i and i.model == m.name and i.kind == "version"
        }
        if not returning:
            continue
        cands = [
            Candidate(o.name, o.ident.date or dt.date.min, o.ident.seq, remote_good(remote, o.name))
            for o in remote.objects.values()
            if o.ident.model == m.name and o.ident.kind == "version" and o.ident.companion is None
        ]
        cands += [
            Candidate(n, i.date or dt.date.min, i.seq)
            for n, i in returning.items()
            if i.companion is None
        ]
        decisions = plan_retention(cands, remote.config.retention, minimum=2, today=dt.date.today())
        doomed = {
            (returning[d.name].date, returning[d.name].seq)
            for d in decisions
            if not d.keep and d.name in returning
        }
        again |= {n for n, i in returning.items() if (i.date, i.seq) in doomed}
    return again


def push(
    store: Store,
    remote: Remote,
    *,
    dry_run: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    on_line: Callable[[str], None] | None = None,
) -> SyncReport:
    started = time.monotonic()
    report = SyncReport(remote.name, on_line=on_line)
    checks = None if dry_run else CheckAhead(store)
    run = _Push(store, remote, report, dry_run, should_stop, checks)
    try:
        steps, entries = plan(store, remote, checks=checks)
        report.steps = steps
        for i, step in enumerate(steps):
            run.carry_out(i, step, entries[step.name])
    finally:
        if checks is not None:
            checks.close()
        release(store)  # temps of versions sent in the other form
        # Written last, and also when the push stops early (SIGTERM, a remote that went away):
        # what did arrive is then known to the next push instead of being sent again.
        if not dry_run and run.recorded:
            try:
                _record(remote, run.recorded, sent=report.files > 0)
            except ProviderError as exc:
                log.warning("remote %s: could not write its catalog: %s", remote.name, exc)
    push_trees(store, remote, report, dry_run=dry_run)  # directory models, manifest last
    if not dry_run and not report.problems:
        _abort_abandoned_uploads(remote, report)
    store.save()  # the hashes learned here spare the next push a full read of every file
    report.seconds = time.monotonic() - started
    return report


@dataclass
class _Push:
    """One push in progress: carries out steps and remembers what arrived, for the catalog."""

    store: Store
    remote: Remote
    report: SyncReport
    dry_run: bool
    should_stop: Callable[[], bool]
    checks: CheckAhead | None = None
    recorded: dict[str, dict[str, Any]] = field(default_factory=dict)

    def carry_out(self, i: int, step: Step, entry: dict[str, Any]) -> None:
        report = self.report
        sha = entry["sha256"]
        if (
            self.checks is not None
            and self.checks.pending(sha)
            and step.action is not Action.UPLOAD
        ):
            # a copy or a record happens at once: it waits for the verdict (an upload waits
            # only before it is completed, its bytes travelling meanwhile)
            why = self.checks.refusal(sha)
            if why is not None:
                step = self._refused(i, step, why)
        if step.action is Action.REFUSE:
            report.problems.append(f"{step.name}: not pushed: {step.reason}")
            return
        if step.action is Action.PRESENT:
            obj = self.remote.objects[step.name]
            known = (obj.recorded or {}).get("object")
            # a listing may say less than the stat at push time did (no S3 version id): keep
            # what was recorded while it agrees, so the catalog is not rewritten every push
            self.recorded[step.name] = remote_entry(entry, obj.info, known=known)
            if entry.get("recognised") and not self.dry_run:
                report.did(
                    f"recognised {step.name} on {self.remote.name} ({entry['recognised']}): "
                    "recorded, not sent"
                )
            return
        if self.dry_run:
            return
        if self.should_stop():
            raise Interrupted(f"stopped before {step.name}; run push again to continue")
        gate = None
        if self.checks is not None and self.checks.pending(sha):
            checks = self.checks

            def gate() -> None:
                checks.gate(sha, step.name)

        try:
            info, sent, copied, damaged = _transfer(
                self.store, self.remote, step, object_sha256(entry), gate
            )
        except CheckRefused as exc:
            # its bytes went up beside the check and were abandoned: nothing is visible
            step = self._refused(i, step, str(exc))
            report.problems.append(f"{step.name}: not pushed: {step.reason}")
            return
        except NotFound as exc:
            if step.action is not Action.COPY:
                report.problems.append(f"{step.name}: not pushed: {exc}")
                return
            # the source was to arrive earlier in this push and did not: send the bytes
            step = Step(Action.UPLOAD, step.name, step.size, f"{step.source} is not there")
            self.carry_out(i, step, entry)
            return
        except IntegrityError as exc:
            report.problems.append(f"{step.name}: not pushed: {exc}")
            return
        self.recorded[step.name] = remote_entry(entry, info)
        if damaged:
            report.problems.append(damaged)
        report.files += 1
        if step.action is Action.COPY:
            report.bytes_copied += step.size
            report.transfers.append(moved(step, 0, step.size, step.source))
            report.did(f"copied {step.source} -> {step.name} on {self.remote.name}")
        else:
            # What the provider reported moving is what this run sent, and what a delta upload
            # copied on the server; the rest of the file was already there (parts or a session
            # of a killed run), so it is not counted as sent.
            resumed = max(0, step.size - sent - copied)
            report.bytes_sent += sent
            report.bytes_copied += copied
            report.bytes_resumed += resumed
            source = step.reuse.name if copied and step.reuse else None
            report.transfers.append(moved(step, sent, copied, source))
            report.did(
                f"uploaded {step.name} to {self.remote.name} ({step.reason})"
                + (
                    f"; {human_size(sent)} sent, {human_size(copied)} copied on the remote "
                    f"from {source}"
                    if source
                    else ""
                )
                + (f"; {human_size(resumed)} resumed from an earlier upload" if resumed else "")
            )

    def _refused(self, i: int, step: Step, why: str) -> Step:
        """``step`` turned into a refusal by a verdict that came in while the push ran."""
        refused = Step(Action.REFUSE, step.name, step.size, why)
        if i < len(self.report.steps) and self.report.steps[i].name == step.name:
            self.report.steps[i] = refused  # --json shows what happened, not what was planned
        return refused


def _abort_abandoned_uploads(remote: Remote, report: SyncReport) -> None:
    """After a clean push nothing of ours is in flight: multipart uploads left by a killed run for
    files that are gone or changed would only cost storage (S3 bills them until aborted)."""
    abort = remote.provider.capabilities.abort_incomplete_uploads
    if abort is None:
        return
    try:
        aborted = abort()
    except ProviderError as exc:
        log.warning("remote %s: could not abort abandoned uploads: %s", remote.name, exc)
        return
    if aborted:
        report.did(f"aborted {aborted} abandoned upload(s) on {remote.name}")


def _transfer(
    store: Store, remote: Remote, step: Step, sha256: str, gate: Callable[[], None] | None
):  # type: ignore[no-untyped-def]
    """The object's info, the bytes sent over the wire (0 for a server-side copy), the bytes of
    a delta upload copied on the server, and damage a delta upload found in its source.
    ``gate`` runs before an upload is completed (``before_commit``)."""
    provider = remote.provider
    if step.action is Action.COPY:
        copy = provider.capabilities.copy
        assert step.source is not None and copy is not None
        info = copy(step.source, step.name)
        if info.size != step.size or info.hashes.get("sha256", sha256) != sha256:
            provider.delete(step.name)
            raise IntegrityError(f"server-side copy of {step.source} came out different")
        return info, 0, 0, None
    path = source_path(store, step.name)
    sent = 0
    with progress.bar(f"{remote.name} <- {step.name}", step.size) as advance:

        def moved(n: int) -> None:
            # providers call this under their own lock (providers.transfer.Progress)
            nonlocal sent
            sent += n
            if advance is not None:
                advance(n)
            crash_point("upload-progress")  # test-only: bytes in a temp on the remote, not done

        if step.reuse is not None:
            info, copied, damaged = put_delta(store, remote, step, sha256, moved, gate)
        else:
            info = provider.put(
                step.name,
                path,
                expected_hashes={"sha256": sha256},
                progress=moved,
                before_commit=gate,
            )
            copied, damaged = 0, None
    return info, sent, copied, damaged


def remote_entry(entry: dict[str, Any], info: ObjectInfo, *, known: Any = None) -> dict[str, Any]:
    """The remote catalog's entry for an object that holds ``entry``'s content: the local facts,
    the md5 the backend computed, and the object's identity (to notice a later rewrite)."""
    out = {k: v for k, v in entry.items() if k not in ("md5", "object")}
    # the md5 the backend computed; else one it holds that a listing leaves out (rclone's, on a
    # recognised object, which the plan put in the entry)
    md5 = info.hashes.get("md5") or entry.get("md5")
    if md5:
        out["md5"] = md5
    identity = dict(info.identity)
    if isinstance(known, dict) and known and not replaced_since_push({"object": known}, identity):
        identity = {**identity, **known}
    if identity:
        out["object"] = identity
    return out


def _record(remote: Remote, recorded: dict[str, dict[str, Any]], *, sent: bool = True) -> None:
    """Write the remote catalog last; entries already identical are left as they were. When
    this push ``sent`` nothing and the catalog it read says everything already (a push with
    nothing new, as most nightly runs are), nothing is read or written: no request, and the
    listing and catalog in hand stay valid for the retention that follows."""

    def same(old: dict[str, Any] | None, entry: dict[str, Any]) -> bool:
        return bool(old) and all(old.get(k) == v for k, v in entry.items())  # type: ignore[union-attr]

    def edit(catalog: RemoteCatalog) -> None:
        for name, entry in recorded.items():
            if not same(catalog.files.get(name), entry):
                catalog.record(name, entry)

    # the catalog this push planned with (read only when nothing was sent: repair always writes)
    if (
        not sent
        and remote.catalog.intact
        and all(same(remote.catalog.files.get(name), e) for name, e in recorded.items())
    ):
        return
    remote.refresh()
    from agent.remote import catalog as remote_catalog

    remote_catalog.update(remote.provider, edit)
