/* The cohort rule builder: rows of (property, operator, value) in nested all/any groups,
 * written to the same JSON as the rules textarea below it, which stays editable (editing
 * the JSON redraws the builder). A live count and sample of the members come from the
 * admin's preview endpoint, asked at most once per pause in typing.
 * Plain JavaScript, no dependencies; settings come from the JSON in #cohort-editor-config. */
(function () {
  "use strict";

  const PREVIEW_DELAY_MS = 600;
  const RETRY_BUSY_MS = 1000;
  // The server's own reading of typed text (cohorts/rules.py, infer_scalar): integers
  // without leading zeros (zip codes stay text), decimals, true/false.
  const INTEGER = /^-?(0|[1-9][0-9]{0,14})$/;
  const DECIMAL = /^-?(0|[1-9][0-9]*)\.[0-9]+$/;

  function element(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function ([key, value]) {
      if (key === "text") { node.textContent = value; } else { node.setAttribute(key, value); }
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  function typed(text) {
    const trimmed = text.trim();
    if (INTEGER.test(trimmed) || (DECIMAL.test(trimmed) && trimmed.length <= 17)) { return Number(trimmed); }
    if (trimmed === "true" || trimmed === "false") { return trimmed === "true"; }
    return text;
  }

  function groupKey(node) {
    if (!node || typeof node !== "object" || Array.isArray(node)) { return null; }
    const keys = Object.keys(node);
    return keys.length === 1 && (keys[0] === "all" || keys[0] === "any") ? keys[0] : null;
  }

  function isScalar(value) {
    return ["string", "number", "boolean"].includes(typeof value);
  }

  /* Why the builder cannot draw these rules (the JSON can still say anything), or "". */
  function unsupported(node, path) {
    const key = groupKey(node);
    if (!key) { return path + ": not a group {\"all\": [...]} or {\"any\": [...]}"; }
    if (!Array.isArray(node[key])) { return path + ": '" + key + "' is not a list"; }
    for (let index = 0; index < node[key].length; index++) {
      const child = node[key][index];
      const where = (path === "rules" ? "" : path + ".") + key + "[" + index + "]";
      if (groupKey(child)) {
        const problem = unsupported(child, where);
        if (problem) { return problem; }
        continue;
      }
      if (!child || typeof child !== "object" || Array.isArray(child)) { return where + ": not a condition"; }
      if (Object.keys(child).some(function (k) { return !["property", "op", "value"].includes(k); })) {
        return where + ": a key other than property, op and value";
      }
      const value = child.value;
      if (value !== undefined && !isScalar(value) && !(Array.isArray(value) && value.every(isScalar))) {
        return where + ": a value that is not text, a number, true/false or a list of them";
      }
    }
    return "";
  }

  function RuleBuilder(textarea, config) {
    this.textarea = textarea;
    this.config = config;
    this.ops = {};
    config.ops.forEach(function (op) { this.ops[op.op] = op; }, this);
    this.rules = null;
    this.root = element("div", {"class": "rule-builder", "id": "rule-builder"});
    this.notice = element("p", {"class": "rule-builder-notice", "aria-live": "polite", "hidden": ""});
    this.tree = element("div", {"class": "rule-builder-tree"});
    this.propertyList = element("datalist", {"id": "rule-builder-properties"},
      config.propertyNames.map(function (name) { return element("option", {"value": name}); }));
    this.root.append(this.notice, this.tree, this.propertyList);
    this.preview = element("div", {"class": "rule-preview", "id": "rule-preview", "aria-live": "polite"});
    const row = textarea.closest(".form-row") || textarea.parentElement;
    row.insertAdjacentElement("beforebegin", this.root);
    row.insertAdjacentElement("afterend", this.preview);
    this.previewTimer = null;
    this.previewRequest = null;
    textarea.addEventListener("input", this.fromJson.bind(this));
    const kind = document.getElementById("id_kind");
    if (kind) { kind.addEventListener("change", this.schedulePreview.bind(this)); }
    this.fromJson();
  }

  RuleBuilder.prototype.fromJson = function () {
    const text = this.textarea.value.trim();
    let rules = null;
    if (!text) {
      rules = {"all": []};
    } else {
      try {
        rules = JSON.parse(text);
      } catch (error) {
        this.showNotice("The JSON below is not valid (" + error.message + "): the builder shows the last valid rules until it is fixed.");
        this.schedulePreview();
        return;
      }
    }
    const problem = unsupported(rules, "rules");
    if (problem) {
      this.rules = null;
      this.tree.replaceChildren();
      this.showNotice("The builder cannot show these rules (" + problem + "); edit the JSON below.");
    } else {
      this.rules = rules;
      this.showNotice("");
      this.draw();
    }
    this.schedulePreview();
  };

  RuleBuilder.prototype.showNotice = function (text) {
    this.notice.textContent = text;
    this.notice.hidden = !text;
  };

  /* The builder changed the rules: write the JSON, redraw, count again. */
  RuleBuilder.prototype.changed = function (redraw) {
    this.textarea.value = JSON.stringify(this.rules, null, 2);
    this.showNotice("");
    if (redraw) { this.draw(); }
    this.schedulePreview();
  };

  RuleBuilder.prototype.draw = function () {
    this.tree.replaceChildren(this.group(this.rules, null, 0));
  };

  RuleBuilder.prototype.group = function (node, parent, depth) {
    const self = this;
    const key = groupKey(node);
    const box = element("div", {"class": "rule-group", "data-depth": String(depth)});
    const match = element("select", {"class": "rule-group-match", "aria-label": "Match"}, [
      element("option", {"value": "all", "text": "all of"}),
      element("option", {"value": "any", "text": "any of"}),
    ]);
    match.value = key;
    match.addEventListener("change", function () {
      const children = node[key];
      delete node[key];
      node[match.value] = children;
      self.changed(true);
    });
    const header = element("div", {"class": "rule-group-header"}, [
      element("span", {"text": "Profiles matching "}), match, element("span", {"text": " these conditions:"}),
    ]);
    if (parent) {
      const remove = element("button", {"type": "button", "class": "button rule-remove", "text": "Remove group", "aria-label": "Remove this group"});
      remove.addEventListener("click", function () {
        parent.splice(parent.indexOf(node), 1);
        self.changed(true);
      });
      header.appendChild(remove);
    }
    box.appendChild(header);
    const list = element("div", {"class": "rule-group-items"});
    node[key].forEach(function (child) {
      list.appendChild(groupKey(child) ? self.group(child, node[key], depth + 1) : self.condition(child, node[key]));
    });
    if (!node[key].length) {
      list.appendChild(element("p", {"class": "help", "text": key === "all"
        ? "No condition yet: every profile matches."
        : "No condition yet: an empty “any of” group matches nothing."}));
    }
    box.appendChild(list);
    const addCondition = element("button", {"type": "button", "class": "button rule-add-condition", "text": "+ Condition"});
    addCondition.addEventListener("click", function () {
      node[key].push({"property": "", "op": "eq", "value": ""});
      self.changed(true);
      const inputs = box.querySelectorAll(":scope > .rule-group-items > .rule-condition .rule-property");
      if (inputs.length) { inputs[inputs.length - 1].focus(); }
    });
    const addGroup = element("button", {"type": "button", "class": "button rule-add-group", "text": "+ Group"});
    addGroup.addEventListener("click", function () {
      node[key].push({"any": [{"property": "", "op": "eq", "value": ""}]});
      self.changed(true);
    });
    box.appendChild(element("div", {"class": "rule-group-actions"}, [addCondition, addGroup]));
    return box;
  };

  RuleBuilder.prototype.condition = function (node, parent) {
    const self = this;
    const row = element("div", {"class": "rule-condition"});
    const property = element("input", {
      "type": "text", "class": "rule-property", "list": "rule-builder-properties",
      "placeholder": "property, e.g. plan", "aria-label": "Property", "autocomplete": "off",
    });
    property.value = typeof node.property === "string" ? node.property : "";
    const op = element("select", {"class": "rule-op", "aria-label": "Operator"},
      this.config.ops.map(function (entry) { return element("option", {"value": entry.op, "text": entry.label}); }));
    if (!this.ops[node.op]) {
      op.appendChild(element("option", {"value": String(node.op), "text": String(node.op) + " (unknown)"}));
    }
    op.value = String(node.op);
    const value = element("input", {"type": "text", "class": "rule-value", "aria-label": "Value", "autocomplete": "off"});
    value.value = Array.isArray(node.value) ? node.value.join(", ") : (node.value === undefined ? "" : String(node.value));
    const remove = element("button", {"type": "button", "class": "button rule-remove", "text": "×", "aria-label": "Remove this condition", "title": "Remove this condition"});

    function describeValue() {
      const kind = (self.ops[op.value] || {}).value;
      value.hidden = kind === "none";
      value.placeholder = {
        "list": "values, separated by commas", "ordered": "number or YYYY-MM-DD",
        "days": "number of days", "text": "text", "scalar": "value",
      }[kind] || "value";
    }

    function writeValue() {
      const kind = (self.ops[op.value] || {}).value;
      if (kind === "none") {
        delete node.value;
      } else if (kind === "list") {
        node.value = value.value.split(",").map(function (item) { return typed(item.trim()); })
          .filter(function (item) { return item !== ""; });
      } else if (kind === "days") {
        node.value = /^\s*[0-9]+\s*$/.test(value.value) ? Number(value.value) : value.value;
      } else if (kind === "text") {
        node.value = value.value;
      } else {
        node.value = typed(value.value);
      }
    }

    property.addEventListener("input", function () { node.property = property.value; self.changed(false); });
    op.addEventListener("change", function () { node.op = op.value; describeValue(); writeValue(); self.changed(false); });
    value.addEventListener("input", function () { writeValue(); self.changed(false); });
    remove.addEventListener("click", function () {
      parent.splice(parent.indexOf(node), 1);
      self.changed(true);
    });
    describeValue();
    row.append(property, op, value, remove);
    return row;
  };

  // --- Live count and sample ------------------------------------------------------------

  RuleBuilder.prototype.schedulePreview = function () {
    clearTimeout(this.previewTimer);
    const fieldset = this.textarea.closest("fieldset");
    if (!this.config.previewUrl || (fieldset && fieldset.hidden)) { return; }
    if (!this.textarea.value.trim()) {
      this.preview.replaceChildren(element("p", {"class": "help", "text": "Add a condition to see how many profiles match."}));
      return;
    }
    this.previewTimer = setTimeout(this.askPreview.bind(this), PREVIEW_DELAY_MS);
  };

  RuleBuilder.prototype.askPreview = function () {
    const self = this;
    if (this.previewRequest) { this.previewRequest.abort(); }
    const request = new AbortController();
    this.previewRequest = request;
    const token = this.textarea.form.querySelector("input[name='csrfmiddlewaretoken']");
    const body = new URLSearchParams({"rules": this.textarea.value});
    this.preview.classList.add("rule-preview-busy");
    fetch(this.config.previewUrl, {
      method: "POST", credentials: "same-origin", signal: request.signal, body: body,
      headers: {"X-CSRFToken": token ? token.value : ""},
    })
      .then(function (response) {
        if (response.status === 429) {
          self.previewTimer = setTimeout(self.askPreview.bind(self), RETRY_BUSY_MS);
          return null;
        }
        return response.json();
      })
      .then(function (data) {
        if (!data || request !== self.previewRequest) { return; }
        self.previewRequest = null;
        self.preview.classList.remove("rule-preview-busy");
        self.showPreview(data);
      })
      .catch(function (error) {
        if (error.name === "AbortError") { return; }
        self.preview.classList.remove("rule-preview-busy");
        self.preview.replaceChildren(element("p", {"class": "help", "text": "No live count right now (" + error.message + "); saving still checks the rules."}));
      });
  };

  RuleBuilder.prototype.showPreview = function (data) {
    const parts = [];
    if (!data.ok) {
      if (data.errors && data.errors.length) {
        parts.push(element("div", {"class": "errornote rule-preview-errors"}, [
          element("p", {"text": data.errors.length === 1
            ? "These rules have a problem:" : "These rules have " + data.errors.length + " problems:"}),
          element("ul", {}, data.errors.map(function (message) { return element("li", {"text": message}); })),
        ]));
      } else {
        parts.push(element("p", {"class": "help", "text": data.message}));
      }
      this.preview.replaceChildren.apply(this.preview, parts);
      return;
    }
    parts.push(element("p", {"class": "rule-preview-count", "text": data.message}));
    const warning = this.shrinkWarning(data.count);
    if (warning) { parts.push(element("p", {"class": "errornote rule-preview-warning", "text": warning})); }
    if (data.sample.length) {
      const rows = data.sample.map(function (member) {
        const link = element("a", {"href": member.url, "text": member.distinct_id});
        return element("tr", {}, [element("td", {}, [link]), element("td", {"text": member.email || "—"})]);
      });
      parts.push(element("table", {"class": "rule-preview-sample"}, [
        element("thead", {}, [element("tr", {}, [element("th", {"text": "Distinct id"}), element("th", {"text": "Email"})])]),
        element("tbody", {}, rows),
      ]));
      parts.push(element("p", {"class": "help", "text": "The first " + data.sample.length + " by distinct id."}));
    }
    this.preview.replaceChildren.apply(this.preview, parts);
  };

  /* The save would empty or halve a cohort that dynamic syncs keep in sync. */
  RuleBuilder.prototype.shrinkWarning = function (count) {
    const before = this.config.currentCount;
    const syncs = this.config.dynamicSyncs;
    if (!syncs.length || !before || (count !== 0 && count * 2 > before)) { return ""; }
    return "Saving would take this cohort from " + before.toLocaleString() + " to " + count.toLocaleString() +
      " members; " + syncs.join(", ") + " would then remove " + (before - count).toLocaleString() +
      " users from the destination. Saving asks you to confirm.";
  };

  function start() {
    const configElement = document.getElementById("cohort-editor-config");
    const textarea = document.getElementById("id_rules");
    if (!configElement || !textarea) { return; }
    window.cohortRuleBuilder = new RuleBuilder(textarea, JSON.parse(configElement.textContent));
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
