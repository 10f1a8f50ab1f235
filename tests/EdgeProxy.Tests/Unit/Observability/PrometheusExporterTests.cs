using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using EdgeProxy.Auth;
using EdgeProxy.Configuration;
using EdgeProxy.Hosting;
using EdgeProxy.Observability;
using EdgeProxy.Routing;
using Microsoft.Extensions.Time.Testing;

namespace EdgeProxy.Tests.Unit.Observability;

/// <summary>`/metrics` text (the exporter's, with the endpoint's backend gauges), checked by a strict parser of the Prometheus text format 0.0.4.</summary>
public sealed partial class PrometheusExporterTests : IDisposable
{
    private readonly FakeTimeProvider _time = UnitFixtures.Clock();
    private readonly GatewayMetrics _metrics = new();
    private readonly RouteTable _table;
    private readonly PrometheusExporter _exporter;
    private readonly MetricsEndpoint _endpoint;

    public PrometheusExporterTests()
    {
        var config = new BackendsConfig(
        [
            new ServiceConfig("google", [new ModelConfig("gemma", [UnitFixtures.Backend("g1"), UnitFixtures.Backend("g2"), UnitFixtures.Backend("g3")], AffinityConfig.ClientIp)]),
            // Names the config loader would accept: quotes and backslashes are legal in keys.
            new ServiceConfig("we\"ird", [new ModelConfig("back\\slash", [UnitFixtures.Backend("b\"1")], AffinityConfig.ClientIp)]),
        ]);
        _table = RouteTable.Build(config, new GatewaySettings(), UnitFixtures.Policy(), _time);
        _exporter = new PrometheusExporter(_metrics);
        _endpoint = new MetricsEndpoint(_exporter, new RouteTableProvider(_table), new GatewaySettings(), new GatewayKeyAuthenticator(""));
    }

    public void Dispose()
    {
        _exporter.Dispose();
        _metrics.Dispose();
    }

    // ---- a strict parser -----------------------------------------------------------------------

    private sealed record Sample(string Name, IReadOnlyList<KeyValuePair<string, string>> Labels, double Value)
    {
        public string? Label(string name) => Labels.FirstOrDefault(l => l.Key == name).Value;

        /// <summary>Labels other than `le`, canonical, to group histogram series.</summary>
        public string SeriesId => string.Join(",", Labels.Where(l => l.Key != "le").Select(l => $"{l.Key}={l.Value}"));
    }

    private sealed class Family(string name, string help)
    {
        public string Name { get; } = name;

        public string Help { get; } = help;

        public string? Type { get; set; }

        public List<Sample> Samples { get; } = [];
    }

    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    private static partial Regex MetricName();

    [GeneratedRegex("^[a-zA-Z_][a-zA-Z0-9_]*$")]
    private static partial Regex LabelName();

    private static Dictionary<string, Family> ParseStrict(string text)
    {
        var families = new Dictionary<string, Family>(StringComparer.Ordinal);
        var seriesSeen = new HashSet<string>(StringComparer.Ordinal);
        Assert.EndsWith("\n", text);
        Family? current = null;
        var lines = text[..^1].Split('\n');
        for (var n = 0; n < lines.Length; n++)
        {
            var line = lines[n];
            var where = $"line {n + 1}: {line}";
            Assert.False(line.Length == 0, $"{where}: empty line");
            Assert.DoesNotContain('\r', line);
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                var rest = line["# HELP ".Length..];
                var space = rest.IndexOf(' ');
                Assert.True(space > 0, where);
                var name = rest[..space];
                Assert.Matches(MetricName(), name);
                Assert.False(families.ContainsKey(name), $"{where}: second HELP for {name}");
                current = new Family(name, UnescapeHelp(rest[(space + 1)..], where));
                families.Add(name, current);
                continue;
            }
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                Assert.Equal(4, parts.Length);
                Assert.True(current is not null && current.Name == parts[2], $"{where}: TYPE without its HELP just before");
                Assert.True(current!.Type is null && current.Samples.Count == 0, $"{where}: TYPE twice or after samples");
                Assert.Contains(parts[3], new[] { "counter", "gauge", "histogram" });
                current.Type = parts[3];
                continue;
            }
            Assert.False(line.StartsWith('#'), $"{where}: unexpected comment");

            var sample = ParseSample(line, where);
            Assert.True(current?.Type is not null, $"{where}: sample before HELP/TYPE");
            var allowed = current!.Type == "histogram"
                ? new[] { current.Name + "_bucket", current.Name + "_sum", current.Name + "_count" }
                : new[] { current.Name };
            Assert.True(allowed.Contains(sample.Name), $"{where}: sample outside its family {current.Name}");
            if (current.Type == "counter")
            {
                Assert.EndsWith("_total", sample.Name);
                Assert.True(sample.Value >= 0, where);
            }
            var id = sample.Name + "{" + string.Join(",", sample.Labels.Select(l => $"{l.Key}={l.Value}")) + "}";
            Assert.True(seriesSeen.Add(id), $"{where}: duplicate series");
            current.Samples.Add(sample);
        }

        foreach (var family in families.Values)
        {
            Assert.NotNull(family.Type);
            if (family.Type == "histogram")
            {
                CheckHistogram(family);
            }
        }
        return families;
    }

    private static void CheckHistogram(Family family)
    {
        foreach (var series in family.Samples.GroupBy(s => s.SeriesId))
        {
            var buckets = series.Where(s => s.Name == family.Name + "_bucket").ToList();
            Assert.NotEmpty(buckets);
            var previousLe = double.NegativeInfinity;
            var previousCount = 0.0;
            foreach (var bucket in buckets)
            {
                var le = ParseValue(bucket.Label("le") ?? throw new Xunit.Sdk.XunitException("bucket without le"));
                Assert.True(le > previousLe, $"{family.Name}: le not increasing");
                Assert.True(bucket.Value >= previousCount, $"{family.Name}: buckets not cumulative");
                Assert.Equal(Math.Floor(bucket.Value), bucket.Value);
                previousLe = le;
                previousCount = bucket.Value;
            }
            Assert.Equal("+Inf", buckets[^1].Label("le"));
            var count = Assert.Single(series, s => s.Name == family.Name + "_count");
            Assert.Single(series, s => s.Name == family.Name + "_sum");
            Assert.Equal(buckets[^1].Value, count.Value);
            Assert.Null(count.Label("le"));
        }
    }

    private static Sample ParseSample(string line, string where)
    {
        var i = 0;
        while (i < line.Length && line[i] != '{' && line[i] != ' ')
        {
            i++;
        }
        var name = line[..i];
        Assert.Matches(MetricName(), name);
        var labels = new List<KeyValuePair<string, string>>();
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (true)
            {
                var eq = line.IndexOf('=', i);
                Assert.True(eq > i, $"{where}: label without name");
                var labelName = line[i..eq];
                Assert.Matches(LabelName(), labelName);
                Assert.DoesNotContain(labels, l => l.Key == labelName);
                i = eq + 1;
                Assert.True(line[i] == '"', $"{where}: label value not quoted");
                i++;
                var value = new StringBuilder();
                while (true)
                {
                    Assert.True(i < line.Length, $"{where}: unterminated label value");
                    var c = line[i++];
                    if (c == '"')
                    {
                        break;
                    }
                    if (c == '\\')
                    {
                        var escaped = line[i++];
                        value.Append(escaped switch
                        {
                            '\\' => '\\',
                            '"' => '"',
                            'n' => '\n',
                            _ => throw new Xunit.Sdk.XunitException($"{where}: invalid escape \\{escaped}"),
                        });
                        continue;
                    }
                    value.Append(c);
                }
                labels.Add(new(labelName, value.ToString()));
                if (line[i] == ',')
                {
                    i++;
                    continue;
                }
                Assert.True(line[i] == '}', $"{where}: expected , or }}");
                i++;
                break;
            }
        }
        Assert.True(i < line.Length && line[i] == ' ', $"{where}: expected a space before the value");
        var rawValue = line[(i + 1)..];
        Assert.DoesNotContain(' ', rawValue);
        return new Sample(name, labels, ParseValue(rawValue));
    }

    private static double ParseValue(string raw) => raw switch
    {
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        "NaN" => double.NaN,
        _ => double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture),
    };

    private static string UnescapeHelp(string help, string where)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < help.Length; i++)
        {
            if (help[i] != '\\')
            {
                sb.Append(help[i]);
                continue;
            }
            Assert.True(i + 1 < help.Length, where);
            sb.Append(help[++i] switch
            {
                '\\' => '\\',
                'n' => '\n',
                _ => throw new Xunit.Sdk.XunitException($"{where}: invalid HELP escape"),
            });
        }
        return sb.ToString();
    }

    // ---- tests ----------------------------------------------------------------------------------

    /// <summary>
    /// Writes a request instrument's series as <see cref="RequestSeries"/> does: the exporter's
    /// listener leaves those instruments to it, so the store is where /metrics reads them.
    /// </summary>
    private void Add(Instrument instrument, long value, TagList tags) => _metrics.Store.Record(instrument, value, ToArray(tags));

    private void Observe(Instrument instrument, double value, TagList tags) => _metrics.Store.Record(instrument, value, ToArray(tags));

    private static KeyValuePair<string, object?>[] ToArray(TagList tags)
    {
        var array = new KeyValuePair<string, object?>[tags.Count];
        tags.CopyTo(array);
        return array;
    }

    /// <summary>A finished request as the instruments record it: one request of the status class, and its duration.</summary>
    private void RecordRequest(string service, string model, string backend, string statusClass, double seconds)
    {
        var tags = GatewayMetrics.Tags(service, model, backend);
        tags.Add("status_class", statusClass);
        Add(_metrics.Requests, 1, tags);
        Observe(_metrics.RequestDuration, seconds, GatewayMetrics.Tags(service, model, backend));
    }

    private void RecordTraffic()
    {
        var g1 = GatewayMetrics.Tags("google", "gemma", "g1");
        g1.Add("status_class", "2xx");
        Add(_metrics.Requests, 3, g1);
        var g2 = GatewayMetrics.Tags("google", "gemma", "g2");
        g2.Add("status_class", "5xx");
        Add(_metrics.Requests, 1, g2);
        foreach (var seconds in new[] { 0.003, 0.2, 7.0, 1000.0 })
        {
            Observe(_metrics.RequestDuration, seconds, GatewayMetrics.Tags("google", "gemma", "g1"));
        }
        Observe(_metrics.RequestDuration, 0.01, GatewayMetrics.Tags("google", "gemma", "g2"));
        Observe(_metrics.FirstByte, 0.05, GatewayMetrics.Tags("google", "gemma", "g1"));
        _metrics.UpstreamStarted();
        _metrics.UpstreamStarted();
        _metrics.UpstreamEnded();
        _metrics.Ejections.Add(1, GatewayMetrics.Tags("google", "gemma", "g3"));
        _metrics.Retries.Add(2, new KeyValuePair<string, object?>("service", "google"), new KeyValuePair<string, object?>("model", "gemma"));
        _metrics.StreamAborts.Add(1, new KeyValuePair<string, object?>("reason", "idle_timeout"));
        var tokens = GatewayMetrics.Tags("google", "gemma", "g1");
        tokens.Add("type", "prompt");
        Add(_metrics.Tokens, 17, tokens);
    }

    [Fact]
    public void Render_is_valid_exposition_text()
    {
        RecordTraffic();
        var families = ParseStrict(_endpoint.Render());

        Assert.Equal("counter", families["edgeproxy_requests_total"].Type);
        Assert.Equal("histogram", families["edgeproxy_request_duration_seconds"].Type);
        Assert.Equal("histogram", families["edgeproxy_time_to_first_byte_seconds"].Type);
        Assert.Equal("gauge", families["edgeproxy_upstream_in_flight"].Type);
        Assert.Equal("counter", families["edgeproxy_backend_ejections_total"].Type);
        Assert.Equal("counter", families["edgeproxy_failovers_total"].Type);
        Assert.Equal("counter", families["edgeproxy_stream_aborts_total"].Type);
        Assert.Equal("counter", families["edgeproxy_llm_tokens_total"].Type);
        Assert.Equal("gauge", families["edgeproxy_backend_up"].Type);
        Assert.Equal("gauge", families["edgeproxy_backend_ejected"].Type);
        Assert.Equal("gauge", families["edgeproxy_backend_in_flight"].Type);
        Assert.All(families.Values, f => Assert.False(string.IsNullOrWhiteSpace(f.Help)));

        var requests = families["edgeproxy_requests_total"].Samples;
        Assert.Equal(3, requests.Single(s => s.Label("backend") == "g1" && s.Label("status_class") == "2xx").Value);
        Assert.Equal(1, requests.Single(s => s.Label("backend") == "g2" && s.Label("status_class") == "5xx").Value);
        Assert.Equal("google", requests[0].Label("service"));
        Assert.Equal("gemma", requests[0].Label("model"));

        var inFlight = Assert.Single(families["edgeproxy_upstream_in_flight"].Samples);
        Assert.Empty(inFlight.Labels);
        Assert.Equal(1, inFlight.Value);

        Assert.Equal(2, Assert.Single(families["edgeproxy_failovers_total"].Samples).Value);
        Assert.Equal("idle_timeout", Assert.Single(families["edgeproxy_stream_aborts_total"].Samples).Label("reason"));
        Assert.Equal(17, Assert.Single(families["edgeproxy_llm_tokens_total"].Samples).Value);
    }

    [Fact]
    public void Histogram_buckets_count_each_observation_once_at_its_upper_bound()
    {
        RecordTraffic();
        var samples = ParseStrict(_endpoint.Render())["edgeproxy_request_duration_seconds"].Samples
            .Where(s => s.Label("backend") == "g1").ToList();
        double Bucket(string le) => samples.Single(s => s.Name.EndsWith("_bucket") && s.Label("le") == le).Value;

        Assert.Equal(1, Bucket("0.005"));
        Assert.Equal(1, Bucket("0.1"));
        Assert.Equal(2, Bucket("0.25"));
        Assert.Equal(2, Bucket("5"));
        Assert.Equal(3, Bucket("10"));
        Assert.Equal(3, Bucket("300"));
        Assert.Equal(4, Bucket("+Inf"));
        Assert.Equal(4, samples.Single(s => s.Name.EndsWith("_count")).Value);
        Assert.Equal(1007.203, samples.Single(s => s.Name.EndsWith("_sum")).Value, 9);
        Assert.Equal(16, samples.Count(s => s.Name.EndsWith("_bucket")));
    }

    /// <summary>
    /// The exporter finds series by the identity of the tag strings first (the forwarder's are the
    /// route's own instances); equal strings that are other instances (a reloaded config, values
    /// built at run time) must still count into the one series, not open a second.
    /// </summary>
    [Fact]
    public void Equal_tag_values_from_different_string_instances_count_into_one_series()
    {
        static string Fresh(string value) => new(value.AsSpan());
        for (var i = 0; i < 1000; i++)
        {
            var tags = GatewayMetrics.Tags(Fresh("google"), Fresh("gemma"), i % 2 == 0 ? "g1" : Fresh("g1"));
            tags.Add("status_class", Fresh("2xx"));
            Add(_metrics.Requests, 1, tags);
            Observe(_metrics.RequestDuration, 0.01, GatewayMetrics.Tags(Fresh("google"), "gemma", Fresh("g1")));
        }
        var families = ParseStrict(_endpoint.Render());

        var requests = Assert.Single(families["edgeproxy_requests_total"].Samples);
        Assert.Equal(1000, requests.Value);
        var count = Assert.Single(families["edgeproxy_request_duration_seconds"].Samples, s => s.Name.EndsWith("_count", StringComparison.Ordinal));
        Assert.Equal(1000, count.Value);
    }

    /// <summary>
    /// The request path writes its series directly (<see cref="RequestSeries"/>); they must be the
    /// very series the instruments write, so both land in one line of /metrics each.
    /// </summary>
    [Fact]
    public void Request_series_written_directly_are_the_instruments_series()
    {
        RecordRequest("google", "gemma", "g1", "2xx", 0.02);
        var prompt = GatewayMetrics.Tags("google", "gemma", "g1");
        prompt.Add("type", "prompt");
        Add(_metrics.Tokens, 10, prompt);

        var direct = new RequestSeries("google", "gemma", "g1");
        direct.Completed(_metrics, 200, clientGone: false, seconds: 0.02, firstByteSeconds: 0.005);
        direct.Completed(_metrics, 503, clientGone: false, seconds: 2, firstByteSeconds: null);
        direct.Completed(_metrics, 200, clientGone: true, seconds: 0.3, firstByteSeconds: null);
        direct.Tokens(_metrics, 5, 7);
        var families = ParseStrict(_endpoint.Render());

        var requests = families["edgeproxy_requests_total"].Samples;
        Assert.Equal(2, requests.Single(s => s.Label("status_class") == "2xx").Value);
        Assert.Equal(1, requests.Single(s => s.Label("status_class") == "5xx").Value);
        Assert.Equal(1, requests.Single(s => s.Label("status_class") == "client_gone").Value);
        Assert.Equal(3, requests.Count);
        Assert.All(requests, s => Assert.Equal(("google", "gemma", "g1"), (s.Label("service"), s.Label("model"), s.Label("backend"))));
        var duration = families["edgeproxy_request_duration_seconds"].Samples;
        Assert.Equal(4, duration.Single(s => s.Name.EndsWith("_count", StringComparison.Ordinal)).Value);
        Assert.Equal(2.34, duration.Single(s => s.Name.EndsWith("_sum", StringComparison.Ordinal)).Value, 6);
        Assert.Equal(1, families["edgeproxy_time_to_first_byte_seconds"].Samples.Single(s => s.Name.EndsWith("_count", StringComparison.Ordinal)).Value);
        var tokens = families["edgeproxy_llm_tokens_total"].Samples;
        Assert.Equal(15, tokens.Single(s => s.Label("type") == "prompt").Value);
        Assert.Equal(7, tokens.Single(s => s.Label("type") == "completion").Value);
    }

    [Fact]
    public void A_value_on_a_bucket_bound_falls_in_that_bucket()
    {
        Observe(_metrics.RequestDuration, 0.25, GatewayMetrics.Tags("google", "gemma", "g1"));
        var samples = ParseStrict(_endpoint.Render())["edgeproxy_request_duration_seconds"].Samples;
        Assert.Equal(0, samples.Single(s => s.Label("le") == "0.1").Value);
        Assert.Equal(1, samples.Single(s => s.Label("le") == "0.25").Value);
    }

    [Fact]
    public void Label_values_escape_backslash_quote_and_newline()
    {
        RecordRequest("svc\\with\\backslashes", "say \"hi\"", "line1\nline2", "2xx", 0.1);
        var text = _endpoint.Render();

        Assert.Contains("service=\"svc\\\\with\\\\backslashes\"", text);
        Assert.Contains("model=\"say \\\"hi\\\"\"", text);
        Assert.Contains("backend=\"line1\\nline2\"", text);

        var families = ParseStrict(text);
        var sample = Assert.Single(families["edgeproxy_requests_total"].Samples);
        Assert.Equal("svc\\with\\backslashes", sample.Label("service"));
        Assert.Equal("say \"hi\"", sample.Label("model"));
        Assert.Equal("line1\nline2", sample.Label("backend"));
        Assert.All(families["edgeproxy_request_duration_seconds"].Samples, s => Assert.Equal("line1\nline2", s.Label("backend")));

        // The backend gauges escape route names the same way.
        Assert.Contains(families["edgeproxy_backend_up"].Samples, s => s.Label("service") == "we\"ird" && s.Label("model") == "back\\slash" && s.Label("backend") == "b\"1");
    }

    [Fact]
    public void Backend_gauges_follow_live_state()
    {
        Assert.True(_table.TryGetModel("google", "gemma", out var route));
        UnitFixtures.MarkHealthy(route.Backends[0].State);
        UnitFixtures.MarkUnhealthy(route.Backends[1].State);
        route.Backends[1].State.ReportFailure(trial: false, connectionFailure: true, () => true);
        route.Backends[2].State.TryStart();
        route.Backends[2].State.TryStart();

        var families = ParseStrict(_endpoint.Render());
        double Gauge(string family, string backend) => families[family].Samples.Single(s => s.Label("service") == "google" && s.Label("backend") == backend).Value;
        Assert.Equal([1, 0, -1], new[] { "g1", "g2", "g3" }.Select(b => Gauge("edgeproxy_backend_up", b)));
        Assert.Equal([0, 1, 0], new[] { "g1", "g2", "g3" }.Select(b => Gauge("edgeproxy_backend_ejected", b)));
        Assert.Equal([0, 0, 2], new[] { "g1", "g2", "g3" }.Select(b => Gauge("edgeproxy_backend_in_flight", b)));
        Assert.Equal(4, families["edgeproxy_backend_up"].Samples.Count);
    }

    [Fact]
    public void Without_traffic_only_gauges_and_the_fast_path_count_are_rendered()
    {
        var families = ParseStrict(_endpoint.Render());
        Assert.Equal(
            ["edgeproxy_backend_ejected", "edgeproxy_backend_in_flight", "edgeproxy_backend_up", "edgeproxy_fast_path_requests_total",
             "edgeproxy_gc_allocated_bytes_total", "edgeproxy_gc_collections_total", "edgeproxy_gc_heap_bytes", "edgeproxy_gc_pause_seconds_total",
             "edgeproxy_queue_admitted_total", "edgeproxy_queue_depth", "edgeproxy_queue_rejected_total", "edgeproxy_queue_wait_seconds_total",
             "edgeproxy_upstream_in_flight", "process_resident_memory_bytes"],
            families.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("gauge", families["edgeproxy_queue_depth"].Type);
        Assert.Equal("counter", families["edgeproxy_queue_rejected_total"].Type);
        Assert.All(families.Where(f => f.Key.StartsWith("edgeproxy_queue_", StringComparison.Ordinal)), f => Assert.All(f.Value.Samples, s => Assert.Equal(0, s.Value)));
        Assert.Equal(0, Assert.Single(families["edgeproxy_upstream_in_flight"].Samples).Value);
        Assert.Equal("counter", families["edgeproxy_fast_path_requests_total"].Type);
        Assert.Equal(0, Assert.Single(families["edgeproxy_fast_path_requests_total"].Samples).Value);
    }

    [Fact]
    public void Runtime_figures_are_exported()
    {
        GC.Collect(1, GCCollectionMode.Forced, blocking: true);
        var families = ParseStrict(_endpoint.Render());
        Assert.Equal("counter", families["edgeproxy_gc_collections_total"].Type);
        var collections = families["edgeproxy_gc_collections_total"].Samples;
        Assert.Equal(["0", "1", "2"], collections.Select(s => s.Label("generation")));
        Assert.True(collections.Single(s => s.Label("generation") == "1").Value >= 1);
        Assert.Equal("counter", families["edgeproxy_gc_pause_seconds_total"].Type);
        Assert.True(Assert.Single(families["edgeproxy_gc_pause_seconds_total"].Samples).Value > 0);
        Assert.True(Assert.Single(families["edgeproxy_gc_heap_bytes"].Samples).Value > 0);
        Assert.Equal("counter", families["edgeproxy_gc_allocated_bytes_total"].Type);
        Assert.True(Assert.Single(families["edgeproxy_gc_allocated_bytes_total"].Samples).Value > 0);
        Assert.True(Assert.Single(families["process_resident_memory_bytes"].Samples).Value > 1_000_000);
    }

    [Fact]
    public void Another_meter_with_the_same_name_is_not_exported()
    {
        using var other = new GatewayMetrics();
        other.StreamAborts.Add(5, new KeyValuePair<string, object?>("reason", "client_gone"));
        _metrics.StreamAborts.Add(1, new KeyValuePair<string, object?>("reason", "client_gone"));
        var sample = Assert.Single(ParseStrict(_endpoint.Render())["edgeproxy_stream_aborts_total"].Samples);
        Assert.Equal(1, sample.Value);
    }

    [Fact]
    public void Counters_accumulate_per_label_set()
    {
        for (var i = 0; i < 100; i++)
        {
            _metrics.StreamAborts.Add(1, new KeyValuePair<string, object?>("reason", i % 4 == 0 ? "upstream_reset" : "client_gone"));
        }
        var samples = ParseStrict(_endpoint.Render())["edgeproxy_stream_aborts_total"].Samples;
        Assert.Equal(25, samples.Single(s => s.Label("reason") == "upstream_reset").Value);
        Assert.Equal(75, samples.Single(s => s.Label("reason") == "client_gone").Value);
    }

    [Theory]
    [InlineData(0.005, "0.005")]
    [InlineData(1.0, "1")]
    [InlineData(300.0, "300")]
    [InlineData(double.PositiveInfinity, "+Inf")]
    [InlineData(double.NegativeInfinity, "-Inf")]
    [InlineData(double.NaN, "NaN")]
    [InlineData(1007.203, "1007.203")]
    public void Doubles_use_the_invariant_round_trip_form(double value, string expected)
        => Assert.Equal(expected, PrometheusExporter.FormatDouble(value));
}
