// Reading and validating the node configuration (and dynamic-config edits). Every error names the
// file (or other source) and each bad field as a dotted path, one line per problem, so an operator
// fixes all of them in one go. Messages never quote the offending YAML line: it may hold a password.
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { readEtcdCredentials } from '../dcs/etcd-tls.ts';
import { PgHaError } from '../errors.ts';
import { dynamicConfigSchema, nodeConfigSchema, type DynamicConfig, type NodeConfig } from './schema.ts';
import { convertPatroniConfig, type NotCarried } from './patroni.ts';

type Issue = z.core.$ZodIssue;
type PathKey = PropertyKey;

/** `postgresql.data_dir`, `etcd.hosts[1]`, `postgresql.parameters["auto_explain.log_min_duration"]`. */
function dottedPath(path: readonly PathKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z0-9_-]+$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

/** Does this issue sit at the top of its own value (a type mismatch of the whole value)? */
function isWholeValueTypeError(issues: readonly Issue[]): boolean {
  return issues.length > 0 && issues.every((i) => i.path.length === 0 && i.code === 'invalid_type');
}

/** Flatten one zod issue into `[path, message]` pairs, with readable wording for the common cases. */
function explain(issue: Issue, prefix: readonly PathKey[]): Array<[readonly PathKey[], string]> {
  const path = [...prefix, ...issue.path];
  switch (issue.code) {
    case 'unrecognized_keys':
      // One line per unknown key, named by its own path: "tags.nofailure: unknown key".
      return issue.keys.map((k) => [[...path, k], 'unknown key']);
    case 'invalid_type':
      return [[path, /received undefined$/.test(issue.message) ? `required (expected ${issue.expected})` : issue.message]];
    case 'invalid_union': {
      // A branch whose failure lies deeper than a plain type mismatch is the one the user meant
      // (e.g. a map given where "a string or a map" was allowed): report its issues.
      const meant = issue.errors.filter((branch) => !isWholeValueTypeError(branch));
      if (meant.length === 1) return meant[0]!.flatMap((i) => explain(i, path));
      const expected = issue.errors.flatMap((b) => b.map((i) => (i.code === 'invalid_type' ? i.expected : null))).filter((e) => e !== null);
      const received = /received (\S+)$/.exec(issue.errors[0]?.[0]?.message ?? '')?.[1];
      return expected.length > 0
        ? [[path, `expected ${[...new Set(expected)].join(' or ')}${received === undefined ? '' : `, received ${received}`}`]]
        : [[path, issue.message]];
    }
    case 'invalid_key':
      return issue.issues.length > 0
        ? issue.issues.map((i) => [path, `bad key: ${i.message}`])
        : [[path, issue.message]];
    case 'invalid_element':
      return issue.issues.flatMap((i) => explain(i, path));
    default:
      return [[path, issue.message]];
  }
}

/**
 * One line per problem: `<source>: <dotted.path>: <message>`. `source` is a file path or any
 * label ("request body", "etcd /config"). Exported for the REST API and pghactl.
 */
export function formatZodIssues(issues: readonly Issue[], source: string): string {
  const lines = issues.flatMap((i) => explain(i, [])).map(([p, msg]) => `${source}: ${p.length === 0 ? '(top level)' : dottedPath(p)}: ${msg}`);
  return [...new Set(lines)].join('\n');
}

/** The split-brain timing rule of dynamicConfigSchema (its superRefine reports it on `ttl`). */
function isUnsafeTiming(i: Issue): boolean {
  return i.code === 'custom' && i.path[i.path.length - 1] === 'ttl' && i.message.startsWith('unsafe timing');
}

/** UNSAFE only when the timing rule is the sole problem; any other bad field makes it INVALID. */
function validationError(issues: readonly Issue[], source: string): PgHaError {
  const code = issues.length > 0 && issues.every(isUnsafeTiming) ? 'PGHA_CONFIG_UNSAFE' : 'PGHA_CONFIG_INVALID';
  return new PgHaError(code, formatZodIssues(issues, source));
}

/** YAML text as a JS value; parse errors name the line and column, never quote it (it may hold a password). */
export function parseYamlFile(text: string, path: string): unknown {
  const lineCounter = new LineCounter();
  // prettyErrors off: the pretty form quotes the source line, which may contain a password.
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((e) => {
      const { line, col } = lineCounter.linePos(e.pos[0]);
      return `${path}: line ${line}, column ${col}: ${e.message}`;
    });
    throw new PgHaError('PGHA_CONFIG_PARSE', lines.join('\n'));
  }
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (err) {
    // e.g. an alias bomb beyond yaml's maxAliasCount
    throw new PgHaError('PGHA_CONFIG_PARSE', `${path}: ${(err as Error).message}`, { cause: err });
  }
  if (value === null || value === undefined) throw new PgHaError('PGHA_CONFIG_INVALID', `${path}: the file is empty`);
  return value;
}

/** Parse and validate a node configuration held in `text`; `path` names it in error messages. */
export function parseConfig(text: string, path: string): NodeConfig {
  const value = parseYamlFile(text, path);
  const r = nodeConfigSchema.safeParse(value);
  if (!r.success) throw validationError(r.error.issues, path);
  return r.data;
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    // "ENOENT: no such file or directory, open '/x'": drop the repeated path.
    const why = (err as Error).message.replace(/, \w+ '.*'$/, '');
    throw new PgHaError('PGHA_CONFIG_READ', `${path}: cannot read: ${why}`, { cause: err });
  }
}

/**
 * A Patroni YAML (`pgha --patroni-config`), converted as `pghactl convert-config` does, then
 * validated as pgha's own; `notCarried`: the Patroni settings the conversion left out.
 */
export async function loadPatroniConfig(path: string): Promise<{ config: NodeConfig; notCarried: NotCarried[] }> {
  const { config, notCarried } = convertPatroniConfig(parseYamlFile(await readText(path), path));
  const r = nodeConfigSchema.safeParse(config);
  if (!r.success) throw validationError(r.error.issues, `${path} (Patroni's format, converted)`);
  readEtcdCredentials(r.data.etcd, path);
  return { config: r.data, notCarried };
}

/** Read, parse and validate the node configuration file. */
export async function loadConfig(path: string): Promise<NodeConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    // "ENOENT: no such file or directory, open '/x'": drop the repeated path.
    const why = (err as Error).message.replace(/, \w+ '.*'$/, '');
    throw new PgHaError('PGHA_CONFIG_READ', `${path}: cannot read: ${why}`, { cause: err });
  }
  const config = parseConfig(text, path);
  // The files named by etcd.cacert/cert/key: readable, PEM, key matching certificate.
  readEtcdCredentials(config.etcd, path);
  return config;
}

/** Validate a dynamic-config value (from etcd, a REST request body or pghactl). */
export function parseDynamicConfig(value: unknown, source: string): DynamicConfig {
  const r = dynamicConfigSchema.safeParse(value);
  if (!r.success) throw validationError(r.error.issues, source);
  return r.data;
}
