// Daily usage: loading `GET /keys/{id}/usage` a few keys at a time, and drawing it as inline
// SVG (a sparkline per row, a bar chart in the detail view). Geometry is set through
// attributes, so the page's style policy holds.

import { api, keyPath } from "./api.js";
import { calendarDay, el, number } from "./model.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_IN_FLIGHT = 4;

const cache = new Map();
const waiting = [];
let inFlight = 0;
let routeMissing = false;

/** Forgets loaded usage, so the next look asks again. */
export function forgetUsage(id) {
  if (id === undefined) {
    cache.clear();
    return;
  }
  for (const slot of [...cache.keys()]) if (slot.startsWith(`${id}/`)) cache.delete(slot);
}

/**
 * The daily counts of key `id` over `days` days, oldest first: `[{date, count}]`, or null when
 * the server does not keep them. At most a few requests run at once.
 */
export function usage(id, days = 30) {
  const slot = `${id}/${days}`;
  if (!cache.has(slot)) {
    cache.set(
      slot,
      new Promise((resolve) => {
        waiting.push({ id, days, resolve });
        pump();
      }),
    );
  }
  return cache.get(slot);
}

function pump() {
  while (inFlight < MAX_IN_FLIGHT && waiting.length > 0) {
    const job = waiting.shift();
    if (routeMissing) {
      job.resolve(null);
      continue;
    }
    inFlight += 1;
    api("GET", `${keyPath(job.id)}/usage?days=${job.days}`)
      .then((body) => job.resolve(Array.isArray(body && body.days) ? body.days : null))
      .catch((err) => {
        if (err.routeMissing) routeMissing = true;
        job.resolve(null);
      })
      .finally(() => {
        inFlight -= 1;
        pump();
      });
  }
}

let observer = null;

/** Loads and draws the sparkline into `cell` once the cell comes near the viewport. */
export function lazySparkline(cell, id) {
  cell.dataset.keyId = id;
  if (!("IntersectionObserver" in window)) {
    fillSparkline(cell, id);
    return;
  }
  if (!observer) {
    observer = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          if (!entry.isIntersecting) continue;
          observer.unobserve(entry.target);
          fillSparkline(entry.target, entry.target.dataset.keyId);
        }
      },
      { rootMargin: "200px 0px" },
    );
  }
  observer.observe(cell);
}

async function fillSparkline(cell, id) {
  const days = await usage(id);
  if (!cell.isConnected) return;
  (cell.querySelector(".value") || cell).replaceChildren(days ? sparkline(days) : el("span", "muted", "—"));
  cell.dataset.usage = days ? "loaded" : "unavailable";
}

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    node.setAttribute(name, String(value));
  }
  return node;
}

function summary(days) {
  const total = days.reduce((sum, d) => sum + (Number(d.count) || 0), 0);
  let peak = days[0];
  for (const d of days) if ((Number(d.count) || 0) > (Number(peak.count) || 0)) peak = d;
  const text =
    total === 0
      ? `No uses in the last ${days.length} days`
      : `${number(total)} uses in the last ${days.length} days, most on ${calendarDay(peak.date)} (${number(peak.count)})`;
  return { total, text };
}

/** A small line chart of `days` (96 × 24), labelled with the total. */
export function sparkline(days) {
  const width = 96;
  const height = 24;
  const { total, text } = summary(days);
  const root = svg("svg", {
    class: "sparkline",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": text,
    "data-total": total,
    "data-days": days.length,
  });
  const title = svg("title");
  title.textContent = text;
  root.append(title);
  if (days.length === 0) return root;
  const max = Math.max(1, ...days.map((d) => Number(d.count) || 0));
  const step = days.length > 1 ? (width - 2) / (days.length - 1) : 0;
  const points = days.map((d, i) => {
    const x = 1 + i * step;
    const y = height - 2 - ((Number(d.count) || 0) / max) * (height - 4);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const area = `1,${height - 1} ${points.join(" ")} ${(1 + (days.length - 1) * step).toFixed(1)},${height - 1}`;
  root.append(svg("polygon", { class: "spark-area", points: area }));
  root.append(svg("polyline", { class: "spark-line", points: points.join(" "), fill: "none" }));
  return root;
}

/** A bar chart of `days` with a scale and the first and last day, for the detail view. */
export function barChart(days, width = 600) {
  const height = 180;
  const left = 36;
  const bottom = 22;
  const top = 8;
  const { total, text } = summary(days);
  const root = svg("svg", {
    class: "usage-chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": text,
    "data-total": total,
  });
  const title = svg("title");
  title.textContent = text;
  root.append(title);
  const max = Math.max(1, ...days.map((d) => Number(d.count) || 0));
  const plot = height - bottom - top;
  root.append(svg("line", { class: "axis", x1: left, y1: top + plot, x2: width, y2: top + plot }));
  root.append(svg("line", { class: "grid", x1: left, y1: top, x2: width, y2: top }));
  const scale = svg("text", { class: "label", x: left - 6, y: top + 4, "text-anchor": "end", "font-size": 11 });
  scale.textContent = number(max);
  const zero = svg("text", { class: "label", x: left - 6, y: top + plot, "text-anchor": "end", "font-size": 11 });
  zero.textContent = "0";
  root.append(scale, zero);
  const slot = (width - left) / Math.max(1, days.length);
  days.forEach((d, i) => {
    const count = Number(d.count) || 0;
    const barHeight = (count / max) * plot;
    const bar = svg("rect", {
      class: "bar",
      x: (left + i * slot + 1).toFixed(1),
      y: (top + plot - barHeight).toFixed(1),
      width: Math.max(1, slot - 2).toFixed(1),
      height: Math.max(count > 0 ? 1 : 0, barHeight).toFixed(1),
    });
    const tip = svg("title");
    tip.textContent = `${calendarDay(d.date)}: ${number(count)} uses`;
    bar.append(tip);
    root.append(bar);
  });
  if (days.length > 0) {
    const first = svg("text", { class: "label", x: left, y: height - 6, "font-size": 11 });
    first.textContent = calendarDay(days[0].date);
    const last = svg("text", { class: "label", x: width, y: height - 6, "text-anchor": "end", "font-size": 11 });
    last.textContent = calendarDay(days[days.length - 1].date);
    root.append(first, last);
  }
  return root;
}
