/** A few DOM helpers. Text always goes in as text (never as HTML), so nothing a user typed can run. */

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | boolean | number | undefined | ((event: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(key.replace(/^on/, ''), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) el.append(child);
  return el;
}

/** Says something to screen readers (the polite live region of the page). */
export function announce(message: string): void {
  const region = document.getElementById('announcer')!;
  region.textContent = '';
  // A fresh text node after a tick so the same message twice is announced twice.
  setTimeout(() => (region.textContent = message), 30);
}

export interface FieldOptions {
  name: string;
  /** The input's id; `f-<name>` unless a page has two fields of that name (ids must differ). */
  id?: string;
  label: string;
  type?: string;
  value?: string;
  autocomplete?: string;
  hint?: string;
  required?: boolean;
  minlength?: number;
  maxlength?: number;
  pattern?: string;
  max?: string;
  min?: string;
  inputmode?: string;
}

/** A labelled input with its hint and an error slot that the input points at (aria-describedby). */
export function field(options: FieldOptions): HTMLElement {
  const id = options.id ?? `f-${options.name}`;
  const hintId = options.hint ? `${id}-hint` : undefined;
  const errorId = `${id}-error`;
  const input = h('input', {
    id,
    name: options.name,
    type: options.type ?? 'text',
    value: options.value,
    autocomplete: options.autocomplete,
    required: options.required ?? true,
    minlength: options.minlength,
    maxlength: options.maxlength,
    pattern: options.pattern,
    max: options.max,
    min: options.min,
    inputmode: options.inputmode,
    'aria-describedby': [hintId, errorId].filter(Boolean).join(' '),
  });
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, options.label),
    input,
    options.hint ? h('p', { class: 'hint', id: hintId }, options.hint) : null,
    h('p', { class: 'error', id: errorId }),
  );
}

export function setFieldError(form: HTMLFormElement, name: string, message: string): boolean {
  const input = form.elements.namedItem(name);
  if (!(input instanceof HTMLInputElement)) return false;
  input.setAttribute('aria-invalid', 'true');
  document.getElementById(`${input.id}-error`)!.textContent = message;
  return true;
}

export function clearErrors(form: HTMLFormElement): void {
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const el of form.querySelectorAll('.error')) el.textContent = '';
  const formError = form.querySelector('.form-error');
  if (formError) formError.remove();
}

/** An error about the whole form, first in it, announced at once. */
export function setFormError(form: HTMLFormElement, message: string): void {
  const box = h('p', { class: 'error form-error', role: 'alert' }, message);
  form.prepend(box);
}

export function focusFirstInvalid(form: HTMLFormElement): void {
  const first = form.querySelector<HTMLElement>('[aria-invalid="true"]');
  if (first) first.focus();
}

export function formValues(form: HTMLFormElement): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [key, value] of new FormData(form)) if (typeof value === 'string') values[key] = value;
  return values;
}
