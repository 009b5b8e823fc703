// TLS and authentication towards etcd: reading the PEM files named by etcd.cacert/cert/key, and
// telling a misconfiguration (wrong CA, expired or refused certificate, plain HTTP behind
// `protocol: https`, bad username/password) apart from an etcd that is merely unreachable. The
// first is fatal at agent start with a message naming the setting and the file; the second is
// retried. Messages name files, never their contents, and never the password.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { PgHaError } from '../errors.ts';

/** The etcd settings as the node YAML (or pghactl's flags) gives them. */
export interface EtcdTlsSettings {
  protocol: 'http' | 'https';
  cacert?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  username?: string | undefined;
}

/** What the etcd client gets: the PEM contents. */
export interface EtcdCredentials {
  rootCertificate?: Buffer;
  certChain?: Buffer;
  privateKey?: Buffer;
}

/** Where the settings came from (a config file path, or "pghactl flags"), for messages. */
export interface EtcdTlsContext extends EtcdTlsSettings {
  source: string;
}

function readPem(field: string, file: string, source: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const why = (err as Error).message.replace(/, \w+ '.*'$/, '');
    throw new PgHaError('PGHA_CONFIG_INVALID', `${source}: etcd.${field}: cannot read ${file}: ${why}`, { cause: err });
  }
}

function parseCert(field: string, file: string, pem: Buffer, source: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new PgHaError('PGHA_CONFIG_INVALID', `${source}: etcd.${field}: ${file} is not a PEM certificate`);
  }
}

/**
 * Read and check etcd.cacert/cert/key: readable, PEM, the key belongs to the certificate.
 * PGHA_CONFIG_INVALID naming the file and the field otherwise. Called by loadConfig, so both the
 * agent and pghactl refuse an unusable file before they try to connect.
 */
export function readEtcdCredentials(e: EtcdTlsSettings, source: string): EtcdCredentials | undefined {
  if (e.protocol !== 'https') return undefined;
  const out: EtcdCredentials = {};
  if (e.cacert !== undefined) {
    out.rootCertificate = readPem('cacert', e.cacert, source);
    parseCert('cacert', e.cacert, out.rootCertificate, source);
  }
  if (e.cert !== undefined && e.key !== undefined) {
    out.certChain = readPem('cert', e.cert, source);
    out.privateKey = readPem('key', e.key, source);
    const cert = parseCert('cert', e.cert, out.certChain, source);
    let key;
    try {
      key = createPrivateKey(out.privateKey);
    } catch {
      // The parser's message could quote a piece of the key: say only what is wrong.
      throw new PgHaError('PGHA_CONFIG_INVALID', `${source}: etcd.key: ${e.key} is not an unencrypted PEM private key`);
    }
    if (!cert.checkPrivateKey(key)) throw new PgHaError('PGHA_CONFIG_INVALID', `${source}: etcd.key: ${e.key} is not the key of the certificate ${e.cert}`);
  }
  return out;
}

/** An expired or not yet valid client certificate or CA, told before any connection is tried. */
export function checkCertificateDates(ctx: EtcdTlsContext, creds: EtcdCredentials | undefined, now = new Date()): void {
  const check = (field: 'cacert' | 'cert', file: string | undefined, pem: Buffer | undefined) => {
    if (file === undefined || pem === undefined) return;
    const c = new X509Certificate(pem);
    if (new Date(c.validTo) < now) throw tlsError(ctx, `etcd.${field}: the certificate in ${file} expired on ${new Date(c.validTo).toISOString()}`);
    if (new Date(c.validFrom) > now) throw tlsError(ctx, `etcd.${field}: the certificate in ${file} is not valid before ${new Date(c.validFrom).toISOString()}`);
  };
  check('cacert', ctx.cacert, creds?.rootCertificate);
  check('cert', ctx.cert, creds?.certChain);
}

function tlsError(ctx: EtcdTlsContext, msg: string, cause?: unknown): PgHaError {
  return new PgHaError('PGHA_DCS_TLS', `${ctx.source}: ${msg}`, cause === undefined ? {} : { cause });
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * A fatal explanation of a failed first call to etcd at `host`, or null when the failure is
 * ordinary unavailability (refused, timed out, DNS) that the HA loop retries. Uses two probes
 * when gRPC's message alone is ambiguous: a plain HTTP GET /version (does a https-configured
 * host answer plain HTTP?) and a TLS handshake (does a http-configured host speak TLS?).
 */
export async function explainEtcdFailure(err: unknown, ctx: EtcdTlsContext, host: string, budgetMs: number): Promise<PgHaError | null> {
  const timeoutMs = Math.max(1, Math.round(budgetMs)); // AbortSignal.timeout takes whole ms only
  const name = err instanceof Error ? err.constructor.name : '';
  const msg = messageOf(err);
  const ca = ctx.cacert === undefined ? 'the system CAs (etcd.cacert is not set)' : `etcd.cacert (${ctx.cacert})`;
  if (name === 'EtcdAuthenticationFailedError') {
    return new PgHaError('PGHA_DCS_AUTH', `${ctx.source}: etcd.username/etcd.password: etcd at ${host} refused the credentials of user "${ctx.username ?? ''}"`, { cause: err });
  }
  if (/authentication is not enabled/.test(msg)) {
    return new PgHaError('PGHA_DCS_AUTH', `${ctx.source}: etcd.username is set but authentication is not enabled on etcd at ${host}: remove etcd.username/password or enable etcd auth`, { cause: err });
  }
  if (name === 'EtcdPermissionDeniedError' || /user name is empty|invalid auth token/.test(msg)) {
    const who = ctx.username === undefined ? 'no etcd.username is set' : `user "${ctx.username}" (etcd.username)`;
    return new PgHaError('PGHA_DCS_AUTH', `${ctx.source}: etcd.username: etcd at ${host} denied access: ${who}; etcd authentication is on and the user needs read-write access to the namespace`, { cause: err });
  }
  if (/certificate has expired/.test(msg)) {
    return tlsError(ctx, `etcd.hosts: the server certificate of etcd at ${host} has expired`, err);
  }
  if (/unable to verify|self[- ]signed certificate|unable to get (local )?issuer|certificate signature failure/.test(msg)) {
    return tlsError(ctx, `etcd.cacert: the server certificate of etcd at ${host} is not signed by ${ca}`, err);
  }
  if (/Hostname\/IP does not match|altnames/.test(msg)) {
    return tlsError(ctx, `etcd.hosts: the server certificate of etcd at ${host} is not issued for that name or address`, err);
  }
  if (/alert certificate required|alert bad certificate|alert unknown ca|alert certificate expired|alert certificate unknown|alert handshake failure/.test(msg)) {
    return ctx.cert === undefined
      ? tlsError(ctx, `etcd.cert: etcd at ${host} requires a client certificate (--client-cert-auth) and etcd.cert/etcd.key are not set`, err)
      : tlsError(ctx, `etcd.cert: etcd at ${host} refused the client certificate ${ctx.cert}: not signed by a CA that etcd trusts (its --trusted-ca-file), expired, or not for client use`, err);
  }
  if (ctx.protocol === 'https' && /disconnected before secure TLS|wrong version number|packet length too long|unexpected eof|ECONNRESET/i.test(msg)) {
    if (await answersPlainHttp(host, timeoutMs)) {
      return tlsError(ctx, `etcd.protocol: is https but etcd at ${host} serves plain HTTP (no TLS): set protocol: http or give etcd --cert-file/--key-file`, err);
    }
    return null;
  }
  if (ctx.protocol === 'http' && /Failed to connect|Connection dropped|ECONNRESET|Protocol error/i.test(msg) && await speaksTls(host, timeoutMs)) {
    return tlsError(ctx, `etcd.protocol: is http but etcd at ${host} speaks TLS: set protocol: https and etcd.cacert (and etcd.cert/etcd.key)`, err);
  }
  return null;
}

/** Does `host` answer a plain-HTTP GET /version (as an etcd without TLS does)? */
async function answersPlainHttp(host: string, timeoutMs: number): Promise<boolean> {
  try {
    const r = await fetch(`http://${host}/version`, { signal: AbortSignal.timeout(timeoutMs) });
    await r.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

/** Does `host` complete a TLS handshake (ignoring who signed its certificate)? */
function speaksTls(host: string, timeoutMs: number): Promise<boolean> {
  const i = host.lastIndexOf(':');
  return new Promise((resolve) => {
    const s = tlsConnect({ host: host.slice(0, i), port: Number(host.slice(i + 1)), rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    const done = (v: boolean) => { clearTimeout(timer); s.destroy(); resolve(v); };
    // Bounded by the caller's budget (retry_timeout): a silent host is "not TLS", i.e. unavailable.
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('secureConnect', () => done(true));
    s.once('error', (e: Error) => done(/alert|certificate/i.test(e.message)));
  });
}
