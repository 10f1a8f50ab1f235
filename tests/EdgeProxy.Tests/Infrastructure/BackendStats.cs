using System.Text.Json;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>Readers for the test backend's `/control/stats` document (see tests/EdgeProxy.TestBackend/README.md).</summary>
internal static class BackendStats
{
    public static long Requests(this JsonElement stats) => stats.GetProperty("requests").GetInt64();

    public static long InFlight(this JsonElement stats) => stats.GetProperty("in_flight").GetInt64();

    /// <summary>Requests seen for <paramref name="path"/> since the last reset.</summary>
    public static long PathCount(this JsonElement stats, string path)
        => stats.GetProperty("by_path").TryGetProperty(path, out var n) ? n.GetInt64() : 0;

    /// <summary>Aborted requests recorded under <paramref name="tag"/>.</summary>
    public static long Aborted(this JsonElement stats, string tag)
        => stats.GetProperty("aborted").TryGetProperty(tag, out var n) ? n.GetInt64() : 0;

    /// <summary>Stopwatch timestamp of the last abort under <paramref name="tag"/> (comparable with this process's Stopwatch.GetTimestamp() on Linux).</summary>
    public static long? LastAbortTicks(this JsonElement stats, string tag)
        => stats.GetProperty("last_abort_ticks").TryGetProperty(tag, out var n) ? n.GetInt64() : null;
}
