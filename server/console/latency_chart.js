// p50 and p90 reply latency over time, as an SVG line chart (no chart library: offline).

import { build } from "./common.js";

const WIDTH = 800, HEIGHT = 260, PAD = 44, BUCKETS = 12;
const SVG = "http://www.w3.org/2000/svg";

export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

// `points`: {at: epoch ms, ms: latency}; the time span cut into BUCKETS equal ones.
export function buckets(points) {
  const first = Math.min(...points.map((p) => p.at)), last = Math.max(...points.map((p) => p.at));
  const width = Math.max(1, (last - first) / BUCKETS);
  const groups = new Map();
  for (const point of points) {
    const index = Math.min(BUCKETS - 1, Math.floor((point.at - first) / width));
    groups.set(index, [...(groups.get(index) || []), point.ms]);
  }
  return [...groups.entries()].sort(([a], [b]) => a - b).map(([index, values]) => ({
    at: first + (index + 0.5) * width, count: values.length,
    p50: percentile(values, 50), p90: percentile(values, 90),
  }));
}

function svg(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

export function latencyChart(points) {
  if (!points.length) return build("p", { className: "muted", id: "latency" }, ["No replies yet."]);
  const series = buckets(points);
  const top = Math.max(...series.map((b) => b.p90)) * 1.1 || 1;
  const t0 = series[0].at, span = Math.max(1, series[series.length - 1].at - t0);
  const x = (at) => PAD + ((at - t0) / span) * (WIDTH - 2 * PAD);
  const y = (ms) => HEIGHT - PAD - (ms / top) * (HEIGHT - 2 * PAD);
  const chart = svg("svg", { class: "chart", id: "latency", width: WIDTH, height: HEIGHT });
  for (const ms of [0, top / 2, top]) {
    chart.append(svg("text", { x: 2, y: y(ms) + 4 }, `${Math.round(ms)} ms`));
  }
  for (const [key, label] of [["p50", "p50"], ["p90", "p90"]]) {
    const path = series.map((b) => `${x(b.at)},${y(b[key])}`).join(" ");
    chart.append(svg("polyline", { class: key, points: path, "data-series": key }));
    for (const b of series) {
      chart.append(svg("circle", { cx: x(b.at), cy: y(b[key]), r: 3, class: key },
      ));
    }
    const last = series[series.length - 1];
    chart.append(svg("text", { x: x(last.at) + 6, y: y(last[key]) + 4 }, label));
  }
  chart.append(svg("text", { x: PAD, y: HEIGHT - 8 }, new Date(t0).toLocaleString()));
  chart.append(svg("text", { x: WIDTH - PAD - 130, y: HEIGHT - 8 },
    new Date(t0 + span).toLocaleString()));
  const table = build("table", { id: "latency-table" }, [
    build("tr", {}, ["around", "replies", "p50 ms", "p90 ms"].map((h) => build("th", {}, [h]))),
    ...series.map((b) => build("tr", {}, [new Date(b.at).toLocaleString(), b.count,
      Math.round(b.p50), Math.round(b.p90)].map((v) => build("td", {}, [String(v)])))),
  ]);
  return build("div", {}, [chart, table]);
}
