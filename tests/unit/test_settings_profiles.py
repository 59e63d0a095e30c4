"""Every stage's ``Settings.for_profile(p)`` holds the values it held before the settings mechanism of
``recsec_lib.common.settings`` replaced the hand-written ``for_profile``/``with_overrides`` (issue 23, item 4).

``tests/data/stage_profiles.json`` was written from the code before that change: per stage and profile, the
``repr`` of every field (so a tuple that became a list, or an int that became a float, is caught too). A field
a later change adds is not in the file and is not checked; a field of the file that a stage no longer has
fails, so renames are seen. Change the file only with a change of a profile's values made on purpose.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import pytest

from recsec_lib.attack.surrogate import SurrogateSettings

SNAPSHOT = Path(__file__).resolve().parents[1] / "data" / "stage_profiles.json"
STAGES = ("data", "analyze", "train", "attack", "gro", "seat", "watermark", "report")
PROFILES = ("smoke", "cpu", "full")


def field_reprs(settings) -> dict[str, str]:
    return {field.name: repr(getattr(settings, field.name)) for field in dataclasses.fields(settings)}


def current_values() -> dict[str, dict[str, dict[str, str]]]:
    """What the code gives now (also how the snapshot file was written)."""
    values = {}
    for stage in STAGES:
        module = importlib.import_module(f"recsec_lib.study.stages.{stage}")
        values[stage] = {profile: field_reprs(module.Settings.for_profile(profile)) for profile in PROFILES}
    values["surrogate"] = {"default": field_reprs(SurrogateSettings())}
    return values


@pytest.mark.parametrize("stage", [*STAGES, "surrogate"])
def test_profiles_hold_the_values_they_held(stage):
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))[stage]
    now = current_values()[stage]
    for profile, fields in expected.items():
        missing = sorted(set(fields) - set(now[profile]))
        assert not missing, f"{stage} settings lost fields {missing}"
        changed = {name: (value, now[profile][name]) for name, value in fields.items() if now[profile][name] != value}
        assert not changed, f"{stage} profile {profile!r} changed (before, now): {changed}"
