import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AuditLog } from '../src/audit/audit-log.js';
import { pruneTokens } from '../src/account/tokens.js';
import { PRUNE_BATCH_ROWS } from '../src/db/batched-delete.js';
import { pruneFlows } from '../src/federation/repository.js';
import { pruneMfaTokens } from '../src/mfa/repository.js';
import { pruneChallenges } from '../src/passkeys/repository.js';
import { pruneEndedSessions } from '../src/sessions/repository.js';
import { LoginThrottle } from '../src/throttling/login-throttle.js';
import { pruneRateLimitHits } from '../src/throttling/rate-limit.js';
import { bearer, login, registerUser, startTestService, type TestService } from './helpers/app.js';

const DAY_MS = 86_400_000;

/**
 * Data that grows with use stays bounded: each pruning job deletes what is past its time, oldest
 * first, in statements of at most a batch of rows, and keeps the rest.
 */
describe('pruning', () => {
  let svc: TestService;
  let userId: string;
  before(async () => {
    svc = await startTestService();
    userId = (await registerUser(svc.app)).id;
  });
  after(() => svc.close());

  /** The rows deleted by each statement of one prune. */
  function statements(): { counts: number[]; onStatement: (n: number) => void } {
    const counts: number[] = [];
    return { counts, onStatement: (n) => counts.push(n) };
  }

  const at = (ms: number) => new Date(ms);
  let serial = 0;
  const unique = (prefix: string) => `${prefix}${++serial}`.padEnd(40, 'x');

  it('when AUDIT_RETENTION_DAYS is unset, then events are kept 365 days', () => {
    assert.equal(svc.config.auditRetentionDays, 365);
  });

  it('when sessions ended longer ago than the retention, then they go a batch at a time; a session ended 364 days ago, or still running, stays', async () => {
    const user = await registerUser(svc.app);
    const ended = [];
    for (let i = 0; i < 5; i++) ended.push(await login(svc.app, user));
    const running = await login(svc.app, user);
    const endedLater = await login(svc.app, user);
    for (const s of [...ended, endedLater]) {
      assert.equal((await svc.app.inject({ method: 'DELETE', url: '/v1/sessions/current', headers: bearer(s.accessToken) })).statusCode, 204);
    }
    svc.clock.advance(366 * DAY_MS);
    // Sessions end at the database's time: this one ended within the retention.
    await svc.db.updateTable('user_sessions').set({ ended_at: at(svc.clock.now() - 364 * DAY_MS) }).where('session_id', '=', endedLater.sessionId).execute();

    const s = statements();
    const deleted = await pruneEndedSessions(svc.db, svc.config.auditRetentionDays, svc.clock.now(), { batchRows: 2, onStatement: s.onStatement });

    assert.equal(deleted, 5);
    assert.deepEqual(s.counts, [2, 2, 1]);
    const left = await svc.db.selectFrom('user_sessions').select('session_id').where('user_id', '=', user.id).orderBy('session_id').execute();
    assert.deepEqual(left.map((r) => r.session_id), [running.sessionId, endedLater.sessionId]);
  });

  it('when 2,500 audit events are past the retention, then they go in statements of at most 1,000 rows, and an event of 364 days ago stays', async () => {
    await svc.db.deleteFrom('audit_events').execute();
    const old = Array.from({ length: 2_500 }, (_, i) => ({ event: 'login_succeeded', user_id: userId, occurred_at: at(svc.clock.now() - i) }));
    await svc.db.insertInto('audit_events').values(old).execute();
    svc.clock.advance(366 * DAY_MS);
    await svc.db.insertInto('audit_events').values({ event: 'login_failed', user_id: userId, occurred_at: at(svc.clock.now() - 364 * DAY_MS) }).execute();

    const s = statements();
    const deleted = await new AuditLog(svc.db).prune(svc.config.auditRetentionDays, svc.clock.now(), { onStatement: s.onStatement });

    assert.equal(PRUNE_BATCH_ROWS, 1_000);
    assert.equal(deleted, 2_500);
    assert.deepEqual(s.counts, [1_000, 1_000, 500]);
    const left = await svc.db.selectFrom('audit_events').select('event').execute();
    assert.deepEqual(left.map((r) => r.event), ['login_failed']);
  });

  /** Five rows past their time, one not: each prune deletes the five in statements of 2, 2 and 1 rows. */
  const tables: Array<{ name: string; insert: (expiresAt: Date) => Promise<unknown>; prune: (batch: { batchRows: number; onStatement: (n: number) => void }) => Promise<number>; table: 'account_tokens' | 'mfa_tokens' | 'webauthn_challenges' | 'federation_states' | 'login_throttles' | 'rate_limit_hits'; statements?: number[] }> = [
    {
      name: 'mail tokens expired over a day ago',
      insert: (t) => svc.db.insertInto('account_tokens').values({ token_hash: unique('a'), user_id: userId, kind: 'verify_email', email: 'a@example.com', expires_at: new Date(t.getTime() - DAY_MS) }).execute(),
      prune: (o) => pruneTokens(svc.db, svc.clock.now(), o),
      table: 'account_tokens',
    },
    {
      name: 'mfa tokens expired over a day ago',
      insert: (t) => svc.db.insertInto('mfa_tokens').values({ token_hash: unique('m'), user_id: userId, expires_at: new Date(t.getTime() - DAY_MS) }).execute(),
      prune: (o) => pruneMfaTokens(svc.db, svc.clock.now(), o),
      table: 'mfa_tokens',
    },
    {
      name: 'passkey challenges expired',
      insert: (t) => svc.db.insertInto('webauthn_challenges').values({ challenge: unique('c'), purpose: 'authenticate', user_id: null, expires_at: t }).execute(),
      prune: (o) => pruneChallenges(svc.db, svc.clock.now(), o),
      table: 'webauthn_challenges',
    },
    {
      name: 'sign-in flow states expired',
      insert: (t) =>
        svc.db
          .insertInto('federation_states')
          .values({ state_hash: unique('s'), binding_hash: 'b', provider: 'github', user_id: null, nonce: 'n', code_verifier: 'v', return_to: '/', expires_at: t })
          .execute(),
      prune: (o) => pruneFlows(svc.db, new Date(svc.clock.now()), o),
      // then one statement finds no sign-up to delete
      statements: [2, 2, 1, 0],
      table: 'federation_states',
    },
    {
      name: 'login throttles idle over a day and not waiting',
      insert: (t) => svc.db.insertInto('login_throttles').values({ throttle_key: unique('t'), failures: 1, locked_until: null, updated_at: new Date(t.getTime() - DAY_MS) }).execute(),
      prune: (o) => new LoginThrottle({ db: svc.db, clock: svc.clock } as unknown as ConstructorParameters<typeof LoginThrottle>[0]).prune(o),
      table: 'login_throttles',
    },
    {
      name: 'rate-limit windows over an hour old (a key of two columns)',
      insert: (t) => svc.db.insertInto('rate_limit_hits').values({ bucket: 'login:203.0.113.9', window_start: new Date(t.getTime() - 3_600_000 - serial++ * 1_000), hits: 1 }).execute(),
      prune: (o) => pruneRateLimitHits(svc.db, svc.clock.now(), o),
      table: 'rate_limit_hits',
    },
  ];

  for (const table of tables) {
    it(`when five ${table.name} and one newer are pruned 2 rows a statement, then the five go in 3 statements and the newer stays`, async () => {
      await svc.db.deleteFrom(table.table).execute();
      for (let i = 0; i < 5; i++) await table.insert(new Date(svc.clock.now() - 60_000 - i * 1_000));
      await table.insert(new Date(svc.clock.now() + 3_600_000 * 2));

      const s = statements();
      const deleted = await table.prune({ batchRows: 2, onStatement: s.onStatement });

      assert.equal(deleted, 5);
      assert.deepEqual(s.counts, table.statements ?? [2, 2, 1]);
      const left = await svc.db.selectFrom(table.table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
      assert.equal(Number(left.n), 1);
    });
  }
});
