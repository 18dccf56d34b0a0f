// A small kavachOS host that follows ../shared contract: runs plugins' init,
// merges their context, routes with basePath stripping, enforces requireAuth
// and answers JSON errors. Tests drive the plugin through it as kavachOS would.

export async function createHost({ database, plugins, getUser = async () => null }) {
  const endpoints = []
  const context = {}
  const migrations = []
  for (const plugin of plugins) {
    const ctx = {
      db: null,
      config: { database },
      addEndpoint: (endpoint) => endpoints.push(endpoint),
      addMigration: (sql) => migrations.push(sql),
      sessionManager: null,
    }
    const result = await plugin.init?.(ctx)
    Object.assign(context, result?.context ?? {})
  }
  const getUserCalls = { count: 0 }
  const endpointCtx = {
    db: null,
    async getUser(request) {
      getUserCalls.count += 1
      return getUser(request)
    },
    getSession: async () => null,
  }
  return {
    endpoints,
    migrations,
    getUserCalls,
    plugins: {
      getContext: () => context,
      async handleRequest(request, basePath = '') {
        const url = new URL(request.url)
        if (!url.pathname.startsWith(basePath)) return null
        let path = url.pathname.slice(basePath.length) || '/'
        if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1)
        const endpoint = endpoints.find((e) => e.method === request.method && e.path === path)
        if (!endpoint) return null
        if (endpoint.metadata?.requireAuth && !(await endpointCtx.getUser(request))) {
          return Response.json({ error: 'Authentication required' }, { status: 401 })
        }
        try {
          return await endpoint.handler(new Request(url, request), endpointCtx)
        } catch (error) {
          return Response.json({ error: error.message }, { status: 500 })
        }
      },
    },
  }
}
