import { isIP } from 'node:net';
import type { MailMessage } from './mailer.js';

/**
 * The messages the service sends: short, plain text first, the same words in simple HTML with
 * no remote images (nothing that tracks or loads). Never a password or a hash; a token only
 * inside its link's fragment.
 */

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Paragraphs of text; a paragraph that is a link becomes a button-like link in HTML. */
function compose(to: string, subject: string, paragraphs: Array<string | { link: string; label: string }>): MailMessage {
  const text = paragraphs.map((p) => (typeof p === 'string' ? p : `${p.label}:\n${p.link}`)).join('\n\n') + '\n';
  const body = paragraphs
    .map((p) =>
      typeof p === 'string'
        ? `<p>${escapeHtml(p)}</p>`
        : `<p><a href="${escapeHtml(p.link)}" style="display:inline-block;padding:10px 16px;background:#1f4fd1;color:#ffffff;text-decoration:none;border-radius:4px">${escapeHtml(p.label)}</a></p>\n<p style="font-size:12px;color:#555555">Or copy this address into your browser: ${escapeHtml(p.link)}</p>`,
    )
    .join('\n');
  const html = `<!doctype html>\n<html><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head>\n<body style="font-family:sans-serif;line-height:1.5;color:#111111">\n${body}\n</body></html>\n`;
  return { to, subject, text, html };
}

export function verifyEmailMessage(to: string, link: string): MailMessage {
  return compose(to, 'Confirm your email address', [
    'Hello,',
    `please confirm that ${to} is your email address.`,
    { label: 'Confirm my email address', link },
    'The link works once, for 24 hours. If you did not sign up or change your email, you can ignore this message.',
  ]);
}

/** An account an administrator made for the user (API-ADMIN.md, send_invite): a link to choose a password. */
export function inviteMessage(to: string, link: string, validHours: number): MailMessage {
  return compose(to, 'An account was made for you', [
    'Hello,',
    `an administrator made an account for ${to}. Choose its password to start using it.`,
    { label: 'Choose my password', link },
    `The link works once, for ${validHours} hours. If you did not expect this, ignore this message.`,
  ]);
}

export function emailChangedMessage(to: string, newEmail: string): MailMessage {
  return compose(to, 'Your email address was changed', [
    'Hello,',
    `the email address of your account was changed from ${to} to ${newEmail}. Mail for the account now goes to the new address.`,
    'If you did not make this change, reset your password and contact us at once: someone else may have signed in to your account.',
  ]);
}

export function passwordResetMessage(to: string, link: string): MailMessage {
  return compose(to, 'Reset your password', [
    'Hello,',
    'someone (we hope you) asked to reset the password of your account.',
    { label: 'Choose a new password', link },
    'The link works once, for 30 minutes. Setting a new password signs you out everywhere. If you did not ask for this, ignore this message: your password stays as it is.',
  ]);
}

/** A change that guards the account (see account/security-notices.ts): what, when, from where. */
export function securityNoticeMessage(to: string, subject: string, what: string, context: { at: Date; ip: string | null }): MailMessage {
  return compose(to, subject, [
    'Hello,',
    what,
    // Behind TRUST_PROXY=true the address comes from X-Forwarded-For, which any client writes:
    // only an IP address is repeated here.
    `When: ${context.at.toUTCString()}. From the address: ${context.ip && isIP(context.ip) ? context.ip : 'unknown'}.`,
    'If this was you, there is nothing to do. If it was not, reset your password at once and check the sign-ins of your account: someone else may have had access to it.',
  ]);
}

/** An invitation to an organization (API-ORGS.md): the link signs in or up, then joins. */
export function orgInvitationMessage(to: string, orgName: string, inviter: string, role: string, link: string, validDays: number): MailMessage {
  return compose(to, `You are invited to join ${orgName}`, [
    'Hello,',
    `${inviter} invited ${to} to join the organization "${orgName}" as ${role}.`,
    { label: 'Accept the invitation', link },
    `The link works once, for ${validDays} days. Without an account yet, sign up with this email address from the link. If you did not expect this, ignore this message.`,
  ]);
}
