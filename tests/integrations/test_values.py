"""``gitsnap.integrations._values``: what training loops log, as the scalars a pointer holds."""

from __future__ import annotations

import argparse
import enum

import numpy as np
import pytest

from gitsnap.errors import UsageError
from gitsnap.integrations import _values


class Strategy(enum.Enum):
    STEPS = "steps"


def test_numbers_keeps_single_numbers_as_plain_types() -> None:
    logged = {
        "loss": np.float32(0.5),
        "acc": np.array([0.25]),  # a one-element array, as a logged tensor would be
        "step": np.int64(3),
        "lr": 1e-3,
        "nan": float("nan"),
        "vector": np.zeros(3),  # not a single value
        "name": "run-1",  # not a number
        "flag": True,  # not a metric
    }
    got = _values.numbers(logged)
    assert got == {"loss": 0.5, "acc": 0.25, "step": 3, "lr": 1e-3, "nan": "nan"}
    assert [type(got[n]) for n in ("loss", "acc", "step")] == [float, float, int]


def test_params_open_namespaces_configs_and_enums() -> None:
    hparams = {
        "lr": 0.1,
        "args": argparse.Namespace(hidden=4, name="tiny", layers=[1, 2]),
        "strategy": Strategy.STEPS,
        "optimizer": {"betas": (0.9, 0.999), "eps": np.float64(1e-8)},
        "callback": object,  # no value: recorded by its text
        "long": "x" * 5000,
        "none": None,
    }
    got = _values.params(hparams, source="hparams")
    assert got["lr"] == 0.1
    assert got["args.hidden"] == 4 and got["args.name"] == "tiny"
    assert got["strategy"] == "steps"
    assert got["optimizer.eps"] == 1e-8
    assert got["callback"] == "<class 'object'>"
    assert isinstance(got["long"], str) and len(got["long"]) == _values.MAX_TEXT
    assert got["none"] is None
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in got.values())


def test_params_are_bounded() -> None:
    too_many = {f"p{i}": i for i in range(10_001)}
    with pytest.raises(UsageError, match="more than 10000"):
        _values.params(too_many, source="hparams")
    deep: dict[str, object] = {}
    node = deep
    for _ in range(100):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    node["x"] = 1
    got = _values.params(deep, source="hparams")  # cut at 16 levels, the rest as text
    assert len(got) == 1
    [(name, value)] = got.items()
    assert name.count(".") == 16 and isinstance(value, str)
