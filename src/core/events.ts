import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import type { SideWrite } from '../db/side-writes.js';

/**
 * What happened, for the applications around the service (API-INTEGRATION.md, Webhooks). A
 * feature records an event in the transaction of the change it tells of, so nothing is announced
 * that did not happen and nothing that happened is lost. The webhooks feature plugs in the writer
 * (its outbox); with none plugged in, recording writes nothing.
 */
export const EVENT_TYPES = [
  'user.created',
  'user.updated',
  'user.deleted',
  'user.disabled',
  'user.enabled',
  'user.email_verified',
  'user.password_changed',
  'user.roles_changed',
  'session.created',
  'session.ended',
  'mfa.enabled',
  'mfa.disabled',
  'passkey.added',
  'passkey.removed',
] as const;

/** A type of the list, or one another feature adds under its own prefix (`org.member_added`). */
export type EventType = (typeof EVENT_TYPES)[number] | `org.${string}`;

/** Public facts only: never a secret, a token or a hash. */
export type EventData = Record<string, string | number | boolean | null | readonly string[]>;

export interface DomainEvent {
  type: EventType;
  /** The user it is about: data.user_id, and the key that keeps one user's events in order. */
  userId: string | null;
  /** More public fields of what changed (user_id is added). */
  data?: EventData;
}

type Queryable = Kysely<Database> | Transaction<Database>;

/**
 * Ids an event takes from a row being inserted with it (a side write, db/side-writes.ts): `userId`
 * names the column of the user id, `data` maps keys of data to columns (`{ session_id: 'session_id' }`).
 */
export interface NewRowIds {
  userId?: string;
  data?: Record<string, string>;
}

/** The writer the webhooks feature plugs in (webhooks/repository.ts). */
export interface EventWriter {
  /** Writes the event for every endpoint subscribed to it, in `db` (the caller's transaction); nothing when none is. */
  write(db: Queryable, event: DomainEvent, at: Date): Promise<void>;
  /** The same, as a side write of a row being inserted, which gives the event its ids (`ids`). */
  withNewRow(event: DomainEvent, ids: NewRowIds, at: Date): SideWrite<Record<string, unknown>>;
}

const NO_SIDE_WRITE: SideWrite<Record<string, unknown>> = { ctes: () => [], run: async () => {} };

export class EventRecorder {
  #writer: EventWriter | undefined;

  constructor(private readonly clock: { now(): number }) {}

  /** The webhooks feature's outbox (once, at registration). */
  plug(writer: EventWriter): void {
    this.#writer = writer;
  }

  /**
   * Records `event` in `db`: pass the transaction of the change. One INSERT … SELECT of the
   * subscribed endpoints: no row when no endpoint wants the type (an endpoint receives the events
   * that happen after it exists).
   */
  async record(db: Queryable, event: DomainEvent): Promise<void> {
    if (this.#writer) await this.#writer.write(db, event, new Date(this.clock.now()));
  }

  /**
   * A side write that records `event` with a row being inserted, in the same statement or
   * transaction (sessions/repository.ts insertSession, users/repository.ts insertUserWithPassword):
   * the row's ids (`ids`) go in the event.
   */
  withNewRow(event: DomainEvent, ids: NewRowIds): SideWrite<Record<string, unknown>> {
    return this.#writer ? this.#writer.withNewRow(event, ids, new Date(this.clock.now())) : NO_SIDE_WRITE;
  }
}
