"""``status``'s storage calculation per model and side: the remote figures joined to each model,
and the lines a person reads (binary units, as everywhere)."""

from __future__ import annotations

from typing import Any

from agent.cli.commands import human_size


def per_model_remotes(report: dict[str, Any], remotes: list[dict[str, Any]]) -> None:
    """Move each remote's per-model figures into the model's ``storage.remotes.<name>``, with
    what the next version would store there (a full copy of the current file and companions)."""
    for r in remotes:
        figures = r.pop("models", None)
        for m in report["models"]:
            if figures is None:  # unreachable: said once, in the remote's own entry
                m["storage"]["remotes"][r["remote"]] = {"error": r.get("error")}
                continue
            side = dict(figures.get(m["name"]) or {})
            side["next_version_bytes"] = m["next_version_needs_bytes"]
            m["storage"]["remotes"][r["remote"]] = side


def _bytes(side: dict[str, Any]) -> str:
    return (
        f"{human_size(side['stored_bytes'])} (model bytes {human_size(side['logical_bytes'])}, "
        f"compression saved {human_size(side['compression_saved_bytes'])})"
    )


def print_storage(app, storage: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    here = storage["local"]
    fits = "fits" if here["next_version_fits"] else "does NOT fit"
    app.out(f"  stored here       {_bytes(here)}")
    app.out(
        f"  {'':16}  next version {human_size(here['next_version_bytes'])}: {fits} "
        f"({human_size(here['free_bytes'])} free, keeping {human_size(here['min_free_bytes'])})"
    )
    for name, side in storage["remotes"].items():
        label = f"stored on {name}"
        if "error" in side:
            app.out(f"  {label:16}  unreachable")
            continue
        app.out(f"  {label:16}  {_bytes(side)}")
        app.out(
            f"  {'':16}  next version {human_size(side['next_version_bytes'])}; "
            f"a push now would send {human_size(side['would_push_bytes'])}"
        )
