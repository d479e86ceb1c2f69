"""The requirement catalogue (`suites/requirements/*.toml`): IDs, levels and summaries."""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import UsageError

LEVELS = ("MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY")
# The strictest level first: a case checking several requirements is judged by the strictest.
STRICTNESS = {"MUST": 0, "MUST NOT": 0, "SHOULD": 1, "SHOULD NOT": 1, "MAY": 2}
# RFC1122-4.1.3.3a: the RFC, the section, and a letter where one section holds several.
ID_PATTERN = re.compile(r"RFC(?P<rfc>\d+)-(?P<section>\d+(?:\.\d+)*)(?P<suffix>[a-z]*)")


def rfc_of(requirement_id: str) -> str:
    """`RFC1122` for `RFC1122-4.1.3.3a`; the part before the first dash for other IDs."""
    return requirement_id.partition("-")[0]


def requirement_order(requirement_id: str) -> tuple[int, tuple[int, ...], str]:
    """Sorts by RFC number, then section number by number (3.10 after 3.9), then letter.

    IDs that do not follow the pattern go last, in their own order."""
    match = ID_PATTERN.fullmatch(requirement_id)
    if match is None:
        return (1 << 30, (), requirement_id)
    section = tuple(int(part) for part in match["section"].split("."))
    return (int(match["rfc"]), section, match["suffix"])


@dataclass(frozen=True)
class Requirement:
    id: str
    level: str
    summary: str
    uncovered: str | None = None

    @property
    def rfc(self) -> str:
        return rfc_of(self.id)


class Catalogue:
    def __init__(self, requirements: list[Requirement]) -> None:
        self.requirements = {requirement.id: requirement for requirement in requirements}

    @classmethod
    def load(cls, path: Path) -> "Catalogue":
        """The catalogue in ``path``: one TOML file, or a directory of them."""
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        if not files:
            raise UsageError(f"no requirement catalogue (*.toml) in {path}")
        requirements = [requirement for file in files for requirement in _read(file)]
        ids = [requirement.id for requirement in requirements]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise UsageError(f"{path}: duplicate requirement IDs: {', '.join(duplicates)}")
        return cls(requirements)

    def joined(self, other: "Catalogue", where: Path) -> "Catalogue":
        """This catalogue and `other` (read from `where`) together; an ID both define is
        a usage error."""
        both = sorted(set(self.requirements) & set(other.requirements))
        if both:
            raise UsageError(f"{where}: requirement IDs already in the catalogue: "
                             f"{', '.join(both)}")
        return Catalogue([*self.requirements.values(), *other.requirements.values()])

    def get(self, requirement_id: str) -> Requirement:
        try:
            return self.requirements[requirement_id]
        except KeyError:
            raise UsageError(f"unknown requirement ID {requirement_id!r}") from None

    def level_of(self, requirement_ids: list[str]) -> str:
        """The strictest level among the requirements a case checks."""
        levels = [self.get(requirement_id).level for requirement_id in requirement_ids]
        return min(levels, key=lambda level: STRICTNESS[level])


def default_catalogue_path() -> Path:
    return Path(__file__).resolve().parents[2] / "suites" / "requirements"


def _read(path: Path) -> list[Requirement]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"cannot read the requirement catalogue {path}: {error}") from error
    requirements = []
    for entry in data.get("requirement", []):
        if entry.get("level") not in LEVELS:
            raise UsageError(f"{path}: {entry.get('id')}: level must be one of {LEVELS}")
        requirements.append(
            Requirement(
                id=entry["id"], level=entry["level"], summary=entry["summary"],
                uncovered=entry.get("uncovered"),
            )
        )
    return requirements
