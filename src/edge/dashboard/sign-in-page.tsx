import { Document } from './layout.tsx'

export function SignInPage(props: { csrf: string; error?: string }) {
  return (
    <Document title="Sign in">
      <main>
        <h1>Sign in to Moat</h1>
        {props.error ? <p class="error" role="alert">{props.error}</p> : null}
        <form method="post" action="/dashboard/sign-in">
          <input type="hidden" name="csrf" value={props.csrf} />
          <p>
            <label for="key">API key with the admin scope</label>
            <br />
            <input id="key" name="key" type="password" autocomplete="off" required size={50} />
          </p>
          <button type="submit">Sign in</button>
        </form>
      </main>
    </Document>
  )
}
