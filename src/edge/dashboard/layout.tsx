import type { Child } from 'hono/jsx'

export const PAGES = [
  { path: '/dashboard', title: 'Overview' },
  { path: '/dashboard/keys', title: 'Keys' },
  { path: '/dashboard/jobs', title: 'Jobs' },
  { path: '/dashboard/usage', title: 'Usage' },
  { path: '/dashboard/models', title: 'Models' },
  { path: '/dashboard/guard', title: 'Guard' },
  { path: '/dashboard/moderation', title: 'Moderation' },
] as const

const CSS = `
:root{color-scheme:light dark;font-family:system-ui,sans-serif;line-height:1.4}
body{margin:0;display:flex;min-height:100vh}
nav{background:#1f2937;color:#fff;padding:1rem;min-width:11rem}
nav a{color:#e5e7eb;display:block;padding:.35rem .5rem;border-radius:4px;text-decoration:none}
nav a[aria-current=page]{background:#374151;font-weight:600}
nav form{margin-top:1rem}
main{padding:1rem 2rem;flex:1;max-width:70rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #8884}
.cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{border:1px solid #8886;border-radius:6px;padding:.75rem 1rem;min-width:9rem}
.card strong{display:block;font-size:1.6rem}
.columns{display:flex;gap:2rem;flex-wrap:wrap}
.columns>section{flex:1;min-width:20rem}
textarea{font-family:ui-monospace,monospace;width:100%;box-sizing:border-box}
.notice{border:2px solid #16a34a;padding:.75rem;border-radius:6px}
.error{border:2px solid #dc2626;padding:.75rem;border-radius:6px}
code{word-break:break-all}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
/* Every focusable thing shows where the keyboard is: dark blue on the light page, light blue on the dark nav. */
:focus-visible{outline:3px solid #1d4ed8;outline-offset:2px}
nav :focus-visible{outline-color:#93c5fd}
progress{width:20rem}
`

export function Document(props: { title: string; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · Moat`}</title>
        <style>{CSS}</style>
      </head>
      <body>{props.children}</body>
    </html>
  )
}

export function CsrfField(props: { token: string }) {
  return <input type="hidden" name="csrf" value={props.token} />
}

// Every signed-in page: a nav naming the current page, sign-out, one h1.
export function Layout(props: { title: string; current: string; csrf: string; children: Child }) {
  return (
    <Document title={props.title}>
      <nav aria-label="Dashboard">
        <strong>Moat</strong>
        {PAGES.map((page) => (
          <a href={page.path} aria-current={page.path === props.current ? 'page' : undefined}>
            {page.title}
          </a>
        ))}
        <form method="post" action="/dashboard/sign-out">
          <CsrfField token={props.csrf} />
          <button type="submit">Sign out</button>
        </form>
      </nav>
      <main>
        <h1>{props.title}</h1>
        {props.children}
      </main>
    </Document>
  )
}

// A page of its own for a refusal or a missing thing, signed in or not.
export function MessagePage(props: { title: string; message: string; link: { href: string; label: string } }) {
  return (
    <Document title={props.title}>
      <main>
        <h1>{props.title}</h1>
        <p role="alert">{props.message}</p>
        <p><a href={props.link.href}>{props.link.label}</a></p>
      </main>
    </Document>
  )
}
