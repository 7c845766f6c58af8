// Hookline dashboard: copy buttons and dialogs. Every action also works as a plain form.
document.addEventListener("click", (event) => {
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    navigator.clipboard.writeText(copy.dataset.copy);
    copy.textContent = "Copied";
    setTimeout(() => { copy.textContent = "Copy"; }, 1200);
  }
  const opener = event.target.closest("[data-open-dialog]");
  if (opener) {
    const dialog = document.getElementById(opener.dataset.openDialog);
    dialog.showModal();
    dialog.querySelector("h2[tabindex]")?.focus();
  }
  const closer = event.target.closest("[data-close-dialog]");
  if (closer) {
    closer.closest("dialog").close();
  }
  // Buttons that ask first: a cheap-to-undo action still deserves a second look.
  const asking = event.target.closest("button[data-confirm]");
  if (asking && !window.confirm(asking.dataset.confirm)) {
    event.preventDefault();
  }
});

// Selects marked data-autosubmit submit their form on change (no inline handlers: CSP).
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) {
    event.target.form.submit();
  }
});

// "Type the host to confirm": the button wakes once the typed text matches (the server checks too).
document.addEventListener("input", (event) => {
  const typed = event.target.closest("input[data-confirm-value]");
  if (typed) {
    const wanted = typed.dataset.confirmValue.toLowerCase();
    typed.form.querySelector("button[type=submit]").disabled = typed.value.trim().toLowerCase() !== wanted;
  }
});

// A revealed secret leaves the page again after its time.
document.addEventListener("htmx:afterSwap", (event) => {
  event.target.querySelectorAll("[data-hide-after]").forEach((shown) => {
    setTimeout(() => { shown.textContent = shown.dataset.hiddenText; }, shown.dataset.hideAfter * 1000);
  });
});

// A box marked data-no-submit (the endpoint search of the delivery filters) fills another control
// and is no filter itself: its change must not reload the list it sits in.
document.addEventListener("change", (event) => {
  if (event.target.matches("[data-no-submit]")) {
    event.stopPropagation();
  }
}, true);
