// A real OpenID provider (panva's oidc-provider, OpenID certified) for Spectr's sign-in tests.
// Everything comes from the environment: PORT, CLIENT (JSON: id, secret, redirect_uris,
// post_logout_redirect_uris), JWKS (private signing keys), ACCOUNTS (login -> groups).
// Any password signs in at its development login form. GET /__test/tamper?audience=X,
// ?nonce=Y or
// ?signature=bad makes later ID tokens wrong in that way (a misbehaving provider); no query
// puts it right again.
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';
import { SignJWT, decodeJwt } from 'jose';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const client = JSON.parse(process.env.CLIENT);
const jwks = JSON.parse(process.env.JWKS);
const accounts = JSON.parse(process.env.ACCOUNTS || '{}');

const provider = new Provider(issuer, {
  clients: [{
    client_id: client.id,
    client_secret: client.secret,
    redirect_uris: client.redirect_uris,
    post_logout_redirect_uris: client.post_logout_redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks,
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false, // the asked-for claims go into the ID token too
  cookies: { keys: ['spectr-test-cookie-key'] },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          preferred_username: id,
          name: id,
          email: `${id}@example.test`,
          groups: (accounts[id] || {}).groups || [],
        };
      },
    };
  },
  // No consent screen: the test client is first-party.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile email groups');
    await grant.save();
    return grant;
  },
});

let tamper = {};
provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/tamper') {
    tamper = { ...ctx.query };
    ctx.body = { tamper };
    return;
  }
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.id_token
      && (tamper.audience || tamper.signature || tamper.nonce)) {
    const claims = decodeJwt(ctx.body.id_token);
    if (tamper.audience) claims.aud = tamper.audience;
    if (tamper.nonce) claims.nonce = tamper.nonce;
    const signing = jwks.keys[0];
    const key = tamper.signature
      ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
      : createPrivateKey({ key: signing, format: 'jwk' });
    ctx.body.id_token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: signing.kid })
      .sign(key);
  }
});

provider.listen(port, '127.0.0.1', () => console.log(`listening ${issuer}`));
