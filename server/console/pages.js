// The record pages: calls in progress, the call list, one call, pipelines and their latency.
// Field names are the records API's (README, "Every call on record").

import { api, build } from "./common.js";
import { waterfall } from "./waterfall.js";
import { latencyChart } from "./latency_chart.js";

const PAGE_SIZE = 50;
const FILTERS = ["since", "until", "number", "pipeline", "end_reason"];
let listState = { offset: 0, filters: {} };

// `GET /calls`: `{calls, limit, offset, next_offset}`, the calls without their turns.
async function listCalls(query) {
  const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== "" && v != null));
  return api(`/calls?${params}`);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function seconds(call) {
  if (!call.started_at) return "";
  const end = call.ended_at ? new Date(call.ended_at) : new Date();
  return `${Math.round((end - new Date(call.started_at)) / 1000)} s`;
}

function callRow(call) {
  const row = build("tr", { className: "row" }, [
    build("td", {}, [when(call.started_at)]),
    build("td", {}, [call.direction || ""]),
    build("td", {}, [call.from || ""]),
    build("td", {}, [call.to || ""]),
    build("td", {}, [call.pipeline || ""]),
    build("td", {}, [seconds(call)]),
    build("td", {}, [call.ended_at ? call.end_reason || "" : "in progress"]),
  ]);
  row.dataset.callSid = call.call_sid;
  row.onclick = () => { location.hash = `#/calls/${encodeURIComponent(call.call_sid)}`; };
  return row;
}

function callTable(calls, id) {
  const head = ["started", "direction", "from", "to", "pipeline", "length", "ended"];
  return build("table", { id }, [
    build("thead", {}, [build("tr", {}, head.map((h) => build("th", {}, [h])))]),
    build("tbody", {}, calls.map(callRow)),
  ]);
}

export async function livePage(page) {
  const { calls } = await listCalls({ in_progress: true, limit: PAGE_SIZE });
  page.replaceChildren(
    build("h1", {}, [`Calls in progress (${calls.length})`]),
    calls.length ? callTable(calls, "live-calls") : build("p", { className: "muted" }, ["None."]),
  );
}

export async function callsPage(page) {
  const form = build("form", { className: "filters", id: "filters" }, [
    ...FILTERS.map((name) => build("label", {}, [name.replace("_", " "), build("input", {
      name, value: listState.filters[name] || "",
      type: name === "since" || name === "until" ? "date" : "text",
    })])),
    build("button", { type: "submit" }, ["Filter"]),
  ]);
  form.onsubmit = (event) => {
    event.preventDefault();
    listState = { offset: 0, filters: Object.fromEntries(new FormData(form)) };
    callsPage(page);
  };
  const query = { ...listState.filters, limit: PAGE_SIZE, offset: listState.offset };
  const { calls, next_offset: next } = await listCalls(query);
  const pager = build("p", {}, [
    pageButton("Newer", listState.offset > 0, -PAGE_SIZE, page),
    ` ${listState.offset + 1}–${listState.offset + calls.length} `,
    pageButton("Older", next != null, PAGE_SIZE, page),
  ]);
  page.replaceChildren(build("h1", {}, ["Calls"]), form, callTable(calls, "calls"), pager);
}

function pageButton(label, enabled, step, page) {
  const button = build("button", { type: "button", disabled: !enabled }, [label]);
  button.onclick = () => { listState.offset += step; callsPage(page); };
  return button;
}

// A bot turn's words: what was heard, then what was cut off, struck through.
function botWords(turn) {
  const text = turn.text || "";
  const heard = turn.heard ?? text;
  if (!turn.interrupted) return [build("span", { className: "said" }, [heard])];
  const unheard = text.startsWith(heard) ? text.slice(heard.length) : text;
  return [
    build("span", { className: "said" }, [heard]),
    build("span", { className: "cut", title: "the caller cut in here" }, ["✂"]),
    build("del", { className: "unheard" }, [unheard.trim()]),
  ];
}

function at(item) {
  return `at ${((item.at_ms || 0) / 1000).toFixed(1)} s`;
}

function turnBubble(turn) {
  const body = [];
  if (turn.speaker === "bot") body.push(...botWords(turn));
  else {
    if (turn.dtmf) body.push(build("span", { className: "keys", title: "keys pressed" }, [`⌨ ${turn.dtmf}`]));
    else body.push(turn.text);
  }
  const meta = [`${turn.speaker} ${at(turn)}`];
  if (turn.latency_ms != null) meta.push(` · reply ${Math.round(turn.latency_ms)} ms`);
  if (turn.interrupted) meta.push(" · interrupted");
  return build("div", { className: `turn ${turn.speaker}` }, [
    build("div", {}, body), build("div", { className: "meta" }, meta),
  ]);
}

// A tool call, a transfer or a provider error, between the turns where it happened.
function eventLine(event) {
  const detail = event.detail || {};
  const text = {
    tool_call: () => `⚙ ${event.name}(${JSON.stringify(detail.arguments ?? {})}) → ` +
      JSON.stringify(detail.error ?? detail.result ?? null),
    transfer: () => `↪ transfer to ${event.name}: ${detail.result ?? ""}`,
    error: () => `⚠ ${event.name}: ${detail.error ?? ""}`,
  }[event.kind] || (() => `${event.kind} ${event.name}`);
  return build("div", { className: `turn event ${event.kind}` }, [
    build("div", {}, [text()]), build("div", { className: "meta" }, [at(event)]),
  ]);
}

function facts(call) {
  const usage = call.usage || {};
  const pairs = [
    ["call", call.call_sid], ["direction", call.direction], ["from", call.from], ["to", call.to],
    ["pipeline", call.pipeline], ["started", when(call.started_at)], ["ended", when(call.ended_at)],
    ["end reason", call.end_reason || (call.ended_at ? "" : "in progress")],
    ...Object.entries(usage).map(([k, v]) => [k.replace(/_/g, " "), String(v)]),
  ];
  return build("dl", { className: "facts" }, pairs.flatMap(([k, v]) => [
    build("dt", {}, [k]), build("dd", {}, [v ?? ""])]));
}

export async function callPage(page, callSid) {
  const call = await api(`/calls/${encodeURIComponent(callSid)}`);
  const { turns, events } = call;
  // Turns and events are numbered in one sequence, in the order they happened.
  const said = [...turns.map((t) => [t.seq, turnBubble(t)]), ...events
    .filter((e) => e.kind !== "recording").map((e) => [e.seq, eventLine(e)])];
  const recorded = events.find((e) => e.kind === "recording");
  // Twilio serves a recording's audio at its URL plus `.mp3` (with the account's credentials
  // unless the account lets media be fetched without them).
  const recording = recorded ? [build("p", {}, [build("a", {
    id: "recording", href: `${recorded.detail.url}.mp3`, target: "_blank",
  }, [`Recording ${recorded.name} (Twilio)`])])] : [];
  page.replaceChildren(
    build("h1", {}, [`Call ${call.call_sid}`]),
    facts(call),
    ...recording,
    build("h2", {}, ["Conversation"]),
    build("div", { className: "conversation", id: "conversation" },
      said.sort(([a], [b]) => a - b).map(([, element]) => element)),
    build("h2", {}, ["Reply latency, turn by turn"]),
    waterfall(turns.filter((t) => t.speaker === "bot" && t.latency_ms != null)),
  );
}

export async function pipelinesPage(page) {
  const { pipelines } = await api("/console/pipelines");
  page.replaceChildren(build("h1", {}, ["Pipelines"]), build("ul", { id: "pipelines" },
    pipelines.map((name) => build("li", {}, [build("a", { href: `#/pipelines/${name}` }, [name])]))));
}

// The latency of a pipeline's recent calls: their bot turns, with the call's start time.
export async function pipelinePage(page, pipeline) {
  const { calls } = await listCalls({ pipeline, limit: 100 });
  const detailed = await Promise.all(
    calls.map((call) => api(`/calls/${encodeURIComponent(call.call_sid)}`)));
  const points = detailed.flatMap((call) => call.turns
    .filter((t) => t.speaker === "bot" && t.latency_ms != null)
    .map((t) => ({ at: new Date(call.started_at).getTime() + (t.at_ms || 0), ms: t.latency_ms })));
  page.replaceChildren(
    build("h1", {}, [`Pipeline ${pipeline}`]),
    build("p", { className: "muted" }, [
      `Reply latency (the caller's end of speech → first bot audio heard), p50 and p90, ` +
      `over ${points.length} replies in ${detailed.length} calls.`]),
    latencyChart(points),
  );
}
