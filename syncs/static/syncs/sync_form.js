/* The sync form and "Export to…" page: the destination's fields as choices, the identity
 * property's coverage, and only the fields that apply to the chosen mode.
 * Plain JavaScript, no dependencies; settings come from the JSON in #sync-form-config. */
(function () {
  "use strict";
  const configElement = document.getElementById("sync-form-config");
  if (!configElement) { return; }
  const config = JSON.parse(configElement.textContent);
  const destinationSelect = document.getElementById("id_destination");
  const cohortSelect = document.getElementById("id_cohort");
  const identityInput = document.getElementById("id_identity_property");

  function destinationId() {
    return destinationSelect ? destinationSelect.value : (config.destinationId ? String(config.destinationId) : "");
  }

  function debounce(fn, ms) {
    let timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  function helpAfter(input, id) {
    const help = document.createElement("div");
    help.className = "help";
    help.id = id;
    help.setAttribute("aria-live", "polite");
    const row = input.closest("div") || input;
    row.insertAdjacentElement("afterend", help);
    return help;
  }

  // --- Target field: the destination's fields, as a datalist and as buttons -------------
  const datalist = document.getElementById("target-field-choices");
  const targetInputs = Array.from(document.querySelectorAll("input[list='target-field-choices']"));
  let lastTarget = targetInputs[0] || null;
  let knownFields = [];
  let fieldsTicket = 0;
  const targetHint = targetInputs.length ? helpAfter(targetInputs[0], "target-field-hint") : null;
  const choices = targetInputs.length ? document.createElement("div") : null;
  if (choices) {
    choices.className = "help target-field-choices";
    choices.setAttribute("role", "group");
    choices.setAttribute("aria-label", "Fields you can pick");
    targetHint.insertAdjacentElement("afterend", choices);
    targetInputs.forEach(function (input) {
      input.addEventListener("focus", function () { lastTarget = input; });
      input.addEventListener("input", describeTyped);
    });
  }

  function describeTyped() {
    if (!targetHint || !knownFields.length || !lastTarget) { return; }
    const typed = lastTarget.value.trim().toLowerCase();
    const match = knownFields.find(function (field) { return field.name.toLowerCase() === typed; });
    const destination = config.destinations[destinationId()];
    if (!typed) { targetHint.textContent = ""; return; }
    if (match) {
      targetHint.textContent = match.compatible
        ? "“" + match.name + "” exists in the destination (" + match.type + ")."
        : "“" + match.name + "” exists but cannot hold a membership (" + match.type + "): saving is refused.";
    } else {
      targetHint.textContent = destination ? destination.missingField : "";
    }
  }

  function loadFields() {
    if (!datalist || !choices) { return; }
    const destination = destinationId();
    datalist.replaceChildren();
    choices.replaceChildren();
    knownFields = [];
    if (!destination) { targetHint.textContent = ""; return; }
    const ticket = ++fieldsTicket;
    targetHint.textContent = "Reading the destination’s fields…";
    fetch(config.targetFieldsUrl + "?destination=" + encodeURIComponent(destination), {credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (ticket !== fieldsTicket) { return; }
        knownFields = data.fields;
        data.fields.forEach(function (field) {
          const option = document.createElement("option");
          option.value = field.name;
          option.label = field.label + " (" + field.type + (field.compatible ? "" : ", not usable as a target") + ")";
          datalist.appendChild(option);
        });
        const usable = data.fields.filter(function (field) { return field.compatible; });
        if (!data.ok) { targetHint.textContent = data.message; return; }
        if (usable.length) {
          const label = document.createElement("span");
          label.textContent = "Existing fields that can hold a membership: ";
          choices.appendChild(label);
          usable.forEach(function (field) {
            const button = document.createElement("button");
            button.type = "button";
            button.className = "button target-field-choice";
            button.textContent = field.name;
            button.title = field.label + " (" + field.type + ")";
            button.addEventListener("click", function () {
              if (!lastTarget) { return; }
              lastTarget.value = field.name;
              lastTarget.dispatchEvent(new Event("input", {bubbles: true}));
              lastTarget.focus();
            });
            choices.appendChild(button);
          });
          targetHint.textContent = "";
        } else {
          targetHint.textContent = "The destination has no field that can hold a membership yet.";
        }
        describeTyped();
      })
      .catch(function () {
        if (ticket === fieldsTicket) { targetHint.textContent = "Could not read the destination’s fields right now; type the field name."; }
      });
  }

  // --- Identity property: how many members have it --------------------------------------
  const coverageAnchor = identityInput || document.querySelector(".field-identity_property .readonly");
  const coverage = coverageAnchor && cohortSelect ? helpAfter(coverageAnchor, "identity-coverage") : null;
  let coverageRequest = null;

  function loadCoverage() {
    if (!coverage) { return; }
    const cohort = cohortSelect.value;
    // Left empty on a new sync, the identity is the destination kind's default.
    const destination = config.destinations[destinationId()];
    const identity = identityInput
      ? identityInput.value.trim() || (destination ? destination.defaultIdentity : "")
      : config.identityProperty;
    if (coverageRequest) { coverageRequest.abort(); }
    if (!cohort || !identity) { coverage.textContent = ""; return; }
    coverageRequest = new AbortController();
    coverage.textContent = "Counting members with " + identity + "…";
    const url = config.coverageUrl + "?cohort=" + encodeURIComponent(cohort) + "&property=" + encodeURIComponent(identity);
    fetch(url, {credentials: "same-origin", signal: coverageRequest.signal})
      .then(function (response) { return response.json(); })
      .then(function (data) {
        coverage.textContent = data.message;
        coverage.classList.toggle("errornote", Boolean(data.warning));
      })
      .catch(function (error) {
        if (error.name !== "AbortError") { coverage.textContent = ""; }
      });
  }

  // --- Mode: the schedule applies to dynamic syncs only ---------------------------------
  const modeSelect = document.getElementById("id_mode");
  const intervalInput = document.getElementById("id_interval_minutes");

  function rowOf(element) { return element ? element.closest(".form-row") || element.parentElement : null; }

  function applyMode() {
    if (!modeSelect) { return; }
    const dynamic = modeSelect.value !== "one_time";
    [intervalInput, document.getElementById("id_enabled")].forEach(function (input) {
      const row = rowOf(input);
      if (row) { row.hidden = !dynamic; }
    });
    // A hidden interval is not sent: a one-time export keeps no schedule.
    if (intervalInput) { intervalInput.disabled = !dynamic; }
  }

  function applyDefaults() {
    const destination = config.destinations[destinationId()];
    if (intervalInput) { intervalInput.placeholder = destination ? String(destination.defaultInterval) : ""; }
    if (identityInput && !identityInput.value) {
      identityInput.placeholder = destination ? destination.defaultIdentity + " (the destination's default)" : "the destination's default";
    }
  }

  if (destinationSelect) {
    destinationSelect.addEventListener("change", function () { loadFields(); applyDefaults(); loadCoverage(); });
  }
  if (cohortSelect) { cohortSelect.addEventListener("change", loadCoverage); }
  if (identityInput) { identityInput.addEventListener("input", debounce(loadCoverage, 500)); }
  if (modeSelect) { modeSelect.addEventListener("change", applyMode); }
  loadFields();
  loadCoverage();
  applyMode();
  applyDefaults();
})();
