// certgate console: small progressive enhancements. Every page works without this file;
// with it, dialogs are modal, PEM blocks can be copied and downloaded, and the mTLS rule
// panel shows its expression while you type. No request leaves for another origin.
"use strict";

(function () {
  // -- Preview Certificate: copy, download, and forget on close ------------------------------

  function setStatus(scope, text) {
    const status = scope.querySelector("[data-copy-status]") || document.querySelector("[data-copy-status]");
    if (status) status.textContent = text;
  }

  function copyFrom(button) {
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const label = source.labels && source.labels[0] ? source.labels[0].textContent.trim() : "Text";
    const scope = button.closest("dialog, main") || document;
    const done = () => setStatus(scope, label + " copied to the clipboard.");
    const fallback = () => {
      source.focus();
      source.select();
      try {
        document.execCommand("copy");
        done();
      } catch (e) {
        setStatus(scope, "Select the text and copy it with your keyboard.");
      }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.value).then(done, fallback);
    } else {
      fallback();
    }
  }

  // The file is made here from the text on the page (a Blob), never fetched from the server.
  function download(link) {
    const source = document.getElementById(link.dataset.download);
    if (!source) return;
    const blob = new Blob([source.value], { type: "application/x-pem-file" });
    const url = URL.createObjectURL(blob);
    const anchor = document.createElement("a");
    anchor.href = url;
    anchor.download = link.dataset.filename || "download.pem";
    anchor.hidden = true;
    document.body.appendChild(anchor);
    anchor.click();
    setTimeout(function () {
      URL.revokeObjectURL(url);
      anchor.remove();
    }, 1000);
  }

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () { copyFrom(button); });
  });
  document.querySelectorAll("[data-download]").forEach(function (link) {
    link.hidden = false;
    link.addEventListener("click", function (event) {
      event.preventDefault();
      download(link);
    });
  });

  let leaving = false;
  function closePreview(dialog) {
    if (leaving) return;
    leaving = true;
    // Wipe the key from the page before anything else, then replace this history entry so
    // neither Back nor a reload can come back to the response that carried it.
    dialog.querySelectorAll("textarea").forEach(function (area) {
      area.value = "";
      area.textContent = "";
    });
    if (dialog.open) dialog.close();
    dialog.remove();
    window.location.replace(dialog.dataset.return);
  }

  const preview = document.querySelector("[data-preview]");
  if (preview) {
    if (typeof preview.showModal === "function") {
      // Rendered open (so it shows without JavaScript); reopen it as a modal. Removing the
      // attribute, unlike close(), fires no "close" event that would end the preview at once.
      preview.removeAttribute("open");
      preview.showModal();
    }
    preview.addEventListener("cancel", function (event) {
      event.preventDefault();
      closePreview(preview);
    });
    preview.addEventListener("close", function () { closePreview(preview); });
    preview.querySelectorAll("[data-close-preview]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        closePreview(preview);
      });
    });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) closePreview(preview);
    });
  }

  // -- Revoke: the confirmation dialog -------------------------------------------------------

  const revokeDialog = document.getElementById("revoke-dialog");
  if (revokeDialog && typeof revokeDialog.showModal === "function") {
    const form = document.getElementById("revoke-form");
    const box = document.getElementById("revoke-confirm");
    document.querySelectorAll("[data-revoke]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        form.action = link.dataset.revoke;
        document.getElementById("revoke-name").textContent = link.dataset.name;
        box.checked = false;
        revokeDialog.showModal();
        box.focus();
      });
    });
  }
  document.querySelectorAll("[data-close-dialog]").forEach(function (button) {
    button.addEventListener("click", function () {
      const dialog = button.closest("dialog");
      if (dialog) dialog.close();
    });
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  // -- Create Certificate: show the fields of the chosen CSR Generation ----------------------

  const createForm = document.querySelector("[data-create-certificate]");
  if (createForm) {
    const sync = function () {
      const mode = createForm.querySelector("input[name=csr_mode]:checked");
      createForm.querySelectorAll("[data-when-mode]").forEach(function (part) {
        const on = mode && part.dataset.whenMode === mode.value;
        part.hidden = !on;
        part.querySelectorAll("input, textarea, select").forEach(function (input) { input.disabled = !on; });
      });
    };
    createForm.querySelectorAll("input[name=csr_mode]").forEach(function (radio) {
      radio.addEventListener("change", sync);
    });
    sync();
  }

  // -- Domain Names: count against the limit -------------------------------------------------

  function words(text) {
    return text.split(/[\s,]+/).filter(function (word) { return word.length > 0; });
  }

  const hostnameForm = document.querySelector("[data-hostnames]");
  if (hostnameForm) {
    const limit = parseInt(hostnameForm.dataset.limit, 10);
    const typed = hostnameForm.querySelector("textarea[name=other_hostnames]");
    const counter = hostnameForm.querySelector("[data-hostname-count]");
    const count = function () {
      const names = new Set();
      hostnameForm.querySelectorAll("input[name=hostname]:checked").forEach(function (box) { names.add(box.value); });
      words(typed.value).forEach(function (word) { names.add(word); });
      counter.textContent = names.size + " of " + limit + " domain names.";
      typed.setCustomValidity(
        names.size > limit ? "You can enter up to " + limit + " domain names at a time." : ""
      );
    };
    hostnameForm.addEventListener("input", count);
    hostnameForm.addEventListener("change", count);
    count();
  }

  // -- Create mTLS Rule: the expression as you type ------------------------------------------
  // Mirrors certgate.console.expressions.mtls_rule_expression; the server recomputes it and
  // saves only an expression it has shown.

  const VERIFIED = "tls.client_auth.cert_verified";

  function normalizeHost(name) {
    let host = name.trim().toLowerCase().replace(/\.$/, "");
    try {
      host = new URL("http://" + host).hostname;
    } catch (e) {
      // leave it; the server reports what is wrong with it
    }
    return host;
  }

  function mtlsExpression(hosts, matchVerified) {
    const verified = matchVerified ? VERIFIED : "not " + VERIFIED;
    if (hosts.length === 0) return "(" + verified + ")";
    const host = hosts.length === 1
      ? "http.host eq \"" + hosts[0] + "\""
      : "http.host in {" + hosts.map(function (h) { return "\"" + h + "\""; }).join(" ") + "}";
    return "(" + host + " and " + verified + ")";
  }

  const ruleForm = document.querySelector("[data-mtls-rule]");
  if (ruleForm) {
    const output = ruleForm.querySelector("[data-expression]");
    const shown = ruleForm.querySelector("[data-shown-expression]");
    const warning = ruleForm.querySelector("[data-no-hostname-warning]");
    const update = function () {
      const hosts = Array.from(new Set(words(ruleForm.elements.hostnames.value).map(normalizeHost)));
      const verified = ruleForm.querySelector("input[name=verified]:checked");
      const expression = mtlsExpression(hosts, verified !== null && verified.value === "on");
      output.textContent = expression;
      shown.value = expression;
      warning.hidden = hosts.length > 0;
    };
    ruleForm.addEventListener("input", update);
    ruleForm.addEventListener("change", update);
    update();
  }
})();
