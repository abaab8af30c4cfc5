// Guichet portal: small progressive enhancements; every page works without them.
// Upload progress: a form marked data-upload-progress sends its files with XHR and shows
// a <progress> bar, then shows the page the server answered (as a normal submit would).
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-upload-progress") || !window.FormData) return;
    var inputs = form.querySelectorAll("input[type=file]");
    var total = 0;
    inputs.forEach(function (input) { Array.prototype.forEach.call(input.files || [], function (f) { total += f.size; }); });
    if (total < 512 * 1024) return; // small files: the ordinary submit is quick enough
    event.preventDefault();
    var data = new FormData(form);
    if (event.submitter && event.submitter.name) data.append(event.submitter.name, event.submitter.value);
    var bar = form.querySelector(".upload-progress");
    if (bar) { bar.hidden = false; bar.value = 0; }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.addEventListener("progress", function (e) {
      if (bar && e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total);
    });
    xhr.addEventListener("load", function () {
      // The answer is the page a normal submit would show (after its redirect, if any):
      // show it, at its address, without asking for it again (its message shows once).
      var url = xhr.responseURL || form.action;
      document.open(); document.write(xhr.responseText); document.close();
      if (window.history && url) window.history.replaceState(null, "", url);
    });
    xhr.addEventListener("error", function () { form.submit(); });
    xhr.send(data);
  });
})();
