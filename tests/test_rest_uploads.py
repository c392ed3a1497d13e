"""
REST uploads against a live server: bad input, duplicates, unusual encodings,
ZIP archives, limits and the read-back routes.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pydicom
from pydicom.filebase import DicomBytesIO
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests import fixtures
from tests.server import ServerProcess


def read_part10(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(DicomBytesIO(data))


def raw_http(
    port: int, head: bytes, body: bytes = b"", read_timeout: float = 10.0
) -> bytes:
    """
    Send raw bytes to the HTTP port and return everything until it closes.
    """
    with socket.create_connection(
        ("127.0.0.1", port), timeout=read_timeout
    ) as connection:
        connection.sendall(head + body)
        received = b""
        while True:
            try:
                piece = connection.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not piece:
                break
            received += piece
        return received


class ServerTestCase(SynchronousTestCase):
    """
    A test case with one fresh server per test.
    """

    server_arguments: tuple[str, ...] = ()
    server_config: dict[str, Any] | None = None

    def setUp(self) -> None:
        self.server = ServerProcess(*self.server_arguments, config=self.server_config)
        self.addCleanup(self.server.stop)

    def post(
        self, body: bytes, content_type: str = "application/dicom"
    ) -> tuple[int, Any]:
        return self.server.request(
            "POST", "/instances", body, {"Content-Type": content_type}
        )

    def count(self) -> int:
        return int(self.server.get_json("/statistics")["CountInstances"])

    def assert_json_error(self, status: int, answer: Any, expected_status: int) -> None:
        self.assertEqual(status, expected_status, answer)
        self.assertEqual(answer["HttpStatus"], expected_status)
        for field in (
            "HttpError",
            "Message",
            "Details",
            "Method",
            "Uri",
            "OrthancError",
            "OrthancStatus",
        ):
            self.assertIn(field, answer)


class BadInputTests(ServerTestCase):
    """
    Bad bodies get a 4xx JSON error and leave the store as it was.
    """

    def test_empty_body_rejected(self) -> None:
        """
        An empty body is a 400 with a JSON message.
        """
        status, answer = self.post(b"")
        self.assert_json_error(status, answer, 400)
        self.assertEqual(self.count(), 0)

    def test_not_dicom_rejected(self) -> None:
        """
        Bytes that are not DICOM are a 400 and nothing is stored.
        """
        status, answer = self.post(b"hello world, this is not DICOM" * 10)
        self.assert_json_error(status, answer, 400)
        self.assertEqual(self.count(), 0)

    def test_dicomdir_alone_rejected(self) -> None:
        """
        A DICOMDIR is a 400 saying so, and leaves no ghost patient behind.
        """
        status, answer = self.post(fixtures.dicomdir_bytes())
        self.assert_json_error(status, answer, 400)
        self.assertIn("DICOMDIR", answer["Message"])
        self.assertEqual(self.server.get_json("/patients"), [])

    def test_missing_sop_instance_uid_rejected(self) -> None:
        """
        A Part 10 file without SOP Instance UID (in the data set and the File
        Meta) is a 400 naming SOPInstanceUID.
        """
        dataset = fixtures.make_dataset("QA^NO^SOP")
        data = fixtures.part10_bytes(dataset)
        parsed = read_part10(data)
        del parsed.SOPInstanceUID
        del parsed.file_meta.MediaStorageSOPInstanceUID
        buffer = io.BytesIO()
        parsed.save_as(buffer)
        status, answer = self.post(buffer.getvalue())
        self.assert_json_error(status, answer, 400)
        self.assertIn("SOPInstanceUID", answer["Message"] + answer["Details"])
        self.assertEqual(self.count(), 0)

    def test_missing_study_and_series_rejected(self) -> None:
        """
        A data set without Study and Series Instance UIDs is a 400 naming them.
        """
        dataset = fixtures.make_dataset()
        del dataset.StudyInstanceUID
        del dataset.SeriesInstanceUID
        status, answer = self.post(fixtures.part10_bytes(dataset))
        self.assert_json_error(status, answer, 400)
        self.assertIn("StudyInstanceUID", answer["Message"])
        self.assertIn("SeriesInstanceUID", answer["Message"])
        self.assertEqual(self.count(), 0)

    def test_truncated_file_rejected(self) -> None:
        """
        A file cut inside its Pixel Data value is a 400.
        """
        data = fixtures.part10_bytes(fixtures.make_dataset(rows=16, columns=16))
        status, answer = self.post(data[:-100])
        self.assert_json_error(status, answer, 400)
        self.assertEqual(self.count(), 0)

    def test_multipart_parts_stored_each(self) -> None:
        """
        A multipart/form-data upload stores each DICOM part on its own and
        reports the text part as rejected; the envelope itself is not stored.
        """
        boundary = "----QAformBoundary7MA4YWxkTrZu0gW"
        first = fixtures.make_dataset("QA^MULTIPART^ONE")
        second = fixtures.make_dataset("QA^MULTIPART^TWO")
        body = fixtures.multipart_body(
            [
                ("first.dcm", "application/dicom", fixtures.part10_bytes(first)),
                (
                    "second.dcm",
                    "application/octet-stream",
                    fixtures.part10_bytes(second, fixtures.ImplicitVRLittleEndian),
                ),
                ("notes.txt", "text/plain", b"not DICOM\n"),
            ],
            boundary,
        )
        status, answer = self.post(body, f"multipart/form-data; boundary={boundary}")
        self.assertEqual(status, 200, answer)
        self.assertEqual(
            [part["Filename"] for part in answer],
            ["first.dcm", "second.dcm", "notes.txt"],
        )
        self.assertEqual(
            [part["Status"] for part in answer], ["Success", "Success", "Rejected"]
        )
        self.assertEqual(answer[2]["HttpStatus"], 400)
        self.assertEqual(self.count(), 2)
        names = sorted(
            self.server.get_json(f"/instances/{part['ID']}/simplified-tags")[
                "PatientName"
            ]
            for part in answer[:2]
        )
        self.assertEqual(names, ["QA^MULTIPART^ONE", "QA^MULTIPART^TWO"])

    def test_curl_form_upload(self) -> None:
        """
        curl -F file=@image.dcm stores the file.
        """
        if shutil.which("curl") is None:
            raise SkipTest("curl is not installed")
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "form.dcm")
        with open(path, "wb") as stream:
            stream.write(fixtures.part10_bytes(fixtures.make_dataset("QA^FORM")))
        result = subprocess.run(
            ["curl", "-s", "-F", f"file=@{path}", f"{self.server.url}/instances"],
            capture_output=True,
            check=True,
        )
        answer = json.loads(result.stdout)
        self.assertEqual(answer[0]["Status"], "Success")
        self.assertEqual(answer[0]["Filename"], "form.dcm")
        self.assertEqual(self.count(), 1)

    def test_invalid_multipart_rejected(self) -> None:
        """
        A multipart body without a boundary or without its closing line is a
        400, and nothing is stored.
        """
        status, answer = self.post(b"--x\r\n\r\nabc", "multipart/form-data")
        self.assert_json_error(status, answer, 400)
        body = fixtures.multipart_body(
            [
                (
                    "a.dcm",
                    "application/dicom",
                    fixtures.part10_bytes(fixtures.make_dataset()),
                )
            ],
            "zzz",
        )
        status, answer = self.post(body[:-10], "multipart/form-data; boundary=zzz")
        self.assert_json_error(status, answer, 400)
        self.assertEqual(self.count(), 0)

    def test_server_keeps_serving_after_errors(self) -> None:
        """
        After a run of bad uploads, a good one is stored.
        """
        for body in (b"", b"junk" * 50, fixtures.dicomdir_bytes()):
            status, _ = self.post(body)
            self.assertEqual(status, 400)
        status, answer = self.post(fixtures.part10_bytes(fixtures.make_dataset()))
        self.assertEqual(status, 200)
        self.assertEqual(answer["Status"], "Success")
        self.assertEqual(self.count(), 1)

    def test_unknown_ids_are_404(self) -> None:
        """
        Unknown ids at every level, and their files, return 404 JSON.
        """
        for path in (
            "/patients/nope",
            "/studies/nope",
            "/series/nope",
            "/instances/nope",
            "/instances/nope/file",
            "/instances/nope/simplified-tags",
            "/instances/nope/metadata",
        ):
            status, answer = self.server.request("GET", path)
            self.assert_json_error(status, answer, 404)
        status, answer = self.server.request("DELETE", "/instances/nope")
        self.assert_json_error(status, answer, 404)


class LimitTests(ServerTestCase):
    """
    MaximumInstanceSize and MaximumStorageSize.
    """

    server_config = {"MaximumInstanceSize": 1, "MaximumStorageSize": 1}

    def test_too_large_rejected_before_body(self) -> None:
        """
        A Content-Length over MaximumInstanceSize gets a 413 JSON response at
        once, without a 100 Continue, even though the body is never sent.
        """
        head = (
            b"POST /instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/dicom\r\n"
            b"Content-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"
        )
        response = raw_http(self.server.http_port, head)
        self.assertTrue(response.startswith(b"HTTP/1.1 413 "), response[:200])
        self.assertNotIn(b"100 Continue", response)
        body = json.loads(response.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(body["HttpStatus"], 413)
        self.assertEqual(self.count(), 0)

    def test_chunked_body_over_limit_rejected(self) -> None:
        """
        A chunked body without Content-Length that grows past the limit is a
        413 once read, and nothing is stored.
        """
        data = fixtures.part10_bytes(fixtures.make_dataset(rows=1100, columns=1000))
        chunks = b"".join(
            b"%x\r\n" % len(data[i : i + 65536]) + data[i : i + 65536] + b"\r\n"
            for i in range(0, len(data), 65536)
        )
        head = (
            b"POST /instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        response = raw_http(self.server.http_port, head, chunks + b"0\r\n\r\n")
        self.assertTrue(response.startswith(b"HTTP/1.1 413 "), response[:200])
        self.assertEqual(self.count(), 0)

    def test_full_storage_rejected_with_507(self) -> None:
        """
        An instance that would pass MaximumStorageSize is a 507 and is not
        stored; the instances stored before it stay.
        """
        first = fixtures.part10_bytes(fixtures.make_dataset(rows=600, columns=1000))
        status, answer = self.post(first)
        self.assertEqual(status, 200, answer)
        second = fixtures.part10_bytes(fixtures.make_dataset(rows=600, columns=1000))
        status, answer = self.post(second)
        self.assert_json_error(status, answer, 507)
        self.assertEqual(self.count(), 1)
        statistics = self.server.get_json("/statistics")
        self.assertEqual(int(statistics["TotalDiskSize"]), len(first))


class DuplicateTests(ServerTestCase):
    """
    The same instance received again keeps the first copy.
    """

    def test_first_copy_wins(self) -> None:
        """
        A, A, then B with the same UIDs: Success, AlreadyStored, AlreadyStored,
        one instance, and the file is A's.
        """
        study, series, sop = fixtures.new_uid(), fixtures.new_uid(), fixtures.new_uid()
        first = fixtures.part10_bytes(
            fixtures.make_dataset(
                "QA^DUPLICATE^FIRST", "QADUP", study, series, sop, pixel_value=0x10
            )
        )
        second = fixtures.part10_bytes(
            fixtures.make_dataset(
                "QA^DUPLICATE^SECOND", "QADUP", study, series, sop, pixel_value=0xEF
            )
        )
        statuses = [self.post(body)[1]["Status"] for body in (first, first, second)]
        self.assertEqual(statuses, ["Success", "AlreadyStored", "AlreadyStored"])
        self.assertEqual(self.count(), 1)
        instance_id = self.server.get_json("/instances")[0]
        stored = self.server.get_bytes(f"/instances/{instance_id}/file")
        self.assertEqual(stored, first)
        self.assertEqual(str(read_part10(stored).PatientName), "QA^DUPLICATE^FIRST")

    def test_parallel_uploads_store_once(self) -> None:
        """
        Eight parallel POSTs of one instance all succeed, exactly one reports
        Success, and the stored file is intact.
        """
        body = fixtures.part10_bytes(fixtures.make_dataset(rows=256, columns=256))
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: self.post(body), range(8)))
        self.assertEqual([status for status, _ in answers], [200] * 8)
        statuses = sorted(answer["Status"] for _, answer in answers)
        self.assertEqual(statuses, ["AlreadyStored"] * 7 + ["Success"])
        self.assertEqual(self.count(), 1)
        instance_id = answers[0][1]["ID"]
        self.assertEqual(self.server.get_bytes(f"/instances/{instance_id}/file"), body)
        self.assertEqual(
            int(self.server.get_json("/statistics")["TotalDiskSize"]), len(body)
        )


class OverwriteTests(ServerTestCase):
    """
    With --overwrite, a second copy replaces the first.
    """

    server_arguments = ("--overwrite",)

    def test_second_copy_replaces_first(self) -> None:
        """
        A then B with the same UIDs: both Success, and the file is B's.
        """
        study, series, sop = fixtures.new_uid(), fixtures.new_uid(), fixtures.new_uid()
        first = fixtures.part10_bytes(
            fixtures.make_dataset("QA^DUPLICATE^FIRST", "QADUP", study, series, sop)
        )
        second = fixtures.part10_bytes(
            fixtures.make_dataset(
                "QA^DUPLICATE^SECOND", "QADUP", study, series, sop, pixel_value=9
            )
        )
        self.assertEqual(self.post(first)[1]["Status"], "Success")
        self.assertEqual(self.post(second)[1]["Status"], "Success")
        self.assertEqual(self.count(), 1)
        instance_id = self.server.get_json("/instances")[0]
        self.assertEqual(
            self.server.get_bytes(f"/instances/{instance_id}/file"), second
        )


class EncodingTests(ServerTestCase):
    """
    Unusual but valid encodings are stored and read back correctly.
    """

    def test_odd_length_values_read_back(self) -> None:
        """
        Unpadded odd-length PatientID and StudyID values are stored and read
        back as sent.
        """
        data, _ = fixtures.odd_length_values_file()
        status, answer = self.post(data)
        self.assertEqual(status, 200, answer)
        tags = self.server.get_json(f"/instances/{answer['ID']}/simplified-tags")
        self.assertEqual(tags["PatientID"], "12345")
        self.assertEqual(tags["StudyID"], "7")
        stored = read_part10(self.server.get_bytes(f"/instances/{answer['ID']}/file"))
        self.assertEqual(stored.PatientID, "12345")

    def test_deflated_stored_consistently(self) -> None:
        """
        A deflated file is stored with a File Meta transfer syntax that matches
        its bytes, and reads back with its 1024 zero pixel bytes.
        """
        dataset = fixtures.make_dataset("QA^DEFLATED", rows=32, columns=32)
        status, answer = self.post(fixtures.deflated_bytes(dataset))
        self.assertEqual(status, 200, answer)
        stored = read_part10(self.server.get_bytes(f"/instances/{answer['ID']}/file"))
        self.assertEqual(
            stored.file_meta.TransferSyntaxUID, fixtures.DeflatedExplicitVRLittleEndian
        )
        self.assertEqual(str(stored.PatientName), "QA^DEFLATED")
        self.assertEqual(stored.PixelData, bytes(1024))

    def test_no_file_meta_gets_generated_meta(self) -> None:
        """
        A bare implicit VR data set is stored behind a generated preamble and
        File Meta group naming implicit VR LE and its SOP Instance UID.
        """
        dataset = fixtures.make_dataset("QA^NO^PREAMBLE")
        bare = fixtures.bare_dataset_bytes(dataset, implicit=True)
        status, answer = self.post(bare)
        self.assertEqual(status, 200, answer)
        stored_bytes = self.server.get_bytes(f"/instances/{answer['ID']}/file")
        self.assertEqual(stored_bytes[128:132], b"DICM")
        self.assertTrue(stored_bytes.endswith(bare))
        stored = read_part10(stored_bytes)
        self.assertEqual(
            stored.file_meta.TransferSyntaxUID, fixtures.ImplicitVRLittleEndian
        )
        self.assertEqual(
            stored.file_meta.MediaStorageSOPInstanceUID, dataset.SOPInstanceUID
        )
        self.assertEqual(str(stored.PatientName), "QA^NO^PREAMBLE")

    def test_large_objects_stream_intact(self) -> None:
        """
        A 5 MiB native and a 10 MiB encapsulated object, streamed over the
        in-memory threshold's chunks, come back with the same SHA-256.
        """
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        native = os.path.join(directory, "native.dcm")
        encapsulated = os.path.join(directory, "encapsulated.dcm")
        fixtures.large_native_file(native, 5 * 1024 * 1024)
        fixtures.large_encapsulated_file(encapsulated, 5, 2 * 1024 * 1024)
        for path in (native, encapsulated):
            with open(path, "rb") as stream:
                data = stream.read()
            status, answer = self.post(data)
            self.assertEqual(status, 200, answer)
            stored = self.server.get_bytes(f"/instances/{answer['ID']}/file")
            self.assertEqual(
                hashlib.sha256(stored).hexdigest(), hashlib.sha256(data).hexdigest()
            )

    def test_expect_continue_gets_interim_response(self) -> None:
        """
        curl's default Expect: 100-continue on a 4 MB body gets a
        100 Continue before the 200.
        """
        if shutil.which("curl") is None:
            raise SkipTest("curl is not installed")
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "four.dcm")
        with open(path, "wb") as stream:
            stream.write(
                fixtures.part10_bytes(fixtures.make_dataset(rows=2000, columns=2000))
            )
        result = subprocess.run(
            [
                "curl",
                "-sv",
                "-X",
                "POST",
                f"{self.server.url}/instances",
                "--data-binary",
                f"@{path}",
            ],
            capture_output=True,
            check=True,
        )
        self.assertIn(b"HTTP/1.1 100 Continue", result.stderr)
        self.assertEqual(json.loads(result.stdout)["Status"], "Success")


class ArchiveTests(ServerTestCase):
    """
    A ZIP body stores each DICOM entry and skips the rest.
    """

    def test_zip_stores_dicom_entries(self) -> None:
        """
        Two instances, a DICOMDIR, a text file and an entry named with ../
        give an array of two results and two stored instances.
        """
        first = fixtures.part10_bytes(fixtures.make_dataset("QA^ZIP^ONE"))
        second = fixtures.part10_bytes(fixtures.make_dataset("QA^ZIP^TWO"))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("study/one.dcm", first)
            archive.writestr("../../escape/two.dcm", second)
            archive.writestr("DICOMDIR", fixtures.dicomdir_bytes())
            archive.writestr("notes.txt", b"read me")
        status, answer = self.post(buffer.getvalue(), "application/zip")
        self.assertEqual(status, 200, answer)
        self.assertEqual(len(answer), 2)
        self.assertEqual({entry["Status"] for entry in answer}, {"Success"})
        self.assertEqual(self.count(), 2)
        spool = os.path.join(self.server.storage, "spool")
        self.assertEqual(os.listdir(spool) if os.path.isdir(spool) else [], [])
        self.assertFalse(os.path.exists(os.path.join(self.server.directory, "escape")))


def zip_of(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


class BrokenArchiveTests(ServerTestCase):
    """
    A ZIP with unreadable entries stores the readable ones and lists the
    entries it rejected; an unreadable archive stores nothing.
    """

    def test_bad_crc_entry_rejected_alone(self) -> None:
        """
        An entry whose bytes fail its CRC is listed as rejected, and the good
        entry beside it is stored.
        """
        good = fixtures.part10_bytes(fixtures.make_dataset("QA^ZIP^GOOD"))
        bad = fixtures.part10_bytes(fixtures.make_dataset("QA^ZIP^BAD"))
        data = bytearray(zip_of([("1.dcm", good), ("2.dcm", bad)]))
        # Flip one byte inside the second (stored, uncompressed) entry's data.
        offset = data.index(b"QA^ZIP^BAD")
        data[offset] ^= 0xFF
        status, answer = self.post(bytes(data), "application/zip")
        self.assertEqual(status, 200, answer)
        self.assertEqual([part["Filename"] for part in answer], ["1.dcm", "2.dcm"])
        self.assertEqual(answer[0]["Status"], "Success")
        self.assertEqual(answer[1]["Status"], "Rejected")
        self.assertIn("CRC", answer[1]["Details"])
        self.assertEqual(self.count(), 1)

    def test_broken_deflate_entry_rejected_alone(self) -> None:
        """
        An entry whose compressed data is corrupt is rejected with a 400
        entry, not a server error, and its neighbours are stored.
        """
        entries = [
            (
                f"{index}.dcm",
                fixtures.part10_bytes(fixtures.make_dataset(f"QA^Z^{index}")),
            )
            for index in range(3)
        ]
        data = bytearray(zip_of(entries, zipfile.ZIP_DEFLATED))
        second = data.index(b"PK\x03\x04", 4)
        data[second + 40 : second + 60] = bytes(20)
        status, answer = self.post(bytes(data), "application/zip")
        self.assertEqual(status, 200, answer)
        self.assertEqual(
            [part["Status"] for part in answer], ["Success", "Rejected", "Success"]
        )
        self.assertEqual(answer[1]["HttpStatus"], 400)
        self.assertEqual(self.count(), 2)

    def test_archive_without_directory_rejected(self) -> None:
        """
        A ZIP whose central directory lists nothing is a 400.
        """
        status, answer = self.post(zip_of([]), "application/zip")
        self.assert_json_error(status, answer, 400)
        status, answer = self.post(b"PK\x03\x04" + bytes(100), "application/zip")
        self.assert_json_error(status, answer, 400)
        self.assertEqual(self.count(), 0)


class ArchiveQuotaTests(ServerTestCase):
    """
    An archive that fills the store stores what fits and lists the rest.
    """

    server_config = {"MaximumStorageSize": 1}

    def test_archive_over_quota(self) -> None:
        """
        Six 300 KB entries under a 1 MB quota: the first three are stored,
        the others are listed as rejected with 507.
        """
        entries = [
            (
                f"{index}.dcm",
                fixtures.part10_bytes(
                    fixtures.make_dataset(f"QA^Q^{index}", rows=300, columns=1000)
                ),
            )
            for index in range(6)
        ]
        status, answer = self.post(zip_of(entries), "application/zip")
        self.assertEqual(status, 200, answer)
        statuses = [part["Status"] for part in answer]
        self.assertEqual(statuses, ["Success"] * 3 + ["Rejected"] * 3)
        self.assertEqual({part["HttpStatus"] for part in answer[3:]}, {507})
        self.assertEqual(self.count(), 3)


class RoutingTests(ServerTestCase):
    """
    Redirects, unknown routes and the Explorer's files.
    """

    def raw_get(
        self, path: str, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.server.http_port, timeout=10
        )
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body

    def test_redirects_carry_location(self) -> None:
        """
        / and /app redirect with a Location header; /app/ leads to the page.
        """
        status, headers, _ = self.raw_get("/")
        self.assertEqual(status, 302)
        self.assertTrue(headers["location"].endswith("/app/explorer.html"))
        status, headers, _ = self.raw_get("/app")
        self.assertEqual(status, 308)
        self.assertTrue(headers["location"].endswith("/app/"))
        status, headers, _ = self.raw_get("/app/")
        self.assertIn(status, (301, 302, 303, 307, 308))
        self.assertTrue(headers["location"].endswith("/app/explorer.html"))

    def test_unknown_paths_are_json_404(self) -> None:
        """
        Unknown routes and missing Explorer files are 404 JSON, for every
        method; a known route with another method is a 405 with Allow.
        """
        for method, path in (
            ("GET", "/app/missing.js"),
            ("POST", "/foo/bar"),
            ("PUT", "/foo"),
            ("GET", "/foo"),
        ):
            status, headers, body = self.raw_get(path, method)
            self.assertEqual(status, 404, (method, path))
            self.assertEqual(json.loads(body)["HttpStatus"], 404)
        status, headers, body = self.raw_get("/instances", "PUT")
        self.assertEqual(status, 405)
        self.assertIn("POST", headers["allow"])

    def test_huge_paging_values_rejected(self) -> None:
        """
        since and limit beyond 64 bits are a 400, not a server error.
        """
        for query in ("since=99999999999999999999", "limit=99999999999999999999"):
            status, answer = self.server.request("GET", f"/instances?{query}")
            self.assert_json_error(status, answer, 400)
        status, answer = self.server.request(
            "GET", "/changes?since=99999999999999999999"
        )
        self.assert_json_error(status, answer, 400)


class ReadApiTests(ServerTestCase):
    """
    Listing, documents, tags, metadata and deletes.
    """

    def store_patients(self, count: int) -> list[dict[str, Any]]:
        answers = []
        for index in range(count):
            dataset = fixtures.make_dataset(f"QA^PATIENT^{index}", f"QAP{index:03d}")
            status, answer = self.post(fixtures.part10_bytes(dataset))
            self.assertEqual(status, 200)
            answers.append(answer)
        return answers

    def test_listing_with_since_and_limit(self) -> None:
        """
        /patients pages with since and limit in insertion order, and expand
        returns documents.
        """
        answers = self.store_patients(5)
        patients = [answer["ParentPatient"] for answer in answers]
        self.assertEqual(self.server.get_json("/patients"), patients)
        self.assertEqual(
            self.server.get_json("/patients?since=1&limit=2"), patients[1:3]
        )
        expanded = self.server.get_json("/patients?expand&since=3&limit=10")
        self.assertEqual([document["ID"] for document in expanded], patients[3:])
        self.assertEqual(expanded[0]["MainDicomTags"]["PatientID"], "QAP003")
        self.assertEqual(expanded[0]["Type"], "Patient")

    def test_documents_tags_and_metadata(self) -> None:
        """
        An instance's document, tags and provenance metadata are Orthanc-shaped.
        """
        answer = self.store_patients(1)[0]
        instance = self.server.get_json(f"/instances/{answer['ID']}")
        self.assertEqual(instance["Type"], "Instance")
        self.assertEqual(instance["ParentSeries"], answer["ParentSeries"])
        tags = self.server.get_json(f"/instances/{answer['ID']}/simplified-tags")
        self.assertEqual(tags["PatientName"], "QA^PATIENT^0")
        full = self.server.get_json(f"/instances/{answer['ID']}/tags")
        self.assertEqual(full["0010,0010"]["Value"], "QA^PATIENT^0")
        metadata = self.server.get_json(f"/instances/{answer['ID']}/metadata?expand")
        self.assertEqual(metadata["Origin"], "RestApi")
        self.assertEqual(metadata["RemoteIP"], "127.0.0.1")
        self.assertEqual(metadata["TransferSyntax"], fixtures.ExplicitVRLittleEndian)
        study = self.server.get_json(f"/studies/{answer['ParentStudy']}")
        self.assertEqual(study["PatientMainDicomTags"]["PatientID"], "QAP000")
        system = self.server.get_json("/system")
        self.assertEqual(system["DicomAet"], "ORTHANC")

    def test_md5_right_after_upload(self) -> None:
        """
        The FileMD5 read right after the response, before or after the digest
        thread recorded it, is the MD5 of the uploaded bytes.
        """
        for index in range(5):
            dataset = fixtures.make_dataset(f"QA^MD5^{index}", f"QAMD5{index}")
            body = fixtures.part10_bytes(dataset)
            status, answer = self.post(body)
            self.assertEqual(status, 200)
            path = f"/instances/{answer['ID']}/metadata/FileMD5"
            md5 = self.server.get_bytes(path).decode("ascii")
            self.assertEqual(md5, hashlib.md5(body).hexdigest())
            expanded = self.server.get_json(
                f"/instances/{answer['ID']}/metadata?expand"
            )
            self.assertEqual(expanded["FileMD5"], md5)
        # No access log line per request, as in Orthanc.
        self.assertNotIn("POST /instances", self.server.log())

    def test_delete_cascades_and_reports_ancestor(self) -> None:
        """
        Deleting one of two instances leaves its series; deleting the last one
        removes the emptied series, study and patient.
        """
        study, series = fixtures.new_uid(), fixtures.new_uid()
        ids = []
        for _ in range(2):
            dataset = fixtures.make_dataset("QA^DELETE", "QADEL", study, series)
            ids.append(self.post(fixtures.part10_bytes(dataset))[1])
        status, answer = self.server.request("DELETE", f"/instances/{ids[0]['ID']}")
        self.assertEqual(status, 200)
        self.assertEqual(answer["RemainingAncestor"]["ID"], ids[0]["ParentSeries"])
        self.assertEqual(answer["RemainingAncestor"]["Type"], "Series")
        status, answer = self.server.request("DELETE", f"/instances/{ids[1]['ID']}")
        self.assertEqual(status, 200)
        self.assertIsNone(answer["RemainingAncestor"])
        statistics = self.server.get_json("/statistics")
        self.assertEqual(statistics["CountInstances"], 0)
        self.assertEqual(statistics["CountPatients"], 0)
        self.assertEqual(int(statistics["TotalDiskSize"]), 0)
        status, _ = self.server.request("GET", f"/instances/{ids[1]['ID']}/file")
        self.assertEqual(status, 404)
