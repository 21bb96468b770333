// A call's reply latency, one bar per bot turn: the stages one after another, to scale.

import { build } from "./common.js";

// In the order the API's `stages` follow one another (README, "Every call on record").
export const STAGES = ["stt_ms", "turn_end_ms", "llm_ms", "tts_ms", "playout_ms"];
const LABELS = {
  stt_ms: "STT", turn_end_ms: "turn end", llm_ms: "LLM first token",
  tts_ms: "TTS first audio", playout_ms: "playout",
};

function legend() {
  return build("div", { className: "legend" }, STAGES.map((stage) =>
    build("span", {}, [build("i", { className: `stage-${stage}` }), LABELS[stage]])));
}

function bar(turn, scale) {
  const stages = turn.stages || {};
  let start = 0;
  const segments = STAGES.filter((s) => stages[s] > 0).map((stage) => {
    const segment = build("div", {
      className: `seg stage-${stage}`, title: `${LABELS[stage]}: ${Math.round(stages[stage])} ms`,
    });
    segment.style.left = `${(start / scale) * 100}%`;
    segment.style.width = `${(stages[stage] / scale) * 100}%`;
    segment.dataset.stage = stage;
    start += stages[stage];
    return segment;
  });
  return build("div", { className: "bar" }, segments);
}

export function waterfall(botTurns) {
  if (!botTurns.length) return build("p", { className: "muted", id: "waterfall" }, ["No replies."]);
  const totals = botTurns.map((t) => Math.max(t.latency_ms,
    STAGES.reduce((sum, s) => sum + ((t.stages || {})[s] || 0), 0)));
  const scale = Math.max(...totals) || 1;
  const rows = botTurns.map((turn, i) => build("div", { className: "wrow" }, [
    build("span", { className: "muted" }, [`at ${((turn.at_ms || 0) / 1000).toFixed(1)} s`]),
    bar(turn, scale),
    build("span", { className: "total" }, [`${Math.round(turn.latency_ms)} ms`]),
  ]));
  return build("div", { className: "waterfall", id: "waterfall" }, [legend(), ...rows]);
}
