// Types for seed.mjs, so bench/*.ts (strict, no allowJs) can import it.
export declare const PEER_PASSWORD: string;
export declare function peerEmail(i: number): string;
export declare function authBase(baseUrl: string): string;
export declare function seedPeer(
  baseUrl: string,
  n: number,
  options?: { concurrency?: number; password?: string },
): Promise<Array<{ email: string; password: string }>>;
/** Headers for GET /api/auth/get-session: { cookie: 'better-auth.session_token=<token>.<signature>' }. */
export declare function signIn(baseUrl: string, email: string, password?: string): Promise<{ cookie: string }>;
