// A copy of kavachOS 0.2.1's public types as an app sees them (from the project's shared
// reference), for type-checking the README's kavachOS snippet under `strict`.
// The parts of kavachOS 0.2.1's public types that a plugin package meets, written out
// structurally (kavachOS is not installable from the registries these machines reach).
// Use it to type-check examples the way a kavachOS app would see them.
declare module 'kavachos' {
  export type DatabaseConfig =
    | { provider: 'sqlite' | 'sqlite-native' | 'postgres' | 'mysql'; url: string; skipMigrations?: boolean }
    | { provider: 'd1'; binding: unknown; skipMigrations?: boolean };

  export interface ResolvedUser { id: string; email?: string; name?: string; image?: string; metadata?: Record<string, unknown> }

  export interface EndpointContext {
    db: unknown;
    getUser(request: Request): Promise<ResolvedUser | null>;
    getSession(token: string): Promise<unknown | null>;
  }

  export interface PluginEndpoint {
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
    path: string;
    handler: (request: Request, context: EndpointContext) => Promise<Response>;
    metadata?: { rateLimit?: { window: number; max: number }; requireAuth?: boolean; description?: string };
  }

  export interface KavachConfig {
    database: DatabaseConfig;
    auth?: { adapter?: unknown; session?: { secret: string; maxAge?: number; cookieName?: string } };
    baseUrl?: string;
    secret?: string;
    plugins?: KavachPlugin[];
  }

  export interface PluginContext {
    db: unknown;
    config: KavachConfig;
    addEndpoint: (endpoint: PluginEndpoint) => void;
    addMigration: (sql: string) => void;
    sessionManager: unknown | null;
  }

  export interface KavachPlugin {
    id: string;
    init?: (ctx: PluginContext) => Promise<{ context?: Record<string, unknown> } | undefined>;
    schema?: Record<string, unknown>;
    hooks?: {
      onRequest?: (request: Request) => Promise<Request | Response | undefined>;
      onSessionCreate?: (userId: string) => Promise<Record<string, unknown> | undefined>;
      onSessionRevoke?: (sessionId: string) => Promise<void>;
    };
  }

  export interface Kavach {
    plugins: {
      handleRequest(request: Request, basePath?: string): Promise<Response | null>;
      getEndpoints(): PluginEndpoint[];
      getContext(): Record<string, unknown>;
    };
  }

  export function createKavach(config: KavachConfig): Promise<Kavach>;
}
