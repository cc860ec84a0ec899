// The field-note editor: autosave, a backup in this browser, save conflicts,
// an expired login, and the identifier check.
//
// The page works without this script (a plain form: Save draft, Submit note).
// What the script adds is the promise that nothing typed is lost: every
// keystroke is copied to localStorage at once, and reaches the server within
// seconds; a save that lost a race is shown beside the saved text instead of
// overwriting it; an expired login keeps the text until the author is back.
//
// Offsets from the server count Unicode code points; JavaScript strings count
// UTF-16 units, so every offset is converted before use.
(function () {
  "use strict";

  const form = document.getElementById("note-form");
  if (!form || !form.dataset.autosaveUrl) {
    return;
  }

  const DEBOUNCE_MS = 1500; // save this long after the last keystroke...
  const MAX_WAIT_MS = 10000; // ...but at least this often while typing on
  const RETRY_MS = [3000, 10000, 30000, 60000]; // after a network or server error
  const KEEPALIVE_BYTES = 60000; // browsers refuse keepalive bodies over 64 KiB
  const TAB_PROBE_MS = 250;

  const noteId = form.dataset.noteId;
  const autosaveUrl = form.dataset.autosaveUrl;
  const confirmUrl = form.dataset.confirmUrl;
  const loginUrl = form.dataset.loginUrl || "/accounts/login/";
  const maxChars = parseInt(form.dataset.maxChars, 10) || 100000;
  const storageKey = "fieldnote-draft-" + noteId;
  // Tells this page's backups apart from another tab's (same note, same browser).
  const tabId = Date.now().toString(36) + Math.random().toString(36).slice(2);

  const versionInput = document.getElementById("note-version");
  const statusEl = document.getElementById("save-status");
  const conflictPanel = document.getElementById("conflict-panel");
  const loginBanner = document.getElementById("login-banner");
  const draftNotice = document.getElementById("draft-notice");
  const findingsEl = document.getElementById("findings");
  const submitButton = document.getElementById("submit-note");
  const submitHint = document.getElementById("submit-hint");

  /** Section id (string) -> its textarea. */
  const boxes = new Map();
  form.querySelectorAll("textarea.note-text[data-section-id]").forEach(function (box) {
    boxes.set(box.dataset.sectionId, box);
  });

  let version = parseInt(versionInput.value, 10) || 0;
  /** Section id -> the NFC text the server holds at `version` (null: not known). */
  const saved = new Map();
  let savedAt = parseDate(statusEl.dataset.savedAt);
  let findings = [];
  let tooLong = []; // section ids over the length limit, left out of saves
  let blocked = null; // null, "conflict", "login" or "locked": no autosave until resolved
  let conflict = null; // {version, savedAt, theirs: Map, open: Set}
  let debounceTimer = null;
  let maxWaitTimer = null;
  let retryTimer = null;
  let retryCount = 0;
  let inFlight = null; // the promise of the running save loop
  let again = false; // text changed while a save was in flight: save again after it
  let pending = null; // {baseVersion, sections} of the request in flight, kept in the backup
  let backupOk = true;
  let leaving = false; // navigating away on purpose, with the text safe
  let submitting = false;
  let nativeSubmit = false;

  // --- Small helpers ------------------------------------------------------------

  function nfc(text) {
    return String(text).normalize("NFC");
  }

  function parseDate(value) {
    if (!value) {
      return null;
    }
    const date = new Date(value);
    return isNaN(date.getTime()) ? null : date;
  }

  function hhmm(date) {
    return String(date.getHours()).padStart(2, "0") + ":" + String(date.getMinutes()).padStart(2, "0");
  }

  function number(n) {
    return n.toLocaleString("en-GB");
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function button(label, className, onClick) {
    const node = el("button", "btn btn-sm " + className, label);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  function show(node, visible) {
    node.classList.toggle("d-none", !visible);
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) {
      return decodeURIComponent(match[1]);
    }
    const field = form.querySelector('input[name="csrfmiddlewaretoken"]');
    return field ? field.value : "";
  }

  function herePath() {
    return window.location.pathname + window.location.search;
  }

  function isHighSurrogate(code) {
    return code >= 0xd800 && code <= 0xdbff;
  }

  function isLowSurrogate(code) {
    return code >= 0xdc00 && code <= 0xdfff;
  }

  /** The UTF-16 index of code point `offset` in `text`, or -1 past the end. */
  function utf16Index(text, offset) {
    let index = 0;
    let count = 0;
    while (count < offset && index < text.length) {
      const pair = isHighSurrogate(text.charCodeAt(index)) && isLowSurrogate(text.charCodeAt(index + 1));
      index += pair ? 2 : 1;
      count += 1;
    }
    return count === offset ? index : -1;
  }

  function codePointLength(text) {
    let count = 0;
    for (let i = 0; i < text.length; i += 1) {
      if (!(isLowSurrogate(text.charCodeAt(i)) && i > 0 && isHighSurrogate(text.charCodeAt(i - 1)))) {
        count += 1;
      }
    }
    return count;
  }

  /** The length the server will count: code points of the NFC text. Cheap for short text. */
  function serverLength(text) {
    // A UTF-16 length never undercounts code points, so short text needs no exact count.
    return text.length < maxChars * 0.9 ? text.length : codePointLength(nfc(text));
  }

  function sectionTitle(id) {
    const block = boxes.get(id).closest(".note-section-block");
    const label = block && block.querySelector("label");
    if (!label) {
      return "A section";
    }
    const heading = label.cloneNode(true);
    const badge = heading.querySelector(".badge");
    if (badge) {
      badge.remove();
    }
    const title = heading.textContent.replace(/\s+/g, " ").trim();
    return badge ? title + " (" + badge.textContent.trim() + ")" : title;
  }

  function sectionBlock(id) {
    return boxes.get(id).closest(".note-section-block");
  }

  function currentTexts() {
    const texts = {};
    boxes.forEach(function (box, id) {
      texts[id] = box.value;
    });
    return texts;
  }

  /** Sections whose text differs from what the server holds. */
  function changedIds() {
    const ids = [];
    boxes.forEach(function (box, id) {
      if (saved.get(id) !== nfc(box.value)) {
        ids.push(id);
      }
    });
    return ids;
  }

  function hasUnsaved() {
    return Boolean(inFlight) || changedIds().length > 0;
  }

  // --- Save state ---------------------------------------------------------------

  function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusEl.textContent = text;
  }

  function showSaved() {
    if (!version) {
      setStatus("saved", "Nothing written yet");
    } else {
      setStatus("saved", "Saved (version " + version + ")" + (savedAt ? " at " + hhmm(savedAt) : ""));
    }
  }

  function showNotSaved(reason) {
    setStatus("error", "Not saved — " + reason);
  }

  // --- Backup in this browser ---------------------------------------------------

  function readBackup() {
    try {
      const raw = window.localStorage.getItem(storageKey);
      const backup = raw ? JSON.parse(raw) : null;
      if (backup && String(backup.noteId) === String(noteId) && backup.sections && typeof backup.sections === "object") {
        return backup;
      }
    } catch (error) {
      // Unreadable or unavailable storage: there is no backup to offer.
    }
    return null;
  }

  function writeBackup() {
    try {
      window.localStorage.setItem(storageKey, JSON.stringify({
        noteId: Number(noteId),
        // While a conflict is open the text still sits on its old base, so a
        // reload shows the conflict again instead of saving over the other text.
        baseVersion: conflict ? conflict.base : version,
        sections: currentTexts(),
        at: new Date().toISOString(),
        tab: tabId,
        pending: pending,
      }));
      backupOk = true;
    } catch (error) {
      backupOk = false; // full or forbidden (private mode): the warning on leaving still protects the text
    }
  }

  function clearBackup() {
    try {
      const backup = readBackup();
      // Another tab's backup of text it has not saved yet is not ours to drop.
      if (backup && backup.tab !== tabId && !sameAsSaved(backup.sections)) {
        return;
      }
      window.localStorage.removeItem(storageKey);
    } catch (error) {
      // Nothing to clear.
    }
  }

  function sameAsSaved(sections) {
    return Object.keys(sections).every(function (id) {
      return !saved.has(id) || saved.get(id) === nfc(sections[id]);
    });
  }

  // Tabs of the same note answer for their own backups, so a second tab does
  // not take over text that a live first tab is still saving.
  const channel = "BroadcastChannel" in window ? new BroadcastChannel("fieldnote-" + noteId) : null;
  if (channel) {
    channel.addEventListener("message", function (event) {
      const message = event.data || {};
      if (message.type === "ping" && message.tab === tabId) {
        channel.postMessage({ type: "pong", tab: tabId });
      }
    });
  }

  function tabAlive(tab) {
    if (!channel || !tab || tab === tabId) {
      return Promise.resolve(false);
    }
    return new Promise(function (resolve) {
      const timer = setTimeout(function () {
        channel.removeEventListener("message", onPong);
        resolve(false);
      }, TAB_PROBE_MS);
      function onPong(event) {
        const message = event.data || {};
        if (message.type === "pong" && message.tab === tab) {
          clearTimeout(timer);
          channel.removeEventListener("message", onPong);
          resolve(true);
        }
      }
      channel.addEventListener("message", onPong);
      channel.postMessage({ type: "ping", tab: tab });
    });
  }

  /** Was the backup typed on top of the version this page shows? */
  function backupOnCurrentVersion(backup) {
    if (backup.baseVersion === version) {
      return true;
    }
    // The browser died with a save in flight that did land: the page's version
    // is that save, so the backup's later typing still sits on top of it.
    const sent = backup.pending;
    return Boolean(sent && sent.sections && sent.baseVersion + 1 === version &&
      Object.keys(sent.sections).every(function (id) {
        return saved.get(id) === nfc(sent.sections[id]);
      }));
  }

  async function restoreBackup() {
    const backup = readBackup();
    if (!backup) {
      return;
    }
    const differing = Object.keys(backup.sections).filter(function (id) {
      return boxes.has(id) && typeof backup.sections[id] === "string" && nfc(backup.sections[id]) !== saved.get(id);
    });
    if (!differing.length) {
      clearBackup();
      return;
    }
    if (await tabAlive(backup.tab)) {
      return; // that tab is open and will save its own text
    }
    const at = parseDate(backup.at);
    if (backupOnCurrentVersion(backup)) {
      differing.forEach(function (id) {
        boxes.get(id).value = backup.sections[id];
        updateCounter(id);
      });
      const restored = "Restored text you typed that had not reached the server" +
        (at ? " (kept in this browser at " + hhmm(at) + ")" : "");
      draftNotice.textContent = restored + ". It is being saved now.";
      show(draftNotice, true);
      writeBackup();
      save().then(function (ok) {
        if (ok) {
          draftNotice.textContent = restored + ". It has been saved (version " + version + ").";
        }
      });
      return;
    }
    // Saved elsewhere since: show both, never pick one silently.
    const theirs = {};
    boxes.forEach(function (box, id) {
      theirs[id] = box.value;
    });
    differing.forEach(function (id) {
      boxes.get(id).value = backup.sections[id];
      updateCounter(id);
    });
    showConflict({ version: version, saved_at: statusEl.dataset.savedAt, sections: theirs }, true, backup.baseVersion);
  }

  // --- Saving -------------------------------------------------------------------

  function clearTimers() {
    clearTimeout(debounceTimer);
    clearTimeout(maxWaitTimer);
    debounceTimer = null;
    maxWaitTimer = null;
  }

  function scheduleSave() {
    clearTimeout(debounceTimer);
    debounceTimer = setTimeout(save, DEBOUNCE_MS);
    if (!maxWaitTimer) {
      maxWaitTimer = setTimeout(save, MAX_WAIT_MS);
    }
  }

  function scheduleRetry() {
    clearTimeout(retryTimer);
    const delay = RETRY_MS[Math.min(retryCount, RETRY_MS.length - 1)];
    retryCount += 1;
    retryTimer = setTimeout(save, delay);
  }

  /** Save what differs from the server. One request at a time: a save asked
   * for while one is in flight runs after it, with the text as it is then.
   * Resolves true when the text has reached the server. */
  function save(options) {
    clearTimers();
    if (inFlight) {
      again = true;
      return inFlight;
    }
    inFlight = saveLoop(options || {});
    return inFlight;
  }

  async function saveLoop(options) {
    try {
      let ok;
      do {
        again = false;
        ok = await saveOnce(options);
      } while (ok && again);
      return ok;
    } finally {
      inFlight = null;
    }
  }

  /** Everything saved, or a reason it cannot be. */
  async function flush() {
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const ok = await save();
      if (!ok) {
        return false;
      }
      if (!inFlight && !changedIds().length) {
        return true;
      }
    }
    return false;
  }

  async function saveOnce(options) {
    if (blocked) {
      return false;
    }
    clearTimeout(retryTimer);
    const sections = {};
    const over = [];
    boxes.forEach(function (box, id) {
      const text = nfc(box.value);
      if (saved.get(id) !== text) {
        if (serverLength(text) > maxChars) {
          over.push(id);
        } else {
          sections[id] = text;
        }
      }
    });
    tooLong = over;
    updateSubmit();
    if (!Object.keys(sections).length) {
      if (over.length) {
        showNotSaved(tooLongReason());
        return false;
      }
      showSaved();
      clearBackup();
      return true;
    }

    setStatus("saving", "Saving…");
    const body = JSON.stringify({ version: version, sections: sections });
    pending = { baseVersion: version, sections: sections };
    writeBackup();
    let response;
    let data = null;
    try {
      response = await fetch(autosaveUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          "Accept": "application/json",
          "X-CSRFToken": csrfToken(),
        },
        body: body,
        keepalive: Boolean(options.keepalive) && new TextEncoder().encode(body).length < KEEPALIVE_BYTES,
      });
      if ((response.headers.get("Content-Type") || "").indexOf("application/json") !== -1) {
        data = await response.json();
      }
    } catch (error) {
      pending = null;
      writeBackup();
      showNotSaved("no connection, trying again");
      scheduleRetry();
      return false;
    }
    pending = null;

    if (response.ok && data && typeof data.version === "number") {
      version = data.version;
      versionInput.value = String(version);
      savedAt = parseDate(data.saved_at) || new Date();
      Object.keys(sections).forEach(function (id) {
        saved.set(id, sections[id]);
      });
      retryCount = 0;
      show(loginBanner, false);
      renderFindings(data.findings || []);
      if (changedIds().length) {
        writeBackup(); // typed on during the save: keep it, on top of the new version
        if (tooLong.length) {
          showNotSaved(tooLongReason());
        } else {
          setStatus("dirty", "Not saved yet");
          if (!again) {
            scheduleSave();
          }
        }
      } else {
        clearBackup();
        showSaved();
      }
      return true;
    }

    writeBackup();
    const message = data && data.message;
    if (response.status === 401 || (response.redirected && !data)) {
      blockForLogin(message || "Your login has expired. Your text is kept in this browser: log in again and it will be restored.",
        (data && data.login_url) || loginUrl, "Log in again");
    } else if (response.status === 403) {
      blockForLogin("The page's security check failed: you may have logged out, or your login expired. " +
        "Your text is kept in this browser: reload the page (log in again if asked) and it will be restored.",
        loginUrl, "Reload the page");
    } else if (response.status === 409 && data && data.error === "conflict") {
      showConflict(data, false);
    } else if (response.status === 409) {
      blockLocked();
    } else if (response.status === 400 || response.status === 413) {
      // The same text would be refused again: wait for the author to change it.
      showNotSaved(message || "the server refused the text (it is kept in this browser)");
    } else {
      showNotSaved("server error " + response.status + ", trying again");
      scheduleRetry();
    }
    return false;
  }

  function tooLongReason() {
    return tooLong.length > 1 ? tooLong.length + " sections are too long" : sectionTitle(tooLong[0]) + " is too long";
  }

  // --- Expired login, submitted elsewhere --------------------------------------

  function blockForLogin(message, url, linkText) {
    blocked = "login";
    clearTimers();
    loginBanner.replaceChildren();
    loginBanner.append(el("strong", "", "Not saved. "), message + " ");
    const link = el("a", "alert-link", linkText);
    link.href = linkText === "Reload the page" ? herePath() : url + "?next=" + encodeURIComponent(herePath());
    link.addEventListener("click", function () {
      leaving = backupOk; // the backup brings the text back after logging in
    });
    loginBanner.append(link);
    show(loginBanner, true);
    showNotSaved(linkText === "Reload the page" ? "reload the page" : "login expired");
    updateSubmit();
  }

  function blockLocked() {
    blocked = "locked";
    clearTimers();
    conflictPanel.replaceChildren();
    conflictPanel.append(
      el("strong", "", "This note has been submitted"),
      " (perhaps in another tab or on another device), so it can no longer be saved here. " +
      "Your latest text is still in the boxes: copy what you need, then ",
    );
    const link = el("a", "alert-link", "open the submitted note");
    link.href = herePath();
    conflictPanel.append(link, " and amend it, with a reason.");
    show(conflictPanel, true);
    showNotSaved("note already submitted");
    updateSubmit();
  }

  // Another tab or device might have been logged in meanwhile: try again on return.
  function retryAfterLogin() {
    if (blocked === "login" && document.visibilityState === "visible") {
      blocked = null;
      save().then(function (ok) {
        if (ok) {
          show(loginBanner, false);
        }
      });
    }
  }

  // --- Conflicts ----------------------------------------------------------------

  /** Show both texts of every section that differs. `base` is the version the
   * author's text was typed on (undefined: this page's version). */
  function showConflict(data, fromBackup, base) {
    const theirs = new Map();
    Object.keys(data.sections || {}).forEach(function (id) {
      theirs.set(String(id), nfc(data.sections[id]));
    });
    conflict = {
      version: data.version,
      savedAt: parseDate(data.saved_at),
      theirs: theirs,
      open: new Set(),
      base: base === undefined ? version : base,
    };
    blocked = "conflict";
    clearTimers();
    writeBackup();
    boxes.forEach(function (box, id) {
      if (theirs.has(id) && theirs.get(id) !== nfc(box.value)) {
        conflict.open.add(id);
        renderTheirs(id);
      } else {
        clearTheirs(id);
      }
    });
    if (!conflict.open.size) {
      resolveAll(); // nothing differs after all
      return;
    }
    renderConflictPanel(fromBackup);
    showNotSaved("changed elsewhere, see below");
    updateSubmit();
  }

  function renderConflictPanel(fromBackup) {
    conflictPanel.replaceChildren();
    conflictPanel.append(el("h2", "h6 alert-heading", "This note was changed elsewhere"));
    conflictPanel.append(el("p", "mb-2", fromBackup
      ? "This browser kept text you typed that never reached the server, but the note has been saved " +
        "elsewhere since (another tab or device), now at version " + conflict.version + ". Nothing has been overwritten."
      : "The note was saved in another tab or on another device after this page last saved it, and is now at version " +
        conflict.version + ". Your latest changes have not been saved, and nothing has been overwritten."));
    conflictPanel.append(el("p", "mb-2",
      "For each section below, your text is in the box and the saved text beside it. Copy into your box anything " +
      "you want from the saved text, then choose “Keep mine”; or choose “Use the saved text” to drop your changes " +
      "to that section. Saving goes on once every section is settled."));
    const list = el("ul", "mb-0");
    conflict.open.forEach(function (id) {
      const item = el("li");
      const link = el("a", "alert-link", sectionTitle(id));
      link.href = "#section-" + id;
      item.append(link);
      list.append(item);
    });
    conflictPanel.append(list);
    show(conflictPanel, true);
  }

  function clearTheirs(id) {
    const block = sectionBlock(id);
    block.querySelectorAll(".note-theirs, .note-conflict-actions, .note-mine-label").forEach(function (node) {
      node.remove();
    });
    const pair = block.querySelector(".note-pair");
    if (pair) {
      pair.classList.remove("is-conflict");
    }
  }

  function renderTheirs(id) {
    clearTheirs(id);
    const box = boxes.get(id);
    const block = sectionBlock(id);
    const pair = block.querySelector(".note-pair");
    const mine = box.closest(".note-mine");
    pair.classList.add("is-conflict");
    mine.prepend(el("div", "small fw-semibold note-mine-label", "Your text (not saved yet)"));

    const theirs = el("div", "note-theirs");
    theirs.append(el("div", "small fw-semibold", "Saved elsewhere (version " + conflict.version + ")" +
      (conflict.savedAt ? " at " + hhmm(conflict.savedAt) : "")));
    const savedBox = el("textarea", "form-control bg-body-tertiary note-saved-text");
    savedBox.readOnly = true;
    savedBox.rows = Math.max(box.rows, 6);
    savedBox.value = conflict.theirs.get(id);
    savedBox.setAttribute("aria-label", "Saved text of " + sectionTitle(id));
    theirs.append(savedBox);
    pair.append(theirs);

    const actions = el("div", "note-conflict-actions d-flex flex-wrap align-items-center gap-2 mt-2");
    actions.append(
      button("Keep mine", "btn-primary", function () {
        resolveSection(id, "mine");
      }),
      button("Use the saved text", "btn-outline-secondary", function () {
        resolveSection(id, "theirs");
      }),
      el("span", "small text-body-secondary", "“Keep mine” saves what is in your box, over the saved text."),
    );
    pair.after(actions);
  }

  function resolveSection(id, choice) {
    if (!conflict || !conflict.open.has(id)) {
      return;
    }
    const box = boxes.get(id);
    if (choice === "theirs") {
      box.value = conflict.theirs.get(id);
      updateCounter(id);
    }
    conflict.open.delete(id);
    clearTheirs(id);
    box.focus();
    if (conflict.open.size) {
      writeBackup();
      renderConflictPanel(false);
    } else {
      resolveAll();
    }
  }

  /** Every section settled: build on the saved version and save what is in the boxes. */
  function resolveAll() {
    version = conflict.version;
    versionInput.value = String(version);
    savedAt = conflict.savedAt || savedAt;
    conflict.theirs.forEach(function (text, id) {
      saved.set(id, text);
    });
    boxes.forEach(function (box, id) {
      clearTheirs(id);
    });
    conflict = null;
    blocked = null;
    show(conflictPanel, false);
    const banner = document.getElementById("conflict-banner");
    if (banner) {
      banner.remove();
    }
    writeBackup();
    updateSubmit();
    save();
  }

  // --- Length -------------------------------------------------------------------

  function updateCounter(id) {
    const box = boxes.get(id);
    const mine = box.closest(".note-mine") || box.parentNode;
    let counter = mine.querySelector(".note-counter");
    const length = serverLength(box.value);
    if (length < maxChars * 0.9) {
      if (counter) {
        counter.remove();
        box.classList.remove("is-invalid");
        box.removeAttribute("aria-describedby");
      }
      return;
    }
    if (!counter) {
      counter = el("div", "note-counter small mt-1");
      counter.id = "counter-" + id;
      counter.setAttribute("aria-live", "polite");
      box.after(counter);
      box.setAttribute("aria-describedby", counter.id);
    }
    const over = length > maxChars;
    counter.classList.toggle("text-danger", over);
    counter.classList.toggle("text-body-secondary", !over);
    box.classList.toggle("is-invalid", over);
    counter.textContent = over
      ? "Too long: " + number(length) + " characters, " + number(length - maxChars) + " over the limit of " +
        number(maxChars) + ". Shorten this section or move part of it to another; until then it cannot be saved " +
        "(it is kept in this browser)."
      : number(length) + " of " + number(maxChars) + " characters.";
  }

  // --- Identifier check ---------------------------------------------------------

  function readFindingsFromPage() {
    return Array.from(findingsEl.querySelectorAll("li.finding")).map(function (item) {
      return {
        section: item.dataset.sectionId,
        kind: item.dataset.kind,
        start: parseInt(item.dataset.start, 10),
        end: parseInt(item.dataset.end, 10),
        text: item.dataset.text,
        suggestion: item.dataset.suggestion || "",
        message: item.dataset.message,
      };
    });
  }

  function renderFindings(list) {
    findings = list.map(function (f) {
      return Object.assign({}, f, { section: String(f.section) });
    }).filter(function (f) {
      return boxes.has(f.section);
    });
    findingsEl.dataset.count = String(findings.length);
    findingsEl.replaceChildren();
    if (!findings.length) {
      findingsEl.append(el("p", "small text-body-secondary mb-0",
        "Nothing found: no participants' names, e-mail addresses, phone numbers, identity codes or birth dates."));
    } else {
      findingsEl.append(el("p", "small",
        "Possible identifiers in this note. Replace each one, or confirm it is not an identifier. " +
        "The note cannot be submitted until none is left."));
      const list = el("ul", "list-group list-group-flush small");
      findings.forEach(function (f) {
        const item = el("li", "list-group-item px-0 finding");
        item.dataset.sectionId = f.section;
        item.append(el("div", "text-body-secondary", sectionTitle(f.section)));
        const what = el("div", "finding-text");
        what.append(el("strong", "", "“" + f.text + "”"), " – " + f.message);
        item.append(what);
        const actions = el("div", "d-flex flex-wrap gap-1 mt-1");
        if (f.suggestion) {
          actions.append(button("Replace with " + f.suggestion, "btn-outline-primary", function () {
            replaceFinding(f);
          }));
        }
        actions.append(
          button("Show in text", "btn-outline-secondary", function () {
            showFinding(f);
          }),
          button("Not an identifier", "btn-outline-secondary", function (event) {
            confirmFinding(f, event.currentTarget);
          }),
        );
        item.append(actions);
        list.append(item);
      });
      findingsEl.append(list);
    }
    renderSectionFindings();
    updateSubmit();
  }

  /** A short line under each section, for phones where the check is far below. */
  function renderSectionFindings() {
    form.querySelectorAll(".findings-static, .section-findings").forEach(function (node) {
      node.remove();
    });
    boxes.forEach(function (box, id) {
      const here = findings.filter(function (f) {
        return f.section === id;
      });
      if (!here.length) {
        return;
      }
      const line = el("p", "section-findings small text-danger mt-1 mb-0");
      line.append((here.length > 1 ? "Possible identifiers here: " : "Possible identifier here: ") +
        here.map(function (f) {
          return "“" + f.text + "”";
        }).join(", ") + " – see the ");
      const link = el("a", "", "identifier check");
      link.href = "#findings-heading";
      line.append(link, ".");
      sectionBlock(id).append(line);
    });
  }

  /** Where a finding is in its box now, as UTF-16 indices, or null if the text moved. */
  function locate(f) {
    const box = boxes.get(f.section);
    if (!box) {
      return null;
    }
    if (box.value !== nfc(box.value)) {
      box.value = nfc(box.value); // the server's offsets count the NFC text
    }
    const start = utf16Index(box.value, f.start);
    const end = utf16Index(box.value, f.end);
    if (start < 0 || end < 0 || box.value.slice(start, end) !== f.text) {
      return null;
    }
    return { box: box, start: start, end: end };
  }

  /** The same finding in a fresh list: same section and text, nearest position. */
  function refind(f) {
    let best = null;
    findings.forEach(function (g) {
      if (g.section === f.section && g.text === f.text && g.kind === f.kind &&
          (!best || Math.abs(g.start - f.start) < Math.abs(best.start - f.start))) {
        best = g;
      }
    });
    return best;
  }

  async function locateFresh(f) {
    let place = locate(f);
    if (!place) {
      // The text changed since the check ran: save, and look again in the new results.
      if (await flush()) {
        const fresh = refind(f);
        place = fresh ? locate(fresh) : null;
        f = fresh || f;
      }
    }
    return place ? { place: place, finding: f } : null;
  }

  async function showFinding(f) {
    const found = await locateFresh(f);
    if (!found) {
      setHint(blocked
        ? "Saving is paused (see above), so the identifier check cannot be brought up to date."
        : "That text is no longer where it was; the identifier check has been brought up to date.");
      return;
    }
    found.place.box.focus();
    found.place.box.setSelectionRange(found.place.start, found.place.end);
  }

  async function replaceFinding(f) {
    const found = await locateFresh(f);
    if (!found) {
      setHint(blocked
        ? "Saving is paused (see above), so the identifier check cannot be brought up to date."
        : "That text is no longer where it was; the identifier check has been brought up to date.");
      return;
    }
    const place = found.place;
    const target = found.finding;
    place.box.setRangeText(target.suggestion, place.start, place.end, "end");
    // Until the next save answers, drop this finding and shift the later ones in its section.
    const shift = codePointLength(target.suggestion) - (target.end - target.start);
    renderFindings(findings.filter(function (g) {
      return g !== target;
    }).map(function (g) {
      return g.section === target.section && g.start >= target.end
        ? Object.assign({}, g, { start: g.start + shift, end: g.end + shift })
        : g;
    }));
    onInput(place.box);
    save();
  }

  async function confirmFinding(f, control) {
    control.disabled = true;
    let response;
    let data = null;
    try {
      response = await fetch(confirmUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRFToken": csrfToken() },
        body: new URLSearchParams({ text: f.text }),
      });
      if ((response.headers.get("Content-Type") || "").indexOf("application/json") !== -1) {
        data = await response.json();
      }
    } catch (error) {
      control.disabled = false;
      setHint("No connection to the server: the confirmation was not recorded. Try again in a moment.");
      return;
    }
    if (response.ok && data && Array.isArray(data.findings)) {
      renderFindings(data.findings);
      return;
    }
    control.disabled = false;
    writeBackup();
    if (response.status === 403) {
      blockForLogin("The page's security check failed: you may have logged out, or your login expired. " +
        "Your text is kept in this browser: reload the page (log in again if asked) and it will be restored.",
        loginUrl, "Reload the page");
    } else if (response.status === 401 || response.redirected) {
      blockForLogin("Your login has expired. Your text is kept in this browser: log in again and it will be restored.",
        loginUrl, "Log in again");
    } else {
      setHint("The confirmation was not recorded (error " + response.status + "). Try again in a moment.");
    }
  }

  // --- Submitting ---------------------------------------------------------------

  let hintOverride = "";

  function setHint(text) {
    hintOverride = text;
    updateSubmit();
  }

  function updateSubmit() {
    let reason = "";
    if (blocked === "conflict") {
      reason = "Settle the conflict above before submitting.";
    } else if (blocked === "login") {
      reason = "Log in again before submitting.";
    } else if (blocked === "locked") {
      reason = "This note has already been submitted.";
    } else if (findings.length) {
      reason = "Replace or confirm the " + (findings.length > 1 ? findings.length + " possible identifiers" : "possible identifier") +
        " in the identifier check before submitting.";
    } else if (tooLong.length) {
      reason = "Shorten the section that is over the length limit before submitting.";
    }
    submitButton.disabled = Boolean(reason) || submitting;
    const text = hintOverride || reason;
    submitHint.textContent = text;
    show(submitHint, Boolean(text));
    hintOverride = "";
  }

  async function submitNote() {
    if (submitting) {
      return;
    }
    submitting = true;
    updateSubmit();
    const ok = await flush();
    submitting = false;
    if (!ok || blocked || findings.length || changedIds().length) {
      updateSubmit();
      if (findings.length) {
        document.getElementById("findings-heading").scrollIntoView({ block: "start" });
      }
      return;
    }
    nativeSubmit = true;
    leaving = true;
    submitButton.disabled = false;
    // In a task of its own: when nothing needed saving we are still inside the
    // first submit event, and a form ignores a submission asked for during one.
    setTimeout(function () {
      if (form.requestSubmit) {
        form.requestSubmit(submitButton);
      } else {
        form.action = submitButton.formAction;
        form.submit();
      }
    }, 0);
  }

  // --- Events -------------------------------------------------------------------

  function onInput(box) {
    const id = box.dataset.sectionId;
    writeBackup();
    updateCounter(id);
    if (blocked) {
      return; // the banner says why nothing is saved; the backup keeps every keystroke
    }
    if (statusEl.dataset.state !== "saving") {
      setStatus("dirty", "Not saved yet");
    }
    scheduleSave();
  }

  form.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("textarea.note-text")) {
      onInput(event.target);
    }
  });

  form.addEventListener("focusout", function (event) {
    if (event.target.matches && event.target.matches("textarea.note-text") && !blocked && changedIds().length) {
      save();
    }
  });

  let submitClicked = false; // for browsers without SubmitEvent.submitter
  submitButton.addEventListener("click", function () {
    submitClicked = true;
  });

  form.addEventListener("submit", function (event) {
    if (nativeSubmit) {
      return; // the flushed submission itself
    }
    event.preventDefault();
    const isSubmit = event.submitter ? event.submitter === submitButton : submitClicked;
    submitClicked = false;
    if (isSubmit) {
      submitNote();
    } else if (!blocked) {
      save(); // "Save draft" saves in place, the same way autosave does
    }
  });

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") {
      if (!blocked && changedIds().length) {
        save({ keepalive: true }); // a phone may kill the browser once it is in the background
      }
    } else {
      retryAfterLogin();
    }
  });

  window.addEventListener("pagehide", function () {
    if (!blocked && changedIds().length) {
      save({ keepalive: true });
    }
  });

  window.addEventListener("focus", retryAfterLogin);
  window.addEventListener("online", function () {
    if (!blocked && changedIds().length) {
      save();
    }
  });

  window.addEventListener("beforeunload", function (event) {
    if (!leaving && hasUnsaved()) {
      event.preventDefault();
      event.returnValue = ""; // older browsers need this to show the warning
    }
  });

  // --- Start --------------------------------------------------------------------

  function start() {
    // A conflict rendered by the server (the plain form lost a race): take it over.
    const serverTheirs = {};
    form.querySelectorAll("textarea.note-saved-text[data-section-id]").forEach(function (savedBox) {
      serverTheirs[savedBox.dataset.sectionId] = savedBox.value;
    });
    const serverConflict = Object.keys(serverTheirs).length > 0;
    let unsavedOnPage = serverConflict;
    boxes.forEach(function (box, id) {
      if (id in serverTheirs) {
        saved.set(id, nfc(serverTheirs[id]));
      } else if (box.dataset.unsaved) {
        saved.set(id, null); // the server sent back text it could not save
        unsavedOnPage = true;
      } else {
        saved.set(id, nfc(box.value));
      }
      updateCounter(id);
    });

    renderFindings(readFindingsFromPage());
    showSaved();

    if (serverConflict) {
      const theirs = {};
      saved.forEach(function (text, id) {
        theirs[id] = text === null ? boxes.get(id).value : text;
      });
      const banner = document.getElementById("conflict-banner");
      if (banner) {
        banner.remove();
      }
      // The text in the boxes was typed on some earlier version: never the one shown.
      showConflict({ version: version, saved_at: statusEl.dataset.savedAt, sections: theirs }, false, null);
    } else if (unsavedOnPage) {
      writeBackup();
      setStatus("dirty", "Not saved yet");
      save();
    } else {
      restoreBackup();
    }
  }

  start();
})();
