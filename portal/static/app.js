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

  // A form that waits on something slow (a test call rings for up to 40 s)
  // says so and cannot be sent twice.
  all('form[data-busy]').forEach(function (f) {
    f.addEventListener('submit', function () {
      var b = f.querySelector('button[type="submit"]');
      if (!b) { return; }
      // Disabled after this event, so the click still submits the form.
      setTimeout(function () { b.disabled = true; b.textContent = f.getAttribute('data-busy'); }, 0);
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

  // Microsoft 365 group picker (Large Tenant Mode): search Graph through
  // the portal and fill a group row.
  var picker = document.getElementById('group-picker');
  if (picker) {
    var box = document.getElementById('group-search');
    var results = document.getElementById('group-results');
    var fill = function (row, g) {
      var ins = row.querySelectorAll('input');
      ins[0].value = g.id;
      ins[1].value = g.display_name;
    };
    var search = function () {
      results.textContent = 'Searching…';
      fetch(picker.getAttribute('data-url') + '?q=' + encodeURIComponent(box.value), { credentials: 'same-origin' })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          results.textContent = '';
          if (data.error) { results.textContent = data.error; return; }
          if (!data.groups.length) { results.textContent = 'No group matches.'; return; }
          data.groups.forEach(function (g) {
            var li = document.createElement('li');
            li.setAttribute('data-group', g.display_name);
            var name = document.createElement('span');
            name.textContent = g.display_name + ' (' + g.kind + ')';
            li.appendChild(name);
            var std = document.createElement('button');
            std.type = 'button';
            std.className = 'btn small';
            std.textContent = 'Add to standard groups';
            std.setAttribute('data-use', 'standard');
            std.addEventListener('click', function () {
              var rows = all('.group-row', document.getElementById('group-rows'));
              var row = rows.filter(function (r) { return r.querySelector('input').value === ''; })[0];
              if (!row) {
                row = rows[rows.length - 1].cloneNode(true);
                document.getElementById('group-rows').appendChild(row);
              }
              fill(row, g);
            });
            li.appendChild(std);
            var paRow = document.getElementById('phone-app-group-row');
            if (paRow) {
              var pa = document.createElement('button');
              pa.type = 'button';
              pa.className = 'btn small';
              pa.textContent = 'Use as Phone App group';
              pa.setAttribute('data-use', 'phone-app');
              pa.addEventListener('click', function () { fill(paRow, g); });
              li.appendChild(pa);
            }
            results.appendChild(li);
          });
        })
        .catch(function () { results.textContent = 'The search failed; try again.'; });
    };
    document.getElementById('group-search-go').addEventListener('click', search);
    box.addEventListener('keydown', function (e) {
      if (e.key === 'Enter') { e.preventDefault(); search(); }
    });
  }

  // Sync Now: Alt+Shift makes a diagnostic sync; a running sync's status
  // is polled until it ends.
  var syncForm = document.getElementById('sync-form');
  if (syncForm) {
    document.getElementById('sync-now').addEventListener('click', function (e) {
      if (e.altKey && e.shiftKey) { document.getElementById('sync-diagnostic').checked = true; }
    });
  }
  var status = document.getElementById('sync-status');
  if (status && status.hasAttribute('data-running')) {
    var poll = function () {
      fetch(status.getAttribute('data-status-url'), { credentials: 'same-origin' })
        .then(function (r) { return r.json(); })
        .then(function (s) {
          status.textContent = s.text;
          if (s.job) { status.setAttribute('data-state', s.job.status); }
          if (s.running) { setTimeout(poll, 700); }
        })
        .catch(function () { setTimeout(poll, 2000); });
    };
    setTimeout(poll, 300);
  }
}());
