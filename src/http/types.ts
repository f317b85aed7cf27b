import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault, onRequestAsyncHookHandler } from 'fastify';

import type { KeyStore } from '../auth/keys.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The signing keys this instance knows (reloaded every 30 s, and on an unknown kid). */
    keyStore: KeyStore;
  }
}

/** The Fastify instance with TypeBox types, as routes see it. */
export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>;

export type Guard = onRequestAsyncHookHandler;
