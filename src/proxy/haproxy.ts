// Renders config/haproxy.cfg.tmpl for a set of members. Pure apart from reading the template.
import { readFileSync } from 'node:fs';

export interface HaproxyMember { name: string; pgHost: string; pgPort: number; apiHost: string; apiPort: number }

export interface HaproxyInput {
  readWritePort: number;
  readOnlyPort: number;
  bindHost?: string;
  /** Health-check interval in ms (HAProxy `inter`). */
  checkIntervalMs: number;
  members: HaproxyMember[];
}

const TEMPLATE_PATH = new URL('../../config/haproxy.cfg.tmpl', import.meta.url);
const SAFE = /^[A-Za-z0-9_.:-]+$/;

export function renderTemplate(template: string, i: HaproxyInput): string {
  const vars: Record<string, string> = {
    bindHost: i.bindHost ?? '127.0.0.1', readWritePort: String(i.readWritePort), readOnlyPort: String(i.readOnlyPort),
    checkIntervalMs: String(i.checkIntervalMs), downAfterMs: String(2 * i.checkIntervalMs),
  };
  const fill = (text: string, v: Record<string, string>) =>
    text.replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
      const val = v[k];
      if (val === undefined) throw new Error(`haproxy template: no value for {{${k}}}`);
      if (!SAFE.test(val)) throw new Error(`haproxy template: unsafe value for {{${k}}}: ${JSON.stringify(val)}`);
      return val;
    });
  const expanded = template.replace(/\{\{#members\}\}\n([\s\S]*?)\{\{\/members\}\}\n/g, (_, block: string) =>
    i.members.map((m) => fill(block, { name: m.name, pgHost: m.pgHost, pgPort: String(m.pgPort), apiHost: m.apiHost, apiPort: String(m.apiPort) })).join(''));
  return fill(expanded, vars);
}

export function renderHaproxyConfig(i: HaproxyInput): string {
  return renderTemplate(readFileSync(TEMPLATE_PATH, 'utf8'), i);
}
