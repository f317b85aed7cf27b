import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startOfNextMinute } from './helpers/clock.js';
import { GOOD_PASSWORD, bearer, login, problem, registerUser, startTestService, uniqueName, type TestService } from './helpers/app.js';


/**
 * Retry-After counts whole seconds down from when the lock was written: a second that passes
 * between the lock and the attempt that reads it (a slow moment of the machine) takes one off.
 */
function assertRetryAfter(res: { headers: Record<string, unknown> }, waitS: number, label = ''): void {
  const given = Number(res.headers['retry-after']);
  assert.ok(given === waitS || given === waitS - 1, `${label} Retry-After ${String(res.headers['retry-after'])}, expected ${waitS}`);
}

function attempt(svc: TestService, body: Record<string, string>, ip = '203.0.113.7') {
  return svc.app.inject({ method: 'POST', url: '/v1/sessions', payload: body, remoteAddress: ip });
}

/** A registration of a new name from `ip`. */
function registerFrom(svc: TestService, ip: string) {
  const username = uniqueName();
  return svc.app.inject({
    method: 'POST',
    url: '/v1/users',
    payload: { username, name: 'N', dob: '1990-01-01', email: `${username}@example.com`, password: GOOD_PASSWORD },
    remoteAddress: ip,
  });
}

describe('throttling', () => {
  let svc: TestService;
  let limited: TestService;
  before(async () => {
    svc = await startTestService();
    limited = await startTestService({ rateLimitPerMinute: 3, loginAccountMaxFailuresPerHour: 4, loginMaxFailures: 50 });
  });
  after(async () => {
    await svc.close();
    await limited.close();
  });

  it('when an account and address fail 5 times in a row, then the 6th attempt waits 30 s with 429, even with the right password, and is not counted', async () => {
    const user = await registerUser(svc.app);
    for (let i = 0; i < 5; i++) {
      assert.equal((await attempt(svc, { username: user.username, password: 'wrong password here' })).statusCode, 401);
    }
    const locked = await attempt(svc, { username: user.username, password: user.password });
    assert.equal(locked.statusCode, 429);
    assert.equal(problem(locked).code, 'too_many_requests');
    assertRetryAfter(locked, 30);
    // The email is the same account: also waiting.
    assert.equal((await attempt(svc, { email: user.email, password: user.password })).statusCode, 429);
    const row = await svc.db.selectFrom('login_throttles').selectAll().where('throttle_key', 'like', 'account:%').execute();
    assert.equal(row.find((r) => r.throttle_key.startsWith(`account:${user.id}|`))?.failures, 5, 'attempts during the wait are not counted');
    // Another address is not affected.
    assert.equal((await attempt(svc, { username: user.username, password: user.password }, '198.51.100.9')).statusCode, 201);
  });

  it('when the wait is over and the next attempt fails again, then the wait doubles', async () => {
    const user = await registerUser(svc.app);
    for (let i = 0; i < 5; i++) await attempt(svc, { username: user.username, password: 'wrong password here' });
    await svc.db.updateTable('login_throttles').set({ locked_until: new Date(Date.now() - 1000) }).where('throttle_key', '=', `account:${user.id}|203.0.113.7`).execute();
    assert.equal((await attempt(svc, { username: user.username, password: 'wrong password here' })).statusCode, 401);
    const locked = await attempt(svc, { username: user.username, password: user.password });
    assert.equal(locked.statusCode, 429);
    assertRetryAfter(locked, 60);
  });

  it('when failures go on past each wait, then the wait doubles up to 15 minutes and never beyond: Retry-After stays at most 900', async () => {
    const user = await registerUser(svc.app);
    const ip = '203.0.113.61';
    const key = `account:${user.id}|${ip}`;
    for (let i = 0; i < 5; i++) assert.equal((await attempt(svc, { username: user.username, password: 'wrong password here' }, ip)).statusCode, 401);
    const waits: number[] = [];
    for (let round = 0; round < 8; round++) {
      const locked = await attempt(svc, { username: user.username, password: user.password }, ip);
      assert.equal(locked.statusCode, 429, locked.body);
      assert.equal(problem(locked).code, 'too_many_requests');
      waits.push(Number(locked.headers['retry-after']));
      assertRetryAfter(locked, [30, 60, 120, 240, 480, 900, 900, 900][round]!, `round ${round}:`);
      const row = await svc.db.selectFrom('login_throttles').select('locked_until').where('throttle_key', '=', key).executeTakeFirstOrThrow();
      assert.ok(row.locked_until!.getTime() <= Date.now() + 900_000, `round ${round}: locked until ${row.locked_until!.toISOString()}`);
      // Let the wait pass, and fail once more.
      await svc.db.updateTable('login_throttles').set({ locked_until: new Date(Date.now() - 1000) }).where('throttle_key', '=', key).execute();
      assert.equal((await attempt(svc, { username: user.username, password: 'wrong password here' }, ip)).statusCode, 401);
    }
    assert.ok(waits.every((w) => w <= 900), waits.join(', '));
  });

  it('when a name that belongs to no account fails, then it is throttled exactly like an account', async () => {
    const ghost = uniqueName('ghost');
    const user = await registerUser(svc.app);
    const seen = { ghost: [] as string[], real: [] as string[] };
    for (let i = 0; i < 6; i++) {
      const g = await attempt(svc, { username: ghost, password: 'wrong password here' }, '192.0.2.50');
      const r = await attempt(svc, { username: user.username, password: 'wrong password here' }, '192.0.2.50');
      seen.ghost.push(`${g.statusCode} ${problem(g).code} ${g.headers['retry-after'] === undefined ? '' : 'Retry-After'} ${g.body.length}`);
      seen.real.push(`${r.statusCode} ${problem(r).code} ${r.headers['retry-after'] === undefined ? '' : 'Retry-After'} ${r.body.length}`);
      if (i === 5) {
        assertRetryAfter(g, 30, 'ghost');
        assertRetryAfter(r, 30, 'real');
      }
    }
    assert.deepEqual(seen.ghost, seen.real);
    assert.match(seen.ghost[5]!, /^429 too_many_requests Retry-After/);
  });

  it('when a sign-in completes, then the failure count starts again', async () => {
    const user = await registerUser(svc.app);
    for (let i = 0; i < 4; i++) await attempt(svc, { username: user.username, password: 'wrong password here' });
    assert.equal((await attempt(svc, { username: user.username, password: user.password })).statusCode, 201);
    for (let i = 0; i < 4; i++) {
      assert.equal((await attempt(svc, { username: user.username, password: 'wrong password here' })).statusCode, 401);
    }
  });

  it('when a wrong current password is given on a password change, then it counts as a failed login and the account waits', async () => {
    const user = await registerUser(svc.app);
    const { accessToken } = await login(svc.app, user, {});
    const change = (current_password: string) =>
      svc.app.inject({
        method: 'PUT',
        url: '/v1/users/me/password',
        headers: bearer(accessToken),
        payload: { current_password, new_password: 'a brand new passphrase 7' },
        remoteAddress: '203.0.113.99',
      });
    for (let i = 0; i < 5; i++) assert.equal((await change('wrong password here')).statusCode, 403);
    const locked = await change(user.password);
    assert.equal(locked.statusCode, 429);
    assertRetryAfter(locked, 30);
    assert.equal((await attempt(svc, { username: user.username, password: user.password }, '203.0.113.99')).statusCode, 429);
  });

  it('when an account passes its hourly ceiling across addresses, then only addresses it signed in from before may try', async () => {
    const user = await registerUser(limited.app);
    await login(limited.app, user, {}); // signs in from 127.0.0.1, a known address from now on
    for (let i = 0; i < 4; i++) {
      assert.equal((await attempt(limited, { username: user.username, password: 'wrong password here' }, `198.18.0.${i + 1}`)).statusCode, 401);
    }
    const stranger = await attempt(limited, { username: user.username, password: user.password }, '198.18.0.200');
    assert.equal(stranger.statusCode, 429);
    assert.ok(Number(stranger.headers['retry-after']) > 0);
    const known = await limited.app.inject({ method: 'POST', url: '/v1/sessions', payload: { username: user.username, password: user.password } });
    assert.equal(known.statusCode, 201);
  });

  it('when an account passes its hourly ceiling, then a new address in the /64 it signed in from before counts as known, another /64 does not', async () => {
    const user = await registerUser(limited.app);
    assert.equal((await attempt(limited, { username: user.username, password: user.password }, '2001:db8:5:5::1')).statusCode, 201);
    for (let i = 0; i < 4; i++) {
      assert.equal((await attempt(limited, { username: user.username, password: 'wrong password here' }, `198.18.1.${i + 1}`)).statusCode, 401);
    }
    assert.equal((await attempt(limited, { username: user.username, password: user.password }, '2001:db8:5:6::1')).statusCode, 429);
    assert.equal((await attempt(limited, { username: user.username, password: user.password }, '2001:db8:5:5:aaaa:bbbb:cccc:dddd')).statusCode, 201, 'a privacy address of the same /64');
  });

  it('when an address registers more than the per-minute limit, then 429 with Retry-After, and other addresses still can', async () => {
    startOfNextMinute(limited.clock); // the counts start in a fresh window
    const register = (ip: string) => registerFrom(limited, ip);
    for (let i = 0; i < 3; i++) assert.equal((await register('192.0.2.77')).statusCode, 201);
    const refused = await register('192.0.2.77');
    assert.equal(refused.statusCode, 429);
    assert.equal(problem(refused).code, 'too_many_requests');
    assert.ok(Number(refused.headers['retry-after']) >= 1 && Number(refused.headers['retry-after']) <= 60);
    assert.equal((await register('192.0.2.78')).statusCode, 201);
    // More refusals in the same minute add no more audit rows: a flood is not a flood of writes.
    for (let i = 0; i < 5; i++) assert.equal((await register('192.0.2.77')).statusCode, 429);
    const rows = await limited.db.selectFrom('audit_events').select('event_id').where('event', '=', 'throttled').where('ip', '=', '192.0.2.77').execute();
    assert.equal(rows.length, 1);
  });

  it('when addresses of one IPv6 /64 register, then they share one per-minute count, and another /64 still can', async () => {
    startOfNextMinute(limited.clock); // the counts start in a fresh window
    const register = (ip: string) => registerFrom(limited, ip);
    for (const ip of ['2001:db8:a:b::1', '2001:db8:a:b::2', '2001:db8:a:b:ffff:ffff:ffff:fffe']) assert.equal((await register(ip)).statusCode, 201);
    assert.equal((await register('2001:db8:a:b::4')).statusCode, 429, 'a fresh address in the same /64 gets no fresh count');
    assert.equal((await register('2001:db8:a:c::1')).statusCode, 201);
  });

  it('when an account fails from 5 addresses of one IPv6 /64, then the whole /64 waits, and another /64 may sign in', async () => {
    const user = await registerUser(svc.app);
    for (let i = 1; i <= 5; i++) {
      assert.equal((await attempt(svc, { username: user.username, password: 'wrong password here' }, `2001:db8:1:1::${i}`)).statusCode, 401);
    }
    assert.equal((await attempt(svc, { username: user.username, password: user.password }, '2001:db8:1:1::99')).statusCode, 429);
    assert.equal((await attempt(svc, { username: user.username, password: user.password }, '2001:db8:1:2::1')).statusCode, 201);
  });

  it('when an IPv4 client arrives as an IPv4-mapped IPv6 address, then it is counted as the same address', async () => {
    const user = await registerUser(svc.app);
    for (let i = 0; i < 5; i++) {
      const ip = i % 2 ? '::ffff:198.51.100.40' : '198.51.100.40';
      assert.equal((await attempt(svc, { username: user.username, password: 'wrong password here' }, ip)).statusCode, 401);
    }
    assert.equal((await attempt(svc, { username: user.username, password: user.password }, '::ffff:198.51.100.40')).statusCode, 429);
  });

  it('when an address tries more logins than the per-minute limit, with a new name each time, then 429', async () => {
    startOfNextMinute(limited.clock); // the counts start in a fresh window
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await attempt(limited, { username: uniqueName('stuffing'), password: 'wrong password here' }, '192.0.2.90')).statusCode);
    }
    assert.deepEqual(statuses, [401, 401, 401, 429]);
    assert.equal((await attempt(limited, { username: uniqueName('stuffing'), password: 'wrong password here' }, '192.0.2.91')).statusCode, 401);
  });

  it('when an address refreshes more than the per-minute limit, then 429, counted apart from registrations', async () => {
    startOfNextMinute(limited.clock); // the counts start in a fresh window
    const refresh = () => limited.app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: 'nope' }, remoteAddress: '192.0.2.77' });
    for (let i = 0; i < 3; i++) assert.equal((await refresh()).statusCode, 401);
    const refused = await refresh();
    assert.equal(refused.statusCode, 429);
    assert.ok(refused.headers['retry-after']);
  });
});

describe('throttling under concurrency', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService({ loginAccountMaxFailuresPerHour: 3 });
  });
  after(() => svc.close());

  it('when 20 wrong passwords arrive at once from one address, then at most 5 are checked and the rest answer 429', async () => {
    const user = await registerUser(svc.app);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => attempt(svc, { username: user.username, password: 'wrong password here' }, '203.0.113.150')),
    );
    const counts = { 401: 0, 429: 0 } as Record<number, number>;
    for (const r of results) counts[r.statusCode] = (counts[r.statusCode] ?? 0) + 1;
    assert.equal(counts[401], 3, `the hourly ceiling of 3 holds too: ${JSON.stringify(counts)}`);
    assert.equal(counts[429], 17);
    const row = await svc.db.selectFrom('login_throttles').selectAll().where('throttle_key', '=', `account:${user.id}|203.0.113.150`).executeTakeFirstOrThrow();
    assert.equal(row.failures, 3);
    assert.equal(row.pending, 0, 'no attempt is left pending');
  });

  it('when a waiting address floods attempts, then none of them counts toward the hourly ceiling', async () => {
    const flood = await startTestService({ loginAccountMaxFailuresPerHour: 100 });
    try {
      const user = await registerUser(flood.app);
      for (let i = 0; i < 5; i++) assert.equal((await attempt(flood, { username: user.username, password: 'wrong password here' }, '203.0.113.160')).statusCode, 401);
      const ceiling = () =>
        flood.db.selectFrom('login_throttles').select('failures').where('throttle_key', 'like', `ceiling:account:${user.id}|%`).executeTakeFirstOrThrow();
      assert.equal((await ceiling()).failures, 5);
      const refused = await Promise.all(Array.from({ length: 12 }, () => attempt(flood, { username: user.username, password: user.password }, '203.0.113.160')));
      assert.deepEqual([...new Set(refused.map((r) => r.statusCode))], [429]);
      assert.equal((await ceiling()).failures, 5, 'refused attempts never reach the ceiling');
    } finally {
      await flood.close();
    }
  });

  it('when two sign-ins of one account complete at once from one address, then both leave the hourly ceiling and no count is left', async () => {
    const user = await registerUser(svc.app);
    const both = await Promise.all([0, 1].map(() => attempt(svc, { username: user.username, password: user.password }, '203.0.113.170')));
    assert.deepEqual(both.map((r) => r.statusCode), [201, 201]);
    const rows = await svc.db.selectFrom('login_throttles').select(['throttle_key', 'failures', 'pending']).where('throttle_key', 'like', `%account:${user.id}|%`).execute();
    assert.deepEqual(rows.filter((r) => r.failures > 0 || r.pending > 0), [], `nothing left counted: ${JSON.stringify(rows)}`);
  });

  it('when a name that is no account passes the hourly ceiling, then a new address is refused exactly like for an account', async () => {
    const user = await registerUser(svc.app);
    const ghost = uniqueName('ghost');
    for (let i = 0; i < 3; i++) {
      assert.equal((await attempt(svc, { username: user.username, password: 'wrong password here' }, `198.19.1.${i}`)).statusCode, 401);
      assert.equal((await attempt(svc, { username: ghost, password: 'wrong password here' }, `198.19.2.${i}`)).statusCode, 401);
    }
    const real = await attempt(svc, { username: user.username, password: 'wrong password here' }, '198.19.3.1');
    const fake = await attempt(svc, { username: ghost, password: 'wrong password here' }, '198.19.3.2');
    assert.equal(real.statusCode, 429);
    assert.equal(fake.statusCode, 429);
    assert.deepEqual({ ...problem(fake), detail: '' }, { ...problem(real), detail: '' });
  });
});

describe('per-address limits, counted in the database with few writes', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService({ rateLimitPerMinute: 10 });
  });
  after(async () => {
    await svc.close();
  });

  const refresh = (app: TestService['app'], ip: string) =>
    app.inject({ method: 'POST', url: '/v1/sessions/refresh', payload: { refresh_token: 'nope' }, remoteAddress: ip });
  const hitsInDatabase = async (ip: string) =>
    (await svc.db.selectFrom('rate_limit_hits').select('hits').where('bucket', '=', `/v1/sessions/refresh|${ip}`).execute()).reduce((n, r) => n + r.hits, 0);

  it('when 30 refreshes arrive at once from one address with a limit of 10, then exactly 10 pass, and refusals after that write nothing', async () => {
    startOfNextMinute(svc.clock); // the counts start in a fresh window
    const ip = '198.51.100.60';
    const statuses = (await Promise.all(Array.from({ length: 30 }, () => refresh(svc.app, ip)))).map((r) => r.statusCode);
    assert.equal(statuses.filter((s) => s === 401).length, 10, 'exactly the limit reaches the route');
    assert.equal(statuses.filter((s) => s === 429).length, 20);
    const written = await hitsInDatabase(ip);
    assert.ok(written >= 11, 'the database knows the window is over its limit');
    for (let i = 0; i < 10; i++) assert.equal((await refresh(svc.app, ip)).statusCode, 429);
    assert.equal(await hitsInDatabase(ip), written, 'a window known to be over its limit refuses without a write');
  });

  it('when hits come one after another, then each is counted once: the limit holds exactly', async () => {
    startOfNextMinute(svc.clock); // the counts start in a fresh window
    const ip = '198.51.100.61';
    const statuses: number[] = [];
    for (let i = 0; i < 14; i++) statuses.push((await refresh(svc.app, ip)).statusCode);
    assert.deepEqual(statuses, [...Array(10).fill(401), ...Array(4).fill(429)]);
  });

  it('when two instances share the database, then together they never let more than the limit through', async () => {
    startOfNextMinute(svc.clock); // the counts start in a fresh window
    const { buildApp } = await import('../src/app.js');
    const other = await buildApp({ config: svc.config, db: svc.handle, clock: svc.clock }); // one clock: both count the same window
    try {
      const ip = '198.51.100.62';
      const statuses: number[] = [];
      // Bursts on both at once, then hits taking turns (busy windows reserve hits ahead).
      for (let round = 0; round < 3; round++) {
        const burst = await Promise.all(Array.from({ length: 6 }, (_, i) => refresh(i % 2 ? other : svc.app, ip)));
        statuses.push(...burst.map((r) => r.statusCode));
        for (let i = 0; i < 4; i++) statuses.push((await refresh(i % 2 ? other : svc.app, ip)).statusCode);
      }
      const passed = statuses.filter((s) => s === 401).length;
      assert.ok(passed <= 10, `at most the limit passes across instances (${passed})`);
      assert.ok(passed >= 5, `reserved hits left unused cost little (${passed} passed)`);
      assert.equal(statuses.filter((s) => s === 429).length, statuses.length - passed);
    } finally {
      await other.close();
    }
  });
});
