import { verify } from '@node-rs/bcrypt';
import { LIMITS, type Verifier } from './common.js';

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

/**
 * bcrypt (`$2a$`, `$2b$`, `$2y$`): the three differ only in old implementations' bugs on long
 * or 8-bit passwords, and verify the same today. bcrypt reads only the first 72 bytes of the
 * UTF-8 password; they are cut here, explicitly, so a longer password whose first 72 bytes
 * match signs in as it did at the source.
 */
export const bcryptVerifier: Verifier = {
  name: 'bcrypt',
  matches: (hash) => /^\$2[aby]\$/.test(hash),
  problem(hash) {
    const match = BCRYPT.exec(hash);
    if (!match) return 'is not a well-formed bcrypt hash';
    const cost = Number(match[1]);
    if (cost < 4 || cost > LIMITS.bcryptCost) return `has a bcrypt cost outside 4..${LIMITS.bcryptCost}`;
    return undefined;
  },
  async verify(hash, password) {
    if (this.problem(hash)) return false;
    try {
      return await verify(Buffer.from(password, 'utf8').subarray(0, 72), hash);
    } catch {
      return false;
    }
  },
};
