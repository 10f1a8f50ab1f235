using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using EdgeProxy.Auth;
using EdgeProxy.Configuration;
using EdgeProxy.Hosting;
using EdgeProxy.Observability;
using EdgeProxy.Routing;

namespace EdgeProxy.Tests.Unit.Observability;

/// <summary>
/// A proxied request's metrics are recorded in one place (<see cref="RequestSeries"/>): into the
/// store /metrics reads, and through the instruments for any other MeterListener, with the same
/// tags, without counting twice.
/// </summary>
public sealed class RequestSeriesTests : IDisposable
{
    private readonly GatewayMetrics _metrics = new();
    private readonly PrometheusExporter _exporter;

    public RequestSeriesTests() => _exporter = new PrometheusExporter(_metrics);

    public void Dispose()
    {
        _exporter.Dispose();
        _metrics.Dispose();
    }

    private sealed record Measurement(string Instrument, double Value, IReadOnlyDictionary<string, string?> Tags);

    /// <summary>A listener like OpenTelemetry's: every instrument of the meter, every measurement.</summary>
    private MeterListener Listen(ConcurrentQueue<Measurement> seen)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter, _metrics.Meter))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => seen.Enqueue(new(i.Name, v, Tags(tags))));
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => seen.Enqueue(new(i.Name, v, Tags(tags))));
        listener.Start();
        return listener;
    }

    private static Dictionary<string, string?> Tags(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var map = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var (name, value) in tags)
        {
            map[name] = value as string;
        }
        return map;
    }

    [Fact]
    public void The_request_instruments_are_enabled_only_for_other_listeners()
    {
        Assert.False(_metrics.Requests.Enabled);
        Assert.False(_metrics.RequestDuration.Enabled);
        Assert.False(_metrics.FirstByte.Enabled);
        Assert.False(_metrics.Tokens.Enabled);
        Assert.True(_metrics.StreamAborts.Enabled);   // the exporter's listener takes the others

        var seen = new ConcurrentQueue<Measurement>();
        using (Listen(seen))
        {
            Assert.True(_metrics.Requests.Enabled);
            Assert.True(_metrics.Tokens.Enabled);
        }
        Assert.False(_metrics.Requests.Enabled);
    }

    [Fact]
    public void A_backends_series_also_writes_its_dashboard_statistics()
    {
        var stats = new BackendStats(UnitFixtures.Clock());
        var series = new RequestSeries("google", "gemma", "g1", stats);
        series.Completed(_metrics, 200, clientGone: false, seconds: 0.2, firstByteSeconds: 0.04);
        series.Completed(_metrics, 502, clientGone: false, seconds: 0.2, firstByteSeconds: null, backendError: true);

        var snapshot = stats.Snapshot();
        Assert.Equal(2.0 / 60, snapshot.Rps, 6);   // over the last 60 s
        Assert.Equal(0.5, snapshot.ErrorRate, 3);
        Assert.InRange(snapshot.LatencyP50Ms!.Value, 200 / Math.Sqrt(2), 200 * Math.Sqrt(2));   // within one bucket (a factor of √2)
        Assert.InRange(snapshot.FirstByteP50Ms!.Value, 40 / Math.Sqrt(2), 40 * Math.Sqrt(2));
    }

    [Fact]
    public void A_meter_listener_sees_requests_duration_first_byte_and_tokens_with_their_tags()
    {
        var seen = new ConcurrentQueue<Measurement>();
        var series = new RequestSeries("google", "gemma", "g1");
        using (Listen(seen))
        {
            series.Completed(_metrics, 200, clientGone: false, seconds: 0.25, firstByteSeconds: 0.05);
            series.Completed(_metrics, 502, clientGone: false, seconds: 1.5, firstByteSeconds: null);
            series.Completed(_metrics, 200, clientGone: true, seconds: 0.5, firstByteSeconds: null);
            series.Tokens(_metrics, 11, 22);
        }
        series.Completed(_metrics, 200, clientGone: false, seconds: 0.1, firstByteSeconds: null);   // nobody else listens now

        const string G1 = "backend=g1,model=gemma,service=google";
        Assert.Equal(
            [
                $"edgeproxy_requests 1 {G1},status_class=2xx",
                $"edgeproxy_request_duration_seconds 0.25 {G1}",
                $"edgeproxy_time_to_first_byte_seconds 0.05 {G1}",
                $"edgeproxy_requests 1 {G1},status_class=5xx",
                $"edgeproxy_request_duration_seconds 1.5 {G1}",
                $"edgeproxy_requests 1 {G1},status_class=client_gone",
                $"edgeproxy_request_duration_seconds 0.5 {G1}",
                $"edgeproxy_llm_tokens 11 {G1},type=prompt",
                $"edgeproxy_llm_tokens 22 {G1},type=completion",
            ],
            seen.Select(m => $"{m.Instrument} {m.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)} "
                + string.Join(",", m.Tags.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => $"{t.Key}={t.Value}"))));

        // /metrics counted each request once, whether or not another listener was there.
        var text = new MetricsEndpoint(_exporter, new RouteTableProvider(RouteTable.Build(new BackendsConfig([]), new GatewaySettings(), UnitFixtures.Policy(), UnitFixtures.Clock())),
            new GatewaySettings(), new GatewayKeyAuthenticator("")).Render();
        Assert.Contains("edgeproxy_requests_total{service=\"google\",model=\"gemma\",backend=\"g1\",status_class=\"2xx\"} 2\n", text);
        Assert.Contains("edgeproxy_requests_total{service=\"google\",model=\"gemma\",backend=\"g1\",status_class=\"5xx\"} 1\n", text);
        Assert.Contains("edgeproxy_request_duration_seconds_count{service=\"google\",model=\"gemma\",backend=\"g1\"} 4\n", text);
        Assert.Contains("edgeproxy_time_to_first_byte_seconds_count{service=\"google\",model=\"gemma\",backend=\"g1\"} 1\n", text);
        Assert.Contains("edgeproxy_llm_tokens_total{service=\"google\",model=\"gemma\",backend=\"g1\",type=\"prompt\"} 11\n", text);
        Assert.Contains("edgeproxy_llm_tokens_total{service=\"google\",model=\"gemma\",backend=\"g1\",type=\"completion\"} 22\n", text);
    }
}
