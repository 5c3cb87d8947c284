// In your backend (npm install jose): a token that tells the presence server who the signed-in user is.
import { SignJWT } from 'jose';

const secret = new TextEncoder().encode(process.env.PRESENCE_JWT_SECRET);

export function presenceToken(user) {
  return new SignJWT({ username: user.username, name: user.name ?? null })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(String(user.id))
    .setExpirationTime('12h')
    .sign(secret);
}
