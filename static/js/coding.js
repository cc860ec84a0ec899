// Coding in the browser: select text of a note section, apply codes, adjust
// and remove segments.
//
// The server counts offsets in Unicode code points (end excluded), as
// REFI-QDA and QualCoder do; the browser's strings and Ranges count UTF-16
// units, where an emoji or other character outside the BMP takes two. Every
// offset is converted on its way out (utf16ToCodepoint) and back in
// (codepointToUtf16). The DOM is built with textContent only: note text is
// never parsed as HTML.
(function () {
  "use strict";

  var dataNode = document.getElementById("coding-data");
  var textBox = document.getElementById("coding-text");
  if (!dataNode || !textBox) {
    return;
  }
  var data = JSON.parse(dataNode.textContent);
  var text = data.text;
  var statusBox = document.getElementById("coding-status");
  var hereBox = document.getElementById("coding-here");
  var errorBox = document.getElementById("coding-error");
  var segmentList = document.getElementById("segment-list");
  var segmentCount = document.getElementById("segment-count");
  var codeList = document.getElementById("code-list");
  var codeFilter = document.getElementById("code-filter");
  var QUOTE_EXCERPT = 90;

  var codes = {};
  var shortcuts = {};
  data.codes.forEach(function (code) {
    codes[code.id] = code;
    if (code.shortcut && !code.retired) {
      shortcuts[code.shortcut.toLowerCase()] = code;
    }
  });
  var segments = data.segments.slice();
  var pending = null; // the selection to code: {start, end} in UTF-16 units of `text`
  var busy = false;

  // --- Offsets: UTF-16 units <-> code points ---------------------------------

  function isHigh(unit) {
    return unit >= 0xd800 && unit <= 0xdbff;
  }

  function isLow(unit) {
    return unit >= 0xdc00 && unit <= 0xdfff;
  }

  // The same conversions as analysis/anchoring.py, for any string.
  function utf16ToCodepoint(s, index) {
    var points = 0;
    for (var i = 0; i < index && i < s.length; i++) {
      if (!(isLow(s.charCodeAt(i)) && i > 0 && isHigh(s.charCodeAt(i - 1)))) {
        points++;
      }
    }
    return points;
  }

  function codepointToUtf16(s, index) {
    var i = 0;
    for (var points = 0; points < index && i < s.length; points++) {
      i += isHigh(s.charCodeAt(i)) && isLow(s.charCodeAt(i + 1)) ? 2 : 1;
    }
    return i;
  }

  // For the section's own text a table does it in O(1): unitOf[n] is the
  // UTF-16 index of code point n (and unitOf[length] the text's length).
  var unitOf = [];
  (function () {
    var i = 0;
    while (i < text.length) {
      unitOf.push(i);
      i += isHigh(text.charCodeAt(i)) && isLow(text.charCodeAt(i + 1)) ? 2 : 1;
    }
    unitOf.push(text.length);
  })();

  function toUnits(points) {
    return unitOf[Math.max(0, Math.min(points, unitOf.length - 1))];
  }

  function toPoints(units) {
    // binary search: the number of code points starting before `units`
    var lo = 0;
    var hi = unitOf.length - 1;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      if (unitOf[mid] <= units) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }

  // Never cut a surrogate pair in two: a start moves back, an end forward.
  function snapStart(units) {
    return units > 0 && isLow(text.charCodeAt(units)) && isHigh(text.charCodeAt(units - 1)) ? units - 1 : units;
  }

  function snapEnd(units) {
    return units > 0 && units < text.length && isLow(text.charCodeAt(units)) && isHigh(text.charCodeAt(units - 1))
      ? units + 1 : units;
  }

  window.BalintCoding = {utf16ToCodepoint: utf16ToCodepoint, codepointToUtf16: codepointToUtf16};

  // --- Selection: DOM Range <-> UTF-16 offsets within the text ---------------

  function textNodes() {
    var walker = document.createTreeWalker(textBox, NodeFilter.SHOW_TEXT);
    var nodes = [];
    for (var node = walker.nextNode(); node; node = walker.nextNode()) {
      nodes.push(node);
    }
    return nodes;
  }

  // The UTF-16 offset of a boundary point (node, offset) inside the text box:
  // the length of every text node before it, plus the part of its own node.
  function offsetOf(node, offset) {
    var point = document.createRange();
    point.setStart(node, offset);
    var total = 0;
    var nodes = textNodes();
    for (var i = 0; i < nodes.length; i++) {
      var t = nodes[i];
      if (t === node) {
        return total + offset;
      }
      if (point.comparePoint(t, t.data.length) > 0) {
        break; // this text node ends after the point
      }
      total += t.data.length;
    }
    return total;
  }

  function wholeText() {
    var range = document.createRange();
    range.selectNodeContents(textBox);
    return range;
  }

  // {start, end, trimmed} in UTF-16 units, or null when the range does not
  // reach into the text. Ends outside the text are clamped to it.
  function rangeToSpan(range) {
    var whole = wholeText();
    var start;
    var end;
    var trimmed = false;
    var startWhere;
    var endWhere;
    try {
      startWhere = whole.comparePoint(range.startContainer, range.startOffset);
      endWhere = whole.comparePoint(range.endContainer, range.endOffset);
    } catch (e) {
      return null; // a point in another tree, e.g. inside a form field
    }
    if (startWhere > 0 || endWhere < 0) {
      return null;
    }
    if (startWhere < 0) {
      start = 0;
      trimmed = true;
    } else {
      start = offsetOf(range.startContainer, range.startOffset);
    }
    if (endWhere > 0) {
      end = text.length;
      trimmed = true;
    } else {
      end = offsetOf(range.endContainer, range.endOffset);
    }
    // Spaces and line breaks at either end are never meant to be coded.
    while (start < end && /\s/.test(text.charAt(start))) {
      start++;
    }
    while (end > start && /\s/.test(text.charAt(end - 1))) {
      end--;
    }
    return {start: snapStart(start), end: snapEnd(end), trimmed: trimmed};
  }

  // The boundary point at a UTF-16 offset, for building a Range.
  function pointAt(units, preferNext) {
    var nodes = textNodes();
    var total = 0;
    for (var i = 0; i < nodes.length; i++) {
      var length = nodes[i].data.length;
      if (units < total + length || (units === total + length && !(preferNext && i + 1 < nodes.length))) {
        return [nodes[i], units - total];
      }
      total += length;
    }
    return [textBox, textBox.childNodes.length];
  }

  function spanToRange(start, end) {
    var range = document.createRange();
    var a = pointAt(start, true);
    var b = pointAt(end, false);
    range.setStart(a[0], a[1]);
    range.setEnd(b[0], b[1]);
    return range;
  }

  function selectSpan(start, end) {
    var range = spanToRange(start, end);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // Keeps the pending selection visible while focus is in the filter box or
  // on a button, where the browser's own selection is gone.
  function markPending() {
    if (!(window.CSS && CSS.highlights && window.Highlight)) {
      return;
    }
    if (pending) {
      CSS.highlights.set("coding-pending", new Highlight(spanToRange(pending.start, pending.end)));
    } else {
      CSS.highlights.delete("coding-pending");
    }
  }

  function excerpt(s) {
    return s.length <= QUOTE_EXCERPT ? s : s.slice(0, QUOTE_EXCERPT - 1) + "…";
  }

  function showPending(trimmed) {
    if (pending) {
      var points = toPoints(pending.end) - toPoints(pending.start);
      statusBox.textContent = "Selected: “" + excerpt(text.slice(pending.start, pending.end)) + "” (" + points +
        " character" + (points === 1 ? "" : "s") + (trimmed ? ", trimmed to the note text" : "") + ")";
    } else {
      statusBox.textContent = "Nothing selected.";
    }
    markPending();
  }

  function codesAt(units) {
    var names = [];
    segments.forEach(function (s) {
      var name = codes[s.code] ? codes[s.code].name : s.code_name;
      if (toUnits(s.start) <= units && units < toUnits(s.end) && names.indexOf(name) < 0) {
        names.push(name);
      }
    });
    return names;
  }

  function showHere(names, where) {
    hereBox.textContent = names.length ? where + ": " + names.join(", ") : "";
  }

  function segmentsOf(piece) {
    var ids = (piece.getAttribute("data-segments") || "").split(" ").map(Number);
    var names = [];
    segments.forEach(function (s) {
      if (ids.indexOf(s.id) >= 0 && names.indexOf(codeName(s)) < 0) {
        names.push(codeName(s));
      }
    });
    return names;
  }

  // Reads the browser's selection into `pending`. Runs on every
  // selectionchange, and again before coding, because a shortcut key pressed
  // right after selecting can arrive before the (asynchronous) event.
  function readSelection() {
    var selection = window.getSelection();
    if (!selection.rangeCount) {
      return;
    }
    var range = selection.getRangeAt(0);
    var span = rangeToSpan(range);
    // A selection elsewhere (the filter box, a button) keeps the pending one.
    if (span === null) {
      return;
    }
    if (range.collapsed || span.start >= span.end) {
      if (textBox.contains(range.startContainer) || range.startContainer === textBox) {
        pending = null;
        showPending(false);
        showHere(codesAt(offsetOf(range.startContainer, range.startOffset)), "At the cursor");
      }
      return;
    }
    if (pending && pending.start === span.start && pending.end === span.end) {
      return; // the same text, e.g. the selection put back after re-rendering
    }
    pending = {start: span.start, end: span.end};
    showPending(span.trimmed);
  }

  document.addEventListener("selectionchange", readSelection);

  function clearSelection() {
    window.getSelection().removeAllRanges();
    pending = null;
    showPending(false);
    showHere([], "");
  }

  // --- Rendering -----------------------------------------------------------

  function sortSegments() {
    segments.sort(function (a, b) {
      return a.start - b.start || a.end - b.end || a.id - b.id;
    });
  }

  function codeName(segment) {
    return codes[segment.code] ? codes[segment.code].name : segment.code_name;
  }

  // The text cut at every segment boundary, each piece marked by the codes
  // covering it: the first code's colour, and a double underline where more
  // than one code overlaps (the same cut as text_pieces() in the view).
  function renderText() {
    var spans = segments.map(function (s) {
      return {segment: s, start: toUnits(s.start), end: toUnits(s.end)};
    });
    var bounds = [0, text.length];
    spans.forEach(function (s) {
      bounds.push(s.start, s.end);
    });
    bounds = bounds.filter(function (b, i) {
      return bounds.indexOf(b) === i;
    }).sort(function (a, b) {
      return a - b;
    });
    var fragment = document.createDocumentFragment();
    for (var i = 0; i + 1 < bounds.length; i++) {
      var a = bounds[i];
      var b = bounds[i + 1];
      var piece = document.createElement("span");
      piece.textContent = text.slice(a, b);
      var covering = spans.filter(function (s) {
        return s.start <= a && s.end >= b;
      });
      if (covering.length) {
        var ids = [];
        var names = [];
        covering.forEach(function (s) {
          if (ids.indexOf(s.segment.code) < 0) {
            ids.push(s.segment.code);
            names.push(codeName(s.segment));
          }
        });
        piece.className = "seg code-" + ids[0] + (ids.length > 1 ? " seg-multi" : "");
        piece.title = names.join(", ");
        piece.setAttribute("data-segments", covering.map(function (s) {
          return s.segment.id;
        }).join(" "));
      }
      fragment.appendChild(piece);
    }
    textBox.replaceChildren(fragment);
  }

  function button(label, className, ariaLabel, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "btn btn-sm " + className;
    b.textContent = label;
    b.setAttribute("aria-label", ariaLabel);
    // Keep the text selection when the button is pressed with the mouse.
    b.addEventListener("mousedown", function (e) {
      e.preventDefault();
    });
    b.addEventListener("click", onClick);
    return b;
  }

  function renderSegments() {
    var items = document.createDocumentFragment();
    segments.forEach(function (s) {
      var name = codeName(s);
      var item = document.createElement("li");
      item.className = "segment-item";
      item.setAttribute("data-segment", s.id);

      var head = document.createElement("div");
      var swatch = document.createElement("span");
      swatch.className = "code-swatch code-" + s.code;
      swatch.setAttribute("aria-hidden", "true");
      var strong = document.createElement("strong");
      strong.textContent = name;
      head.append(swatch, " ", strong);
      if (s.needs_review) {
        var flag = document.createElement("span");
        flag.className = "badge text-bg-warning ms-1";
        flag.textContent = "Needs review";
        head.append(" ", flag);
      }

      var quote = document.createElement("button");
      quote.type = "button";
      quote.className = "segment-quote btn btn-link p-0 text-start";
      quote.textContent = "“" + excerpt(s.quote) + "”";
      quote.setAttribute("aria-label", "Select in the text: " + excerpt(s.quote));
      quote.addEventListener("click", function () {
        var start = toUnits(s.start);
        var end = toUnits(s.end);
        selectSpan(start, end);
        pending = {start: start, end: end};
        showPending(false);
        var first = textBox.querySelector('[data-segments~="' + s.id + '"]');
        if (first) {
          first.scrollIntoView({block: "center", behavior: "smooth"});
        }
      });

      var who = document.createElement("div");
      who.className = "small text-body-secondary";
      who.textContent = s.coder;
      item.append(head, quote, who);

      if (data.can_code) {
        var actions = document.createElement("div");
        actions.className = "segment-actions";
        actions.append(
          button("Adjust to selection", "btn-outline-secondary", "Adjust “" + name + "” on “" + excerpt(s.quote) +
            "” to the selected text", function () {
            adjust(s);
          }),
          button("Remove", "btn-outline-danger", "Remove “" + name + "” from “" + excerpt(s.quote) + "”", function () {
            remove(s);
          })
        );
        item.append(actions);
      }
      items.appendChild(item);
    });
    if (!segments.length) {
      var empty = document.createElement("li");
      empty.className = "text-body-secondary small segment-empty";
      empty.textContent = "No segments yet.";
      items.appendChild(empty);
    }
    segmentList.replaceChildren(items);
    segmentCount.textContent = String(segments.length);
  }

  function render() {
    sortSegments();
    renderText();
    renderSegments();
    if (pending) {
      // The pieces were rebuilt: put the selection back, so another code can
      // go on the same text. Not while typing in the filter box, which would
      // lose its caret.
      var active = document.activeElement;
      if (!(active && active.matches("input, textarea"))) {
        selectSpan(pending.start, pending.end);
      }
    }
    markPending();
  }

  // --- Talking to the server ---------------------------------------------

  function showError(message) {
    errorBox.textContent = message;
    errorBox.classList.remove("d-none");
  }

  function clearError() {
    errorBox.textContent = "";
    errorBox.classList.add("d-none");
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": data.csrf},
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () {
        return {};
      }).then(function (answer) {
        if (response.ok) {
          return answer;
        }
        var message = answer.message;
        if (!message && response.status === 404) {
          message = "This text or segment is no longer available to you; reload the page.";
        } else if (!message && response.status === 403) {
          message = "The page's security token has expired; reload the page.";
        }
        throw new Error(message || "Something went wrong (" + response.status + "); nothing was saved.");
      });
    }, function () {
      throw new Error("Could not reach the server; nothing was saved. Check the connection and try again.");
    });
  }

  function run(request, done) {
    if (busy) {
      return;
    }
    busy = true;
    request.then(function (answer) {
      clearError();
      done(answer);
    }).catch(function (error) {
      showError(error.message);
    }).then(function () {
      busy = false;
    });
  }

  function applyCode(codeId) {
    var code = codes[codeId];
    if (!data.can_code || !code) {
      return;
    }
    readSelection();
    if (!pending) {
      showError("Select some text in the note first, then choose a code.");
      return;
    }
    var start = toPoints(pending.start);
    var end = toPoints(pending.end);
    var already = segments.some(function (s) {
      return s.code === code.id && s.start === start && s.end === end;
    });
    if (already) {
      showError("This text is already coded as “" + code.name + "”.");
      return;
    }
    run(post(data.create_url, {code: code.id, start: start, end: end, round: data.round}), function (answer) {
      segments.push(answer.segment);
      render();
      statusBox.textContent = "Coded “" + excerpt(answer.segment.quote) + "” as “" + code.name +
        "”. Choose another code for the same text, or select new text.";
    });
  }

  function adjust(segment) {
    readSelection();
    if (!pending) {
      showError("Select the text the segment should cover, then press “Adjust to selection”.");
      return;
    }
    var body = {start: toPoints(pending.start), end: toPoints(pending.end)};
    run(post(segment.update_url, body), function (answer) {
      segments = segments.map(function (s) {
        return s.id === answer.segment.id ? answer.segment : s;
      });
      render();
      statusBox.textContent = "“" + codeName(answer.segment) + "” now covers “" + excerpt(answer.segment.quote) + "”.";
    });
  }

  function remove(segment) {
    run(post(segment.delete_url), function () {
      segments = segments.filter(function (s) {
        return s.id !== segment.id;
      });
      render();
      statusBox.textContent = "Removed “" + codeName(segment) + "” from “" + excerpt(segment.quote) + "”.";
    });
  }

  // --- The code list: click, filter, shortcuts ---------------------------

  if (codeList) {
    codeList.addEventListener("mousedown", function (e) {
      if (e.target.closest(".code-btn")) {
        e.preventDefault(); // keep the text selection
      }
    });
    codeList.addEventListener("click", function (e) {
      var b = e.target.closest(".code-btn");
      if (b) {
        applyCode(Number(b.getAttribute("data-code")));
      }
    });
  }

  function fold(s) {
    return s.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  function filterCodes() {
    var wanted = fold(codeFilter.value.trim());
    var any = false;
    codeList.querySelectorAll(".code-category").forEach(function (category) {
      var categoryHit = fold(category.getAttribute("data-category")).indexOf(wanted) >= 0;
      var shown = 0;
      category.querySelectorAll(".code-btn").forEach(function (b) {
        var hit = categoryHit || fold(b.querySelector(".code-name").textContent).indexOf(wanted) >= 0;
        b.parentNode.hidden = !hit;
        shown += hit ? 1 : 0;
      });
      category.hidden = shown === 0;
      any = any || shown > 0;
    });
    document.getElementById("code-none").classList.toggle("d-none", any);
  }

  if (codeFilter) {
    codeFilter.addEventListener("input", filterCodes);
    codeFilter.addEventListener("keydown", function (e) {
      if (e.key === "Enter") {
        // Enter applies the first code the filter leaves.
        e.preventDefault();
        var first = Array.prototype.find.call(codeList.querySelectorAll(".code-btn"), function (b) {
          return !b.parentNode.hidden;
        });
        if (first) {
          applyCode(Number(first.getAttribute("data-code")));
        }
      } else if (e.key === "Escape" && codeFilter.value) {
        e.stopPropagation();
        codeFilter.value = "";
        filterCodes();
      }
    });
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) {
      return;
    }
    var typing = e.target.closest && e.target.closest("input, textarea, select, [contenteditable]");
    if (e.key === "Escape") {
      if (pending || !window.getSelection().isCollapsed) {
        clearSelection();
      }
      return;
    }
    if (typing || !data.can_code) {
      return;
    }
    readSelection();
    if (!pending) {
      return;
    }
    var code = shortcuts[e.key.toLowerCase()];
    if (code) {
      e.preventDefault();
      applyCode(code.id);
    }
  });

  // --- Keyboard selection in the text ------------------------------------

  var MOVES = {
    ArrowLeft: ["backward", "character"],
    ArrowRight: ["forward", "character"],
    ArrowUp: ["backward", "line"],
    ArrowDown: ["forward", "line"],
    Home: ["backward", "lineboundary"],
    End: ["forward", "lineboundary"]
  };

  function caretInText() {
    var selection = window.getSelection();
    if (selection.rangeCount && textBox.contains(selection.anchorNode)) {
      return;
    }
    var first = pointAt(0, true);
    selection.collapse(first[0], first[1]);
  }

  // The text is not editable, so the browser moves no caret in it: the arrow
  // keys move one (with Ctrl: by word), and Shift extends the selection.
  textBox.addEventListener("keydown", function (e) {
    var move = MOVES[e.key];
    if (!move || e.altKey || e.metaKey) {
      return;
    }
    e.preventDefault();
    caretInText();
    var unit = e.ctrlKey && (e.key === "ArrowLeft" || e.key === "ArrowRight") ? "word" : move[1];
    window.getSelection().modify(e.shiftKey ? "extend" : "move", move[0], unit);
  });

  textBox.addEventListener("focus", function () {
    if (textBox.matches(":focus-visible")) {
      caretInText();
    }
  });

  // Pointing at a piece lists its codes and marks its segments in the list.
  function markHere(piece) {
    var ids = piece ? (piece.getAttribute("data-segments") || "").split(" ") : [];
    segmentList.querySelectorAll(".segment-item").forEach(function (item) {
      item.classList.toggle("is-here", ids.indexOf(item.getAttribute("data-segment")) >= 0);
    });
    showHere(piece ? segmentsOf(piece) : [], "Here");
  }

  textBox.addEventListener("mouseover", function (e) {
    markHere(e.target.closest(".seg"));
  });

  textBox.addEventListener("mouseleave", function () {
    markHere(null);
  });

  render();
})();
