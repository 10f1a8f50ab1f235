using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace EdgeProxy.Observability;

/// <summary>
/// A small Prometheus text-format exposition (format 0.0.4) over the gateway's own Meter. The
/// OpenTelemetry Prometheus exporter is still pre-release and pulls a large dependency graph into an
/// AOT binary; this listens to <see cref="GatewayMetrics"/> with a MeterListener, keeps one series
/// per (instrument, tag values) and writes counters, up-down counters and histograms, then what the
/// caller adds (the endpoint's backend gauges) and the runtime's figures.
/// </summary>
internal sealed class PrometheusExporter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly MetricStore _store;

    public PrometheusExporter(GatewayMetrics metrics)
    {
        _store = metrics.Store;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, metrics.Meter) && !metrics.IsRecordedDirectly(instrument))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => _store.Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => _store.Record(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>The exposition text. Series of one metric are grouped under one HELP/TYPE header.</summary>
    /// <param name="more">Families the caller renders after the instruments' (with <see cref="Header"/> and <see cref="Label"/>).</param>
    public string Render(Action<StringBuilder>? more = null)
    {
        _listener.RecordObservableInstruments();
        var sb = new StringBuilder(4096);
        foreach (var group in _store.All.GroupBy(s => s.Key.Instrument).OrderBy(g => g.Key.Name, StringComparer.Ordinal))
        {
            var instrument = group.Key;
            var name = instrument.Name;
            var help = instrument.Description ?? name;
            switch (instrument)
            {
                case Counter<long> or ObservableCounter<long> or UpDownCounter<long> or ObservableUpDownCounter<long>:
                    var counter = instrument is Counter<long> or ObservableCounter<long>;
                    var family = counter ? name + "_total" : name;
                    Header(sb, family, help, counter ? "counter" : "gauge");
                    foreach (var s in Ordered(group))
                    {
                        Sample(sb, family, s.Key, null, Volatile.Read(ref s.LongValue).ToString(CultureInfo.InvariantCulture));
                    }
                    break;
                case Histogram<double>:
                    Header(sb, name, help, "histogram");
                    foreach (var s in Ordered(group))
                    {
                        long cumulative = 0;
                        for (var i = 0; i < s.Buckets!.Length; i++)
                        {
                            cumulative += Volatile.Read(ref s.Buckets[i]);
                            var le = i < s.Bounds!.Length ? FormatDouble(s.Bounds[i]) : "+Inf";
                            Sample(sb, name + "_bucket", s.Key, le, cumulative.ToString(CultureInfo.InvariantCulture));
                        }
                        Sample(sb, name + "_sum", s.Key, null, FormatDouble(Volatile.Read(ref s.Sum)));
                        Sample(sb, name + "_count", s.Key, null, Volatile.Read(ref s.LongValue).ToString(CultureInfo.InvariantCulture));
                    }
                    break;
            }
        }
        more?.Invoke(sb);
        RenderRuntime(sb);
        return sb.ToString();
    }

    /// <summary>
    /// The runtime's own figures an operator needs to tell a slow backend from a gateway pause:
    /// collections per generation, total time the GC held managed threads, heap size and RSS.
    /// </summary>
    private static void RenderRuntime(StringBuilder sb)
    {
        Header(sb, "edgeproxy_gc_collections_total", "Garbage collections since start, by generation (a gen 1 collection also counts as gen 0).", "counter");
        for (var generation = 0; generation <= 2; generation++)
        {
            sb.Append("edgeproxy_gc_collections_total{generation=\"").Append(generation).Append("\"} ")
              .Append(GC.CollectionCount(generation)).Append('\n');
        }
        Header(sb, "edgeproxy_gc_pause_seconds_total", "Time managed threads were paused by the GC since start.", "counter");
        sb.Append("edgeproxy_gc_pause_seconds_total ").Append(FormatDouble(GC.GetTotalPauseDuration().TotalSeconds)).Append('\n');
        Header(sb, "edgeproxy_gc_allocated_bytes_total", "Bytes allocated on the managed heap since start (divided by requests: allocation per request).", "counter");
        sb.Append("edgeproxy_gc_allocated_bytes_total ").Append(GC.GetTotalAllocatedBytes(precise: false)).Append('\n');
        Header(sb, "edgeproxy_gc_heap_bytes", "Managed heap size after the last collection.", "gauge");
        sb.Append("edgeproxy_gc_heap_bytes ").Append(GC.GetGCMemoryInfo().HeapSizeBytes).Append('\n');
        Header(sb, "process_resident_memory_bytes", "Resident memory of the gateway process.", "gauge");
        sb.Append("process_resident_memory_bytes ").Append(Environment.WorkingSet).Append('\n');
    }

    private static IEnumerable<Series> Ordered(IEnumerable<Series> group) => group.OrderBy(s => s.Key.Label, StringComparer.Ordinal);

    /// <summary>A family's HELP and TYPE lines; HELP text escapes backslash and newline.</summary>
    internal static void Header(StringBuilder sb, string name, string help, string type)
        => sb.Append("# HELP ").Append(name).Append(' ').Append(help.Replace("\\", "\\\\").Replace("\n", "\\n"))
            .Append("\n# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static void Sample(StringBuilder sb, string name, SeriesKey key, string? le, string value)
    {
        sb.Append(name);
        for (var i = 0; i < key.Count; i++)
        {
            Label(sb, key[i].Name, key[i].Value, first: i == 0);
        }
        if (le is not null)
        {
            Label(sb, "le", le, first: key.Count == 0);
        }
        sb.Append(key.Count > 0 || le is not null ? "} " : " ").Append(value).Append('\n');
    }

    /// <summary>One `name="value"` label, opening the label set when <paramref name="first"/>; the caller closes it.</summary>
    internal static StringBuilder Label(StringBuilder sb, string name, string value, bool first)
    {
        sb.Append(first ? '{' : ',').Append(name).Append("=\"");
        Escape(sb, value);
        return sb.Append('"');
    }

    /// <summary>Label value escaping per the text format: backslash, double quote and newline.</summary>
    private static void Escape(StringBuilder sb, string value)
        => sb.Append(value.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n"));

    internal static string FormatDouble(double value)
        => double.IsPositiveInfinity(value) ? "+Inf"
        : double.IsNegativeInfinity(value) ? "-Inf"
        : double.IsNaN(value) ? "NaN"
        : value.ToString("R", CultureInfo.InvariantCulture);

    public void Dispose() => _listener.Dispose();
}
