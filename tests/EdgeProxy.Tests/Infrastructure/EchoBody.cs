using System.Text.Json;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>What the test backend's `/echo` saw (see tests/EdgeProxy.TestBackend/README.md).</summary>
internal sealed record EchoBody(
    string Id,
    string Method,
    string Path,
    string RawTarget,
    string Query,
    IReadOnlyDictionary<string, string[]> Headers,
    long BodyLength,
    string BodySha256)
{
    public static EchoBody Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        var headers = new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase);
        foreach (var header in root.GetProperty("headers").EnumerateObject())
        {
            headers[header.Name] = header.Value.EnumerateArray().Select(v => v.GetString() ?? "").ToArray();
        }
        return new EchoBody(
            root.GetProperty("id").GetString()!,
            root.GetProperty("method").GetString()!,
            root.GetProperty("path").GetString()!,
            root.GetProperty("raw_target").GetString()!,
            root.GetProperty("query").GetString()!,
            headers,
            root.GetProperty("body_length").GetInt64(),
            root.GetProperty("body_sha256").GetString()!);
    }

    public static async Task<EchoBody> ReadAsync(HttpResponseMessage response)
        => Parse(await response.Content.ReadAsStringAsync());

    /// <summary>The backend-side values of a request header (lookup ignores case); null when absent.</summary>
    public string[]? Header(string name) => Headers.TryGetValue(name, out var values) ? values : null;

    /// <summary>All values of a header joined with ", " (null when absent).</summary>
    public string? HeaderText(string name) => Header(name) is { } values ? string.Join(", ", values) : null;
}
