// The Explorer's shell: header statistics, hash routing, the paged patients
// list and the patient -> study -> series -> instance drill-down.

import {
  apiUrl,
  element,
  formatBytes,
  formatCount,
  formatDicomDate,
  formatDicomTime,
  getJson,
  mapLimited,
} from "./api.js";
import {
  addFiles,
  collectEntries,
  relativePath,
  setUpUploadPage,
  startUpload,
} from "./upload.js";

// Rows per page in the patients list and in child lists.
export const PAGE_SIZE = 50;
// Child resources fetched at once when a page of children is shown.
const FETCH_CONCURRENCY = 6;

const statistics = { CountPatients: null };

function showError(message) {
  const banner = document.getElementById("error-banner");
  banner.textContent = message;
  banner.hidden = false;
}

function clearError() {
  document.getElementById("error-banner").hidden = true;
}

function setText(id, value) {
  document.getElementById(id).textContent = value;
}

async function loadSystem() {
  const system = await getJson("system");
  setText("server-name", system.Name || "TwistedPACS");
  setText("server-aet", system.DicomAet ?? "–");
  setText("server-dicom-port", system.DicomPort ?? "–");
  setText("server-version", system.Version ?? "–");
  document.title = `${system.Name || "TwistedPACS"} Explorer`;
}

export async function refreshStatistics() {
  const answer = await getJson("statistics");
  Object.assign(statistics, answer);
  setText("count-patients", formatCount(answer.CountPatients));
  setText("count-studies", formatCount(answer.CountStudies));
  setText("count-series", formatCount(answer.CountSeries));
  setText("count-instances", formatCount(answer.CountInstances));
  // Orthanc sends TotalDiskSize in bytes as a string, and TotalDiskSizeMB
  // rounded down to whole megabytes.
  const bytes = answer.TotalDiskSize !== undefined
    ? Number(answer.TotalDiskSize)
    : Number(answer.TotalDiskSizeMB) * 1048576;
  setText("disk-size", Number.isFinite(bytes) ? formatBytes(bytes) : "–");
  return answer;
}

function showView(id) {
  for (const view of document.querySelectorAll("main > .view")) {
    view.hidden = view.id !== id;
  }
  const section = id === "upload" ? "upload" : "patients";
  for (const link of document.querySelectorAll(".site-nav a")) {
    const current = link.id === `nav-${section}`;
    if (current) {
      link.setAttribute("aria-current", "page");
    } else {
      link.removeAttribute("aria-current");
    }
  }
}

function rangeText(offset, shown, total) {
  if (shown === 0) {
    return `0 of ${formatCount(total)}`;
  }
  return `${formatCount(offset + 1)}–${formatCount(offset + shown)} of ${formatCount(total)}`;
}

function patientRow(patient) {
  const tags = patient.MainDicomTags ?? {};
  const name = tags.PatientName || "(no name)";
  return element(
    "tr",
    { dataset: { id: patient.ID, patientId: tags.PatientID ?? "" } },
    element("td", { className: "patient-name" },
      element("a", { href: `#patient/${patient.ID}` }, name)),
    element("td", { className: "patient-id" }, tags.PatientID ?? ""),
    element("td", { className: "birth-date" }, formatDicomDate(tags.PatientBirthDate)),
    element("td", { className: "sex" }, tags.PatientSex ?? ""),
    element("td", { className: "number study-count" },
      String((patient.Studies ?? []).length)),
  );
}

async function showPatients(page) {
  showView("patients");
  const since = (page - 1) * PAGE_SIZE;
  const [patients, stats] = await Promise.all([
    getJson("patients", [["expand", null], ["since", since], ["limit", PAGE_SIZE]]),
    refreshStatistics(),
  ]);
  const total = Math.max(stats.CountPatients ?? 0, since + patients.length);
  const body = document.getElementById("patients-body");
  body.replaceChildren(...patients.map(patientRow));
  document.getElementById("patients-empty").hidden = total > 0;
  const range = document.getElementById("patients-range");
  range.textContent = rangeText(since, patients.length, total);
  range.dataset.since = since;
  range.dataset.rowCount = patients.length;
  range.dataset.total = total;
  const previous = document.getElementById("patients-previous");
  const next = document.getElementById("patients-next");
  previous.disabled = page <= 1;
  next.disabled = since + patients.length >= total;
  previous.onclick = () => { location.hash = `#patients?page=${page - 1}`; };
  next.onclick = () => { location.hash = `#patients?page=${page + 1}`; };
}

// Per-level settings: REST route, title, summary tags and links. `columns`
// are the cells of this level's rows when it is listed under its parent.
const LEVELS = {
  patient: {
    route: "patients",
    label: "Patient",
    parentKey: null,
    childrenKey: "Studies",
    childLevel: "study",
    title: (tags) => tags.PatientName || "(no name)",
    summary: ["PatientID", "PatientBirthDate", "PatientSex"],
  },
  study: {
    route: "studies",
    label: "Study",
    parentKey: "ParentPatient",
    childrenKey: "Series",
    childLevel: "series",
    title: (tags) => tags.StudyDescription || tags.StudyInstanceUID || "(study)",
    summary: ["StudyDate", "StudyTime", "AccessionNumber", "StudyID",
      "ReferringPhysicianName", "StudyInstanceUID"],
    columns: [
      ["Description", (r) => r.MainDicomTags.StudyDescription || "(no description)"],
      ["Date", (r) => formatDicomDate(r.MainDicomTags.StudyDate)],
      ["Accession", (r) => r.MainDicomTags.AccessionNumber ?? ""],
      ["Series", (r) => String((r.Series ?? []).length)],
    ],
  },
  series: {
    route: "series",
    label: "Series",
    parentKey: "ParentStudy",
    childrenKey: "Instances",
    childLevel: "instance",
    title: (tags) => tags.SeriesDescription || `Series ${tags.SeriesNumber ?? ""}`,
    summary: ["Modality", "SeriesNumber", "SeriesDate", "BodyPartExamined",
      "SeriesInstanceUID"],
    columns: [
      ["Description", (r) => r.MainDicomTags.SeriesDescription || "(no description)"],
      ["Modality", (r) => r.MainDicomTags.Modality ?? ""],
      ["Number", (r) => r.MainDicomTags.SeriesNumber ?? ""],
      ["Instances", (r) => String((r.Instances ?? []).length)],
    ],
  },
  instance: {
    route: "instances",
    label: "Instance",
    parentKey: "ParentSeries",
    childrenKey: null,
    title: (tags) => `Instance ${tags.InstanceNumber ?? tags.SOPInstanceUID ?? ""}`,
    summary: ["InstanceNumber", "SOPInstanceUID"],
    columns: [
      ["Number", (r) => r.MainDicomTags.InstanceNumber ?? r.IndexInSeries ?? ""],
      ["SOP Instance UID", (r) => r.MainDicomTags.SOPInstanceUID ?? ""],
      ["Size", (r) => (r.FileSize === undefined ? "" : formatBytes(r.FileSize))],
    ],
  },
};

function formatTag(name, value) {
  if (name.endsWith("Date")) {
    return formatDicomDate(value);
  }
  if (name.endsWith("Time")) {
    return formatDicomTime(value);
  }
  return value ?? "";
}

// Fetch the resource's ancestors, nearest last, for the breadcrumbs.
async function ancestors(level, resource) {
  const chain = [];
  let currentLevel = level;
  let current = resource;
  const parents = { study: "patient", series: "study", instance: "series" };
  while (LEVELS[currentLevel].parentKey) {
    const parentLevel = parents[currentLevel];
    const parentId = current[LEVELS[currentLevel].parentKey];
    current = await getJson(`${LEVELS[parentLevel].route}/${parentId}`);
    currentLevel = parentLevel;
    chain.unshift([currentLevel, current]);
  }
  return chain;
}

function showBreadcrumbs(chain, level, resource) {
  const nav = document.getElementById("breadcrumbs");
  const links = [element("a", { href: "#patients" }, "Patients")];
  for (const [ancestorLevel, ancestor] of chain) {
    const title = LEVELS[ancestorLevel].title(ancestor.MainDicomTags ?? {});
    links.push(element("a", { href: `#${ancestorLevel}/${ancestor.ID}` },
      `${LEVELS[ancestorLevel].label}: ${title}`));
  }
  links.push(element("span", { "aria-current": "page" },
    `${LEVELS[level].label}: ${LEVELS[level].title(resource.MainDicomTags ?? {})}`));
  nav.replaceChildren(...links.flatMap((link, i) => (i ? [" › ", link] : [link])));
}

function showSummaryTags(level, resource) {
  const tags = resource.MainDicomTags ?? {};
  const list = document.getElementById("resource-tags");
  list.replaceChildren();
  for (const name of LEVELS[level].summary) {
    if (tags[name] !== undefined && tags[name] !== "") {
      list.append(element("div", {}, element("dt", {}, name),
        element("dd", {}, formatTag(name, tags[name]))));
    }
  }
}

async function showChildren(level, resource, page) {
  const config = LEVELS[level];
  const childLevel = config.childLevel;
  const childConfig = LEVELS[childLevel];
  const ids = resource[config.childrenKey] ?? [];
  const since = (page - 1) * PAGE_SIZE;
  const pageIds = ids.slice(since, since + PAGE_SIZE);
  const children = await mapLimited(pageIds, FETCH_CONCURRENCY,
    (id) => getJson(`${childConfig.route}/${id}`));
  if (childLevel === "instance") {
    children.sort((a, b) => (a.IndexInSeries ?? 0) - (b.IndexInSeries ?? 0));
  }
  setText("children-title", `${config.childrenKey} (${formatCount(ids.length)})`);
  document.getElementById("children-head").replaceChildren(element("tr", {},
    childConfig.columns.map(([heading]) => element("th", { scope: "col" }, heading))));
  document.getElementById("children-body").replaceChildren(...children.map((child) =>
    element("tr", { dataset: { id: child.ID, level: childLevel } },
      childConfig.columns.map(([, value], column) => element("td", {},
        column === 0
          ? element("a", { href: `#${childLevel}/${child.ID}` }, value(child) || child.ID)
          : value(child))))));
  const pager = document.getElementById("children-pager");
  pager.hidden = ids.length <= PAGE_SIZE;
  setText("children-range", rangeText(since, pageIds.length, ids.length));
  const previous = document.getElementById("children-previous");
  const next = document.getElementById("children-next");
  previous.disabled = page <= 1;
  next.disabled = since + pageIds.length >= ids.length;
  previous.onclick = () => { location.hash = `#${level}/${resource.ID}?page=${page - 1}`; };
  next.onclick = () => { location.hash = `#${level}/${resource.ID}?page=${page + 1}`; };
}

// Render one value of GET /instances/{id}/tags: strings as they are, and
// sequences as nested tables of their items.
function tagValue(tag) {
  if (tag.Type === "Sequence") {
    return element("ol", { className: "sequence" }, (tag.Value ?? []).map((item) =>
      element("li", {}, tagTable(item))));
  }
  if (tag.Type === "Null") {
    return "";
  }
  if (tag.Type === "TooLong") {
    return element("em", {}, "(value too long to show)");
  }
  return typeof tag.Value === "string" ? tag.Value : JSON.stringify(tag.Value);
}

function tagTable(tags) {
  return element("table", { className: "tags" },
    element("tbody", {}, Object.entries(tags).map(([number, tag]) =>
      element("tr", { dataset: { tag: number } },
        element("td", { className: "tag-number" }, `(${number})`),
        element("td", { className: "tag-name" }, tag.Name ?? ""),
        element("td", { className: "tag-value" }, tagValue(tag))))));
}

async function showInstanceTags(resource) {
  const tags = await getJson(`instances/${resource.ID}/tags`);
  setText("children-title", "DICOM tags");
  document.getElementById("children-pager").hidden = true;
  document.getElementById("children-head").replaceChildren(element("tr", {},
    ["Tag", "Name", "Value"].map((heading) => element("th", { scope: "col" }, heading))));
  const body = document.getElementById("children-body");
  body.replaceChildren(...tagTable(tags).querySelector("tbody").children);
  const actions = document.getElementById("resource-actions");
  actions.replaceChildren(element("a", {
    href: apiUrl(`instances/${resource.ID}/file`).href,
    download: `${resource.ID}.dcm`,
    className: "button",
  }, "Download DICOM file"));
}

async function showResource(level, id, page) {
  showView("resource");
  const resource = await getJson(`${LEVELS[level].route}/${id}`);
  const section = document.getElementById("resource");
  section.dataset.level = level;
  section.dataset.id = id;
  setText("resource-title",
    `${LEVELS[level].label}: ${LEVELS[level].title(resource.MainDicomTags ?? {})}`);
  document.getElementById("resource-actions").replaceChildren();
  showSummaryTags(level, resource);
  showBreadcrumbs(await ancestors(level, resource), level, resource);
  if (level === "instance") {
    await showInstanceTags(resource);
  } else {
    await showChildren(level, resource, page);
  }
}

function parseRoute() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const page = Math.max(1, Number.parseInt(new URLSearchParams(query).get("page"), 10) || 1);
  const [name, id] = path.split("/");
  return { name: name || "patients", id, page };
}

// Draw the view of the current location hash. When it is drawn, the body's
// data-rendered-hash names that hash, which tests wait for.
async function route() {
  clearError();
  const hash = location.hash;
  delete document.body.dataset.renderedHash;
  const { name, id, page } = parseRoute();
  try {
    if (name === "upload") {
      showView("upload");
    } else if (LEVELS[name] && id) {
      await showResource(name, decodeURIComponent(id), page);
    } else {
      await showPatients(page);
    }
  } catch (error) {
    showError(`Loading this page failed: ${error.message}`);
  }
  document.body.dataset.route = name;
  if (location.hash === hash) {
    document.body.dataset.renderedHash = hash;
  }
}

async function start() {
  setUpUploadPage({
    onUploaded: () => refreshStatistics().catch((error) =>
      showError(`Reading the statistics failed: ${error.message}`)),
    onError: showError,
  });
  window.addEventListener("hashchange", route);
  loadSystem().catch((error) => showError(`Reading /system failed: ${error.message}`));
  if (parseRoute().name !== "patients") {
    refreshStatistics().catch((error) =>
      showError(`Reading /statistics failed: ${error.message}`));
  }
  await route();
}

window.twistedpacsExplorer = {
  addFiles,
  collectEntries,
  refreshStatistics,
  relativePath,
  startUpload,
};

start();
