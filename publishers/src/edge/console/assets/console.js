// The voltbus console's only script: copy buttons, and live figures. An element with
// `data-live="<url>"` is refreshed every two seconds from that URL's JSON: each key's text goes
// into the element below it with the same `data-key`. A `final: true` answer stops the polling.
// An element with an id and `data-refresh` is replaced every three seconds by the element of the
// same id in a fresh copy of the page (the delivery log, as attempts arrive).
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = source.textContent;
  const done = () => { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => select(source));
  } else {
    select(source);
  }
});

function select(element) {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

function follow(section) {
  const url = section.dataset.live;
  let timer = null;
  const refresh = async () => {
    try {
      const answer = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
      if (!answer.ok) return;
      const figures = await answer.json();
      for (const [key, text] of Object.entries(figures)) {
        for (const element of section.querySelectorAll(`[data-key="${CSS.escape(key)}"]`)) {
          if (element.textContent !== String(text)) {
            element.textContent = String(text);
            element.classList.add("changed");
            setTimeout(() => element.classList.remove("changed"), 800);
          }
        }
      }
      section.dataset.updated = new Date().toISOString();
      if (figures.final === true && timer !== null) clearInterval(timer);
    } catch (_) {
      // The next tick tries again.
    }
  };
  timer = setInterval(refresh, 2000);
  refresh();
}

document.querySelectorAll("[data-live]").forEach(follow);

function refresh(element) {
  setInterval(async () => {
    try {
      const answer = await fetch(window.location.href, { credentials: "same-origin" });
      if (!answer.ok) return;
      const fresh = new DOMParser().parseFromString(await answer.text(), "text/html").getElementById(element.id);
      if (fresh && fresh.innerHTML !== element.innerHTML) element.replaceChildren(...fresh.childNodes);
    } catch (_) {
      // The next tick tries again.
    }
  }, 3000);
}

document.querySelectorAll("[data-refresh][id]").forEach(refresh);
