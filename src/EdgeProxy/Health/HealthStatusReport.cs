using System.Runtime.InteropServices;
using System.Text.Json.Serialization;

namespace EdgeProxy.Health;

/// <summary>
/// Builds the contract's `/api/health/status` document (plus the live fields the dashboard shows).
/// URLs are shown; keys never are — they are not part of these types at all.
/// </summary>
internal static class HealthStatusReport
{
    public const string ServiceName = "edgeproxy";

    /// <param name="backends">Every backend in config order (the route table's states).</param>
    /// <param name="queues">Each model's wait line (service, model, its figures).</param>
    public static HealthStatusDocument Build(IEnumerable<BackendState> backends, TimeProvider time, string? onlyService = null,
        IEnumerable<(string Service, string Model, QueueStatus Status)>? queues = null)
    {
        var data = new Dictionary<string, Dictionary<string, List<BackendStatus>>>(StringComparer.Ordinal);
        var healthy = 0;
        var total = 0;
        foreach (var state in backends)
        {
            if (onlyService is not null && state.Service != onlyService)
            {
                continue;
            }
            var models = CollectionsMarshal.GetValueRefOrAddDefault(data, state.Service, out _) ??= new(StringComparer.Ordinal);
            var list = CollectionsMarshal.GetValueRefOrAddDefault(models, state.Model, out _) ??= [];
            var stats = state.Stats.Snapshot();
            var status = state.Status;
            total++;
            if (status == HealthStatus.Healthy && !state.IsEjected)
            {
                healthy++;
            }
            var responseMs = state.LastResponseMs;
            list.Add(new BackendStatus
            {
                Id = state.Config.Id,
                Name = state.Config.Name,
                Url = state.Config.Url,
                Weight = state.Config.Weight,
                MaxConcurrency = state.Config.MaxConcurrency,
                LearnedConcurrency = state.LearnedConcurrency,
                TlsSkipVerify = state.Config.TlsSkipVerify,
                Status = Name(status),
                Ejected = state.IsEjected,
                EjectedUntil = state.EjectedUntil,
                HeldUntil = state.HeldUntil,
                ResponseTimeMs = double.IsNaN(responseMs) ? null : responseMs,
                LastCheck = state.LastCheck,
                LastError = state.LastError,
                ConsecutiveFailures = state.ConsecutiveFailures,
                InFlight = state.InFlight,
                Requests = state.Requests,
                Errors = state.Errors,
                Rps = Math.Round(stats.Rps, 3),
                ErrorRate = Math.Round(stats.ErrorRate, 4),
                LatencyP50Ms = Round(stats.LatencyP50Ms),
                LatencyP99Ms = Round(stats.LatencyP99Ms),
                TtfbP50Ms = Round(stats.FirstByteP50Ms),
                TtfbP99Ms = Round(stats.FirstByteP99Ms),
                History = stats.History.Select(h => new HistorySample
                {
                    T = h.UnixSeconds,
                    Rps = Math.Round(h.Rps, 3),
                    ErrorRate = Math.Round(h.ErrorRate, 4),
                    LatencyP50Ms = Round(h.LatencyP50Ms),
                    Healthy = h.Healthy,
                }).ToList(),
            });
        }
        return new HealthStatusDocument
        {
            Service = ServiceName,
            Version = GatewayVersion.Value,
            Type = "health_status",
            GeneratedAt = time.GetUtcNow(),
            Summary = new HealthSummary { Healthy = healthy, Total = total, Availability = total == 0 ? 0 : Math.Round((double)healthy / total, 4) },
            Data = data,
            Queues = queues?.Where(q => onlyService is null || q.Service == onlyService)
                .GroupBy(q => q.Service, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.ToDictionary(q => q.Model, q => q.Status, StringComparer.Ordinal), StringComparer.Ordinal),
        };
    }

    private static double? Round(double? value) => value is double v ? Math.Round(v, 2) : null;

    /// <summary>`healthy`, `unhealthy` or `unknown`: the contract's name of a status (also in the logs).</summary>
    public static string Name(HealthStatus status) => status switch
    {
        HealthStatus.Healthy => "healthy",
        HealthStatus.Unhealthy => "unhealthy",
        _ => "unknown",
    };
}

internal static class GatewayVersion
{
    public const string Value = "1.0.0";
}

internal sealed record HealthStatusDocument
{
    public required string Service { get; init; }

    public required string Version { get; init; }

    public required string Type { get; init; }

    public required DateTimeOffset GeneratedAt { get; init; }

    public required HealthSummary Summary { get; init; }

    public required Dictionary<string, Dictionary<string, List<BackendStatus>>> Data { get; init; }

    /// <summary>Each model's wait line for full backends: service -> model -> figures (beside the contract's fields).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Dictionary<string, Dictionary<string, QueueStatus>>? Queues { get; init; }
}

/// <summary>A model's wait line: requests waiting now, its limits, and how waits ended since start.</summary>
internal sealed record QueueStatus
{
    public int Waiting { get; init; }

    public int MaxQueue { get; init; }

    [JsonPropertyName("queue_timeout_s")]
    public double QueueTimeoutS { get; init; }

    /// <summary>Waits that ended with a backend slot.</summary>
    public long Admitted { get; init; }

    /// <summary>Requests answered 429 (line full or wait ran out).</summary>
    public long Rejected { get; init; }

    /// <summary>Mean time in line of the requests that left it (a refusal at a full line counts as 0), in milliseconds; null before the first.</summary>
    public double? AvgWaitMs { get; init; }

    /// <summary>Their time in line, summed (for /metrics).</summary>
    [JsonIgnore]
    public double WaitSeconds { get; init; }
}

internal sealed record HealthSummary
{
    public int Healthy { get; init; }

    public int Total { get; init; }

    public double Availability { get; init; }
}

internal sealed record BackendStatus
{
    public required string Id { get; init; }

    public required string Name { get; init; }

    public required string Url { get; init; }

    public int Weight { get; init; }

    /// <summary>`max_concurrency` from backends.json; absent when not set.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? MaxConcurrency { get; init; }

    /// <summary>The batch size learnt from the engine's metrics when `max_concurrency` is not set; absent until learnt.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? LearnedConcurrency { get; init; }

    /// <summary>The backend's certificate is not verified (`tls_skip_verify`); only present when true.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool TlsSkipVerify { get; init; }

    /// <summary>`healthy`, `unhealthy` or `unknown` (contract).</summary>
    public required string Status { get; init; }

    public bool Ejected { get; init; }

    public DateTimeOffset? EjectedUntil { get; init; }

    /// <summary>While the backend's own Retry-After (on a 429 or 503) keeps it out: until when.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? HeldUntil { get; init; }

    public double? ResponseTimeMs { get; init; }

    public DateTimeOffset? LastCheck { get; init; }

    /// <summary>Why the last active check failed ("connection refused", "HTTP 503", "timeout"); null when it passed.</summary>
    public string? LastError { get; init; }

    public int ConsecutiveFailures { get; init; }

    public int InFlight { get; init; }

    public long Requests { get; init; }

    public long Errors { get; init; }

    public double Rps { get; init; }

    public double ErrorRate { get; init; }

    [JsonPropertyName("latency_p50_ms")]
    public double? LatencyP50Ms { get; init; }

    [JsonPropertyName("latency_p99_ms")]
    public double? LatencyP99Ms { get; init; }

    [JsonPropertyName("ttfb_p50_ms")]
    public double? TtfbP50Ms { get; init; }

    [JsonPropertyName("ttfb_p99_ms")]
    public double? TtfbP99Ms { get; init; }

    public List<HistorySample> History { get; init; } = [];
}

internal sealed record HistorySample
{
    public long T { get; init; }

    public double Rps { get; init; }

    public double ErrorRate { get; init; }

    [JsonPropertyName("latency_p50_ms")]
    public double? LatencyP50Ms { get; init; }

    /// <summary>False when an active check failed in this sample's slot; null when none ran.</summary>
    public bool? Healthy { get; init; }
}

internal sealed record ReadyStatus
{
    public required string Status { get; init; }

    public int Services { get; init; }

    public int Models { get; init; }

    public int Backends { get; init; }
}

/// <summary>Source-generated JSON for every type the gateway serializes (no reflection; AOT-safe).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(HealthStatusDocument))]
[JsonSerializable(typeof(ReadyStatus))]
internal sealed partial class GatewayJsonContext : JsonSerializerContext;
