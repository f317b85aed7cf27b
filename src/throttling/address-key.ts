import ipaddr from 'ipaddr.js';

/**
 * The part of a client address that per-address limits count by. An IPv4 address counts as
 * itself; an IPv6 address counts by its /64, since one subscriber usually holds a whole /64 and
 * could otherwise step through 2^64 addresses to get a fresh count on every request (OWASP, and
 * the advice of most rate-limit libraries). Two kinds of IPv6 address stand for something else
 * and are keyed by it: one that carries an IPv4 address (IPv4-mapped, and the NAT64 prefix
 * 64:ff9b::/96, behind which every IPv4 client shares one /64) counts as that IPv4 address; a
 * Teredo address (2001::/32, whose /64 is the Teredo server's, shared by all its clients) counts
 * whole.
 */
export function addressKey(ip: string | null | undefined): string {
  if (!ip) return 'unknown';
  if (!ip.includes(':')) return ip;
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    address = ipaddr.parse(ip);
  } catch {
    return ip; // not an address (a test's made-up value): counted as it is
  }
  if (address.kind() === 'ipv4') return address.toString();
  const v6 = address as ipaddr.IPv6;
  switch (v6.range()) {
    case 'ipv4Mapped':
      return v6.toIPv4Address().toString();
    case 'rfc6052': {
      const [hi, lo] = v6.parts.slice(6) as [number, number];
      return new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]).toString();
    }
    case 'teredo':
      return v6.toNormalizedString();
    default:
      return `${v6.parts.slice(0, 4).map((part) => part.toString(16)).join(':')}::/64`;
  }
}
