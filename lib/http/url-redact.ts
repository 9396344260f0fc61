/**
 * URLs in messages, output and error data: the one redaction rule. A password in the URL is
 * masked as `***`; the user name stays (it helps diagnose which account was tried), and a URL
 * without a password is shown exactly as written.
 */

/** `https://user:secret@host/x` -> `https://user:***@host/x`; anything else (no password, not a URL) unchanged. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password === '') return url;
    u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}
