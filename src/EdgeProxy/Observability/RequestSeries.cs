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
/// Created with the backend's state (or the route, backend "-" for requests no backend took).
/// </summary>
internal sealed class RequestSeries(string service, string model, string backend)
{
    private const int ClientGone = 5;

    /// <summary>The `status_class` label: the response's class, or client_gone when the client left first.</summary>
    private static readonly string[] Outcomes = ["1xx", "2xx", "3xx", "4xx", "5xx", "client_gone"];

    private Bound? _bound;

    /// <summary>One finished request: edgeproxy_requests_total, the duration and (when a body byte came) the time to first byte.</summary>
    public void Completed(GatewayMetrics metrics, int status, bool clientGone, double seconds, double? firstByteSeconds)
    {
        var bound = BoundTo(metrics);
        var outcome = clientGone ? ClientGone : status switch { < 200 => 0, < 300 => 1, < 400 => 2, < 500 => 3, _ => 4 };
        Add(metrics.Requests, bound.Requests[outcome] ??= bound.Find(metrics.Requests, ("status_class", Outcomes[outcome])), 1);
        Observe(metrics.RequestDuration, bound.Duration ??= bound.Find(metrics.RequestDuration, null), seconds);
        if (firstByteSeconds is double ttfb)
        {
            Observe(metrics.FirstByte, bound.FirstByte ??= bound.Find(metrics.FirstByte, null), ttfb);
        }
    }

    /// <summary>Token usage a response reported (either count may be absent).</summary>
    public void Tokens(GatewayMetrics metrics, long? prompt, long? completion)
    {
        var bound = BoundTo(metrics);
        if (prompt is long p)
        {
            Add(metrics.Tokens, bound.PromptTokens ??= bound.Find(metrics.Tokens, ("type", "prompt")), p);
        }
        if (completion is long c)
        {
            Add(metrics.Tokens, bound.CompletionTokens ??= bound.Find(metrics.Tokens, ("type", "completion")), c);
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

    /// <summary>The series in this gateway's store (a test process runs several gateways, each with its own metrics).</summary>
    private Bound BoundTo(GatewayMetrics metrics)
    {
        var bound = _bound;
        if (bound?.Metrics == metrics)
        {
            return bound;
        }
        bound = new Bound(metrics, service, model, backend);
        _bound = bound;
        return bound;
    }

    private sealed class Bound
    {
        private readonly string _service, _model, _backend;

        public Bound(GatewayMetrics metrics, string service, string model, string backend)
        {
            Metrics = metrics;
            (_service, _model, _backend) = (service, model, backend);
        }

        public GatewayMetrics Metrics { get; }

        public Series?[] Requests { get; } = new Series?[Outcomes.Length];

        public Series? Duration { get; set; }

        public Series? FirstByte { get; set; }

        public Series? PromptTokens { get; set; }

        public Series? CompletionTokens { get; set; }

        /// <summary>The store's series for these tags, built exactly as the instruments' callers build them.</summary>
        public Series Find(Instrument instrument, (string Name, string Value)? extra)
        {
            var tags = GatewayMetrics.Tags(_service, _model, _backend);
            if (extra is var (name, value))
            {
                tags.Add(name, value);
            }
            var array = new KeyValuePair<string, object?>[tags.Count];   // once per series, not per request
            tags.CopyTo(array);
            var series = Metrics.Store.Find(instrument, array);
            series.Tags ??= array;
            return series;
        }
    }
}
