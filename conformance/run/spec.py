"""What one run is asked to do, built and checked once, before any lab.

`build_spec` checks a request the way every run needs it checked (the target exists,
the target takes the options given, the catalogue and the expectations load); `RunSpec`
is the result. Its one serialized form is JSON (`to_json`/`from_json`): the pytest
plugin reads it from `--run-spec`, and `compare --targets` hands it to each child run.
"""

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.errors import HarnessError, UsageError
from conformance.expectations import Deviation, load_expectations
from conformance.requirements.catalogue import Catalogue, default_catalogue_path
from conformance.run import layout
from conformance.targets import get_target
from conformance.targets.base import TargetOptions

# Cases wait on the DUT far more than they compute; beyond this many per CPU the harness's
# own CPU is what the run waits for (scripts/benchmark.py --workers): with Wireshark's
# read of every capture (180 ms of tshark a case) 2; without it (--no-wireshark) 4.
WORKERS_PER_CPU = 2
WORKERS_PER_CPU_WITHOUT_WIRESHARK = 4
# A worker costs a pytest process of its own (about a second of CPU to start): one for
# each this many cases selected, so a run of a few cases stays serial.
CASES_PER_WORKER = 8


def default_workers(*, wireshark: bool = True) -> int:
    """How many cases run at once in a full run: WORKERS_PER_CPU per CPU (without
    Wireshark's reads, WORKERS_PER_CPU_WITHOUT_WIRESHARK)."""
    per_cpu = WORKERS_PER_CPU if wireshark else WORKERS_PER_CPU_WITHOUT_WIRESHARK
    return max(2, per_cpu * (os.cpu_count() or 1))


def workers_for(cases: int, *, wireshark: bool = True) -> int:
    """How many cases run at once when the user does not say, for `cases` selected."""
    return max(1, min(default_workers(wireshark=wireshark), cases // CASES_PER_WORKER))


@dataclass(frozen=True)
class RunSpec:
    """One run against one target. `out` is the run directory (None: a new one under
    pcaps/runs when the run starts); the target's files go to `out/<target>/`."""

    target: str
    options: TargetOptions = field(default_factory=TargetOptions)
    out: Path | None = None
    keyword: str | None = None  # pytest -k
    slow: bool = False
    workers: int | None = None  # pytest-xdist workers; None: workers_for(the cases selected)
    expectations: Path | None = None  # default: suites/expectations/<target>.toml
    catalogue: Path | None = None  # default: suites/requirements/
    shard: tuple[int, int] | None = None  # (K, N): the K-th of N shards of the selection
    suites: tuple[Path, ...] = ()  # the user's own case directories, run beside ours
    # Each case's capture read with Wireshark's dissectors (evidence/wireshark.py): about
    # 180 ms of tshark's CPU a case; off, a case has no wireshark.* observations.
    wireshark: bool = True

    @property
    def directory(self) -> Path:
        """Where this target's evidence goes: <run directory>/<target>."""
        if self.out is None:
            raise HarnessError("the run has no directory yet (RunSpec.placed)")
        return self.out / self.target

    def placed(self) -> "RunSpec":
        """This run with its directory: `out`, or a new one under pcaps/runs."""
        if self.out is not None:
            return self
        return dataclasses.replace(self, out=layout.new_run_directory().resolve())

    def load_catalogue(self) -> Catalogue:
        return load_catalogue(self.catalogue, self.suites)

    def load_deviations(self) -> dict[str, Deviation]:
        """The known deviations of the target (suites/expectations/<target>.toml)."""
        if self.expectations is not None and not self.expectations.exists():
            raise UsageError(f"--expectations {self.expectations}: no such file")
        return load_expectations(self.expectations or
                                 layout.SUITES_ROOT / "expectations" / f"{self.target}.toml")

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        for name in ("out", "expectations", "catalogue"):
            fields[name] = None if fields[name] is None else str(fields[name])
        fields["suites"] = [str(suite) for suite in self.suites]
        fields["options"]["patches"] = list(self.options.patches)
        fields["options"]["agent"] = list(self.options.agent)
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        fields: dict[str, Any] = json.loads(text)
        options = fields.pop("options")
        paths = {name: None if fields[name] is None else Path(fields[name])
                 for name in ("out", "expectations", "catalogue")}
        shard = fields.pop("shard", None)
        suites = tuple(Path(suite) for suite in fields.pop("suites", []))
        return cls(**{**fields, **paths}, shard=tuple(shard) if shard else None, suites=suites,
                   options=TargetOptions(
            options["sysctls"], options["settings"], tuple(options["patches"]),
            tuple(options["agent"])))


def build_spec(
    target: str, options: TargetOptions, *, out: Path | None = None,
    keyword: str | None = None, slow: bool = False, workers: int | None = None,
    expectations: Path | None = None, catalogue: Path | None = None,
    shard: tuple[int, int] | None = None, suites: tuple[Path, ...] = (),
    wireshark: bool = True,
) -> RunSpec:
    """The run asked for, checked: a wrong request is wrong on any machine, so this comes
    before the environment is looked at. UsageError says what is wrong."""
    get_target(target).check_options(options)
    spec = RunSpec(target, options, out.resolve() if out is not None else None, keyword,
                   slow, workers, expectations.resolve() if expectations else None,
                   catalogue.resolve() if catalogue else None, shard,
                   tuple(suite.resolve() for suite in suites), wireshark)
    spec.load_catalogue()
    if expectations is not None:
        spec.load_deviations()
    return spec


def target_specs(
    targets: list[str], offered: TargetOptions, *, out: Path | None, keyword: str | None,
    slow: bool, workers: int | None, catalogue: Path | None, wireshark: bool = True,
) -> list[RunSpec]:
    """One spec per target of `compare --targets`, each with the options that apply to
    its target (`offered` holds those of both); all checked before any runs."""
    chosen = [get_target(target) for target in targets]
    return [build_spec(target.name, target.applicable(offered), out=out, keyword=keyword,
                       slow=slow, workers=workers, catalogue=catalogue, wireshark=wireshark)
            for target in chosen]


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` (the K-th of N shards, 1 <= K <= N) as (K, N); UsageError otherwise."""
    index, slash, count = text.partition("/")
    if not (slash and index.isdigit() and count.isdigit()) or not 1 <= int(index) <= int(count):
        raise UsageError(f"{text!r}: want K/N with 1 <= K <= N, such as 2/3")
    return int(index), int(count)


def in_shard(case_ids: list[str], shard: tuple[int, int]) -> set[str]:
    """The cases of shard (K, N): every N-th of the selection sorted by ID, from the
    K-th, so that N shards of one selection take each case exactly once, on any machine."""
    index, count = shard
    return {case for position, case in enumerate(sorted(case_ids)) if position % count == index - 1}


def load_catalogue(catalogue: Path | None, suites: tuple[Path, ...] = ()) -> Catalogue:
    """The requirement catalogue (`catalogue`, or suites/requirements/), with those of the
    user's suites (each suite's requirements.toml, or the TOML files of its
    requirements/ directory)."""
    loaded = Catalogue.load(catalogue or default_catalogue_path())
    for suite in suites:
        own = suite_catalogue(suite)
        loaded = loaded.joined(Catalogue.load(own), own)
    return loaded


def suite_catalogue(suite: Path) -> Path:
    """Where a user's suite keeps its requirements: requirements.toml, or requirements/."""
    for candidate in (suite / "requirements.toml", suite / "requirements"):
        if candidate.exists():
            return candidate
    raise UsageError(f"--suite {suite}: no requirements.toml or requirements/ in it (the "
                     "requirements its cases check)")
