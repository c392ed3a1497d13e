// REST helpers and small DOM and formatting utilities shared by the Explorer.
//
// The page is served at <root>/app/explorer.html and the REST API lives at
// <root>/, so every API URL is resolved against the parent of the page's
// folder. That keeps the page working behind a reverse proxy that adds a
// path prefix.

export const apiRoot = new URL("../", document.baseURI);

// Build the URL of a REST route. `query` is a list of [name, value] pairs,
// and a null value writes the bare name, as Orthanc spells flags (`?expand`).
export function apiUrl(path, query = []) {
  const url = new URL(path.replace(/^\/+/, ""), apiRoot);
  const parts = query.map(([name, value]) =>
    value === null
      ? encodeURIComponent(name)
      : `${encodeURIComponent(name)}=${encodeURIComponent(value)}`,
  );
  url.search = parts.join("&");
  return url;
}

export class ApiError extends Error {
  constructor(status, message, details) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.details = details;
  }
}

// Extract the server's message from an error body. Orthanc-style errors are
// JSON objects with "Message" and "Details"; anything else falls back to the
// HTTP status line.
export function errorFromBody(status, statusText, bodyText) {
  let message = `HTTP ${status}${statusText ? " " + statusText : ""}`;
  let details = "";
  try {
    const body = JSON.parse(bodyText);
    if (body && typeof body === "object" && typeof body.Message === "string") {
      message = body.Message;
      details = typeof body.Details === "string" ? body.Details : "";
    }
  } catch (error) {
    if (!(error instanceof SyntaxError)) {
      throw error;
    }
  }
  return new ApiError(status, message, details);
}

export async function getJson(path, query = []) {
  const response = await fetch(apiUrl(path, query), {
    headers: { Accept: "application/json" },
  });
  const text = await response.text();
  if (!response.ok) {
    throw errorFromBody(response.status, response.statusText, text);
  }
  return JSON.parse(text);
}

// Run `task` over `values` with at most `limit` calls in flight, keeping the
// order of the results.
export async function mapLimited(values, limit, task) {
  const results = new Array(values.length);
  let next = 0;
  async function worker() {
    while (next < values.length) {
      const index = next;
      next += 1;
      results[index] = await task(values[index], index);
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(limit, values.length); i += 1) {
    workers.push(worker());
  }
  await Promise.all(workers);
  return results;
}

// Create an element. `attributes` keys starting with "on" become listeners,
// "dataset" is an object of data-* values, and everything else is set as an
// attribute. Children are nodes or strings; null and undefined are skipped.
export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (name.startsWith("on")) {
      node.addEventListener(name.slice(2), value);
    } else if (name === "className") {
      node.className = value;
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      node.append(child);
    }
  }
  return node;
}

export function formatBytes(size) {
  if (size < 1024) {
    return `${size} B`;
  }
  const units = ["KB", "MB", "GB", "TB"];
  let value = size / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

// Show a DICOM DA value (YYYYMMDD) as YYYY-MM-DD; other values pass through.
export function formatDicomDate(value) {
  if (typeof value === "string" && /^\d{8}$/.test(value)) {
    return `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6, 8)}`;
  }
  return value ?? "";
}

// Show a DICOM TM value (HHMMSS.frac) as HH:MM:SS; other values pass through.
export function formatDicomTime(value) {
  if (typeof value === "string" && /^\d{6}/.test(value)) {
    return `${value.slice(0, 2)}:${value.slice(2, 4)}:${value.slice(4, 6)}`;
  }
  return value ?? "";
}

export function formatCount(value) {
  return typeof value === "number" ? value.toLocaleString("en-US") : "–";
}
