// The latency plot: time to first audio and last voiced sample → transcript, per turn, oldest first.

import type { HistoryTurn } from "./types";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 720;
const HEIGHT = 240;
const PAD = { left: 48, right: 16, top: 28, bottom: 32 };

interface Series {
  name: string;
  key: "time_to_first_audio" | "last_voiced_to_text";
  cls: string;
}

const SERIES: Series[] = [
  { name: "time to first audio", key: "time_to_first_audio", cls: "ttfa" },
  { name: "last voiced → transcript", key: "last_voiced_to_text", cls: "stt" },
];

function node(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

/** A step for the axis that gives 3–6 ticks up to `top` seconds. */
function tickStep(top: number): number {
  for (const step of [0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60]) if (top / step <= 6) return step;
  return Math.ceil(top / 6);
}

export function drawLatency(svg: SVGSVGElement, turns: HistoryTurn[]): void {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  const values = turns.flatMap((t) => SERIES.map((s) => t.timings[s.key]).filter(isNumber));
  if (values.length === 0) {
    svg.append(node("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "empty" }, "no timed turns yet"));
    return;
  }
  const step = tickStep(Math.max(...values) * 1.1);
  const top = Math.max(step, Math.ceil((Math.max(...values) * 1.05) / step) * step);
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const x = (i: number): number => PAD.left + (turns.length === 1 ? innerW / 2 : (i * innerW) / (turns.length - 1));
  const y = (v: number): number => PAD.top + innerH - (v / top) * innerH;

  for (let v = 0; v <= top + 1e-9; v += step) {
    svg.append(node("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(node("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, `${+v.toFixed(2)} s`));
  }
  svg.append(node("text", { x: PAD.left, y: HEIGHT - 8, class: "tick" }, "older"));
  svg.append(node("text", { x: WIDTH - PAD.right, y: HEIGHT - 8, "text-anchor": "end", class: "tick" }, "newest turn"));

  SERIES.forEach((series, n) => {
    const points = turns
      .map((t, i) => [i, t.timings[series.key]] as const)
      .filter((p): p is readonly [number, number] => isNumber(p[1]));
    if (points.length > 1) {
      const d = points.map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
      svg.append(node("polyline", { points: d, class: `line ${series.cls}` }));
    }
    for (const [i, v] of points) {
      const dot = node("circle", { cx: x(i), cy: y(v), r: 3.5, class: `dot ${series.cls}` });
      dot.append(node("title", {}, `${series.name}: ${v.toFixed(2)} s`));
      svg.append(dot);
    }
    const lx = PAD.left + n * 220;
    svg.append(node("rect", { x: lx, y: 8, width: 12, height: 12, class: `swatch ${series.cls}` }));
    svg.append(node("text", { x: lx + 18, y: 18, class: "legend" }, series.name));
  });
}

function isNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}
