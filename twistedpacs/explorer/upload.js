// The upload page: collect files from a drop, a file input or a folder input,
// list them, and send each one as a raw body to POST /instances, three at a
// time.

import { apiUrl, element, errorFromBody, formatBytes } from "./api.js";

// Number of uploads in flight at once.
export const UPLOAD_CONCURRENCY = 3;

// Relative paths of files found by walking dropped folders. A File's own
// webkitRelativePath is read-only and empty for dropped files.
const relativePaths = new WeakMap();

export function relativePath(file) {
  return relativePaths.get(file) || file.webkitRelativePath || file.name;
}

function readEntryBatch(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

function entryFile(entry) {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

// Walk FileSystemEntry objects (from DataTransferItem.webkitGetAsEntry())
// depth first and resolve to every File inside them. readEntries() returns a
// directory's children in batches (Chromium sends at most 100 at a time), so
// it is called until it returns an empty batch. A failing read rejects the
// whole walk, so no folder is silently left out.
export async function collectEntries(entries) {
  const files = [];
  async function visit(entry) {
    if (entry.isFile) {
      const file = await entryFile(entry);
      const path = (entry.fullPath || file.name).replace(/^\/+/, "");
      relativePaths.set(file, path);
      files.push(file);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await readEntryBatch(reader);
        if (batch.length === 0) {
          break;
        }
        for (const child of batch) {
          await visit(child);
        }
      }
    }
  }
  for (const entry of entries) {
    if (entry) {
      await visit(entry);
    }
  }
  return files;
}

function isDicomdir(path) {
  const basename = path.split("/").pop();
  return basename.toUpperCase() === "DICOMDIR";
}

function isZip(file) {
  return (
    file.name.toLowerCase().endsWith(".zip") ||
    file.type === "application/zip" ||
    file.type === "application/x-zip-compressed"
  );
}

// The upload list: one item per file, with its table row.
const items = [];
let uploading = false;
const dom = {};

function resultText(status) {
  return status === "Success"
    ? ["stored", "Stored"]
    : status === "AlreadyStored"
      ? ["already-stored", "Already stored"]
      : ["rejected", `Rejected: unexpected status ${status}`];
}

function setResult(item, status, text, details = "") {
  item.status = status;
  item.row.dataset.status = status;
  item.resultCell.replaceChildren(text);
  if (details && details !== text) {
    item.resultCell.append(element("span", { className: "details" }, details));
  }
}

function createItem(file) {
  const path = relativePath(file);
  const kind = isDicomdir(path) ? "dicomdir" : isZip(file) ? "zip" : "dicom";
  const progress = element("progress", {
    max: "1",
    value: "0",
    "aria-label": `Upload progress of ${path}`,
  });
  const resultCell = element("td", { className: "result" });
  const row = element(
    "tr",
    { dataset: { name: path, kind, status: "pending" } },
    element("td", { className: "file-name" }, path),
    element("td", { className: "number" }, formatBytes(file.size)),
    element("td", { className: "progress" }, progress),
    resultCell,
  );
  const item = { file, path, kind, row, progress, resultCell, status: "pending" };
  if (kind === "dicomdir") {
    progress.hidden = true;
    setResult(item, "skipped", "DICOMDIR skipped");
  } else {
    resultCell.textContent = "Waiting";
  }
  return item;
}

// Add files to the list. A file already listed with the same path, size and
// modification time, and not yet uploaded, is not listed twice.
export function addFiles(files) {
  const fragment = document.createDocumentFragment();
  for (const file of files) {
    const path = relativePath(file);
    const duplicate = items.some(
      (item) =>
        item.status === "pending" &&
        item.path === path &&
        item.file.size === file.size &&
        item.file.lastModified === file.lastModified,
    );
    if (duplicate) {
      continue;
    }
    const item = createItem(file);
    items.push(item);
    fragment.append(item.row);
  }
  dom.body.append(fragment);
  updateControls();
}

function updateControls() {
  const pending = items.filter((item) => item.status === "pending").length;
  dom.uploadButton.disabled = uploading || pending === 0;
  dom.clearButton.disabled = uploading || items.length === 0;
  dom.selection.textContent = uploading
    ? ""
    : `${items.length} file${items.length === 1 ? "" : "s"} listed, ` +
      `${pending} to upload`;
}

function showZipEntries(item, answers) {
  const counts = { stored: 0, "already-stored": 0, rejected: 0 };
  const list = element("ol", { className: "zip-entries" });
  answers.forEach((answer, index) => {
    let status;
    let text;
    if (answer && typeof answer.Status === "string" && answer.ID) {
      [status, text] = resultText(answer.Status);
    } else {
      status = "rejected";
      text = `Rejected: ${answer?.Message ?? "no answer for this entry"}`;
    }
    counts[status] += 1;
    const label = answer?.ID
      ? element("a", { href: `#instance/${answer.ID}` }, answer.ID)
      : `Entry ${index + 1}`;
    list.append(
      element("li", { dataset: { status, id: answer?.ID ?? "" } }, label, " ", text),
    );
  });
  item.zipCounts = counts;
  if (answers.length === 0) {
    setResult(item, "rejected", "Rejected: the ZIP archive contains no DICOM file");
    return;
  }
  const summary =
    `ZIP: ${counts.stored} stored, ${counts["already-stored"]} already stored, ` +
    `${counts.rejected} rejected`;
  setResult(item, "zip", summary);
  const detailsRow = element(
    "tr",
    { className: "zip-entries-row", dataset: { parentName: item.path } },
    element("td", { colspan: "4" }, list),
  );
  item.row.after(detailsRow);
  item.detailsRow = detailsRow;
}

function handleAnswer(item, xhr) {
  if (xhr.status < 200 || xhr.status >= 300) {
    const error = errorFromBody(xhr.status, xhr.statusText, xhr.responseText);
    setResult(item, "rejected", `Rejected: ${error.message}`, error.details);
    return;
  }
  let answer;
  try {
    answer = JSON.parse(xhr.responseText);
  } catch (error) {
    setResult(item, "failed", "Failed: the server's answer is not JSON");
    return;
  }
  if (Array.isArray(answer)) {
    showZipEntries(item, answer);
    return;
  }
  if (answer === null || typeof answer !== "object") {
    setResult(item, "failed", "Failed: the server's answer is not a JSON object");
    return;
  }
  const [status, text] = resultText(answer.Status);
  setResult(item, status, text);
  item.row.dataset.id = answer.ID ?? "";
}

function uploadItem(item) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", apiUrl("instances"));
    xhr.setRequestHeader(
      "Content-Type",
      item.kind === "zip" ? "application/zip" : "application/dicom",
    );
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && event.total > 0) {
        item.progress.value = event.loaded / event.total;
      }
    });
    xhr.addEventListener("load", () => {
      item.progress.value = 1;
      handleAnswer(item, xhr);
    });
    xhr.addEventListener("error", () => {
      setResult(item, "failed", "Failed: the connection closed before a response");
    });
    xhr.addEventListener("abort", () => {
      setResult(item, "failed", "Failed: the upload was aborted");
    });
    xhr.addEventListener("timeout", () => {
      setResult(item, "failed", "Failed: the upload timed out");
    });
    // loadend follows each of the events above, once the request is over.
    xhr.addEventListener("loadend", () => resolve());
    item.row.dataset.status = "uploading";
    item.resultCell.textContent = "Uploading";
    // The file itself is the body: no multipart encoding.
    xhr.send(item.file);
  });
}

function countResults() {
  const totals = { stored: 0, "already-stored": 0, rejected: 0, skipped: 0, failed: 0 };
  for (const item of items) {
    if (item.status === "zip") {
      for (const [status, count] of Object.entries(item.zipCounts)) {
        totals[status] += count;
      }
    } else if (item.status in totals) {
      totals[item.status] += 1;
    }
  }
  return totals;
}

function showSummary(state) {
  const totals = countResults();
  const parts = [
    `${totals.stored} stored`,
    `${totals["already-stored"]} already stored`,
    `${totals.rejected} rejected`,
    `${totals.skipped} skipped`,
  ];
  if (totals.failed > 0) {
    parts.push(`${totals.failed} failed`);
  }
  dom.summary.hidden = false;
  dom.summary.dataset.state = state;
  dom.summary.dataset.stored = totals.stored;
  dom.summary.dataset.alreadyStored = totals["already-stored"];
  dom.summary.dataset.rejected = totals.rejected;
  dom.summary.dataset.skipped = totals.skipped;
  dom.summary.dataset.failed = totals.failed;
  dom.summary.textContent =
    (state === "done" ? "Upload finished: " : "Uploading: ") + parts.join(", ");
}

// Upload every pending file, UPLOAD_CONCURRENCY at a time, and resolve once
// every request has finished.
export async function startUpload() {
  if (uploading) {
    return;
  }
  const queue = items.filter((item) => item.status === "pending");
  uploading = true;
  updateControls();
  showSummary("running");
  async function worker() {
    while (queue.length > 0) {
      await uploadItem(queue.shift());
      showSummary("running");
    }
  }
  const workers = [];
  for (let i = 0; i < UPLOAD_CONCURRENCY; i += 1) {
    workers.push(worker());
  }
  await Promise.all(workers);
  uploading = false;
  showSummary("done");
  updateControls();
  dom.onUploaded();
}

function clearList() {
  items.length = 0;
  dom.body.replaceChildren();
  dom.summary.hidden = true;
  updateControls();
}

async function handleDrop(event) {
  event.preventDefault();
  dom.dropZone.classList.remove("drag-over");
  const transfer = event.dataTransfer;
  // Entries must be taken during the event: the DataTransfer is emptied once
  // the handler returns. A synthetic DataTransfer has no entries, so its
  // files are used as they are.
  const entries = [...transfer.items]
    .filter((item) => item.kind === "file")
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
  const plainFiles = [...transfer.files];
  try {
    const files = entries.length > 0 && entries.every(Boolean)
      ? await collectEntries(entries)
      : plainFiles;
    addFiles(files);
  } catch (error) {
    dom.onError(`Reading the dropped folder failed: ${error.message ?? error}`);
  }
}

export function setUpUploadPage({ onUploaded, onError }) {
  dom.body = document.getElementById("upload-body");
  dom.uploadButton = document.getElementById("upload-button");
  dom.clearButton = document.getElementById("clear-button");
  dom.selection = document.getElementById("upload-selection");
  dom.summary = document.getElementById("upload-summary");
  dom.dropZone = document.getElementById("drop-zone");
  dom.onUploaded = onUploaded;
  dom.onError = onError;

  for (const id of ["file-input", "folder-input"]) {
    const input = document.getElementById(id);
    input.addEventListener("change", () => {
      addFiles([...input.files]);
      input.value = "";
    });
  }
  dom.dropZone.addEventListener("dragover", (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    dom.dropZone.classList.add("drag-over");
  });
  dom.dropZone.addEventListener("dragleave", () => {
    dom.dropZone.classList.remove("drag-over");
  });
  dom.dropZone.addEventListener("drop", handleDrop);
  // The drop zone takes focus, so Enter or Space opens the file chooser.
  dom.dropZone.addEventListener("keydown", (event) => {
    if (event.target === dom.dropZone && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      document.getElementById("file-input").click();
    }
  });
  dom.uploadButton.addEventListener("click", () => startUpload());
  dom.clearButton.addEventListener("click", clearList);
  updateControls();
}
