// Now in core/caller.ts; re-exported for existing imports.
export { clientOf } from '../core/caller.js';
