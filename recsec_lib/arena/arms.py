"""An arm: one served configuration of the comparison, and the arm it is measured against."""

from __future__ import annotations

from dataclasses import dataclass

from recsec_lib.defenses.output import OutputDefense, parse_output_defense

FAMILIES = ("none", "paper", "output", "gro-control", "control-replica", "gro", "combo", "null", "watermark")
REFERENCE_FAMILIES = ("none", "gro-control")  # arms that others are measured against
# arms that are measurements, never a "best defense": the references, another seed of the control (the noise
# of fine-tuning), and utility-matched nulls (weaker models with no defensive aim)
NOT_DEFENSES = ("none", "gro-control", "control-replica", "null")
UNDEFENDED = "undefended"  # the models key of the undefended target


@dataclass(frozen=True)
class Arm:
    """One served configuration: ``model`` (a key of the models evaluated) behind the box, ``output`` on top."""

    label: str  # unique; shown in tables and plots
    model: str  # key of the model behind the box (UNDEFENDED, or a model defense's key)
    output: OutputDefense  # what the box does to the ranked list before serving it
    reference: str  # label of the arm this one is compared with ("" for the None arm itself)
    family: str  # one of FAMILIES
    lam: float | None = None  # GRO's λ (0 for the control)
    rule: str = ""  # GRO's zero-gradient rule (keep | lowest_index)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"parameter 'family' must be one of {FAMILIES}, got {self.family!r}")

    @property
    def is_reference(self) -> bool:
        return self.family in REFERENCE_FAMILIES


def none_arm() -> Arm:
    """The undefended target served as it is: the first arm of every comparison."""
    return Arm("None", UNDEFENDED, parse_output_defense("none"), "", "none")


def output_arms(specs, paper: tuple[str, ...] = ("random", "reverse")) -> list[Arm]:
    """One arm per output defense on the undefended target (``specs``: text forms such as "tail-resample:10")."""
    arms = []
    for spec in specs:
        defense = parse_output_defense(spec)
        if defense.name == "none":
            continue
        family = "paper" if defense.name in paper else "output"
        arms.append(Arm(defense.label, UNDEFENDED, defense, "None", family))
    return arms


def check_arms(arms: list[Arm], models) -> None:
    """The first arm is None, labels are unique, references and models exist; raises naming the arm."""
    labels = [arm.label for arm in arms]
    if len(set(labels)) != len(labels):
        raise ValueError(f"arm labels must be unique, got {labels}")
    if not arms or arms[0].family != "none" or arms[0].model != UNDEFENDED or arms[0].output.name != "none":
        raise ValueError("the first arm must be the None arm (the undefended target, no output defense)")
    for arm in arms[1:]:
        if arm.reference not in labels:
            raise ValueError(f"arm {arm.label!r}: reference {arm.reference!r} is not an arm")
    for arm in arms:
        if arm.model not in models:
            raise ValueError(f"arm {arm.label!r}: no model {arm.model!r} (models: {sorted(models)})")
