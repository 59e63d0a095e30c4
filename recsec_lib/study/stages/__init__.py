"""One module per study stage (``Settings`` + ``run(ctx, settings)``), and what each stage reads.

``STAGE_INPUTS`` names, per stage, the earlier stages whose outputs it reads
(their folders in the run, or the processed data the data stage writes). Two
things use it: ``run_all.sh --jobs N`` starts a stage as soon as those have
finished, so stages that do not read each other run at once; and the stage
cache keys a stage's result by theirs, so a retrained target invalidates every
attack on it and nothing else. A stage missing from the table (a notebook added
without an entry) reads every stage before it: it runs alone, after them.
"""

from __future__ import annotations

ALL_EARLIER = "every earlier stage"  # a stage that reads the whole run (the report)

STAGE_INPUTS: dict[str, tuple[str, ...] | str] = {
    "data": (),
    "analyze": ("data",),
    "train": ("data",),
    "attack": ("train",),  # train/<target>.pt and the other trained targets
    "gro": ("train",),  # the target and its snapshots (the utility-matched nulls)
    "seat": ("train", "attack"),  # the target, and the attack stage's query logs (seat.inputs.logged_attacks)
    "watermark": ("train",),  # the target and the other trained models (the independent suspects)
    "report": ALL_EARLIER,
}


def stage_inputs(name: str, earlier: list[str]) -> tuple[str, ...]:
    """The stages among ``earlier`` (the run's stages before ``name``, in order) that ``name`` reads, with
    what those read in turn (a stage's result depends on its inputs' inputs too)."""
    declared = STAGE_INPUTS.get(name, ALL_EARLIER)
    if declared == ALL_EARLIER:
        return tuple(earlier)
    needed: set[str] = set()
    pending = [stage for stage in declared if stage in earlier]
    while pending:
        stage = pending.pop()
        if stage not in needed:
            needed.add(stage)
            more = STAGE_INPUTS.get(stage, ALL_EARLIER)
            pending += [s for s in (earlier[:earlier.index(stage)] if more == ALL_EARLIER else more)
                        if s in earlier]
    return tuple(stage for stage in earlier if stage in needed)


__all__ = ("ALL_EARLIER", "STAGE_INPUTS", "stage_inputs")
