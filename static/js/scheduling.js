// Small conveniences for the scheduling pages. The pages work without them;
// the buttons stay hidden (d-none) until this script shows them.
(function () {
  "use strict";

  // Attendance: "Everyone present" ticks every box of the register.
  document.querySelectorAll("[data-check-all]").forEach(function (button) {
    var name = button.getAttribute("data-check-all");
    var form = button.closest("form");
    button.classList.remove("d-none");
    button.addEventListener("click", function () {
      form.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (box) {
        box.checked = true;
      });
    });
  });

  // Calendar settings: copy the feed address to the clipboard.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field || !navigator.clipboard) {
      return;
    }
    button.classList.remove("d-none");
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(field.value).then(function () {
        button.textContent = "Copied";
      });
    });
  });

  // Select the whole feed address on focus, for copying by hand on a phone.
  document.querySelectorAll("input.feed-url").forEach(function (field) {
    field.addEventListener("focus", function () {
      field.select();
    });
  });
})();
