// The corpus browser: hash routes (#/?query, #/record/ID, #/overview) over the read API.
// Every value from a record is written through `esc` (text and attributes alike), ids in URLs
// through `recordHref`; the only markup taken from the server is the record's `body_html`
// (rendered so that nothing in it runs or loads) and the snippets' <mark>s (`snippetHtml`).
// No inline handler, style or eval: the page runs under a CSP that allows none.
"use strict";
const app = document.getElementById("app");
let vocab = { kinds: {}, themes: {}, outcomes: {} };
const FACETS = [["kind", "Type"], ["theme", "Thème"], ["town", "Commune"], ["year", "Année"], ["outcome", "Issue"]];

function esc(s) { return String(s ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }
// A value of a table by its own key only (never `constructor`, `__proto__`...).
function own(table, key) { return table && Object.hasOwn(table, key) ? table[key] : undefined; }
function label(facet, value) {
  const table = { kind: vocab.kinds, theme: vocab.themes, outcome: vocab.outcomes }[facet];
  return own(table, value) || value;
}
// The link to a record's page, escaped for an attribute.
function recordHref(id) { return esc("#/record/" + encodeURIComponent(id)); }
// Snippets come from the server escaped, with <mark> around the matched words. Parsed in an
// inert template (nothing there loads or runs), only the marks are kept as markup.
function snippetHtml(html) {
  const t = document.createElement("template");
  t.innerHTML = html;
  return [...t.content.childNodes].map(n => n.nodeName === "MARK" ? `<mark>${esc(n.textContent)}</mark>` : esc(n.textContent)).join("");
}
async function api(path) {
  const r = await fetch("/api/v1" + path);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function kindBadge(kind) { return `<span class="kind ${esc(kind)}">${esc(label("kind", kind))}</span>`; }
function year(r) { return (r.period && r.period.start ? r.period.start : r.created_at || "").slice(0, 4); }

function route() {
  const hash = location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  document.getElementById("nav-search").className = path === "/" ? "active" : "";
  document.getElementById("nav-overview").className = path === "/overview" ? "active" : "";
  let id = path.slice(8);
  try { id = decodeURIComponent(id); } catch { /* a malformed escape: looked up as written */ }
  const show = path.startsWith("/record/") ? renderRecord(id)
    : path === "/overview" ? renderOverview() : renderSearch(params);
  show.catch(e => { app.innerHTML = `<p class="error">${esc(e.message)}</p>`; });
}

async function renderSearch(params) {
  const query = new URLSearchParams(params);
  query.set("limit", "30");
  query.set("facets", "true");
  const page = await api("/records?" + query.toString());
  const active = FACETS.filter(([f]) => params.get(f)).map(([f, name]) => `<span>${esc(name)} : ${esc(label(f, params.get(f)))}</span>`).join("");
  const facetHtml = FACETS.map(([facet, name]) => {
    const counts = (page.facets && page.facets[facet]) || {};
    const entries = Object.entries(counts).sort((a, b) => facet === "year" ? b[0].localeCompare(a[0]) : b[1] - a[1]);
    if (!entries.length) return "";
    const links = entries.map(([value, n]) => {
      const next = new URLSearchParams(params);
      const on = params.get(facet) === value;
      if (on) next.delete(facet); else next.set(facet, value);
      return `<a href="${esc("#/?" + next)}" class="${on ? "on" : ""}" data-facet="${esc(facet)}" data-value="${esc(value)}"><span>${esc(label(facet, value))}</span><span class="n">${esc(n)}</span></a>`;
    }).join("");
    return `<div class="facet"><h3>${esc(name)}</h3>${links}</div>`;
  }).join("");
  const results = page.records.map(r => `
    <div class="result">
      <h2><a href="${recordHref(r.id)}">${esc(r.title)}</a></h2>
      <div class="meta">${kindBadge(r.kind)}${esc(r.town)} · ${esc(r.themes.map(t => label("theme", t)).join(", "))}</div>
      ${r.snippet ? `<p class="snippet">${snippetHtml(r.snippet)}</p>` : ""}
    </div>`).join("");
  app.innerHTML = `
    <form class="search" id="search-form"><input id="q" name="q" type="search" placeholder="Chercher : jardins partagés, méthanisation, cantine bio…" value="${esc(params.get("q") || "")}" autofocus><button type="submit">Rechercher</button></form>
    <div class="layout"><aside>${facetHtml}</aside>
      <section><div class="chips">${active}</div>
        <p class="count" id="count">${esc(page.total)} résultat${page.total > 1 ? "s" : ""}</p>
        <div id="results">${results || "<p>Aucun résultat.</p>"}</div></section></div>`;
  document.getElementById("search-form").addEventListener("submit", ev => {
    ev.preventDefault();
    const next = new URLSearchParams(params);
    const q = document.getElementById("q").value.trim();
    if (q) next.set("q", q); else next.delete("q");
    location.hash = "#/?" + next.toString();
  });
}

async function renderRecord(id) {
  const r = await api("/records/" + encodeURIComponent(id));
  const facts = [
    ["Commune", esc(r.town)], ["Thèmes", esc(r.themes.map(t => label("theme", t)).join(", "))],
    ["Période", r.period ? esc(r.period.start + (r.period.end ? " – " + r.period.end : " – en cours")) : ""],
    ["Issue", r.outcome ? esc(label("outcome", r.outcome)) : ""], ["Méthode", esc(r.method || "")],
    ["Participation", esc(r.participation || "")], ["Mots-clés", esc((r.tags || []).join(", "))],
    ["ODD", esc((r.sdgs || []).join(", "))], ["Langue", esc(r.language)], ["Licence", esc(r.licence)],
    ["Publié le", esc((r.created_at || "").slice(0, 10))],
  ].filter(([, v]) => v).map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
  const indicators = (r.indicators || []).length ? `<h2>Indicateurs</h2><table id="indicators"><tr><th>Indicateur</th><th>Valeur</th><th>Unité</th><th>Référence</th><th>Cible</th><th>Date</th><th>Source</th></tr>${
    r.indicators.map(i => `<tr><td>${esc(i.name)}</td><td class="num">${esc(i.value)}</td><td>${esc(i.unit)}</td><td class="num">${esc(i.baseline ?? "")}</td><td class="num">${esc(i.target ?? "")}</td><td>${esc(i.date ?? "")}</td><td>${esc(i.source ?? "")}</td></tr>`).join("")}</table>` : "";
  const linkList = (links, empty) => links.length ? `<ul>${links.map(l => `<li>${esc(relLabel(l.rel))} : <a href="${recordHref(l.id)}">${esc(l.title || l.id.slice(0, 12))}</a>${l.town ? ` <span class="meta">(${esc(l.town)})</span>` : ""}</li>`).join("")}</ul>` : `<p class="meta">${empty}</p>`;
  app.innerHTML = `
    <article id="record">
      <div class="meta">${kindBadge(r.kind)}${esc(r.town)}</div>
      <h1>${esc(r.title)}</h1>
      <p><span class="verified" id="signature">✓ Signature vérifiée (${esc(r.signature.algorithm)})</span></p>
      ${provenance(r.provenance)}
      ${versionStatus(r.versions)}
      <p class="key">Clé de l'auteur : ${esc(r.author)}<br>Identifiant : ${esc(r.id)}</p>
      <p class="summary">${esc(r.summary)}</p>
      <dl class="facts">${facts}</dl>
      ${indicators}
      ${attachments(r.attachments || [])}
      <div class="body" id="body">${r.body_html}</div>
      <div class="links"><div><h2>Ce document cite</h2>${linkList(r.links_out, "Aucun lien.")}</div>
        <div><h2>Documents qui y renvoient</h2>${linkList(r.links_in, "Aucun document n'y renvoie encore.")}</div></div>
      <h2>Le chemin de cette pratique</h2><div class="panel" id="trail"><p class="meta">Calcul du chemin…</p></div>
    </article>`;
  drawTrail(r).catch(e => { document.getElementById("trail").innerHTML = `<p class="error">${esc(e.message)}</p>`; });
}

// A record's files, served by this node (fetched from its peers when it lacks them): images
// shown inline from the same origin, the others listed with their type and size.
const FILE_TYPES = {
  "application/pdf": "PDF", "image/png": "image PNG", "image/jpeg": "image JPEG", "image/webp": "image WebP",
  "text/csv": "tableau CSV", "text/plain": "texte", "application/vnd.oasis.opendocument.text": "texte OpenDocument",
  "application/vnd.oasis.opendocument.spreadsheet": "tableur OpenDocument",
};
function fileSize(n) {
  const units = [[1024 * 1024, "Mo"], [1024, "Ko"]];
  for (const [size, unit] of units) {
    if (n >= size) { return (n / size).toLocaleString("fr-FR", { maximumFractionDigits: 1 }) + "\u00a0" + unit; }
  }
  return n + "\u00a0octet" + (n > 1 ? "s" : "");
}
function attachments(files) {
  if (!files.length) { return ""; }
  const href = f => esc("/api/v1/attachments/" + encodeURIComponent(f.hash));
  const isImage = f => /^image\//.test(f.media_type);
  const images = files.filter(isImage).map(f => `<figure>
      <a href="${href(f)}"><img src="${href(f)}" alt="${esc(f.title || f.name)}" loading="lazy"></a>
      <figcaption>${esc(f.title || f.name)} <span class="meta">(${esc(fileSize(f.size))})</span></figcaption></figure>`).join("");
  const others = files.filter(f => !isImage(f)).map(f => `<li><a href="${href(f)}" download="${esc(f.name)}">${esc(f.title || f.name)}</a>
      <span class="meta">${esc(FILE_TYPES[f.media_type] || f.media_type)}, ${esc(fileSize(f.size))}${f.title && f.title !== f.name ? ` · ${esc(f.name)}` : ""}</span></li>`).join("");
  return `<section id="attachments"><h2>Fichiers joints</h2>
    ${images ? `<div class="images">${images}</div>` : ""}${others ? `<ul id="files">${others}</ul>` : ""}</section>`;
}

// Who stands behind the record: the federation's certificate of the town, the town's delegation.
function provenance(p) {
  if (!p) return "";
  if (p.chain === "delegate") {
    const d = p.delegate || {};
    return `<p class="meta" id="provenance">Écrit par ${esc(d.name)}${d.role ? ", " + esc(d.role) : ""}, pour ${esc(p.town || "sa commune")} (délégation de la clé de la commune)</p>`;
  }
  if (p.chain === "town" && p.town) return `<p class="meta" id="provenance">Publié par la commune ${esc(p.town)}, membre de la fédération</p>`;
  if (p.federation === null) return `<p class="meta" id="provenance">Nœud en mode ouvert : la commune indiquée n'est pas certifiée</p>`;
  return "";
}

// Retracted, voided or replaced by a newer version: said before anything else.
function versionStatus(v) {
  if (!v) return "";
  let out = "";
  if (v.retracted) out += `<p class="status" id="retracted">Retiré le ${esc(v.retracted.at.slice(0, 10))} : ${esc(v.retracted.reason)}</p>`;
  if (v.voided) out += `<p class="status" id="voided">Publié après la révocation de la clé de son auteur</p>`;
  for (const n of v.superseded_by || []) out += `<p class="status newer">Une version plus récente existe : <a href="${recordHref(n)}">${esc(n.slice(0, 12))}</a></p>`;
  if ((v.history || []).length > 1) out += `<p class="meta" id="versions">Versions : ${v.history.map(h => `<a href="${recordHref(h.id)}">${esc((h.created_at || "").slice(0, 10) || h.id.slice(0, 12))}${h.current ? " (actuelle)" : ""}</a>`).join(", ")}</p>`;
  return out;
}

function relLabel(rel) {
  return own({ "derived-from": "tirée de", adapts: "adapte", evaluates: "évalue", supersedes: "remplace", cites: "cite" }, rel) || rel;
}

// The trail of a practice: up to the experiment it comes from, then down to the practices drawn
// from it, the towns that adapted them, and the evaluations of each; drawn on a time line with
// one lane per town.
async function drawTrail(start) {
  const pages = new Map([[start.id, start]]);
  const get = async id => { if (!pages.has(id)) pages.set(id, await api("/records/" + encodeURIComponent(id))); return pages.get(id); };
  let origin = start;
  for (let i = 0; i < 5; i++) {
    const up = origin.links_out.find(l => (l.rel === "derived-from" || l.rel === "adapts") && l.title);
    if (!up) break;
    origin = await get(up.id);
  }
  const nodes = new Map([[origin.id, origin]]);
  const edges = [];
  let frontier = [origin];
  for (let depth = 0; depth < 4 && frontier.length; depth++) {
    const next = [];
    for (const page of frontier) {
      for (const l of page.links_in.filter(l => ["derived-from", "adapts", "evaluates"].includes(l.rel))) {
        edges.push({ from: l.id, to: page.id, rel: l.rel });
        if (!nodes.has(l.id)) { const p = await get(l.id); nodes.set(l.id, p); next.push(p); }
      }
    }
    frontier = next;
  }
  const list = [...nodes.values()];
  if (list.length < 2) { document.getElementById("trail").innerHTML = `<p class="meta">Aucune autre commune n'a encore repris ou évalué cette expérience.</p>`; return; }
  const towns = [...new Set(list.map(p => p.town))];
  const time = p => Date.parse((p.period && p.period.start ? (p.period.start + "-01-01").slice(0, 10) : p.created_at));
  const t0 = Math.min(...list.map(time)), t1 = Math.max(...list.map(time));
  const W = 900, lane = 70, left = 160, H = towns.length * lane + 40;
  const x = p => left + 20 + (t1 === t0 ? 0 : (time(p) - t0) / (t1 - t0) * (W - left - 220));
  const y = p => 30 + towns.indexOf(p.town) * lane;
  const pos = new Map(list.map(p => [p.id, [x(p), y(p)]]));
  const colors = { experiment: "#2f6f5e", practice: "#3f5fa8", evaluation: "#b5651d" };
  let svg = `<svg id="trail-svg" width="${W}" height="${H}" role="img" aria-label="Chemin de la pratique">`;
  towns.forEach((t, i) => { svg += `<text x="8" y="${34 + i * lane}">${esc(t)}</text><line x1="${left}" x2="${W - 10}" y1="${30 + i * lane}" y2="${30 + i * lane}" stroke="#d9e0e2"/>`; });
  for (const e of edges) {
    const [a, b] = [pos.get(e.from), pos.get(e.to)];
    if (!a || !b) continue;
    svg += `<line x1="${a[0]}" y1="${a[1]}" x2="${b[0]}" y2="${b[1]}" stroke="#8aa" stroke-width="1.5" marker-end="url(#arrow)"/>`;
    svg += `<text x="${(a[0] + b[0]) / 2 + 4}" y="${(a[1] + b[1]) / 2 - 4}" fill="#5b6b70">${esc(relLabel(e.rel))}</text>`;
  }
  for (const p of list) {
    const [cx, cy] = pos.get(p.id);
    svg += `<a href="${recordHref(p.id)}"><circle cx="${cx}" cy="${cy}" r="${p.id === start.id ? 10 : 7}" fill="${own(colors, p.kind) || "#777"}"><title>${esc(p.title)}</title></circle>`;
    svg += `<text x="${cx + 10}" y="${cy + 18}">${esc(year(p))} · ${esc(label("kind", p.kind))}</text></a>`;
  }
  svg += `<defs><marker id="arrow" viewBox="0 0 10 10" refX="16" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#8aa"/></marker></defs></svg>`;
  document.getElementById("trail").innerHTML = svg + `<p class="meta">${esc(list.length)} documents, ${esc(towns.length)} commune${towns.length > 1 ? "s" : ""}. Cliquez un point pour l'ouvrir.</p>`;
}

async function renderOverview() {
  const all = await api("/stats");
  const themes = Object.keys(vocab.themes);
  const perTheme = await Promise.all(themes.map(t => api("/stats?theme=" + encodeURIComponent(t)).then(s => [t, s.facets.year || {}])));
  const years = [...new Set(perTheme.flatMap(([, y]) => Object.keys(y)))].sort();
  const max = Math.max(1, ...perTheme.flatMap(([, y]) => Object.values(y)));
  const cell = 34, left = 300, top = 30;
  let heat = `<svg id="chart-theme-year" width="${left + years.length * cell + 20}" height="${top + themes.length * 24 + 10}">`;
  years.forEach((yv, j) => { heat += `<text x="${left + j * cell + 4}" y="${top - 10}">${esc(yv)}</text>`; });
  perTheme.forEach(([t, counts], i) => {
    heat += `<text x="8" y="${top + i * 24 + 16}">${esc(label("theme", t))}</text>`;
    years.forEach((yv, j) => {
      const n = counts[yv] || 0;
      const alpha = n ? 0.15 + 0.85 * n / max : 0.04;
      heat += `<rect x="${left + j * cell}" y="${top + i * 24}" width="${cell - 3}" height="21" fill="rgba(47,111,94,${alpha.toFixed(2)})"><title>${esc(label("theme", t))}, ${esc(yv)} : ${esc(n)}</title></rect>`;
      if (n) heat += `<text x="${left + j * cell + 10}" y="${top + i * 24 + 15}" fill="${alpha > .5 ? "white" : "#1d2a2f"}">${esc(n)}</text>`;
    });
  });
  heat += "</svg>";
  const towns = Object.entries(all.facets.town || {}).sort((a, b) => b[1] - a[1]);
  const tmax = Math.max(1, ...towns.map(([, n]) => n));
  let bars = `<svg id="chart-town" width="760" height="${towns.length * 26 + 10}">`;
  towns.forEach(([t, n], i) => {
    const w = 420 * n / tmax;
    bars += `<text x="8" y="${i * 26 + 18}">${esc(t)}</text><rect x="220" y="${i * 26 + 5}" width="${esc(w)}" height="18" fill="#3f5fa8"/><text x="${esc(226 + w)}" y="${i * 26 + 18}">${esc(n)}</text>`;
  });
  bars += "</svg>";
  const kinds = Object.entries(all.facets.kind || {}).map(([k, n]) => `${kindBadge(k)} ${esc(n)}`).join(" ");
  app.innerHTML = `<h1>Vue d'ensemble</h1><p>${esc(all.total)} documents partagés. ${kinds}</p>
    <h2>Documents par thème et par année</h2><div class="panel">${heat}</div>
    <h2>Documents par commune</h2><div class="panel">${bars}</div>`;
}

api("/vocabulary").then(v => { vocab = v; route(); }).catch(e => { app.innerHTML = `<p class="error">${esc(e.message)}</p>`; });
window.addEventListener("hashchange", route);
