// The status page: GET /ui on every agent. Three static files shipped in src/api/ui/ (no CDN, no
// framework, no network beyond this agent); the page polls this agent's GET /status, /cluster
// and, rarely, /history. It only reads: no credentials, no mutating calls. Documented in
// docs/status-page.md.
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply } from 'fastify';

/**
 * The page's Content-Security-Policy: scripts, styles and fetches from this agent only, no inline
 * script or style, no frames, no forms, no plugins. Every value reaches the DOM as textContent.
 */
export const UI_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

const ASSETS = {
  '/ui': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/ui/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
} as const;

/** Paths the page polls (kept out of the request log with the health checks). */
export const UI_POLLED_PATHS = ['/cluster', '/history'] as const;

function send(reply: FastifyReply, type: string, body: Buffer) {
  return reply
    .header('content-type', type)
    .header('content-security-policy', UI_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-cache')
    .send(body);
}

/** Register GET /ui and its assets; the files are read once, here (a missing file fails the start). */
export function registerUi(app: FastifyInstance): void {
  for (const [path, a] of Object.entries(ASSETS)) {
    const body = readFileSync(new URL(`./ui/${a.file}`, import.meta.url));
    app.get(path, async (_req, reply) => send(reply, a.type, body));
  }
}
