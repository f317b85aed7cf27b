#!/usr/bin/env node
import { reencryptSecrets } from './reencryption.js';
import { parseArgs } from 'node:util';
import { listKeys, retireKey, rotateKeys } from './auth/keys.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { GENERATED_KEY_WARNING, loadDataCipher } from './crypto/data-encryption.js';
import { DataDirInUseError, openDatabase, type Db } from './db/create-db.js';
import { explainDatabaseError } from './db/describe.js';
import { migrateToLatest } from './db/migrate.js';
import { AdminService } from './admin/service.js';
import { AppError } from './errors.js';
import { systemClock } from './core/clock.js';
import { InvalidatedCache } from './cache/invalidated-cache.js';
import { Invalidation } from './cache/invalidation.js';
import { SessionRevocation } from './sessions/revocation.js';
import { CLIENT_TYPES, OAuthClients, type ClientType, type ClientView } from './oidc/clients.js';
import type { Kysely } from 'kysely';
import { BackgroundJobs } from './account/background.js';
import { SecurityNotices } from './account/security-notices.js';
import { AuditLog } from './audit/audit-log.js';
import type { Database } from './db/schema.js';
import { Mailer, mailTransport } from './mail/mailer.js';
import { EventRecorder } from './core/events.js';
import { outboxEventWriter } from './webhooks/repository.js';
import type { NewWebhookBody } from './webhooks/schemas.js';
import { WebhooksService } from './webhooks/service.js';
import { exportCommand, IMPORT_HELP, IMPORT_OPTIONS, importCommand, importCommandOf } from './import/commands.js';

/**
 * The command line's changes of users (disable, roles, ...) are announced like the API's: their
 * events go to the outbox in the change's transaction, and a running service sends them.
 */
function adminService(db: Kysely<Database>, audit?: AuditLog): AdminService {
  const events = new EventRecorder(systemClock);
  events.plug(outboxEventWriter);
  return new AdminService(db, audit, systemClock, events);
}

/** webhooks list | add <url> --events E [--description D] | remove <id> (API-INTEGRATION.md, Webhooks). */
async function webhooksCommand(
  sub: string | undefined,
  arg: string | undefined,
  count: number,
  values: { events?: string | undefined; description?: string | undefined },
  print: (human: string, data: unknown) => void,
  config: Config,
  withDb: <T>(work: (db: Db) => Promise<T>) => Promise<T>,
): Promise<number> {
  const service = async (db: Db) => new WebhooksService({ db: db.kysely, clock: systemClock, cipher: await loadDataCipher(db.kysely, config.dataEncryptionKeys), allowPrivate: config.webhookAllowPrivate });
  try {
    if (sub === 'list' && count === 2) {
      const webhooks = await withDb(async (db) => (await service(db)).list());
      print(webhooks.length ? webhooks.map((w) => `${w.id.padStart(4)}  ${w.enabled ? 'enabled ' : 'disabled'}  ${w.url}  ${w.events.join(',')}`).join('\n') : 'No webhooks.', { webhooks });
      return 0;
    }
    if (sub === 'add' && arg && count === 3 && values.events) {
      const events = values.events.split(',').map((e) => e.trim()) as NewWebhookBody['events'];
      const created = await withDb(async (db) => (await service(db)).create({ url: arg, events, ...(values.description !== undefined ? { description: values.description } : {}) }));
      print(`Webhook ${created.id} made; its secret (shown once): ${created.secret}`, created);
      return 0;
    }
    if (sub === 'remove' && arg && count === 3) {
      await withDb(async (db) => (await service(db)).remove(arg));
      print(`Webhook ${arg} removed.`, { id: arg, removed: true });
      return 0;
    }
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    console.error([err.detail, ...(err.errors ?? []).map((e) => `${e.field}: ${e.message}`)].join('\n'));
    return 1;
  }
  throw new UsageError('webhooks list | webhooks add <url> --events E[,E...] [--description D] | webhooks remove <id>');
}

/**
 * The admin command line. Same settings as the server (DATABASE_URL, DATA_DIR, ...).
 * Exit codes: 0 done, 1 failed, 2 bad usage.
 */

const HELP = `Usage: user-management <command> [options]

Commands:
  migrate                         apply pending database migrations
  keys list                       list signing keys and their state
  keys rotate [--publish-delay S] add a signing key: published now, signing after S seconds
                                  (default 60, so every instance has loaded it), and retire the
                                  current keys once their last tokens have expired
  keys retire <kid>               retire a key now (a suspected leak); its tokens are refused
  keys re-encrypt                 re-encrypt every secret at rest (private signing keys, TOTP
                                  secrets) with the first key of DATA_ENCRYPTION_KEY
  users list [--limit N] [--offset N] [--filter TEXT]
                                  users by id, 50 at a time; TEXT matches username or email
  users show <username>           one user, with the number of active sessions
  users disable <username>        the user cannot sign in; all their sessions end at once
  users enable <username>         undo users disable
  users reset-mfa <username>      remove the user's second factors (TOTP, recovery codes): they
                                  sign in with their password alone (support; audited)
  users verify-email <username>   mark the user's email verified (the address was confirmed
                                  another way); audited
${IMPORT_HELP}
  sessions revoke --user <username>
                                  end all of a user's sessions, on every instance
  audit tail [--limit N]          the latest security events (default 20)
  roles grant <username> <role>   give the user a role (the first admin: roles grant <you> admin)
  roles revoke <username> <role>  take a role from the user (never from the last admin)
  roles list                      every role, its permissions and who holds it
  clients create --name NAME --type public|confidential|service [--redirect-uri URI]...
                 [--post-logout-uri URI]... [--scope S]... [--role R]... [--first-party]
                 [--id-token-alg RS256|EdDSA]
                                  register an app of the OpenID Provider; its secret is shown
                                  once (confidential, service)
  clients list                    the registered apps
  clients show <client_id>        one app
  clients rotate-secret <client_id>
                                  a new secret (shown once); the old one stops working
  clients delete <client_id>      delete an app: its consents and sessions end
  webhooks list                   webhook endpoints (no secrets)
  webhooks add <url> --events E   a webhook endpoint for the events E (comma-separated, or *);
                                  prints its secret once
  webhooks remove <id>            delete an endpoint and its deliveries

Options:
  --json    machine-readable output
  --help    this text

Settings come from the environment, as for the server: DATABASE_URL, DATA_DIR, ACCESS_TOKEN_TTL_S,
DATA_ENCRYPTION_KEY.
On the embedded database the server must be stopped first (one process owns DATA_DIR).`;

class UsageError extends Error {}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      'publish-delay': { type: 'string' },
      limit: { type: 'string' },
      offset: { type: 'string' },
      filter: { type: 'string' },
      user: { type: 'string' },
      name: { type: 'string' },
      type: { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-uri': { type: 'string', multiple: true },
      scope: { type: 'string', multiple: true },
      role: { type: 'string', multiple: true },
      'first-party': { type: 'boolean' },
      'id-token-alg': { type: 'string' },
      events: { type: 'string' },
      description: { type: 'string' },
      ...IMPORT_OPTIONS,
    },
  });
  const [command, sub, arg] = positionals;
  if (values.help || !command) {
    console.log(HELP);
    return command || values.help ? 0 : 2;
  }
  const config = loadConfig();
  const print = (human: string, data: unknown) => console.log(values.json ? JSON.stringify(data) : human);

  const withDb = async <T>(work: (db: Db) => Promise<T>): Promise<T> => {
    const db = await openDatabase({ databaseUrl: config.databaseUrl, pgliteDir: config.dataDir, timeoutMs: config.dbTimeoutMs, preparedStatements: config.dbPreparedStatements });
    try {
      await migrateToLatest(db.kysely);
      return await work(db);
    } finally {
      await db.close();
    }
  };

  if (command === 'migrate' && !sub) {
    const db = await openDatabase({ databaseUrl: config.databaseUrl, pgliteDir: config.dataDir, timeoutMs: config.dbTimeoutMs, preparedStatements: config.dbPreparedStatements });
    try {
      const applied = await migrateToLatest(db.kysely);
      print(applied.length ? `Applied: ${applied.join(', ')}` : 'Nothing to apply: the database is up to date.', { applied });
    } finally {
      await db.close();
    }
    return 0;
  }

  if (command === 'keys' && sub === 'list' && !arg) {
    const keys = await withDb((db) => listKeys(db.kysely));
    const lines = keys.map((k) => `${k.kid}  ${k.state.padEnd(9)}  activates ${k.activates_at}  retires ${k.retired_at ?? '-'}`);
    print(lines.length ? lines.join('\n') : 'No signing keys yet: the server makes the first one when it starts.', { keys });
    return 0;
  }

  if (command === 'keys' && sub === 'rotate' && !arg) {
    const raw = values['publish-delay'] ?? '60';
    if (!/^\d+$/.test(raw) || Number(raw) > 86_400) throw new UsageError('--publish-delay must be a whole number of seconds from 0 to 86400');
    const result = await withDb(async (db) =>
      rotateKeys(db.kysely, { publishDelayS: Number(raw), accessTokenTtlS: config.accessTokenTtlS, cipher: await loadDataCipher(db.kysely, config.dataEncryptionKeys) }),
    );
    print(`New key ${result.kid}: published now, signs from ${result.activatesAt.toISOString()}; the keys it replaces retire at ${result.retiresAt.toISOString()}.`, {
      kid: result.kid,
      activates_at: result.activatesAt.toISOString(),
      previous_keys_retire_at: result.retiresAt.toISOString(),
    });
    return 0;
  }

  if (command === 'keys' && sub === 'retire' && arg) {
    const outcome = await withDb((db) => retireKey(db.kysely, arg));
    if (outcome === 'unknown') {
      console.error(`No live key with kid ${arg}.`);
      return 1;
    }
    if (outcome === 'last_key') {
      console.error(`Key ${arg} is the only live key; run "keys rotate --publish-delay 0" first.`);
      return 1;
    }
    print(`Key ${arg} retired.`, { kid: arg, retired: true });
    return 0;
  }

  if (command === 'keys' && sub === 're-encrypt' && !arg) {
    if (config.dataEncryptionKeys.length === 0) console.error(`Warning: ${GENERATED_KEY_WARNING}`);
    const result = await withDb(async (db) => reencryptSecrets(db.kysely, await loadDataCipher(db.kysely, config.dataEncryptionKeys)));
    print(`Re-encrypted with key ${result.key_id}: ${result.signing_keys} signing key(s), ${result.totp_secrets} TOTP secret(s), ${result.webhook_secrets} webhook secret(s); the rest already were.`, result);
    return 0;
  }

  if (command === 'keys' && sub === 'retire' && !arg) throw new UsageError('keys retire needs the kid of the key (see keys list)');
  if ((command === 'users' && ['show', 'disable', 'enable', 'reset-mfa', 'verify-email'].includes(sub ?? '')) && !arg) throw new UsageError(`users ${sub} needs a username`);

  const count = (name: 'limit' | 'offset', fallback: number, max: number): number => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) > max) throw new UsageError(`--${name} must be a whole number from 0 to ${max}`);
    return Number(raw);
  };
  const noSuchUser = (name: string) => {
    console.error(`No user named ${name}.`);
    return 1;
  };

  if (command === 'users' && sub === 'list' && !arg) {
    const limit = count('limit', 50, 1000);
    const offset = count('offset', 0, 1_000_000_000);
    const users = await withDb((db) => adminService(db.kysely).listUsers({ limit, offset, filter: values.filter }));
    const lines = users.map((u) => `${u.id.padStart(6)}  ${u.username.padEnd(32)}  ${u.email}${u.disabled ? '  (disabled)' : ''}`);
    print(lines.length ? lines.join('\n') : 'No users.', { users });
    return 0;
  }

  if (command === 'users' && sub === 'show' && arg) {
    const user = await withDb((db) => adminService(db.kysely).findUser(arg));
    if (!user) return noSuchUser(arg);
    print(
      [`id: ${user.id}`, `username: ${user.username}`, `name: ${user.name}`, `email: ${user.email}`, `dob: ${user.dob ?? '-'}`, `created: ${user.created_at}`, `updated: ${user.updated_at}`, `disabled: ${user.disabled ? 'yes' : 'no'}`, `email verified: ${user.email_verified ? 'yes' : 'no'}`, `active sessions: ${user.active_sessions}`].join('\n'),
      user,
    );
    return 0;
  }

  if (command === 'users' && sub === 'enable' && arg) {
    const result = await withDb((db) => adminService(db.kysely).setDisabled(arg, false));
    if (!result) return noSuchUser(arg);
    print(`${arg} is enabled.`, { username: arg, disabled: false, sessions_ended: 0 });
    return 0;
  }

  if (command === 'users' && sub === 'reset-mfa' && arg) {
    // The owner is told by mail (a support desk talked into this is how accounts are taken over).
    const { result, mailed } = await withDb((db) => withSecurityNotices(db.kysely, config, (audit) => adminService(db.kysely, audit).resetMfa(arg)));
    if (!result) return noSuchUser(arg);
    const noticeSent = result.totp && mailed > 0;
    if (result.totp && !noticeSent) console.error(`The notice to ${arg} could not be sent: tell them another way that their second factors were removed.`);
    print(result.totp ? `${arg}'s second factors are removed: they sign in with their password alone.` : `${arg} had no second factor; nothing to remove.`, { username: arg, totp_removed: result.totp, notice_sent: noticeSent });
    return 0;
  }

  if (command === 'users' && sub === 'verify-email' && arg) {
    const result = await withDb((db) => adminService(db.kysely).verifyEmail(arg));
    if (!result) return noSuchUser(arg);
    print(result.alreadyVerified ? `${arg}'s email was verified already.` : `${arg}'s email is verified.`, { username: arg, email_verified: true, already_verified: result.alreadyVerified });
    return 0;
  }

  if (command === 'users' && sub === 'import') {
    if (!arg) throw new UsageError('users import needs the file to read');
    const importing = importCommandOf(arg, values, (message) => new UsageError(message));
    const { report, code } = await withDb((db) => importCommand(db.kysely, config, importing));
    console.log(JSON.stringify(report)); // the report is the last line, whatever --json says
    return code;
  }

  if (command === 'users' && sub === 'export' && !arg) {
    await withDb((db) => exportCommand(db.kysely, values.out));
    return 0;
  }

  if (command === 'sessions' && sub === 'revoke' && !arg) {
    if (!values.user) throw new UsageError('sessions revoke needs --user <username>');
    const username = values.user;
    const ended = await withDb((db) => adminService(db.kysely).revokeSessions(username));
    if (ended === undefined) return noSuchUser(username);
    print(`${ended} session(s) of ${username} ended.`, { username, sessions_ended: ended });
    return 0;
  }

  if (command === 'roles' && (sub === 'grant' || sub === 'revoke')) {
    const role = positionals[3];
    if (!arg || !role || positionals.length > 4) throw new UsageError(`roles ${sub} needs a username and a role`);
    try {
      const roles = await withDb((db) => adminService(db.kysely).changeRole(arg, role, sub === 'grant'));
      if (!roles) return noSuchUser(arg);
      print(`${arg} holds ${roles.length ? roles.join(', ') : 'no role'}.`, { username: arg, roles });
      return 0;
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      console.error(err.code === 'validation_failed' ? `No role named ${role} (see roles list).` : err.detail);
      return 1;
    }
  }

  if (command === 'webhooks') return webhooksCommand(sub, arg, positionals.length, values, print, config, withDb);

  if (command === 'roles' && sub === 'list' && !arg) {
    const roles = await withDb((db) => adminService(db.kysely).listRoles());
    const lines = roles.map((r) => `${r.name.padEnd(16)}  ${r.builtin ? 'built-in' : 'custom  '}  ${r.permissions.join(' ')}\n${''.padEnd(16)}  held by: ${r.users.length ? r.users.join(', ') : '-'}`);
    print(lines.join('\n'), { roles });
    return 0;
  }

  if (command === 'users' && sub === 'disable' && arg) {
    try {
      const result = await withDb((db) => adminService(db.kysely).setDisabled(arg, true));
      if (!result) return noSuchUser(arg);
      print(`${arg} is disabled; ${result.sessionsEnded} session(s) ended.`, { username: arg, disabled: true, sessions_ended: result.sessionsEnded });
      return 0;
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      console.error(err.detail);
      return 1;
    }
  }

  if (command === 'audit' && sub === 'tail' && !arg) {
    const limit = count('limit', 20, 1000);
    const events = await withDb((db) => adminService(db.kysely).auditTail(limit));
    const lines = events.map((e) => `${e.occurred_at}  ${e.event.padEnd(22)}  ${(e.username ?? e.user_id ?? '-').padEnd(20)}  ${e.ip ?? '-'}${e.details ? `  ${JSON.stringify(e.details)}` : ''}`);
    print(lines.length ? lines.join('\n') : 'No events.', { events });
    return 0;
  }

  if (command === 'clients') {
    const clientLine = (c: ClientView) =>
      `${c.client_id}  ${c.type.padEnd(12)}  ${c.first_party ? 'first-party' : 'third-party'}  ${c.name}\n  redirect: ${c.redirect_uris.join(' ') || '-'}\n  scopes: ${c.scopes.join(' ')}${c.roles.length ? `\n  roles: ${c.roles.join(' ')}` : ''}`;
    const withSecret = (c: ClientView & { client_secret?: string }) => `${clientLine(c)}${c.client_secret ? `\n  client_secret: ${c.client_secret}\n  (shown once: keep it now; it is stored hashed)` : ''}`;
    const withClients = <T>(work: (clients: OAuthClients) => Promise<T>) => withDb((db) => work(new OAuthClients(db.kysely, systemClock, commandLineRevocation())));
    const explain = (err: unknown): number => {
      if (!(err instanceof AppError)) throw err;
      console.error(err.errors?.length ? `${err.detail} ${err.errors.map((e) => `${e.field}: ${e.message}`).join('; ')}` : err.detail);
      return 1;
    };
    try {
      if (sub === 'create' && !arg) {
        if (!values.name || !values.type) throw new UsageError('clients create needs --name and --type');
        if (!(CLIENT_TYPES as readonly string[]).includes(values.type)) throw new UsageError('--type is public, confidential or service');
        const alg = values['id-token-alg'];
        if (alg !== undefined && alg !== 'RS256' && alg !== 'EdDSA') throw new UsageError('--id-token-alg is RS256 or EdDSA');
        const made = await withClients((clients) =>
          clients.createClient({
            name: values.name!,
            type: values.type as ClientType,
            redirect_uris: values['redirect-uri'] ?? [],
            post_logout_redirect_uris: values['post-logout-uri'] ?? [],
            ...(values.scope ? { scopes: values.scope } : {}),
            roles: values.role ?? [],
            first_party: values['first-party'] ?? false,
            ...(alg ? { id_token_signed_response_alg: alg } : {}),
          }),
        );
        print(withSecret(made), made);
        return 0;
      }
      if (sub === 'list' && !arg) {
        const list = await withClients((clients) => clients.listClients());
        print(list.length ? list.map(clientLine).join('\n') : 'No clients.', { clients: list });
        return 0;
      }
      if (sub === 'show' && arg) {
        const client = await withClients((clients) => clients.showClient(arg));
        print(clientLine(client), client);
        return 0;
      }
      if (sub === 'rotate-secret' && arg) {
        const client = await withClients((clients) => clients.rotateSecret(arg));
        print(withSecret(client), client);
        return 0;
      }
      if (sub === 'delete' && arg) {
        await withClients((clients) => clients.deleteClient(arg));
        print(`Deleted ${arg}: its consents and sessions ended.`, { client_id: arg, deleted: true });
        return 0;
      }
    } catch (err) {
      return explain(err);
    }
  }

  throw new UsageError(`Unknown command: ${positionals.join(' ')}`);
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`${(err as Error).message}\nRun with --help for usage.`);
      process.exit(2);
    }
    if (err instanceof ConfigError) console.error(`Configuration error: ${err.message}`);
    else if (err instanceof DataDirInUseError) console.error(dataDirInUse(err));
    else console.error(explainDatabaseError(err, process.env.DATABASE_URL || undefined) ?? `Failed: ${(err as Error).message}`);
    process.exit(1);
  },
);

/** Sessions ended here are announced to the running instances (the command line caches nothing), as AdminService does. */
function commandLineRevocation(): SessionRevocation {
  return new SessionRevocation(new Invalidation({ session: new InvalidatedCache(), user: new InvalidatedCache(), access: new InvalidatedCache(), membership: new InvalidatedCache() }));
}

/**
 * The server owns the embedded database: setting DATABASE_URL would open another, empty one, so
 * the way is to stop the server for the moment the command takes.
 */
function dataDirInUse(err: DataDirInUseError): string {
  return (
    `The server (process ${err.owner}) has the embedded database in ${err.dir} open, and one process at a time can: ` +
    `stop the server first (Ctrl-C where it runs, or kill ${err.owner}), run this command, then start the server again.`
  );
}

/**
 * Runs `work` with an audit log whose events send their security notices (account/security-notices.ts),
 * and waits for the mail before the command ends (up to the mailer's 5 s); answers how many mails
 * went out. Mail lines go to stderr.
 */
async function withSecurityNotices<T>(db: Kysely<Database>, config: Config, work: (audit: AuditLog) => Promise<T>): Promise<{ result: T; mailed: number }> {
  // Said on stderr (stdout stays the command's answer), with the reason of a failure.
  const line = (obj: { err?: unknown; reason?: unknown }, msg: string) => {
    const why = obj.err instanceof Error ? obj.err.message : typeof obj.reason === 'string' ? obj.reason : undefined;
    console.error(why ? `${msg}: ${why}` : msg);
  };
  const log = { info: line, warn: line, error: line };
  const mailer = new Mailer(mailTransport(config), { from: config.mailFrom, retryBaseMs: config.mailRetryBaseMs }, log);
  const jobs = new BackgroundJobs(log);
  const audit = new AuditLog(db);
  audit.onRecorded(new SecurityNotices(db, mailer, jobs, log).recorded);
  let result: T;
  try {
    result = await work(audit);
  } finally {
    await jobs.idle();
    await mailer.close();
  }
  return { result, mailed: mailer.delivered };
}
