import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyPluginOptions, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';

/** The Fastify instance with TypeBox types, as routes see it. */
export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>;

export type { Guard } from '../auth/guard.js';

/**
 * A feature of the service: an encapsulated Fastify plugin (its routes, hooks, jobs, close
 * hooks, and where it needs them its own body parsers and error format), built from the one
 * object of named dependencies buildApp passes to every feature. `D` names what it uses.
 */
export type Feature<D extends FastifyPluginOptions> = FastifyPluginAsync<D, RawServerDefault, TypeBoxTypeProvider>;
