// The opt-in form's one enhancement: choosing a province, regency or district fills the next
// list at once from /api/v1/regions/{code} (same origin), instead of posting the form back.
// Without this file (or without JavaScript) the "Update the region lists" button does the same.
(function () {
  "use strict";
  var order = ["province_code", "regency_code", "district_code", "village_code"];
  var selects = order.map(function (id) { return document.getElementById(id); });
  var postal = document.getElementById("postal_code");
  if (selects.some(function (s) { return !s; }) || !window.fetch) { return; }

  function clearFrom(index) {
    for (var i = index; i < selects.length; i += 1) {
      var select = selects[i];
      while (select.options.length > 1) { select.remove(1); }
      select.value = "";
      select.disabled = true;
    }
  }

  function fill(index, items) {
    var select = selects[index];
    items.forEach(function (item) {
      var option = document.createElement("option");
      option.value = item.code;
      option.textContent = item.name;
      if (item.postal_code) { option.setAttribute("data-postal", item.postal_code); }
      select.appendChild(option);
    });
    select.disabled = false;
  }

  selects.forEach(function (select, index) {
    select.addEventListener("change", function () {
      if (index === selects.length - 1) {
        var chosen = select.options[select.selectedIndex];
        var code = chosen && chosen.getAttribute("data-postal");
        if (code && postal) { postal.value = code; }
        return;
      }
      clearFrom(index + 1);
      if (!select.value) { return; }
      fetch("/api/v1/regions/" + encodeURIComponent(select.value), {credentials: "omit"})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) { if (body) { fill(index + 1, body.items); } })
        .catch(function () { /* the button still works */ });
    });
  });
})();
