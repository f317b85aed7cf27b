import ipaddr from 'ipaddr.js';

/**
 * The part of a client address that per-address limits count by. An IPv4 address counts as
 * itself (an IPv4-mapped IPv6 address as its IPv4 address); an IPv6 address counts by its /64,
 * since one subscriber usually holds a whole /64 and could otherwise step through 2^64 addresses
 * to get a fresh count on every request (OWASP, and the advice of most rate-limit libraries).
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
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().toString();
  return `${v6.parts.slice(0, 4).map((part) => part.toString(16)).join(':')}::/64`;
}
