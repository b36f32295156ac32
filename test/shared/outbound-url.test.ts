import { describe, expect, it } from 'vitest'
import { checkOutboundUrl } from '../../src/shared/outbound-url.ts'

describe('checkOutboundUrl', () => {
  it('accepts public https URLs', () => {
    for (const url of ['https://api.stripe.com/v1/billing/meter_events', 'https://hooks.example.com:8443/x?y=1', 'https://8.8.8.8/', 'https://[2606:4700::1111]/']) {
      expect(checkOutboundUrl(url).ok, url).toBe(true)
    }
  })

  it('refuses private, loopback, link-local, metadata and reserved targets in every spelling', () => {
    for (const url of [
      'https://127.0.0.1/',
      'https://2130706433/', // 127.0.0.1 as one number
      'https://0x7f.1/', // hex and short forms
      'https://017700000001/', // octal
      'https://10.1.2.3/',
      'https://172.16.0.1/',
      'https://172.31.255.255/',
      'https://192.168.1.1/',
      'https://169.254.169.254/latest/meta-data/',
      'https://100.64.0.1/',
      'https://0.0.0.0/',
      'https://224.0.0.1/',
      'https://[::1]/',
      'https://[::]/',
      'https://[fd00::1]/',
      'https://[fe80::1]/',
      'https://[::ffff:127.0.0.1]/',
      'https://[::ffff:a9fe:a9fe]/',
      'https://[64:ff9b::10.0.0.1]/',
      'https://localhost/',
      'https://api.localhost/',
      'https://printer.local/',
      'https://metadata.google.internal/',
      'https://intranet/',
    ]) {
      const check = checkOutboundUrl(url)
      expect(check.ok, url).toBe(false)
    }
  })

  it('refuses http, credentials and garbage', () => {
    expect(checkOutboundUrl('http://example.com/')).toEqual({ ok: false, reason: 'only https URLs are allowed' })
    expect(checkOutboundUrl('https://user:pass@example.com/')).toEqual({ ok: false, reason: 'credentials in the URL are not allowed' })
    expect(checkOutboundUrl('ftp://example.com/').ok).toBe(false)
    expect(checkOutboundUrl('not a url').ok).toBe(false)
  })

  it('lets the operator allow loopback and named hosts, http included', () => {
    expect(checkOutboundUrl('http://127.0.0.1:9000/hook', { allowLoopback: true }).ok).toBe(true)
    expect(checkOutboundUrl('http://localhost:9000/hook', { allowLoopback: true }).ok).toBe(true)
    expect(checkOutboundUrl('http://10.0.0.5/hook', { allowLoopback: true }).ok).toBe(false)
    expect(checkOutboundUrl('http://billing.internal/x', { allowHosts: ['billing.internal'] }).ok).toBe(true)
    expect(checkOutboundUrl('https://other.internal/x', { allowHosts: ['billing.internal'] }).ok).toBe(false)
  })
})
