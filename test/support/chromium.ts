/** @module How the browser tests launch Chromium: the Debian package's binary, never a downloaded browser. */

/** Launch options for `chromium.launchPersistentContext` (playwright-core). */
export const CHROMIUM = {
  executablePath: '/usr/bin/chromium',
  headless: true,
  chromiumSandbox: false,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
}
