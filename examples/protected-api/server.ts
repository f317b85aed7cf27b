/**
 * Starts the example: AUTH_ISSUER is the user management service's issuer (its PUBLIC_URL),
 * AUTH_AUDIENCE its JWT_AUDIENCE (its PUBLIC_URL unless set). Each request's session is checked
 * with the service, so a logout counts at once (CHECK_SESSION=false turns that off).
 */
import { createProtectedApi } from './app.js';

const issuer = process.env.AUTH_ISSUER ?? 'http://localhost:3000';
const port = Number(process.env.PORT ?? 4000);
const app = createProtectedApi({
  issuer,
  audience: process.env.AUTH_AUDIENCE ?? issuer,
  checkSession: process.env.CHECK_SESSION !== 'false',
});
app.listen(port, '127.0.0.1', () => console.log(`Example API on http://127.0.0.1:${port}, accepting tokens of ${issuer}`));
