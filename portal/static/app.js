// pbx2teams portal: small enhancements; every page also works without them.
(function () {
  'use strict';
  var all = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };

  // Filter a list as the user types (account switcher).
  all('input[data-filter]').forEach(function (input) {
    var list = document.getElementById(input.getAttribute('data-filter'));
    if (!list) { return; }
    input.addEventListener('input', function () {
      var q = input.value.trim().toLowerCase();
      all('li', list).forEach(function (li) {
        li.hidden = q !== '' && li.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  });

  // Drop-down menus built on <details>: focus the filter on open, close on
  // a click elsewhere or Escape.
  all('details[data-menu]').forEach(function (d) {
    d.addEventListener('toggle', function () {
      if (d.open) {
        var f = d.querySelector('.menu-filter');
        if (f) { f.focus(); }
      }
    });
  });
  document.addEventListener('click', function (e) {
    all('details[data-menu][open]').forEach(function (d) {
      if (!d.contains(e.target)) { d.open = false; }
    });
  });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape') {
      all('details[data-menu][open]').forEach(function (d) { d.open = false; });
    }
  });

  // Ask before destructive actions.
  all('form[data-confirm]').forEach(function (f) {
    f.addEventListener('submit', function (e) {
      if (!window.confirm(f.getAttribute('data-confirm'))) { e.preventDefault(); }
    });
  });

  // Copy a one-time secret.
  all('[data-copy]').forEach(function (b) {
    b.addEventListener('click', function () {
      var el = document.getElementById(b.getAttribute('data-copy'));
      if (!el) { return; }
      var done = function () {
        b.textContent = 'Copied';
        setTimeout(function () { b.textContent = 'Copy'; }, 2000);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(el.textContent).then(done);
      } else {
        var range = document.createRange();
        range.selectNodeContents(el);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        try { document.execCommand('copy'); done(); } catch (err) { /* selected; the user can copy */ }
      }
    });
  });

  // Add another group row (Large Tenant Mode).
  all('[data-add-row]').forEach(function (b) {
    b.addEventListener('click', function () {
      var box = document.getElementById(b.getAttribute('data-add-row'));
      var rows = all('.group-row', box);
      if (!rows.length) { return; }
      var row = rows[rows.length - 1].cloneNode(true);
      all('input', row).forEach(function (i) { i.value = ''; });
      box.appendChild(row);
      row.querySelector('input').focus();
    });
  });

  // Show the customer-only fields of the new-account form for customers.
  var toggles = all('input[data-toggles]');
  var syncToggles = function () {
    toggles.forEach(function (t) {
      var box = document.getElementById(t.getAttribute('data-toggles'));
      if (t.checked && box) { box.hidden = t.value !== 'customer'; }
    });
  };
  toggles.forEach(function (t) { t.addEventListener('change', syncToggles); });
  syncToggles();
}());
