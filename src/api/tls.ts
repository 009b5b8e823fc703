// TLS material of the REST API, read once at start: the server side (restapi.certfile, keyfile,
// cafile, verify_client) and the client side used by the agent's calls to other members and by
// pghactl (ctl.certfile, keyfile, cacert, each falling back to the restapi one, as in Patroni).
// A file that cannot be read fails the start with the file, the field and the OS reason.
import { readFileSync } from 'node:fs';
import type { NodeConfig } from '../config/schema.ts';
import { PgHaError } from '../errors.ts';

export interface ServerTls {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  /** verify_client optional or required: ask the client for a certificate. */
  requestCert: boolean;
  /** verify_client required: the handshake fails without a valid client certificate. */
  rejectUnauthorized: boolean;
}

export interface ClientTls {
  /** CA of the agents' server certificates; absent: the system's CAs. */
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** false only for pghactl with ctl.insecure. */
  rejectUnauthorized: boolean;
}

/** Read the file named by `field`; a failure names the config file, the field and the reason. */
export function readTlsFile(file: string, field: string, source: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new PgHaError('PGHA_CONFIG_READ', `${source}: ${field}: cannot read ${file}: ${why}`, { cause: err });
  }
}

/** The https options of the API server, or null when restapi.certfile is not set (plain HTTP). */
export function loadServerTls(c: NodeConfig, source: string): ServerTls | null {
  const r = c.restapi;
  if (r.certfile === undefined || r.keyfile === undefined) return null;
  return {
    cert: readTlsFile(r.certfile, 'restapi.certfile', source),
    key: readTlsFile(r.keyfile, 'restapi.keyfile', source),
    ...(r.cafile === undefined ? {} : { ca: readTlsFile(r.cafile, 'restapi.cafile', source) }),
    requestCert: r.verify_client !== 'none',
    rejectUnauthorized: r.verify_client === 'required',
  };
}

/**
 * What a caller of the REST API presents and trusts. `insecure` (ctl.insecure) is honoured only
 * when the caller passes `allowInsecure` (pghactl); the agent always verifies.
 */
export function loadClientTls(c: NodeConfig, source: string, allowInsecure = false): ClientTls {
  const pick = (ctl: string | undefined, api: string | undefined, ctlField: string, apiField: string) =>
    ctl !== undefined ? { file: ctl, field: ctlField } : api !== undefined ? { file: api, field: apiField } : null;
  const ca = pick(c.ctl.cacert, c.restapi.cafile, 'ctl.cacert', 'restapi.cafile');
  const cert = pick(c.ctl.certfile, c.restapi.certfile, 'ctl.certfile', 'restapi.certfile');
  const key = pick(c.ctl.keyfile, c.restapi.keyfile, 'ctl.keyfile', 'restapi.keyfile');
  const out: ClientTls = { rejectUnauthorized: !(allowInsecure && c.ctl.insecure) };
  if (ca !== null) out.ca = readTlsFile(ca.file, ca.field, source);
  if (cert !== null && key !== null) {
    out.cert = readTlsFile(cert.file, cert.field, source);
    out.key = readTlsFile(key.file, key.field, source);
  }
  return out;
}
