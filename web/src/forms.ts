import { ApiError, passwordPolicy } from './api.js';
import { announce, clearErrors, field, focusFirstInvalid, h, setFieldError, setFormError } from './dom.js';

/** The field rules of the contract, mirrored as input constraints. */
export const USERNAME = { minlength: 3, maxlength: 32, pattern: '[A-Za-z0-9_.\\-]{3,32}', autocomplete: 'username', hint: '3–32 letters, digits, “_”, “.” or “-”.' };
export const NAME = { maxlength: 100, autocomplete: 'name' };
export const EMAIL = { type: 'email', maxlength: 254, autocomplete: 'email' };

export function dobLimits(): { min: string; max: string } {
  const today = new Date().toISOString().slice(0, 10);
  const oldest = new Date();
  oldest.setUTCFullYear(oldest.getUTCFullYear() - 150);
  return { max: today, min: oldest.toISOString().slice(0, 10) };
}

/**
 * Wires a form: the browser's own constraint checks (mirroring the server's field rules) run
 * first and show their message next to the field; then the server's problem+json answer is
 * shown the same way, each `errors[].field` next to the input of that name.
 */
export function onSubmit(form: HTMLFormElement, action: (form: HTMLFormElement) => Promise<void>): void {
  form.noValidate = true; // our own messages, in our own error slots, announced
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!checkFields(form)) return;
    const button = form.querySelector<HTMLButtonElement>('button[type="submit"]');
    if (button) button.disabled = true;
    try {
      await action(form);
    } catch (err) {
      showProblem(form, err);
    } finally {
      if (button) button.disabled = false;
    }
  });
}

function checkFields(form: HTMLFormElement): boolean {
  let ok = true;
  for (const input of form.querySelectorAll('input')) {
    if (input.checkValidity()) continue;
    ok = false;
    setFieldError(form, input.name, messageFor(input));
  }
  if (!ok) {
    announce('Some fields need attention.');
    focusFirstInvalid(form);
  }
  return ok;
}

function messageFor(input: HTMLInputElement): string {
  const v = input.validity;
  if (v.valueMissing) return 'This field is required.';
  if (v.tooShort) return `Use at least ${input.minLength} characters.`;
  if (v.tooLong) return `Use at most ${input.maxLength} characters.`;
  if (v.typeMismatch && input.type === 'email') return 'Enter an email address like name@example.com.';
  if (v.patternMismatch && input.name === 'username') return 'Use 3–32 letters, digits, “_”, “.” or “-”.';
  if (v.rangeOverflow) return 'The date cannot be in the future.';
  if (v.rangeUnderflow) return 'The date cannot be more than 150 years ago.';
  if (v.badInput) return 'Enter a real date.';
  return input.validationMessage || 'This value is not valid.';
}

export function showProblem(form: HTMLFormElement, err: unknown): void {
  if (!(err instanceof ApiError)) {
    setFormError(form, 'The service could not be reached. Check your connection and try again.');
    return;
  }
  const problem = err.problem;
  let placed = false;
  for (const e of problem.errors ?? []) {
    if (setFieldError(form, e.field, sentence(e.message))) placed = true;
  }
  // Errors that name no field of this form (a conflict, a wrong password, throttling) go on top.
  const byCode: Record<string, string> = {
    username_taken: 'username',
    email_taken: 'email',
    password_reused: 'new_password',
    invalid_credentials: 'current_password',
    reauthentication_required: 'current_password',
    invalid_mfa_code: 'code',
  };
  const codeField = byCode[problem.code];
  if (codeField && setFieldError(form, codeField, problem.detail)) placed = true;
  if (!placed) setFormError(form, problem.detail);
  announce(problem.detail);
  focusFirstInvalid(form);
}

function sentence(message: string): string {
  const m = message.charAt(0).toUpperCase() + message.slice(1);
  return /[.!?]$/.test(m) ? m : `${m}.`;
}

/**
 * A new password's field and its strength meter, with the server's length rules (PASSWORD_MIN_LENGTH,
 * GET /v1/password-policy). If the rules cannot be read, the field has no length limits and the
 * server's answer names the rule a password breaks.
 */
export async function newPasswordField(name: string, label: string): Promise<HTMLElement[]> {
  const policy = await passwordPolicy().catch(() => undefined);
  const input = field({
    name,
    label,
    type: 'password',
    autocomplete: 'new-password',
    ...(policy ? { minlength: policy.min_length, maxlength: policy.max_length, hint: `At least ${policy.min_length} characters.` } : {}),
  });
  return [input, strengthMeter(input.querySelector('input')!, policy?.min_length)];
}

/** A rough strength hint (length and variety); the server's rules decide. */
export function strengthMeter(input: HTMLInputElement, minLength = 1): HTMLElement {
  const meter = h('meter', { min: 0, max: 4, low: 2, high: 3, optimum: 4, value: 0, 'aria-hidden': 'true' });
  const text = h('p', { class: 'hint', id: `${input.id}-strength` }, 'Use a long passphrase: four or more unrelated words work well.');
  input.setAttribute('aria-describedby', `${input.getAttribute('aria-describedby') ?? ''} ${text.id}`.trim());
  input.addEventListener('input', () => {
    const score = strength(input.value, minLength);
    meter.value = score;
    text.textContent = ['Too short.', 'Weak: make it longer.', 'Fair: longer is stronger.', 'Good.', 'Strong.'][score]!;
  });
  return h('div', {}, meter, text);
}

function strength(password: string, minLength: number): number {
  const length = [...password].length;
  if (length < Math.max(minLength, 8)) return 0;
  const variety = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((r) => r.test(password)).length;
  if (length >= 20) return 4;
  if (length >= 15) return variety >= 2 ? 4 : 3;
  if (length >= 12) return variety >= 3 ? 3 : 2;
  return variety >= 3 ? 2 : 1;
}

export function submit(label: string): HTMLButtonElement {
  return h('button', { type: 'submit' }, label);
}
