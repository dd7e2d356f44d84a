// The review page's rules in the browser (tiktok-api.md §11); the server checks them all again.
(function () {
  "use strict";
  var form = document.getElementById("review-form");
  if (!form) { return; }
  var privacy = document.getElementById("privacy_level");
  var disclose = document.getElementById("disclose");
  var disclosure = document.getElementById("disclosure");
  var organic = document.getElementById("brand_organic_toggle");
  var branded = document.getElementById("brand_content_toggle");
  var declaration = document.getElementById("declaration");
  var button = document.getElementById("post-button");

  function update() {
    disclosure.hidden = !disclose.checked;
    if (!disclose.checked) { organic.checked = false; branded.checked = false; }
    var selfOnly = privacy.querySelector('option[value="SELF_ONLY"]');
    if (selfOnly) {
      selfOnly.disabled = branded.checked;
      if (branded.checked && privacy.value === "SELF_ONLY") { privacy.value = ""; }
    }
    declaration.textContent = branded.checked
      ? declaration.getAttribute("data-branded")
      : declaration.getAttribute("data-plain");
    var complete = privacy.value !== "" && (!disclose.checked || organic.checked || branded.checked);
    button.disabled = !complete;
  }

  [privacy, disclose, organic, branded].forEach(function (element) {
    element.addEventListener("change", update);
  });
  update();
})();
