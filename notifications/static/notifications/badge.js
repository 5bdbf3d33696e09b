/* The nav's notifications badge, kept current by the `notification` frames the chat client
   dispatches as "chat:frame" events, and a short toast for each new one. No inline script and no
   innerHTML: the site runs under a script-src 'self' Content-Security-Policy, and a frame's fields
   are user text. */
(function () {
  "use strict";

  var TOAST_MS = 6000;
  var seen = {};  // a job run twice sends its frames twice: one toast per notification id

  function setUnread(count) {
    var badge = document.getElementById("notifications");
    if (!badge) return;
    badge.setAttribute("data-unread", String(count));
    badge.classList.toggle("has-unread", count > 0);
    var number = badge.querySelector(".count");
    if (number) number.textContent = String(count);
  }

  function toasts() {
    var box = document.getElementById("notification-toasts");
    if (box) return box;
    box = document.createElement("div");
    box.id = "notification-toasts";
    box.setAttribute("role", "status");
    box.setAttribute("aria-live", "polite");
    // Styled from script (the CSSOM is not inline style: a style-src policy allows it).
    box.style.position = "fixed";
    box.style.right = "1em";
    box.style.top = "3.2em";  // under the header: never over the composer's Send button
    box.style.zIndex = "1000";
    document.body.appendChild(box);
    return box;
  }

  function toast(frame) {
    var item = document.createElement("a");
    item.className = "notification-toast";
    item.href = "/notifications/" + encodeURIComponent(frame.id) + "/";
    item.textContent = frame.from + " mentioned you in " + frame.room;
    item.title = frame.text;
    item.style.display = "block";
    item.style.marginTop = ".4em";
    item.style.padding = ".5em .8em";
    item.style.background = "#234";
    item.style.color = "#fff";
    item.style.borderRadius = "4px";
    toasts().appendChild(item);
    setTimeout(function () { item.remove(); }, TOAST_MS);
  }

  document.addEventListener("chat:frame", function (event) {
    var frame = event.detail;
    if (!frame || frame.type !== "notification") return;
    if (typeof frame.unread === "number") setUnread(frame.unread);
    if (seen[frame.id]) return;
    seen[frame.id] = true;
    toast(frame);
  });
}());
