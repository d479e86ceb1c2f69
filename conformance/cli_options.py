"""The click pieces the commands of `conformance` share: the error that becomes one line
on stderr and an exit status, the group that maps the project's errors to exit statuses
(cli.py's docstring lists them), and the options several commands declare (each
NAME=VALUE option parsed by the target it applies to)."""

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NoReturn

import click

from conformance.errors import EnvironmentProblem, HarnessError, UsageError
from conformance.run.session import RunEnded
from conformance.targets.external import parse_agent
from conformance.targets.linux import parse_sysctls
from conformance.targets.ref import parse_settings
from conformance.verdicts import EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_USAGE

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class Failure(click.ClickException):
    """An expected error: one message on stderr, no traceback, a chosen exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"conformance: {self.format_message()}", file=file, err=file is None)


def fail(message: str, exit_code: int) -> NoReturn:
    raise Failure(message, exit_code)


class ConformanceGroup(click.Group):
    """Turns the project's error types into exit statuses (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RunEnded as ended:
            if ended.message is None:
                raise click.exceptions.Exit(ended.exit_code) from ended
            raise Failure(ended.message, ended.exit_code) from ended
        except UsageError as error:
            raise Failure(str(error), EXIT_USAGE) from error
        except EnvironmentProblem as error:
            raise Failure(f"environment problem: {error}", EXIT_ENVIRONMENT) from error
        except HarnessError as error:
            raise Failure(f"harness error: {error}", EXIT_FAIL) from error



def _parsed_by(parse: Callable[[Any], Any]) -> Callable[..., Any]:
    """A click callback: the option's value checked by the target that takes it."""
    def callback(ctx: click.Context, param: click.Parameter, values: Any) -> Any:
        try:
            return parse(values)
        except UsageError as error:
            raise click.BadParameter(str(error)) from error
    return callback


def catalogue_option(help: str) -> Decorator:
    return click.option("--catalogue", type=click.Path(exists=True, dir_okay=False,
                        path_type=Path), help=f"{help} [default: suites/requirements/].")


def sysctl_option(help: str) -> Decorator:
    return click.option("--sysctl", "sysctls", multiple=True, metavar="NAME=VALUE",
                        callback=_parsed_by(parse_sysctls), help=help)


def ref_setting_option(help: str) -> Decorator:
    return click.option("--ref-setting", "ref_settings", multiple=True, metavar="NAME=VALUE",
                        callback=_parsed_by(parse_settings), help=help)


def agent_option(help: str) -> Decorator:
    return click.option("--agent", "agent", metavar="CMD", callback=_parsed_by(parse_agent),
                        help=help)


def wireshark_option(help: str) -> Decorator:
    return click.option("--wireshark/--no-wireshark", default=True, show_default=True,
                        help=help)


def keyword_option(help: str) -> Decorator:
    return click.option("-k", "keyword", metavar="EXPR", help=help)


def suite_option(help: str) -> Decorator:
    return click.option("--suite", "suites", multiple=True, metavar="DIR",
                        type=click.Path(exists=True, file_okay=False, path_type=Path),
                        help=help)
