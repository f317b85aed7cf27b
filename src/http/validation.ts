import { Type, type TSchemaOptions, type TString } from 'typebox';

/**
 * What a client reads in `errors[].message` (API.md, Errors). JSON Schema's own words stay where
 * they are plain ("must NOT have fewer than 3 characters"); a pattern or a format is never shown
 * as such: each says what is allowed.
 */

const patternMessages = new Map<string, string>();

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

/** An Ajv error, as Fastify hands it over. */
export interface ValidationError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** The message a client reads for one Ajv error. */
export function messageOf(e: ValidationError): string {
  switch (e.keyword) {
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
