// Reading and validating the node configuration. Every error names the file and each bad field
// as a dotted path, so an operator can fix all of them in one go.
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { PgHaError } from '../errors.ts';
import { dynamicConfigSchema, nodeConfigSchema, type DynamicConfig, type NodeConfig } from './schema.ts';

/** One line per issue: `<source>: <dotted.path>: <message>`; unknown keys are named. */
export function formatZodIssues(issues: readonly z.core.$ZodIssue[], source: string): string {
  return issues
    .map((i) => {
      const path = i.path.map(String).join('.');
      const msg = i.code === 'unrecognized_keys' ? `unknown key(s) ${i.keys.map((k) => `"${k}"`).join(', ')}` : i.message;
      return `${source}: ${path === '' ? '(top level)' : path}: ${msg}`;
    })
    .join('\n');
}

function isUnsafe(issues: readonly z.core.$ZodIssue[]): boolean {
  return issues.some((i) => i.message.startsWith('unsafe timing'));
}

export function parseConfig(text: string, source: string): NodeConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((e) => `${source}: line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0] ?? ''}`);
    throw new PgHaError('PGHA_CONFIG_PARSE', lines.join('\n'));
  }
  const r = nodeConfigSchema.safeParse(doc.toJS());
  if (!r.success) {
    throw new PgHaError(isUnsafe(r.error.issues) ? 'PGHA_CONFIG_UNSAFE' : 'PGHA_CONFIG_INVALID', formatZodIssues(r.error.issues, source));
  }
  return r.data;
}

export async function loadConfig(path: string): Promise<NodeConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new PgHaError('PGHA_CONFIG_READ', `${path}: cannot read: ${(err as Error).message}`, { cause: err });
  }
  return parseConfig(text, path);
}

/** Validate a dynamic-config value (from etcd, the REST API or pghactl). */
export function parseDynamicConfig(value: unknown, source: string): DynamicConfig {
  const r = dynamicConfigSchema.safeParse(value);
  if (!r.success) {
    throw new PgHaError(isUnsafe(r.error.issues) ? 'PGHA_CONFIG_UNSAFE' : 'PGHA_CONFIG_INVALID', formatZodIssues(r.error.issues, source));
  }
  return r.data;
}
