import type { CurrentUser } from '../types.js';

/**
 * Who a request counts against in the per-peer limits (held polls, followed channels): a signed-in user by
 * id, else the client's address. An IPv6 address counts by its /64 prefix, because that is what one
 * subscriber gets (one home, one phone, one VM): keyed by the full address, one client would own 2^64
 * peers and every per-peer limit would be void. IPv4, and IPv4-mapped IPv6 (`::ffff:192.0.2.1`, what a
 * dual-stack socket reports for an IPv4 client), count by the full address.
 *
 * The one place that decides it, so every limit keyed by peer agrees on who a peer is.
 *
 * @example peerKey(null, '2001:db8:1:2:aaaa::1') // 'ip:2001:db8:1:2::/64'
 * @example peerKey(null, '::ffff:192.0.2.1') // 'ip:192.0.2.1'
 * @example peerKey({ id: 7 }, '192.0.2.1') // 'user:7'
 */
export function peerKey(
  user: Pick<CurrentUser, 'id'> | null | undefined,
  address: string | undefined,
): string {
  if (user) return `user:${user.id}`;
  return `ip:${address === undefined ? 'unknown' : addressKey(address)}`;
}

/**
 * The part of `address` that identifies a peer: a normalised IPv4 address, or an IPv6 /64 prefix written
 * `a:b:c:d::/64` (lower case, no leading zeros). Anything that is not an IP address is returned as given.
 */
export function addressKey(address: string): string {
  const ipv4 = parseIpv4(address);
  if (ipv4) return ipv4.join('.');
  const groups = parseIpv6(address);
  if (!groups) return address;
  // ::ffff:a.b.c.d — an IPv4 client on a dual-stack socket: the same peer as a.b.c.d.
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff)
    return [
      groups[6]! >> 8,
      groups[6]! & 0xff,
      groups[7]! >> 8,
      groups[7]! & 0xff,
    ].join('.');
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(':')}::/64`;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const HEXTET = /^[0-9a-f]{1,4}$/i;

/** The four octets of a dotted-quad IPv4 address, or `null`. */
function parseIpv4(text: string): number[] | null {
  const match = IPV4.exec(text);
  if (!match) return null;
  const octets = match.slice(1).map(Number);
  return octets.every((octet) => octet <= 255) ? octets : null;
}

/**
 * The eight 16-bit groups of an IPv6 address (`::` shorthand, an embedded IPv4 tail and a `%zone` suffix
 * accepted), or `null` when `text` is not one.
 */
function parseIpv6(text: string): number[] | null {
  const zone = text.indexOf('%');
  const address = zone === -1 ? text : text.slice(0, zone);
  const halves = address.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const groups: number[] = [];
    const pieces = part.split(':');
    for (let index = 0; index < pieces.length; index += 1) {
      const piece = pieces[index]!;
      if (index === pieces.length - 1 && piece.includes('.')) {
        const ipv4 = parseIpv4(piece);
        if (!ipv4) return null;
        groups.push((ipv4[0]! << 8) | ipv4[1]!, (ipv4[2]! << 8) | ipv4[3]!);
      } else if (HEXTET.test(piece)) {
        groups.push(parseInt(piece, 16));
      } else {
        return null;
      }
    }
    return groups;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (!head || !tail) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const missing = 8 - head.length - tail.length;
  // `::` stands for at least one zero group.
  if (missing < 1) return null;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}
