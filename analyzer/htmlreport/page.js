// Draws the figures whose data is inlined in #figure-data, and makes tables sortable.
(function () {
  "use strict";
  var figures = JSON.parse(document.getElementById("figure-data").textContent);
  var config = {
    responsive: true,
    displaylogo: false,
    modeBarButtonsToRemove: ["select2d", "lasso2d"],
    toImageButtonOptions: { format: "png", scale: 2 },
  };
  document.querySelectorAll("[data-figure]").forEach(function (el) {
    var fig = figures[el.dataset.figure];
    try {
      Plotly.newPlot(el, fig.data, fig.layout, config).then(function () {
        el.dataset.rendered = "true";
      });
    } catch (err) {
      el.textContent = "This chart could not be drawn: " + err;
      console.error(err);
    }
  });

  // Click a column header to sort by it (numbers by their raw value in data-v).
  function key(cell) {
    var v = cell.dataset.v;
    if (v !== undefined && v !== "" && !isNaN(Number(v))) return Number(v);
    return cell.textContent.toLowerCase();
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th, col) {
      th.classList.add("sortable");
      th.title = "Sort by this column";
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var down = th.dataset.order !== "desc";
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          return (x < y ? -1 : x > y ? 1 : 0) * (down ? -1 : 1);
        });
        th.dataset.order = down ? "desc" : "asc";
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
