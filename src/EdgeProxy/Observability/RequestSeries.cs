using System.Diagnostics.Metrics;

namespace EdgeProxy.Observability;

/// <summary>
/// The one recording point of a proxied request's metrics, for one (service, model, backend):
/// requests by status class, duration, time to first byte and token usage. Each store series is
/// found once, on first use, then written directly: per request that skips the listener dispatch and
/// three to five store lookups (a large share of a proxied request's instructions under callgrind).
/// The same measurement goes through the instrument, with the same tags, only while some other
/// MeterListener (OpenTelemetry, dotnet-counters, a test) has it enabled: the exporter's own
/// listener leaves these instruments alone (<see cref="GatewayMetrics.IsRecordedDirectly"/>), so
/// <see cref="Instrument.Enabled"/> means exactly that and costs one read when nobody listens.
/// The backend's rolling dashboard statistics (<see cref="BackendStats"/>) are written here too.
/// Created with the backend's state (or the route, backend "-" for requests no backend took).
/// </summary>
internal sealed class RequestSeries(string service, string model, string backend, BackendStats? stats = null)
{
    private const int ClientGone = 5, Duration = 6, FirstByte = 7, Prompt = 8, Completion = 9;

    /// <summary>Each slot's tag beside (service, model, backend): the `status_class` of slots 0-5, the token `type` of 8 and 9.</summary>
    private static readonly (string Name, string Value)?[] Extra =
    [
        ("status_class", "1xx"), ("status_class", "2xx"), ("status_class", "3xx"), ("status_class", "4xx"), ("status_class", "5xx"),
        ("status_class", "client_gone"), null, null, ("type", "prompt"), ("type", "completion"),
    ];

    /// <summary>The series in one gateway's store (a test process runs several gateways, each with its own metrics).</summary>
    private Bound? _bound;

    /// <summary>
    /// One finished request: edgeproxy_requests_total, the duration and (when a body byte came) the
    /// time to first byte, and the backend's dashboard statistics (<paramref name="backendError"/>:
    /// the request counts as the backend's error there).
    /// </summary>
    public void Completed(GatewayMetrics metrics, int status, bool clientGone, double seconds, double? firstByteSeconds, bool backendError = false)
    {
        stats?.Record(seconds * 1000, firstByteSeconds * 1000, backendError);
        var slots = SlotsFor(metrics);
        var outcome = clientGone ? ClientGone : status switch { < 200 => 0, < 300 => 1, < 400 => 2, < 500 => 3, _ => 4 };
        Add(metrics.Requests, slots[outcome] ?? Find(metrics, slots, outcome, metrics.Requests), 1);
        Observe(metrics.RequestDuration, slots[Duration] ?? Find(metrics, slots, Duration, metrics.RequestDuration), seconds);
        if (firstByteSeconds is double ttfb)
        {
            Observe(metrics.FirstByte, slots[FirstByte] ?? Find(metrics, slots, FirstByte, metrics.FirstByte), ttfb);
        }
    }

    /// <summary>Token usage a response reported (either count may be absent).</summary>
    public void Tokens(GatewayMetrics metrics, long? prompt, long? completion)
    {
        var slots = SlotsFor(metrics);
        if (prompt is long p)
        {
            Add(metrics.Tokens, slots[Prompt] ?? Find(metrics, slots, Prompt, metrics.Tokens), p);
        }
        if (completion is long c)
        {
            Add(metrics.Tokens, slots[Completion] ?? Find(metrics, slots, Completion, metrics.Tokens), c);
        }
    }

    private static void Add(Counter<long> counter, Series series, long value)
    {
        MetricStore.Add(series, value);
        if (counter.Enabled)
        {
            counter.Add(value, series.Tags!);
        }
    }

    private static void Observe(Histogram<double> histogram, Series series, double value)
    {
        MetricStore.Observe(series, value);
        if (histogram.Enabled)
        {
            histogram.Record(value, series.Tags!);
        }
    }

    private Series?[] SlotsFor(GatewayMetrics metrics)
    {
        var bound = _bound;
        if (bound?.Metrics != metrics)
        {
            _bound = bound = new Bound(metrics, new Series?[Extra.Length]);
        }
        return bound.Slots;
    }

    /// <summary>The store's series of a slot, its tags built exactly as the instruments' other callers build them; once per series.</summary>
    private Series Find(GatewayMetrics metrics, Series?[] slots, int slot, Instrument instrument)
    {
        var tags = GatewayMetrics.Tags(service, model, backend);
        if (Extra[slot] is var (name, value))
        {
            tags.Add(name, value);
        }
        var array = new KeyValuePair<string, object?>[tags.Count];
        tags.CopyTo(array);
        var series = slots[slot] = metrics.Store.Find(instrument, array);
        series.Tags ??= array;
        return series;
    }

    private sealed record Bound(GatewayMetrics Metrics, Series?[] Slots);
}
