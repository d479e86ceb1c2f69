"""Requirement coverage: which cases check each requirement of the catalogue, and the gaps.

Each requirement of the catalogue is, for a given selection of cases, one of:

* `covered`: at least one case names it;
* `uncovered`: no case names it, and the catalogue says why (`uncovered = "..."`);
* `gap`: no case names it and the catalogue gives no reason.

Besides the gaps, these keep the catalogue and the suites from drifting apart, and each
makes `conformance coverage` exit 1: a case naming an ID the catalogue lacks, a case
naming none, and a requirement that cases cover while the catalogue still gives a reason
for leaving it uncovered (a stale reason).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from conformance.errors import UsageError
from conformance.requirements.catalogue import Catalogue, requirement_order, rfc_of

Status = Literal["covered", "uncovered", "gap"]


@dataclass(frozen=True)
class RequirementCoverage:
    id: str
    level: str
    summary: str
    cases: list[str]
    uncovered: str | None  # the catalogue's reason, as written

    @property
    def rfc(self) -> str:
        return rfc_of(self.id)

    @property
    def status(self) -> Status:
        if self.cases:
            return "covered"
        return "uncovered" if self.uncovered else "gap"

    @property
    def stale_reason(self) -> bool:
        """Cases cover it, yet the catalogue still says why none does."""
        return bool(self.cases and self.uncovered)


@dataclass(frozen=True)
class Coverage:
    requirements: list[RequirementCoverage]  # by RFC, then section
    unknown: dict[str, list[str]] = field(default_factory=dict)  # ID -> cases naming it
    unmarked: list[str] = field(default_factory=list)  # cases naming no requirement

    def with_status(self, status: Status) -> list[RequirementCoverage]:
        return [requirement for requirement in self.requirements if requirement.status == status]

    @property
    def stale(self) -> list[RequirementCoverage]:
        return [requirement for requirement in self.requirements if requirement.stale_reason]

    def counts(self) -> dict[str, int]:
        return {
            "requirements": len(self.requirements),
            "covered": len(self.with_status("covered")),
            "uncovered": len(self.with_status("uncovered")),
            "gaps": len(self.with_status("gap")),
            "unknown_ids": len(self.unknown),
            "cases_without_requirements": len(self.unmarked),
            "stale_reasons": len(self.stale),
        }

    @property
    def complete(self) -> bool:
        """No gap, and the catalogue and the cases agree: what CI gates on."""
        return not (self.with_status("gap") or self.unknown or self.unmarked or self.stale)

    def problem_summary(self) -> str:
        """What makes `coverage` exit 1, in one line (the listing says which)."""
        counts = self.counts()
        parts = [f"{counts[key]} {label}" for key, label in (
            ("gaps", "gaps (no case, no reason)"),
            ("unknown_ids", "requirement IDs the catalogue lacks"),
            ("cases_without_requirements", "cases naming no requirement"),
            ("stale_reasons", "stale `uncovered` reasons")) if counts[key]]
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.counts(),
            "requirements": [
                {"id": requirement.id, "rfc": requirement.rfc, "level": requirement.level,
                 "summary": requirement.summary, "status": requirement.status,
                 "cases": requirement.cases, "uncovered": requirement.uncovered}
                for requirement in self.requirements
            ],
            "unknown_ids": [{"id": identifier, "cases": cases}
                            for identifier, cases in self.unknown.items()],
            "cases_without_requirements": self.unmarked,
        }


def normalise_rfc(name: str) -> str:
    """`RFC1122` from `RFC1122`, `rfc1122` or `1122`; other prefixes (`API`) upper-cased."""
    name = name.strip().upper()
    return f"RFC{name}" if name.isdigit() else name


def check_rfcs(catalogue: Catalogue, rfcs: Iterable[str]) -> None:
    """UsageError for an RFC (or ID prefix) the catalogue has no requirement of."""
    known = {requirement.rfc for requirement in catalogue.requirements.values()}
    for rfc in rfcs:
        if normalise_rfc(rfc) not in known:
            raise UsageError(f"--rfc {rfc}: the catalogue has no requirement of "
                             f"{normalise_rfc(rfc)} (it has: {', '.join(sorted(known))})")


def build_coverage(
    catalogue: Catalogue, cases: Iterable[Mapping[str, Any]],
    rfcs: Sequence[str] | None = None,
) -> Coverage:
    """Coverage of `catalogue` by `cases` (each with `id` and `requirements`, as
    `conformance list --json` gives them), restricted to the RFCs named in `rfcs`."""
    wanted = {normalise_rfc(rfc) for rfc in rfcs} if rfcs else None

    def in_scope(requirement_id: str) -> bool:
        return wanted is None or rfc_of(requirement_id) in wanted

    covering: dict[str, list[str]] = {}
    unmarked = []
    for case in cases:
        if not case["requirements"]:
            unmarked.append(str(case["id"]))
        for requirement_id in dict.fromkeys(case["requirements"]):
            covering.setdefault(requirement_id, []).append(str(case["id"]))
    requirements = [
        RequirementCoverage(requirement.id, requirement.level, requirement.summary,
                            sorted(covering.get(requirement.id, [])), requirement.uncovered)
        for requirement in sorted(catalogue.requirements.values(),
                                  key=lambda requirement: requirement_order(requirement.id))
        if in_scope(requirement.id)
    ]
    unknown = {identifier: sorted(covering[identifier])
               for identifier in sorted(covering, key=requirement_order)
               if identifier not in catalogue.requirements and in_scope(identifier)}
    return Coverage(requirements, unknown, sorted(unmarked))
