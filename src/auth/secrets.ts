// Moved to crypto/secrets.ts (crypto/ needs it and auth/ needs crypto/); re-exported for existing imports.
export { loadOrCreateSecret } from '../crypto/secrets.js';
