import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Server-side request forgery (ASVS 5.0 V1.3.6; OWASP SSRF Prevention): a webhook URL is an
 * address an administrator typed, and the service POSTs to it from inside the network. Only
 * public unicast addresses are allowed (unless WEBHOOK_ALLOW_PRIVATE): no loopback, private,
 * link-local (169.254.169.254, the cloud metadata service), carrier-grade NAT, unique-local,
 * multicast, reserved, and no IPv6 form that carries an IPv4 address (mapped, 6to4, NAT64,
 * Teredo), whatever it carries. The check is made in the connection's own DNS lookup, on the
 * addresses it then connects to, so a name that resolves to a public address when checked and to
 * a private one a moment later (DNS rebinding) cannot win: there is no second resolution.
 */
export function isForbiddenAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return true;
  return ipaddr.parse(address).range() !== 'unicast';
}

export class ForbiddenAddressError extends Error {
  override name = 'ForbiddenAddressError';
  readonly code = 'EFORBIDDENADDRESS';
}

/** Resolves a host name to every address it has (dns.lookup's `all`); tests pass their own. */
export type Resolve = (hostname: string) => Promise<LookupAddress[]>;

export const systemResolve: Resolve = (hostname) =>
  new Promise((resolve, reject) => dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));

/**
 * The `lookup` of the delivery's socket: resolves, refuses when any address is forbidden, and
 * hands the checked addresses to the connection (it connects to these, and to nothing else).
 */
export function guardedLookup(resolve: Resolve, allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname).then(
      (addresses) => {
        const forbidden = allowPrivate ? undefined : addresses.find((a) => isForbiddenAddress(a.address));
        if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 4);
        if (forbidden) return callback(new ForbiddenAddressError(`${hostname} resolves to ${forbidden.address}, which is not a public address (WEBHOOK_ALLOW_PRIVATE)`), '', 4);
        const wanted = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
        const usable = wanted.length ? wanted : addresses;
        if (options.all) return (callback as unknown as (err: null, addresses: LookupAddress[]) => void)(null, usable);
        return callback(null, usable[0]!.address, usable[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 4),
    );
  };
}

/** A URL whose host is an address literal is checked here: the socket makes no lookup for it. */
export function literalAddressRefused(url: URL, allowPrivate: boolean): string | undefined {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (!isIP(host) || allowPrivate) return undefined;
  return isForbiddenAddress(host) ? `${host} is not a public address (WEBHOOK_ALLOW_PRIVATE)` : undefined;
}
