"""The shape of the evaluation reports (RUN/eval/NAME/eval.json) the results pages read, as typed schemas.

Run folders are written by `part eval` but also copied, edited and damaged by hand, so every report is
checked before a number of it is used: a report of the wrong shape is a problem of that run, listed with
the field that is wrong, never a 500 for every page that reads it. Fields the pages do not read are kept
as they are (extra="allow").
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, model_validator


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Count = Annotated[StrictInt, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1), AfterValidator(_finite)]
Budget = Annotated[float, Field(ge=0, le=1), AfterValidator(_finite)]
Verdict = Annotated[StrictInt, Field(ge=0, le=1)] | StrictBool


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class CorruptionType(Loose):
    accuracy: list[Fraction] = []


class Check(Loose):
    id: str | None = None
    title: str | None = None
    passed: StrictBool | None = None
    detail: str | None = None


class EpsCurve(Loose):
    eps: list[Budget]
    accuracy: list[Fraction]
    steps: Count | None = None

    @model_validator(mode="after")
    def _paired(self) -> "EpsCurve":
        if len(self.eps) != len(self.accuracy):
            raise ValueError(f"eps has {len(self.eps)} values and accuracy {len(self.accuracy)}")
        return self


class AttackRecord(Loose):
    accuracy: Fraction | None = None
    n: Count | None = None
    correct: list[Verdict] | list[list[Verdict]] | None = None
    params: dict[str, Any] | None = None
    map: dict[str, Any] | None = None
    sweep: StrictBool | None = None
    eps: list[Budget] | Budget | None = None
    accuracies: list[Fraction] | None = None
    types: dict[str, CorruptionType] | None = None  # corruptions
    severities: list[Count] | None = None
    checks: list[Check] | None = None  # the gradient-masking checklist
    passed: StrictBool | None = None
    eps_curve: EpsCurve | None = None


class EvalReport(Loose):
    epoch: Count | None = None
    label: str | None = None
    dataset: str | None = None
    n: Count | None = None
    eps: Budget | None = None
    seed: Count | None = None
    indices: list[Count] | None = None
    labels: list[Count] | None = None
    classes: list[str] | None = None
    attacks: dict[str, AttackRecord] = {}

    @model_validator(mode="after")
    def _per_image_lists_agree(self) -> "EvalReport":
        if self.indices is not None and self.labels is not None and len(self.indices) != len(self.labels):
            raise ValueError(f"indices has {len(self.indices)} entries and labels {len(self.labels)}")
        if self.labels and self.classes and max(self.labels) >= len(self.classes):
            raise ValueError(f"labels reach {max(self.labels)} and classes names {len(self.classes)}")
        return self


def checked(report: Any) -> tuple[dict | None, str | None]:
    """(the report with its values as typed, e.g. "0.5" read as 0.5, None) when it has the shape the pages read,
    else (None, what is wrong: the first field)."""
    if not isinstance(report, dict):
        return None, f"holds {type(report).__name__}, not a JSON object"
    try:
        typed = EvalReport.model_validate(report).model_dump(exclude_unset=True)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "the report"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        return None, f"{where}: {first.get('msg', 'invalid')}{more}"
    return typed, None
