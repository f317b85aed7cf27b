/** Starts the example on PORT (4000); the settings are in app.ts (verifierSettings). */
import { createProtectedApi, verifierSettings } from './app.js';

const settings = verifierSettings(process.env);
const port = Number(process.env.PORT ?? 4000);
createProtectedApi(settings).listen(port, '127.0.0.1', () => console.log(`Example API on http://127.0.0.1:${port}, accepting tokens of ${settings.issuer}`));
