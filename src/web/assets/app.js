// driftwatch analyst page: owns the single-page app (hash router, API client, error banner, the
// three views: #/ projects, #/projects/{name} labeling, #/series/{name} change intervals) and its
// charts (uPlot, vendored in vendor/). No inline handlers, no eval, no style attributes written as
// strings: runs under `script-src 'self'; style-src 'self'`. Contract: /v1/labeling/* (labeling API)
// and /v1/series* (series, downsampled points, intervals, interval feedback).
(() => {
  'use strict';

  // ---------------------------------------------------------------- constants & small helpers

  /** API root: the parent of the page's folder (the page is served at /ui/). */
  const API_ROOT = new URL('../', location.href.split('#')[0]).href;
  const LS_ANALYST = 'driftwatch.analyst';
  const LS_OVERLAYS = 'driftwatch.overlays';
  const SUGGESTION_LIMIT = 5;
  const WINDOW_CONTEXT = 400;
  const OVERVIEW_POINTS = 2000;
  const POLL_PREPARING_MS = 2000;
  const POLL_REFIT_MS = 2500;
  const POLL_PROJECTS_MS = 3000;
  /** 409 codes meaning "the window you look at is out of date": reload the suggestions. */
  const WINDOW_CONFLICTS = ['stale_round', 'suggestion_taken', 'suggestion_closed'];
  /** Breakdown terms of a suggestion's score, in display order (unknown terms follow). */
  const BREAKDOWN_ORDER = ['uncertainty', 'lf_disagreement', 'lf_abstention', 'novelty', 'prior',
    'disagreement', 'diversity', 'rarity'];

  const $ = (sel, root = document) => root.querySelector(sel);
  const enc = encodeURIComponent;

  /** Builds an element. props: class, text, testid, dataset, on* listeners, other attributes. */
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v == null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k === 'testid') el.dataset.testid = v;
        else if (k === 'dataset') for (const [dk, dv] of Object.entries(v)) { if (dv != null) el.dataset[dk] = String(dv); }
        else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else if (v === true) el.setAttribute(k, '');
        else el.setAttribute(k, String(v));
      }
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  const isNum = (x) => typeof x === 'number' && Number.isFinite(x);
  function fmtNum(x, digits = 3) {
    if (!isNum(x)) return '—';
    if (Number.isInteger(x)) return x.toLocaleString('en-US');
    return x.toFixed(digits);
  }
  /** A share (0..1) as a percentage; larger numbers are counts. */
  function fmtShare(x) {
    if (!isNum(x)) return '—';
    return x <= 1 ? `${(x * 100).toFixed(x < 0.01 && x > 0 ? 2 : 1)} %` : fmtNum(x);
  }
  const fmtPct = (x) => (isNum(x) ? `${(x * 100).toFixed(1)} %` : '—');
  function fmtTs(ms) {
    if (!isNum(ms)) return '—';
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }
  function fmtClock(ms) {
    if (!isNum(ms)) return '—';
    return new Date(ms).toISOString().slice(11, 19) + 'Z';
  }
  const fmtRange = (a, b) => `[${fmtNum(a)}, ${b == null ? '…' : fmtNum(b)})`;
  const scalar = (v) => (Array.isArray(v) ? v[0] : v);
  const num = (v) => (isNum(v) ? v : null);

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  // ---------------------------------------------------------------- local settings

  const analyst = () => (localStorage.getItem(LS_ANALYST) || '').trim();
  // Without tokens the service records a name as given, marked as nobody's proof of it.
  const sameAuthor = (author, me) => author === me || author === `${me} (unauthenticated)`;
  // The API token (auth.mode = tokens) lives in sessionStorage: it leaves with the tab.
  const LS_TOKEN = 'driftwatch.token';
  const apiToken = () => (sessionStorage.getItem(LS_TOKEN) || '').trim();
  function setAnalyst(name) {
    localStorage.setItem(LS_ANALYST, name.trim());
    window.dispatchEvent(new CustomEvent('analyst-changed'));
  }
  function overlayPrefs() {
    try { return JSON.parse(localStorage.getItem(LS_OVERLAYS) || '{}') || {}; } catch { return {}; }
  }
  function setOverlayPref(key, on) {
    const p = overlayPrefs();
    p[key] = on;
    localStorage.setItem(LS_OVERLAYS, JSON.stringify(p));
  }

  // ---------------------------------------------------------------- API client

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** Calls the service; resolves to the parsed JSON (or null), rejects with ApiError. */
  async function api(path, { method = 'GET', body, signal } = {}) {
    const init = { method, signal, cache: 'no-store', headers: { accept: 'application/json' } };
    if (apiToken()) init.headers.authorization = `Bearer ${apiToken()}`;
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(API_ROOT + path, init);
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network', `The service did not answer (${e && e.message ? e.message : e}).`);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!apiToken()) tokenBox(res.status === 401);
    if (res.status === 401) {
      throw new ApiError(401, 'unauthorized',
        'This service needs an API token: paste yours (from `driftwatch token create`) in the Token field at the top and Save.');
    }
    if (!res.ok) {
      const err = data && data.error;
      throw new ApiError(res.status, (err && err.code) || `http_${res.status}`,
        (err && err.message) || `${method} /${path.split('?')[0]} failed with HTTP ${res.status}`);
    }
    return data;
  }

  /** Shows the Token field once the service asks for a token (or one is saved); hides it while
   *  the service answers without one (auth.mode = open). */
  function tokenBox(needed) {
    const show = needed || Boolean(apiToken());
    for (const e of [$('#api-token'), $('label[for=api-token]')]) if (e) e.hidden = !show;
  }

  const projectPath = (p, rest = '') => `v1/labeling/projects/${enc(p)}${rest}`;

  // ---------------------------------------------------------------- banner (errors) and toast (info)

  function showError(message, code = '', title = 'Error') {
    $('#banner-title').textContent = title;
    $('#banner-message').textContent = message;
    $('#banner-code').textContent = code;
    $('#banner-code').hidden = !code;
    $('#banner').hidden = false;
  }
  function hideError() { $('#banner').hidden = true; }

  /** Shows an error from anything thrown; aborted requests (view left) are ignored. */
  function report(err) {
    if (!err || err.name === 'AbortError') return;
    if (err instanceof ApiError) showError(err.message, err.code);
    else showError(String(err && err.message ? err.message : err), 'client');
  }

  let toastTimer = 0;
  function toast(message) {
    const t = $('#toast');
    t.textContent = message;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  // ---------------------------------------------------------------- view context (timers, charts, aborts)

  /** Everything a view starts, so leaving the view stops it. */
  function newContext() {
    const ac = new AbortController();
    const timers = new Set();
    const cleanups = [];
    return {
      signal: ac.signal,
      get alive() { return !ac.signal.aborted; },
      after(fn, ms) {
        const id = setTimeout(() => { timers.delete(id); if (!ac.signal.aborted) fn(); }, ms);
        timers.add(id);
        return id;
      },
      cancel(id) { clearTimeout(id); timers.delete(id); },
      onDispose(fn) { cleanups.push(fn); },
      listen(target, type, fn, opts = {}) { target.addEventListener(type, fn, { ...opts, signal: ac.signal }); },
      dispose() {
        ac.abort();
        for (const id of timers) clearTimeout(id);
        timers.clear();
        while (cleanups.length) {
          try { cleanups.pop()(); } catch { /* a chart already gone */ }
        }
      },
    };
  }

  /** A uPlot sized to its container's width, resized with it, destroyed with the view. */
  function makeChart(ctx, container, opts, data) {
    const width = Math.max(200, container.clientWidth || 600);
    const u = new uPlot({ ...opts, width }, data, container);
    const ro = new ResizeObserver(() => {
      const w = Math.max(200, container.clientWidth);
      if (Math.abs(w - u.width) > 1) u.setSize({ width: w, height: opts.height });
    });
    ro.observe(container);
    let gone = false;
    const destroy = () => {
      if (gone) return;
      gone = true;
      ro.disconnect();
      u.destroy();
    };
    ctx.onDispose(destroy);
    u.dispose = destroy;
    return u;
  }

  function chartColors() {
    return {
      axis: cssVar('--chart-axis', '#555'),
      grid: cssVar('--chart-grid', 'rgba(0,0,0,.08)'),
      value: cssVar('--chart-value', '#1f5fa8'),
      band: cssVar('--chart-band', 'rgba(31,95,168,.25)'),
      probability: cssVar('--chart-prob', '#c2410c'),
      seeds: [1, 2, 3, 4, 5, 6].map((i) => cssVar(`--chart-seed-${i}`, '#888')),
      votes: cssVar('--chart-votes', '#6b21a8'),
      context: cssVar('--shade-context', 'rgba(0,0,0,.06)'),
      normal: cssVar('--shade-normal', 'rgba(22,163,74,.16)'),
      anomaly: cssVar('--shade-anomaly', 'rgba(220,38,38,.22)'),
      mark: cssVar('--shade-mark', 'rgba(234,88,12,.28)'),
      markEdge: cssVar('--shade-mark-edge', '#ea580c'),
      windowEdge: cssVar('--shade-window-edge', 'rgba(0,0,0,.45)'),
      current: cssVar('--shade-current', 'rgba(37,99,235,.16)'),
      interval: cssVar('--shade-interval', 'rgba(234,179,8,.25)'),
      confirmed: cssVar('--shade-confirmed', 'rgba(220,38,38,.25)'),
      dismissed: cssVar('--shade-dismissed', 'rgba(100,116,139,.18)'),
      focus: cssVar('--shade-focus', 'rgba(37,99,235,.25)'),
    };
  }

  /** `#rrggbb` with an alpha (other colour syntaxes are returned as they are). */
  function withAlpha(color, alpha) {
    const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
    return m ? `rgba(${parseInt(m[1], 16)}, ${parseInt(m[2], 16)}, ${parseInt(m[3], 16)}, ${alpha})` : color;
  }

  function axis(colors, extra = {}) {
    return { stroke: colors.axis, grid: { stroke: colors.grid, width: 1 }, ticks: { stroke: colors.grid, width: 1 }, ...extra };
  }

  /** Fills [x0, x1] (in x-scale values) over the plotting area. */
  function shadeX(u, x0, x1, fill, edge) {
    const c = u.ctx;
    const { top, height, left, width } = u.bbox;
    let a = u.valToPos(x0, 'x', true);
    let b = u.valToPos(x1, 'x', true);
    if (b < left || a > left + width) return; // outside the visible range
    a = Math.max(left, Math.min(left + width, a));
    b = Math.max(left, Math.min(left + width, b));
    if (b - a < 2) b = a + 2; // a short interval on a long series stays visible
    c.save();
    c.fillStyle = fill;
    c.fillRect(a, top, b - a, height);
    if (edge) {
      c.strokeStyle = edge;
      c.lineWidth = Math.max(1, devicePixelRatio);
      c.beginPath();
      c.moveTo(a, top); c.lineTo(a, top + height);
      c.moveTo(b, top); c.lineTo(b, top + height);
      c.stroke();
    }
    c.restore();
  }

  /** Points of GET /v1/series/{name}/points as uPlot columns: x (ms), then per dimension either
   * a value line (raw) or a min and a max line (downsampled buckets). */
  function overviewColumns(resp, maxDims = 3) {
    if (resp && resp.downsampled) {
      const b = resp.buckets || [];
      const dims = Math.min(maxDims, b.length ? b[0].min.length : 1);
      const cols = [b.map((x) => Math.floor((x.from + x.to) / 2))];
      for (let j = 0; j < dims; j++) {
        cols.push(b.map((x) => x.min[j]));
        cols.push(b.map((x) => x.max[j]));
      }
      return { downsampled: true, dims, cols };
    }
    const p = (resp && resp.points) || [];
    const dims = Math.min(maxDims, p.length ? [].concat(p[0][1]).length : 1);
    const cols = [p.map((x) => x[0])];
    for (let j = 0; j < dims; j++) cols.push(p.map((x) => [].concat(x[1])[j]));
    return { downsampled: false, dims, cols };
  }

  function overviewSeries(ov, colors) {
    const series = [{ label: 'time', value: (u, v) => (v == null ? '—' : fmtTs(v)) }];
    const bands = [];
    for (let j = 0; j < ov.dims; j++) {
      const stroke = j === 0 ? colors.value : colors.seeds[j % colors.seeds.length];
      const dim = ov.dims > 1 ? ` ${j}` : '';
      if (ov.downsampled) {
        series.push({ label: `min${dim}`, stroke, width: 1 });
        series.push({ label: `max${dim}`, stroke, width: 1 });
        bands.push({ series: [series.length - 1, series.length - 2], fill: colors.band });
      } else {
        series.push({ label: `value${dim}`, stroke, width: 1 });
      }
    }
    return { series, bands };
  }

  const overviewCache = new Map(); // series name -> {at, promise}
  /** The whole-series overview, downsampled by the server (never the raw series). */
  function fetchOverview(name, signal) {
    const hit = overviewCache.get(name);
    if (hit && Date.now() - hit.at < 60_000) return hit.promise;
    const promise = api(`v1/series/${enc(name)}/points?max_points=${OVERVIEW_POINTS}`, { signal });
    overviewCache.set(name, { at: Date.now(), promise });
    promise.catch(() => overviewCache.delete(name));
    return promise;
  }

  // ---------------------------------------------------------------- header: analyst name

  function initAnalystForm() {
    const form = $('#analyst-form');
    const input = $('#analyst-name');
    const show = () => {
      const name = analyst();
      input.value = name;
      $('#analyst-current').textContent = name ? `labeling as ${name}` : 'not set';
      form.classList.toggle('missing', !name);
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const name = input.value.trim();
      if (!name) { input.focus(); return; }
      const token = $('#api-token').value.trim();
      if (token) sessionStorage.setItem(LS_TOKEN, token);
      $('#api-token').value = '';
      $('#api-token').placeholder = apiToken() ? 'token saved' : 'only if required';
      setAnalyst(name);
      toast(`Analyst name saved: ${name}`);
      $('#view').focus({ preventScroll: true }); // leave the form so the page's shortcuts work
    });
    window.addEventListener('analyst-changed', show);
    show();
  }

  /** Author of writes, or null after asking the user to set it. */
  function requireAnalyst() {
    const name = analyst();
    if (!name) {
      showError('Enter your analyst name (top right) first: every label and veto records who made it.', 'no_analyst');
      $('#analyst-name').focus();
      return null;
    }
    return name;
  }

  // ---------------------------------------------------------------- router

  let active = null;
  function route() {
    if (active) active.dispose();
    hideError();
    const view = $('#view');
    view.replaceChildren();
    view.removeAttribute('aria-busy');
    const ctx = newContext();
    active = ctx;
    const hash = location.hash || '#/';
    let m;
    if ((m = hash.match(/^#\/projects\/([^/]+)\/?$/))) labelingView(view, ctx, decodeURIComponent(m[1]));
    else if ((m = hash.match(/^#\/series\/([^/]+)\/?$/))) intervalView(view, ctx, decodeURIComponent(m[1]));
    else projectsView(view, ctx);
    if (document.activeElement && document.activeElement !== document.body && !view.contains(document.activeElement)) {
      view.focus({ preventScroll: true }); // keyboard focus follows the navigation
    }
    document.querySelectorAll('.topbar nav a').forEach((a) => {
      if (a.getAttribute('href') === '#/' && !m) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    });
  }

  // ================================================================ #/ projects

  function statusBadge(status) {
    return h('span', { class: `badge status-${status || 'unknown'}`, testid: 'status-badge' }, status || 'unknown');
  }

  function projectsView(root, ctx) {
    document.title = 'driftwatch · projects';
    const list = h('div', { id: 'project-list', testid: 'project-list', 'aria-live': 'polite' }, h('p', { class: 'empty' }, 'Loading projects…'));
    const seriesBox = h('div', { id: 'series-options', class: 'series-options', testid: 'series-options' }, h('p', { class: 'empty' }, 'Loading series…'));
    const filter = h('input', { id: 'series-filter', type: 'search', placeholder: 'filter series', 'aria-label': 'Filter series', testid: 'series-filter' });
    const chosen = h('span', { id: 'series-chosen', class: 'muted', testid: 'series-chosen' }, '0 chosen');
    const form = h('form', { id: 'project-form', class: 'card form', testid: 'project-form', novalidate: true },
      h('h2', null, 'New project'),
      h('div', { class: 'row' },
        h('label', { for: 'project-name' }, 'Name'),
        h('input', { id: 'project-name', name: 'name', required: true, maxlength: 100, pattern: '[A-Za-z0-9._\\-]+',
          placeholder: 'e.g. cpu-spikes', testid: 'project-name', autocomplete: 'off' })),
      h('div', { class: 'row' },
        h('label', { for: 'project-budget' }, 'Label budget'),
        h('input', { id: 'project-budget', name: 'budget', type: 'number', min: 1, max: 10000, step: 1, value: 50, required: true, testid: 'project-budget' }),
        h('span', { class: 'muted' }, 'windows the analysts will label')),
      h('fieldset', { class: 'series-pick' },
        h('legend', null, 'Series ', chosen),
        filter, seriesBox),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'primary', id: 'project-create', testid: 'project-create' }, 'Create project')));

    root.append(
      h('section', { class: 'page', testid: 'projects-view' },
        h('h1', null, 'Labeling projects'),
        h('section', { class: 'card' }, list),
        form));

    let seriesRows = [];
    const updateChosen = () => {
      const n = seriesBox.querySelectorAll('input[type=checkbox]:checked').length;
      chosen.textContent = `${n} chosen`;
    };
    ctx.listen(seriesBox, 'change', updateChosen);
    ctx.listen(filter, 'input', () => {
      const q = filter.value.trim().toLowerCase();
      for (const r of seriesRows) r.el.hidden = !!q && !r.name.toLowerCase().includes(q);
    });

    api('v1/series', { signal: ctx.signal }).then((res) => {
      const all = (res && res.series) || [];
      seriesBox.replaceChildren();
      if (!all.length) {
        seriesBox.append(h('p', { class: 'empty', testid: 'series-empty' },
          'No series yet: ingest points (POST /v1/points or `driftwatch replay`) first.'));
        return;
      }
      seriesRows = all.map((s) => {
        const id = `series-opt-${s.name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
        const multi = isNum(s.dim) && s.dim !== 1; // labeling takes one value per point
        const el = h('div', { class: 'series-option', testid: 'series-option-row', dataset: { series: s.name } },
          h('input', { type: 'checkbox', id, name: 'series', value: s.name, testid: 'series-option', disabled: multi }),
          h('label', { for: id }, s.name),
          s.stored_points > 0 ? h('span', { class: 'muted' }, `${fmtNum(s.stored_points)} points`) : null,
          multi ? h('span', { class: 'muted' }, `${s.dim} values per point: cannot be labeled`) : null,
          s.latest_change ? h('span', { class: 'muted' }, `latest change ${fmtTs(s.latest_change.start_ts)}`) : null,
          h('a', { href: `#/series/${enc(s.name)}`, testid: 'series-intervals-link' }, 'intervals'));
        return { name: s.name, el };
      });
      seriesBox.append(...seriesRows.map((r) => r.el));
    }).catch(report);

    const renderProjects = (projects) => {
      list.replaceChildren();
      if (!projects.length) {
        list.append(h('p', { class: 'empty', testid: 'projects-empty' }, 'No projects yet: create one below from the series to label.'));
        return;
      }
      const rows = projects.map((p) => h('tr', { testid: 'project-row', dataset: { name: p.name, status: p.status } },
        h('th', { scope: 'row' }, h('a', { href: `#/projects/${enc(p.name)}`, testid: 'project-link' }, p.name)),
        h('td', null, statusBadge(p.status),
          p.status === 'ready' && p.status_here && p.status_here !== 'ready' ? h('div', { class: 'muted small' }, 'loads on first use') : null,
          p.status === 'failed' && p.error ? h('div', { class: 'muted small' }, p.error) : null),
        h('td', null, (p.series || []).map((s) => (typeof s === 'string' ? s : s.name)).join(', ')),
        h('td', { class: 'num' }, `${fmtNum(p.labels_used)} / ${fmtNum(p.budget)}`),
        h('td', { class: 'num' }, fmtNum(p.anomalies_found)),
        h('td', { class: 'num' }, p.model_version == null ? '—' : `v${p.model_version}`),
        h('td', { class: 'small' }, `${p.created_by || '—'}, ${fmtTs(p.created_at)}`)));
      list.append(h('table', { class: 'table' },
        h('thead', null, h('tr', null, ['Project', 'Status', 'Series', 'Labels / budget', 'Anomalous points', 'Model', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, rows)));
    };

    const loadProjects = () => api('v1/labeling/projects', { signal: ctx.signal }).then((res) => {
      const projects = (res && res.projects) || [];
      renderProjects(projects);
      if (projects.some((p) => p.status === 'preparing')) ctx.after(() => loadProjects().catch(report), POLL_PROJECTS_MS);
    });
    loadProjects().catch(report);

    ctx.listen(form, 'submit', async (e) => {
      e.preventDefault();
      hideError();
      const author = requireAnalyst();
      if (!author) return;
      const name = $('#project-name').value.trim();
      const budget = Number($('#project-budget').value);
      const chosenSeries = [...seriesBox.querySelectorAll('input[type=checkbox]:checked')].map((c) => c.value);
      if (!/^[A-Za-z0-9._-]{1,100}$/.test(name)) { showError('Project name: 1 to 100 letters, digits, dots, dashes or underscores.', 'invalid_project'); $('#project-name').focus(); return; }
      if (!Number.isInteger(budget) || budget < 1 || budget > 10000) { showError('The budget is a whole number of windows, 1 to 10000.', 'invalid_project'); $('#project-budget').focus(); return; }
      if (!chosenSeries.length) { showError('Choose at least one series.', 'invalid_project'); filter.focus(); return; }
      const btn = $('#project-create');
      btn.disabled = true;
      try {
        const p = await api('v1/labeling/projects', { method: 'POST', body: { name, series: chosenSeries, budget, author }, signal: ctx.signal });
        toast(`Project ${p && p.name ? p.name : name} created: preparing the pool…`);
        location.hash = `#/projects/${enc(name)}`;
      } catch (err) {
        report(err);
      } finally {
        btn.disabled = false;
      }
    });
  }

  // ================================================================ #/projects/{name} labeling

  function labelingView(root, ctx, P) {
    document.title = `driftwatch · ${P}`;
    const S = {
      project: null,
      round: null,
      stop: null,
      suggestions: [],
      current: null,
      window: null,
      marks: new Map(), // suggestion id -> [[a, b), ...] sorted, disjoint
      busy: false,
      progress: null,
      lfs: [],
      chart: null,
      charts: [],
      overview: null,
      refitTimer: 0,
      started: false,
    };
    const onPref = (key, dflt) => {
      const p = overlayPrefs();
      return key in p ? !!p[key] : dflt;
    };

    // ---- skeleton
    const el = {};
    el.status = h('span', { id: 'project-status', testid: 'project-status' });
    el.empty = h('div', { id: 'labeling-empty', class: 'empty-state', testid: 'labeling-empty', role: 'status', hidden: true });
    el.whyTitle = h('h2', { id: 'why-title' }, 'Suggestion');
    el.why = h('div', { class: 'why-grid' });
    el.current = h('section', { id: 'suggestion-current', class: 'card', testid: 'suggestion-current', 'aria-labelledby': 'why-title' }, el.whyTitle, el.why);
    el.marks = h('ul', { id: 'marked-ranges', class: 'marks', testid: 'marked-ranges', 'aria-live': 'polite', 'aria-label': 'Anomalous ranges marked in this window' });
    el.markStart = h('input', { id: 'mark-start', type: 'number', step: 1, 'aria-label': 'Range start (index)', testid: 'mark-start', placeholder: 'start' });
    el.markEnd = h('input', { id: 'mark-end', type: 'number', step: 1, 'aria-label': 'Range end (index, exclusive)', testid: 'mark-end', placeholder: 'end' });
    el.markForm = h('form', { id: 'mark-form', class: 'inline-form', testid: 'mark-form' },
      h('span', { class: 'muted' }, 'or type a range'), el.markStart, el.markEnd,
      h('button', { type: 'submit', testid: 'mark-add' }, 'Add range'));
    el.actionSlot = h('div', { class: 'action-slot' });
    el.overlays = h('fieldset', { class: 'overlays', testid: 'overlay-toggles' }, h('legend', null, 'Show'));
    el.chart = h('div', { id: 'window-chart', class: 'chart', testid: 'window-chart', role: 'application', tabindex: 0,
      'aria-label': 'Window chart: drag to mark an anomalous range, click a marked range to remove it' });
    el.overview = h('div', { id: 'overview-chart', class: 'chart overview', testid: 'overview-chart', 'aria-label': 'Whole series overview (downsampled) with the window marked' });
    el.chartCard = h('section', { class: 'card chart-card', 'aria-labelledby': 'chart-title' },
      h('div', { class: 'chart-head' }, h('h2', { id: 'chart-title' }, 'Window and context'), el.overlays),
      el.chart,
      el.actionSlot,
      el.marks, el.markForm,
      h('ul', { class: 'shade-legend', 'aria-label': 'Shading' },
        h('li', null, h('span', { class: 'swatch sw-context' }), 'context (not labeled by Submit)'),
        h('li', null, h('span', { class: 'swatch sw-mark' }), 'marked anomalous (pending)'),
        h('li', null, h('span', { class: 'swatch sw-normal' }), 'labeled normal'),
        h('li', null, h('span', { class: 'swatch sw-anomaly' }), 'labeled anomaly')),
      h('p', { class: 'hint' }, 'Drag across the chart to mark an anomalous range (several allowed); click a marked range to remove it. ',
        'Submit labels every other point of the window normal.'),
      h('h3', { class: 'small-title' }, 'Whole series'),
      el.overview);
    el.work = h('div', { id: 'labeling-work', testid: 'labeling-work', hidden: true }, el.current, el.chartCard);

    const btn = (id, testid, label, key, cls) => h('button', { type: 'button', id, testid, class: cls, 'aria-keyshortcuts': key.aria },
      label, ' ', h('kbd', null, key.text));
    el.submit = btn('btn-submit', 'submit', 'Submit', { text: 'Enter', aria: 'Enter' }, 'primary');
    el.skip = btn('btn-skip', 'skip', 'Skip', { text: 's', aria: 's' });
    el.undo = btn('btn-undo', 'undo', 'Undo', { text: 'u', aria: 'u Control+z' });
    el.clear = btn('btn-clear', 'clear-marks', 'Clear marks', { text: 'Esc', aria: 'Escape' });
    el.actions = h('div', { class: 'actions toolbar', testid: 'actions', role: 'toolbar', 'aria-label': 'Labeling actions' },
      el.submit, el.skip, el.undo, el.clear);
    el.emptySlot = h('div', { class: 'action-slot' });
    el.list = h('ol', { id: 'suggestion-list', class: 'suggestions', testid: 'suggestion-list' });
    el.listCard = h('section', { class: 'card', 'aria-labelledby': 'list-title' }, h('h2', { id: 'list-title' }, 'Suggestions for you'), el.list);
    el.shortcuts = h('section', { class: 'card shortcuts', testid: 'shortcuts', 'aria-labelledby': 'keys-title' },
      h('h2', { id: 'keys-title' }, 'Keyboard'),
      h('dl', null,
        [['Enter', 'submit: marked ranges anomalous, the rest of the window normal'], ['s', 'skip this window'],
          ['u  /  Ctrl+Z', 'undo your newest label'], ['Esc', 'clear the marked ranges'],
          ['1 … 5', 'open suggestion 1 … 5'], ['drag', 'mark a range on the chart'], ['click', 'remove a marked range']]
          .map(([k, d]) => [h('dt', null, h('kbd', null, k)), h('dd', null, d)])));

    // side panel
    el.stats = h('dl', { class: 'stats', testid: 'progress-stats' });
    el.curve = h('div', { id: 'curve-chart', class: 'chart curve', testid: 'curve-chart' });
    el.refit = h('button', { type: 'button', id: 'btn-refit', testid: 'refit' }, 'Refit model');
    el.refitState = h('span', { id: 'refit-state', class: 'muted', testid: 'refit-state', 'aria-live': 'polite' });
    el.progress = h('section', { id: 'progress-panel', class: 'card', testid: 'progress-panel', 'aria-labelledby': 'progress-title' },
      h('h2', { id: 'progress-title' }, 'Progress'), el.stats, el.curve,
      h('div', { class: 'actions' }, el.refit, el.refitState),
      h('div', { class: 'actions export' }, h('span', { class: 'muted small' }, 'Export labels: '),
        h('button', { type: 'button', testid: 'export-csv', onclick: () => exportLabels('csv').catch(report) }, 'CSV'),
        h('button', { type: 'button', testid: 'export-json', onclick: () => exportLabels('json').catch(report) }, 'JSON')));
    /** Downloads every label in force (runs of anomalous and normal points with their times). */
    async function exportLabels(format) {
      const init = { cache: 'no-store', headers: {} };
      if (apiToken()) init.headers.authorization = `Bearer ${apiToken()}`;
      const res = await fetch(API_ROOT + projectPath(P, `/export?format=${format}`), init);
      if (!res.ok) {
        let message = `export failed with HTTP ${res.status}`;
        try { message = JSON.parse(await res.text()).error.message; } catch { /* keep the status */ }
        throw new ApiError(res.status, 'export', message);
      }
      const url = URL.createObjectURL(await res.blob());
      const a = h('a', { href: url, download: `${P}-labels.${format}`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 5000);
    }
    el.lfBody = h('tbody');
    el.lfEmpty = h('p', { class: 'empty', hidden: true }, 'No labeling functions yet.');
    el.lfPanel = h('section', { id: 'lf-panel', class: 'card', testid: 'lf-panel', 'aria-labelledby': 'lf-title' },
      h('h2', { id: 'lf-title' }, 'Labeling functions'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table compact' },
        h('thead', null, h('tr', null, ['LF', 'Coverage', 'Accuracy', ''].map((c) => h('th', { scope: 'col' }, c)))),
        el.lfBody)), el.lfEmpty,
      h('p', { class: 'hint' }, 'Accuracy: learned by the label model (golden: against the labels-only model). A vetoed LF is kept but left out of the label model.'));
    el.recent = h('ol', { id: 'recent-labels', class: 'recent', testid: 'recent-labels' });
    el.recentCard = h('section', { class: 'card', 'aria-labelledby': 'recent-title' }, h('h2', { id: 'recent-title' }, 'Recent labels'), el.recent);

    root.append(h('div', { class: 'labeling', id: 'labeling-view', testid: 'labeling-view', dataset: { project: P } },
      h('div', { class: 'page-head' },
        h('h1', null, 'Project ', h('span', { class: 'mono' }, P)), el.status,
        h('a', { href: '#/', class: 'back' }, '← all projects')),
      h('div', { class: 'lab-grid' },
        h('div', { class: 'lab-main' }, el.empty, el.emptySlot, el.work, el.listCard, el.shortcuts),
        h('aside', { class: 'lab-side', 'aria-label': 'Model and labeling functions' }, el.progress, el.lfPanel, el.recentCard))));

    // ---- small state helpers
    const currentMarks = () => (S.current ? S.marks.get(S.current.id) || [] : []);
    const setBusy = (on) => {
      S.busy = on;
      root.setAttribute('aria-busy', on ? 'true' : 'false');
      updateButtons();
    };
    const updateButtons = () => {
      const ready = S.project && S.project.status === 'ready';
      el.submit.disabled = S.busy || !S.current || !S.window;
      el.skip.disabled = S.busy || !S.current || Boolean(S.current.free);
      el.clear.disabled = !currentMarks().length;
      el.undo.disabled = S.busy || !ready;
      el.refit.disabled = !ready || (S.progress && S.progress.refit === 'running');
    };
    const showEmpty = (message, stop) => {
      el.empty.replaceChildren(h('p', null, message));
      el.empty.dataset.stop = stop || '';
      el.empty.hidden = false;
      el.work.hidden = true;
      el.emptySlot.append(el.actions); // Undo stays at hand when there is nothing to label
    };
    const hideEmpty = () => {
      el.empty.hidden = true;
      el.work.hidden = false;
      el.actionSlot.append(el.actions);
    };

    async function guarded(fn) {
      if (S.busy) return;
      setBusy(true);
      try { await fn(); } catch (err) { await handleWriteError(err); } finally { if (ctx.alive) setBusy(false); }
    }

    async function handleWriteError(err) {
      if (err && err.name === 'AbortError') return;
      if (err instanceof ApiError && err.status === 409 && WINDOW_CONFLICTS.includes(err.code)) {
        const what = err.code === 'stale_round' ? 'This window changed since it was suggested' : 'This suggestion is no longer yours to label';
        showError(`${what} (${err.message}). The suggestions were reloaded: check the new window before submitting.`,
          err.code, 'Window changed');
        await Promise.all([loadProgress(), loadLabels()]).catch(report);
        await loadSuggestions({ forceWindow: true }).catch(report);
        return;
      }
      if (err instanceof ApiError && err.code === 'not_ready') {
        report(err);
        waitForPool();
        return;
      }
      report(err);
    }

    // ---- project
    const LOADING_TEXT = 'The project is loading on this server (rebuilding its labeling pool). This page starts by itself when it is ready.';
    /** A labeling call answered not_ready: show it, and start over once the pool is back. */
    function waitForPool() {
      S.started = false;
      S.current = null;
      S.window = null;
      destroyChart();
      showEmpty(LOADING_TEXT, 'preparing');
      updateButtons();
      ctx.after(() => loadProject().catch(report), POLL_PREPARING_MS);
    }

    async function loadProject() {
      let p;
      try {
        p = await api(projectPath(P), { signal: ctx.signal });
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          showEmpty(`There is no project named ${P}.`, 'not_found');
          el.empty.append(h('p', null, h('a', { href: '#/' }, 'All projects')));
          return;
        }
        throw err;
      }
      // `status` is the project's; `status_here` whether this instance has its pool in memory.
      if (p.status === 'ready' && p.status_here && !['ready', 'failed'].includes(p.status_here)) p.status = 'loading';
      else if (p.status_here === 'failed') p.status = 'failed';
      S.project = p;
      el.status.replaceChildren(statusBadge(p.status));
      updateButtons();
      if (p.status === 'loading') {
        showEmpty(LOADING_TEXT, 'preparing');
        if (p.status_here === 'not_loaded') {
          // any labeling call starts the load; it answers 409 not_ready meanwhile
          api(projectPath(P, `/progress`), { signal: ctx.signal }).catch(() => {});
        }
        ctx.after(() => loadProject().catch(report), POLL_PREPARING_MS);
        return;
      }
      if (p.status === 'preparing') {
        const pts = (p.series || []).reduce((n, x) => n + (x.points || 0), 0);
        const est = isNum(p.prepare_estimate_ms) ? Math.max(1, Math.round(p.prepare_estimate_ms / 1000)) : null;
        const since = isNum(p.created_at) ? Math.max(0, Math.round((Date.now() - p.created_at) / 1000)) : null;
        showEmpty(`The project is preparing: the labeling pool (features, seed detectors, candidate windows) of ${fmtNum(pts)} points is being built` +
          `${est ? `, about ${fmtNum(est)} s in all on one core` : ''}${since != null && p.status === 'preparing' ? ` (started ${fmtNum(since)} s ago)` : ''}. ` +
          'This page starts by itself when it is ready.', 'preparing');
        ctx.after(() => loadProject().catch(report), POLL_PREPARING_MS);
        return;
      }
      if (p.status === 'failed') {
        showEmpty(`Preparing the project failed: ${p.error || 'no reason given'}.`, 'failed');
        return;
      }
      if (!S.started) {
        S.started = true;
        await Promise.all([loadSuggestions({}), loadProgress(), loadLfs(), loadLabels()]);
      }
    }

    // ---- suggestions
    async function loadSuggestions({ prefer, keep, forceWindow } = {}) {
      const name = analyst();
      let res;
      try {
        res = await api(projectPath(P, `/suggestions?analyst=${enc(name)}&limit=${SUGGESTION_LIMIT}`), { signal: ctx.signal });
      } catch (err) {
        if (err instanceof ApiError && err.code === 'not_ready') { // this server reloads the pool: wait for it
          waitForPool();
          return;
        }
        throw err;
      }
      S.round = res.round;
      S.modelVersion = res.model_version;
      S.stop = res.stop || null;
      S.suggestions = res.suggestions || [];
      let next = null;
      if (prefer) next = S.suggestions.find(prefer) || null;
      if (!next && keep && S.current) next = S.suggestions.find((s) => s.id === S.current.id) || null;
      if (!next) next = S.suggestions[0] || null;
      await select(next, { forceWindow });
    }

    async function select(s, { forceWindow } = {}) {
      const changed = !S.current || !s || S.current.id !== s.id;
      S.current = s;
      renderList();
      if (!s) {
        S.window = null;
        destroyChart();
        showNoSuggestion();
        updateButtons();
        return;
      }
      hideEmpty();
      renderWhy();
      renderMarks();
      if (changed || forceWindow || !S.window) await loadWindow(s);
      updateButtons();
    }

    function showNoSuggestion() {
      const used = S.progress ? `${fmtNum(S.progress.labels_used)} of ${fmtNum(S.progress.budget)} labels used. ` : '';
      const msg = {
        budget: `No suggestions: the budget is spent. ${used}Undo a label to free budget, or refit for the final model.`,
        stable: 'No suggestions: the model is stable, so further labels are unlikely to change it.',
        no_candidate: 'No suggestions: every candidate window is labeled, skipped this round or claimed by another analyst.',
      }[S.stop] || 'No suggestions right now.';
      showEmpty(msg, S.stop || 'none');
    }

    async function loadWindow(s) {
      S.window = null;
      updateButtons();
      el.chart.setAttribute('aria-busy', 'true');
      const w = await api(projectPath(P, `/window?series=${enc(s.series)}&start=${s.start}&end=${s.end}&context=${WINDOW_CONTEXT}`), { signal: ctx.signal });
      if (!S.current || S.current.id !== s.id) return; // another suggestion was chosen meanwhile
      S.window = w;
      el.chart.removeAttribute('aria-busy');
      drawWindowChart();
      drawOverview(s.series).catch(report);
      updateButtons();
    }

    function renderWhy() {
      const s = S.current;
      el.current.dataset.id = s.id;
      el.current.dataset.series = s.series;
      el.current.dataset.start = s.start;
      el.current.dataset.end = s.end;
      el.current.dataset.round = S.round;
      // The list's number (what keys 1…9 open), not the rank in its round, which differs once
      // windows of the round are labeled or held by others.
      const pos = S.suggestions.findIndex((x) => x.id === s.id);
      el.whyTitle.dataset.free = s.free ? 'true' : 'false';
      el.whyTitle.textContent = s.free ? 'Your window (not suggested; labeled as source "free")'
        : pos >= 0 ? `Suggestion #${s.id} · ${pos + 1} of ${S.suggestions.length}` : `Suggestion #${s.id}`;
      el.whyTitle.title = `rank ${s.rank + 1} of round ${s.round}`;
      el.whyTitle.dataset.position = pos + 1;
      const noModel = !(S.modelVersion > 0);
      const b = s.breakdown || {};
      const terms = BREAKDOWN_ORDER.filter((k) => k in b).concat(Object.keys(b).filter((k) => !BREAKDOWN_ORDER.includes(k)));
      const top = Math.max(1, ...terms.map((k) => (isNum(b[k]) ? Math.abs(b[k]) : 0)));
      el.why.replaceChildren(
        h('dl', { class: 'kv' },
          h('dt', null, 'Series'), h('dd', null, h('a', { href: `#/series/${enc(s.series)}` }, s.series)),
          h('dt', null, 'Window'), h('dd', { testid: 'why-window' }, `${fmtRange(s.start, s.end)} · ${fmtNum(s.end - s.start)} points`),
          h('dt', null, 'Centre'), h('dd', null, fmtNum(s.centre)),
          h('dt', null, 'Model probability'), noModel
            ? h('dd', { testid: 'why-probability', class: 'muted', dataset: { model: 'none' } }, '— no model fitted yet (ranked by the seed detectors)')
            : h('dd', { testid: 'why-probability' },
              h('meter', { min: 0, max: 1, value: isNum(s.probability) ? s.probability : 0, 'aria-label': 'model probability' }), ' ', fmtPct(s.probability)),
          h('dt', null, 'Score'), h('dd', { testid: 'why-score' }, fmtNum(s.score)),
          h('dt', null, 'Claimed'), h('dd', { class: 'small' }, s.claimed_by ? `for ${s.claimed_by} until ${fmtClock(s.claimed_until)}` : '—'),
          h('dt', null, 'Round'), h('dd', null, fmtNum(S.round))),
        h('div', { class: 'breakdown', testid: 'score-breakdown' },
          h('h3', { class: 'small-title' }, 'Why suggested'),
          terms.length ? terms.map((k) => h('div', { class: 'bar-row', dataset: { term: k } },
            h('span', { class: 'bar-label' }, k.replace(/_/g, ' ')),
            h('meter', { min: 0, max: top, value: isNum(b[k]) ? Math.abs(b[k]) : 0, 'aria-label': k }),
            h('span', { class: 'bar-value num' }, isNum(b[k]) ? b[k].toFixed(3) : '—'))) : h('p', { class: 'muted' }, 'no breakdown')));
    }

    function renderList() {
      el.list.replaceChildren();
      if (!S.suggestions.length) {
        el.list.append(h('li', { class: 'muted' }, 'none'));
        return;
      }
      S.suggestions.forEach((s, i) => {
        const isCur = S.current && S.current.id === s.id;
        const marks = S.marks.get(s.id);
        el.list.append(h('li', null, h('button', {
          type: 'button', class: `suggestion${isCur ? ' current' : ''}`, testid: 'suggestion-item',
          dataset: { id: s.id, series: s.series, start: s.start, end: s.end }, 'aria-current': isCur ? 'true' : null,
          onclick: () => { if (!S.busy) select(s).catch(report); },
        }, h('kbd', null, String(i + 1)), ' ', h('span', { class: 'mono' }, `#${s.id}`), ' ', s.series, ' ', fmtRange(s.start, s.end),
        h('span', { class: 'muted' }, S.modelVersion > 0 ? ` p ${fmtPct(s.probability)} · score ${fmtNum(s.score)}` : ` score ${fmtNum(s.score)}`),
        marks && marks.length ? h('span', { class: 'badge' }, `${marks.length} marked`) : null)));
      });
    }

    // ---- marked ranges
    function addMark(a, b) {
      const s = S.current;
      if (!s) return false;
      a = Math.max(s.start, Math.round(a));
      b = Math.min(s.end, Math.round(b));
      if (!(a < b)) return false;
      const out = [];
      for (const [x, y] of currentMarks()) {
        if (y < a || x > b) out.push([x, y]);
        else { a = Math.min(a, x); b = Math.max(b, y); }
      }
      out.push([a, b]);
      out.sort((p, q) => p[0] - q[0]);
      S.marks.set(s.id, out);
      marksChanged();
      return true;
    }
    function removeMarkAt(i) {
      const idx = currentMarks().findIndex(([a, b]) => i >= a && i < b);
      if (idx < 0) return false;
      const m = currentMarks().slice();
      m.splice(idx, 1);
      S.marks.set(S.current.id, m);
      marksChanged();
      return true;
    }
    function clearMarks() {
      if (!S.current) return;
      S.marks.delete(S.current.id);
      marksChanged();
    }
    function marksChanged() {
      renderMarks();
      renderList();
      redrawCharts();
      updateButtons();
    }
    function renderMarks() {
      const m = currentMarks();
      el.marks.replaceChildren();
      if (!m.length) {
        el.marks.append(h('li', { class: 'muted', testid: 'marks-empty' }, 'No anomalous range marked: Submit labels the whole window normal.'));
      }
      for (const [a, b] of m) {
        el.marks.append(h('li', { testid: 'marked-range', dataset: { start: a, end: b } },
          h('span', { class: 'mono' }, fmtRange(a, b)), ` ${fmtNum(b - a)} points`,
          S.window ? h('span', { class: 'muted' }, ` · ${fmtTs(tsAt(a))} → ${fmtTs(tsAt(b - 1))}`) : null,
          h('button', { type: 'button', class: 'link', testid: 'remove-range', 'aria-label': `Remove range ${fmtRange(a, b)}`,
            onclick: () => { removeMarkAt(a); } }, 'remove')));
      }
      if (S.current) {
        el.markStart.min = el.markEnd.min = S.current.start;
        el.markStart.max = el.markEnd.max = S.current.end;
      }
    }
    const tsAt = (i) => (S.window ? S.window.ts[i - S.window.from] : null);

    ctx.listen(el.markForm, 'submit', (e) => {
      e.preventDefault();
      const a = Number(el.markStart.value);
      const b = Number(el.markEnd.value);
      if (!Number.isInteger(a) || !Number.isInteger(b) || !(a < b) || !S.current || a < S.current.start || b > S.current.end) {
        showError(`A range is two whole indices start < end inside the window ${S.current ? fmtRange(S.current.start, S.current.end) : ''}.`, 'invalid_range');
        return;
      }
      addMark(a, b);
      el.markStart.value = el.markEnd.value = '';
    });

    // ---- window chart: a main pane (value, model probability) over a lane of detector scores and
    // LF votes, cursor-synced, sharing the x scale; both take drags (mark) and clicks (unmark).
    const syncKey = `dw-window-${Math.random().toString(36).slice(2)}`;
    function destroyChart() {
      for (const u of S.charts || []) u.dispose();
      S.charts = [];
      S.chart = null;
      el.chart.replaceChildren();
    }
    const redrawCharts = () => { for (const u of S.charts || []) u.redraw(false); };

    function drawWindowChart() {
      destroyChart();
      const w = S.window;
      const cur = S.current;
      const colors = chartColors();
      const seedNames = Object.keys(w.seeds || {});
      const n = w.index.length;
      const val3 = (u, v) => (v == null ? '—' : v.toFixed(3));
      const xSeries = { label: 'index', value: (u, v) => (v == null ? '—' : `${fmtNum(v)} · ${fmtTs(tsAt(v))}`) };
      const showLabeled = () => onPref('labeled', true);

      const mainSeries = [xSeries,
        { key: 'value', label: 'value', scale: 'y', stroke: colors.value, width: 2, show: onPref('value', true) },
        { key: 'probability', label: 'model probability', scale: 'p', stroke: colors.probability, width: 2,
          show: onPref('probability', true), value: val3 }];
      const mainData = [w.index, w.value.map(scalar), w.probability || new Array(n).fill(null)];
      const laneSeries = [xSeries];
      const laneData = [w.index];
      seedNames.forEach((name, k) => {
        laneSeries.push({ key: `seed:${name}`, label: name, scale: 'p', stroke: colors.seeds[k % colors.seeds.length], width: 1.25,
          show: onPref(`seed:${name}`, true), value: val3 });
        laneData.push(w.seeds[name]);
      });
      if (w.votes && w.votes.anomaly) {
        laneSeries.push({ key: 'votes', label: 'LF votes (anomaly − normal)', scale: 'votes', stroke: colors.votes, width: 1,
          show: onPref('votes', false), paths: uPlot.paths.stepped({ align: 1 }) });
        laneData.push(w.index.map((_, i) => (w.votes.anomaly[i] || 0) - ((w.votes.normal && w.votes.normal[i]) || 0)));
      }

      const diffs = laneData.length > 1 + seedNames.length ? laneData[laneData.length - 1] : [];
      const voteRange = [Math.min(-1, ...diffs), Math.max(1, ...diffs)];
      const drawShading = (u) => {
        if (!S.current || !S.window) return;
        if (w.from < cur.start) shadeX(u, w.from - 0.5, cur.start - 0.5, colors.context);
        if (cur.end < w.to) shadeX(u, cur.end - 0.5, w.to - 0.5, colors.context);
        if (showLabeled() && w.labels) { // runs of already-labeled points
          let i = 0;
          while (i < n) {
            const lab = w.labels[i];
            let j = i + 1;
            while (j < n && w.labels[j] === lab) j++;
            if (lab === 0 || lab === 1) shadeX(u, w.index[i] - 0.5, w.index[j - 1] + 0.5, lab === 1 ? colors.anomaly : colors.normal);
            i = j;
          }
        }
        shadeX(u, cur.start - 0.5, cur.end - 0.5, 'rgba(0,0,0,0)', colors.windowEdge);
        for (const [a, b] of currentMarks()) shadeX(u, a - 0.5, b - 0.5, colors.mark, colors.markEdge);
      };
      const onSelect = (u) => {
        const { left, width } = u.select;
        if (width < 2) return;
        const v0 = u.posToVal(left, 'x');
        const v1 = u.posToVal(left + width, 'x');
        u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
        if (!addMark(Math.ceil(v0), Math.floor(v1) + 1)) toast('That range is outside the suggested window: only the window can be labeled.');
      };
      const defsOf = new Map(); // chart -> its series definitions (uPlot turns strokes into functions)
      const onSetSeries = (u, i) => {
        if (i == null || !defsOf.has(u)) return;
        const key = defsOf.get(u)[i].key;
        const box = el.overlays.querySelector(`input[data-key="${key}"]`);
        if (box) box.checked = u.series[i].show;
        setOverlayPref(key, u.series[i].show);
      };
      const onCursor = (u) => {
        const i = u.cursor.idx;
        u.over.classList.toggle('over-mark', i != null && currentMarks().some(([a, b]) => w.index[i] >= a && w.index[i] < b));
      };
      // x runs over the points (so gaps do not squeeze them); its ticks show each point's time.
      const span = n > 1 ? w.ts[n - 1] - w.ts[0] : 0;
      const tickTime = (ms) => {
        if (!isNum(ms)) return '';
        const iso = new Date(ms).toISOString();
        return span > 86_400_000 ? iso.slice(5, 16).replace('T', ' ') : iso.slice(11, span < 120_000 ? 19 : 16);
      };
      const xAxis = (label) => axis(colors, {
        values: (u, ticks) => ticks.map((t) => tickTime(tsAt(Math.round(t)))), label, labelSize: label ? 20 : 0,
      });
      const common = {
        cursor: { drag: { x: true, y: false, setScale: false, dist: 3 }, points: { size: 6 }, sync: { key: syncKey } },
        select: { show: true },
        legend: { live: true },
        hooks: { drawClear: [drawShading], setSelect: [onSelect], setSeries: [onSetSeries], setCursor: [onCursor] },
      };
      const side = 64; // equal axis widths keep both panes' x positions aligned
      const mainEl = h('div', { class: 'pane pane-main', testid: 'window-main' });
      const laneEl = h('div', { class: 'pane pane-lane', testid: 'window-lane' });
      el.chart.append(mainEl, laneEl);
      const main = makeChart(ctx, mainEl, {
        ...common,
        height: 270,
        scales: { x: { time: false, range: () => [w.from - 0.5, w.to - 0.5] }, p: { range: [0, 1] } },
        axes: [xAxis(''),
          axis(colors, { scale: 'y', label: 'value', labelSize: 20, size: side }),
          axis(colors, { scale: 'p', side: 1, label: 'probability', labelSize: 20, size: side, grid: { show: false } })],
        series: mainSeries,
      }, mainData);
      const lane = makeChart(ctx, laneEl, {
        ...common,
        height: 150,
        // A fixed votes range: an axis whose scale has no shown series collapses, which made this
        // pane's plot wider than the one above and their x positions disagree.
        scales: { x: { time: false, range: () => [w.from - 0.5, w.to - 0.5] }, p: { range: [0, 1] }, votes: { auto: false, range: voteRange } },
        axes: [xAxis('time (UTC)'),
          axis(colors, { scale: 'p', label: 'detector score', labelSize: 20, size: side, values: (u, t) => t.map((x) => x.toFixed(1)) }),
          axis(colors, { scale: 'votes', side: 1, label: 'LF votes', labelSize: 20, size: side, grid: { show: false } })],
        series: laneSeries,
      }, laneData);
      S.charts = [main, lane];
      S.chart = main;
      defsOf.set(main, mainSeries).set(lane, laneSeries);
      Object.assign(el.chart.dataset, { from: w.from, to: w.to, start: cur.start, end: cur.end, xAxis: 'time',
        firstTs: w.ts[0], lastTs: w.ts[n - 1] });
      el.chart.append(h('p', { class: 'muted chart-caption', testid: 'window-time-span' },
        `${fmtTs(w.ts[0])} → ${fmtTs(w.ts[n - 1])} (UTC) · points ${fmtNum(w.from)}–${fmtNum(w.to - 1)}`));

      for (const u of S.charts) {
        // a click (no drag) on a marked range removes it
        let down = null;
        u.over.addEventListener('mousedown', (e) => {
          down = { x: e.clientX };
          el.chart.focus({ preventScroll: true }); // so Enter submits, not a button focused earlier
        });
        u.over.addEventListener('click', (e) => {
          if (!down || Math.abs(e.clientX - down.x) > 3) return;
          removeMarkAt(Math.round(u.posToVal(e.offsetX, 'x')));
        });
      }

      // overlay toggles, one per series of either pane, plus the labeled-points shading
      el.overlays.replaceChildren(h('legend', null, 'Show'));
      for (const u of S.charts) {
        defsOf.get(u).forEach((sr, i) => {
          if (i === 0) return;
          const id = `ov-${sr.key.replace(/[^A-Za-z0-9_-]/g, '_')}`;
          const swatch = h('span', { class: 'swatch sw-line' });
          swatch.style.backgroundColor = sr.stroke; // CSSOM: allowed under style-src 'self'
          el.overlays.append(h('span', { class: 'toggle' },
            h('input', { type: 'checkbox', id, checked: sr.show !== false, testid: 'overlay-toggle', dataset: { key: sr.key },
              onchange: (e) => u.setSeries(i, { show: e.target.checked }) }),
            h('label', { for: id }, swatch, sr.label)));
        });
      }
      el.overlays.append(h('span', { class: 'toggle' },
        h('input', { type: 'checkbox', id: 'ov-labeled', checked: showLabeled(), testid: 'overlay-toggle', dataset: { key: 'labeled' },
          onchange: (e) => { setOverlayPref('labeled', e.target.checked); redrawCharts(); } }),
        h('label', { for: 'ov-labeled' }, 'labeled points')));
    }

    // ---- overview strip
    async function drawOverview(seriesName) {
      const resp = await fetchOverview(seriesName, undefined);
      if (!ctx.alive || !S.window || S.window.series !== seriesName) return;
      const colors = chartColors();
      const ov = overviewColumns(resp, 1);
      if (S.overview) { S.overview.dispose(); S.overview = null; }
      el.overview.replaceChildren();
      if (!ov.cols[0].length) { el.overview.append(h('p', { class: 'muted' }, 'no points')); return; }
      const { series, bands } = overviewSeries(ov, colors);
      const w = S.window;
      const opts = {
        height: 90,
        ms: 1,
        tzDate: (ts) => uPlot.tzDate(new Date(ts), 'Etc/UTC'),
        legend: { show: false },
        cursor: { drag: { x: false, y: false }, points: { show: false } },
        scales: { x: { time: true } },
        axes: [axis(colors, { size: 30 }), axis(colors, { size: 40, ticks: { show: false }, values: () => [] })],
        series,
        bands,
        hooks: {
          drawClear: [(u) => {
            const cur = S.current;
            if (!cur || !S.window) return;
            shadeX(u, w.ts[0], w.ts[w.ts.length - 1], colors.context);
            const a = w.ts[cur.start - w.from];
            const b = w.ts[Math.min(cur.end, w.to) - 1 - w.from];
            shadeX(u, a, b, colors.current, colors.windowEdge);
          }],
        },
      };
      S.overview = makeChart(ctx, el.overview, opts, ov.cols);
      S.overview.over.classList.add('jump');
      S.overview.over.title = 'Click to open the window around that time (a window nobody suggested)';
      S.overview.over.addEventListener('click', (e) => {
        if (S.busy) return;
        jumpTo(seriesName, S.overview.posToVal(e.offsetX, 'x'), ov.cols[0]).catch(report);
      });
    }

    /** Opens a window of the series around time `ts` (from a click on the strip): its index is
     *  first estimated from the strip's times, then set from the window's own times. */
    async function jumpTo(series, ts, times) {
      const ps = (S.project.series || []).find((x) => (x.name || x) === series);
      const n = ps && isNum(ps.points) ? ps.points : null;
      if (!n || !times.length) return;
      const half = Math.min(S.project.half_window || 200, Math.floor(n / 2));
      const t0 = times[0];
      const t1 = times[times.length - 1];
      const at = (i) => ({ id: `free:${series}:${i}`, free: true, series, start: Math.max(0, Math.min(n - 2 * half, i - half)),
        end: Math.min(n, Math.max(2 * half, i + half)), centre: i, breakdown: {}, rank: -1, round: S.round });
      let i = Math.round(((ts - t0) / Math.max(1, t1 - t0)) * (n - 1));
      await select(at(Math.max(0, Math.min(n - 1, i))));
      const w = S.window;
      if (!w || !w.ts.length || (ts >= w.ts[0] && ts <= w.ts[w.ts.length - 1])) return;
      // Outside the window (gaps in time): move to the point nearest the time, once.
      i = ts < w.ts[0] ? Math.max(0, w.from - half) : Math.min(n - 1, w.to - 1 + half);
      await select(at(i));
    }

    // ---- actions
    async function submit() {
      const s = S.current;
      const author = requireAnalyst();
      if (!s || !S.window || !author) return;
      const anomalies = currentMarks().map(([a, b]) => [a, b]);
      await guarded(async () => {
        const res = await api(projectPath(P, '/labels'), { method: 'POST', signal: ctx.signal,
          // A window nobody suggested goes without a suggestion id: stored with source `free`.
          body: { author, round: S.round, suggestion: s.free ? undefined : s.id, series: s.series, start: s.start, end: s.end, anomalies } });
        S.marks.delete(s.id);
        const l = res && res.label;
        toast(`Labeled ${s.series} ${fmtRange(s.start, s.end)}: ${anomalies.length ? `${anomalies.length} anomalous range(s)` : 'all normal'}${l ? ` (label #${l.id})` : ''}.`);
        if (res && isNum(res.round)) S.round = res.round;
        await loadSuggestions({});
        await Promise.all([loadProgress(), loadLfs(), loadLabels()]);
      });
    }

    async function skip() {
      const s = S.current;
      const author = requireAnalyst();
      if (!s || !author) return;
      await guarded(async () => {
        await api(projectPath(P, `/suggestions/${enc(s.id)}/skip`), { method: 'POST', body: { author }, signal: ctx.signal });
        S.marks.delete(s.id);
        toast(`Skipped ${s.series} ${fmtRange(s.start, s.end)}.`);
        await loadSuggestions({});
      });
    }

    async function afterUndo(l) {
      toast(l ? `Undid label #${l.id}: ${l.series} ${fmtRange(l.start, l.end)}.` : 'Undone.');
      const prefer = l ? (s) => s.series === l.series && s.start === l.start && s.end === l.end : null;
      await loadSuggestions({ prefer, keep: true, forceWindow: true });
      await Promise.all([loadProgress(), loadLfs(), loadLabels()]);
    }

    async function undo() {
      const author = requireAnalyst();
      if (!author) return;
      await guarded(async () => {
        let res;
        try {
          res = await api(projectPath(P, '/undo'), { method: 'POST', body: { author }, signal: ctx.signal });
        } catch (err) {
          if (err instanceof ApiError && err.code === 'nothing_to_undo') {
            showError(`Nothing to undo: ${author} has no label in force in this project.`, err.code, 'Undo');
            return;
          }
          throw err;
        }
        await afterUndo(res && res.undone);
      });
    }

    async function undoLabel(l) {
      const author = requireAnalyst();
      if (!author) return;
      await guarded(async () => {
        const res = await api(projectPath(P, `/labels/${enc(l.id)}?author=${enc(author)}`), { method: 'DELETE', signal: ctx.signal });
        await afterUndo((res && res.undone) || l);
      });
    }

    ctx.listen(el.submit, 'click', () => submit());
    ctx.listen(el.skip, 'click', () => skip());
    ctx.listen(el.undo, 'click', () => undo());
    ctx.listen(el.clear, 'click', () => clearMarks());

    ctx.listen(document, 'keydown', (e) => {
      if (e.defaultPrevented || e.altKey || e.isComposing) return;
      const t = e.target;
      const tag = t && t.tagName;
      if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || (t && t.isContentEditable)) return;
      const onControl = tag === 'BUTTON' || tag === 'A' || tag === 'SUMMARY';
      const ctrl = e.ctrlKey || e.metaKey;
      if (e.key === 'Enter' && !ctrl && !e.shiftKey) {
        if (onControl || e.repeat) return; // Enter on a focused button activates that button
        e.preventDefault();
        submit();
      } else if ((e.key === 'u' && !ctrl) || (ctrl && !e.shiftKey && (e.key === 'z' || e.key === 'Z'))) {
        if (e.repeat) return;
        e.preventDefault();
        undo();
      } else if (e.key === 's' && !ctrl) {
        if (e.repeat) return;
        e.preventDefault();
        skip();
      } else if (e.key === 'Escape' && !ctrl) {
        clearMarks();
      } else if (!ctrl && /^[1-9]$/.test(e.key)) {
        const s = S.suggestions[Number(e.key) - 1];
        if (s && !S.busy) { e.preventDefault(); select(s).catch(report); }
      }
    });

    // ---- progress & refit
    async function loadProgress() {
      const p = await api(projectPath(P, '/progress'), { signal: ctx.signal });
      const before = S.progress;
      S.progress = p;
      renderProgress();
      if (S.started && !S.current && S.project && S.project.status === 'ready') showNoSuggestion(); // fresh counts
      updateButtons();
      if (p.refit === 'running') scheduleRefitPoll();
      if (before && isNum(before.model_version) && p.model_version !== before.model_version) {
        toast(`Model v${p.model_version} is ready: suggestions now come from it.`);
        if (S.project && S.project.status === 'ready') {
          loadSuggestions({ keep: true }).catch(report);
          loadLfs().catch(report);
        }
      }
      return p;
    }
    function scheduleRefitPoll() {
      if (S.refitTimer) return;
      S.refitTimer = ctx.after(() => {
        S.refitTimer = 0;
        loadProgress().catch(report);
      }, POLL_REFIT_MS);
    }

    function renderProgress() {
      const p = S.progress;
      const stat = (label, value, testid, extra) => [h('dt', null, label), h('dd', { testid }, value, extra || null)];
      el.stats.replaceChildren(
        ...stat('Labels used', `${fmtNum(p.labels_used)} / ${fmtNum(p.budget)}`, 'stat-labels-used',
          h('progress', { max: Math.max(1, p.budget || 1), value: Math.min(p.labels_used || 0, p.budget || 0), 'aria-label': 'budget used' })),
        ...stat('Anomalous points', fmtNum(p.anomalies_found), 'stat-anomalies'),
        ...stat('Windows labeled', fmtNum(p.windows_labeled), 'stat-windows'),
        ...stat('Model', p.model_version == null ? '—' : `v${p.model_version}`, 'stat-model-version'),
        ...stat('Refit', p.refit === 'running' ? h('span', { class: 'running' }, 'running…') : p.refit || '—', 'stat-refit'));
      el.refitState.textContent = p.refit === 'running' ? 'refit running: polling…' : '';
      el.refit.textContent = p.refit === 'running' ? 'Refitting…' : 'Refit model';
      drawCurve(p.curve || []);
    }

    let curveChart = null;
    function drawCurve(curve) {
      if (curveChart) { curveChart.dispose(); curveChart = null; }
      el.curve.replaceChildren();
      const pts = curve.slice().sort((a, b) => a.version - b.version);
      if (!pts.length) {
        el.curve.append(h('p', { class: 'empty small', testid: 'curve-empty' }, 'No model fitted yet: label a few windows, then Refit.'));
        return;
      }
      const colors = chartColors();
      const byVersion = new Map(pts.map((c) => [c.version, c]));
      const val = (u, v) => (v == null ? '—' : v.toFixed(3));
      curveChart = makeChart(ctx, el.curve, {
        height: 170,
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: false, range: (u, a, b) => [a - 0.5, b + 0.5] }, y: { range: [0, 1] } },
        axes: [
          axis(colors, { size: 28, values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? `v${t}` : '')) }),
          axis(colors, { size: 46 }),
        ],
        series: [
          { label: 'model', value: (u, v) => { const c = byVersion.get(v); return c ? `v${v} · ${c.labels} labels · ${c.anomalies} anomalies${c.end_model ? ` · ${c.end_model}` : ''}` : '—'; } },
          { label: 'AP (labels)', stroke: colors.value, width: 2, points: { show: true }, value: val },
          { label: 'AP (new labels)', stroke: colors.probability, width: 2, points: { show: true }, value: val },
          { label: 'AP best seed', stroke: colors.seeds[2], width: 1, dash: [5, 4], points: { show: true }, value: val },
          { label: 'AP label model', stroke: colors.seeds[1], width: 1, dash: [2, 3], points: { show: true }, value: val,
            show: pts.some((c) => isNum(c.ap_label_model)) },
        ],
      }, [pts.map((c) => c.version), pts.map((c) => num(c.ap_labels)), pts.map((c) => num(c.ap_new_labels)),
        pts.map((c) => num(c.ap_seed_best)), pts.map((c) => num(c.ap_label_model))]);
      curveChart.root.dataset.testid = 'curve-uplot';
    }

    ctx.listen(el.refit, 'click', async () => {
      const author = requireAnalyst();
      if (!author) return;
      el.refit.disabled = true;
      try {
        const r = await api(projectPath(P, '/refit'), { method: 'POST', body: { author }, signal: ctx.signal });
        toast(`Refit ${r && r.refit ? r.refit : 'queued'}: suggestions keep coming from the current model meanwhile.`);
        el.refitState.textContent = `refit ${r && r.refit ? r.refit : 'queued'}: polling…`;
        if (S.progress) S.progress.refit = 'running';
        scheduleRefitPoll();
      } catch (err) {
        report(err);
      } finally {
        updateButtons();
      }
    });

    // ---- labeling functions
    async function loadLfs() {
      const res = await api(projectPath(P, '/lfs'), { signal: ctx.signal });
      S.lfs = (res && res.lfs) || [];
      renderLfs();
    }
    function lfRow(lf) {
      const acc = [];
      if (isNum(lf.learned_accuracy)) acc.push(h('span', { title: 'learned by the label model' }, fmtPct(lf.learned_accuracy)));
      if (isNum(lf.golden_accuracy)) acc.push(h('div', { class: 'muted small' }, `golden ${fmtPct(lf.golden_accuracy)}`));
      const state = lf.vetoed ? 'vetoed' : lf.active ? 'active' : 'inactive';
      return h('tr', { testid: 'lf-row', class: lf.vetoed ? 'vetoed' : '', dataset: { lfId: lf.id, vetoed: String(!!lf.vetoed), active: String(!!lf.active) } },
        h('th', { scope: 'row' }, h('span', { class: 'mono lf-name' }, lf.name || `#${lf.id}`),
          h('div', { class: 'muted small' }, h('span', { class: `badge lf-${state}`, testid: 'lf-state' }, state), ' ',
            [lf.kind, lf.from_labels && lf.from_labels.length ? `from label ${lf.from_labels.map((x) => `#${x}`).join(', ')}` : null].filter(Boolean).join(' · '))),
        h('td', { class: 'num' }, fmtShare(lf.coverage),
          isNum(lf.positives) ? h('div', { class: 'muted small' }, `${fmtNum(lf.positives)} positive`) : null,
          isNum(lf.conflict) ? h('div', { class: 'muted small' }, `conflict ${fmtShare(lf.conflict)}`) : null),
        h('td', { class: 'num' }, acc.length ? acc : '—'),
        h('td', { class: 'lf-action' }, h('button', { type: 'button', class: lf.vetoed ? '' : 'danger', testid: 'lf-veto', 'aria-pressed': lf.vetoed ? 'true' : 'false',
          'aria-label': `${lf.vetoed ? 'Restore' : 'Veto'} ${lf.name || lf.id}`, onclick: (e) => veto(lf, e.currentTarget) }, lf.vetoed ? 'Restore' : 'Veto')));
    }
    function renderLfs() {
      el.lfBody.replaceChildren(...S.lfs.map(lfRow));
      el.lfEmpty.hidden = S.lfs.length > 0;
    }
    async function veto(lf, button) {
      const author = requireAnalyst();
      if (!author) return;
      button.disabled = true;
      try {
        const want = !lf.vetoed;
        const res = await api(projectPath(P, `/lfs/${enc(lf.id)}/veto`), { method: 'POST', body: { author, vetoed: want }, signal: ctx.signal });
        const one = res && res.lf ? res.lf : res; // {"lf": lf} (or the bare lf)
        const updated = one && one.id != null ? one : { ...lf, vetoed: want, active: !want };
        S.lfs = S.lfs.map((x) => (x.id === lf.id ? updated : x));
        renderLfs();
        toast(`${updated.name || `LF #${lf.id}`} ${want ? 'vetoed: the label model leaves it out' : 'restored'}.`);
        loadLfs().catch(report); // the label model was refitted: every LF's figures may move
      } catch (err) {
        report(err);
        button.disabled = false;
      }
    }

    // ---- recent labels
    async function loadLabels() {
      const res = await api(projectPath(P, '/labels'), { signal: ctx.signal });
      const labels = (res && res.labels) || [];
      const me = analyst();
      el.recent.replaceChildren();
      if (!labels.length) el.recent.append(h('li', { class: 'muted' }, 'No labels yet.'));
      for (const l of labels.slice(0, 8)) {
        const anomalies = (l.anomalies || []).length;
        el.recent.append(h('li', { testid: 'recent-label', class: l.in_force ? '' : 'undone', dataset: { id: l.id, inForce: String(!!l.in_force) } },
          h('span', { class: 'mono' }, `#${l.id}`), ` ${l.series} ${fmtRange(l.start, l.end)} · `,
          anomalies ? h('strong', null, `${anomalies} anomalous`) : 'normal',
          h('div', { class: 'muted small' }, `${l.author}, ${fmtTs(l.created_at)}${l.source && l.source !== 'suggestion' ? ` · ${l.source}` : ''}`,
            l.in_force ? '' : ` · undone by ${l.undone_by || '?'}`),
          l.in_force && sameAuthor(l.author, me) ? h('button', { type: 'button', class: 'link', testid: 'recent-undo', onclick: () => undoLabel(l) }, 'undo') : null));
      }
    }

    // ---- start
    const start = () => {
      if (!analyst()) {
        showEmpty('Enter your analyst name (top right) to start labeling: suggestions are claimed for you by name.', 'no_analyst');
        updateButtons();
        return;
      }
      loadProject().catch(report);
    };
    ctx.listen(window, 'analyst-changed', () => {
      S.started = false;
      S.marks.clear();
      start();
    });
    renderMarks();
    updateButtons();
    start();
  }

  // ================================================================ #/series/{name} change intervals

  function intervalView(root, ctx, name) {
    document.title = `driftwatch · ${name} intervals`;
    const S = { meta: null, intervals: [], next: null, focus: null, chart: null, whole: null, zoomed: false };
    const el = {};
    el.meta = h('p', { class: 'muted', testid: 'series-meta' }, 'Loading…');
    el.chart = h('div', { id: 'series-chart', class: 'chart', testid: 'series-chart', 'aria-label': 'Series with its change intervals shaded' });
    el.zoomInfo = h('span', { class: 'muted small', testid: 'zoom-info' });
    el.reset = h('button', { type: 'button', testid: 'zoom-reset', hidden: true }, 'Whole series');
    el.body = h('tbody');
    el.empty = h('p', { class: 'empty', testid: 'intervals-empty', hidden: true }, 'No change intervals detected in this series yet.');
    el.more = h('button', { type: 'button', testid: 'intervals-more', hidden: true }, 'Load more');
    el.count = h('p', { class: 'muted small', testid: 'intervals-count' });
    el.minScore = h('input', { type: 'number', step: '0.05', min: '0', id: 'iv-min-score', testid: 'intervals-min-score', placeholder: 'any' });
    el.verdict = h('select', { id: 'iv-verdict', testid: 'intervals-verdict' },
      [['', 'any'], ['none', 'no verdict'], ['confirm', 'confirmed'], ['dismiss', 'dismissed']].map(([v, t]) => h('option', { value: v }, t)));
    el.sort = h('select', { id: 'iv-sort', testid: 'intervals-sort' },
      [['start', 'start'], ['score', 'peak score, highest first']].map(([v, t]) => h('option', { value: v }, t)));
    el.alsoLabel = h('input', { type: 'checkbox', id: 'iv-also-label', testid: 'intervals-also-label' });
    root.append(h('section', { class: 'page', testid: 'interval-view', dataset: { series: name } },
      h('div', { class: 'page-head' }, h('h1', null, 'Series ', h('span', { class: 'mono' }, name)), h('a', { href: '#/', class: 'back' }, '← projects')),
      el.meta,
      h('section', { class: 'card' },
        h('div', { class: 'chart-head' }, h('h2', null, 'Change intervals over the series'), h('div', null, el.zoomInfo, ' ', el.reset)),
        el.chart,
        h('ul', { class: 'shade-legend' },
          h('li', null, h('span', { class: 'swatch sw-interval' }), 'interval, no feedback'),
          h('li', null, h('span', { class: 'swatch sw-anomaly' }), 'confirmed'),
          h('li', null, h('span', { class: 'swatch sw-dismissed' }), 'dismissed'),
          h('li', null, h('span', { class: 'swatch sw-focus' }), 'selected')),
        h('p', { class: 'hint' }, 'Drag on the chart to zoom in (the detail is fetched, downsampled, for that range).')),
      h('section', { class: 'card' },
        h('h2', null, 'Intervals'),
        h('div', { class: 'filters' },
          h('label', { for: 'iv-min-score' }, 'Peak score ≥ '), el.minScore, ' ',
          h('label', { for: 'iv-verdict' }, 'Verdict '), el.verdict, ' ',
          h('label', { for: 'iv-sort' }, 'Sort by '), el.sort, ' ',
          h('span', { class: 'toggle' }, el.alsoLabel,
            h('label', { for: 'iv-also-label', title: 'A verdict is triage; with this on it also becomes a label in every ready project holding the interval (a budget unit each).' },
              'also label in projects'))),
        el.count,
        h('div', { class: 'table-wrap' }, h('table', { class: 'table', testid: 'interval-table' },
          h('thead', null, h('tr', null, ['Start', 'End', 'From', 'To', 'Peak score', 'Status', 'Why', 'Feedback', ''].map((c) => h('th', { scope: 'col' }, c)))),
          el.body)),
        el.empty, el.more)));

    const colors = chartColors();

    function ivEndTs(iv) {
      if (isNum(iv.end_ts)) return iv.end_ts;
      return S.meta && isNum(S.meta.last_ts) ? S.meta.last_ts : iv.start_ts;
    }

    function drawChart(resp) {
      const ov = overviewColumns(resp, 3);
      if (S.chart) { S.chart.dispose(); S.chart = null; }
      el.chart.replaceChildren();
      if (!ov.cols[0].length) { el.chart.append(h('p', { class: 'empty' }, 'This series has no stored points.')); return; }
      const { series, bands } = overviewSeries(ov, colors);
      let programmatic = false;
      let userZoom = false;
      let zoomTimer = 0;
      const opts = {
        height: 300,
        ms: 1,
        tzDate: (ts) => uPlot.tzDate(new Date(ts), 'Etc/UTC'),
        legend: { live: true },
        cursor: { drag: { x: true, y: false, setScale: true } },
        scales: { x: { time: true } },
        axes: [axis(colors), axis(colors, { size: 56 })],
        series,
        bands,
        hooks: {
          drawClear: [(u) => {
            for (const iv of S.intervals) {
              const fill = S.focus === iv.start ? colors.focus
                : iv.feedback && iv.feedback.verdict === 'confirm' ? colors.confirmed
                  : iv.feedback && iv.feedback.verdict === 'dismiss' ? colors.dismissed : colors.interval;
              shadeX(u, iv.start_ts, ivEndTs(iv), fill, S.focus === iv.start ? colors.windowEdge : null);
            }
          }],
          setSelect: [() => { userZoom = true; }], // uPlot calls this just before a drag zoom
          setScale: [(u, key) => {
            if (key !== 'x' || programmatic || !userZoom) return;
            userZoom = false;
            const { min, max } = u.scales.x;
            ctx.cancel(zoomTimer);
            zoomTimer = ctx.after(() => zoomTo(min, max), 150);
          }],
        },
      };
      const u = makeChart(ctx, el.chart, opts, ov.cols);
      u.setRange = (cols, min, max) => {
        programmatic = true;
        try {
          u.setData(cols, min == null);
          if (min != null) u.setScale('x', { min, max });
        } finally { programmatic = false; }
      };
      S.chart = u;
      el.zoomInfo.textContent = ov.downsampled ? `whole series, ${fmtNum(ov.cols[0].length)} min/max buckets` : `whole series, ${fmtNum(ov.cols[0].length)} points`;
    }

    async function zoomTo(min, max) {
      if (!S.chart || !isNum(min) || !isNum(max) || max <= min) return;
      const from = Math.floor(min);
      const to = Math.ceil(max) + 1;
      try {
        const resp = await api(`v1/series/${enc(name)}/points?from=${from}&to=${to}&max_points=${OVERVIEW_POINTS}`, { signal: ctx.signal });
        const ov = overviewColumns(resp, 3);
        if (!S.chart || !ov.cols[0].length) return;
        // the column layout (raw vs min/max) can change with the zoom: rebuild when it does
        if (ov.cols.length !== S.chart.data.length) {
          drawChart(resp);
          S.chart.setRange(ov.cols, min, max);
        } else {
          S.chart.setRange(ov.cols, min, max);
        }
        S.zoomed = true;
        el.reset.hidden = false;
        el.zoomInfo.textContent = `${fmtTs(min)} → ${fmtTs(max)} · ${ov.downsampled ? `${fmtNum(ov.cols[0].length)} buckets` : `${fmtNum(ov.cols[0].length)} raw points`}`;
      } catch (err) { report(err); }
    }

    ctx.listen(el.reset, 'click', () => {
      S.zoomed = false;
      el.reset.hidden = true;
      if (S.whole) drawChart(S.whole);
    });

    function feedbackText(f) {
      if (!f) return h('span', { class: 'muted' }, 'none');
      return [h('span', { class: `badge verdict-${f.verdict}` }, f.verdict === 'confirm' ? 'confirmed' : f.verdict === 'dismiss' ? 'dismissed' : f.verdict),
        h('div', { class: 'muted small' }, `${f.author || '?'}, ${fmtTs(f.at)}`)];
    }

    /** The interval's explanation in a line: mean and sd before → during (first dimension). */
    function explain(e) {
      if (!e || !e.before || !e.during) return h('span', { class: 'muted' }, '—');
      const m = (x) => (Array.isArray(x) && isNum(x[0]) ? x[0].toFixed(2) : '—');
      return `mean ${m(e.before.mean)} → ${m(e.during.mean)} · sd ${m(e.before.std)} → ${m(e.during.std)}`;
    }

    function renderRows() {
      el.body.replaceChildren();
      el.empty.hidden = S.intervals.length > 0;
      el.more.hidden = !S.next;
      const rows = el.sort.value === 'score' ? [...S.intervals].sort((a, b) => b.peak_score - a.peak_score) : S.intervals;
      el.count.textContent = S.next
        ? `${fmtNum(S.intervals.length)} intervals loaded and shaded; more match (Load more).`
        : `${fmtNum(S.intervals.length)} interval(s), all shaded on the chart.`;
      el.count.dataset.loaded = S.intervals.length;
      el.count.dataset.complete = S.next ? 'false' : 'true';
      for (const iv of rows) {
        const f = iv.feedback;
        el.body.append(h('tr', { testid: 'interval-row', class: S.focus === iv.start ? 'focus' : '', dataset: { start: iv.start, verdict: f ? f.verdict : '' } },
          h('td', { class: 'num' }, fmtNum(iv.start)),
          h('td', { class: 'num' }, iv.end == null ? 'open' : fmtNum(iv.end)),
          h('td', { class: 'small' }, fmtTs(iv.start_ts)),
          h('td', { class: 'small' }, iv.end_ts == null ? '—' : fmtTs(iv.end_ts)),
          h('td', { class: 'num' }, fmtNum(iv.peak_score)),
          h('td', null, h('span', { class: `badge status-${iv.status}` }, iv.status),
            iv.data && iv.data !== 'stored'
              ? h('div', { class: 'muted small', testid: 'interval-data', dataset: { data: iv.data } },
                iv.data === 'removed' ? 'data removed by retention' : 'data partly removed by retention')
              : null),
          h('td', { class: 'small', testid: 'interval-why' }, explain(iv.explanation)),
          h('td', { testid: 'interval-feedback' }, feedbackText(f)),
          h('td', { class: 'row-actions' },
            h('button', { type: 'button', testid: 'interval-show', onclick: () => focusInterval(iv) }, 'Show'),
            h('button', { type: 'button', class: 'primary', testid: 'interval-confirm', 'aria-pressed': f && f.verdict === 'confirm' ? 'true' : 'false',
              onclick: (e) => sendFeedback(iv, 'confirm', e.currentTarget) }, 'Confirm'),
            h('button', { type: 'button', testid: 'interval-dismiss', 'aria-pressed': f && f.verdict === 'dismiss' ? 'true' : 'false',
              onclick: (e) => sendFeedback(iv, 'dismiss', e.currentTarget) }, 'Dismiss'))));
      }
      if (S.chart) S.chart.redraw(false);
    }

    function focusInterval(iv) {
      S.focus = iv.start;
      renderRows();
      const a = iv.start_ts;
      const b = ivEndTs(iv);
      const pad = Math.max((b - a) * 2, 60_000);
      zoomTo(a - pad, b + pad);
    }

    async function sendFeedback(iv, verdict, button) {
      const author = requireAnalyst();
      if (!author) return;
      button.disabled = true;
      try {
        const label = el.alsoLabel.checked;
        const res = await api(`v1/series/${enc(name)}/intervals/${enc(iv.start)}/feedback`, { method: 'POST', body: { author, verdict, label }, signal: ctx.signal });
        iv.feedback = res && res.feedback ? res.feedback : { verdict, author, at: Date.now() };
        const made = res && Array.isArray(res.labels) ? res.labels.length : null;
        toast(`Interval ${fmtRange(iv.start, iv.end)} ${verdict === 'confirm' ? 'confirmed' : 'dismissed'}` +
          (!label ? ' (triage; no label made).' : made == null ? '.' : `: ${made ? `a label in ${made} project(s)` : 'no ready project holds it'}.`));
        renderRows();
      } catch (err) {
        report(err);
        button.disabled = false;
      }
    }

    async function loadIntervals(after) {
      const min = el.minScore.value.trim();
      const filter = `${min ? `&min_score=${enc(min)}` : ''}${el.verdict.value ? `&verdict=${enc(el.verdict.value)}` : ''}`;
      const res = await api(`v1/series/${enc(name)}/intervals?limit=1000${filter}${after ? `&after=${enc(after)}` : ''}`, { signal: ctx.signal });
      S.intervals = after ? S.intervals.concat(res.intervals || []) : res.intervals || [];
      S.next = res.next || null;
      renderRows();
    }
    ctx.listen(el.more, 'click', () => loadIntervals(S.next).catch(report));
    ctx.listen(el.minScore, 'change', () => loadIntervals(null).catch(report));
    ctx.listen(el.verdict, 'change', () => loadIntervals(null).catch(report));
    ctx.listen(el.sort, 'change', () => renderRows());

    (async () => {
      const [meta, whole] = await Promise.all([
        api(`v1/series/${enc(name)}`, { signal: ctx.signal }),
        fetchOverview(name, undefined),
      ]);
      S.meta = meta;
      S.whole = whole;
      el.meta.textContent = `${meta.stored_points > 0 ? `${fmtNum(meta.stored_points)} points stored · ` : ''}` +
        `${meta.first_stored_index > 0 ? `points before #${fmtNum(meta.first_stored_index)} (${fmtTs(meta.first_stored_ts)}) removed by retention · ` : ''}` +
        `${meta.dim || 1} value(s) per point · last point ${fmtTs(meta.last_ts)}` +
        (meta.latest_change ? ` · latest change ${fmtTs(meta.latest_change.start_ts)} (${meta.latest_change.status})` : '');
      await loadIntervals(null);
      drawChart(whole);
    })().catch(report);
  }

  // ---------------------------------------------------------------- boot

  function boot() {
    if (typeof uPlot === 'undefined') {
      showError('The chart library (vendor/uPlot.iife.min.js) did not load.', 'asset_missing');
      return;
    }
    $('#banner-close').addEventListener('click', hideError);
    initAnalystForm();
    window.addEventListener('hashchange', route);
    route();
  }
  boot();
})();
