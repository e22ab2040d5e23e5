// calsync's web page: counts down the minutes a pairing's link has left.
// Without this script the page says when the link expires; with it, the time left ticks.
// The deadline is taken from the seconds the server said were left when it rendered the
// element (not from its clock: the phone's or the browser's may be off).
(function () {
  "use strict";
  function tick() {
    document.querySelectorAll("[data-remaining]").forEach(function (el) {
      if (!el.dataset.deadline) {
        el.dataset.deadline = String(Date.now() + 1000 * Number(el.dataset.remaining));
      }
      var left = Math.max(0, Math.round((Number(el.dataset.deadline) - Date.now()) / 1000));
      var offer = el.closest(".offer");
      if (left > 0) {
        el.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0") + " left";
      } else {
        el.textContent = "expired: press Pair a phone again";
        if (offer) {
          offer.classList.add("expired");
        }
      }
    });
  }
  document.addEventListener("DOMContentLoaded", tick);
  setInterval(tick, 1000);
})();
