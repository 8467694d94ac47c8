"""The gallery page's own CSS and JavaScript. Pure data.

(Past 400 lines: it is two strings, one stylesheet and one script run as a whole; split, the
script's parts would share their variables through the page's globals.)

The script filters the cards by state, model, aspect ratio and a text (a case-insensitive
substring of the id or the prompt), and keeps the filters in the page's address
(``#state=failed&q=forest``), so that a reload or a shared link shows the same cards, and back
undoes a select's change. A page that holds every card hides the others. A paged page
(``data-source`` on ``<main>``) loads the data file with a ``<script>`` element (file:// allows
it, where ``fetch`` of a local file is refused), checks its token, then filters every job's row
and draws the matching cards a page at a time. It builds them with ``createElement`` and
``textContent`` only, never markup from the data, in the form ``cards.card_html`` writes. With
many videos no video is fetched until its card nears the viewport. A video shows a still from
0.1 s in (``cards.STILL``) and, played, plays from its start. A video whose file cannot be
loaded (moved or deleted since the page was written) is replaced by a "file missing" box. On a
narrow screen (a phone) the header folds into a few short rows.
"""

CSS = """
:root{color-scheme:dark;--bg:#16181c;--panel:#1f2227;--panel2:#272b31;--text:#e6e8eb;
--muted:#9aa1ab;--line:#32363d;--accent:#7aa2f7;--ok:#5fbf86;--bad:#ef6b6b;--warn:#e0b352;
--idle:#8a919b}
@media (prefers-color-scheme:light){:root{color-scheme:light;--bg:#f4f5f7;--panel:#fff;
--panel2:#eef0f3;--text:#1d2025;--muted:#5d6470;--line:#dde0e5;--accent:#3863d8;--ok:#22864f;
--bad:#c8322f;--warn:#a8720a;--idle:#6b7280}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;
font-size:12px;word-break:break-all}
header{position:sticky;top:0;z-index:2;background:var(--bg);border-bottom:1px solid var(--line);
padding:16px 24px 12px}
@media (max-height:700px){header{position:static}}
h1{margin:0 0 4px;font-size:20px;font-weight:650}
.meta{margin:0 0 12px;color:var(--muted);display:flex;flex-wrap:wrap;gap:4px 18px}
.summary{display:flex;flex-wrap:wrap;gap:8px;margin-bottom:12px}
.stat{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:6px 12px;
min-width:96px}
.stat strong{display:block;font-size:18px;font-variant-numeric:tabular-nums}
.stat span{color:var(--muted);font-size:12px}
.stat-done strong{color:var(--ok)}.stat-failed strong{color:var(--bad)}
.stat-in-flight strong,.stat-unconfirmed strong,.stat-changed strong{color:var(--warn)}
.filters{display:flex;flex-wrap:wrap;align-items:center;gap:8px 16px}
.filters label{display:flex;align-items:center;gap:6px;color:var(--muted)}
select{background:var(--panel);color:var(--text);border:1px solid var(--line);border-radius:6px;
padding:4px 8px;font:inherit}
.shown{margin:0 0 0 auto;color:var(--muted)}
.shown strong{color:var(--text)}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:16px;
padding:20px 24px 40px}
.card{display:flex;flex-direction:column;background:var(--panel);border:1px solid var(--line);
border-radius:10px;overflow:hidden;content-visibility:auto;contain-intrinsic-size:auto 420px}
.card[hidden],#no-match[hidden]{display:none}
.media{background:#000;display:flex;align-items:center;justify-content:center;
aspect-ratio:16/10}
.media video,.placeholder{display:block;max-width:100%;max-height:100%;width:auto;height:100%}
.placeholder{background:var(--panel2);display:flex;align-items:center;justify-content:center;
color:var(--muted);text-transform:uppercase;letter-spacing:.08em;font-size:12px}
.card[data-state=failed] .placeholder{color:var(--bad)}
.body{padding:10px 12px 12px}
h2{margin:0 0 6px;font-size:14px;display:flex;gap:8px;align-items:baseline;
justify-content:space-between}
.job-id{font-weight:600;word-break:break-all}
.badge{flex:none;font-size:11px;font-weight:600;padding:1px 8px;border-radius:99px;
background:var(--panel2);color:var(--idle)}
.badge-done{color:var(--ok)}.badge-failed{color:var(--bad)}
.badge-unconfirmed,.badge-in_flight,.badge-to_download,.badge-changed{color:var(--warn)}
.changed{margin:0 0 8px;padding:6px 8px;border-left:3px solid var(--warn);
background:var(--panel2);border-radius:4px;overflow-wrap:anywhere}
.changed p{margin:0 0 4px}
.prompt{margin:0 0 8px;white-space:pre-wrap;overflow-wrap:anywhere}
.reason{margin:0 0 8px;padding:6px 8px;border-left:3px solid var(--bad);background:var(--panel2);
border-radius:4px;overflow-wrap:anywhere}
.reason .code{color:var(--muted)}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:0;font-size:12px}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
#no-match{text-align:center;color:var(--muted);padding:40px}
.pager{display:flex;align-items:center;gap:8px;color:var(--muted)}
button{background:var(--panel);color:var(--text);border:1px solid var(--line);border-radius:6px;
padding:4px 10px;font:inherit;cursor:pointer}
button:disabled,select:disabled{opacity:.5;cursor:default}
.order{margin:0;color:var(--muted)}
#data-note{text-align:center;color:var(--muted);padding:0 24px 40px}
#data-note[hidden]{display:none}
.placeholder.missing,.card[data-state=failed] .placeholder.missing{color:var(--warn)}
.missing-note{margin:0 0 8px;padding:6px 8px;border-left:3px solid var(--warn);
background:var(--panel2);border-radius:4px;overflow-wrap:anywhere}
input[type=search]{background:var(--panel);color:var(--text);border:1px solid var(--line);
border-radius:6px;padding:4px 8px;font:inherit;width:14em;max-width:100%}
input:disabled{opacity:.5}
@media (max-width:640px){
header{padding:6px 12px}
h1{font-size:15px;line-height:1.25;margin:0 0 2px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.meta{display:block;margin:0 0 4px;font-size:11px;line-height:1.35;white-space:nowrap;
overflow:hidden;text-overflow:ellipsis}
.meta span{margin-right:12px}
.meta code{font-size:11px}
.summary{flex-wrap:nowrap;overflow-x:auto;gap:6px;margin-bottom:5px;scrollbar-width:none}
.stat{flex:none;min-width:0;padding:0 8px;border-radius:99px;display:flex;gap:4px;
align-items:baseline}
.stat strong{display:inline;font-size:13px}
.stat span{font-size:11px;white-space:nowrap}
.filters{gap:5px}
.filters label{flex:1 1 30%;min-width:0}
.filters .name,.wordy{position:absolute;width:1px;height:1px;overflow:hidden;
clip:rect(0 0 0 0);white-space:nowrap}
.filters select,.filters input[type=search]{width:100%;min-width:0;padding:2px 6px;
font-size:13px}
.filters .search{flex:1 1 55%;order:1}
.shown{order:2;margin:0 0 0 auto;font-size:12px;white-space:nowrap}
.pager{order:3;flex:1 1 100%;font-size:12px}
.pager button{padding:1px 8px}
.order{display:none}
main{padding:12px;gap:12px}
}
"""

JS = """
(function () {
  "use strict";
  var main = document.getElementById("cards");
  var keys = ["state", "model", "aspect"];
  var selects = {
    state: document.getElementById("filter-state"),
    model: document.getElementById("filter-model"),
    aspect: document.getElementById("filter-aspect")
  };
  var text = document.getElementById("filter-text");
  var shown = document.getElementById("shown-count");
  var none = document.getElementById("no-match");
  var MISSING = "file missing";
  var GONE = " could not be loaded from beside this page: moved or deleted since the report" +
    " was written? A run downloads a missing video again.";
  // A video whose file cannot be had shows "file missing" in place of a broken player.
  function lost(video) {
    var card = video.closest("article.card");
    var media = video.parentNode;
    if (!card || !media) { return; }
    var box = document.createElement("div");
    box.setAttribute("class", "placeholder missing");
    box.setAttribute("style", video.getAttribute("style") || "");
    var words = document.createElement("span");
    words.textContent = MISSING;
    box.appendChild(words);
    media.replaceChild(box, video);
    var note = document.createElement("p");
    note.setAttribute("class", "missing-note");
    note.setAttribute("role", "note");
    var lead = document.createElement("strong");
    lead.textContent = MISSING + ":";
    note.appendChild(lead);
    var path = (video.getAttribute("src") || "").split("#")[0];
    try { path = decodeURIComponent(path); } catch (ignored) { /* shown as written */ }
    note.appendChild(document.createTextNode(" " + path + GONE));
    var body = card.querySelector(".body");
    body.insertBefore(note, body.querySelector(".body > dl"));
  }
  document.addEventListener("error", function (event) {
    if (event.target && event.target.tagName === "VIDEO") { lost(event.target); }
  }, true);
  Array.prototype.forEach.call(document.querySelectorAll("video"), function (video) {
    if (video.error) { lost(video); }
  });
  // A video shows a still from a little in (its src ends in #t=...); played, it starts at 0.
  var started = typeof WeakSet === "function" ? new WeakSet() : null;
  document.addEventListener("play", function (event) {
    var video = event.target;
    if (!video || video.tagName !== "VIDEO" || started === null || started.has(video)) { return; }
    started.add(video);
    var still = /#t=([0-9.]+)$/.exec(video.getAttribute("src") || "");
    if (still && Math.abs(video.currentTime - parseFloat(still[1])) < 0.01) {
      video.currentTime = 0;
    }
  }, true);
  // The filters live in the address (#state=failed&q=forest): a reload or a shared link shows
  // the same cards; a select's change is a step back can undo, typing replaces the step.
  function readAddress() {
    var params = new URLSearchParams(location.hash.slice(1));
    keys.forEach(function (key) {
      var value = params.get(key);
      var select = selects[key];
      var known = Array.prototype.some.call(select.options, function (option) {
        return option.value === value;
      });
      select.value = known ? value : "all";
    });
    text.value = params.get("q") || "";
  }
  function address() {
    var params = new URLSearchParams();
    keys.forEach(function (key) {
      if (selects[key].value !== "all") { params.set(key, selects[key].value); }
    });
    if (text.value) { params.set("q", text.value); }
    return "#" + params.toString();
  }
  function record(step) {
    var wanted = address();
    var now = location.hash || "#";
    if (wanted === now) { return; }
    if (step) { location.hash = wanted; } else { location.replace(wanted); }
  }
  function needle() { return text.value.trim().toLowerCase(); }
  // With many videos the page asks for none up front; fetch metadata as cards near the viewport.
  var observer = null;
  if ("IntersectionObserver" in window) {
    observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) {
          entry.target.preload = "metadata";
          observer.unobserve(entry.target);
        }
      });
    }, {rootMargin: "400px"});
  }
  function watch() {
    if (observer === null) { return; }
    Array.prototype.forEach.call(main.querySelectorAll("video[preload=none]"), function (video) {
      observer.observe(video);
    });
  }
  function counted(count) {
    shown.textContent = count.toLocaleString("en-US");
    none.hidden = count !== 0;
  }
  function listen(apply) {
    keys.forEach(function (key) {
      selects[key].addEventListener("change", function () { record(true); apply(); });
    });
    text.addEventListener("input", function () { record(false); apply(); });
    window.addEventListener("hashchange", function () {
      if ((location.hash || "#") === address()) { return; }
      readAddress();
      apply();
    });
  }
  watch();
  readAddress();
  if (!main.dataset.source) {
    // Every card is in the page: a filter hides the others.
    var cards = Array.prototype.slice.call(main.querySelectorAll("article.card"));
    var words = cards.map(function (card) {
      return (card.dataset.job + "\\n" + card.querySelector(".prompt").textContent).toLowerCase();
    });
    var filter = function () {
      var count = 0;
      var sought = needle();
      cards.forEach(function (card, index) {
        var match = keys.every(function (key) {
          var value = selects[key].value;
          return value === "all" || card.dataset[key] === value;
        }) && (!sought || words[index].indexOf(sought) !== -1);
        card.hidden = !match;
        if (match) {
          count += 1;
        } else {
          var video = card.querySelector("video");
          if (video && !video.paused) { video.pause(); }
        }
      });
      counted(count);
    };
    listen(filter);
    filter();
    return;
  }
  // Paged: the first page is in the page; every job is a row of the data file.
  var prev = document.getElementById("page-prev");
  var next = document.getElementById("page-next");
  var at = document.getElementById("page-at");
  var note = document.getElementById("data-note");
  var perPage = parseInt(main.dataset.pageSize, 10) || 100;
  var data = null;
  var matches = [];
  var page = 0;
  var CODE = {image: true, extra: true, file: true, task: true};
  function say(text) {
    note.textContent = text;
    note.hidden = !text;
  }
  function make(tag, name, text) {
    var node = document.createElement(tag);
    if (name) { node.setAttribute("class", name); }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function given(value) { return value !== undefined && value !== null; }
  // Python's formatting (cards.py), for the cards drawn from raw values: f"{x:.1f}" and
  // round() round a tie to the even neighbour, where toFixed and Math.round go up.
  function fixed1(x) {
    var quarters = x * 4;
    if (quarters === Math.floor(quarters) && quarters % 4 === 1) { x = Math.floor(x * 10) / 10; }
    return x.toFixed(1);
  }
  function round(x) {
    var whole = Math.floor(x);
    if (x - whole !== 0.5) { return Math.round(x); }
    return whole % 2 === 0 ? whole : whole + 1;
  }
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function seconds(value) {
    if (value < 0) { value = 0; }
    if (value < 60) { return fixed1(value) + " s"; }
    var total = round(value);
    var minutes = Math.floor(total / 60);
    if (minutes < 60) { return minutes + " min " + two(total % 60) + " s"; }
    return Math.floor(minutes / 60) + " h " + two(minutes % 60) + " min";
  }
  function size(bytes) {
    var value = bytes;
    var units = ["B", "KB", "MB", "GB"];
    for (var i = 0; i < units.length; i += 1) {
      if (value < 1000 || i === units.length - 1) {
        return i === 0 ? value.toFixed(0) + " B" : fixed1(value) + " " + units[i];
      }
      value /= 1000;
    }
  }
  function utc(at) {
    return new Date(Math.floor(at) * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }
  function quoted(path) {
    return path.split("/").map(function (part) {
      return encodeURIComponent(part).replace(/[!'()*]/g, function (c) {
        return "%" + c.charCodeAt(0).toString(16).toUpperCase();
      });
    }).join("/");
  }
  function listed(pairs, coded) {
    var dl = make("dl");
    pairs.forEach(function (pair) {
      dl.appendChild(make("dt", null, pair[0]));
      var dd = make("dd");
      if (coded && CODE[pair[0]]) { dd.appendChild(make("code", null, pair[1])); }
      else { dd.textContent = pair[1]; }
      dl.appendChild(dd);
    });
    return dl;
  }
  function card(job) {
    var state = data.states[job[2]];
    var aspect = data.aspects[job[4]];
    var article = make("article", "card");
    article.setAttribute("data-state", state[0]);
    article.setAttribute("data-model", data.models[job[3]]);
    article.setAttribute("data-aspect", aspect[0]);
    article.setAttribute("data-job", job[0]);
    var media = make("div", "media");
    if (job[6] === 1) {
      var video = make("video");
      video.setAttribute("controls", "");
      video.setAttribute("muted", "");
      video.setAttribute("playsinline", "");
      video.setAttribute("preload", data.preload);
      video.setAttribute("src", quoted(job[7]) + data.still);
      video.setAttribute("style", "aspect-ratio: " + aspect[1]);
      media.appendChild(video);
    } else {
      var placeholder = make("div", job[6] === 2 ? "placeholder missing" : "placeholder");
      placeholder.setAttribute("style", "aspect-ratio: " + aspect[1]);
      placeholder.appendChild(make("span", null, job[6] === 2 ? data.missingWords : state[1]));
      media.appendChild(placeholder);
    }
    article.appendChild(media);
    var body = make("div", "body");
    var heading = make("h2");
    heading.appendChild(make("span", "job-id", job[0]));
    heading.appendChild(make("span", "badge badge-" + state[0], state[1]));
    body.appendChild(heading);
    body.appendChild(make("p", "prompt", job[1]));
    var changes = job[18];
    if (changes === 1) {
      var unknown = make("p", "changed");
      unknown.setAttribute("role", "note");
      unknown.appendChild(make("strong", null, "edited since:"));
      unknown.appendChild(document.createTextNode(data.unknownNote));
      body.appendChild(unknown);
    } else if (changes) {
      var changed = make("div", "changed");
      changed.setAttribute("role", "note");
      var lead = make("p");
      lead.appendChild(make("strong", null, "the manifest now says"));
      lead.appendChild(document.createTextNode(data.changedLead));
      changed.appendChild(lead);
      changed.appendChild(listed(changes, false));
      body.appendChild(changed);
    }
    if (job[6] === 2) {
      var missing = make("p", "missing-note");
      missing.setAttribute("role", "note");
      missing.appendChild(make("strong", null, data.missingWords + ":"));
      missing.appendChild(document.createTextNode(" " + data.missingNote));
      body.appendChild(missing);
    }
    if (given(job[16])) {
      var reason = make("p", "reason");
      reason.setAttribute("role", "note");
      reason.appendChild(make("strong", null, "failed:"));
      reason.appendChild(document.createTextNode(" " + job[16] + (job[17] ? " " : "")));
      if (job[17]) { reason.appendChild(make("code", "code", job[17])); }
      body.appendChild(reason);
    }
    var pairs = [["model", data.models[job[3]]], ["duration", job[5] + " s"], ["aspect", aspect[0]]];
    if (given(job[8])) { pairs.push(["image", job[8]]); }
    if (given(job[9])) { pairs.push(["extra", job[9]]); }
    pairs.push(["file", job[7]]);
    if (given(job[10])) { pairs.push(["size", size(job[10])]); }
    if (given(job[11])) { pairs.push(["task", job[11]]); }
    if (given(job[12])) { pairs.push(["submitted", utc(job[12])]); }
    if (given(job[12]) && given(job[13])) { pairs.push(["render time", seconds(job[13] - job[12])]); }
    if (given(job[14])) {
      var after = given(job[13]) ? " (" + seconds(job[14] - job[13]) + " after render)" : "";
      pairs.push(["downloaded", utc(job[14]) + after]);
    }
    if (given(job[15])) { pairs.push(["attempt", String(job[15])]); }
    body.appendChild(listed(pairs, true));
    article.appendChild(body);
    return article;
  }
  function pages() { return Math.max(1, Math.ceil(matches.length / perPage)); }
  function status() {
    counted(matches.length);
    at.textContent = "page " + (page + 1).toLocaleString("en-US") + " of " +
      pages().toLocaleString("en-US");
    prev.disabled = page === 0;
    next.disabled = page >= pages() - 1;
  }
  function draw() {
    var shelf = document.createDocumentFragment();
    matches.slice(page * perPage, (page + 1) * perPage).forEach(function (index) {
      shelf.appendChild(card(data.jobs[index]));
    });
    main.textContent = "";
    main.appendChild(shelf);
    watch();
    status();
  }
  function filter(redraw) {
    var wanted = keys.map(function (key) {
      var value = selects[key].value;
      return value === "all" ? -1 : data.index[key][value];
    });
    var sought = needle();
    matches = [];
    for (var i = 0; i < data.jobs.length; i += 1) {
      var job = data.jobs[i];
      if ((wanted[0] === -1 || job[2] === wanted[0]) && (wanted[1] === -1 || job[3] === wanted[1]) &&
          (wanted[2] === -1 || job[4] === wanted[2]) &&
          (!sought || data.words[i].indexOf(sought) !== -1)) {
        matches.push(i);
      }
    }
    page = 0;
    if (redraw) { draw(); } else { status(); }
  }
  function turn(step) {
    page = Math.min(Math.max(0, page + step), pages() - 1);
    draw();
    window.scrollTo(0, 0);
  }
  function table(values, pick) {
    var found = {};
    values.forEach(function (value, index) { found[pick ? value[0] : value] = index; });
    return found;
  }
  window.wanbatchGallery = function (loaded) {
    if (data !== null) { return; }
    if (!loaded || loaded.token !== main.dataset.token) {
      say(main.dataset.source + " belongs to another report: only this page's first cards" +
        " can be shown. Write the report again (wanbatch report).");
      return;
    }
    data = loaded;
    data.index = {
      state: table(data.states, true),
      model: table(data.models, false),
      aspect: table(data.aspects, true)
    };
    data.words = data.jobs.map(function (job) { return (job[0] + "\\n" + job[1]).toLowerCase(); });
    keys.forEach(function (key) { selects[key].disabled = false; });
    text.disabled = false;
    listen(function () { filter(true); });
    prev.addEventListener("click", function () { turn(-1); });
    next.addEventListener("click", function () { turn(1); });
    say("");
    readAddress();
    var narrowed = !!text.value || keys.some(function (key) { return selects[key].value !== "all"; });
    filter(narrowed);
  };
  var script = document.createElement("script");
  script.src = main.dataset.source;
  script.onerror = function () {
    say(main.dataset.source + " is missing or unreadable beside this page: only the first cards" +
      " can be shown, and the filters cannot search. Write the report again (wanbatch report).");
  };
  document.body.appendChild(script);
})();
"""
