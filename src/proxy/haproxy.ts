// HAProxy configuration for a pgha cluster: fills config/haproxy.cfg.tmpl. The template is read
// once when this module loads; rendering itself is a pure function of the template and the input.
// Template syntax, deliberately tiny (no template library): `{{name}}` placeholders, and blocks
// `{{#section}}` ... `{{/section}}` on lines of their own, repeated once per member ("members") or
// kept only when the value is set ("stats").
import { readFileSync } from 'node:fs';
import { PgHaError } from '../errors.ts';

export interface HaproxyMember {
  /** Member name (the `server` name in HAProxy). */
  name: string;
  /** Where clients reach its PostgreSQL. */
  pgHost: string;
  pgPort: number;
  /** Where HAProxy reaches its agent's REST API for the health checks. */
  apiHost: string;
  apiPort: number;
}

export interface HaproxyInput {
  readWritePort: number;
  readOnlyPort: number;
  /** HAProxy's status page; omitted when unset. */
  statsPort?: number;
  /** Address the listeners bind to; default 127.0.0.1. */
  bindHost?: string;
  /** Health-check interval of an up server (HAProxy `inter`), in ms; 100..60000. */
  checkIntervalMs: number;
  members: readonly HaproxyMember[];
  /**
   * The agents' REST API is HTTPS: checks use TLS and verify the agent's certificate against
   * `caFile`; `crtFile` (one PEM with certificate and key) is presented when the agents ask for a
   * client certificate (verify_client: required).
   */
  apiTls?: { caFile: string; crtFile?: string };
}

export const HAPROXY_TEMPLATE_PATH = new URL('../../config/haproxy.cfg.tmpl', import.meta.url);
const TEMPLATE = readFileSync(HAPROXY_TEMPLATE_PATH, 'utf8');

/** Names and hosts: nothing that could end a line or start a new HAProxy keyword. No IPv6: `addr` would need another syntax. */
const NAME = /^[A-Za-z0-9_.-]+$/;

function invalid(field: string, msg: string): PgHaError {
  return new PgHaError('PGHA_CONFIG_INVALID', `haproxy: ${field}: ${msg}`);
}

function checkPort(field: string, p: number): string {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw invalid(field, `a port between 1 and 65535, not ${String(p)}`);
  return String(p);
}

/** A file path HAProxy reads: absolute, nothing that could split the server line. */
function checkPath(field: string, p: string): string {
  if (!/^\/[A-Za-z0-9_.\/-]+$/.test(p)) throw invalid(field, `an absolute path of letters, digits, _ . / - only, not ${JSON.stringify(p)}`);
  return p;
}

function checkName(field: string, s: string): string {
  if (!NAME.test(s)) throw invalid(field, `letters, digits, _ . - only (no IPv6 literal), not ${JSON.stringify(s)}`);
  return s;
}

type Vars = Record<string, string>;

/** The values of each placeholder and section, validated. */
function variables(i: HaproxyInput): { vars: Vars; sections: Record<string, Vars[]> } {
  const ms = i.checkIntervalMs;
  if (!Number.isInteger(ms) || ms < 100 || ms > 60_000) throw invalid('checkIntervalMs', `an integer between 100 and 60000, not ${String(ms)}`);
  // While a server changes state, and while it is down, check twice as often: failover speed is
  // decided by how fast the old primary goes down and the new one comes up.
  const fast = Math.max(100, Math.round(ms / 2));
  const vars: Vars = {
    bindHost: checkName('bindHost', i.bindHost ?? '127.0.0.1'),
    readWritePort: checkPort('readWritePort', i.readWritePort),
    readOnlyPort: checkPort('readOnlyPort', i.readOnlyPort),
    inter: String(ms),
    fastinter: String(fast),
    downinter: String(fast),
    downAfterMs: String(ms + fast),
    // HTTPS agents: the check speaks TLS and accepts only a certificate the CA signed.
    checkSsl: i.apiTls === undefined ? '' : ` check-ssl verify required ca-file ${checkPath('apiTls.caFile', i.apiTls.caFile)}${
      i.apiTls.crtFile === undefined ? '' : ` crt ${checkPath('apiTls.crtFile', i.apiTls.crtFile)}`}`,
  };
  const ports = [i.readWritePort, i.readOnlyPort];
  const stats: Vars[] = [];
  if (i.statsPort !== undefined) {
    vars.statsPort = checkPort('statsPort', i.statsPort);
    ports.push(i.statsPort);
    stats.push({});
  }
  if (new Set(ports).size !== ports.length) throw invalid('ports', `the listener ports must differ: ${ports.join(', ')}`);
  const seen = new Set<string>();
  const members = i.members.map((m, k) => {
    const name = checkName(`members[${k}].name`, m.name);
    if (seen.has(name)) throw invalid(`members[${k}].name`, `duplicate member name ${name}`);
    seen.add(name);
    return {
      name,
      pgHost: checkName(`members[${k}].pgHost`, m.pgHost),
      pgPort: checkPort(`members[${k}].pgPort`, m.pgPort),
      apiHost: checkName(`members[${k}].apiHost`, m.apiHost),
      apiPort: checkPort(`members[${k}].apiPort`, m.apiPort),
    };
  });
  return { vars, sections: { members, stats } };
}

function fill(text: string, v: Vars): string {
  return text.replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    const val = v[k];
    if (val === undefined) throw new Error(`haproxy template: no value for {{${k}}}`);
    return val;
  });
}

/** Pure: render `template` for `input`. Exported for tests with their own templates. */
export function renderTemplate(template: string, input: HaproxyInput): string {
  const { vars, sections } = variables(input);
  const expanded = template.replace(/^\{\{#(\w+)\}\}\n([\s\S]*?)^\{\{\/\1\}\}\n/gm, (_, name: string, block: string) => {
    const rows = sections[name];
    if (rows === undefined) throw new Error(`haproxy template: unknown section {{#${name}}}`);
    return rows.map((row) => fill(block, { ...vars, ...row })).join('');
  });
  return fill(expanded, vars);
}

/** The HAProxy configuration for `input`, from config/haproxy.cfg.tmpl. */
export function renderHaproxyConfig(input: HaproxyInput): string {
  return renderTemplate(TEMPLATE, input);
}
