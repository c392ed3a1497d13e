"""
End-to-end tests of the Explorer page in headless Chromium.

Each test starts a real TwistedPACS server (C{python -m twisted twistedpacs})
on free loopback ports with a new storage directory, drives Debian's
Chromium through Selenium and checks what the page shows against the REST
API of the same server.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from typing import Any

import pydicom
from pydicom.uid import generate_uid
from twisted.trial.unittest import SynchronousTestCase

from tests.server import ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_FILES = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")

# Valid DICOM files with distinct SOP Instance UIDs and a Patient ID each.
DICOM_NAMES = [
    "693_J2KI.dcm",
    "CT_small.dcm",
    "JPEG-lossy.dcm",
    "JPEG2000.dcm",
    "MR_small.dcm",
    "SC_rgb_jpeg_gdcm.dcm",
    "SC_rgb_small_odd.dcm",
    "examples_overlay.dcm",
    "examples_palette.dcm",
    "liver_1frame.dcm",
    "rtdose.dcm",
    "rtplan.dcm",
]
# The same instance as MR_small.dcm in another transfer syntax.
DUPLICATE_NAME = "MR_small_implicit.dcm"

SERVER_START_TIMEOUT = 30.0
UPLOAD_TIMEOUT = 60.0

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.wait import WebDriverWait
except ImportError:
    SKIP_REASON: str | None = "selenium is not installed"
else:
    SKIP_REASON = None
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        SKIP_REASON = f"{CHROMIUM} or {CHROMEDRIVER} is missing"


def free_port() -> int:
    """
    Return a TCP port on 127.0.0.1 that was free a moment ago.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RunningServer(ServerProcess):
    """
    A TwistedPACS server in a subprocess, with its storage in a new temporary
    directory, and the request helpers the page tests use.

    @ivar base_url: The server's HTTP root, ending in C{/}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.base_url = self.url + "/"

    def stop(self) -> int:
        """
        Stop the server by its PID and remove its directory.
        """
        status = super().stop()
        shutil.rmtree(self.directory, ignore_errors=True)
        return status

    def get_json(self, path: str) -> Any:
        """
        Return the decoded JSON response body of C{GET path}.
        """
        with urllib.request.urlopen(self.base_url + path, timeout=10) as answer:
            return json.load(answer)

    def post_instance(self, body: bytes) -> tuple[int, Any]:
        """
        Send C{body} to C{POST /instances} and return the status and JSON body.
        """
        request = urllib.request.Request(
            self.base_url + "instances",
            data=body,
            method="POST",
            headers={"Content-Type": "application/dicom"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)


def start_browser(user_data_directory: str) -> WebDriver:
    """
    Start headless Chromium at 1280x800 with a fresh profile and no network
    use of its own.
    """
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,800",
        f"--user-data-dir={user_data_directory}",
    ]:
        options.add_argument(argument)
    driver = webdriver.Chrome(
        service=Service(executable_path=CHROMEDRIVER), options=options
    )
    driver.set_script_timeout(30)
    return driver


def synthetic_patient(index: int) -> bytes:
    """
    Return CT_small.dcm rewritten as patient C{EXPL<index>} with new UIDs.
    """
    dataset = pydicom.dcmread(os.path.join(TEST_FILES, "CT_small.dcm"))
    dataset.PatientID = f"EXPL{index:03d}"
    dataset.PatientName = f"Explorer^Patient{index:03d}"
    dataset.PatientBirthDate = f"19{index % 100:02d}0101"
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    output = io.BytesIO()
    dataset.save_as(output, enforce_file_format=True)
    return output.getvalue()


# Reads every row of the upload list.
ROWS_SCRIPT = """
return [...document.querySelectorAll('#upload-body tr[data-name]')].map((row) => ({
  name: row.dataset.name,
  status: row.dataset.status,
  id: row.dataset.id || null,
  result: row.querySelector('.result').textContent,
}));
"""

# Reads the patients table and the pager.
PATIENTS_SCRIPT = """
const range = document.getElementById('patients-range');
return {
  ids: [...document.querySelectorAll('#patients-body tr')].map((r) => r.dataset.id),
  patientIds: [...document.querySelectorAll('#patients-body .patient-id')]
    .map((cell) => cell.textContent),
  range: range.textContent,
  previousDisabled: document.getElementById('patients-previous').disabled,
  nextDisabled: document.getElementById('patients-next').disabled,
};
"""


class ExplorerBrowserMixin:
    """
    Start a server and a browser for each test and stop both afterwards.
    """

    skip = SKIP_REASON
    server: RunningServer
    driver: WebDriver
    work_directory: str
    addCleanup: Callable[..., None]

    def setUp(self) -> None:
        self.server = RunningServer()
        self.addCleanup(self.server.stop)
        self.work_directory = tempfile.mkdtemp(prefix="twistedpacs-browser-")
        self.addCleanup(shutil.rmtree, self.work_directory, True)
        self.driver = start_browser(os.path.join(self.work_directory, "profile"))
        self.addCleanup(self.driver.quit)

    def open_page(self, fragment: str = "patients") -> None:
        """
        Load the Explorer at C{#fragment} and wait until its view is drawn.
        """
        self.driver.get(f"{self.server.base_url}app/explorer.html#{fragment}")
        self.wait_for_route()

    def wait_for_route(self) -> None:
        """
        Wait until the page has drawn the view of its current location hash.
        """
        self.wait_for("document.body.dataset.renderedHash === location.hash")

    def wait_for(self, condition: str, timeout: float = 15.0) -> Any:
        """
        Wait until the JavaScript expression C{condition} is truthy and return it.
        """
        return WebDriverWait(self.driver, timeout).until(
            lambda driver: driver.execute_script(f"return ({condition});")
        )

    def upload_through_page(
        self, paths: list[str], before_upload: str = ""
    ) -> list[dict[str, Any]]:
        """
        Choose C{paths} in the file input, click Upload and return every row
        once the upload has finished.

        @param before_upload: JavaScript to run once the files are listed,
            before Upload is clicked.
        """
        self.open_page("upload")
        file_input = self.driver.find_element(By.ID, "file-input")
        file_input.send_keys("\n".join(paths))
        self.wait_for(
            f"document.querySelectorAll('#upload-body tr[data-name]').length"
            f" === {len(paths)}"
        )
        if before_upload:
            self.driver.execute_script(before_upload)
        self.driver.find_element(By.ID, "upload-button").click()
        self.wait_for(
            "document.getElementById('upload-summary').dataset.state === 'done'",
            UPLOAD_TIMEOUT,
        )
        rows: list[dict[str, Any]] = self.driver.execute_script(ROWS_SCRIPT)
        return rows

    def copy_test_file(self, name: str, new_name: str | None = None) -> str:
        """
        Copy a pydicom test file into the work directory and return its path.
        """
        target = os.path.join(self.work_directory, new_name or os.path.basename(name))
        shutil.copyfile(os.path.join(TEST_FILES, name), target)
        return target

    def summary(self) -> dict[str, str]:
        """
        Return the data attributes of the upload summary.
        """
        values: dict[str, str] = self.driver.execute_script(
            "return {...document.getElementById('upload-summary').dataset};"
        )
        return values


class UploadPageTests(ExplorerBrowserMixin, SynchronousTestCase):
    """
    Uploads through the page's file input, checked against the REST API.
    """

    def test_upload_rows_match_stored_instances(self) -> None:
        """
        Every stored row names an instance the server lists, with that file's
        SOP Instance UID, and the totals count each outcome.
        """
        names = DICOM_NAMES + [DUPLICATE_NAME]
        paths = [os.path.join(TEST_FILES, name) for name in names]
        paths.append(self.copy_test_file("README.txt", "notes.dcm"))
        paths.append(self.copy_test_file("crayons.icc"))
        paths.append(self.copy_test_file("dicomdirtests/DICOMDIR"))

        rows = {row["name"]: row for row in self.upload_through_page(paths)}

        self.assertEqual(len(rows), 16)
        stored_ids = sorted(
            row["id"] for row in rows.values() if row["status"] == "stored"
        )
        self.assertEqual(sorted(self.server.get_json("instances")), stored_ids)
        self.assertEqual(len(stored_ids), len(DICOM_NAMES))
        duplicate_statuses = sorted(
            [rows["MR_small.dcm"]["status"], rows[DUPLICATE_NAME]["status"]]
        )
        self.assertEqual(duplicate_statuses, ["already-stored", "stored"])
        self.assertEqual(rows["MR_small.dcm"]["id"], rows[DUPLICATE_NAME]["id"])
        for name in names:
            row = rows[name]
            self.assertIn(row["result"], ["Stored", "Already stored"])
            tags = self.server.get_json(f"instances/{row['id']}/simplified-tags")
            expected = pydicom.dcmread(os.path.join(TEST_FILES, name))
            self.assertEqual(tags["SOPInstanceUID"], expected.SOPInstanceUID)
        for name in ["notes.dcm", "crayons.icc"]:
            self.assertEqual(rows[name]["status"], "rejected")
        self.assertEqual(rows["DICOMDIR"]["status"], "skipped")
        self.assertEqual(
            self.summary(),
            {
                "state": "done",
                "stored": str(len(DICOM_NAMES)),
                "alreadyStored": "1",
                "rejected": "2",
                "skipped": "1",
                "failed": "0",
            },
        )

    def test_upload_rejected_row_shows_message(self) -> None:
        """
        A file the server rejects shows "Rejected: " and the server's Message.
        """
        paths = [
            self.copy_test_file("README.txt", "notes.dcm"),
            self.copy_test_file("crayons.icc"),
        ]

        rows = {row["name"]: row for row in self.upload_through_page(paths)}

        for path in paths:
            with open(path, "rb") as source:
                status, answer = self.server.post_instance(source.read())
            self.assertGreaterEqual(status, 400)
            self.assertLess(status, 500)
            row = rows[os.path.basename(path)]
            self.assertEqual(row["status"], "rejected")
            self.assertTrue(row["result"].startswith("Rejected: " + answer["Message"]))
        self.assertEqual(self.server.get_json("instances"), [])

    def test_upload_dicomdir_skipped(self) -> None:
        """
        A file named DICOMDIR in any case is listed as skipped and never sent.
        """
        paths = [
            self.copy_test_file("dicomdirtests/DICOMDIR"),
            self.copy_test_file("dicomdirtests/DICOMDIR", "dicomdir"),
            os.path.join(TEST_FILES, "CT_small.dcm"),
        ]

        rows = {row["name"]: row for row in self.upload_through_page(paths)}

        for name in ["DICOMDIR", "dicomdir"]:
            self.assertEqual(rows[name]["status"], "skipped")
            self.assertEqual(rows[name]["result"], "DICOMDIR skipped")
        self.assertEqual(rows["CT_small.dcm"]["status"], "stored")
        self.assertEqual(len(self.server.get_json("instances")), 1)
        self.assertEqual(self.summary()["skipped"], "2")

    def test_upload_zip_lists_entries(self) -> None:
        """
        A ZIP archive is sent whole and its per-entry results are listed.
        """
        archive_path = os.path.join(self.work_directory, "three.zip")
        with zipfile.ZipFile(archive_path, "w") as archive:
            for name in DICOM_NAMES[:3]:
                archive.write(os.path.join(TEST_FILES, name), f"folder/{name}")
            archive.write(os.path.join(TEST_FILES, "README.txt"), "folder/README.txt")

        rows = self.upload_through_page([archive_path])

        self.assertEqual(rows[0]["status"], "zip")
        self.assertEqual(
            rows[0]["result"], "ZIP: 3 stored, 0 already stored, 0 rejected"
        )
        entry_ids = self.driver.execute_script(
            "return [...document.querySelectorAll("
            '\'tr[data-parent-name="three.zip"] li[data-status="stored"]\')]'
            ".map((item) => item.dataset.id);"
        )
        self.assertEqual(sorted(entry_ids), sorted(self.server.get_json("instances")))
        self.assertEqual(len(entry_ids), 3)
        self.assertEqual(self.summary()["stored"], "3")

    def test_upload_zip_without_dicom_rejected(self) -> None:
        """
        A ZIP archive with no DICOM entry is shown as rejected.
        """
        archive_path = os.path.join(self.work_directory, "text.zip")
        with zipfile.ZipFile(archive_path, "w") as archive:
            archive.write(os.path.join(TEST_FILES, "README.txt"), "README.txt")

        rows = self.upload_through_page([archive_path])

        self.assertEqual(rows[0]["status"], "rejected")
        self.assertTrue(rows[0]["result"].startswith("Rejected: "))
        self.assertEqual(self.server.get_json("instances"), [])

    def test_upload_raw_bodies_three_at_a_time(self) -> None:
        """
        Each file is the raw body of its own request, with a DICOM or ZIP
        Content-Type, and at most three requests are in flight at once.
        """
        archive_path = os.path.join(self.work_directory, "one.zip")
        with zipfile.ZipFile(archive_path, "w") as archive:
            archive.write(os.path.join(TEST_FILES, DICOM_NAMES[0]), DICOM_NAMES[0])
        paths = [os.path.join(TEST_FILES, name) for name in DICOM_NAMES[1:7]]
        paths.append(archive_path)

        self.upload_through_page(paths, RECORD_REQUESTS_SCRIPT)

        record = self.driver.execute_script("return window.requestRecord;")
        self.assertEqual(record["maxInFlight"], 3)
        self.assertEqual(record["inFlight"], 0)
        self.assertEqual(
            sorted(record["bodies"]),
            sorted("File:" + os.path.basename(path) for path in paths),
        )
        types = dict(zip(record["bodies"], record["types"]))
        self.assertEqual(types["File:one.zip"], "application/zip")
        for name in DICOM_NAMES[1:7]:
            self.assertEqual(types["File:" + name], "application/dicom")
        self.assertEqual(len(self.server.get_json("instances")), 7)

    def test_upload_refreshes_header_statistics(self) -> None:
        """
        The header shows the server's name and AE title, and its counts follow
        an upload.
        """
        paths = [os.path.join(TEST_FILES, name) for name in DICOM_NAMES[:4]]

        self.upload_through_page(paths)

        system = self.server.get_json("system")
        statistics = self.server.get_json("statistics")
        self.wait_for("document.getElementById('count-instances').textContent === '4'")
        header = self.driver.execute_script(
            "return Object.fromEntries(['server-name', 'server-aet', "
            "'count-patients', 'count-studies', 'count-series', 'count-instances']"
            ".map((id) => [id, document.getElementById(id).textContent]));"
        )
        self.assertEqual(header["server-name"], system["Name"])
        self.assertEqual(header["server-aet"], system["DicomAet"])
        self.assertEqual(header["count-patients"], str(statistics["CountPatients"]))
        self.assertEqual(header["count-studies"], str(statistics["CountStudies"]))
        self.assertEqual(header["count-series"], str(statistics["CountSeries"]))
        self.assertEqual(header["count-instances"], "4")


# Wraps XMLHttpRequest to record every request body, its Content-Type and the
# maximum number of requests in flight at once.
RECORD_REQUESTS_SCRIPT = """
const record = { inFlight: 0, maxInFlight: 0, bodies: [], types: [] };
window.requestRecord = record;
const open = XMLHttpRequest.prototype.open;
const setRequestHeader = XMLHttpRequest.prototype.setRequestHeader;
const send = XMLHttpRequest.prototype.send;
// Listening from open() on runs this listener before the page's own ones.
XMLHttpRequest.prototype.open = function (...args) {
  this.addEventListener('loadend', () => { record.inFlight -= 1; });
  return open.apply(this, args);
};
XMLHttpRequest.prototype.setRequestHeader = function (name, value) {
  if (name.toLowerCase() === 'content-type') { this.recordedType = value; }
  return setRequestHeader.call(this, name, value);
};
XMLHttpRequest.prototype.send = function (body) {
  record.inFlight += 1;
  record.maxInFlight = Math.max(record.maxInFlight, record.inFlight);
  record.bodies.push(body instanceof File ? 'File:' + body.name : String(body));
  record.types.push(this.recordedType || null);
  return send.call(this, body);
};
"""


# Builds a tree of synthetic FileSystemEntry objects whose readers hand out
# two children per readEntries() call, and collects it with the page's walk.
COLLECT_SCRIPT = """
const done = arguments[arguments.length - 1];
function fileEntry(path) {
  const name = path.split('/').pop();
  return {
    isFile: true, isDirectory: false, name, fullPath: '/' + path,
    file(resolve) { resolve(new File([path], name)); },
  };
}
function directoryEntry(path, children) {
  return {
    isFile: false, isDirectory: true, name: path.split('/').pop(),
    fullPath: '/' + path,
    createReader() {
      let offset = 0;
      return {
        readEntries(resolve) {
          const batch = children.slice(offset, offset + 2);
          offset += batch.length;
          setTimeout(() => resolve(batch), 0);
        },
      };
    },
  };
}
const many = [];
for (let i = 0; i < 5; i += 1) { many.push(fileEntry(`study/many/${i}.dcm`)); }
const tree = [
  directoryEntry('study', [
    fileEntry('study/a.dcm'),
    directoryEntry('study/series1', [
      fileEntry('study/series1/b.dcm'),
      directoryEntry('study/series1/empty', []),
      directoryEntry('study/series1/deep', [fileEntry('study/series1/deep/c.dcm')]),
    ]),
    directoryEntry('study/many', many),
  ]),
  fileEntry('loose.dcm'),
];
window.twistedpacsExplorer.collectEntries(tree).then(
  (files) => done({
    names: files.map((file) => file.name),
    paths: files.map((file) => window.twistedpacsExplorer.relativePath(file)),
    allFiles: files.every((file) => file instanceof File),
  }),
  (error) => done({ error: String(error) }),
);
"""

# Drops two files built in JavaScript on the drop zone.
DROP_SCRIPT = """
const transfer = new DataTransfer();
transfer.items.add(new File(['x'], 'first.dcm'));
transfer.items.add(new File(['yy'], 'DICOMDIR'));
const zone = document.getElementById('drop-zone');
zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: transfer, bubbles: true,
  cancelable: true }));
zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true,
  cancelable: true }));
"""


class DropTests(ExplorerBrowserMixin, SynchronousTestCase):
    """
    The folder walk and the drop zone, fed with objects built in JavaScript.
    """

    def test_collect_entries_walks_nested_folders(self) -> None:
        """
        collectEntries visits every folder depth first and reads each folder
        until readEntries() returns an empty batch.
        """
        self.open_page("upload")
        self.wait_for("window.twistedpacsExplorer !== undefined")

        result = self.driver.execute_async_script(COLLECT_SCRIPT)

        self.assertNotIn("error", result)
        self.assertEqual(
            result["paths"],
            [
                "study/a.dcm",
                "study/series1/b.dcm",
                "study/series1/deep/c.dcm",
                "study/many/0.dcm",
                "study/many/1.dcm",
                "study/many/2.dcm",
                "study/many/3.dcm",
                "study/many/4.dcm",
                "loose.dcm",
            ],
        )
        self.assertEqual(result["names"][2], "c.dcm")
        self.assertTrue(result["allFiles"])

    def test_drop_zone_lists_dropped_files(self) -> None:
        """
        Files dropped on the drop zone are listed, and DICOMDIR is skipped.
        """
        self.open_page("upload")

        self.driver.execute_script(DROP_SCRIPT)

        self.wait_for("document.querySelectorAll('#upload-body tr').length === 2")
        rows = {row["name"]: row for row in self.driver.execute_script(ROWS_SCRIPT)}
        self.assertEqual(rows["first.dcm"]["status"], "pending")
        self.assertEqual(rows["DICOMDIR"]["status"], "skipped")
        self.assertFalse(
            self.driver.find_element(By.ID, "upload-button").get_property("disabled")
        )


class PatientsPageTests(ExplorerBrowserMixin, SynchronousTestCase):
    """
    The paged patients list and the drill-down below it.
    """

    patient_count = 57

    def store_patients(self) -> None:
        """
        Store C{patient_count} distinct synthetic patients over REST.
        """
        for index in range(self.patient_count):
            status, answer = self.server.post_instance(synthetic_patient(index))
            self.assertEqual((status, answer["Status"]), (200, "Success"))

    def read_patients_page(self) -> dict[str, Any]:
        """
        Return the patient rows and pager state once a page is drawn.
        """
        self.wait_for_route()
        page: dict[str, Any] = self.driver.execute_script(PATIENTS_SCRIPT)
        return page

    def test_patients_list_pages(self) -> None:
        """
        Each page lists what GET /patients?expand&since&limit returns, with the
        range and the pager buttons set.
        """
        self.store_patients()
        self.open_page("patients")

        first = self.read_patients_page()
        expected_first = self.server.get_json("patients?expand&since=0&limit=50")
        self.assertEqual(first["ids"], [p["ID"] for p in expected_first])
        self.assertEqual(
            first["patientIds"],
            [p["MainDicomTags"]["PatientID"] for p in expected_first],
        )
        self.assertEqual(first["range"], f"1–50 of {self.patient_count}")
        self.assertTrue(first["previousDisabled"])
        self.assertFalse(first["nextDisabled"])

        self.driver.find_element(By.ID, "patients-next").click()
        second = self.read_patients_page()
        expected_second = self.server.get_json("patients?expand&since=50&limit=50")
        self.assertEqual(second["ids"], [p["ID"] for p in expected_second])
        self.assertEqual(len(second["ids"]), self.patient_count - 50)
        self.assertEqual(
            second["range"], f"51–{self.patient_count} of {self.patient_count}"
        )
        self.assertFalse(second["previousDisabled"])
        self.assertTrue(second["nextDisabled"])

        self.driver.find_element(By.ID, "patients-previous").click()
        self.assertEqual(self.read_patients_page()["ids"], first["ids"])

    def test_patients_list_empty_store(self) -> None:
        """
        An empty store shows no rows, "0 of 0" and a hint to upload.
        """
        self.open_page("patients")

        page = self.read_patients_page()

        self.assertEqual(page["ids"], [])
        self.assertEqual(page["range"], "0 of 0")
        self.assertTrue(page["nextDisabled"])
        self.assertTrue(
            self.driver.find_element(By.ID, "patients-empty").is_displayed()
        )

    def test_drill_down_reaches_instance_tags(self) -> None:
        """
        Clicking through patient, study, series and instance ends at the
        instance's tags, which show its SOP Instance UID.
        """
        status, answer = self.server.post_instance(synthetic_patient(7))
        self.assertEqual(status, 200)
        self.open_page("patients")

        for level in ["patient", "study", "series", "instance"]:
            table = "#patients-body" if level == "patient" else "#children-body"
            self.driver.find_element(By.CSS_SELECTOR, f"{table} a").click()
            self.wait_for_route()
            level_shown = self.driver.execute_script(
                "return document.getElementById('resource').dataset.level;"
            )
            self.assertEqual(level_shown, level)

        instance_id = self.driver.execute_script(
            "return document.getElementById('resource').dataset.id;"
        )
        self.assertEqual(instance_id, answer["ID"])
        sop_uid = self.driver.execute_script(
            "return document.querySelector("
            "'#children-body tr[data-tag=\"0008,0018\"] .tag-value').textContent;"
        )
        tags = self.server.get_json(f"instances/{answer['ID']}/simplified-tags")
        self.assertEqual(sop_uid, tags["SOPInstanceUID"])
