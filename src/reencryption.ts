import type { Kysely } from 'kysely';
import { reencryptSigningKeys } from './auth/keys.js';
import type { DataCipher } from './crypto/data-encryption.js';
import type { Database } from './db/schema.js';
import { MfaService } from './mfa/service.js';
import { reencryptIdTokenKeys } from './oidc/keys.js';
import { reencryptWebhookSecrets } from './webhooks/sender.js';

/**
 * `keys re-encrypt`: every secret at rest moves to the first DATA_ENCRYPTION_KEY, so an older key
 * can be dropped: the access-token signing keys and the OpenID Provider's RS256 key (both counted
 * as signing keys), TOTP secrets and webhook secrets. Each feature re-seals its own rows; this
 * file only lists them (a feature added with secrets of its own adds a line here).
 */
export async function reencryptSecrets(db: Kysely<Database>, cipher: DataCipher): Promise<{ signing_keys: number; totp_secrets: number; webhook_secrets: number; key_id: string }> {
  const signingKeys = (await reencryptSigningKeys(db, cipher)) + (await reencryptIdTokenKeys(db, cipher));
  const totpSecrets = await MfaService.reencryptSecrets(db, cipher);
  const webhookSecrets = await reencryptWebhookSecrets(db, cipher);
  return { signing_keys: signingKeys, totp_secrets: totpSecrets, webhook_secrets: webhookSecrets, key_id: cipher.currentKeyId };
}
