using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace EdgeProxy.Observability;

/// <summary>
/// The gateway's instruments (System.Diagnostics.Metrics). Exported in Prometheus text format by
/// <see cref="PrometheusExporter"/>. Tag values are config names and status classes only — bounded
/// cardinality, never client data.
/// </summary>
internal sealed class GatewayMetrics : IDisposable
{
    public const string MeterName = "EdgeProxy";

    private static readonly double[] SecondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

    private long _inFlight;

    private long _fastPathRequests;

    public GatewayMetrics()
    {
        Requests = Meter.CreateCounter<long>("edgeproxy_requests", description: "Proxied requests by service, model, backend and status class.");
        RequestDuration = Meter.CreateHistogram<double>("edgeproxy_request_duration_seconds", "s", "Proxied request duration, until the last byte.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        FirstByte = Meter.CreateHistogram<double>("edgeproxy_time_to_first_byte_seconds", "s", "Time to the first response body byte from the backend.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        // Observed at scrape time from a plain counter: two measurement callbacks per request
        // (start, end) through the listener cost more than the whole in-flight bookkeeping.
        Meter.CreateObservableUpDownCounter("edgeproxy_upstream_in_flight", () => Volatile.Read(ref _inFlight), description: "Upstream requests in flight.");
        Meter.CreateObservableCounter("edgeproxy_fast_path_requests", () => Volatile.Read(ref _fastPathRequests),
            description: "Proxied requests relayed by the HTTP/1.1 fast path (the rest took Kestrel's HTTP stack).");
        Ejections = Meter.CreateCounter<long>("edgeproxy_backend_ejections", description: "Passive-health ejections.");
        Retries = Meter.CreateCounter<long>("edgeproxy_failovers", description: "Attempts retried on another backend before the response started.");
        StreamAborts = Meter.CreateCounter<long>("edgeproxy_stream_aborts", description: "Responses that ended abnormally, by reason.");
        Tokens = Meter.CreateCounter<long>("edgeproxy_llm_tokens", description: "LLM token usage reported by backends, by type (prompt, completion).");
    }

    public Meter Meter { get; } = new(MeterName, "1.0.0");

    /// <summary>Every series of these instruments (fed by the exporter's listener, and by <see cref="RequestSeries"/> directly).</summary>
    public MetricStore Store { get; } = new();

    /// <summary>Recorded only through <see cref="RequestSeries"/>, like <see cref="RequestDuration"/>, <see cref="FirstByte"/> and <see cref="Tokens"/>.</summary>
    public Counter<long> Requests { get; }

    public Histogram<double> RequestDuration { get; }

    public Histogram<double> FirstByte { get; }

    /// <summary>An upstream request started (pair with <see cref="UpstreamEnded"/>).</summary>
    public void UpstreamStarted() => Interlocked.Increment(ref _inFlight);

    public void UpstreamEnded() => Interlocked.Decrement(ref _inFlight);

    public void FastPathRequest() => Interlocked.Increment(ref _fastPathRequests);

    public Counter<long> Ejections { get; }

    public Counter<long> Retries { get; }

    public Counter<long> StreamAborts { get; }

    public Counter<long> Tokens { get; }

    /// <summary>
    /// The request instruments, which <see cref="RequestSeries"/> writes into the store itself: the
    /// exporter's listener does not enable them, so they are enabled only for other listeners.
    /// </summary>
    public bool IsRecordedDirectly(Instrument instrument)
        => ReferenceEquals(instrument, Requests) || ReferenceEquals(instrument, RequestDuration)
        || ReferenceEquals(instrument, FirstByte) || ReferenceEquals(instrument, Tokens);

    public static TagList Tags(string service, string model, string backend)
        => new() { { "service", service }, { "model", model }, { "backend", backend } };

    public void Dispose() => Meter.Dispose();
}
