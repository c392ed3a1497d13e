"""
Tests for L{twistedpacs.importer}, the bulk import tool.

The uploads go to a small HTTP/1.1 server started on 127.0.0.1 in each test,
which records every request and responds with Orthanc's JSON.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import io
import json
import shutil
import socket
import tarfile
import threading
import time
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pydicom
from twisted.trial.unittest import SynchronousTestCase

from tests.server import ServerProcess
from twistedpacs.importer import cli, is_dicom_prefix, iter_sources, run, upload
from twistedpacs.importer.client import (
    Outcome,
    OutcomeKind,
    Payload,
    Target,
    Uploader,
    UploadResponse,
    classify_response,
)
from twistedpacs.importer.report import Reporter
from twistedpacs.importer.sources import (
    MEDIA_STORAGE_DIRECTORY_UID,
    Source,
    count_sources,
    media_storage_sop_class,
    skip_reason,
)

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"

# Real files from pydicom, with distinct bytes: Part 10 files in several
# transfer syntaxes and two bare data sets without File Meta information.
DICOM_NAMES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "rtplan.dcm",
    "rtdose.dcm",
    "rtstruct.dcm",
    "test-SR.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle.dcm",
    "image_dfl.dcm",
    "ExplVR_LitEndNoMeta.dcm",
    "ExplVR_BigEndNoMeta.dcm",
]

# Where each file goes in the folder tree, relative to its root.
TREE_LAYOUT = {
    "CT_small.dcm": "patient1/CT_small.dcm",
    "MR_small.dcm": "patient1/study/series/MR_small.dcm",
    "MR_small_bigendian.dcm": "patient1/study/series/MR_small_bigendian.dcm",
    "rtplan.dcm": "patient2/rt/rtplan.dcm",
    "rtdose.dcm": "patient2/rt/rtdose",
    "rtstruct.dcm": "patient2/rt/deeper/still/rtstruct.dcm",
    "test-SR.dcm": "reports/test-SR.dcm",
    "JPEG2000.dcm": "reports/images/JPEG2000.dcm",
    "SC_rgb_rle.dcm": "SC_rgb_rle.dcm",
    "image_dfl.dcm": "zz/image_dfl.DCM",
    "ExplVR_LitEndNoMeta.dcm": "bare/little_endian",
    "ExplVR_BigEndNoMeta.dcm": "bare/big_endian",
}

REJECT_MARKER = b"REJECT-THIS-FILE"

# The tar writer for each archive suffix.
TAR_WRITERS: dict[str, Callable[..., tarfile.TarFile]] = {
    ".tar": tarfile.TarFile.taropen,
    ".tar.gz": tarfile.TarFile.gzopen,
    ".tgz": tarfile.TarFile.gzopen,
    ".tar.bz2": tarfile.TarFile.bz2open,
    ".tar.xz": tarfile.TarFile.xzopen,
}


def read_test_file(name: str) -> bytes:
    """
    Return the bytes of one of pydicom's test files.
    """
    return (TEST_FILES / name).read_bytes()


def free_port() -> int:
    """
    Return a TCP port on 127.0.0.1 that was free a moment ago.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class RecordingServer(http.server.ThreadingHTTPServer):
    """
    An HTTP/1.1 server that records C{POST /instances} requests and responds
    as Orthanc does: C{Success} for new bytes, C{AlreadyStored} for bytes it
    has seen, and 400 for a body containing L{REJECT_MARKER}.

    @ivar drop_connections: Whether to close each connection 50 ms after its
        first response, without a C{Connection: close} header, so the client
        has sent its next request when the connection goes away.
    """

    daemon_threads = True

    def __init__(self, drop_connections: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.drop_connections = drop_connections
        self.lock = threading.Lock()
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.connections = 0
        self.seen: set[str] = set()
        self.required_authorization: str | None = None
        self.instances_path = "/instances"
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        """
        The base URL of the server.
        """
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def port(self) -> int:
        """
        The TCP port the server listens on.
        """
        return int(self.server_address[1])


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """
    The request handler of L{RecordingServer}, one instance per connection.
    """

    protocol_version = "HTTP/1.1"
    server: RecordingServer

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, format: str, *args: object) -> None:
        """
        Keep the test output free of access log lines.
        """

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.bodies.append(body)
            self.server.headers.append(dict(self.headers.items()))
            self.server.paths.append(self.path)
        required = self.server.required_authorization
        if self.path != self.server.instances_path:
            self.respond(404, {"HttpError": "Not Found", "Message": "Unknown URI"})
        elif required is not None and self.headers.get("Authorization") != required:
            self.respond(401, {"HttpError": "Unauthorized", "Message": "Bad auth"})
        elif REJECT_MARKER in body:
            self.respond(
                400, {"HttpError": "Bad Request", "Message": "Bad file format"}
            )
        else:
            self.respond(200, {"ID": "0", "Status": self.store(body)})
        if self.server.drop_connections:
            time.sleep(0.05)
            self.close_connection = True

    def store(self, body: bytes) -> str:
        digest = hashlib.sha1(body).hexdigest()
        with self.server.lock:
            if digest in self.server.seen:
                return "AlreadyStored"
            self.server.seen.add(digest)
        return "Success"

    def respond(self, status: int, document: dict[str, str]) -> None:
        content = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)


class TerminalStream(io.StringIO):
    """
    A text stream that claims to be a terminal.
    """

    def isatty(self) -> bool:
        return True


class ImporterTestCase(SynchronousTestCase):
    """
    Helpers to build folder trees and archives and to run the tool.
    """

    def start_server(self, drop_connections: bool = False) -> RecordingServer:
        server = RecordingServer(drop_connections)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join()

        self.addCleanup(stop)
        return server

    def make_tree(self) -> Path:
        """
        Build a folder tree of the DICOM test files, nested several levels
        deep, with a DICOMDIR and text files that are not DICOM.
        """
        root = Path(self.mktemp())
        for name, relative in TREE_LAYOUT.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(TEST_FILES / name, target)
        shutil.copyfile(TEST_FILES / "dicomdirtests" / "DICOMDIR", root / "DICOMDIR")
        shutil.copyfile(TEST_FILES / "README.txt", root / "README.txt")
        shutil.copyfile(TEST_FILES / "rtplan.dump", root / "patient2" / "rtplan.dump")
        return root

    def make_zip(self, root: Path) -> Path:
        """
        Pack the files under C{root} into a ZIP archive.
        """
        archive = Path(self.mktemp() + ".zip")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as output:
            for path in sorted(root.rglob("*")):
                output.write(path, path.relative_to(root).as_posix())
        return archive

    def make_tar(self, root: Path, suffix: str = ".tar.gz") -> Path:
        """
        Pack the files under C{root} into a tar archive, compressed as
        C{suffix} names.
        """
        archive = Path(self.mktemp() + suffix)
        with TAR_WRITERS[suffix](archive, "w") as tar:
            tar.add(root, arcname="export")
        return archive

    def run_tool(self, *args: str, terminal: bool = False) -> tuple[int, str, str]:
        """
        Run the tool and return its exit status, stdout and stderr.
        """
        stdout = io.StringIO()
        stderr = TerminalStream() if terminal else io.StringIO()
        status = run(list(args), stdout, stderr)
        return status, stdout.getvalue(), stderr.getvalue()

    def expected_bodies(self) -> Counter[bytes]:
        return Counter(read_test_file(name) for name in DICOM_NAMES)


class IsDicomPrefixTests(SynchronousTestCase):
    """
    Tests for L{is_dicom_prefix}.
    """

    def test_is_dicom_prefix_part10_files(self) -> None:
        """
        Every pydicom test file with C{DICM} after its preamble is DICOM.
        """
        checked = 0
        for path in sorted(TEST_FILES.glob("*.dcm")):
            prefix = path.read_bytes()[:512]
            if prefix[128:132] == b"DICM":
                self.assertTrue(is_dicom_prefix(prefix), path.name)
                checked += 1
        self.assertGreater(checked, 50)

    def test_is_dicom_prefix_bare_data_sets(self) -> None:
        """
        Bare data sets starting in group 0x0008 are DICOM in both byte orders.
        """
        for name in ["ExplVR_LitEndNoMeta.dcm", "ExplVR_BigEndNoMeta.dcm"]:
            self.assertTrue(is_dicom_prefix(read_test_file(name)[:512]), name)

    def test_is_dicom_prefix_implicit_little_endian(self) -> None:
        """
        An implicit VR element of group 0x0008 with an even length is DICOM.
        """
        element = b"\x08\x00\x05\x00\x0a\x00\x00\x00ISO_IR 100"
        self.assertTrue(is_dicom_prefix(element))

    def test_is_dicom_prefix_rejects_other_bytes(self) -> None:
        """
        Text, zeros, short input, an odd implicit length and other groups are
        not DICOM.
        """
        cases = {
            "text": read_test_file("README.txt")[:512],
            "zeros": bytes(512),
            "short": b"\x08\x00",
            "empty": b"",
            "odd length": b"\x08\x00\x05\x00\x0b\x00\x00\x00ISO_IR 100 ",
            "group 0x0010": b"\x10\x00\x10\x00PN\x04\x00Doe^",
            "big endian without VR": b"\x00\x08\x00\x05\x00\x00\x00\x0a",
            "ZIP": b"PK\x03\x04" + bytes(200),
        }
        for label, prefix in cases.items():
            self.assertFalse(is_dicom_prefix(prefix), label)


class SkipReasonTests(SynchronousTestCase):
    """
    Tests for L{skip_reason} and L{media_storage_sop_class}.
    """

    def source(self, base_name: str, in_archive: bool = False) -> Source:
        return Source(base_name, base_name, 0, in_archive=in_archive)

    def test_skip_reason_dicomdir_by_name(self) -> None:
        """
        A file named DICOMDIR, in any case, is skipped.
        """
        prefix = read_test_file("CT_small.dcm")[:512]
        for name in ["DICOMDIR", "dicomdir", "DicomDir"]:
            self.assertEqual(skip_reason(self.source(name), prefix), "DICOMDIR")

    def test_skip_reason_dicomdir_by_sop_class(self) -> None:
        """
        A Media Storage Directory file is skipped whatever its name.
        """
        data = (TEST_FILES / "dicomdirtests" / "DICOMDIR-empty.dcm").read_bytes()
        prefix = data[:512]
        self.assertEqual(media_storage_sop_class(prefix), MEDIA_STORAGE_DIRECTORY_UID)
        self.assertEqual(skip_reason(self.source("x.dcm"), prefix), "DICOMDIR")

    def test_skip_reason_image_uploaded(self) -> None:
        """
        A CT image gets no skip reason, and its SOP class is read.
        """
        prefix = read_test_file("CT_small.dcm")[:512]
        self.assertEqual(media_storage_sop_class(prefix), "1.2.840.10008.5.1.4.1.1.2")
        self.assertIsNone(skip_reason(self.source("CT_small.dcm"), prefix))

    def test_skip_reason_not_dicom(self) -> None:
        """
        A text file is skipped as not DICOM.
        """
        prefix = read_test_file("README.txt")[:512]
        self.assertEqual(skip_reason(self.source("README.txt"), prefix), "not DICOM")

    def test_skip_reason_nested_archive(self) -> None:
        """
        An archive inside an archive is skipped and named as such.
        """
        source = self.source("inner.zip", in_archive=True)
        self.assertEqual(
            skip_reason(source, b"PK\x03\x04"), "archive inside an archive"
        )


class IterSourcesTests(ImporterTestCase):
    """
    Tests for L{iter_sources} and L{count_sources}.
    """

    def test_iter_sources_folder_sorted_recursive(self) -> None:
        """
        A folder yields every file below it, walked in name order.
        """
        root = self.make_tree()
        names = [source.name for source in iter_sources([str(root)])]
        expected = [
            "DICOMDIR",
            "README.txt",
            "SC_rgb_rle.dcm",
            "bare/big_endian",
            "bare/little_endian",
            "patient1/CT_small.dcm",
            "patient1/study/series/MR_small.dcm",
            "patient1/study/series/MR_small_bigendian.dcm",
            "patient2/rt/deeper/still/rtstruct.dcm",
            "patient2/rt/rtdose",
            "patient2/rt/rtplan.dcm",
            "patient2/rtplan.dump",
            "reports/images/JPEG2000.dcm",
            "reports/test-SR.dcm",
            "zz/image_dfl.DCM",
        ]
        self.assertEqual(names, [str(root / relative) for relative in expected])

    def test_iter_sources_sizes_and_bytes(self) -> None:
        """
        Each file source has the file's size and opens to the file's bytes.
        """
        root = self.make_tree()
        for source in iter_sources([str(root)]):
            data = Path(source.name).read_bytes()
            self.assertEqual(source.size, len(data))
            self.assertFalse(source.in_archive)
            with source.open() as file:
                self.assertEqual(file.read(), data)

    def test_iter_sources_zip_members(self) -> None:
        """
        A ZIP archive yields its members with their names, sizes and bytes.
        """
        root = self.make_tree()
        archive = self.make_zip(root)
        members = {}
        for source in iter_sources([str(archive)]):
            self.assertTrue(source.in_archive)
            with source.open() as file:
                members[source.name] = (source.size, source.base_name, file.read())
        for name, relative in TREE_LAYOUT.items():
            size, base_name, data = members[f"{archive}:{relative}"]
            self.assertEqual(data, read_test_file(name))
            self.assertEqual(size, len(data))
            self.assertEqual(base_name, relative.rpartition("/")[2])
        self.assertEqual(len(members), len(TREE_LAYOUT) + 3)

    def test_iter_sources_tar_members(self) -> None:
        """
        Every tar flavour yields its regular members with their bytes when
        each is opened before the iterator advances.
        """
        root = self.make_tree()
        for suffix in [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"]:
            archive = self.make_tar(root, suffix)
            members = {}
            for source in iter_sources([str(archive)]):
                with source.open() as file:
                    members[source.name] = file.read()
            for name, relative in TREE_LAYOUT.items():
                data = members[f"{archive}:export/{relative}"]
                self.assertEqual(data, read_test_file(name), suffix)
            self.assertEqual(len(members), len(TREE_LAYOUT) + 3, suffix)

    def test_iter_sources_archives_inside_folder(self) -> None:
        """
        Archives found in a folder are read, and their members counted.
        """
        root = self.make_tree()
        outer = Path(self.mktemp())
        outer.mkdir()
        shutil.copyfile(self.make_zip(root), outer / "a.zip")
        shutil.copyfile(self.make_tar(root), outer / "b.tar.gz")
        names = [source.name for source in iter_sources([str(outer)])]
        zipped = [name for name in names if name.startswith(f"{outer / 'a.zip'}:")]
        tarred = [name for name in names if name.startswith(f"{outer / 'b.tar.gz'}:")]
        self.assertEqual(len(zipped), len(TREE_LAYOUT) + 3)
        self.assertEqual(len(tarred), len(TREE_LAYOUT) + 3)
        self.assertEqual(len(names), 2 * (len(TREE_LAYOUT) + 3))

    def test_iter_sources_invalid_archive(self) -> None:
        """
        A broken archive yields one source whose error names the problem.
        """
        broken = Path(self.mktemp() + ".zip")
        broken.write_bytes(b"this is no ZIP archive")
        sources = list(iter_sources([str(broken)]))
        self.assertEqual(len(sources), 1)
        self.assertIn("invalid ZIP archive", sources[0].error or "")

    def test_count_sources_totals(self) -> None:
        """
        L{count_sources} returns the file count and their total size.
        """
        root = self.make_tree()
        sizes = [path.stat().st_size for path in root.rglob("*") if path.is_file()]
        self.assertEqual(count_sources([str(root)]), (len(sizes), sum(sizes)))


class ClassifyResponseTests(SynchronousTestCase):
    """
    Tests for L{classify_response}.
    """

    def test_classify_response_cases(self) -> None:
        """
        Statuses, JSON messages and reasons map to the expected outcomes.
        """
        cases = [
            (
                UploadResponse(200, "OK", b'{"Status": "Success"}'),
                OutcomeKind.STORED,
                "",
            ),
            (
                UploadResponse(200, "OK", b'{"Status": "AlreadyStored"}'),
                OutcomeKind.ALREADY_STORED,
                "",
            ),
            (
                UploadResponse(400, "Bad Request", b'{"Message": "Bad file format"}'),
                OutcomeKind.FAILED,
                "Bad file format (HTTP 400)",
            ),
            (
                UploadResponse(
                    507,
                    "Insufficient Storage",
                    b'{"Message": "Full", "Details": "quota"}',
                ),
                OutcomeKind.FAILED,
                "Full: quota (HTTP 507)",
            ),
            (
                UploadResponse(502, "Bad Gateway", b"<html>proxy</html>"),
                OutcomeKind.FAILED,
                "Bad Gateway (HTTP 502)",
            ),
            (
                UploadResponse(200, "OK", b"[]"),
                OutcomeKind.FAILED,
                "unexpected response: HTTP 200 with Status None",
            ),
        ]
        for response, kind, message in cases:
            self.assertEqual(classify_response(response), (kind, message), response)


class ReporterTests(SynchronousTestCase):
    """
    Tests for L{Reporter}, with a fake clock.
    """

    def make_reporter(
        self, terminal: bool
    ) -> tuple[Reporter, io.StringIO, io.StringIO]:
        self.now = 0.0
        stdout = io.StringIO()
        stderr = TerminalStream() if terminal else io.StringIO()
        reporter = Reporter(
            stdout, stderr, 3, 3_000_000, progress=terminal, clock=lambda: self.now
        )
        return reporter, stdout, stderr

    def record_three(self, reporter: Reporter) -> None:
        """
        Record one stored, one failed and one skipped file of 1 MB each, one
        second apart.
        """
        self.now = 1.0
        reporter.record(Outcome(OutcomeKind.STORED, "a", 10**6, sent=10**6))
        self.now = 2.0
        failed = Outcome(OutcomeKind.FAILED, "b", 10**6, "Bad (HTTP 400)", 10**6)
        reporter.record(failed)
        self.now = 3.0
        reporter.record(Outcome(OutcomeKind.SKIPPED, "c", 10**6, "not DICOM"))

    def test_reporter_progress_line_eta(self) -> None:
        """
        The progress line shows files, megabytes, the rate and the time left.
        """
        reporter, _, stderr = self.make_reporter(terminal=True)
        self.now = 1.0
        reporter.record(Outcome(OutcomeKind.STORED, "a", 10**6, sent=10**6))
        expected = "1/3 files  1.0/3.0 MB  1.0 MB/s  ETA 0:00:02"
        self.assertEqual(reporter.progress_line(1.0), expected)
        self.assertEqual(stderr.getvalue(), "\r" + expected)

    def test_reporter_terminal_output(self) -> None:
        """
        On a terminal, the bar is cleared to print a failure and finishes at
        the full count.
        """
        reporter, stdout, stderr = self.make_reporter(terminal=True)
        self.record_three(reporter)
        output = stderr.getvalue()
        self.assertIn("\r" + " " * 44 + "\rfailed b: Bad (HTTP 400)\n", output)
        self.assertTrue(output.endswith("3/3 files  3.0/3.0 MB  1.0 MB/s  ETA 0:00:00"))
        self.assertEqual(stdout.getvalue(), "")

    def test_reporter_summary(self) -> None:
        """
        The summary counts each outcome, lists failures and gives the rate of
        the bytes sent.
        """
        reporter, stdout, _ = self.make_reporter(terminal=False)
        self.record_three(reporter)
        reporter.write_summary(not_attempted=2)
        self.assertEqual(
            stdout.getvalue().splitlines(),
            [
                "stored a",
                "failed b: Bad (HTTP 400)",
                "skipped c (not DICOM)",
                "Stored: 1",
                "Already stored: 0",
                "Skipped: 1",
                "  not DICOM: 1",
                "Failed: 1",
                "  b: Bad (HTTP 400)",
                "Not attempted: 2",
                "Sent 2.0 MB in 3.0 s (0.7 MB/s)",
            ],
        )


class UploadTests(ImporterTestCase):
    """
    Tests for L{upload} and L{Uploader}.
    """

    def test_upload_headers_and_body(self) -> None:
        """
        One upload sends the raw bytes with the DICOM content type, its
        length, the authorization and no C{Expect} header.
        """
        server = self.start_server()
        data = read_test_file("CT_small.dcm")
        target = Target(server.url, "127.0.0.1", server.port, "/instances", "Basic x")
        connection = http_connection(server.port)
        self.addCleanup(connection.close)
        response = upload(connection, target, io.BytesIO(data), len(data))
        self.assertEqual(response.status, 200)
        self.assertEqual(json.loads(response.body)["Status"], "Success")
        self.assertEqual(server.bodies, [data])
        headers = server.headers[0]
        self.assertEqual(headers["Content-Type"], "application/dicom")
        self.assertEqual(headers["Content-Length"], str(len(data)))
        self.assertEqual(headers["Authorization"], "Basic x")
        self.assertNotIn("Expect", headers)

    def test_uploader_closed_connection_reopened(self) -> None:
        """
        When the server closes a keep-alive connection, each file still
        arrives once, each over a new connection.
        """
        server = self.start_server(drop_connections=True)
        target = Target(server.url, "127.0.0.1", server.port, "/instances")
        uploader = Uploader(target, timeout=10)
        self.addCleanup(uploader.close)
        names = DICOM_NAMES[:4]
        for name in names:
            data = read_test_file(name)
            response = uploader.send(Payload(len(data), data=data))
            self.assertEqual(response.status, 200)
        self.assertEqual(server.bodies, [read_test_file(name) for name in names])
        self.assertEqual(uploader.connections_opened, len(names))
        # The server closes each connection 50 ms after its response, once the
        # next request is on its way, so that request has to be sent again.
        self.assertGreaterEqual(uploader.resends, 1)


def http_connection(port: int) -> http.client.HTTPConnection:
    """
    Open an HTTP connection to 127.0.0.1 on C{port}.
    """
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10)


class RunTests(ImporterTestCase):
    """
    Tests for L{run}, the whole tool against a recording server.
    """

    def test_run_folder_each_file_once(self) -> None:
        """
        Every DICOM file of a folder tree arrives once with its exact bytes,
        and the DICOMDIR and text files are skipped.
        """
        server = self.start_server()
        root = self.make_tree()
        status, stdout, stderr = self.run_tool("--url", server.url, str(root))
        self.assertEqual(status, 0, stdout + stderr)
        self.assertEqual(Counter(server.bodies), self.expected_bodies())
        self.assertEqual(len(server.bodies), len(DICOM_NAMES))
        lines = stdout.splitlines()
        self.assertIn(f"skipped {root / 'DICOMDIR'} (DICOMDIR)", lines)
        self.assertIn(f"skipped {root / 'README.txt'} (not DICOM)", lines)
        self.assertIn(f"skipped {root / 'patient2' / 'rtplan.dump'} (not DICOM)", lines)
        for relative in TREE_LAYOUT.values():
            self.assertIn(f"stored {root / relative}", lines)
        self.assertIn(f"Stored: {len(DICOM_NAMES)}", lines)
        self.assertIn("Already stored: 0", lines)
        self.assertIn("Skipped: 3", lines)
        self.assertIn("  DICOMDIR: 1", lines)
        self.assertIn("  not DICOM: 2", lines)
        self.assertIn("Failed: 0", lines)
        self.assertEqual(stderr, "")

    def test_run_zip_each_file_once(self) -> None:
        """
        Every DICOM member of a ZIP archive arrives once with its bytes.
        """
        server = self.start_server()
        archive = self.make_zip(self.make_tree())
        status, stdout, stderr = self.run_tool("--url", server.url, str(archive))
        self.assertEqual(status, 0, stdout + stderr)
        self.assertEqual(Counter(server.bodies), self.expected_bodies())
        self.assertIn(f"skipped {archive}:DICOMDIR (DICOMDIR)", stdout.splitlines())
        self.assertIn("Skipped: 3", stdout.splitlines())

    def test_run_tar_each_file_once(self) -> None:
        """
        Every DICOM member of a tar.gz archive arrives once with its bytes.
        """
        server = self.start_server()
        archive = self.make_tar(self.make_tree())
        status, stdout, stderr = self.run_tool("--url", server.url, str(archive))
        self.assertEqual(status, 0, stdout + stderr)
        self.assertEqual(Counter(server.bodies), self.expected_bodies())
        lines = stdout.splitlines()
        self.assertIn(f"skipped {archive}:export/README.txt (not DICOM)", lines)
        self.assertIn(f"Stored: {len(DICOM_NAMES)}", lines)

    def test_run_large_members_streamed(self) -> None:
        """
        Archive members above the in-memory limit are streamed from the
        archive and arrive with their exact bytes.
        """
        self.patch(cli, "IN_MEMORY_LIMIT", 0)
        server = self.start_server()
        root = self.make_tree()
        paths = [str(self.make_zip(root)), str(self.make_tar(root, ".tar.xz"))]
        status, stdout, stderr = self.run_tool("--url", server.url, *paths)
        self.assertEqual(status, 0, stdout + stderr)
        expected = self.expected_bodies()
        self.assertEqual(Counter(server.bodies), expected + expected)
        self.assertIn(f"Already stored: {len(DICOM_NAMES)}", stdout.splitlines())

    def test_run_folder_then_archives_already_stored(self) -> None:
        """
        Importing the same files from a folder, a ZIP and a tar.gz stores
        them once and reports the repeats as already stored.
        """
        server = self.start_server()
        root = self.make_tree()
        archives = [str(self.make_zip(root)), str(self.make_tar(root))]
        status, stdout, _ = self.run_tool("--url", server.url, str(root), *archives)
        self.assertEqual(status, 0, stdout)
        lines = stdout.splitlines()
        self.assertIn(f"Stored: {len(DICOM_NAMES)}", lines)
        self.assertIn(f"Already stored: {2 * len(DICOM_NAMES)}", lines)
        self.assertIn("Skipped: 9", lines)
        self.assertEqual(len(server.bodies), 3 * len(DICOM_NAMES))
        self.assertEqual(len(server.seen), len(DICOM_NAMES))

    def test_run_keep_alive_reuses_connections(self) -> None:
        """
        The workers reuse their connections, so far fewer connections are
        opened than files are sent.
        """
        server = self.start_server()
        root = self.make_tree()
        status, _, _ = self.run_tool("--url", server.url, "--jobs", "2", str(root))
        self.assertEqual(status, 0)
        self.assertEqual(len(server.bodies), len(DICOM_NAMES))
        # One probe connection before the walk, then one per worker.
        self.assertLessEqual(server.connections, 3)

    def test_run_dropped_connections_retried(self) -> None:
        """
        When the server drops every connection after one response, each file
        is sent again on a new connection and arrives exactly once.
        """
        server = self.start_server(drop_connections=True)
        root = self.make_tree()
        status, stdout, _ = self.run_tool("--url", server.url, "--jobs", "1", str(root))
        self.assertEqual(status, 0, stdout)
        self.assertEqual(Counter(server.bodies), self.expected_bodies())
        self.assertIn(f"Stored: {len(DICOM_NAMES)}", stdout.splitlines())

    def test_run_basic_auth_header(self) -> None:
        """
        C{--username} and C{--password} send HTTP basic authentication on
        every request.
        """
        server = self.start_server()
        expected = "Basic " + base64.b64encode(b"alice:s\xc3\xa9cret").decode()
        server.required_authorization = expected
        root = self.make_tree()
        status, stdout, _ = self.run_tool(
            "--url",
            server.url,
            "--username",
            "alice",
            "--password",
            "s\xe9cret",
            str(root),
        )
        self.assertEqual(status, 0, stdout)
        self.assertEqual(len(server.headers), len(DICOM_NAMES))
        for headers in server.headers:
            self.assertEqual(headers["Authorization"], expected)

    def test_run_wrong_password_fails(self) -> None:
        """
        A 401 from the server fails every file with the server's message.
        """
        server = self.start_server()
        server.required_authorization = "Basic nobody"
        root = self.make_tree()
        status, stdout, _ = self.run_tool("--url", server.url, str(root))
        self.assertEqual(status, 1)
        lines = stdout.splitlines()
        self.assertIn(f"failed {root / 'SC_rgb_rle.dcm'}: Bad auth (HTTP 401)", lines)
        self.assertIn(f"Failed: {len(DICOM_NAMES)}", lines)

    def test_run_rejected_file_exit_one(self) -> None:
        """
        A file the server rejects with 400 is listed with the server's
        message, the others are stored, and the exit status is 1.
        """
        server = self.start_server()
        root = self.make_tree()
        rejected = root / "patient1" / "rejected.dcm"
        rejected.write_bytes(read_test_file("MR_small.dcm") + REJECT_MARKER)
        status, stdout, _ = self.run_tool("--url", server.url, str(root))
        self.assertEqual(status, 1)
        lines = stdout.splitlines()
        self.assertIn(f"failed {rejected}: Bad file format (HTTP 400)", lines)
        self.assertIn("Failed: 1", lines)
        self.assertIn(f"  {rejected}: Bad file format (HTTP 400)", lines)
        self.assertIn(f"Stored: {len(DICOM_NAMES)}", lines)

    def test_run_broken_archive_fails(self) -> None:
        """
        A broken ZIP archive in a folder is one failure, and the other files
        are still stored.
        """
        server = self.start_server()
        root = self.make_tree()
        broken = root / "broken.zip"
        broken.write_bytes(b"this is no ZIP archive")
        status, stdout, _ = self.run_tool("--url", server.url, str(root))
        self.assertEqual(status, 1)
        lines = stdout.splitlines()
        message = f"failed {broken}: invalid ZIP archive: File is not a zip file"
        self.assertIn(message, lines)
        self.assertIn(f"Stored: {len(DICOM_NAMES)}", lines)
        self.assertIn("Failed: 1", lines)

    def test_run_server_down_exit_one(self) -> None:
        """
        With nothing listening on the port, the tool reports that it cannot connect
        and exits with 1 without walking the files.
        """
        root = self.make_tree()
        url = f"http://127.0.0.1:{free_port()}"
        status, stdout, stderr = self.run_tool("--url", url, str(root))
        self.assertEqual(status, 1)
        self.assertEqual(stdout, "")
        self.assertIn(f"cannot connect to {url}: Connection refused", stderr)

    def test_run_server_gone_midway_stops(self) -> None:
        """
        When the server stops during the import, the tool stops, counts the
        files not attempted and exits with 1.
        """
        server = self.start_server()
        root = self.make_tree()
        port = server.port
        real_send = Uploader.send

        def send_then_stop(uploader: Uploader, payload: Payload) -> UploadResponse:
            response = real_send(uploader, payload)
            if len(server.bodies) == 2 and server.socket.fileno() >= 0:
                server.shutdown()
                server.server_close()
                uploader.close()
            return response

        self.patch(Uploader, "send", send_then_stop)
        status, stdout, stderr = self.run_tool(
            "--url", f"http://127.0.0.1:{port}", "--jobs", "1", str(root)
        )
        self.assertEqual(status, 1)
        self.assertEqual(len(server.bodies), 2)
        self.assertIn("Stored: 2", stdout.splitlines())
        self.assertIn("stopped, because the server", stderr)
        self.assertIn("Connection refused", stdout)
        self.assertIn("Not attempted:", stdout)

    def test_run_orthanc_arguments(self) -> None:
        """
        The arguments of Orthanc's sample script, HOST PORT PATH, work.
        """
        server = self.start_server()
        root = self.make_tree()
        status, stdout, _ = self.run_tool("127.0.0.1", str(server.port), str(root))
        self.assertEqual(status, 0, stdout)
        self.assertEqual(Counter(server.bodies), self.expected_bodies())
        self.assertNotIn("Authorization", server.headers[0])

    def test_run_orthanc_arguments_credentials(self) -> None:
        """
        HOST PORT PATH USERNAME PASSWORD sends basic authentication.
        """
        server = self.start_server()
        server.required_authorization = "Basic " + base64.b64encode(b"u:p").decode()
        root = self.make_tree()
        status, stdout, _ = self.run_tool(
            "127.0.0.1", str(server.port), str(root), "u", "p"
        )
        self.assertEqual(status, 0, stdout)
        self.assertEqual(len(server.bodies), len(DICOM_NAMES))

    def test_run_plain_lines_without_terminal(self) -> None:
        """
        Without a terminal there is one plain line per file and no progress
        bar.
        """
        server = self.start_server()
        root = self.make_tree()
        status, stdout, stderr = self.run_tool("--url", server.url, str(root))
        self.assertEqual(status, 0)
        files = len(TREE_LAYOUT) + 3
        per_file = [
            line
            for line in stdout.splitlines()
            if line.startswith(("stored ", "already stored ", "skipped ", "failed "))
        ]
        self.assertEqual(len(per_file), files)
        self.assertNotIn("\r", stdout + stderr)

    def test_run_progress_bar_on_terminal(self) -> None:
        """
        On a terminal, stderr shows a progress line rewritten with carriage
        returns, and stdout holds only the summary.
        """
        server = self.start_server()
        root = self.make_tree()
        status, stdout, stderr = self.run_tool(
            "--url", server.url, str(root), terminal=True
        )
        self.assertEqual(status, 0)
        files = len(TREE_LAYOUT) + 3
        self.assertIn(f"\r{files}/{files} files", stderr)
        self.assertIn("MB/s  ETA 0:00:00", stderr)
        self.assertTrue(stderr.endswith("\n"))
        self.assertTrue(stdout.startswith(f"Stored: {len(DICOM_NAMES)}\n"), stdout)
        for line in stdout.splitlines():
            self.assertFalse(line.startswith(("stored ", "skipped ")), line)

    def test_run_progress_failures_above_bar(self) -> None:
        """
        On a terminal, a failed file is still printed as its own line.
        """
        server = self.start_server()
        root = self.make_tree()
        rejected = root / "rejected.dcm"
        rejected.write_bytes(read_test_file("CT_small.dcm") + REJECT_MARKER)
        status, _, stderr = self.run_tool("--url", server.url, str(root), terminal=True)
        self.assertEqual(status, 1)
        self.assertIn(f"failed {rejected}: Bad file format (HTTP 400)\n", stderr)

    def test_run_url_path_prefix(self) -> None:
        """
        A path in C{--url} is a prefix of C{/instances}, so a server behind
        a reverse proxy path is reached.
        """
        server = self.start_server()
        server.instances_path = "/pacs/instances"
        root = self.make_tree()
        status, stdout, _ = self.run_tool("--url", server.url + "/pacs/", str(root))
        self.assertEqual(status, 0, stdout)
        self.assertEqual(server.paths, ["/pacs/instances"] * len(DICOM_NAMES))

    def test_run_usage_errors(self) -> None:
        """
        Bad command lines exit with 2 and name the problem.
        """
        root = self.make_tree()
        missing = str(root / "missing")
        cases = [
            ([], "the following arguments are required: PATH"),
            (["--jobs", "0", str(root)], "must be at least 1"),
            (["--jobs", "many", str(root)], "invalid number"),
            ([missing], f"path not found: {missing}"),
            (["--url", "ftp://127.0.0.1", str(root)], "invalid URL"),
            (["--url", "http://127.0.0.1:99999", str(root)], "invalid port"),
            (["127.0.0.1", "8042", str(root), "user"], "HOST PORT PATH"),
            (["--timeout", "0", str(root)], "--timeout must be a positive"),
        ]
        for args, message in cases:
            status, stdout, stderr = self.run_tool(*args)
            self.assertEqual(status, 2, args)
            self.assertIn(message, stderr, args)
            self.assertEqual(stdout, "", args)

    def test_run_help(self) -> None:
        """
        C{--help} writes the usage to stdout and exits with 0.
        """
        status, stdout, _ = self.run_tool("--help")
        self.assertEqual(status, 0)
        self.assertIn("HOST PORT PATH [USERNAME PASSWORD]", stdout)


def instance_keys(names: list[str]) -> set[tuple[str, str, str, str]]:
    """
    Return the identifying UIDs of the instances in the named test files:
    patient ID, study, series and SOP instance UID, from which Orthanc and
    TwistedPACS derive the instance id. Several test files share them.
    """
    keys = set()
    for name in names:
        dataset = pydicom.dcmread(
            TEST_FILES / name, force=True, stop_before_pixels=True
        )
        keys.add(
            (
                str(dataset.get("PatientID", "")),
                str(dataset.StudyInstanceUID),
                str(dataset.SeriesInstanceUID),
                str(dataset.SOPInstanceUID),
            )
        )
    return keys


class EndToEndTests(ImporterTestCase):
    """
    Import into a real TwistedPACS server started as a C{twistd} subprocess.
    """

    def start_twistedpacs(self) -> str:
        """
        Start TwistedPACS on free loopback ports with a fresh store, wait
        until it answers, and return its URL.
        """
        server = ServerProcess()
        self.addCleanup(server.stop)
        return server.url

    def test_end_to_end_folder_then_archives(self) -> None:
        """
        A folder, then a ZIP and a tar.gz of the same files, store each
        instance once, and the repeats come back as already stored.
        """
        url = self.start_twistedpacs()
        root = self.make_tree()
        instances = len(instance_keys(DICOM_NAMES))
        files = len(DICOM_NAMES)

        status, stdout, stderr = self.run_tool("--url", url, str(root))
        self.assertEqual(status, 0, stdout + stderr)
        lines = stdout.splitlines()
        self.assertIn(f"Stored: {instances}", lines)
        self.assertIn(f"Already stored: {files - instances}", lines)
        self.assertIn("Skipped: 3", lines)
        self.assertIn("Failed: 0", lines)

        for archive in [self.make_zip(root), self.make_tar(root)]:
            status, stdout, stderr = self.run_tool("--url", url, str(archive))
            self.assertEqual(status, 0, stdout + stderr)
            lines = stdout.splitlines()
            self.assertIn("Stored: 0", lines)
            self.assertIn(f"Already stored: {files}", lines)
            self.assertIn("Skipped: 3", lines)
            self.assertIn("Failed: 0", lines)

        with urllib.request.urlopen(f"{url}/statistics", timeout=10) as response:
            statistics = json.load(response)
        self.assertEqual(statistics["CountInstances"], instances)

