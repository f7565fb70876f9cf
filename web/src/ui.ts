// Small DOM helpers shared by the views: building elements, the error banner, number formats.

import { describe } from "./api";

type Child = Node | string | number | null | undefined;

/** `<tag attr=…>children</tag>`; text children are text nodes, never HTML. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node as T;
}

let errorSource = "";

/** Shows the words of `err` in #error; `source` names who showed it, so only they clear it. */
export function showError(source: string, err: unknown): void {
  const banner = byId("error");
  banner.textContent = describe(err);
  banner.hidden = false;
  errorSource = source;
}

/** Hides #error when `source` showed what is there now. */
export function clearError(source: string): void {
  if (errorSource !== source) return;
  const banner = byId("error");
  banner.hidden = true;
  banner.textContent = "";
  errorSource = "";
}

export function seconds(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return value < 10 ? `${value.toFixed(2)} s` : `${value.toFixed(1)} s`;
}

export function duration(value: number | null | undefined): string {
  if (!value || value < 0) return "–";
  const s = Math.floor(value);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const h = Math.floor(s / 3600);
  return h < 48 ? `${h} h ${Math.floor((s % 3600) / 60)} min` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function bytes(value: number | null | undefined): string {
  if (!value) return "–";
  const mib = value / (1024 * 1024);
  return mib < 1024 ? `${mib.toFixed(1)} MiB` : `${(mib / 1024).toFixed(2)} GiB`;
}

export function percent(value: number | null | undefined): string {
  return value === null || value === undefined ? "–" : `${value.toFixed(1)} %`;
}

export function clock(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === "") return "–";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleTimeString();
}

/** Replaces the rows of a table's body. */
export function fillRows(table: HTMLTableElement, rows: HTMLTableRowElement[], empty: string): void {
  const body = table.tBodies[0] ?? table.createTBody();
  const columns = table.tHead?.rows[0]?.cells.length ?? 1;
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: String(columns), class: "empty" }, empty))]));
}
