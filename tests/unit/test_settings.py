"""The settings mechanism of ``recsec_lib.common.settings``: profile tables, overrides by name, conversion, errors."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass

import numpy as np
import pytest

from recsec_lib.common.settings import SettingsBase, SettingsError, UnsupportedAnnotation, did_you_mean


@dataclass(frozen=True)
class Toy(SettingsBase):
    epochs: int = 10  # a comment, as in the stages
    lr: float = 1e-3
    from_scratch: bool = True
    method: str = "gro"
    budgets: tuple[int, ...] = (500, 1000)
    lambdas: tuple[float, ...] = (0.1, 1.0)
    rules: tuple[str, ...] = ("keep",)
    filter_seen: bool | None = None
    cap: float | None = None

    PROFILES = {"smoke": {"epochs": 2, "budgets": (20,)}, "cpu": {"lambdas": "1"}, "full": {}}

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ValueError(f"setting 'epochs' must be positive, got {self.epochs}")


def test_profiles_are_tables_on_top_of_the_defaults():
    assert Toy.for_profile("full") == Toy()
    assert Toy.for_profile("smoke") == Toy(epochs=2, budgets=(20,))
    assert Toy.for_profile("cpu").lambdas == (1.0,)  # the table goes through the same conversion


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(SettingsError, match=r"unknown profile 'huge' of .*Toy \(known: cpu, full, smoke\)"):
        Toy.for_profile("huge")
    with pytest.raises(ValueError, match="did you mean 'smoke'"):
        Toy.for_profile("smok")


def test_a_class_without_profiles_has_none():
    @dataclass(frozen=True)
    class Plain(SettingsBase):
        epochs: int = 1

    with pytest.raises(SettingsError, match=r"unknown profile 'cpu' .*\(known: none\)"):
        Plain.for_profile("cpu")
    assert Plain().with_overrides(epochs="3") == Plain(epochs=3)


def test_none_keeps_the_current_value():
    smoke = Toy.for_profile("smoke")
    assert smoke.with_overrides(epochs=None, lr=None, budgets=None, from_scratch=None) == smoke
    assert smoke.with_overrides() == smoke


@pytest.mark.parametrize("name, value, expected", [
    ("epochs", 5, 5),
    ("epochs", "5", 5),
    ("epochs", np.int64(7), 7),
    ("lr", 1, 1.0),  # an int is accepted for a float
    ("lr", "0.01", 0.01),
    ("lr", np.float32(0.5), 0.5),
    ("from_scratch", False, False),
    ("from_scratch", "no", False),
    ("from_scratch", "Yes", True),
    ("from_scratch", "true", True),
    ("from_scratch", "FALSE", False),
    ("method", "seed-variant", "seed-variant"),
    ("budgets", "10,20", (10, 20)),
    ("budgets", "10, 20", (10, 20)),
    ("budgets", [10, 20], (10, 20)),
    ("budgets", 300, (300,)),  # one value: a tuple of one
    ("budgets", "", ()),  # empty text: the empty tuple
    ("lambdas", "0.01,1", (0.01, 1.0)),
    ("lambdas", (0, 1), (0.0, 1.0)),
    ("lambdas", 1, (1.0,)),
    ("rules", "keep,lowest_index", ("keep", "lowest_index")),
    ("rules", ["keep"], ("keep",)),
    ("filter_seen", True, True),
    ("filter_seen", "no", False),
    ("filter_seen", "none", None),  # X | None: the text none is None
    ("cap", 30, 30.0),
    ("cap", "None", None),
])
def test_overrides_convert_from_the_annotation(name, value, expected):
    result = getattr(Toy().with_overrides(**{name: value}), name)
    assert result == expected and type(result) is type(expected)
    if isinstance(expected, tuple):
        assert all(type(a) is type(b) for a, b in zip(result, expected))


@pytest.mark.parametrize("name, value, expected", [
    ("epochs", "five", "int"),
    ("epochs", 2.5, "int"),
    ("epochs", True, "int"),  # a bool is not an int here
    ("lr", "fast", "float"),
    ("lr", True, "float"),
    ("from_scratch", "maybe", "bool"),
    ("from_scratch", 1, "bool"),
    ("method", 3, "str"),
    ("budgets", "10,x", "a list of int"),
    ("lambdas", "one", "a list of float"),
    ("rules", [1], "a list of str"),
    ("filter_seen", "perhaps", "bool .* or None"),
])
def test_a_wrong_type_names_the_setting_the_class_and_the_type(name, value, expected):
    with pytest.raises(SettingsError, match=rf"setting '{name}' of {re.escape(Toy.settings_name())} takes {expected}"):
        Toy().with_overrides(**{name: value})


def test_an_unknown_name_says_did_you_mean_and_lists_the_known_names():
    with pytest.raises(SettingsError) as error:
        Toy().with_overrides(epoch=3)
    message = str(error.value)
    assert f"unknown setting 'epoch' of {Toy.settings_name()}; did you mean 'epochs'?" in message
    assert Toy.settings_name().endswith("test_settings.Toy")
    assert "(known: budgets, cap, epochs, filter_seen, from_scratch, lambdas, lr, method, rules)" in message
    with pytest.raises(SettingsError, match=r"unknown setting 'zzz' of [\w.]+ \(known: budgets"):
        Toy().with_overrides(zzz=1)  # nothing close: no suggestion
    assert did_you_mean("lamda", ["lambdas", "lr"]) == "; did you mean 'lambdas'?"


def test_field_checks_stay_in_post_init_and_run_on_every_copy():
    with pytest.raises(ValueError, match="'epochs' must be positive"):
        Toy().with_overrides(epochs=0)
    with pytest.raises(ValueError, match="'epochs' must be positive"):
        Toy(epochs=-1)


def test_an_unsupported_annotation_is_a_mistake_in_the_class():
    @dataclass(frozen=True)
    class Odd(SettingsBase):
        pair: tuple[int, int] = (1, 2)
        mapping: dict = None

    with pytest.raises(UnsupportedAnnotation, match=r"tuple\[X, \.\.\.\] only"):
        Odd().with_overrides(pair="1,2")
    with pytest.raises(UnsupportedAnnotation, match="not <class 'dict'>"):
        Odd().with_overrides(mapping={})


STAGES = ("data", "analyze", "train", "attack", "gro", "seat", "watermark", "report")


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_uses_the_mechanism(stage):
    from recsec_lib.study.stages.context import PROFILES

    settings = importlib.import_module(f"recsec_lib.study.stages.{stage}").Settings
    assert issubclass(settings, SettingsBase)
    assert "with_overrides" not in vars(settings) and "for_profile" not in vars(settings)
    assert tuple(settings.PROFILES) == PROFILES  # every stage has a row per profile, in that order
    with pytest.raises(SettingsError, match=r"unknown profile 'huge' .*\(known: cpu, full, smoke\)"):
        settings.for_profile("huge")
    name = settings.setting_names()[0]
    with pytest.raises(SettingsError, match=rf"unknown setting '{name}x' of recsec_lib\.study\.stages\.{stage}\."
                                            rf"Settings; did you mean '{name}'\?"):
        settings().with_overrides(**{f"{name}x": 1})


def test_surrogate_settings_use_the_mechanism():
    from recsec_lib.attack.surrogate import SurrogateSettings

    assert issubclass(SurrogateSettings, SettingsBase) and "with_overrides" not in vars(SurrogateSettings)
    settings = SurrogateSettings().with_overrides(epochs="5", lr=1, filter_seen="no", max_train_seconds=None)
    assert (settings.epochs, settings.lr, settings.filter_seen) == (5, 1.0, False)
    with pytest.raises(SettingsError, match="did you mean 'epochs'"):
        SurrogateSettings().with_overrides(epoch=5)
