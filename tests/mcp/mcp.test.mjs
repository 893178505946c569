// The official MCP TypeScript SDK as an MCP client that knows only the MCP
// server's URL: its first request is refused (401); from there it finds the
// protected resource metadata (RFC 9728) and Portcullis' metadata (RFC 8414),
// registers itself (RFC 7591), and sends the person to sign in — in headless
// Chromium, with a consent page, as a stranger's client deserves; then it
// exchanges the code (PKCE, RFC 8707 resource) and calls a tool of the
// server, which checks the token with portcullis-verify. Run by the Rust test
// `browser::an_mcp_client_finds_portcullis_registers_signs_in_and_calls_a_tool`
// (MCP_URL, PC_USER, PC_PASSWORD). Prints one JSON line with what it saw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { createServer } from 'node:http';
import { launch } from '../browser/lib.mjs';

const mcpUrl = new URL(process.env.MCP_URL);
// The client's redirect URI: a loopback listener on an ephemeral port (RFC 8252 §7.3).
let callback;
const listener = createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/callback') callback = url; // (not the browser's favicon request)
  res.writeHead(200, { 'content-type': 'text/plain' }).end('back in the client');
});
await new Promise((r) => listener.listen(0, '127.0.0.1', r));
const redirectUrl = `http://127.0.0.1:${listener.address().port}/callback`;

// The client's storage, in memory.
class Provider {
  get redirectUrl() { return redirectUrl; }
  get clientMetadata() {
    return {
      client_name: 'MCP test client',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() { return this.client; }
  saveClientInformation(c) { this.client = c; }
  tokens() { return this.saved; }
  saveTokens(t) { this.saved = t; }
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
}

test('an MCP client finds Portcullis, registers, signs the user in and calls a tool', { timeout: 90_000 }, async () => {
  const provider = new Provider();
  let transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
  await assert.rejects(
    new Client({ name: 'portcullis-test', version: '1.0.0' }).connect(transport),
    (e) => e instanceof UnauthorizedError,
  );
  assert.ok(provider.client?.client_id, 'registered itself');
  assert.ok(provider.authorizationUrl, 'was sent to sign in');

  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.goto(provider.authorizationUrl.href);
    assert.equal(new URL(page.url()).pathname, '/login');
    await page.fill('input[autocomplete="username"]', process.env.PC_USER);
    await page.fill('input[autocomplete="current-password"]', process.env.PC_PASSWORD);
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/consent', 'a registered client gets a consent page');
    assert.match(await page.locator('main').innerText(), /MCP test client/);
    await Promise.all([page.waitForURL(/\/callback/), page.click('button[name="decision"][value="approve"]')]);
  } finally {
    await browser.close();
    listener.close();
  }
  const code = callback?.searchParams.get('code');
  assert.ok(code, `a code came back: ${callback}`);
  await transport.finishAuth(code);

  transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
  const client = new Client({ name: 'portcullis-test', version: '1.0.0' });
  await client.connect(transport);
  const tools = await client.listTools();
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  await client.close();
  console.log(JSON.stringify({
    client_id: provider.client.client_id,
    tools: tools.tools.map((t) => t.name),
    text: result.content[0].text,
    access_token: provider.saved.access_token,
  }));
});
