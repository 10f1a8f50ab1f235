namespace EdgeProxy.Configuration;

/// <summary>The validated content of backends.json: services, their models, each model's backends.</summary>
internal sealed record BackendsConfig(IReadOnlyList<ServiceConfig> Services)
{
    public int ModelCount => Services.Sum(s => s.Models.Count);

    public int BackendCount => Services.Sum(s => s.Models.Sum(m => m.Backends.Count));
}

internal sealed record ServiceConfig(string Name, IReadOnlyList<ModelConfig> Models);

/// <summary>
/// One model's backends plus how clients are pinned to them and how unpinned requests are spread.
/// <paramref name="BalanceFactor"/> bounds a pinned key's backend to that multiple of the model's
/// weighted average in-flight load (consistent hashing with bounded loads). When every eligible
/// backend is full (its <see cref="BackendConfig.MaxConcurrency"/> or MAX_CONNECTIONS), up to
/// <paramref name="MaxQueue"/> requests wait in line, each up to <paramref name="QueueTimeout"/>.
/// </summary>
internal sealed record ModelConfig(
    string Name,
    IReadOnlyList<BackendConfig> Backends,
    AffinityConfig Affinity,
    BalancePolicy Balance = BalancePolicy.RoundRobin,
    double BalanceFactor = ModelConfig.DefaultBalanceFactor,
    int MaxQueue = ModelConfig.DefaultMaxQueue,
    TimeSpan? QueueTimeout = null)
{
    /// <summary>Requests that may wait for a full model: a burst of several hundred streams is queued, not refused.</summary>
    public const int DefaultMaxQueue = 512;

    /// <summary>The longest wait in line before a 429: REQUEST_TIMEOUT's default, the time a client already allows for a first byte.</summary>
    public static readonly TimeSpan DefaultQueueTimeout = TimeSpan.FromSeconds(30);

    public TimeSpan QueueTimeoutOrDefault => QueueTimeout ?? DefaultQueueTimeout;

    /// <summary>
    /// HAProxy's hash-balance-factor guidance and Envoy's bounded-load ring hash both start at 1.25:
    /// a key's backend may carry 25% more than the average before the key moves (Mirrokni et al.).
    /// </summary>
    public const double DefaultBalanceFactor = 1.25;
}

/// <summary>How a model's requests without a usable affinity pick are spread (`"balance"` in backends.json).</summary>
internal enum BalancePolicy
{
    /// <summary>Smooth weighted round-robin (the behaviour before `"balance"` existed; default).</summary>
    RoundRobin,

    /// <summary>Fewest requests in flight per unit of weight, from the gateway's own exact counters.</summary>
    LeastOutstanding,
}

internal enum AffinityKind
{
    /// <summary>Pin by client IP (the contract's session affinity; the default before conversations were keyed).</summary>
    ClientIp,

    /// <summary>No pinning: smooth weighted round-robin only.</summary>
    None,

    /// <summary>Pin by a request header (e.g. a session or user id, for KV-cache locality).</summary>
    Header,

    /// <summary>Pin by the conversation's opening read from the JSON body (system prompt and first question), else by client IP (default).</summary>
    Prefix,
}

internal sealed record AffinityConfig(AffinityKind Kind, string? HeaderName = null)
{
    public static readonly AffinityConfig ClientIp = new(AffinityKind.ClientIp);

    /// <summary>The default: a conversation sticks to the backend holding its cache; a request without one sticks by client IP.</summary>
    public static readonly AffinityConfig Prefix = new(AffinityKind.Prefix);

    public override string ToString() => Kind switch
    {
        AffinityKind.ClientIp => "client_ip",
        AffinityKind.None => "none",
        AffinityKind.Prefix => "prefix",
        _ => "header:" + HeaderName,
    };
}

/// <summary>One backend. <see cref="ApiKey"/> never leaves the process: not in responses, pages or logs.</summary>
internal sealed record BackendConfig
{
    public required string Id { get; init; }

    public required string Name { get; init; }

    /// <summary>Absolute http(s) URL without a trailing slash; requests go to `{Url}/{path}`.</summary>
    public required string Url { get; init; }

    public int Weight { get; init; } = 1;

    /// <summary>Requests in flight the engine can batch (`max_concurrency`); null: no limit but MAX_CONNECTIONS.</summary>
    public int? MaxConcurrency { get; init; }

    public string? ApiKey { get; init; }

    public UpstreamAuthMode? AuthMode { get; init; }

    /// <summary>Path probed by active health checks (contract: `/health`).</summary>
    public string HealthPath { get; init; } = "/health";

    /// <summary>
    /// Path of the engine's Prometheus metrics (`metrics_path`, "/metrics"), read while the backend is
    /// busy to learn its batch size (<see cref="Health.BackendState.ObserveEngine"/>); null: not read.
    /// </summary>
    public string? MetricsPath { get; init; } = "/metrics";

    /// <summary>https only: verify the backend against this private CA (PEM) instead of the system CAs.</summary>
    public string? CaFile { get; init; }

    /// <summary>The certificates of <see cref="CaFile"/>, read when the config was loaded.</summary>
    public IReadOnlyList<System.Security.Cryptography.X509Certificates.X509Certificate2> CaCertificates { get; init; } = [];

    /// <summary>https only, explicit: accept any certificate (warned at start, shown on the status page).</summary>
    public bool TlsSkipVerify { get; init; }

    // The key is excluded so that a stray ToString() or log of the record can never print it.
    public override string ToString() => $"{Id} ({Name}) {Url} weight={Weight}";
}
