// The report page follows its report: polls report_status about every 1.5 s
// and updates the progress bar, the stage, the error and, once done, the
// files, until the report is done or failed.
//
// The page works without this script: it shows the state when loaded, a
// native <progress> and a refresh link. Nothing here uses innerHTML; text
// from the server goes in through textContent.
(function () {
  "use strict";

  const box = document.getElementById("report-status");
  if (!box || !box.dataset.statusUrl) {
    return;
  }

  const POLL_MS = 1500;
  const RETRY_MS = [3000, 6000, 15000, 30000]; // after a network or server error
  const BADGES = {
    queued: ["text-bg-secondary", "Queued"],
    running: ["text-bg-primary", "Running"],
    done: ["text-bg-success", "Done"],
    failed: ["text-bg-danger", "Failed"],
  };

  const part = (role) => document.querySelector(`[data-role="${role}"]`);
  const track = part("bar-track");
  const bar = part("bar");
  const stage = part("stage");
  const error = part("error");
  const badge = part("badge");
  const refresh = part("refresh");
  const filesSection = part("files-section");
  const files = part("files");
  const hash = part("hash");
  const again = part("again");
  let failures = 0;

  function showProgress(percent) {
    if (!track || !bar) {
      return;
    }
    track.classList.remove("d-none");
    track.setAttribute("aria-valuenow", String(percent));
    bar.style.width = `${percent}%`; // CSSOM, which the CSP allows (no inline style attribute)
  }

  function showBadge(status) {
    const [cls, label] = BADGES[status] || BADGES.queued;
    const span = document.createElement("span");
    span.className = `badge ${cls}`;
    span.textContent = label;
    badge.replaceChildren(span);
  }

  function showFiles(list) {
    const items = list.map((file) => {
      const li = document.createElement("li");
      li.className = "list-group-item d-flex justify-content-between align-items-center gap-2";
      const link = document.createElement("a");
      link.href = file.url;
      link.setAttribute("download", "");
      link.textContent = file.name;
      const size = document.createElement("span");
      size.className = "small text-body-secondary";
      size.textContent = file.size_display;
      li.append(link, size);
      return li;
    });
    files.replaceChildren(...items);
    filesSection.classList.remove("d-none");
  }

  function show(state) {
    box.dataset.status = state.status;
    showBadge(state.status);
    stage.textContent = state.status === "running" ? `${state.progress}% · ${state.stage}` : state.stage;
    error.textContent = state.error;
    error.classList.toggle("d-none", !state.error);
    if (state.finished) {
      if (track) {
        track.remove();
      }
      if (refresh) {
        refresh.remove();
      }
      if (again) {
        const button = again.querySelector("button");
        if (button) {
          button.textContent = state.status === "done" ? "Build again with today's data" : "Try again";
        }
        again.classList.remove("d-none");
      }
      if (state.status === "done") {
        showFiles(state.files);
        if (hash && state.data_hash) {
          const code = document.createElement("code");
          code.className = "text-break";
          code.textContent = state.data_hash;
          hash.replaceChildren(code);
        }
      }
    } else {
      showProgress(state.progress);
    }
  }

  async function poll() {
    let state;
    try {
      const response = await fetch(box.dataset.statusUrl, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (!response.ok || !(response.headers.get("Content-Type") || "").includes("application/json")) {
        throw new Error(`status ${response.status}`); // e.g. a login page after the session expired
      }
      state = await response.json();
    } catch (e) {
      const wait = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
      failures += 1;
      window.setTimeout(poll, wait);
      return;
    }
    failures = 0;
    show(state);
    if (!state.finished) {
      window.setTimeout(poll, POLL_MS);
    }
  }

  showProgress(parseInt(box.dataset.progress, 10) || 0);
  window.setTimeout(poll, POLL_MS);
})();
