import { Type, type Static } from 'typebox';
import { EVENT_TYPES } from '../core/events.js';
import { Id, Timestamp } from '../http/schemas.js';
import { Matching } from '../http/validation.js';

// API-INTEGRATION.md, Webhooks.

export const EventTypeName = Type.Union([...EVENT_TYPES.map((t) => Type.Literal(t)), Type.Literal('*')], { description: 'An event type, or "*" for every type (alone).' });

const Url = Type.String({ minLength: 1, maxLength: 2048, description: 'An http or https URL; it must reach a public address unless WEBHOOK_ALLOW_PRIVATE=true.', examples: ['https://app.example.com/hooks/users'] });
const Events = Type.Array(EventTypeName, { minItems: 1, maxItems: EVENT_TYPES.length + 1, uniqueItems: true });
const Description = Type.String({ maxLength: 500 });

export const NewWebhookBody = Type.Object({ url: Url, events: Events, description: Type.Optional(Description) }, { additionalProperties: false });
export type NewWebhookBody = Static<typeof NewWebhookBody>;

export const UpdateWebhookBody = Type.Object(
  { url: Type.Optional(Url), events: Type.Optional(Events), description: Type.Optional(Description), enabled: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateWebhookBody = Static<typeof UpdateWebhookBody>;

export const Webhook = Type.Object({
  id: Id,
  url: Type.String(),
  events: Type.Array(Type.String()),
  description: Type.String(),
  enabled: Type.Boolean(),
  disabled_reason: Type.Union([Type.Literal('gone'), Type.Null()], { description: '"gone": disabled because the receiver answered 410.' }),
  created_at: Timestamp,
});
export type Webhook = Static<typeof Webhook>;

export const WebhookWithSecret = Type.Object({
  ...Webhook.properties,
  secret: Type.String({ description: 'Shown once: `whsec_` and the base64 of 24 random bytes. Verify deliveries with it (any Standard Webhooks library).' }),
});

export const WebhookList = Type.Object({ webhooks: Type.Array(Webhook) });

export const Attempt = Type.Object({
  attempted_at: Timestamp,
  status_code: Type.Union([Type.Integer(), Type.Null()], { description: "The receiver's answer, null when none came (network error, timeout, refused address)." }),
  error: Type.Union([Type.String(), Type.Null()]),
  duration_ms: Type.Integer(),
});

export const Delivery = Type.Object({
  id: Id,
  event_id: Type.String({ description: 'The webhook-id header: the same on every attempt.' }),
  type: Type.String(),
  status: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')]),
  attempt_count: Type.Integer(),
  next_attempt_at: Type.Union([Timestamp, Type.Null()]),
  response_status: Type.Union([Type.Integer(), Type.Null()], { description: "The last attempt's answer code." }),
  error: Type.Union([Type.String(), Type.Null()]),
  created_at: Timestamp,
  finished_at: Type.Union([Timestamp, Type.Null()]),
  attempts: Type.Array(Attempt, { description: 'Every attempt, oldest first.' }),
});
export type Delivery = Static<typeof Delivery>;

export const DeliveryList = Type.Object({ deliveries: Type.Array(Delivery), next: Type.Union([Type.String(), Type.Null()]) });

export const WebhookParams = Type.Object({ id: Type.String() });
export const DeliveryParams = Type.Object({ id: Type.String(), did: Type.String() });
export const DeliveriesQuery = Type.Object(
  {
    limit: Type.Optional(Matching('^(?:[1-9]|[1-9][0-9]|100)$', 'must be an integer from 1 to 100', { description: '1 to 100, default 50.' })),
    before: Type.Optional(Matching('^[1-9][0-9]{0,17}$', 'must be the `next` of the previous page, a positive integer', { description: 'The `next` of the previous page.' })),
  },
  { additionalProperties: false },
);
