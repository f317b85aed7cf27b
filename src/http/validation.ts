import type { FastifyServerOptions } from 'fastify';
import { Type, type TSchemaOptions, type TString } from 'typebox';

/**
 * What a client reads in `errors[].message` (API.md, Errors). JSON Schema's own words stay where
 * they are plain ("must NOT have fewer than 3 characters"); a pattern or a format is never shown
 * as such: each says what is allowed. Field rules JSON Schema cannot state (a date not in the
 * future, a length after trimming) run in the same validation pass, so one answer names every
 * bad field at once.
 */

/** A rule for a string: what is wrong with `value`, or undefined when it is fine. */
export type StringCheck = (value: string) => string | undefined;

/** The keyword of a `Checked` schema; its value names the check. */
export const CHECK_KEYWORD = 'x-check';

const patternMessages = new Map<string, string>();
const checks = new Map<string, StringCheck>();

const FORMAT_MESSAGES: Record<string, string> = {
  email: 'must be an email address',
  date: 'must be a real date, YYYY-MM-DD',
  'date-time': 'must be a date and time, RFC 3339',
};

type StringOptions = TSchemaOptions & { minLength?: number; maxLength?: number; format?: string };

/** A string matching `pattern`; one that does not is answered with `message`, never the pattern. */
export function Matching(pattern: string, message: string, options: StringOptions = {}): TString {
  const known = patternMessages.get(pattern);
  if (known !== undefined && known !== message) throw new Error(`Two messages for the pattern ${pattern}`);
  patternMessages.set(pattern, message);
  return Type.String({ ...options, pattern });
}

/**
 * A string that `check` must also pass, in the same validation pass as the rest of the body. The
 * service that owns the rule can call the same function.
 */
export function Checked(name: string, check: StringCheck, options: StringOptions = {}): TString {
  const known = checks.get(name);
  if (known !== undefined && known !== check) throw new Error(`Two checks named ${name}`);
  checks.set(name, check);
  return Type.String({ ...options, [CHECK_KEYWORD]: name });
}

/** An Ajv plugin, as Fastify's `ajv.plugins` takes it. */
type AjvPlugin = Extract<NonNullable<NonNullable<FastifyServerOptions['ajv']>['plugins']>[number], (...args: never[]) => unknown>;

/** The Ajv plugin (Fastify's `ajv.plugins`) that runs the checks of `Checked` schemas. */
export const fieldChecks: AjvPlugin = (ajv) =>
  ajv.addKeyword({
    keyword: CHECK_KEYWORD,
    type: 'string',
    schemaType: 'string',
    errors: true,
    compile(name: string) {
      const check = checks.get(name);
      if (!check) throw new Error(`No check named ${name}`);
      const validate = Object.assign(
        (value: string): boolean => {
          const message = check(value);
          // Ajv fills in instancePath and schemaPath.
          validate.errors = message === undefined ? undefined : [{ keyword: CHECK_KEYWORD, message, params: { check: name } }];
          return message === undefined;
        },
        { errors: undefined as undefined | Array<{ keyword: string; message: string; params: Record<string, unknown> }> },
      );
      return validate;
    },
  });

/** An Ajv error, as Fastify hands it over. */
export interface ValidationError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** JSON types in plain words: a message never shows a schema keyword ("must be string"). */
const TYPE_MESSAGES: Record<string, string> = {
  object: 'must be a JSON object',
  string: 'must be text (a JSON string)',
  integer: 'must be a whole number',
  number: 'must be a number',
  boolean: 'must be true or false',
  array: 'must be a list (a JSON array)',
  null: 'must be null',
};

/** The message a client reads for one Ajv error. */
export function messageOf(e: ValidationError): string {
  switch (e.keyword) {
    case 'type':
      return TYPE_MESSAGES[String(e.params.type)] ?? 'is not of the expected type';
    case 'additionalProperties':
      return 'is not a known field';
    case 'required':
      return 'is required';
    case 'minProperties':
      return e.params.limit === 1 ? 'must name at least one field' : `must name at least ${String(e.params.limit)} fields`;
    case 'pattern':
      return patternMessages.get(String(e.params.pattern)) ?? 'is not in the expected form';
    case 'format': {
      const format = String(e.params.format);
      return FORMAT_MESSAGES[format] ?? `must be a valid ${format}`;
    }
    default:
      return e.message ?? 'is not valid';
  }
}
