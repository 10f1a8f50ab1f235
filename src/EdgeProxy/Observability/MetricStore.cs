using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Text;

namespace EdgeProxy.Observability;

/// <summary>
/// Every time series of the gateway's instruments: one <see cref="Series"/> per (instrument, tag
/// values). <see cref="PrometheusExporter"/> feeds it from its MeterListener and renders it; a
/// proxied request's series are written directly by <see cref="RequestSeries"/>.
/// </summary>
internal sealed class MetricStore
{
    private readonly ConcurrentDictionary<SeriesKey, Series> _series = new();

    /// <summary>
    /// The same series found by the identity of the key's strings: callers record with the same
    /// string instances each time (config names, constant classes), so a lookup hashes no string (by
    /// value it did, on every request). A miss goes to <see cref="_series"/>, the
    /// one source of truth; entries for strings of an older config are dropped by the size cap.
    /// </summary>
    private readonly ConcurrentDictionary<SeriesKey, Series> _seriesByIdentity = new(SeriesKey.IdentityComparer);

    public ICollection<Series> All => _series.Values;

    public Series Find(Instrument instrument, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var key = SeriesKey.From(instrument, tags);
        if (_seriesByIdentity.TryGetValue(key, out var series))
        {
            return series;
        }
        series = _series.GetOrAdd(key, static key => new Series(key));
        if (_seriesByIdentity.Count > 4 * _series.Count + 256)
        {
            _seriesByIdentity.Clear();   // tag values that are not the same instances each time (or a long run of reloads)
        }
        _seriesByIdentity.TryAdd(key, series);
        return series;
    }

    public void Record(Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var series = Find(instrument, tags);
        if (instrument.IsObservable)
        {
            // Observable instruments report their current value, not an increment.
            Interlocked.Exchange(ref series.LongValue, value);
            return;
        }
        Interlocked.Add(ref series.LongValue, value);
    }

    public void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        => Observe(Find(instrument, tags), value);

    /// <summary>A counter's increment.</summary>
    public static void Add(Series series, long value) => Interlocked.Add(ref series.LongValue, value);

    /// <summary>A histogram's observation (bucket, count, sum); for other series the sum only.</summary>
    public static void Observe(Series series, double value)
    {
        if (series.Buckets is { } buckets)
        {
            var bounds = series.Bounds!;
            var i = 0;
            while (i < bounds.Length && value > bounds[i])
            {
                i++;
            }
            Interlocked.Increment(ref buckets[i]);
            Interlocked.Increment(ref series.LongValue);
        }
        AddDouble(ref series.Sum, value);
    }

    private static void AddDouble(ref double target, double value)
    {
        double seen, next;
        do
        {
            seen = Volatile.Read(ref target);
            next = seen + value;
        }
        while (Interlocked.CompareExchange(ref target, next, seen) != seen);
    }
}

/// <summary>One time series: an instrument plus up to four tag (name, value) pairs, compared by value.</summary>
internal readonly struct SeriesKey : IEquatable<SeriesKey>
{
    private readonly string? _n0, _v0, _n1, _v1, _n2, _v2, _n3, _v3;

    private SeriesKey(Instrument instrument, int count, string? n0, string? v0, string? n1, string? v1, string? n2, string? v2, string? n3, string? v3)
    {
        Instrument = instrument;
        Count = count;
        (_n0, _v0, _n1, _v1, _n2, _v2, _n3, _v3) = (n0, v0, n1, v1, n2, v2, n3, v3);
    }

    public Instrument Instrument { get; }

    public int Count { get; }

    public (string Name, string Value) this[int i] => i switch
    {
        0 => (_n0!, _v0!),
        1 => (_n1!, _v1!),
        2 => (_n2!, _v2!),
        _ => (_n3!, _v3!),
    };

    public string Label
    {
        get
        {
            var sb = new StringBuilder();
            for (var i = 0; i < Count; i++)
            {
                sb.Append(this[i].Name).Append('=').Append(this[i].Value).Append(',');
            }
            return sb.ToString();
        }
    }

    public static SeriesKey From(Instrument instrument, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var count = Math.Min(tags.Length, 4);
        return new SeriesKey(instrument, count,
            count > 0 ? tags[0].Key : null, count > 0 ? ValueOf(tags[0]) : null,
            count > 1 ? tags[1].Key : null, count > 1 ? ValueOf(tags[1]) : null,
            count > 2 ? tags[2].Key : null, count > 2 ? ValueOf(tags[2]) : null,
            count > 3 ? tags[3].Key : null, count > 3 ? ValueOf(tags[3]) : null);
    }

    private static string ValueOf(KeyValuePair<string, object?> tag) => tag.Value as string ?? tag.Value?.ToString() ?? "";

    public bool Equals(SeriesKey other)
        => ReferenceEquals(Instrument, other.Instrument) && Count == other.Count
        && _n0 == other._n0 && _v0 == other._v0 && _n1 == other._n1 && _v1 == other._v1
        && _n2 == other._n2 && _v2 == other._v2 && _n3 == other._n3 && _v3 == other._v3;

    public override bool Equals(object? obj) => obj is SeriesKey other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(Instrument, _v0, _v1, _v2, _v3, _n0, _n1);

    /// <summary>Equal when every string is the same instance: no string is hashed or compared by content.</summary>
    public static IEqualityComparer<SeriesKey> IdentityComparer { get; } = new ByIdentity();

    private sealed class ByIdentity : IEqualityComparer<SeriesKey>
    {
        public bool Equals(SeriesKey x, SeriesKey y)
            => ReferenceEquals(x.Instrument, y.Instrument) && x.Count == y.Count
            && ReferenceEquals(x._n0, y._n0) && ReferenceEquals(x._v0, y._v0) && ReferenceEquals(x._n1, y._n1) && ReferenceEquals(x._v1, y._v1)
            && ReferenceEquals(x._n2, y._n2) && ReferenceEquals(x._v2, y._v2) && ReferenceEquals(x._n3, y._n3) && ReferenceEquals(x._v3, y._v3);

        public int GetHashCode(SeriesKey key)
            => HashCode.Combine(RuntimeHelpers.GetHashCode(key.Instrument), Identity(key._v0), Identity(key._v1), Identity(key._v2), Identity(key._v3));

        private static int Identity(string? value) => value is null ? 0 : RuntimeHelpers.GetHashCode(value);
    }
}

internal sealed class Series
{
    public Series(SeriesKey key)
    {
        Key = key;
        if (key.Instrument is Histogram<double> histogram)
        {
            Bounds = histogram.Advice?.HistogramBucketBoundaries?.ToArray() ?? [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
            Buckets = new long[Bounds.Length + 1];
        }
    }

    public SeriesKey Key { get; }

    public double[]? Bounds { get; }

    public long[]? Buckets { get; }

    public long LongValue;

    public double Sum;

    /// <summary>The tags as an array, set by <see cref="RequestSeries"/> to record through the instrument too.</summary>
    public KeyValuePair<string, object?>[]? Tags;
}
