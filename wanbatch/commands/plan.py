"""``wanbatch plan``: the manifest against the journal, and what a run would submit."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from wanbatch.commands import options
from wanbatch.commands.loading import tree_view
from wanbatch.commands.treecheck import shared_with, tree_orphans
from wanbatch.jobstate import Standing, standing
from wanbatch.journal import live_run
from wanbatch.models import LOST_CODE
from wanbatch.orphans import clash_message, orphan_lines
from wanbatch.providers import provider_for
from wanbatch.settings import Flags
from wanbatch.words import count

NAME = "plan"
HELP = (
    "the manifest against the journal: new, changed, done, failed, in flight, "
    "and the cost of the rest; sends nothing"
)
DESCRIPTION = (
    "The manifest against the journal and the output tree: which jobs are new, changed since"
    " they were submitted, in flight, to download, done or failed, and what a run would submit"
    " and cost. Sends nothing."
)

_LABELS: dict[str, str] = {  # the groups of ``plan``: ``jobstate.Standing``, in this order
    Standing.NEW: "new (a run submits them)",
    Standing.CHANGED: "changed since submitted (a run stops and asks: --resubmit-changed or --keep-changed)",
    Standing.UNCONFIRMED: "create sent, answer unknown (a run asks again with the same key)",
    Standing.IN_FLIGHT: "in flight (a run polls them)",
    Standing.TO_DOWNLOAD: "rendered, to download (a run downloads them; also videos gone from disk)",
    Standing.DONE: "done",
    Standing.FAILED: "failed (`wanbatch retry` resubmits them)",
}


# ``plan --json``: its top-level keys, always all of them, in this order. ``counts`` and ``jobs``
# have every state of ``jobstate.Standing`` (in its order), zeros and empty lists included.
PLAN_KEYS = (
    "manifest",
    "output_dir",
    "live_run",
    "counts",
    "jobs",
    "lost",
    "to_submit",
    "orphans",
    "shared_with",
)


def configure(parser: argparse.ArgumentParser) -> None:
    options.manifest_argument(parser)
    options.as_json(parser, "print JSON")
    options.job_fields(parser)
    options.subsets(parser)


def execute(flags: Flags, out: TextIO) -> int:
    tree = tree_view(flags)
    manifest, replay, intact = tree.manifest, tree.replay, tree.intact
    orphans = tree_orphans(
        tree.whole, tree.journal, flags
    )  # of the whole tree, whatever --only chose
    clashes = shared_with(tree.whole, flags, tree.journal)
    groups: dict[str, list[str]] = {name: [] for name in _LABELS}
    submit = []
    for job in manifest.jobs:
        found = standing(job, replay.records.get(job.id), intact)
        groups[found].append(job.id)
        if found is Standing.NEW:
            submit.append(job)
    # Failed jobs whose task the server lost: `retry` leaves them alone unless --include-lost.
    lost = [
        job_id for job_id in groups[Standing.FAILED] if replay.records[job_id].code == LOST_CODE
    ]
    credits = manifest.estimate_credits(tuple(submit))
    seconds = sum(job.duration for job in submit)
    live = live_run(manifest.output_dir)
    if flags.as_json:
        payload = {
            "manifest": str(manifest.path),
            "output_dir": str(manifest.output_dir),
            "live_run": live,
            "counts": {str(state): len(groups[state]) for state in Standing},
            "jobs": {str(state): groups[state] for state in Standing},
            "lost": lost,
            "to_submit": {"jobs": len(submit), "seconds": seconds, "credits": credits},
            "orphans": [orphan.as_json() for orphan in orphans],
            "shared_with": [str(other.path) for other in clashes],
        }
        print(json.dumps(payload, indent=2), file=out)
        return 0
    print(f"{manifest.path} against {manifest.output_dir}:", file=out)
    if live is not None:
        print(f"  a run is live ({live}): what follows is changing under it", file=out)
    for name, ids in groups.items():
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        print(f"  {len(ids):>6}  {_LABELS[name]}" + (f": {shown}" if ids else ""), file=out)
        if name is Standing.FAILED and lost:
            shown = ", ".join(lost[:5]) + (" ..." if len(lost) > 5 else "")
            print(
                f"  {'':>6}  of which {len(lost)} lost by the server (`wanbatch retry` leaves"
                f" them alone unless --include-lost): {shown}",
                file=out,
            )
    for line in orphan_lines(orphans):
        print(line, file=out)
    if clashes:
        print(f"A run would be refused: {clash_message(tree.whole, clashes)}", file=out)
    cost = f", about {credits:g} credits" if credits is not None else ""
    print(f"A run would submit {count(len(submit), 'job')}: {seconds} s of video{cost}.", file=out)
    lifetime = provider_for(manifest.api).capabilities.url_lifetime_seconds
    if lifetime is not None:  # the provider deletes a finished video soon after
        shown = f"{lifetime / 3600:g} h" if lifetime >= 3600 else f"{lifetime / 60:g} min"
        print(
            f"{manifest.api.provider} deletes outputs {shown} after they finish:"
            " downloads follow each render as it ends.",
            file=out,
        )
    return 0
