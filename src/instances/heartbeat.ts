import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Config } from '../config.js';
import type { Clock } from '../core/clock.js';
import { backgroundJob, PRUNE_EVERY_MS } from '../core/jobs.js';
import type { Database } from '../db/schema.js';
import type { Feature } from '../http/types.js';
import { forgetInstance, markInstanceSeen, otherTokenSettingsSeen, pruneInstances, recordInstance } from './repository.js';

/** How often a running instance says it is still there. */
export const HEARTBEAT_EVERY_MS = 60_000;
/** Instances seen within this long count as running beside this one. */
export const RECENTLY_SEEN_MS = 5 * 60_000;
/** Instances not seen for this long are forgotten. */
const FORGET_AFTER_MS = 24 * 3_600_000;

export interface InstancesFeatureDeps {
  db: Kysely<Database>;
  config: Pick<Config, 'jwtIssuer' | 'jwtAudience'>;
  clock: Clock;
  quietStartWarnings: boolean;
}

/**
 * Every instance records the issuer and audience of its tokens, and a heartbeat. One that starts
 * on a database where another instance signs for another issuer or audience warns in its log:
 * behind one address they would refuse each other's tokens with a bare 401 (docs/scaling.md).
 */
export const instancesFeature: Feature<InstancesFeatureDeps> = async (app, { db, config, clock, quietStartWarnings }) => {
  const instanceId = randomUUID();
  app.addHook('onReady', async () => {
    // A warning, never a reason not to start.
    await checkTokenSettings().catch((err: unknown) => app.log.warn({ err }, 'comparing token settings with other instances failed'));
  });
  async function checkTokenSettings(): Promise<void> {
    const now = clock.now();
    const others = await otherTokenSettingsSeen(db, instanceId, new Date(now - RECENTLY_SEEN_MS));
    const differing = others.filter((o) => o.issuer !== config.jwtIssuer || o.audience !== config.jwtAudience);
    if (differing.length > 0 && !quietStartWarnings) {
      const seen = differing.map((o) => (o.audience === o.issuer ? o.issuer : `${o.issuer} (audience ${o.audience})`)).join(', ');
      const mine = config.jwtAudience === config.jwtIssuer ? config.jwtIssuer : `${config.jwtIssuer} (audience ${config.jwtAudience})`;
      app.log.warn(
        `Other instances on this database, seen in the last ${RECENTLY_SEEN_MS / 60_000} minutes, sign tokens for another issuer or audience: ${seen}; this one signs for ${mine}. ` +
          'Behind one address they refuse each other\'s tokens (401): give every instance the same PUBLIC_URL, or JWT_ISSUER and JWT_AUDIENCE (docs/scaling.md).',
      );
    }
    await recordInstance(db, { instance_id: instanceId, issuer: config.jwtIssuer, audience: config.jwtAudience }, new Date(now));
  }
  // A clean stop leaves no row behind; a crashed instance stops counting RECENTLY_SEEN_MS after its
  // last heartbeat, and its row goes after FORGET_AFTER_MS.
  app.addHook('onClose', async () => {
    await forgetInstance(db, instanceId).catch((err: unknown) => app.log.warn({ err }, 'forgetting this instance failed'));
  });
  backgroundJob(app, 'instance heartbeat', HEARTBEAT_EVERY_MS, () => markInstanceSeen(db, instanceId, new Date(clock.now())));
  backgroundJob(app, 'pruning stopped instances', PRUNE_EVERY_MS, () => pruneInstances(db, new Date(clock.now() - FORGET_AFTER_MS)));
};
