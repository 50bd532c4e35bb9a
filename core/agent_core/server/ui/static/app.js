// The dashboard's only script: refreshes server-rendered fragments and follows a run's logs.
// Workload output is put in with textContent, never as HTML. No dependencies, no build step.
"use strict";

(function () {
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (!isNaN(moment.getTime())) {
        el.title = el.textContent;
        el.textContent = moment.toLocaleString();
      }
    });
  }

  function autoRefreshOn() {
    var box = document.getElementById("auto-refresh");
    return !box || box.checked;
  }

  function refresh(el) {
    var every = (parseFloat(el.dataset.every) || 3) * 1000;
    function tick() {
      if (document.hidden || !autoRefreshOn()) {
        setTimeout(tick, every);
        return;
      }
      fetch(el.dataset.refresh, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (resp) {
          if (resp.status === 401) {
            window.location.reload();
            return null;
          }
          return resp.ok ? resp.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) {
            el.innerHTML = html; // rendered and escaped by the server
            localTimes(el);
          }
        })
        .catch(function () {})
        .then(function () {
          setTimeout(tick, every);
        });
    }
    setTimeout(tick, every);
  }

  function followLogs(el) {
    var status = document.getElementById("logs-status");
    var cursor = "";
    var count = 0;
    function say(text) {
      if (status) status.textContent = text;
    }
    function append(items) {
      var nearBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
      items.forEach(function (item) {
        var line = document.createElement("div");
        line.className = "line level-" + String(item.level || "INFO").toLowerCase();
        var stamp = document.createElement("span");
        stamp.className = "stamp";
        stamp.textContent = String(item.timestamp || "").replace("T", " ").slice(0, 19) + " ";
        var level = document.createElement("span");
        level.className = "level";
        level.textContent = String(item.level || "INFO").padEnd(8);
        var message = document.createElement("span");
        message.className = "message";
        message.textContent = String(item.message);
        line.append(stamp, level, message);
        el.appendChild(line);
      });
      count += items.length;
      if (nearBottom) el.scrollTop = el.scrollHeight;
    }
    function poll() {
      var url = el.dataset.logs + (cursor ? "?cursor=" + encodeURIComponent(cursor) : "");
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (resp) {
          if (resp.status === 401) {
            window.location.reload();
            return null;
          }
          return resp.ok ? resp.json() : null;
        })
        .then(function (page) {
          if (!page) {
            setTimeout(poll, 2000);
            return;
          }
          append(page.items);
          cursor = page.next_cursor;
          if (page.items.length) {
            poll();
          } else if (page.final) {
            say(count ? count + " line(s); the run has ended." : "No logs; the run has ended.");
          } else {
            say(count ? count + " line(s); following…" : "Waiting for logs…");
            setTimeout(poll, 1000);
          }
        })
        .catch(function () {
          say("Lost the server; retrying…");
          setTimeout(poll, 3000);
        });
    }
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.querySelectorAll("[data-refresh]").forEach(refresh);
    document.querySelectorAll("[data-logs]").forEach(followLogs);
  });
})();
