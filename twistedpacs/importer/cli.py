"""
The C{twistedpacs-import} command: parse the command line, walk the sources in
one thread and upload them from several worker threads.
"""

from __future__ import annotations

import argparse
import getpass
import http.client
import os
import queue
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, NoReturn, TextIO
from urllib.parse import unquote, urlsplit

from twistedpacs.importer.client import (
    Outcome,
    OutcomeKind,
    Payload,
    ServerUnreachable,
    Target,
    Uploader,
    basic_authorization,
    classify_response,
    describe_error,
)
from twistedpacs.importer.report import Reporter
from twistedpacs.importer.sources import (
    READ_ERRORS,
    Source,
    count_sources,
    iter_sources,
    skip_reason,
)

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

DEFAULT_URL = "http://localhost:8042"
DEFAULT_JOBS = 4
DEFAULT_TIMEOUT = 120.0

# Archive members up to this size are read into memory by the walking thread.
# Larger members are streamed from the archive while the walk waits. At most
# 2 * jobs + 1 members are held in memory at once: one queued and one in flight
# per worker, and one being read.
IN_MEMORY_LIMIT = 16 * 1024 * 1024

_SEND_ERRORS: tuple[type[BaseException], ...] = (
    *READ_ERRORS,
    http.client.HTTPException,
)


@dataclass
class _Job:
    """
    One source handed to a worker, with an archive member's bytes or stream
    already opened by the walking thread.
    """

    source: Source
    data: bytes | None = None
    stream: IO[bytes] | None = None
    error: str | None = None
    done: threading.Event | None = None


class Importer:
    """
    Walk the sources in one thread and upload them from C{jobs} workers.

    @ivar unreachable: Why the server could not be reached, when that stopped
        the import, else L{None}.
    @ivar connections_opened: The number of connections opened by all
        workers together.
    """

    def __init__(
        self, target: Target, jobs: int, timeout: float, reporter: Reporter
    ) -> None:
        self._target = target
        self._jobs = jobs
        self._timeout = timeout
        self._reporter = reporter
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=jobs)
        self._stop = threading.Event()
        self.unreachable: str | None = None
        self.connections_opened = 0

    def run(self, paths: Sequence[str]) -> None:
        """
        Upload every source under C{paths} and wait for the workers.
        """
        uploaders = [Uploader(self._target, self._timeout) for _ in range(self._jobs)]
        workers = [
            threading.Thread(target=self._work, args=(uploader,), daemon=True)
            for uploader in uploaders
        ]
        for worker in workers:
            worker.start()
        try:
            for source in iter_sources(paths):
                if self._stop.is_set():
                    break
                job = _make_job(source)
                self._queue.put(job)
                if job.done is not None:
                    job.done.wait()
        except BaseException:
            # Interrupted: the workers drop the jobs still queued.
            self._stop.set()
            raise
        finally:
            for _ in workers:
                self._queue.put(None)
            for worker in workers:
                worker.join()
            self.connections_opened = sum(u.connections_opened for u in uploaders)

    def _work(self, uploader: Uploader) -> None:
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                try:
                    if self._stop.is_set():
                        continue
                    outcome = self._process(job, uploader)
                finally:
                    if job.stream is not None:
                        job.stream.close()
                    if job.done is not None:
                        job.done.set()
                self._reporter.record(outcome)
        finally:
            uploader.close()

    def _process(self, job: _Job, uploader: Uploader) -> Outcome:
        source = job.source
        error = job.error or source.error
        if error is not None:
            return Outcome(OutcomeKind.FAILED, source.name, source.size, error)
        try:
            payload, file = _open_payload(job)
        except READ_ERRORS as read_error:
            message = f"read failed: {describe_error(read_error)}"
            return Outcome(OutcomeKind.FAILED, source.name, source.size, message)
        try:
            reason = skip_reason(source, payload.prefix)
            if reason is not None:
                return Outcome(OutcomeKind.SKIPPED, source.name, source.size, reason)
            response = uploader.send(payload)
        except ServerUnreachable as unreachable:
            self.unreachable = str(unreachable)
            self._stop.set()
            message = f"cannot connect to {self._target.url}: {unreachable}"
            return Outcome(OutcomeKind.FAILED, source.name, source.size, message)
        except _SEND_ERRORS as send_error:
            message = f"upload failed: {describe_error(send_error)}"
            return Outcome(OutcomeKind.FAILED, source.name, source.size, message)
        finally:
            if file is not None:
                file.close()
        kind, message = classify_response(response)
        return Outcome(kind, source.name, source.size, message, sent=payload.size)


def _make_job(source: Source) -> _Job:
    """
    Prepare C{source} for a worker. An archive member is opened here, while
    the walk is positioned on it: a small one is read whole, and a large one
    is streamed by the worker while the walk waits on C{done}.
    """
    if not source.in_archive or source.error is not None:
        return _Job(source)
    try:
        member = source.open()
        if source.size <= IN_MEMORY_LIMIT:
            with member:
                return _Job(source, data=member.read())
    except READ_ERRORS as error:
        return _Job(source, error=f"read failed: {describe_error(error)}")
    return _Job(source, stream=member, done=threading.Event())


def _open_payload(job: _Job) -> tuple[Payload, IO[bytes] | None]:
    """
    Return the payload of C{job} and the file to close after sending it, if
    this call opened one.
    """
    if job.data is not None:
        return Payload(len(job.data), data=job.data), None
    if job.stream is not None:
        return Payload(job.source.size, file=job.stream), None
    file = job.source.open()
    try:
        size = os.fstat(file.fileno()).st_size
        return Payload(size, file=file), file
    except BaseException:
        file.close()
        raise


@dataclass(frozen=True)
class Settings:
    """
    The parsed command line.
    """

    target: Target
    paths: list[str]
    jobs: int = DEFAULT_JOBS
    timeout: float = DEFAULT_TIMEOUT


class _ParserExit(Exception):
    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _ArgumentParser(argparse.ArgumentParser):
    """
    An argument parser that writes help to a given stream and raises
    L{_ParserExit} in place of exiting, so L{run} can return the status.
    """

    def __init__(self, stdout: TextIO, prog: str, description: str) -> None:
        super().__init__(prog=prog, description=description)
        self._stdout = stdout

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        super().print_help(file or self._stdout)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _ParserExit(status, message or "")

    def error(self, message: str) -> NoReturn:
        raise _ParserExit(2, f"{self.format_usage()}{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _build_parser(stdout: TextIO) -> _ArgumentParser:
    parser = _ArgumentParser(
        stdout,
        prog="twistedpacs-import",
        description=(
            "Upload DICOM files, folders, ZIP and tar archives to the REST API"
            " of TwistedPACS or Orthanc (POST /instances). Also accepts the"
            " arguments of Orthanc's ImportDicomFiles.py:"
            " HOST PORT PATH [USERNAME PASSWORD]."
        ),
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="file, folder, ZIP or tar archive"
    )
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"server base URL (default {DEFAULT_URL})"
    )
    parser.add_argument("--username", help="user name for HTTP basic authentication")
    parser.add_argument(
        "--password",
        help="password for HTTP basic authentication (prompted for when omitted)",
    )
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=DEFAULT_JOBS,
        help=f"number of parallel uploads (default {DEFAULT_JOBS})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait on the server per upload (default {DEFAULT_TIMEOUT:g})",
    )
    return parser


def _is_orthanc_form(args: Sequence[str]) -> bool:
    if len(args) < 3 or args[0].startswith("-") or "://" in args[0]:
        return False
    return not os.path.exists(args[0]) and args[1].isdigit()


def parse_target(
    url: str, username: str | None, password: str | None
) -> tuple[Target | None, str]:
    """
    Build the L{Target} for C{url}, or return L{None} and an error message.

    Credentials in the URL apply when C{username} is L{None}.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None, f"invalid URL {url!r}: expected http://HOST[:PORT][/PREFIX]"
    try:
        port = parts.port or 80
    except ValueError:
        return None, f"invalid port in URL {url!r}"
    if username is None and parts.username is not None:
        username = unquote(parts.username)
        password = unquote(parts.password or "")
    authorization = None
    if username is not None:
        authorization = basic_authorization(username, password or "")
    display = f"http://{parts.netloc.rpartition('@')[2]}{parts.path.rstrip('/')}"
    path = parts.path.rstrip("/") + "/instances"
    return Target(display, parts.hostname, port, path, authorization), ""


def parse_arguments(args: Sequence[str], stdout: TextIO) -> Settings:
    """
    Parse the command line, in either of its two forms.

    @raise _ParserExit: For C{--help} and for usage errors (status 2).
    """
    parser = _build_parser(stdout)
    if _is_orthanc_form(args):
        if len(args) not in (3, 5):
            parser.error("expected HOST PORT PATH [USERNAME PASSWORD]")
        host = f"[{args[0]}]" if ":" in args[0] else args[0]
        url = f"http://{host}:{args[1]}"
        username = args[3] if len(args) == 5 else None
        password = args[4] if len(args) == 5 else None
        options = argparse.Namespace(
            url=url,
            username=username,
            password=password,
            paths=[args[2]],
            jobs=DEFAULT_JOBS,
            timeout=DEFAULT_TIMEOUT,
        )
    else:
        options = parser.parse_args(args)
    if options.username is not None and options.password is None:
        if not sys.stdin.isatty():
            parser.error("--username needs --password when input is not a terminal")
        options.password = getpass.getpass(f"Password for {options.username}: ")
    target, problem = parse_target(options.url, options.username, options.password)
    if target is None:
        parser.error(problem)
    for path in options.paths:
        if not os.path.exists(path):
            parser.error(f"path not found: {path}")
    if options.timeout <= 0:
        parser.error("--timeout must be a positive number of seconds")
    return Settings(target, list(options.paths), options.jobs, options.timeout)


def check_server(target: Target, timeout: float) -> str | None:
    """
    Open and close one TCP connection to the server, and return why that
    failed, or L{None} when it worked.
    """
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout):
            return None
    except OSError as error:
        return describe_error(error)


def run(args: Sequence[str], stdout: TextIO, stderr: TextIO) -> int:
    """
    Run the import tool with the command-line arguments C{args}.

    @return: The exit status: 0 when nothing failed, 1 when a file failed or
        the server could not be reached, 2 for a usage error.
    """
    try:
        settings = parse_arguments(args, stdout)
    except _ParserExit as parser_exit:
        stderr.write(parser_exit.message)
        return parser_exit.status
    target = settings.target
    problem = check_server(target, settings.timeout)
    if problem is not None:
        stderr.write(
            f"twistedpacs-import: cannot connect to {target.url}: {problem}."
            " Check --url and that the server is running.\n"
        )
        return 1
    progress = stderr.isatty()
    if progress:
        stderr.write("Counting files...\r")
        stderr.flush()
    total_files, total_bytes = count_sources(settings.paths)
    reporter = Reporter(stdout, stderr, total_files, total_bytes, progress)
    importer = Importer(target, settings.jobs, settings.timeout, reporter)
    importer.run(settings.paths)
    reporter.write_summary(max(total_files - reporter.done_files, 0))
    if importer.unreachable is not None:
        stderr.write(
            f"twistedpacs-import: stopped, because the server at {target.url}"
            f" cannot be reached: {importer.unreachable}\n"
        )
        return 1
    return 1 if reporter.failures else 0


def main() -> None:
    """
    Run the import tool from the command line and exit with its status.
    """
    try:
        status = run(sys.argv[1:], sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        sys.stderr.write("\ntwistedpacs-import: interrupted\n")
        status = 130
    sys.exit(status)


if __name__ == "__main__":
    main()
