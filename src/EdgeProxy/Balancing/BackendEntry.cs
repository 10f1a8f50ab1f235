using EdgeProxy.Health;

namespace EdgeProxy.Balancing;

/// <summary>
/// One backend as the request path sees it: everything needed to send a request, precomputed once
/// per config snapshot. Kept in arrays inside <see cref="ModelRoute"/>.
/// </summary>
internal readonly struct BackendEntry(BackendState state, string baseUrl, int weight, string? authHeaderName, string? authHeaderValue)
{
    /// <summary>Run-time health and counters; shared with later snapshots while the backend is unchanged.</summary>
    public BackendState State { get; } = state;

    /// <summary>`scheme://host:port[/prefix]` without a trailing slash.</summary>
    public string BaseUrl { get; } = baseUrl;

    public int Weight { get; } = weight;

    /// <summary>`Authorization` or `x-api-key`, or null when no upstream key applies.</summary>
    public string? AuthHeaderName { get; } = authHeaderName;

    /// <summary>The header value (`Bearer sk-…` or the bare key). Never logged or returned.</summary>
    public string? AuthHeaderValue { get; } = authHeaderValue;

    /// <summary>The fast path's view of a plain-http backend; null for https (those use the general path).</summary>
    public Http1Target? Http1 { get; } = Http1Target.TryCreate(baseUrl, authHeaderName, authHeaderValue);

    public string Id => State.Config.Id;
}
