// dbwatch console: copy buttons, the silence form and expire buttons, and the "/" shortcut to the filter.
// No framework and nothing fetched but this agent's own API; every page works for reading without it.
"use strict";

function say(form, text, bad) {
  const status = form.querySelector(".status");
  if (status) { status.textContent = text; status.className = "status " + (bad ? "bad" : "ok"); }
}

function parseMatchers(text) {
  const matchers = [], problems = [];
  text.split("\n").map(l => l.trim()).filter(Boolean).forEach(line => {
    const m = line.match(/^([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?$/);
    if (!m) { problems.push(line); return; }
    matchers.push({name: m[1], value: m[3], isRegex: m[2].includes("~"), isEqual: !m[2].startsWith("!")});
  });
  return {matchers, problems};
}

async function api(method, url, body) {
  const init = {method, headers: {"Accept": "application/json"}, credentials: "same-origin"};
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  // From the origin: a page opened as http://user:pass@host/ resolves relative URLs with the credentials in
  // them, which fetch refuses; the browser sends the cached basic auth to its origin anyway.
  const response = await fetch(new URL(url, location.origin), init);
  const text = await response.text();
  if (!response.ok) { throw new Error(text.trim() || response.status + " " + response.statusText); }
  return text ? JSON.parse(text) : {};
}

document.addEventListener("click", async event => {
  const copy = event.target.closest("button.copy");
  if (copy) {
    const text = document.getElementById(copy.dataset.copy).textContent;
    try { await navigator.clipboard.writeText(text); }
    catch (e) {  // no clipboard API (plain http on another host): select it for Ctrl+C
      const range = document.createRange(); range.selectNodeContents(document.getElementById(copy.dataset.copy));
      const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
    }
    copy.textContent = "Copied"; setTimeout(() => { copy.textContent = "Copy SQL"; }, 1500);
    return;
  }
  const silence = event.target.closest("a.silence[data-labels]");
  const form = document.getElementById("silence-form");
  if (silence && form) {
    event.preventDefault();
    const labels = JSON.parse(silence.dataset.labels);
    const keep = ["alertname", "target"].filter(k => k in labels);
    form.matchers.value = (keep.length ? keep : Object.keys(labels)).map(k => k + "=" + labels[k]).join("\n") + "\n";
    form.comment.focus();
    form.scrollIntoView({block: "start"});
    return;
  }
  const expire = event.target.closest("button.expire");
  if (expire) {
    expire.disabled = true;
    try { await api("DELETE", "/api/v1/silence/" + encodeURIComponent(expire.dataset.id)); location.reload(); }
    catch (e) { expire.disabled = false; alert("Could not expire the silence: " + e.message); }
    return;
  }
  const action = event.target.closest("button[data-action]");
  if (action) {
    const what = action.dataset.action, pid = action.dataset.pid;
    if (!confirm((what === "terminate" ? "Terminate" : "Cancel the statement of") + " backend " + pid + " on " + action.dataset.target + "?")) return;
    try {
      const url = "/api/v1/targets/" + encodeURIComponent(action.dataset.target) + "/backends/" + encodeURIComponent(pid) + "/" + what;
      await api("POST", url, {confirm: true}); location.reload();
    } catch (e) { alert(what + " failed: " + e.message); }
  }
});

document.addEventListener("submit", async event => {
  const form = event.target;
  if (form.id !== "silence-form") return;
  event.preventDefault();
  const {matchers, problems} = parseMatchers(form.matchers.value);
  if (problems.length || !matchers.length) {
    say(form, problems.length ? "Not a matcher: " + problems.join(", ") : "At least one matcher.", true); return;
  }
  const body = {matchers, duration: form.duration.value.trim(), createdBy: form.createdBy.value.trim(),
                comment: form.comment.value.trim()};
  try {
    const made = await api("POST", form.dataset.api, body);
    say(form, "Silence " + made.silenceID + " created.", false);
    setTimeout(() => location.assign("/alerts"), 400);
  } catch (e) { say(form, "Not created: " + e.message, true); }
});

document.addEventListener("keydown", event => {
  const filter = document.getElementById("filter");
  if (event.key === "/" && filter && document.activeElement.tagName !== "INPUT" && document.activeElement.tagName !== "TEXTAREA") {
    event.preventDefault(); filter.focus(); filter.select();
  }
});

// The overview reloads itself while "refresh" is ticked (remembered in this browser), unless the filter is being typed in.
(function autorefresh() {
  const box = document.getElementById("autorefresh");
  if (!box) return;
  box.checked = localStorage.getItem("dbwatch.autorefresh") === "1";
  let timer = null;
  const arm = () => {
    clearTimeout(timer);
    if (box.checked) {
      timer = setTimeout(() => {
        if (document.activeElement && ["INPUT", "SELECT"].includes(document.activeElement.tagName) && document.activeElement !== box) { arm(); return; }
        location.reload();
      }, Number(box.dataset.seconds) * 1000);
    }
  };
  box.addEventListener("change", () => { localStorage.setItem("dbwatch.autorefresh", box.checked ? "1" : "0"); arm(); });
  arm();
})();
