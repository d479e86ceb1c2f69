"""The `conformance` command: run, merge, report, list, coverage, show, compare,
agent-check, fuzz, doctor, cleanup.

Exit status (ARCHITECTURE.md, "Verdicts"): 0 no fail and no error; 1 a fail, an error, or
an expectation that no longer holds (also: a suite module that cannot be collected);
2 a usage error, including a selection that matches no case; 3 an environment problem
(no CAP_NET_ADMIN, no /dev/net/tun, no network namespaces); 130 the run was interrupted
(SIGINT, or SIGTERM which the plugin turns into an interrupt), after its labs are removed.

Only the click declarations and the printing are here; a run is conformance/run/: its
spec (spec.py), the pytest session (session.py), its files (layout.py).
"""

import json
import os
import sys
from pathlib import Path

import click

from conformance import __version__
from conformance.agent_check import check_target
from conformance.cli_options import (
    ConformanceGroup,
    agent_option,
    catalogue_option,
    fail,
    keyword_option,
    ref_setting_option,
    suite_option,
    sysctl_option,
    wireshark_option,
)
from conformance.errors import EnvironmentProblem, UsageError
from conformance.evidence.pcapng import read_pcapng
from conformance.fuzz.frames import FrameSource, Mutator, Replay
from conformance.fuzz.session import DEFAULT_CHECK_EVERY, FuzzSession
from conformance.lab.netns import cleanup_labs, install_exit_handlers, list_labs
from conformance.report import console as screen
from conformance.report.agent_check import render_agent_check
from conformance.report.compare import compare_results, write_comparison
from conformance.report.coverage import build_coverage, check_rfcs
from conformance.report.fuzz import fuzz_progress, render_fuzz_summary
from conformance.report.html import write_report
from conformance.requirements.catalogue import Catalogue, default_catalogue_path
from conformance.run import layout
from conformance.run.cases import collect_cases, requirement_summaries
from conformance.run.environment import doctor_checks, environment_problem
from conformance.run.merge import merge_runs
from conformance.run.session import EXIT_INTERRUPTED, compare_targets, run_suites
from conformance.run.spec import (
    CASES_PER_WORKER,
    WORKERS_PER_CPU,
    RunSpec,
    build_spec,
    default_workers,
    load_catalogue,
    parse_shard,
    target_specs,
)
from conformance.targets import get_target
from conformance.targets.base import TargetOptions
from conformance.verdicts import (
    EXIT_ENVIRONMENT,
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    exit_status_of,
)


@click.group(cls=ConformanceGroup)
@click.version_option(__version__, "--version", prog_name="conformance",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """Packet-level conformance tests of TCP/UDP/IPv4 stacks (RFC 768, 1122, 1191, 9293).

    Exit status: 0 no fail and no error, 1 a fail or an error, 2 usage error,
    3 environment problem, 130 interrupted.
    """


def main() -> None:
    cli(prog_name="conformance")


def _require_environment(*, wireshark: bool = True) -> None:
    problem = environment_problem(wireshark=wireshark)
    if problem is not None:
        raise EnvironmentProblem(problem)


# --- run -------------------------------------------------------------------------------


@cli.command()
@click.option("--target", default="ref", show_default=True, metavar="NAME",
              help="The device under test: ref (the reference stack), linux, lwip, "
              "external (with --agent) or a target a package registers.")
@agent_option("external: the agent of the stack under test, as a shell would split it "
              "(docs/agent-protocol.md).")
@keyword_option("Only cases whose name matches EXPR (pytest -k syntax).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory [default: pcaps/runs/<YYYYmmdd-HHMMSS>].")
@sysctl_option("linux: set a net.* sysctl inside the DUT namespace (repeatable).")
@ref_setting_option("ref: set a reference-stack setting, e.g. min_pmtu=68 (repeatable; "
                    "stack/settings.py lists them).")
@click.option("--slow", is_flag=True, help="Also run cases marked slow.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Cases run in parallel (pytest-xdist), each in its own lab, the longest "
              f"first [default: {WORKERS_PER_CPU} per CPU, here {default_workers()} (with "
              f"--no-wireshark {default_workers(wireshark=False)}); fewer "
              f"for fewer than {CASES_PER_WORKER} cases a worker].")
@click.option("--expectations", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Known deviations [default: suites/expectations/<target>.toml].")
@catalogue_option("Requirement catalogue")
@suite_option("A directory of your own cases, run beside the suites (repeatable); its "
              "requirements.toml (or requirements/) holds the requirements they check.")
@click.option("--shard", metavar="K/N", callback=lambda ctx, param, value: None
              if value is None else _shard(value),
              help="Run only the K-th of N shards of the selected cases (every N-th by "
              "case ID); `conformance merge` joins the shards' runs.")
@wireshark_option("Read every case's capture with Wireshark's dissectors (tshark): its "
                  "expert information becomes the case's wireshark.* observations, and a "
                  "DUT frame it rejects makes the case warn. Off: about 180 ms of CPU less "
                  "a case, and no such check.")
@click.option("--json", "as_json", is_flag=True,
              help="Print results.json on stdout instead of the summary.")
@click.option("--spec", "spec_json", hidden=True, help="The whole run as RunSpec JSON "
              "(how `compare --targets` starts each run).")
@click.pass_context
def run(
    ctx: click.Context, target: str, agent: tuple[str, ...], keyword: str | None,
    out: Path | None, sysctls: dict[str, str], ref_settings: dict[str, str], slow: bool,
    workers: int | None,
    expectations: Path | None, catalogue: Path | None, suites: tuple[Path, ...],
    shard: tuple[int, int] | None, wireshark: bool, as_json: bool, spec_json: str | None,
) -> None:
    """Run the suites against a target and keep the evidence of every case."""
    spec = RunSpec.from_json(spec_json) if spec_json is not None else build_spec(
        target, TargetOptions(sysctls, ref_settings, agent=agent), out=out, keyword=keyword,
        slow=slow, workers=workers, expectations=expectations, catalogue=catalogue,
        shard=shard, suites=suites, wireshark=wireshark)
    _require_environment(wireshark=spec.wireshark)
    spec = spec.placed()
    with screen.terminal_console(sys.stderr if as_json else sys.stdout) as console:
        outcome = run_suites(spec, console)
        for nodeid, text in outcome.collection_errors:
            click.echo(f"conformance: cannot collect {nodeid or 'the suites'}:\n{text}", err=True)
        if outcome.ended is not None:
            raise outcome.ended
        if outcome.results is not None:
            # A run of `compare --targets` (given --spec) leaves the report to compare.
            index = _write_run_report([spec.directory], spec.directory.parent / "report") \
                if spec_json is None else None
            if as_json:
                click.echo(outcome.results)
            else:
                console.print()
                screen.render_run_summary(console, json.loads(outcome.results), spec.directory)
                if index is not None:
                    console.print(f"Report: {index}", soft_wrap=True)
        if outcome.code == EXIT_INTERRUPTED:
            click.echo("conformance: interrupted; the labs of this run are removed", err=True)
    ctx.exit(outcome.code)


def _write_run_report(runs: list[Path], out: Path) -> Path | None:
    """The HTML report of a run (or of the targets of a comparison) in `out`; a report
    that cannot be written costs the run nothing but a warning."""
    try:
        return write_report(runs, out)
    except Exception as error:  # the results are written; the report is a view of them
        click.echo(f"conformance: warning: no HTML report: {type(error).__name__}: {error}",
                   err=True)
        return None


@cli.command()
@click.argument("runs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where the report goes [default: report/ in the first run directory].")
@catalogue_option("Requirement catalogue (for the requirements' texts)")
def report(runs: tuple[Path, ...], out: Path | None, catalogue: Path | None) -> None:
    """Write the HTML report of one or more runs (a directory that opens from disk).

    \b
    conformance report pcaps/runs/20261203-101500
    conformance report pcaps/reference/ref pcaps/reference/linux --out /tmp/report

    index.html: verdicts per target, the requirement x target matrix and every case,
    filtered by verdict, RFC and level; a page per case and target with its ladder
    diagram; compare.html for two or more targets, deviations first.
    """
    first = runs[0]
    directory = out or (first.parent if (first / "results.json").exists() else first) / "report"
    index = write_report(list(runs), directory,
                         Catalogue.load(catalogue or default_catalogue_path()))
    click.echo(f"Written: {index}")


def _shard(value: str) -> tuple[int, int]:
    try:
        return parse_shard(value)
    except UsageError as error:
        raise click.BadParameter(str(error)) from error


@cli.command()
@click.argument("runs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The run directory to write (new or empty).")
@click.pass_context
def merge(ctx: click.Context, runs: tuple[Path, ...], out: Path) -> None:
    """Join the runs of `run --shard K/N` into one run directory.

    \b
    conformance run --target linux --shard 1/3 --out shard1   # on three machines
    conformance merge shard1 shard2 shard3 --out merged

    Each target's case files are copied side by side, and results.json, junit.xml and
    the HTML report written from them as one run of every case would write them. Exit status as for
    `run`: 0 no fail and no error, 1 otherwise (or a shard of N missing), 2 usage error
    (a case in two runs, shards of different counts).
    """
    merged = merge_runs(list(runs), out)
    index = _write_run_report([out], out / "report")
    if index is not None:
        click.echo(f"Report: {index}")
    status = EXIT_OK
    for label, results in merged.results.items():
        shards = ", ".join(merged.shards[label]) or "no shards"
        click.echo(f"{out / label}: {merged.cases[label]} cases from {shards}")
        if merged.missing.get(label):
            click.echo(f"conformance: {label}: shards missing: "
                       f"{', '.join(merged.missing[label])}", err=True)
            status = EXIT_FAIL
        status = max(status, exit_status_of(results["cases"]))
    ctx.exit(status)


# --- list, coverage, show --------------------------------------------------------------


@cli.command("list")
@keyword_option("Only cases whose name matches EXPR.")
@catalogue_option("Requirement catalogue")
@suite_option("A directory of your own cases to list too (repeatable), as for `run`.")
@click.option("--json", "as_json", is_flag=True, help="Print the cases as JSON.")
def list_cases(keyword: str | None, catalogue: Path | None, suites: tuple[Path, ...],
               as_json: bool) -> None:
    """List the cases (ID, requirements, level, intent) without running them."""
    cases, problems = collect_cases(keyword, load_catalogue(catalogue, suites), suites)
    if as_json:
        click.echo(json.dumps(cases, indent=2))
    else:
        screen.render_case_list(screen.stdout_console(), cases)
    if problems:
        fail("the catalogue and the cases disagree:\n  " + "\n  ".join(problems), EXIT_USAGE)


@cli.command()
@catalogue_option("Requirement catalogue")
@keyword_option("Count only the cases whose name matches EXPR (pytest -k syntax).")
@click.option("--rfc", "rfcs", multiple=True, metavar="RFC",
              help="Only the requirements of this RFC, e.g. RFC1122 or 1122, or another "
              "ID prefix of the catalogue such as API (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the coverage as JSON.")
def coverage(catalogue: Path | None, keyword: str | None, rfcs: tuple[str, ...],
             as_json: bool) -> None:
    """Each requirement of the catalogue, by RFC and section: its level, the cases that
    check it or the catalogue's reason why none does, and the gaps.

    A gap is a requirement with neither a case nor an `uncovered` reason. Exit status 1
    when there is a gap, a case names an ID the catalogue lacks or no ID at all, or the
    catalogue gives a reason for a requirement that cases do cover; 0 otherwise, 2 for
    usage errors. With -k, only the selected cases count.
    """
    loaded = Catalogue.load(catalogue or default_catalogue_path())
    check_rfcs(loaded, rfcs)
    cases, _ = collect_cases(keyword, loaded)  # disagreements: counted by build_coverage
    result = build_coverage(loaded, cases, rfcs)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        screen.render_coverage(screen.stdout_console(), result)
    if not result.complete:
        fail(f"coverage is incomplete: {result.problem_summary()}", EXIT_FAIL)


@cli.command()
@click.argument("case")
@click.option("--run", "run_directory", type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Run directory, or one target's directory in it "
              "[default: the latest under pcaps/runs].")
@click.option("--target", metavar="NAME", help="Which target of the run.")
def show(case: str, run_directory: Path | None, target: str | None) -> None:
    """Show one case of a run: verdict, observations, DUT calls and the frames.

    CASE is a case ID or any part of one that names a single case.
    """
    directory = layout.target_directory(run_directory or layout.latest_run(), target)
    documents = layout.case_documents(directory)
    document = documents[layout.pick_case(case, list(documents))]
    screen.render_case(screen.stdout_console(), document, directory, requirement_summaries())


# --- compare ---------------------------------------------------------------------------


def _split_targets(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> list[str] | None:
    if value is None:
        return None
    targets = [name.strip() for name in value.split(",")]
    if len(targets) != 2 or not all(targets):
        raise click.BadParameter(f"{value}: want two targets, A,B (e.g. linux,ref)")
    return targets


@cli.command()
@click.argument("run_a", required=False,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("run_b", required=False,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--targets", metavar="A,B", callback=_split_targets,
              help="Run the suites against targets A and B first, then compare the runs.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where compare.json and compare.md go [default: beside RUN_B]; with "
              "--targets, the run directory [default: pcaps/runs/<YYYYmmdd-HHMMSS>].")
@keyword_option("With --targets: only cases whose name matches EXPR (pytest -k syntax).")
@click.option("--slow", is_flag=True, help="With --targets: also run cases marked slow.")
@click.option("--workers", type=click.IntRange(min=1),
              help="With --targets: cases run in parallel (pytest-xdist) [default: "
              f"{WORKERS_PER_CPU} per CPU, here {default_workers()}; fewer for fewer than "
              f"{CASES_PER_WORKER} cases a worker].")
@sysctl_option("With --targets: set a net.* sysctl inside the linux DUT's namespace.")
@ref_setting_option("With --targets: set a reference-stack setting for the ref DUT.")
@agent_option("With --targets: the agent of the external target.")
@catalogue_option("With --targets: requirement catalogue")
@wireshark_option("With --targets: the runs read every capture with Wireshark's "
                  "dissectors (compare leaves wireshark.* out anyway).")
def compare(
    run_a: Path | None, run_b: Path | None, targets: list[str] | None, out: Path | None,
    keyword: str | None, slow: bool, workers: int | None, sysctls: dict[str, str],
    ref_settings: dict[str, str], agent: tuple[str, ...], catalogue: Path | None,
    wireshark: bool,
) -> None:
    """Compare two runs case by case: verdicts, and the observations that differ.

    \b
    conformance compare RUN_A RUN_B
    conformance compare --targets A,B [-k EXPR] [--slow] [--out DIR] ...

    RUN_A and RUN_B are run directories (or one target's directory in them). With
    --targets, the suites run against A and then B, each as `conformance run` would, into
    one run directory with a subdirectory per target (`linux-2/` for a target named
    twice), and the comparison goes there too.

    Each case is `same`; `allowed` (a difference the RFCs allow: the same verdict with
    different observations, a MAY checked on one side and observed as info on the other,
    timings beyond 25 %); `deviation` (one side fails, warns or errs, the other not);
    `differs` (any other difference, such as pass against n/a); `only A` or `only B`.
    compare.md lists the deviations first.

    Exit status: 0 when the comparison is written, whatever the verdicts (deviations
    are what it reports, not errors). With --targets: a run's usage error (2) or
    environment problem (3) stops everything and is the exit status; 130 when
    interrupted; 1 when a run leaves no results or a case ends in `error`.
    """
    erred: list[str] = []
    if targets is None:
        given = [name for name, value in {
            "-k": keyword, "--slow": slow or None, "--workers": workers,
            "--sysctl": sysctls or None, "--ref-setting": ref_settings or None,
            "--agent": agent or None, "--catalogue": catalogue,
            "--no-wireshark": None if wireshark else True}.items() if value is not None]
        if run_a is None or run_b is None:
            raise click.UsageError("compare needs two runs (RUN_A RUN_B) or --targets A,B")
        if given:
            raise click.UsageError(f"{', '.join(given)}: only with --targets")
        comparison = compare_results(layout.results_of(run_a), layout.results_of(run_b))
        directory = out or layout.target_directory(run_b, None).parent
    else:
        if run_a is not None or run_b is not None:
            raise click.UsageError("give either RUN_A RUN_B or --targets A,B, not both")
        specs = target_specs(targets, TargetOptions(sysctls, ref_settings, agent=agent),
                             out=out,
                             keyword=keyword, slow=slow, workers=workers,
                             catalogue=catalogue,
                             wireshark=wireshark)  # usage first, before any lab
        _require_environment(wireshark=wireshark)
        directory, comparison, erred = compare_targets(specs, out, click.echo)
        click.echo()
    json_path, markdown_path = write_comparison(directory, comparison)
    screen.render_comparison(screen.stdout_console(), comparison)
    click.echo(f"Written: {json_path}, {markdown_path}")
    if targets is not None:
        index = _write_run_report([directory], directory / "report")
        if index is not None:
            click.echo(f"Report: {index}")
    if erred:
        fail("cases ended in error (harness or environment), so their comparison says "
             "nothing about the targets:\n  " + "\n  ".join(erred), EXIT_FAIL)


# --- agent-check -----------------------------------------------------------------------


@cli.command("agent-check")
@click.option("--target", metavar="NAME", help="The target whose agent is checked "
              "[default: ref, or external with --agent].")
@agent_option("An agent to check as the external target, as a shell would split it.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_context
def agent_check(ctx: click.Context, target: str | None, agent: tuple[str, ...],
                as_json: bool) -> None:
    """Check a target's agent against docs/agent-protocol.md and show what it supports.

    \b
    conformance agent-check --target lwip
    conformance agent-check --agent "my-agent --tap-fd {CF_TAP_FD}"

    The checks: hello; an unknown call answered unsupported; errno by name; a background
    call that blocks while others are answered; exit with status 0 on end of input, with
    sockets open and a call pending; nothing but responses on stdout. Then every socket
    option (getsockopt) and ioctl request is probed on each kind of socket it applies to.

    Exit status: 0 every check passed; 1 a check failed or the agent did not start;
    2 usage error; 3 environment problem; 130 interrupted (the lab is removed).
    """
    name = target or ("external" if agent else "ref")
    chosen, options = get_target(name), TargetOptions(agent=agent)
    chosen.check_options(options)
    _require_environment()
    install_exit_handlers()
    try:
        report = check_target(chosen, options)
    except KeyboardInterrupt:
        fail("interrupted; the lab is removed", EXIT_INTERRUPTED)
    if as_json:
        click.echo(json.dumps({"target": name, **report.to_json()}, indent=2))
    else:
        render_agent_check(screen.stdout_console(), report, name)
    ctx.exit(EXIT_OK if report.passed else EXIT_FAIL)


# --- fuzz ------------------------------------------------------------------------------


@cli.command()
@click.option("--target", default="ref", show_default=True, metavar="NAME",
              help="The device under test, as for `run`.")
@agent_option("external: the agent of the stack under test, as a shell would split it.")
@click.option("--frames", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="How many mutated frames to send.")
@click.option("--seed", type=click.IntRange(min=0), help="The random seed: the same seed "
              "sends the same frames [default: a new one, printed].")
@click.option("--check-every", type=click.IntRange(min=1), default=DEFAULT_CHECK_EVERY,
              show_default=True, help="Frames between liveness checks.")
@click.option("--replay", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Send the fuzzed frames of a reproducer.pcapng again (instead of new "
              "ones), then check liveness.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where summary.json and a reproducer go [default: "
              "pcaps/fuzz/<YYYYmmdd-HHMMSS>-<target>].")
@sysctl_option("linux: set a net.* sysctl inside the DUT namespace (repeatable).")
@ref_setting_option("ref: set a reference-stack setting (repeatable).")
@click.option("--ref-patch", "ref_patches", multiple=True, metavar="FILE:FUNCTION",
              hidden=True, help="ref: a patch applied to the stack (the project's tests).")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json on stdout.")
@click.pass_context
def fuzz(ctx: click.Context, target: str, agent: tuple[str, ...], frames: int,
         seed: int | None, check_every: int, replay: Path | None, out: Path | None,
         sysctls: dict[str, str],
         ref_settings: dict[str, str], ref_patches: tuple[str, ...], as_json: bool) -> None:
    """Send mutated frames to a target and check that it stays alive.

    \b
    conformance fuzz --target lwip --frames 100000 --seed 7

    The frames are mutations of the suites' probes (Ethernet, ARP, IPv4 with options,
    fragments, ICMP, UDP, TCP with options) aimed at the DUT's open sockets, a listener
    and a connection held open. Every --check-every frames the DUT must answer an echo
    request, a UDP exchange and a new TCP connection with data both ways. The first
    failed check stops the run and keeps the frames since the last good one as
    reproducer.pcapng; summary.json has the figures, the DUT's memory included.

    Exit status: 0 the DUT stayed alive; 1 it lost liveness (or the harness failed);
    2 usage error; 3 environment problem; 130 interrupted (the lab is removed).
    """
    chosen = get_target(target)
    options = TargetOptions(sysctls, ref_settings, ref_patches, agent)
    chosen.check_options(options)
    source: FrameSource
    if replay is not None:
        source, seed = replayed_frames(replay), None
        frames = len(source.frames)
        started = f"replaying the {frames} fuzzed frames of {replay} on {target}"
    else:
        seed = int.from_bytes(os.urandom(4), "big") if seed is None else seed
        source = Mutator(seed)
        started = f"fuzzing {target} with {frames:,} frames, seed {seed} (repeat: --seed {seed})"
    _require_environment()
    install_exit_handlers()
    directory = out or Path("pcaps/fuzz") / f"{layout.run_stamp()}-{target}"
    directory.mkdir(parents=True, exist_ok=True)
    console = screen.terminal_console(sys.stderr if as_json else sys.stdout)
    with console as shown:
        shown.print(started)
        try:
            with FuzzSession(chosen, options, source, seed=seed, frames=frames,
                             check_every=check_every, out=directory) as session, \
                    fuzz_progress(shown, frames) as progress:
                session.summary.replayed = str(replay) if replay is not None else None
                summary = session.run(progress)
                agent_log = session.agent_log()
        except KeyboardInterrupt:
            fail("interrupted; the lab is removed", EXIT_INTERRUPTED)
        document = {**summary.to_json(),
                    "dut_stderr_tail": "" if summary.alive else agent_log[-4000:]}
        (directory / "summary.json").write_text(json.dumps(document, indent=2) + "\n")
        if as_json:
            click.echo(json.dumps(document, indent=2))
        else:
            render_fuzz_summary(shown, summary, directory, agent_log)
    ctx.exit(EXIT_OK if summary.alive else EXIT_FAIL)


def replayed_frames(path: Path) -> Replay:
    """The fuzzed frames of a reproducer; a usage error for a file without any."""
    try:
        replay = Replay([(frame.data, frame.comment) for frame in read_pcapng(path)])
    except ValueError as error:
        raise UsageError(str(error)) from error
    if not replay.frames:
        raise UsageError(f"{path} holds no fuzzed frames (comments 'tester: fuzz frame N')")
    return replay


# --- doctor, cleanup -------------------------------------------------------------------


@cli.command()
def doctor() -> None:
    """Check what this machine offers: privileges, TUN, namespaces, tshark, versions."""
    checks = doctor_checks()
    screen.render_doctor(screen.stdout_console(), checks)
    missing = [check for check in checks if check.required and check.status == "missing"]
    if missing:
        fail(f"environment problem: {missing[0].name}: {missing[0].detail}", EXIT_ENVIRONMENT)


@cli.command()
@click.option("--all", "everything", is_flag=True,
              help="Remove every lab, including those of runs still going.")
def cleanup(everything: bool) -> None:
    """Remove labs left by killed runs (their owner process is gone)."""
    try:
        removed = cleanup_labs(everything=everything)
    except OSError as error:
        raise EnvironmentProblem(f"cannot remove labs: {error} (run as root)") from error
    for name in removed:
        click.echo(f"removed {name}")
    remaining = list_labs()
    if not removed:
        click.echo("no stale labs")
    if remaining:
        click.echo(f"{len(remaining)} labs belong to running processes "
                   f"({', '.join(remaining)}); --all removes them too")


if __name__ == "__main__":
    main()
