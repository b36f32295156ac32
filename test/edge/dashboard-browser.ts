import { exports } from 'cloudflare:workers'
import { expect } from 'vitest'

// A browser's part in dashboard tests: cookies carried by hand, forms posted
// with their CSRF token, redirects not followed.
export const BASE = 'http://moat.test'

export type Browser = { cookie: string; csrf: string }

export function fetchPage(path: string, init: RequestInit & { cookie?: string } = {}, base = BASE): Promise<Response> {
  const headers = new Headers(init.headers)
  if (init.cookie) headers.set('cookie', init.cookie)
  return exports.default.fetch(`${base}${path}`, { ...init, headers, redirect: 'manual' })
}

export function csrfOf(html: string): string {
  const match = /name="csrf" value="([^"]*)"/.exec(html)
  if (!match) throw new Error('no csrf field in the page')
  return match[1]!
}

export function cookiePair(response: Response, name: string): string {
  const header = response.headers.getSetCookie().find((c) => c.startsWith(`${name}=`))
  if (!header) throw new Error(`no ${name} cookie set`)
  return header.split(';')[0]!
}

export function post(path: string, browser: Browser, fields: Record<string, string | string[]>): Promise<Response> {
  const body = new URLSearchParams()
  for (const [name, value] of Object.entries(fields)) for (const v of [value].flat()) body.append(name, v)
  return fetchPage(path, { method: 'POST', cookie: browser.cookie, body })
}

export async function startSignIn(base = BASE) {
  const form = await fetchPage('/dashboard/sign-in', {}, base)
  expect(form.status).toBe(200)
  return { response: form, csrf: csrfOf(await form.text()), cookie: cookiePair(form, 'moat_sign_in_csrf') }
}

export async function signIn(key: string): Promise<Browser> {
  const form = await startSignIn()
  const res = await post('/dashboard/sign-in', { cookie: form.cookie, csrf: form.csrf }, { csrf: form.csrf, key })
  expect(res.status).toBe(303)
  expect(res.headers.get('location')).toBe('/dashboard')
  const cookie = cookiePair(res, 'moat_session')
  const page = await fetchPage('/dashboard', { cookie })
  expect(page.status).toBe(200)
  return { cookie, csrf: csrfOf(await page.text()) }
}

