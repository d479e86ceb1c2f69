"""Run the catalogue against Linux under configurations conformant stacks use; list regressions.

    python3 scripts/variations.py                        # every configuration, default cases
    python3 scripts/variations.py --configs ecn,no-sack -k handshake --workers 2
    python3 scripts/variations.py --list                 # the configurations and their sysctls

Each configuration is a set of net.* sysctls written inside the DUT namespace only
(`conformance run --target linux --sysctl ...`); the host never changes. The script runs
the default configuration once, then each chosen one, into one run directory:

    <out>/default/linux/results.json, <out>/<configuration>/linux/results.json, ...
    <out>/<name>.log                  what `conformance run` printed
    <out>/variations.json             every case whose verdict got worse, and other changes
    <out>/variations.md               the same as a table

A verdict is worse than the default one when a conformant choice of configuration turned a
pass into warn/fail/error, a warn into fail/error, an n/a into fail/error, or an info into
warn/fail/error: either the tester assumes something the RFCs leave open (a tester
problem) or the configuration is a real deviation. Every other change (pass -> info, ...)
is listed apart. Each worse case runs once more under its configuration
(`<out>/<name>-recheck/`; `--no-recheck` skips it): a verdict that is not worse again marks
a flaky case, not a property of the configuration. A default failure that is no known
deviation runs once more too, and the configurations are compared with its second verdict
when that passed: a flaky default failure would hide the same failure under them.
Exit status: 0 when no verdict got worse, 1 when one did, 2 for usage
errors, 3 when a run left no results.
"""

import argparse
import datetime
import json
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
TARGET = "linux"
BASELINE = "default"


@dataclass(frozen=True)
class Configuration:
    name: str
    description: str
    sysctls: tuple[str, ...]  # NAME=VALUE, written inside the DUT namespace


CONFIGURATIONS = {
    configuration.name: configuration
    for configuration in (
        Configuration("ecn", "ECN negotiated on active and passive opens (RFC 3168)",
                      ("net.ipv4.tcp_ecn=1",)),
        Configuration("no-sack", "no SACK-permitted option, no SACK blocks (RFC 2018 off)",
                      ("net.ipv4.tcp_sack=0",)),
        Configuration("no-timestamps", "no TCP timestamps option (RFC 7323 3 off)",
                      ("net.ipv4.tcp_timestamps=0",)),
        Configuration("no-window-scaling", "no window scale option (RFC 7323 2 off)",
                      ("net.ipv4.tcp_window_scaling=0",)),
        # net.core.rmem_default and wmem_default (UDP's buffers) are read-only outside the
        # initial namespace, so only TCP's buffers can be made small inside a lab.
        Configuration("small-buffers", "TCP receive and send buffers of 4096 octets",
                      ("net.ipv4.tcp_rmem=4096 4096 4096", "net.ipv4.tcp_wmem=4096 4096 4096")),
        # No net.* sysctl lowers the MSS Linux advertises: route.min_adv_mss is a floor
        # under the MTU-derived value (ipv4_default_advmss), and the MTU and a route's
        # advmss are no sysctls. Packetization-layer path MTU discovery always on (RFC
        # 4821) makes Linux *send* segments of at most tcp_base_mss from the start instead.
        Configuration("small-mss", "segments sent from an MSS of 536 (548 octets of data "
                      "without timestamps; RFC 4821 probing from tcp_base_mss); the MSS "
                      "advertised stays 1460",
                      ("net.ipv4.tcp_mtu_probing=2", "net.ipv4.tcp_base_mss=536")),
        Configuration("syncookies", "SYN cookies on every SYN, not only on queue overflow "
                      "(RFC 4987 3.6)", ("net.ipv4.tcp_syncookies=2",)),
    )
}

# verdicts a case that got worse in the default run may settle to when rechecked
SETTLED = {"pass", "info", "n/a"}

# default verdict -> the verdicts that are worse than it
WORSE = {
    "pass": {"warn", "fail", "error"},
    "warn": {"fail", "error"},
    "n/a": {"fail", "error"},
    "info": {"warn", "fail", "error"},
}


@dataclass(frozen=True)
class Change:
    configuration: str
    case: str
    default: str  # the verdict in the default configuration ("missing" if it did not run)
    verdict: str  # the verdict under the configuration ("missing" if it did not run)
    message: str  # the first line of the configuration's message
    evidence: str  # the pcapng, relative to the run directory
    recheck: str = ""  # the verdict when the case ran again under the configuration

    @property
    def reproduced(self) -> bool:
        return self.recheck in WORSE.get(self.default, set())

    @property
    def worse(self) -> bool:
        return self.verdict in WORSE.get(self.default, set()) or (
            self.verdict == "missing" and self.default != "missing")


def is_known_sysctl(assignment: str) -> bool:
    """Whether the kernel has the sysctl (net.* exists in every namespace as on the host)."""
    name = assignment.partition("=")[0]
    return name.startswith("net.") and (Path("/proc/sys") / name.replace(".", "/")).exists()


def run_configuration(name: str, sysctls: tuple[str, ...], out: Path, keyword: str | None,
                      workers: int) -> dict[str, Any] | None:
    """`conformance run --target linux` with the sysctls; its results.json, or None."""
    command = [sys.executable, "-m", "conformance.cli", "run", "--target", TARGET,
               "--out", str(out / name), "--workers", str(workers)]
    for assignment in sysctls:
        command += ["--sysctl", assignment]
    if keyword:
        command += ["-k", keyword]
    with (out / f"{name}.log").open("w") as log:
        # Exit status 1 only says that a case failed: the verdicts are what we compare.
        done = subprocess.run(command, cwd=REPOSITORY, stdout=log, stderr=subprocess.STDOUT,
                              check=False)
    results = out / name / TARGET / "results.json"
    if done.returncode not in (0, 1) or not results.exists():
        return None
    loaded: dict[str, Any] = json.loads(results.read_text())
    return loaded


def verdicts(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {case["id"]: case for case in results["cases"]}


def changes(configuration: str, default: dict[str, Any], varied: dict[str, Any]) -> list[Change]:
    """Every case whose verdict differs between the default run and the configuration's."""
    before, after = verdicts(default), verdicts(varied)
    found = []
    for case in sorted(before.keys() | after.keys()):
        old = before.get(case, {}).get("verdict", "missing")
        entry = after.get(case, {})
        new = entry.get("verdict", "missing")
        if old != new:
            message = (entry.get("message") or "").strip().splitlines()
            evidence = f"{configuration}/{TARGET}/{entry['evidence']}" if entry.get(
                "evidence") else ""
            found.append(Change(configuration, case, old, new, message[0] if message else "",
                                evidence))
    return found


def rerun(configuration: Configuration, cases: list[str], out: Path,
          workers: int) -> dict[str, str]:
    """The verdicts of `cases` in a second run under the configuration."""
    names = sorted({case.rpartition("::")[2].partition("[")[0] for case in cases})
    results = run_configuration(f"{configuration.name}-recheck", configuration.sysctls, out,
                                " or ".join(names), workers)
    again = verdicts(results) if results is not None else {}
    return {case: again.get(case, {}).get("verdict", "missing") for case in cases}


def settle(default: dict[str, Any], again: dict[str, str]) -> dict[str, Any]:
    """The default run with each rechecked case that passed (or was n/a or info) the
    second time taking that verdict: a default failure that does not reproduce would
    hide the same failure under a configuration."""
    settled = [dict(case, verdict=again[case["id"]])
               if again.get(case["id"]) in SETTLED else case for case in default["cases"]]
    return dict(default, cases=settled)


def markdown(configurations: list[Configuration], found: list[Change],
             counts: dict[str, dict[str, int]], command: str,
             settled: dict[str, tuple[str, str]]) -> str:
    lines = ["# Linux under conformant configurations", "", f"`{command}`", "",
             "| configuration | sysctls | verdicts | worse |", "|---|---|---|---|"]
    for configuration in configurations:
        tally = ", ".join(f"{count} {verdict}"
                          for verdict, count in sorted(counts.get(configuration.name, {}).items()))
        worse = [change for change in found
                 if change.configuration == configuration.name and change.worse]
        flaky = sum(1 for change in worse if change.recheck and not change.reproduced)
        sysctls = ", ".join(f"`{assignment}`" for assignment in configuration.sysctls) or "none"
        lines.append(f"| {configuration.name} | {sysctls} | {tally or 'no results'} | "
                     f"{len(worse)}{f' ({flaky} flaky)' if flaky else ''} |")
    if settled:
        lines += ["", "Default verdicts that did not reproduce (compared with the second):", ""]
        lines += [f"* `{case}`: {first} -> {second}"
                  for case, (first, second) in sorted(settled.items())]
    for title, selected in (("Worse than the default", [c for c in found if c.worse]),
                            ("Other changes", [c for c in found if not c.worse])):
        lines += ["", f"## {title}", ""]
        if not selected:
            lines.append("none")
            continue
        lines += ["| configuration | case | default -> new | recheck | message |",
                  "|---|---|---|---|---|"]
        for change in selected:
            message = change.message.replace("|", "\\|")
            again = (change.recheck + ("" if change.reproduced else " (flaky)")
                     if change.recheck else "")
            lines.append(f"| {change.configuration} | `{change.case}` | "
                         f"{change.default} -> {change.verdict} | {again} | {message} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGURATIONS),
                        help="comma-separated configurations [default: all]")
    parser.add_argument("-k", dest="keyword", help="only cases matching (pytest -k syntax)")
    parser.add_argument("--workers", type=int, default=1, help="cases run in parallel per run")
    parser.add_argument("--out", type=Path, help="run directory "
                        "[default: pcaps/runs/variations-<YYYYmmdd-HHMMSS>]")
    parser.add_argument("--no-recheck", action="store_true",
                        help="do not run the worse cases a second time")
    parser.add_argument("--list", action="store_true", help="list the configurations")
    options = parser.parse_args(argv)
    if options.list:
        for configuration in CONFIGURATIONS.values():
            print(f"{configuration.name}: {configuration.description}\n    "
                  + " ".join(f"--sysctl '{assignment}'" for assignment in configuration.sysctls))
        return 0
    names = [name.strip() for name in options.configs.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONFIGURATIONS]
    if unknown or not names or options.workers < 1:
        parser.error(f"unknown configuration {', '.join(unknown)}; choose from "
                     f"{', '.join(CONFIGURATIONS)}" if unknown else "nothing to run")
    chosen = [CONFIGURATIONS[name] for name in names]
    missing = [assignment for configuration in chosen for assignment in configuration.sysctls
               if not is_known_sysctl(assignment)]
    if missing:
        parser.error(f"this kernel lacks {', '.join(missing)}")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out: Path = (options.out or REPOSITORY / "pcaps" / "runs" / f"variations-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)

    command = shlex.join(["python3", "scripts/variations.py", *argv])
    runs: dict[str, dict[str, Any]] = {}
    default = Configuration(BASELINE, "the kernel's defaults", ())
    for configuration in [default, *chosen]:
        started = time.monotonic()
        results = run_configuration(configuration.name, configuration.sysctls, out,
                                    options.keyword, options.workers)
        took = time.monotonic() - started
        if results is None:
            print(f"{configuration.name}: no results, see {out / configuration.name}.log",
                  file=sys.stderr)
            if configuration.name == BASELINE:
                return 3
            continue
        runs[configuration.name] = results
        print(f"{configuration.name}: {results['run']['verdicts']} in {took:.0f} s", flush=True)

    baseline = runs[BASELINE]
    unsettled = [case["id"] for case in baseline["cases"] if case["verdict"] in WORSE["pass"]
                 and case.get("expectation") != "expected"]
    settled: dict[str, tuple[str, str]] = {}
    if unsettled and not options.no_recheck:
        again = rerun(default, unsettled, out, options.workers)
        first = verdicts(baseline)
        settled = {case: (first[case]["verdict"], verdict) for case, verdict in again.items()
                   if verdict in SETTLED}
        baseline = settle(baseline, again)
    found: list[Change] = []
    for configuration in chosen:
        if configuration.name not in runs:
            continue
        these = changes(configuration.name, baseline, runs[configuration.name])
        got_worse = [change.case for change in these if change.worse]
        if got_worse and not options.no_recheck:
            again = rerun(configuration, got_worse, out, options.workers)
            these = [replace(change, recheck=again[change.case]) if change.case in again
                     else change for change in these]
        found += these
    counts = {name: results["run"]["verdicts"] for name, results in runs.items()}
    report = {
        "command": command,
        "kernel": runs[BASELINE]["run"]["kernel_release"],
        "configurations": {configuration.name: {
            "description": configuration.description, "sysctls": list(configuration.sysctls),
            "verdicts": counts.get(configuration.name), "ran": configuration.name in runs,
        } for configuration in chosen},
        "default_verdicts": counts[BASELINE],
        # default failures (not known deviations) that passed when run again: the
        # configurations are compared with the second verdict
        "default_settled_by_recheck": settled,
        "worse": [asdict(change) | {"reproduced": change.reproduced}
                  for change in found if change.worse],
        "other_changes": [asdict(change) for change in found if not change.worse],
    }
    (out / "variations.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "variations.md").write_text(markdown(chosen, found, counts, command, settled))
    worse = [change for change in found if change.worse]
    for change in worse:
        second = f" (recheck: {change.recheck})" if change.recheck else ""
        print(f"worse: {change.configuration}: {change.case}: {change.default} -> "
              f"{change.verdict}{second}: {change.message}")
    print(f"{len(worse)} worse, {len(found) - len(worse)} other changes: {out / 'variations.md'}")
    if len(runs) < len(chosen) + 1:
        return 3
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
