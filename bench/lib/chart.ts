import type { LoadResult } from './load.js';

interface ChartInput {
  hello: LoadResult;
  argon: { hashPerS: number; verifyPerS: number };
  results: {
    server?: { me: LoadResult; login: LoadResult; register: LoadResult; refresh: LoadResult; meDuringLogins?: LoadResult };
    pglite?: { me: LoadResult };
    peer?: { signIn: LoadResult; getSession: LoadResult; hash: string };
  };
}

interface Bar {
  label: string;
  value: number;
  p99?: number;
  color: string;
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** A plain SVG chart: per route, our req/s (and p99) beside the ceiling and the peer, log scale. */
export function renderChart(input: ChartInput): string {
  const s = input.results.server;
  const groups: Array<{ title: string; bars: Bar[] }> = [];
  const ours = '#2563eb';
  const ceiling = '#9ca3af';
  const peer = '#f59e0b';
  if (s) {
    groups.push({ title: 'GET /v1/users/me', bars: [
      { label: 'ours (PostgreSQL)', value: s.me.rps, p99: s.me.p99, color: ours },
      ...(input.results.pglite ? [{ label: 'ours (PGlite)', value: input.results.pglite.me.rps, p99: input.results.pglite.me.p99, color: ours }] : []),
      { label: 'Fastify hello (ceiling)', value: input.hello.rps, p99: input.hello.p99, color: ceiling },
      ...(input.results.peer ? [{ label: 'Better Auth get-session', value: input.results.peer.getSession.rps, p99: input.results.peer.getSession.p99, color: peer }] : []),
    ] });
    groups.push({ title: 'POST /v1/sessions (login)', bars: [
      { label: 'ours', value: s.login.rps, p99: s.login.p99, color: ours },
      { label: 'Argon2id verify (ceiling)', value: input.argon.verifyPerS, color: ceiling },
      ...(input.results.peer ? [{ label: `Better Auth sign-in (${input.results.peer.hash})`, value: input.results.peer.signIn.rps, p99: input.results.peer.signIn.p99, color: peer }] : []),
    ] });
    groups.push({ title: 'POST /v1/users (register)', bars: [
      { label: 'ours', value: s.register.rps, p99: s.register.p99, color: ours },
      { label: 'Argon2id hash (ceiling)', value: input.argon.hashPerS, color: ceiling },
    ] });
    groups.push({ title: 'POST /v1/sessions/refresh', bars: [
      { label: 'ours', value: s.refresh.rps, p99: s.refresh.p99, color: ours },
      { label: 'Fastify hello (ceiling)', value: input.hello.rps, color: ceiling },
    ] });
  }
  const max = Math.max(...groups.flatMap((g) => g.bars.map((b) => b.value)), 10);
  const scale = (v: number) => (Math.log10(Math.max(v, 1)) / Math.log10(max)) * 460;
  const rowH = 22;
  let y = 40;
  const parts: string[] = [];
  for (const group of groups) {
    parts.push(`<text x="10" y="${y}" font-weight="bold">${escape(group.title)}</text>`);
    y += 8;
    for (const bar of group.bars) {
      parts.push(`<rect x="220" y="${y}" width="${scale(bar.value).toFixed(1)}" height="16" fill="${bar.color}"/>`);
      parts.push(`<text x="10" y="${y + 12}">${escape(bar.label)}</text>`);
      parts.push(`<text x="${(226 + scale(bar.value)).toFixed(1)}" y="${y + 12}">${bar.value} req/s${bar.p99 !== undefined ? `, p99 ${bar.p99} ms` : ''}</text>`);
      y += rowH;
    }
    y += 16;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="900" height="${y + 10}" font-family="sans-serif" font-size="12">
<text x="10" y="20" font-size="14" font-weight="bold">Requests per second per route (log scale), ours against the machine's ceiling and the peer</text>
${parts.join('\n')}
</svg>
`;
}
