/**
 * Errors are API: every error the service answers is one of these codes, as
 * application/problem+json (RFC 9457). The list is closed; add a code here first.
 */

export const PROBLEMS = {
  validation_failed: { status: 400, title: 'Bad Request', detail: 'The request is not valid.' },
  weak_password: { status: 400, title: 'Bad Request', detail: 'The password does not meet the password rules.' },
  invalid_verification_token: { status: 400, title: 'Bad Request', detail: 'The verification link is invalid, used, expired or superseded.' },
  invalid_reset_token: { status: 400, title: 'Bad Request', detail: 'The password reset link is invalid, used, expired or superseded.' },
  invalid_credentials: { status: 401, title: 'Unauthorized', detail: 'The username, email or password is wrong.' },
  invalid_token: { status: 401, title: 'Unauthorized', detail: 'The access token is missing, invalid, expired or revoked.' },
  invalid_refresh_token: { status: 401, title: 'Unauthorized', detail: 'The refresh token is invalid, expired, used or revoked.' },
  invalid_mfa_code: { status: 401, title: 'Unauthorized', detail: 'The code is wrong or has been used already.' },
  invalid_mfa_token: { status: 401, title: 'Unauthorized', detail: 'The mfa_token is unknown, used or expired; sign in again.' },
  wrong_current_password: { status: 403, title: 'Forbidden', detail: 'The current password is wrong.' },
  email_not_verified: { status: 403, title: 'Forbidden', detail: 'Verify your email address first: follow the link in the mail we sent.' },
  mfa_required: { status: 403, title: 'Forbidden', detail: 'The password checked out; a second factor is needed: POST /v1/sessions/mfa with the mfa_token and a code.' },
  not_found: { status: 404, title: 'Not Found', detail: 'There is nothing here.' },
  username_taken: { status: 409, title: 'Conflict', detail: 'That username is already taken.' },
  email_taken: { status: 409, title: 'Conflict', detail: 'That email is already in use.' },
  mfa_already_enabled: { status: 409, title: 'Conflict', detail: 'TOTP is already on; turn it off first.' },
  mfa_not_pending: { status: 409, title: 'Conflict', detail: 'No TOTP set-up is pending; start one first.' },
  mfa_not_enabled: { status: 409, title: 'Conflict', detail: 'TOTP is not on.' },
  payload_too_large: { status: 413, title: 'Content Too Large', detail: 'The request body is larger than 16 KiB.' },
  unsupported_media_type: { status: 415, title: 'Unsupported Media Type', detail: 'The request body must be application/json.' },
  password_reused: { status: 422, title: 'Unprocessable Content', detail: 'The new password equals one of the last 5 passwords.' },
  too_many_requests: { status: 429, title: 'Too Many Requests', detail: 'Too many attempts; try again later.' },
  // Passkeys (API-ACCOUNT.md).
  invalid_passkey: { status: 400, title: 'Bad Request', detail: 'The passkey registration response does not verify.' },
  passkey_exists: { status: 409, title: 'Conflict', detail: 'That passkey is already registered.' },
  reauthentication_required: { status: 403, title: 'Forbidden', detail: 'Sign in again: this needs a session opened in the last 15 minutes.' },
  // Sign in with another provider (API-FEDERATION.md A).
  last_sign_in_method: { status: 409, title: 'Conflict', detail: 'That is your last way to sign in: add a password, a passkey or another account first.' },
  // Permissions (requireCaller({ permission }), auth/guard.ts).
  forbidden: { status: 403, title: 'Forbidden', detail: 'You do not have the permission this needs.' },
  // Administration (API-ADMIN.md).
  mfa_setup_required: { status: 403, title: 'Forbidden', detail: 'Set up a second factor (an authenticator app or a passkey) first: until then this session can only do that, read /v1/users/me and sign out.' },
  last_admin: { status: 409, title: 'Conflict', detail: 'This would leave no user holding the admin role.' },
  role_exists: { status: 409, title: 'Conflict', detail: 'A role of that name exists.' },
  role_builtin: { status: 409, title: 'Conflict', detail: 'A built-in role cannot be changed or deleted.' },
  // Organizations (API-ORGS.md).
  slug_taken: { status: 409, title: 'Conflict', detail: 'That slug is in use.' },
  last_owner: { status: 409, title: 'Conflict', detail: 'This would leave the organization without an owner.' },
  already_member: { status: 409, title: 'Conflict', detail: 'That person is a member of the organization already.' },
  invalid_invitation: { status: 400, title: 'Bad Request', detail: 'The invitation is unknown, used, expired or superseded, or it was made for another email address.' },
  org_limit_reached: { status: 403, title: 'Forbidden', detail: 'You made as many organizations as one person may (ORG_LIMIT_PER_USER).' },
  internal_error: { status: 500, title: 'Internal Server Error', detail: 'Something went wrong on our side.' },
  unavailable: { status: 503, title: 'Service Unavailable', detail: 'The service is unavailable; retry the request later.' },
} as const satisfies Record<string, { status: number; title: string; detail: string }>;

export type ProblemName = keyof typeof PROBLEMS;

/** The `code` a client sees. A wrong current password is 403 but keeps the code `invalid_credentials`. */
export function publicCode(name: ProblemName): string {
  return name === 'wrong_current_password' ? 'invalid_credentials' : name;
}

export interface FieldError {
  field: string;
  message: string;
}

export class AppError extends Error {
  override readonly name = 'AppError';
  readonly status: number;
  readonly code: string;
  readonly detail: string;

  constructor(
    readonly problem: ProblemName,
    options: {
      detail?: string;
      errors?: FieldError[];
      headers?: Record<string, string>;
      /** Extra members of the problem body (RFC 9457 extensions). */
      extensions?: Record<string, unknown>;
      cause?: unknown;
    } = {},
  ) {
    super(options.detail ?? PROBLEMS[problem].detail, { cause: options.cause });
    this.status = PROBLEMS[problem].status;
    this.code = publicCode(problem);
    this.detail = options.detail ?? PROBLEMS[problem].detail;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
    this.extensions = options.extensions ?? {};
  }

  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string>;
  readonly extensions: Record<string, unknown>;
}

/**
 * At most this many entries in `errors`, each field name at most FIELD_NAME_MAX characters: a
 * small body of deeply nested or countless bad fields must not make an answer many times its size.
 */
export const MAX_FIELD_ERRORS = 20;
const FIELD_NAME_MAX = 100;

export function validationFailed(errors: FieldError[], detail = 'The request is not valid.'): AppError {
  const listed = errors.slice(0, MAX_FIELD_ERRORS).map((e) => (e.field.length > FIELD_NAME_MAX ? { ...e, field: `${e.field.slice(0, FIELD_NAME_MAX - 1)}…` } : e));
  return new AppError('validation_failed', { detail, errors: listed });
}

/** 403 forbidden, naming the permission the caller lacks. */
export function forbidden(permission: string): AppError {
  return new AppError('forbidden', { detail: `This needs the permission "${permission}".`, extensions: { permission } });
}

/** A body that does not parse as JSON. */
export function bodyNotJson(): AppError {
  return validationFailed([{ field: '(body)', message: 'must be a JSON object' }], 'The body is not valid JSON.');
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

export function problemBody(err: AppError): ProblemBody {
  const body: ProblemBody = {
    type: 'about:blank',
    title: PROBLEMS[err.problem].title,
    status: err.status,
    code: err.code,
    detail: err.detail,
    ...err.extensions,
  };
  if (err.errors) body.errors = err.errors;
  return body;
}
