// pg_lsn text ("16/B374D848") <-> byte position. Pure.

export function parseLsn(text: string): number {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (m === null) throw new Error(`not a pg_lsn: ${JSON.stringify(text)}`);
  return parseInt(m[1] ?? '0', 16) * 2 ** 32 + parseInt(m[2] ?? '0', 16);
}

export function formatLsn(pos: number): string {
  const hi = Math.floor(pos / 2 ** 32);
  const lo = pos - hi * 2 ** 32;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}
