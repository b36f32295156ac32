// Checks a URL a tenant gives Moat to call (webhooks, billing sinks, model
// routes) against server-side request forgery: https only, no credentials in
// the URL, and no private, loopback, link-local, shared, multicast or cloud
// metadata addresses. The operator can allow named hosts (and loopback, for
// local development). Hostnames are checked as names; a public name that
// resolves to a private address is the network's to block (Workers cannot
// reach private networks).

export type OutboundUrlPolicy = { allowHosts?: readonly string[]; allowLoopback?: boolean }
export type OutboundUrlCheck = { ok: true; url: URL } | { ok: false; reason: string }

const BLOCKED_V4: [number, number][] = [
  [0x00000000, 8], // "this" network
  [0x0a000000, 8], // private
  [0x64400000, 10], // carrier-grade NAT
  [0x7f000000, 8], // loopback
  [0xa9fe0000, 16], // link-local, cloud metadata
  [0xac100000, 12], // private
  [0xc0000000, 24], // IETF protocol assignments
  [0xc0000200, 24], // documentation
  [0xc0a80000, 16], // private
  [0xc6120000, 15], // benchmarking
  [0xc6336400, 24], // documentation
  [0xcb007100, 24], // documentation
  [0xe0000000, 4], // multicast
  [0xf0000000, 4], // reserved, broadcast
]

const BLOCKED_NAMES = [/^localhost$/, /\.localhost$/, /\.local$/, /\.internal$/, /\.home\.arpa$/, /^metadata$/]

function ipv4ToNumber(host: string): number | null {
  const parts = host.split('.')
  if (parts.length !== 4 || !parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) <= 255)) return null
  return parts.reduce((acc, part) => acc * 256 + Number(part), 0)
}

function isBlockedV4(address: number): boolean {
  return BLOCKED_V4.some(([base, bits]) => Math.floor(address / 2 ** (32 - bits)) === Math.floor(base / 2 ** (32 - bits)))
}

function isLoopback(host: string): boolean {
  if (host === 'localhost' || host.endsWith('.localhost') || host === '[::1]') return true
  const v4 = ipv4ToNumber(host)
  return v4 !== null && Math.floor(v4 / 2 ** 24) === 127
}

// Expands an IPv6 literal (without brackets) to eight 16-bit groups.
function ipv6Groups(literal: string): number[] | null {
  let text = literal
  const v4Tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4Tail) {
    const v4 = ipv4ToNumber(v4Tail[1]!)
    if (v4 === null) return null
    text = `${text.slice(0, -v4Tail[1]!.length)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`
  }
  const [head, tail, extra] = text.split('::')
  if (extra !== undefined) return null
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const missing = 8 - left.length - right.length
  if (tail === undefined ? missing !== 0 : missing < 1) return null
  const groups = [...left, ...Array(tail === undefined ? 0 : missing).fill('0'), ...right]
  if (!groups.every((group) => /^[0-9a-f]{1,4}$/i.test(group))) return null
  return groups.map((group) => Number.parseInt(group, 16))
}

function isBlockedV6(literal: string): boolean {
  const groups = ipv6Groups(literal)
  if (!groups) return true
  const [g0, g1, g2, g3, g4, g5, g6, g7] = groups as [number, number, number, number, number, number, number, number]
  if (groups.every((group) => group === 0)) return true // unspecified
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0 && g6 === 0 && g7 === 1) return true // loopback
  if ((g0 & 0xfe00) === 0xfc00) return true // unique local
  if ((g0 & 0xffc0) === 0xfe80) return true // link-local
  if ((g0 & 0xff00) === 0xff00) return true // multicast
  if (g0 === 0x2001 && g1 === 0x0db8) return true // documentation
  // IPv4-mapped, IPv4-compatible and NAT64 addresses carry an IPv4 address to check.
  const embedsV4 =
    (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && (g5 === 0xffff || g5 === 0)) ||
    (g0 === 0x64 && g1 === 0xff9b)
  if (embedsV4) return isBlockedV4(g6 * 65536 + g7)
  return false
}

export function checkOutboundUrl(raw: string, policy: OutboundUrlPolicy = {}): OutboundUrlCheck {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return { ok: false, reason: 'not an absolute URL' }
  }
  if (url.username || url.password) return { ok: false, reason: 'credentials in the URL are not allowed' }
  const host = url.hostname.toLowerCase()
  const allowed = policy.allowHosts?.some((entry) => entry.toLowerCase() === host) ?? false
  const loopbackAllowed = (policy.allowLoopback ?? false) && isLoopback(host)
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && (allowed || loopbackAllowed))) {
    return { ok: false, reason: 'only https URLs are allowed' }
  }
  if (allowed || loopbackAllowed) return { ok: true, url }
  if (host.startsWith('[')) {
    return isBlockedV6(host.slice(1, -1)) ? { ok: false, reason: 'private or reserved IPv6 address' } : { ok: true, url }
  }
  const v4 = ipv4ToNumber(host)
  if (v4 !== null) return isBlockedV4(v4) ? { ok: false, reason: 'private or reserved IPv4 address' } : { ok: true, url }
  if (!host.includes('.') || BLOCKED_NAMES.some((pattern) => pattern.test(host))) {
    return { ok: false, reason: 'internal host name' }
  }
  return { ok: true, url }
}
